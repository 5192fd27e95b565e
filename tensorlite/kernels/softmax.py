"""The softmax of attention scores with the scale and the causal mask fused in, and its backward.

Forward, in place on the scores S (..., Tq, Tk), one block per row (RawKernel): row i of each (Tq, Tk)
matrix keeps keys j <= i when causal (the same top-left diagonal as the array path's causal bias), and
P_ij = exp(scale S_ij - m_i) / sum_j exp(scale S_ij - m_i) over the kept keys (0 on the masked ones),
with the row max m_i and the sum in float32. Three reads of the row, one write, and no (Tq, Tk) bias.

Backward, in place on dP = G V^T, one block per row: with the dropout mask M (P' = P M) the gradient of
P is dP M, and dS = scale P (dP M - sum_j dP_j M_j P_j), the row sum in float32. The result goes straight
into the products dQ = dS K and dK = dS^T Q.

The references compute the same in array operations; the CPU tests check them against
``nn.fused.attention`` and ``nn.reference.scaled_dot_product_attention``.
"""
import numpy as np

from .rows import build_raw, launch_rows, row_source

_FORWARD = r"""
extern "C" __global__ void tensorlite_causal_softmax_fwd(T* s, int tq, int tk, float scale, int causal) {
  __shared__ float shared[32];
  long long row = blockIdx.x;
  T* sr = s + row * tk;
  int last = causal ? min((int)(row % tq), tk - 1) : tk - 1;  // the last key this query may see
  float top = TL_NEG_INF;
  for (int j = threadIdx.x; j <= last; j += blockDim.x) top = fmaxf(top, scale * (float)sr[j]);
  top = tl_block_max(top, shared);
  float part = 0.0f;
  for (int j = threadIdx.x; j <= last; j += blockDim.x) part += expf(scale * (float)sr[j] - top);
  float inv = 1.0f / tl_block_sum(part, shared);
  for (int j = threadIdx.x; j < tk; j += blockDim.x)
    sr[j] = (T)(j <= last ? expf(scale * (float)sr[j] - top) * inv : 0.0f);
}
"""

_BACKWARD = r"""
extern "C" __global__ void tensorlite_causal_softmax_bwd(
    T* dp, const T* p, const T* mask, int tk, float scale, int has_mask) {
  __shared__ float shared[32];
  long long row = blockIdx.x;
  T* dr = dp + row * tk;
  const T* pr = p + row * tk;
  const T* mr = mask + row * tk;
  float part = 0.0f;
  for (int j = threadIdx.x; j < tk; j += blockDim.x) {
    float d = (float)dr[j] * (has_mask ? (float)mr[j] : 1.0f);
    part += d * (float)pr[j];
  }
  float total = tl_block_sum(part, shared);
  for (int j = threadIdx.x; j < tk; j += blockDim.x) {  // each thread rewrites only the elements it read
    float d = (float)dr[j] * (has_mask ? (float)mr[j] : 1.0f);
    dr[j] = (T)(scale * (float)pr[j] * (d - total));
  }
}
"""


def forward_source(dtype):
    return row_source(_FORWARD, dtype)


def backward_source(dtype):
    return row_source(_BACKWARD, dtype)


def causal_softmax(cupy, s, scale, causal):
    """Scores s (..., Tq, Tk), C-contiguous, replaced by P = softmax(scale s + causal mask) in place."""
    tq, tk = s.shape[-2:]
    rows = s.size // tk if tk else 0
    if rows:
        kernel = build_raw(cupy, "tensorlite_causal_softmax_fwd", forward_source, s.dtype)
        launch_rows(kernel, rows, (s, np.int32(tq), np.int32(tk), np.float32(scale), np.int32(bool(causal))))
    return s


def causal_softmax_backward(cupy, dp, p, mask, scale):
    """dp = G V^T (..., Tq, Tk), C-contiguous, replaced by dS = scale P (dP M - rowsum(dP M P)) in place;
    mask: the dropout mask (P's shape) or None."""
    tk = dp.shape[-1]
    rows = dp.size // tk if tk else 0
    if rows:
        kernel = build_raw(cupy, "tensorlite_causal_softmax_bwd", backward_source, dp.dtype)
        launch_rows(kernel, rows, (dp, p, p if mask is None else mask, np.int32(tk), np.float32(scale),
                                   np.int32(mask is not None)))
    return dp


# ---------------------------------------------------------------- the references, on any array module
def causal_softmax_reference(xp, s, scale, causal):
    """The forward kernel's algorithm in array operations: P in s's dtype, statistics in float32."""
    tq, tk = s.shape[-2:]
    z = s.astype(np.float32) * np.float32(scale)
    if causal:
        z = xp.where(xp.arange(tk) > xp.arange(tq)[:, None], -np.inf, z)  # key j after query i: masked
    e = xp.exp(z - z.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(s.dtype)


# dS = scale P (dP M - sum_j (dP M)_j P_j)
def causal_softmax_backward_reference(xp, dp, p, mask, scale):
    """The backward kernel's algorithm in array operations: dS in dp's dtype, the row sum in float32."""
    d = dp.astype(np.float32)
    if mask is not None:
        d = d * mask.astype(np.float32)
    pf = p.astype(np.float32)
    return (np.float32(scale) * pf * (d - (d * pf).sum(axis=-1, keepdims=True))).astype(dp.dtype)
