"""Cross-entropy of logits (N, C) against class indices, without class weights or label smoothing.

Forward, one block per row (RawKernel): the row max and sum of exp(x - max) in float32 give the row's
logsumexp, and loss_i = lse_i - x[i, t_i] (0 on an ignored row). One read of the logits (the max and the
sums read the row again from cache), two floats written per row: no (N, C) array is made.

Backward (ElementwiseKernel over (N, C)): d loss_i / d x_ij = softmax_ij - [j == t_i], times the row's
scale s_i (g, or g / count for 'mean', 0 on ignored rows), so grad_ij = s_i (exp(x_ij - lse_i) - [j == t_i]).
The gradient is recomputed here from the saved logits rather than made in the forward and scaled now:
that reads the logits once and writes the gradient once (three passes over (N, C) in all, against four
for writing it in the forward and scaling it in backward), keeps the same memory (the logits instead of
a gradient of their size), and evaluation under no_grad makes no (N, C) array at all.

The references compute the same in array operations; the CPU tests check them against
``nn.fused.loss.CrossEntropy`` and ``nn.reference.cross_entropy``.
"""
import numpy as np

from .rows import build_once, build_raw, launch_rows, row_source

_FORWARD = r"""
extern "C" __global__ void tensorlite_cross_entropy_fwd(
    const T* x, const long long* t, const bool* valid, float* loss, float* lse, int c) {
  __shared__ float shared[32];
  long long row = blockIdx.x;
  const T* xr = x + row * c;
  float top = TL_NEG_INF;
  for (int j = threadIdx.x; j < c; j += blockDim.x) top = fmaxf(top, (float)xr[j]);
  top = tl_block_max(top, shared);
  float part = 0.0f;
  for (int j = threadIdx.x; j < c; j += blockDim.x) part += expf((float)xr[j] - top);
  float l = top + logf(tl_block_sum(part, shared));
  if (threadIdx.x == 0) {
    lse[row] = l;
    loss[row] = valid[row] ? l - (float)xr[t[row]] : 0.0f;
  }
}
"""


def forward_source(dtype):
    return row_source(_FORWARD, dtype)


def grad_kernel(cupy):
    """ElementwiseKernel: grad = scale (exp(x - lse) - [column == t]) over (N, C), with lse, t and scale as
    (N, 1) columns and c the number of classes (the output is C-contiguous, so its column is i % c)."""
    return build_once("tensorlite_cross_entropy_grad", lambda: cupy.ElementwiseKernel(
        "T x, float32 lse, int64 t, float32 scale, int64 c", "T grad",
        "grad = (T)(scale * (expf((float)x - lse) - (t == i % c ? 1.0f : 0.0f)));",
        "tensorlite_cross_entropy_grad"))


def cross_entropy_forward(cupy, logits, t, valid):
    """logits (N, C) C-contiguous, t (N,) int64 in range (0 on ignored rows), valid (N,) bool ->
    loss (N,) and lse (N,), float32."""
    n, c = logits.shape
    loss = cupy.empty(n, dtype=np.float32)
    lse = cupy.empty(n, dtype=np.float32)
    if n:
        kernel = build_raw(cupy, "tensorlite_cross_entropy_fwd", forward_source, logits.dtype)
        launch_rows(kernel, n, (logits, t, valid, loss, lse, np.int32(c)))
    return loss, lse


def cross_entropy_backward(cupy, logits, lse, t, scale):
    """The gradient (N, C) in the logits' dtype; scale (N,) float32 is each row's factor."""
    out = cupy.empty(logits.shape, dtype=logits.dtype)
    return grad_kernel(cupy)(logits, lse[:, None], t[:, None], scale[:, None], logits.shape[1], out)


# ---------------------------------------------------------------- the references, on any array module
def cross_entropy_reference(xp, logits, t, valid):
    """The forward kernel's algorithm in array operations: loss (N,) and lse (N,) in float32."""
    f = logits.astype(np.float32)
    top = f.max(axis=1)
    lse = top + xp.log(xp.exp(f - top[:, None]).sum(axis=1))
    picked = xp.take_along_axis(f, t[:, None], axis=1)[:, 0]
    return xp.where(valid, lse - picked, np.float32(0)), lse


# d loss_i / d x_ij = softmax_ij - [j == t_i], times the row's scale
def cross_entropy_backward_reference(xp, logits, lse, t, scale):
    """The backward kernel's algorithm in array operations: the gradient in the logits' dtype."""
    onehot = xp.arange(logits.shape[1]) == t[:, None]
    grad = scale[:, None] * (xp.exp(logits.astype(np.float32) - lse[:, None]) - onehot)
    return grad.astype(logits.dtype)
