"""Reductions over one axis, several axes, or all of them (dim=None)."""
import math
from .._checks import normalize_dims
from ..autograd import Function
from ..backend import get_array_module


def _keep_dims(g, shape, dims, keepdim):
    """Give a reduced gradient its reduced axes back (as length 1), so it broadcasts against the input."""
    if not keepdim:
        g = g.reshape(tuple(1 if i in dims else n for i, n in enumerate(shape)))
    return g


def _expand_back(g, shape, dims, keepdim):
    """Broadcast a reduced gradient back to the input's shape, as a new writable array
    (a broadcast view is read-only, and a leaf's .grad must accept in-place accumulation)."""
    xp = get_array_module(g)
    return xp.broadcast_to(_keep_dims(g, shape, dims, keepdim), shape).copy()


class Sum(Function):
    def forward(self, a):
        self.shape = a.shape
        self.dims = normalize_dims(self.dim, a.ndim)
        return a.sum(axis=self.dims, keepdims=self.keepdim)

    # every input element contributes with weight 1
    def backward(self, g):
        return _expand_back(g, self.shape, self.dims, self.keepdim)


class Mean(Function):
    def forward(self, a):
        self.shape = a.shape
        self.dims = normalize_dims(self.dim, a.ndim)
        self.count = 1
        for d in self.dims:
            self.count *= a.shape[d]
        return a.mean(axis=self.dims, keepdims=self.keepdim)

    # each element contributes with weight 1/N
    def backward(self, g):
        return _expand_back(g / self.count, self.shape, self.dims, self.keepdim)


class Var(Function):
    def forward(self, a):
        self.dims = normalize_dims(self.dim, a.ndim)
        n = 1
        for d in self.dims:
            n *= a.shape[d]
        self.denom = max(n - self.correction, 0)
        self.centered = a - a.mean(axis=self.dims, keepdims=True)
        return (self.centered ** 2).sum(axis=self.dims, keepdims=self.keepdim) / self.denom

    # d var / da = 2 (a - mean) / (N - correction)  (the mean's own term sums to zero)
    def backward(self, g):
        c = self.centered
        scale = 2 / self.denom if self.denom else math.inf  # N <= correction: nan, like the forward
        return _keep_dims(g, c.shape, self.dims, self.keepdim) * scale * c


class Max(Function):
    """max (or min, with is_min) over dims; the gradient goes to one arg-max per slice."""

    def forward(self, a):
        xp = get_array_module(a)
        if a.size == 0:
            raise RuntimeError("max()/min() of an empty tensor: the reduction has no identity")
        self.shape = a.shape
        self.dims = normalize_dims(self.dim, a.ndim)
        # move reduced axes last and flatten them, so one argmax finds the winner
        kept = [i for i in range(a.ndim) if i not in self.dims]
        self.perm = kept + list(self.dims)
        flat = a.transpose(self.perm).reshape(tuple(a.shape[i] for i in kept) + (-1,))
        self.index = (flat.argmin if self.is_min else flat.argmax)(axis=-1)
        out = xp.take_along_axis(flat, self.index[..., None], axis=-1)[..., 0]
        if self.keepdim:
            out = out.reshape(tuple(1 if i in self.dims else n for i, n in enumerate(a.shape)))
        return out

    # d max = 1 at the arg-max, 0 elsewhere
    def backward(self, g):
        xp = get_array_module(g)
        kept_shape = tuple(self.shape[i] for i in self.perm[:len(self.perm) - len(self.dims)])
        width = 1
        for d in self.dims:
            width *= self.shape[d]
        one_hot = xp.arange(width) == self.index[..., None]  # True at each slice's winner
        flat = xp.where(one_hot, g.reshape(kept_shape + (1,)), xp.zeros((), dtype=g.dtype))
        permuted = flat.reshape(tuple(self.shape[i] for i in self.perm))
        inverse = [0] * len(self.perm)
        for i, p in enumerate(self.perm):
            inverse[p] = i
        return permuted.transpose(inverse)


class LogSumExp(Function):
    def forward(self, a):
        xp = get_array_module(a)
        self.dims = normalize_dims(self.dim, a.ndim)
        m = a.max(axis=self.dims, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)  # all -inf slices give -inf, not nan
        out = xp.log(xp.exp(a - m).sum(axis=self.dims, keepdims=True)) + m
        self.a, self.out = a, out
        return out if self.keepdim else out.reshape(tuple(n for i, n in enumerate(a.shape) if i not in self.dims))

    # d lse / da = softmax(a) = exp(a - lse)
    def backward(self, g):
        xp = get_array_module(g)
        return _keep_dims(g, self.a.shape, self.dims, self.keepdim) * xp.exp(self.a - self.out)
