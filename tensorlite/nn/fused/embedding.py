"""Embedding lookup as one Function, and the scatter-add of rows that is its backward."""
import numpy as np

from ... import backend
from ...autograd import Function


def scatter_add_rows(idx, g, num_rows):
    """out[r] = sum of g[n] over all n with idx[n] == r, for idx (N,) and g (N, D).

    This is the embedding's backward. NumPy's ``np.add.at(out, idx, g)`` on a 2-D
    array does it one row at a time and is ~50x slower than the forward, so on
    the CPU (measured at N = 2048, D = 384):
    - few distinct rows (a character vocabulary): sort the positions by row so
      equal rows are adjacent, and sum each run with one ``np.add.reduceat``;
    - many distinct rows: ``np.add.at`` on the FLAT array, with one offset per
      element (NumPy >= 1.25 has a fast path for 1-D ufunc.at).
    Both are single-threaded, so they stay fast on a busy machine; a one-hot
    matrix product was no faster single-threaded and erratic under load.
    On CuPy ``add.at`` is an atomic scatter-add kernel, fast as it is.
    """
    xp = backend.get_array_module(g)
    n, d = g.shape
    out = xp.zeros((num_rows, d), dtype=g.dtype)
    if xp is not np:
        xp.add.at(out, idx, g)
        return out
    order = np.argsort(idx, kind="stable")
    rows = idx[order]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])  # where each run of one row begins
    if len(starts) <= n // 16:
        out[rows[starts]] = np.add.reduceat(np.take(g, order, axis=0), starts, axis=0)
    else:
        flat = (idx[:, None] * d + np.arange(d)).reshape(-1)
        np.add.at(out.reshape(-1), flat, g.reshape(-1))
    return out


class Embedding(Function):
    """Rows of the weight picked by `idx` (an int64 array in range, on the weight's device).
    The row `padding_idx` (None: no such row) gets no gradient."""
    saves_inputs = False  # backward needs the indices and the table's size only
    padding_idx = None

    def forward(self, weight):
        xp = backend.get_array_module(weight)
        self.num_rows = weight.shape[0]
        return xp.take(weight, self.idx, axis=0)

    # out[n] = W[idx[n]]:  dW[r] = sum of g[n] over positions n with idx[n] == r
    def backward(self, g):
        d = g.shape[-1]
        dw = scatter_add_rows(self.idx.reshape(-1), g.reshape(-1, d), self.num_rows)
        if self.padding_idx is not None:
            dw[self.padding_idx] = 0
        return dw
