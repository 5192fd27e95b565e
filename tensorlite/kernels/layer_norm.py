"""Layer norm over the last dim of (rows, D), with an optional residual add fused in: y = LN(x + r) w + b.

Forward, one block per row (RawKernel): s = x + r (rounded to the element type and stored: backward
needs it), the row mean and then the variance of s by a second pass over the row (float32, two passes
so a large mean does not cancel the variance away), and y = (s - mean) rstd w + b. It writes y, s (only
with a residual; without one s is x itself), and mean and rstd per row in float32.

Backward, one block per row: xhat = (s - mean) rstd is recomputed from the saved s (no (rows, D)
array of xhat is kept), then dx = rstd (gw - mean(gw) - xhat mean(gw xhat)) with gw = g w; the residual's
gradient is the same dx. dw = sum over rows of g xhat is a ReductionKernel over the rows; db = sum of g is
a CuPy sum with a float32 accumulator.

The references below compute the same in NumPy (or CuPy) array operations with the same float32
statistics; the CPU tests check them against ``nn.fused.norm.LayerNorm`` and ``nn.reference.layer_norm``.
"""
import numpy as np

from .rows import build_once, build_raw, launch_rows, row_source

_FORWARD = r"""
extern "C" __global__ void tensorlite_layer_norm_fwd(
    const T* x, const T* r, const T* w, const T* b, T* y, T* s, float* mean, float* rstd,
    int d, float eps, int has_r, int has_w, int has_b) {
  __shared__ float shared[32];
  long long row = blockIdx.x;
  const T* xr = x + row * d;
  const T* rr = r + row * d;
  T* sr = has_r ? s + row * d : (T*)xr;  // without a residual, s is x (never written)
  T* yr = y + row * d;
  float part = 0.0f;
  for (int j = threadIdx.x; j < d; j += blockDim.x) {
    float v = (float)xr[j];
    if (has_r) {  // round the sum as it is stored: backward recomputes xhat from the stored s
      T t = (T)(v + (float)rr[j]);
      sr[j] = t;
      v = (float)t;
    }
    part += v;
  }
  float mu = tl_block_sum(part, shared) / d;
  part = 0.0f;
  for (int j = threadIdx.x; j < d; j += blockDim.x) {  // the same thread wrote sr[j] above: no barrier
    float c = (float)sr[j] - mu;
    part += c * c;
  }
  float rs = 1.0f / sqrtf(tl_block_sum(part, shared) / d + eps);
  if (threadIdx.x == 0) {
    mean[row] = mu;
    rstd[row] = rs;
  }
  for (int j = threadIdx.x; j < d; j += blockDim.x) {
    float v = ((float)sr[j] - mu) * rs;
    if (has_w) v *= (float)w[j];
    if (has_b) v += (float)b[j];
    yr[j] = (T)v;
  }
}
"""

_BACKWARD = r"""
extern "C" __global__ void tensorlite_layer_norm_bwd(
    const T* g, const T* s, const float* mean, const float* rstd, const T* w, T* dx, int d, int has_w) {
  __shared__ float shared[32];
  long long row = blockIdx.x;
  const T* gr = g + row * d;
  const T* sr = s + row * d;
  T* dr = dx + row * d;
  float mu = mean[row], rs = rstd[row];
  float sum_gw = 0.0f, sum_gwx = 0.0f;
  for (int j = threadIdx.x; j < d; j += blockDim.x) {
    float gw = (float)gr[j] * (has_w ? (float)w[j] : 1.0f);
    sum_gw += gw;
    sum_gwx += gw * (((float)sr[j] - mu) * rs);
  }
  float mean_gw = tl_block_sum(sum_gw, shared) / d;
  float mean_gwx = tl_block_sum(sum_gwx, shared) / d;
  for (int j = threadIdx.x; j < d; j += blockDim.x) {
    float gw = (float)gr[j] * (has_w ? (float)w[j] : 1.0f);
    float xhat = ((float)sr[j] - mu) * rs;
    dr[j] = (T)(rs * (gw - mean_gw - xhat * mean_gwx));
  }
}
"""


