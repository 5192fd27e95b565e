"""CuPy kernels that fuse hot functions on the GPU; the NumPy path is their reference.

A kernel here computes what its caller's array-operation path computes (the path that runs on the CPU,
and on the GPU where the kernel does not apply), in one pass over memory instead of several. Each kernel
module holds a NumPy reference of the kernel's own algorithm (the same formulas, the same float32
statistics), which the CPU tests check against the unfused Function and against ``nn.reference``; the
CUDA tests (tests/test_fused_kernels*.py, marked cuda) check the kernels against both on a GPU, and
tests/test_gpu_static.py compiles every kernel's CUDA source with NVRTC (compute_80, compute_90) without one.
Kernels never import cupy at module import: the caller passes the array module in, and each kernel is
built once and cached. float16 inputs keep their statistics (mean, variance, max, sums) in float32.

- adamw.py       the Adam/AdamW update of one parameter (ElementwiseKernel), and of all parameters of a group
                 at once from flat buffers (``optim.AdamW(fused=True)``; reference: ``fused=False``)
- layer_norm.py  layer norm over the last dim with the residual add fused in, y = LN(x + r): forward and dx
                 one block per row (RawKernel), dw a ReductionKernel (reference: ``layer_norm_reference``;
                 used by ``nn.fused.norm.LayerNorm``, which ``nn.LayerNorm(x, residual)`` applies)
- softmax.py     scale + causal mask + softmax of attention scores in one row kernel, and its backward
                 dS = scale P (dP - rowsum(dP P)) (reference: ``causal_softmax_reference``; used by
                 ``nn.fused.attention`` when there is no attn_mask)
- cross_entropy.py  per-row logsumexp and loss in one row kernel; the gradient recomputed in backward by one
                 ElementwiseKernel (reference: ``cross_entropy_reference``; used by ``nn.fused.loss.CrossEntropy``
                 without class weights and label smoothing)
- bias_act.py    bias + ReLU / GELU (exact erf, or tanh) forward and backward, ElementwiseKernels
                 (reference: ``bias_act_reference``; used by ``nn.fused.activation.BiasAct``, which
                 ``nn.FeedForward`` applies on CUDA)
- dropout.py     dropout's mask (from the generator's uniform draw, the same stream as the NumPy path) and
                 its product with x in one ElementwiseKernel (reference: ``dropout_reference``; used by
                 ``nn.fused.linear.Dropout``)

None of these has run on a GPU yet: they are unverified, and OFF by default. ``TENSORLITE_FUSED=1`` in the
environment turns them all on (or ``fused=True`` where a caller takes it, as AdamW). A kernel is turned on
by default once it has passed its tests on a GPU and measured faster there.
"""
import os

import numpy as np

from .. import backend

FUSED_DTYPES = (np.dtype(np.float16), np.dtype(np.float32))  # what the row and activation kernels take


def fused_by_default():
    """Whether the fused CUDA kernels are used where the caller does not say: TENSORLITE_FUSED=1."""
    return os.environ.get("TENSORLITE_FUSED", "0") == "1"


def use_fused(*arrays):
    """The one decision of every fused Function: take the CUDA kernel for these arrays? Only with
    TENSORLITE_FUSED=1, and only when every array is a CuPy array of float16 or float32 (None skipped)."""
    if not fused_by_default():
        return False
    arrays = [a for a in arrays if a is not None]
    return bool(arrays) and all(backend.get_array_module(a) is not np and a.dtype in FUSED_DTYPES for a in arrays)
