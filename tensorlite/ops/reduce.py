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
    saves_inputs = False  # backward needs only the shape

    def forward(self, a):
        self.shape = a.shape
        self.dims = normalize_dims(self.dim, a.ndim)
        return a.sum(axis=self.dims, keepdims=self.keepdim, dtype=a.dtype)  # (NumPy would widen int32)

    # every input element contributes with weight 1
    def backward(self, g):
        return _expand_back(g, self.shape, self.dims, self.keepdim)


class Mean(Function):
    saves_inputs = False

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
    """Variance with `correction`: the sum of squares over max(N - correction, 0), as in PyTorch."""
    saves_inputs = False  # backward reads its own centred copy

    def forward(self, a):
        self.dims = normalize_dims(self.dim, a.ndim)
        n = 1
        for d in self.dims:
            n *= a.shape[d]
        self.dof = n - self.correction
        self.full = self.dim is None or a.ndim == 0  # PyTorch's full-reduction path (see backward)
        self.centered = a - a.mean(axis=self.dims, keepdims=True)
        return (self.centered ** 2).sum(axis=self.dims, keepdims=self.keepdim) / max(self.dof, 0)

    # d var / da = 2 (a - mean) / (N - correction)  (the mean's own term sums to zero)
    def backward(self, g):
        if self.dof <= 0 and self.full:
            # PyTorch's backward of a full reduction with N <= correction gives g * var, i.e. g * inf (nan where
            # all values are equal and var is 0/0) everywhere; matched so that the gradients agree
            xp = get_array_module(g)
            var = math.inf if (self.centered != 0).any() else math.nan
            return xp.full(self.centered.shape, var, dtype=self.centered.dtype) * g
        return _keep_dims(g, self.centered.shape, self.dims, self.keepdim) * self._dvar()

    def _dvar(self):
        # N <= correction has no meaningful variance; the formula is kept as PyTorch's backward writes it
        # (N - correction unclamped: inf where it is 0, a negative factor below), so the gradients agree
        c = self.centered
        return c * math.inf if self.dof == 0 else c * (2 / self.dof)


class Std(Var):
    """sqrt(var): d std = d var / (2 std), and 0 where std is 0 (a constant slice), as in PyTorch,
    instead of 0 * inf = nan."""
    saves_output = True

    def forward(self, a):
        xp = get_array_module(a)
        self.out = xp.sqrt(super().forward(a))
        return self.out

    def backward(self, g):
        xp = get_array_module(g)
        out = self.out
        zero = out == 0
        scale = g / (2 * xp.where(zero, 1, out))
        scale = xp.where(zero, xp.zeros((), dtype=scale.dtype), scale)
        return _keep_dims(scale, self.centered.shape, self.dims, self.keepdim) * self._dvar()


def check_nonempty(name, a, dims, all_dims):
    """PyTorch's errors for max/amax/... over nothing: no identity to return."""
    if all_dims and a.size == 0:
        raise (IndexError if name.startswith("arg") else RuntimeError)(f"{name}(): Expected reduction dim to be specified for input.numel() == 0 (the tensor "
                           f"is empty). Specify the reduction dim with the 'dim' argument.")
    for d in dims:
        if a.shape[d] == 0:
            raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size.")


class Max(Function):
    """max (or min, with is_min) over dims.

    Gradient conventions, both PyTorch's: with `split_ties` (amax, amin, and max()/min() without a dim)
    the gradient of a slice is shared evenly among all elements equal to its maximum; without it
    (max(dim) / min(dim), which also return indices) it goes only to the element the index names, the
    first maximum of the slice.
    """
    saves_inputs = False  # backward reads its own mask or index

    def forward(self, a):
        xp = get_array_module(a)
        self.shape = a.shape
        self.dims = normalize_dims(self.dim, a.ndim)
        check_nonempty(self.name, a, self.dims, self.dim is None)
        if self.split_ties:
            reduce = a.min if self.is_min else a.max
            out = reduce(axis=self.dims, keepdims=True)
            self.winners = a == out
            if a.dtype.kind == "f":  # a slice holding nan has the max nan; the nans share its gradient
                self.winners |= xp.isnan(a) & xp.isnan(out)
            self.count = self.winners.sum(axis=self.dims, keepdims=True)
            return out if self.keepdim else out.reshape(tuple(n for i, n in enumerate(a.shape) if i not in self.dims))
        # move reduced axes last and flatten them, so one argmax finds the winner
        kept = [i for i in range(a.ndim) if i not in self.dims]
        self.perm = kept + list(self.dims)
        width = 1
        for d in self.dims:
            width *= a.shape[d]
        flat = a.transpose(self.perm).reshape(tuple(a.shape[i] for i in kept) + (width,))
        self.index = (flat.argmin if self.is_min else flat.argmax)(axis=-1)
        out = xp.take_along_axis(flat, self.index[..., None], axis=-1)[..., 0]
        if self.keepdim:
            out = out.reshape(tuple(1 if i in self.dims else n for i, n in enumerate(a.shape)))
        return out

    # d max = 1 at the arg-max (or 1/k at each of k tied maxima), 0 elsewhere
    def backward(self, g):
        xp = get_array_module(g)
        if self.split_ties:
            share = _keep_dims(g, self.shape, self.dims, self.keepdim) / self.count.astype(g.dtype)
            return xp.where(self.winners, share, xp.zeros((), dtype=g.dtype))
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
    saves_output = True  # backward reads the input and the (kept-dims) output

    def forward(self, a):
        xp = get_array_module(a)
        self.dims = normalize_dims(self.dim, a.ndim)
        if any(a.shape[d] == 0 for d in self.dims):  # the log of an empty sum: -inf, as in PyTorch
            out = xp.full(tuple(1 if i in self.dims else n for i, n in enumerate(a.shape)), -math.inf, dtype=a.dtype)
        else:
            m = a.max(axis=self.dims, keepdims=True)
            m = xp.where(xp.isfinite(m), m, 0)  # all -inf slices give -inf, not nan
            out = xp.log(xp.exp(a - m).sum(axis=self.dims, keepdims=True)) + m
        self.a, self.out = a, out
        return out if self.keepdim else out.reshape(tuple(n for i, n in enumerate(a.shape) if i not in self.dims))

    # d lse / da = softmax(a) = exp(a - lse)
    def backward(self, g):
        xp = get_array_module(g)
        return _keep_dims(g, self.a.shape, self.dims, self.keepdim) * xp.exp(self.a - self.out)


class Norm2(Function):
    """The Euclidean norm sqrt(sum(a^2)) over dims; its gradient a / norm is 0 where the norm is 0 (PyTorch's
    choice of subgradient), instead of the 0 / 0 = nan of composing sqrt with sum."""
    saves_output = True

    def forward(self, a):
        xp = get_array_module(a)
        self.a, self.dims = a, normalize_dims(self.dim, a.ndim)
        self.out = xp.sqrt((a * a).sum(axis=self.dims, keepdims=True))
        return self.out if self.keepdim else self.out.reshape(tuple(n for i, n in enumerate(a.shape) if i not in self.dims))

    def backward(self, g):
        xp = get_array_module(g)
        out = self.out
        zero = out == 0
        scale = xp.where(zero, xp.zeros((), dtype=g.dtype), _keep_dims(g, self.a.shape, self.dims, self.keepdim)
                         / xp.where(zero, 1, out))
        return scale * self.a
