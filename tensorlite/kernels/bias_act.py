"""Bias + activation, y = act(x + b) with b (D,) along the last dim of x (..., D): ReLU, GELU, GELU (tanh).

The MLP's first layer is x W^T + b, then the activation: three passes over the (N, 4C) hidden array
(the product, the bias add, the activation) become the product and one ElementwiseKernel, and the
backward dx = g act'(x + b) is one more (recomputing x + b from the saved x and b: no hidden array of
pre-activations is kept besides x); db = sum of dx over the rows is a CuPy sum in float32.

    relu:       y = max(h, 0)                        act' = 1 where h > 0 (0 at 0, as PyTorch)
    gelu:       y = h Phi(h), Phi(h) = (1 + erf(h / sqrt 2)) / 2       act' = Phi(h) + h phi(h)
    gelu_tanh:  y = h (1 + t) / 2, t = tanh(sqrt(2/pi) (h + 0.044715 h^3))
                act' = (1 + t) / 2 + h (1 - t^2) sqrt(2/pi) (1 + 3 0.044715 h^2) / 2

(tensorlite.ops.elementwise's ReLU and GELU, PyTorch's formulas.) The kernel computes h and act in float32
for float16 and float32 inputs; ``bias_act_reference`` does the same in array operations and is also the
array path of ``nn.fused.activation.BiasAct`` (in the input's precision for float64).
"""
import math

import numpy as np

from .. import backend
from .rows import build_once, compute_dtype

KINDS = {"relu": 0, "gelu": 1, "gelu_tanh": 2}

_PREAMBLE = r"""
// 0: relu, 1: gelu (erf), 2: gelu (tanh); h in float32
__device__ float tl_act(float h, int kind) {
  if (kind == 0) return (h > 0.0f || h != h) ? h : 0.0f;  // max(h, 0), and NaN stays NaN
  if (kind == 1) return 0.5f * h * (1.0f + erff(h * 0.7071067811865476f));
  float t = tanhf(0.7978845608028654f * (h + 0.044715f * h * h * h));
  return 0.5f * h * (1.0f + t);
}
__device__ float tl_act_grad(float h, int kind) {
  if (kind == 0) return h > 0.0f ? 1.0f : 0.0f;
  if (kind == 1) return 0.5f * (1.0f + erff(h * 0.7071067811865476f)) + h * expf(-0.5f * h * h) * 0.3989422804014327f;
  float t = tanhf(0.7978845608028654f * (h + 0.044715f * h * h * h));
  return 0.5f * (1.0f + t) + 0.5f * h * (1.0f - t * t) * 0.7978845608028654f * (1.0f + 3.0f * 0.044715f * h * h);
}
"""

def forward_kernel(cupy):
    """ElementwiseKernel: y = act(x + b); call as kernel(x, b, kind) with b broadcast along the last dim."""
    return build_once("tensorlite_bias_act_fwd", lambda: cupy.ElementwiseKernel(
        "T x, T b, int32 kind", "T y", "y = (T)tl_act((float)x + (float)b, kind);",
        "tensorlite_bias_act_fwd", preamble=_PREAMBLE))


def backward_kernel(cupy):
    """ElementwiseKernel: dx = g act'(x + b); call as kernel(g, x, b, kind)."""
    return build_once("tensorlite_bias_act_bwd", lambda: cupy.ElementwiseKernel(
        "T g, T x, T b, int32 kind", "T dx", "dx = (T)((float)g * tl_act_grad((float)x + (float)b, kind));",
        "tensorlite_bias_act_bwd", preamble=_PREAMBLE))


def bias_act_forward(cupy, x, b, kind):
    return forward_kernel(cupy)(x, b, KINDS[kind])


def bias_act_backward(cupy, g, x, b, kind):
    """dx in x's dtype and db (D,) in b's dtype."""
    dx = backward_kernel(cupy)(g, x, b, KINDS[kind])
    return dx, dx.reshape(-1, dx.shape[-1]).sum(axis=0, dtype=np.float32).astype(b.dtype)


# ---------------------------------------------------------------- the references, on any array module
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def _pre(x, b):
    ct = compute_dtype(x.dtype)
    return x.astype(ct, copy=False) + b.astype(ct, copy=False)


def bias_act_reference(xp, x, b, kind):
    """act(x + b) in array operations, h in float32 for float16 (in x's dtype otherwise); y in x's dtype."""
    h = _pre(x, b)  # a new array: the activations below may overwrite it
    if kind == "relu":
        y = xp.maximum(h, 0, out=h)
    elif kind == "gelu":
        y = h * (0.5 * (1 + backend.erf(h / math.sqrt(2))))
    else:
        y = 0.5 * h * (1 + xp.tanh(_SQRT_2_OVER_PI * (h + 0.044715 * h ** 3)))
    return y.astype(x.dtype, copy=False)


# relu: act' = [h > 0];  gelu: act' = Phi(h) + h phi(h);
# gelu_tanh: act' = (1 + t) / 2 + h (1 - t^2) sqrt(2/pi) (1 + 3 0.044715 h^2) / 2
def bias_act_backward_reference(xp, g, x, b, kind):
    """dx = g act'(x + b) in x's dtype, and db = the sum of dx over all leading dims, in b's dtype."""
    h = _pre(x, b)
    if kind == "relu":
        dx = g * (h > 0)  # a product, as the kernel's (np.where is 20x slower on a random mask)
    elif kind == "gelu":
        d = 0.5 * (1 + backend.erf(h / math.sqrt(2))) + h * xp.exp(-0.5 * h * h) / math.sqrt(2 * math.pi)
        dx = g * d
    else:
        t = xp.tanh(_SQRT_2_OVER_PI * (h + 0.044715 * h ** 3))
        dx = g * (0.5 * (1 + t) + 0.5 * h * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * h * h))
    dx = dx.astype(x.dtype, copy=False)
    return dx, dx.reshape(-1, dx.shape[-1]).sum(axis=0, dtype=compute_dtype(b.dtype)).astype(b.dtype, copy=False)