def forward_source(dtype):
    return row_source(_FORWARD, dtype)


def backward_source(dtype):
    return row_source(_BACKWARD, dtype)


def column_kernel(cupy):
    """ReductionKernel: dw = sum over rows of g (s - mean) rstd, in float32; call with mean and rstd as
    (rows, 1) columns and axis=0."""
    return build_once("tensorlite_layer_norm_dw", lambda: cupy.ReductionKernel(
        "T g, T s, float32 mean, float32 rstd", "float32 dw",
        "(float)g * (((float)s - mean) * rstd)", "a + b", "dw = a", "0", "tensorlite_layer_norm_dw"))


def layer_norm_forward(cupy, x, r, w, b, eps):
    """x, r (rows, D) C-contiguous (r may be None), w, b (D,) or None -> y, s, mean, rstd (as the reference)."""
    rows, d = x.shape
    y = cupy.empty_like(x)
    s = cupy.empty_like(x) if r is not None else x
    mean = cupy.empty(rows, dtype=np.float32)
    rstd = cupy.empty(rows, dtype=np.float32)
    if rows:
        kernel = build_raw(cupy, "tensorlite_layer_norm_fwd", forward_source, x.dtype)
        launch_rows(kernel, rows, (x, x if r is None else r, x if w is None else w, x if b is None else b,
                                   y, s, mean, rstd, np.int32(d), np.float32(eps),
                                   np.int32(r is not None), np.int32(w is not None), np.int32(b is not None)))
    return y, s, mean, rstd


def layer_norm_backward(cupy, g, s, mean, rstd, w, need_dx=True, need_dw=True, need_db=True):
    """dx (rows, D) in g's dtype, dw and db (D,) in w's dtype (None where not needed)."""
    rows, d = s.shape
    dx = dw = db = None
    if need_dx:
        dx = cupy.empty_like(s)
        if rows:
            kernel = build_raw(cupy, "tensorlite_layer_norm_bwd", backward_source, s.dtype)
            launch_rows(kernel, rows, (g, s, mean, rstd, s if w is None else w, dx, np.int32(d),
                                       np.int32(w is not None)))
    dtype = s.dtype if w is None else w.dtype
    if need_dw:
        dw = column_kernel(cupy)(g, s, mean[:, None], rstd[:, None], axis=0).astype(dtype)
    if need_db:
        db = g.sum(axis=0, dtype=np.float32).astype(dtype)
    return dx, dw, db


# ---------------------------------------------------------------- the references, on any array module
def layer_norm_reference(xp, x, r, w, b, eps):
    """The forward kernel's algorithm in array operations: y, s, mean, rstd (mean and rstd in float32)."""
    s = x if r is None else x + r  # rounded to the element type, as the kernel stores it
    f = s.astype(np.float32)
    mean = f.mean(axis=1)
    c = f - mean[:, None]
    rstd = 1 / xp.sqrt((c * c).mean(axis=1) + np.float32(eps))
    y = c * rstd[:, None]
    if w is not None:
        y = y * w.astype(np.float32)
    if b is not None:
        y = y + b.astype(np.float32)
    return y.astype(x.dtype), s, mean, rstd


# xhat = (s - mean) rstd, gw = g w:  dx = rstd (gw - mean(gw) - xhat mean(gw xhat));  dw = sum(g xhat);  db = sum(g)
def layer_norm_backward_reference(xp, g, s, mean, rstd, w):
    """The backward kernels' algorithm in array operations: dx, dw, db (dw, db None without w)."""
    xhat = (s.astype(np.float32) - mean[:, None]) * rstd[:, None]
    gf = g.astype(np.float32)
    gw = gf if w is None else gf * w.astype(np.float32)
    dx = rstd[:, None] * (gw - gw.mean(axis=1, keepdims=True) - xhat * (gw * xhat).mean(axis=1, keepdims=True))
    dtype = s.dtype if w is None else w.dtype
    return dx.astype(g.dtype), (gf * xhat).sum(axis=0).astype(dtype), gf.sum(axis=0).astype(dtype)
