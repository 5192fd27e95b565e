"""tensorlite: a small reverse-mode autograd engine on NumPy (CPU) and CuPy (CUDA)."""
from . import backend
from .autograd import Function, enable_grad, is_grad_enabled, no_grad, set_grad_enabled, unbroadcast
from .creation import (arange, empty, empty_like, eye, from_numpy, full, full_like, linspace, logspace,
                       multinomial, ones, ones_like, rand, randint, randn, randperm, tensor, tril, triu, zeros,
                       zeros_like)
from .gradcheck import GradcheckError, gradcheck
from .tensor import (Tensor, bool_, cat, chunk, double, float16, float32, float64, gelu, half, int8, int16,
                     int32, int64, long, matmul, split, stack, uint8, where)
from .backend import manual_seed, get_rng_state, set_rng_state
from . import nn, optim, profiler
from .serialization import CheckpointError, load, save


class cuda:
    """tensorlite.cuda.is_available() / device_count() / synchronize(), as in PyTorch."""
    is_available = staticmethod(backend.cuda_is_available)
    device_count = staticmethod(backend.cuda_device_count)

    @staticmethod
    def synchronize(device="cuda"):
        backend.synchronize(backend.normalize_device(device))


# functional spellings of the Tensor methods (tensorlite.exp(x), tensorlite.sum(x, dim), ...)
def _method(name):
    def f(x, *args, **kwargs):
        return getattr(x, name)(*args, **kwargs)
    f.__name__ = name
    f.__doc__ = f"tensorlite.{name}(x, ...) is x.{name}(...)"
    return f


for _name in ("exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu", "clamp", "maximum", "minimum", "sum",
              "mean", "var", "std", "max", "min", "amax", "amin", "logsumexp", "argmax", "argmin", "reshape",
              "permute", "transpose", "unsqueeze", "squeeze", "flatten", "masked_fill", "softmax", "log_softmax",
              "pow", "sign"):
    globals()[_name] = _method(_name)
del _name

__version__ = "0.1.0"
