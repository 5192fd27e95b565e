"""AdamW's update of one parameter as one elementwise CUDA kernel: reads g, p, m, v once, writes p, m, v once.

The same update as ``Adam._update`` (``tensorlite/optim/adamw.py``, for Adam and AdamW), which does it in several
in-place array operations and is the reference for this kernel:

    p = p * decay;  m = m + c1 (g - m);  v = beta2 v + c2 g^2;  p = p - step_size m / (sqrt(v) / bc2_sqrt + eps)

with decay = 1 - lr weight_decay, c1 = 1 - beta1, c2 = 1 - beta2, step_size = lr / (1 - beta1^t) and
bc2_sqrt = sqrt(1 - beta2^t). T is float32 or float64 (the parameter's dtype).
"""
from .rows import build_once


def adamw_kernel(cupy):
    """The kernel, built on first use with the given cupy module. Call it as
    ``kernel(g, decay, c1, beta2, c2, step_size, bc2_sqrt, eps, p, m, v)``: p, m, v are updated in place."""
    return build_once("tensorlite_adamw", lambda: cupy.ElementwiseKernel(
        "T g, T decay, T c1, T beta2, T c2, T step_size, T bc2_sqrt, T eps",
        "T p, T m, T v",
        """
        p = p * decay;
        m = m + c1 * (g - m);
        v = beta2 * v + c2 * (g * g);
        p = p - step_size * (m / (sqrt(v) / bc2_sqrt + eps));
        """,
        "tensorlite_adamw"))
