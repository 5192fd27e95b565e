"""tensorlite: a small reverse-mode autograd engine on NumPy (CPU) and CuPy (CUDA).

The public surface, written out by hand. Where things are (see docs/autograd.md, "Where things are"):
the engine is autograd.py (Function, the graph walk), tensor.py (+ tensor_*.py mixins) and ops/ (the
primitive Functions); nn/ and optim/ are built on the public Tensor API only.
"""
# backend first: it sets OpenBLAS's thread timeout, which OpenBLAS reads once, when NumPy loads it.
from . import backend as _backend
from .autograd import Function, enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .dtypes import (bool_, double, float16, float32, float64, half, int8, int16, int32, int64, long,
                     uint8)
from .tensor import Tensor
from .functions import (abs, amax, amin, argmax, argmin, cat, chunk, clamp, exp, flatten, gelu, log,
                        log_softmax, logsumexp, masked_fill, matmul, max, maximum, mean, min, minimum, permute,
                        pow, relu, reshape, sigmoid, sign, softmax, split, sqrt, squeeze, stack, std, sum, tanh,
                        transpose, unsqueeze, var, where)
from .creation import (arange, empty, empty_like, eye, from_numpy, full, full_like, linspace, logspace,
                       multinomial, ones, ones_like, rand, randint, randn, randperm, tensor, tril, triu, zeros,
                       zeros_like)
from .backend import get_rng_state, manual_seed, set_rng_state
from .gradcheck import GradcheckError, gradcheck
from .serialization import CheckpointError, load, save
from . import nn, optim, profiler
from . import viz


class cuda:
    """tensorlite.cuda.is_available() / device_count() / synchronize(), as in PyTorch."""
    is_available = staticmethod(_backend.cuda_is_available)
    device_count = staticmethod(_backend.cuda_device_count)

    @staticmethod
    def synchronize(device="cuda"):
        _backend.synchronize(_backend.normalize_device(device))


__version__ = "0.1.0"
