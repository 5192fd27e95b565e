"""In-place initializers: tensorlite.nn.init.normal_(w, 0.0, 0.02) and friends.

They draw from the seeded generator of the tensor's own device, so
``tensorlite.manual_seed(s)`` makes a model's initial weights reproducible.
"""
import math

import numpy as np

from .. import backend
from ..autograd import no_grad


def _fill(t, values):
    with no_grad():
        t.data[...] = values.astype(t.dtype, copy=False)
    return t


def _random(t):
    dtype = t.dtype if t.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    return backend.generator(t.device), dtype


def normal_(t, mean=0.0, std=1.0):
    """Fill t with N(mean, std^2) samples."""
    if std < 0:
        raise ValueError(f"normal_(): std must be non-negative, got {std}")
    gen, dtype = _random(t)
    with backend.device_context(t.device):
        return _fill(t, gen.normal(t.shape, dtype) * dtype.type(std) + dtype.type(mean))


def uniform_(t, a=0.0, b=1.0):
    """Fill t with samples from U(a, b)."""
    if not a <= b:
        raise ValueError(f"uniform_(): need a <= b, got a={a}, b={b}")
    gen, dtype = _random(t)
    with backend.device_context(t.device):
        return _fill(t, gen.random(t.shape, dtype) * dtype.type(b - a) + dtype.type(a))


def zeros_(t):
    with no_grad():
        t.data[...] = 0
    return t


def ones_(t):
    with no_grad():
        t.data[...] = 1
    return t


def constant_(t, value):
    with no_grad():
        t.data[...] = value
    return t


def fan_in(t):
    """Inputs per output unit of a (out_features, in_features, ...) weight."""
    if t.ndim < 2:
        raise ValueError(f"fan_in needs a weight with at least 2 dimensions, got shape {t.shape}")
    return t.shape[1] * int(np.prod(t.shape[2:]))


def linear_default_(weight, bias=None):
    """PyTorch's nn.Linear init: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    (PyTorch phrases the weight part as kaiming_uniform_(a=sqrt(5)), which works out to the same bound.)
    """
    bound = 1 / math.sqrt(fan_in(weight)) if fan_in(weight) > 0 else 0.0
    uniform_(weight, -bound, bound)
    if bias is not None:
        uniform_(bias, -bound, bound)
    return weight
