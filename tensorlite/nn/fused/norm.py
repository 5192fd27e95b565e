"""Layer normalization over the trailing dimensions, as one Function."""
import numpy as np

from ... import backend
from ...autograd import Function


class LayerNorm(Function):
    """Works on x viewed as (rows, D), D = the size of normalized_shape. Row means and column sums are
    matrix-vector products with a constant vector (BLAS), and row sums of squares are row-wise dot
    products: several times faster than ufunc reductions over a short last axis.

    Takes x and then weight and/or bias (as has_weight / has_bias say); k trailing dims are normalized.
    """
    saves_inputs = True  # dx reads the weight (xhat and rstd are its own arrays)

    def forward(self, x, *affine):
        xp = backend.get_array_module(x)
        d = x.shape[-1] if self.k == 1 else int(np.prod(x.shape[x.ndim - self.k:]))
        x2 = x.reshape(-1, d)
        self.avg = xp.full(d, 1 / d, dtype=x.dtype)  # x2 @ avg = mean of each row
        xhat = x2 - (x2 @ self.avg)[:, None]
        self.rstd = (1 / xp.sqrt(_row_dot(xp, xhat, xhat) * self.avg[0] + self.eps))[:, None]
        xhat *= self.rstd
        self.xhat, self.w = xhat, (affine[0].reshape(-1) if self.has_weight else None)
        y = xhat * self.w if self.has_weight else xhat.copy() if self.has_bias else xhat
        if self.has_bias:
            y += affine[-1].reshape(-1)
        return y.reshape(x.shape)

    # y = xhat * w + b,  xhat = (x - mean) * rstd:
    # dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat)) with gh = g * w;  dw = sum(g * xhat);  db = sum(g)
    # mean(gh) = g @ (w / D) and mean(gh * xhat) = (g * xhat) @ (w / D) reuse g * xhat, which dw needs too.
    def backward(self, g):
        xp = backend.get_array_module(g)
        xhat, w = self.xhat, self.w
        g2 = g.reshape(xhat.shape)
        gx = g2 * xhat if self.needs_input_grad[0] or (self.has_weight and self.needs_input_grad[1]) else None
        dx = None
        if self.needs_input_grad[0]:
            wd = self.avg * w if self.has_weight else self.avg
            dx = g2 * w if self.has_weight else g2.copy()
            dx -= (g2 @ wd)[:, None]
            dx -= xhat * (gx @ wd)[:, None]
            dx *= self.rstd
            dx = dx.reshape(g.shape)
        ones = xp.ones(g2.shape[0], dtype=g.dtype)  # ones @ m = sum of the rows of m
        grads = [dx]
        if self.has_weight:
            grads.append((ones @ gx).reshape(self.w_shape) if self.needs_input_grad[1] else None)
        if self.has_bias:
            grads.append((ones @ g2).reshape(self.w_shape) if self.needs_input_grad[-1] else None)
        return tuple(grads)


def _row_dot(xp, a, b):
    """sum(a * b, axis=-1) of 2-D arrays: NumPy's vecdot is one pass; elsewhere a product then a BLAS GEMV."""
    if hasattr(xp, "vecdot"):
        return xp.vecdot(a, b)
    return (a * b) @ xp.ones(a.shape[-1], dtype=a.dtype)
