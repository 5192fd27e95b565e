"""Embedding lookup as one Function, and the scatter-add of rows that is its backward."""
import numpy as np

from ... import backend
from ...autograd import Function


# Up to this many one-hot elements (num_rows x N) the embedding's backward is a product with a one-hot matrix.
ONE_HOT_ELEMENTS = 1 << 22


def scatter_add_rows(idx, g, num_rows):
    """out[r] = sum of g[n] over all n with idx[n] == r, for idx (N,) and g (N, D).

    This is the embedding's backward. NumPy's ``np.add.at(out, idx, g)`` on a 2-D
    array does it one row at a time and is ~50x slower than the forward, so on
    the CPU:
    - a small table (a character vocabulary) in float32/float64: out = onehot(idx)^T @ g, one BLAS product
      with a (num_rows, N) matrix of 0s and 1s. Measured on a 2-core AMD EPYC at N = 2048, D = 128, 65 rows:
      0.28 ms (one BLAS thread: 0.46), against 0.55 (0.72) for sorting and np.add.reduceat; at the course
      preset's N = 8192, D = 384: 2.8 against 9.3 ms;
    - few distinct rows otherwise: sort the positions by row so equal rows are
      adjacent, and sum each run with one ``np.add.reduceat``;
    - many distinct rows: ``np.add.at`` on the FLAT array, with one offset per
      element (NumPy >= 1.25 has a fast path for 1-D ufunc.at).
    On CuPy ``add.at`` is an atomic scatter-add kernel, fast as it is.
    """
    xp = backend.get_array_module(g)
    n, d = g.shape
    if xp is not np:
        out = xp.zeros((num_rows, d), dtype=g.dtype)
        xp.add.at(out, idx, g)
        return out
    if num_rows * n <= ONE_HOT_ELEMENTS and g.dtype in (np.float32, np.float64):
        one_hot = np.zeros((num_rows, n), dtype=g.dtype)
        one_hot[idx, np.arange(n)] = 1
        return one_hot @ g
    out = np.zeros((num_rows, d), dtype=g.dtype)
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
