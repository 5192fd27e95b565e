"""tensorlite: a small reverse-mode autograd engine on NumPy (CPU) and CuPy (CUDA).

The public surface, written out by hand. Where things are (see docs/autograd.md, "Where things are"):
the engine is autograd.py (Function, the graph walk), tensor.py (+ tensor_*.py mixins) and ops/ (the
primitive Functions); nn/ and optim/ are built on the public Tensor API only.
"""
# backend first: it sets OpenBLAS's thread timeout, which OpenBLAS reads once, when NumPy loads it.
from . import backend as _backend
from .autograd import Function, enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .dtypes import (bool_, double, float16, float32, float64, get_default_dtype, half, int8, int16, int32, int64,
                     long, short, uint8, uint16, uint32, uint64)
# PyTorch's short names; they shadow the builtins in this namespace only (as torch.float, torch.int do).
from .dtypes import DType as dtype, bool_ as bool, float32 as float, int32 as int
from .tensor import Tensor
from .tensor_types import (BoolTensor, ByteTensor, CharTensor, DoubleTensor, FloatTensor, HalfTensor, IntTensor,
                           LongTensor, ShortTensor)
from .printing import Size, set_printoptions
from .functions import (abs, add, all, allclose, amax, amin, any, argmax, argmin, argsort, cat, ceil, chunk, clamp,
                        clip, cos, cumsum, div, divide, eq, equal, erf, exp, expm1, flatten, floor, gather, ge, gelu,
                        greater, greater_equal, gt, isclose, isfinite, isinf, isnan, le, less, less_equal, log,
                        log10, log1p, log2, log_softmax, logical_and, logical_not, logical_or, logical_xor,
                        logsumexp, lt, masked_fill, matmul, max, maximum, mean, min, minimum, mul, multiply, ne, neg,
                        negative, norm, not_equal, permute, pow, prod, reciprocal, relu, reshape, round, rsqrt, sigmoid,
                        sign, sin, softmax, sort, split, sqrt, square, squeeze, stack, std, sub, subtract, sum, tanh,
                        topk, transpose, true_divide, trunc, unsqueeze, var, where)
from .functions import flip, roll
from .creation import (arange, empty, empty_like, eye, from_numpy, full, full_like, linspace, logspace,
                       multinomial, ones, ones_like, rand, randint, randn, randperm, tensor, tril, triu, zeros,
                       zeros_like)
from .backend import get_rng_state, manual_seed, set_rng_state
from .gradcheck import GradcheckError, gradcheck
from .serialization import CheckpointError, load, save
from . import amp, backends, nn, optim, profiler
from .amp import autocast, get_autocast_dtype, is_autocast_enabled
from . import viz


class cuda:
    """tensorlite.cuda.is_available() / device_count() / synchronize(), as in PyTorch."""
    is_available = staticmethod(_backend.cuda_is_available)
    device_count = staticmethod(_backend.cuda_device_count)

    @staticmethod
    def synchronize(device="cuda"):
        _backend.synchronize(_backend.normalize_device(device))


_MATMUL_PRECISIONS = ("highest", "high", "medium")


def set_float32_matmul_precision(precision):
    """'highest': float32 products in float32; 'high' or 'medium': TF32 on CUDA (as PyTorch's on NVIDIA GPUs)."""
    if precision not in _MATMUL_PRECISIONS:
        raise RuntimeError(f"Invalid precision {precision!r}: expected one of {', '.join(_MATMUL_PRECISIONS)}")
    _backend.set_tf32(precision != "highest")


def get_float32_matmul_precision():
    return "high" if _backend.tf32_enabled() else "highest"


__version__ = "0.1.0"
