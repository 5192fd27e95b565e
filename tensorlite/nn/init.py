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
        raise ValueError(f"fan_in needs a weight with at least 2 dimensions, got shape {tuple(t.shape)}")
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


def eye_(t):
    """A 2-D tensor set to the identity matrix (ones on the diagonal)."""
    if t.ndim != 2:
        raise ValueError(f"eye_(): only tensors with 2 dimensions are supported, got shape {tuple(t.shape)}")
    with no_grad():
        t.data[...] = 0
        n = min(t.shape)
        t.data[range(n), range(n)] = 1
    return t


def fans(t):
    """(fan_in, fan_out) of a weight (out_features, in_features, *kernel), as PyTorch computes them."""
    if t.ndim < 2:
        raise ValueError(f"Fan in and fan out can not be computed for tensor with fewer than 2 dimensions "
                         f"(shape {tuple(t.shape)})")
    receptive = int(np.prod(t.shape[2:]))
    return t.shape[1] * receptive, t.shape[0] * receptive


def calculate_gain(nonlinearity, param=None):
    """The recommended scale of the weights for a nonlinearity (PyTorch's table)."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                        "conv_transpose3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"negative_slope {slope} not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def xavier_uniform_(t, gain=1.0):
    """U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio, 2010)."""
    fi, fo = fans(t)
    bound = gain * math.sqrt(6.0 / (fi + fo))
    return uniform_(t, -bound, bound)


def xavier_normal_(t, gain=1.0):
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fi, fo = fans(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fi + fo)))


def _kaiming_std(t, a, mode, nonlinearity):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fi, fo = fans(t)
    fan = fi if mode == "fan_in" else fo
    return calculate_gain(nonlinearity, a) / math.sqrt(fan) if fan else 0.0


def kaiming_uniform_(t, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """U(-b, b) with b = sqrt(3) * gain / sqrt(fan) (He et al., 2015)."""
    bound = math.sqrt(3.0) * _kaiming_std(t, a, mode, nonlinearity)
    return uniform_(t, -bound, bound)


def kaiming_normal_(t, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """N(0, std^2) with std = gain / sqrt(fan)."""
    return normal_(t, 0.0, _kaiming_std(t, a, mode, nonlinearity))


def trunc_normal_(t, mean=0.0, std=1.0, a=-2.0, b=2.0):
    """N(mean, std^2) restricted to [a, b]: samples outside are drawn again until all are inside."""
    if not a < b:
        raise ValueError(f"trunc_normal_(): need a < b, got a={a}, b={b}")
    gen, dtype = _random(t)
    xp = backend.xp_for(t.device)
    with backend.device_context(t.device):
        out = gen.normal(t.shape, dtype) * dtype.type(std) + dtype.type(mean)
        for _ in range(1000):
            bad = (out < a) | (out > b)
            if not bool(bad.any()):
                break
            redraw = gen.normal(t.shape, dtype) * dtype.type(std) + dtype.type(mean)
            out = xp.where(bad, redraw, out)
        return _fill(t, xp.clip(out, a, b))
