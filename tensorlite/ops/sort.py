"""Gather along a dim (the Function behind gather, sort, topk) and the stable index orders sort uses."""
import numpy as np

from ..autograd import Function
from ..backend import get_array_module


class Gather(Function):
    """out[i][j][k] = a[i][index[i][j][k]][k] for dim 1 (any dim alike), as torch.gather.

    `index` is a constant integer array with a's number of dims; outside `dim` it may be shorter than a
    (only the leading part of a is read there). Backward adds each output's gradient back into the
    place it was read from; an index repeated adds up (a scatter-add).
    """
    saves_inputs = False  # backward needs only the index and the shape

    def forward(self, a):
        xp = get_array_module(a)
        self.shape, self.dtype = a.shape, a.dtype
        if a.ndim == 0:
            return a.copy()
        self.region = tuple(slice(None) if d == self.dim else slice(0, n) for d, n in enumerate(self.index.shape))
        return xp.take_along_axis(a[self.region], self.index, axis=self.dim)

    def backward(self, g):
        xp = get_array_module(g)
        if not self.shape:
            return g.copy()
        out = xp.zeros(self.shape, dtype=self.dtype)
        # the full coordinates of every output element: its own, with `dim` replaced by the index
        nd = self.index.ndim
        coords = [self.index if d == self.dim else xp.arange(n).reshape((1,) * d + (n,) + (1,) * (nd - d - 1))
                  for d, n in enumerate(self.index.shape)]
        xp.add.at(out, tuple(coords), g)
        return out


def stable_argsort(xp, a, dim, descending):
    """Indices that sort `a` along `dim`, equal values keeping their order (stable, as PyTorch's
    stable=True); nan counts as the largest value (last ascending, first descending), as in PyTorch.

    Descending: sort the reversed array ascending, then read that order backwards; reversing twice puts
    equal values back in their original order, which sorting -a would not do for nan or bools."""
    stable = {"kind": "stable"} if xp is np else {}  # (CuPy's sort is always stable and takes no kind)
    if not descending:
        return xp.argsort(a, axis=dim, **stable)
    n = a.shape[dim]
    order = xp.argsort(xp.flip(a, axis=dim), axis=dim, **stable)
    return (n - 1) - xp.flip(order, axis=dim)
