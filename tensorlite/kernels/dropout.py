"""Dropout's keep-mask and its product with x in one ElementwiseKernel: y = x mask, mask = [u >= p] / (1 - p).

The uniform draw u stays the device generator's (``backend.generator(device).random``, CuPy's Philox
stream reseeded from the host PCG64 stream, in x's dtype), so the fused path draws exactly the numbers the
array path (``nn.fused.linear.dropout_mask``) draws: the same seed gives the same mask on either path, and
a checkpoint's generator state resumes both. What is fused is the rest: the comparison, the cast, the scale
and the product (four passes over the array become one, which writes y and the mask backward needs).
A mask drawn inside the kernel (cuRAND's device API) would save the pass that writes u, but it would be
another random stream than the array path's and the CPU's, so it is not done.

p and 1 / (1 - p) are rounded to x's dtype first, as NumPy does with a Python float against a float16 array,
so the kernel's mask is bit for bit the array path's. p = 1 keeps the array path (everything dropped: a
float16 u rounded up to 1.0 would otherwise keep an element with scale inf).
"""
import numpy as np

from .rows import build_once

def dropout_kernel(cupy):
    """ElementwiseKernel: kernel(x, u, p, scale) -> (y, mask), p and scale cast to x's type."""
    return build_once("tensorlite_dropout", lambda: cupy.ElementwiseKernel(
        "T x, T u, T p, T scale", "T y, T mask",
        "mask = (float)u >= (float)p ? scale : (T)0.0f; y = (T)((float)x * (float)mask);",
        "tensorlite_dropout"))


def dropout_forward(cupy, x, u, p):
    """y = x * mask and mask = [u >= p] / (1 - p), both in x's dtype (p < 1)."""
    return dropout_kernel(cupy)(x, u, p, 1 / (1 - p))


def dropout_reference(xp, x, u, p):
    """The kernel's algorithm in array operations (nn.fused.linear.dropout_mask's formula): y, mask."""
    mask = (u >= p).astype(x.dtype) * xp.asarray(1 / (1 - p), dtype=x.dtype)
    return x * mask, mask
