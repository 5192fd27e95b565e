"""Layer normalization over the trailing dimensions, as one Function (with an optional residual add first)."""
import numpy as np

from ... import backend, kernels
from ...autograd import Function
from ...kernels.layer_norm import layer_norm_backward, layer_norm_forward
from ...kernels.rows import compute_dtype


class LayerNorm(Function):
    """Works on x viewed as (rows, D), D = the size of normalized_shape. Row means and column sums are
    matrix-vector products with a constant vector (BLAS), and row sums of squares are row-wise dot
    products: several times faster than ufunc reductions over a short last axis. float16 is computed
    in float32 (statistics and xhat), and the results are rounded back.

    Takes x, then the residual r when has_residual (y = LN(x + r): the post-norm block's add, one node
    instead of two), then weight and/or bias (as has_weight / has_bias say); k trailing dims are normalized.
    On CUDA with TENSORLITE_FUSED=1 (kernels.use_fused) forward and backward are the row kernels of
    tensorlite.kernels.layer_norm, which keep mean and rstd per row instead of xhat.
    """
    saves_inputs = True  # dx reads the weight (and x itself on the kernel path without a residual)
    has_residual = False

    def forward(self, x, *rest):
        xp = backend.get_array_module(x)
        r = rest[0] if self.has_residual else None
        affine = rest[1:] if self.has_residual else rest
        d = x.shape[-1] if self.k == 1 else int(np.prod(x.shape[x.ndim - self.k:]))
        w = affine[0].reshape(-1) if self.has_weight else None
        b = affine[-1].reshape(-1) if self.has_bias else None
        self.kernel = kernels.use_fused(x, r, w, b)
        if self.kernel:
            x2, r2 = (None if a is None else xp.ascontiguousarray(a.reshape(-1, d)) for a in (x, r))  # (rows, D)
            y, self.s, self.mean, self.rstd = layer_norm_forward(xp, x2, r2, w, b, self.eps)
            self.w = w
            return y.reshape(x.shape)
        s = x if r is None else x + r
        ct = compute_dtype(x.dtype)
        x2 = s.reshape(-1, d).astype(ct, copy=False)
        self.avg = xp.full(d, 1 / d, dtype=ct)  # x2 @ avg = mean of each row
        xhat = x2 - (x2 @ self.avg)[:, None]
        self.rstd = (1 / xp.sqrt(_row_dot(xp, xhat, xhat) * self.avg[0] + ct.type(self.eps)))[:, None]
        xhat *= self.rstd
        self.xhat, self.w = xhat, (None if w is None else w.astype(ct, copy=False))
        y = xhat * self.w if self.has_weight else xhat.copy() if self.has_bias else xhat
        if self.has_bias:
            y += b.astype(ct, copy=False)
        return y.reshape(x.shape).astype(x.dtype, copy=False)

    # y = xhat * w + b,  xhat = (x - mean) * rstd  (x + r with a residual, whose gradient is dx too):
    # dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat)) with gh = g * w;  dw = sum(g * xhat);  db = sum(g)
    # mean(gh) = g @ (w / D) and mean(gh * xhat) = (g * xhat) @ (w / D) reuse g * xhat, which dw needs too.
    def backward(self, g):
        need = self.needs_input_grad
        need_x = need[0] or (self.has_residual and need[1])
        need_w = self.has_weight and need[1 + self.has_residual]
        need_b = self.has_bias and need[-1]
        if self.kernel:
            xp = backend.get_array_module(g)
            g2 = xp.ascontiguousarray(g.reshape(self.s.shape))
            dx, dw, db = layer_norm_backward(xp, g2, self.s, self.mean, self.rstd, self.w, need_x, need_w, need_b)
        else:
            dx, dw, db = self._array_backward(g, need_x, need_w, need_b)
        grads = [None if dx is None else dx.reshape(g.shape)]
        if self.has_residual:
            grads.append(grads[0])
        if self.has_weight:
            grads.append(None if dw is None else dw.reshape(self.w_shape))
        if self.has_bias:
            grads.append(None if db is None else db.reshape(self.w_shape))
        return tuple(grads)

    def _array_backward(self, g, need_x, need_w, need_b):
        xp = backend.get_array_module(g)
        xhat, w = self.xhat, self.w
        g2 = g.reshape(xhat.shape).astype(xhat.dtype, copy=False)
        gx = g2 * xhat if need_x or need_w else None
        dx = dw = db = None
        if need_x:
            wd = self.avg * w if self.has_weight else self.avg
            dx = g2 * w if self.has_weight else g2.copy()
            dx -= (g2 @ wd)[:, None]
            dx -= xhat * (gx @ wd)[:, None]
            dx *= self.rstd
            dx = dx.astype(g.dtype, copy=False)
        ones = xp.ones(g2.shape[0], dtype=g2.dtype)  # ones @ m = sum of the rows of m
        if need_w:
            dw = (ones @ gx).astype(g.dtype, copy=False)  # nn.functional checked: w, b have x's dtype
        if need_b:
            db = (ones @ g2).astype(g.dtype, copy=False)
        return dx, dw, db


def _row_dot(xp, a, b):
    """sum(a * b, axis=-1) of 2-D arrays: NumPy's vecdot is one pass; elsewhere a product then a BLAS GEMV."""
    if hasattr(xp, "vecdot"):
        return xp.vecdot(a, b)
    return (a * b) @ xp.ones(a.shape[-1], dtype=a.dtype)
