"""prod (a reduction whose gradient must handle zeros) and cumsum (a running sum)."""
from ..autograd import Function
from ..backend import get_array_module


class Prod(Function):
    """Product over one dim (or all, dim=None).

    d prod / d a_i is the product of the other elements. out / a_i gives it only where a_i != 0, so
    the zeros are counted per slice: with no zero it is out / a_i; with one zero, the element that
    is zero gets the product of the rest and the others 0; with two or more zeros every derivative is 0.
    """
    saves_output = True  # backward reads the input and the product

    def forward(self, a):
        self.a = a
        self.axis = self.dim
        self.out = a.prod(axis=self.axis, keepdims=True, dtype=a.dtype)
        return self.out if self.keepdim else self.out.reshape(_reduced(a.shape, self.axis))

    def backward(self, g):
        xp = get_array_module(g)
        a, out, axis = self.a, self.out, self.axis
        g = g.reshape(out.shape)
        is_zero = a == 0
        zeros = is_zero.sum(axis=axis, keepdims=True)
        one = xp.ones((), dtype=a.dtype)
        rest = xp.where(is_zero, one, a).prod(axis=axis, keepdims=True)  # the product of the nonzero elements
        safe = xp.where(is_zero, one, a)
        d = xp.where(is_zero, xp.where(zeros == 1, rest, 0), xp.where(zeros == 0, rest / safe, 0))
        return (g * d).astype(a.dtype, copy=False)


def _reduced(shape, axis):
    if axis is None:
        return ()
    return tuple(n for i, n in enumerate(shape) if i != axis)


class CumSum(Function):
    """Running sum along `dim`: out[j] = a[0] + ... + a[j]."""
    saves_inputs = False  # backward needs only the dim

    def forward(self, a):
        if a.ndim == 0:
            return a.copy()
        return a.cumsum(axis=self.dim, dtype=a.dtype)

    # a[i] appears in every out[j] with j >= i, so d a[i] = g[i] + g[i+1] + ...: a cumsum from the end
    def backward(self, g):
        xp = get_array_module(g)
        if g.ndim == 0:
            return g
        return xp.flip(xp.flip(g, axis=self.dim).cumsum(axis=self.dim), axis=self.dim)
