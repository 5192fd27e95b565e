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
        ct = compute_dtype(x.dtype)
        rows = x.size // d if d else 0
        x2, r2 = (None if a is None else a.reshape(rows, d) for a in (x, r))
        self.avg = xp.full(d, 1 / d, dtype=ct)  # m @ avg = the mean of each row of m
        self.w = None if w is None else w.astype(ct, copy=False)
        b = None if b is None else b.astype(ct, copy=False)
        self.xhat = xhat = xp.empty((rows, d), dtype=ct)
        self.rstd = xp.empty((rows, 1), dtype=ct)
        y = xhat if w is None and b is None else xp.empty((rows, d), dtype=ct)

        def part(p):  # rows p: xhat, rstd and y, in 7 passes over the rows
            xh = xhat[p]
            if r2 is None:
                s = x2[p]
            else:  # x + r in x's dtype, as the kernel rounds it; written straight into xhat when it can be
                s = xp.add(x2[p], r2[p], out=xh) if x.dtype == ct else x2[p] + r2[p]
            xp.subtract(s, (s @ self.avg)[:, None], out=xh)
            self.rstd[p, 0] = 1 / xp.sqrt(_row_dot(xp, xh, xh) * self.avg[0] + ct.type(self.eps))
            xh *= self.rstd[p]
            if w is not None:
                xp.multiply(xh, self.w, out=y[p])
            if b is not None:
                xp.add(y[p] if w is not None else xh, b, out=y[p])

        backend.parallel_rows(xp, rows, d, part)
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
        xhat, w, avg = self.xhat, self.w, self.avg
        g2 = g.reshape(xhat.shape)
        dx = xp.empty(xhat.shape, dtype=xhat.dtype) if need_x else None
        sums = {}  # each part's column sums: [dw, db], added up after

        def part(p):  # rows p: dx, and their share of dw and db
            gp, xh = g2[p].astype(xhat.dtype, copy=False), xhat[p]
            ones = xp.ones(gp.shape[0], dtype=gp.dtype)  # ones @ m = the column sums of m
            sums[p.start] = (_column_dot(xp, gp, xh, ones) if need_w else None, ones @ gp if need_b else None)
            if need_x:
                d = dx[p]
                if w is not None:
                    xp.multiply(gp, w, out=d)  # gh = g w
                else:
                    d[...] = gp
                mean_gxh = _row_dot(xp, d, xh) * avg[0]  # mean(gh * xhat), before d changes
                d -= (d @ avg)[:, None]  # - mean(gh)
                d -= xh * mean_gxh[:, None]
                d *= self.rstd[p]

        backend.parallel_rows(xp, *xhat.shape, part)
        parts = [sums[k] for k in sorted(sums)]  # in row order: the same sums every run
        dw, db = (sum((q[i] for q in parts[1:]), parts[0][i]) if need else None
                  for i, need in enumerate((need_w, need_b)))
        return (None if dx is None else dx.astype(g.dtype, copy=False),
                None if dw is None else dw.astype(g.dtype, copy=False),  # nn.functional checked: w, b have x's dtype
                None if db is None else db.astype(g.dtype, copy=False))


def _column_dot(xp, a, b, ones):
    """sum(a * b, axis=0) of 2-D arrays: on NumPy one einsum pass (57 us at 2048 x 128, against 86 for the
    product then a GEMV); elsewhere (CuPy) the product then a GEMV."""
    return np.einsum("ij,ij->j", a, b) if xp is np else ones @ (a * b)


def _row_dot(xp, a, b):
    """sum(a * b, axis=-1) of 2-D arrays: NumPy's vecdot is one pass; elsewhere a product then a BLAS GEMV."""
    if hasattr(xp, "vecdot"):
        return xp.vecdot(a, b)
    return (a * b) @ xp.ones(a.shape[-1], dtype=a.dtype)
