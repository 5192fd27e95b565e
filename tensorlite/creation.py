"""Functions that make tensors: the ones a PyTorch beginner meets first.

Every one takes ``device=`` (and ``dtype=`` where it makes sense); floating
results default to float32 and integer ones to int64, as in PyTorch. Random
ones draw from the device's seeded generator (``tensorlite.manual_seed``).
"""
import math
import numbers

import numpy as np

from . import backend
from .dtypes import KIND_DEFAULT, check_requires_grad, default_float, int64, is_float
from .tensor import Tensor


def _shape(size):
    """Accept zeros(2, 3) and zeros((2, 3)) alike. As in PyTorch: a size that is not an integer is a
    TypeError, a negative one a RuntimeError."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    if not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in size):
        raise TypeError(f"sizes must be integers, got {tuple(size)}")
    if any(n < 0 for n in size):
        raise RuntimeError(f"sizes must be non-negative integers, got {tuple(size)}")
    return tuple(int(n) for n in size)


def _count(name, n, what="steps"):
    """A count such as steps or n: an integer (else TypeError), non-negative (else RuntimeError), as in PyTorch."""
    if not isinstance(n, numbers.Integral):
        raise TypeError(f"{name}(): {what} must be a non-negative integer, got {n!r}")
    if n < 0:
        raise RuntimeError(f"{name}(): {what} must be a non-negative integer, got {n!r}")
    return int(n)


def _new(make, dtype, device, requires_grad=False, default=default_float):
    """Wrap the array ``make(xp, dtype, device)`` builds on the (normalized) device."""
    device = backend.normalize_device(device)
    dtype = np.dtype(default if dtype is None else dtype)
    check_requires_grad(requires_grad, dtype)
    with backend.device_context(device):
        array = make(backend.xp_for(device), dtype, device)
    return Tensor.wrap(array, device, requires_grad=bool(requires_grad))


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor holding a copy of `data` (a list, scalar, array or tensor)."""
    if isinstance(data, Tensor):
        data = data.data
    if hasattr(data, "dtype"):
        data = data.copy()  # never share memory with the caller's array
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def from_numpy(array):
    """A CPU tensor that shares memory with a NumPy array."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy() expects a numpy.ndarray, got {type(array).__name__}")
    return Tensor.wrap(array, "cpu")


def zeros(*size, dtype=None, device=None, requires_grad=False):
    shape = _shape(size)
    return _new(lambda xp, d, dev: xp.zeros(shape, d), dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    shape = _shape(size)
    return _new(lambda xp, d, dev: xp.ones(shape, d), dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False):
    """Uninitialized memory: the values are whatever was there."""
    shape = _shape(size)
    return _new(lambda xp, d, dev: xp.empty(shape, d), dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    """`size` filled with `fill_value`; the dtype follows the value's kind (True -> bool, 3 -> int64, 3.0 -> float32)."""
    shape = _shape((size,))
    if dtype is None:
        dtype = KIND_DEFAULT.get(np.asarray(fill_value).dtype.kind, default_float)
    return _new(lambda xp, d, dev: xp.full(shape, fill_value, d), dtype, device, requires_grad)


def zeros_like(t, dtype=None, device=None, requires_grad=False):
    return zeros(t.shape, dtype=t.dtype if dtype is None else dtype, device=device or t.device,
                 requires_grad=requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad=False):
    return ones(t.shape, dtype=t.dtype if dtype is None else dtype, device=device or t.device,
                requires_grad=requires_grad)


def empty_like(t, dtype=None, device=None, requires_grad=False):
    return empty(t.shape, dtype=t.dtype if dtype is None else dtype, device=device or t.device,
                 requires_grad=requires_grad)


def full_like(t, fill_value, dtype=None, device=None, requires_grad=False):
    return full(t.shape, fill_value, dtype=t.dtype if dtype is None else dtype, device=device or t.device,
                requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """arange(end) or arange(start, end, step), as PyTorch: float32 if an argument is a float, else int64.

    The length is ceil((end - start) / step). For an integer dtype the bounds and step are first
    truncated to integers (arange(0, 3.5, dtype=int64) is [0, 1, 2]); floats are computed in float64
    and then rounded to the dtype."""
    if end is None:
        start, end = 0, start
    start, end, step = (v.item() if hasattr(v, "item") else v for v in (start, end, step))
    default = int64 if all(isinstance(v, numbers.Integral) for v in (start, end, step)) else default_float
    if step == 0:
        raise RuntimeError("arange(): step must be nonzero")
    integral = not is_float(np.dtype(default if dtype is None else dtype))
    if integral:
        start, end, step = int(start), int(end), int(step)
        if step == 0:  # PyTorch raises a ValueError here, when a float step truncates to 0
            raise ValueError("arange(): step must be nonzero (a float step truncates to 0 for an integer dtype)")
    if (end - start) * step < 0:
        raise RuntimeError(f"arange({start}, {end}, {step}): upper bound and lower bound inconsistent with step sign")
    n = math.ceil((end - start) / step) if not integral else -((start - end) // step)
    return _new(lambda xp, d, dev: (start + xp.arange(n, dtype=np.int64 if integral else np.float64) * step).astype(d),
                dtype, device, requires_grad, default)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    steps = _count("linspace", steps)
    return _new(lambda xp, d, dev: xp.linspace(start, end, steps).astype(d), dtype, device, requires_grad)


def logspace(start, end, steps, base=10.0, dtype=None, device=None, requires_grad=False):
    steps = _count("logspace", steps)
    return _new(lambda xp, d, dev: xp.logspace(start, end, steps, base=base).astype(d), dtype, device,
                requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    n = _count("eye", n, "n")
    m = n if m is None else _count("eye", m, "m")
    return _new(lambda xp, d, dev: xp.eye(n, m, dtype=d), dtype, device, requires_grad)


def _float_dtype(name, dtype):
    if dtype is not None and not is_float(dtype):
        raise TypeError(f"{name}() makes floating-point tensors, got dtype={np.dtype(dtype)}")
    return dtype


def rand(*size, dtype=None, device=None, requires_grad=False):
    """Uniform on [0, 1)."""
    shape = _shape(size)
    return _new(lambda xp, d, dev: backend.generator(dev).random(shape, d), _float_dtype("rand", dtype), device,
                requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False):
    """Standard normal."""
    shape = _shape(size)
    return _new(lambda xp, d, dev: backend.generator(dev).normal(shape, d), _float_dtype("randn", dtype), device,
                requires_grad)


def randint(low, high=None, size=None, dtype=None, device=None):
    """randint(high, size) or randint(low, high, size): integers in [low, high)."""
    if size is None:
        low, high, size = 0, low, high
    if size is None:
        raise TypeError("randint() needs a size, e.g. randint(10, (3,))")
    if high <= low:
        raise RuntimeError(f"randint(): high ({high}) must be greater than low ({low}): [low, high) is empty")
    shape = _shape((size,))
    return _new(lambda xp, d, dev: backend.generator(dev).integers(low, high, shape, np.int64).astype(d), dtype,
                device, default=int64)


def randperm(n, dtype=None, device=None):
    """A random permutation of 0..n-1 (the order of n uniform keys)."""
    n = _count("randperm", n, "n")
    return _new(lambda xp, d, dev: xp.argsort(backend.generator(dev).random((n,), np.float64)).astype(d), dtype,
                device, default=int64)


def multinomial(probs, num_samples, replacement=False):
    """Draw indices from each row of non-negative weights (1-D or 2-D), like torch.multinomial.

    With replacement: inverse-CDF sampling. Without: the Gumbel-top-k trick
    (the k largest of log(w) + Gumbel noise are a sample without replacement).
    """
    w = probs.data if isinstance(probs, Tensor) else np.asarray(probs)
    device = probs.device if isinstance(probs, Tensor) else "cpu"
    xp = backend.xp_for(device)
    # PyTorch raises RuntimeError for each of these (TypeError only for a num_samples that is no integer)
    if w.ndim not in (1, 2):
        raise RuntimeError(f"multinomial(): probs must be 1-D or 2-D, got shape {tuple(w.shape)}")
    if not is_float(w.dtype):
        raise RuntimeError(f"multinomial(): probs must be floating point, got {w.dtype}; use probs.float()")
    if not isinstance(num_samples, numbers.Integral):
        raise TypeError(f"multinomial(): num_samples must be an integer, got {num_samples!r}")
    if num_samples <= 0:
        raise RuntimeError(f"multinomial(): num_samples must be positive, got {num_samples}")
    rows = (w[None] if w.ndim == 1 else w).astype(np.float64)
    if bool((rows < 0).any()) or not bool(xp.isfinite(rows).all()):
        raise RuntimeError("multinomial(): probabilities must be finite and non-negative")
    if bool((rows.sum(axis=1) <= 0).any()):
        raise RuntimeError("multinomial(): every row needs a positive total weight")
    n = rows.shape[1]
    if not replacement and num_samples > n:
        # (as in PyTorch, zero weights count: they are drawn last, once the others are used up)
        raise RuntimeError(f"multinomial(): cannot draw {num_samples} samples without replacement from {n} "
                           f"categories; pass replacement=True")
    gen = backend.generator(device)
    with backend.device_context(device):
        if replacement:
            cdf = xp.cumsum(rows, axis=1)
            cdf /= cdf[:, -1:]
            u = gen.random((rows.shape[0], num_samples), np.float64)
            out = xp.stack([xp.searchsorted(cdf[i], u[i], side="right") for i in range(rows.shape[0])])
            out = xp.minimum(out, n - 1)  # guards u rounding up to the last cdf value
        else:
            u = xp.maximum(gen.random(rows.shape, np.float64), 1e-300)
            with np.errstate(divide="ignore"):  # log(0) = -inf: zero weights are never picked
                keys = xp.log(rows) - xp.log(-xp.log(u))
            out = xp.argsort(-keys, axis=1)[:, :num_samples]
    out = out.astype(np.int64)
    return Tensor.wrap(out[0] if w.ndim == 1 else out, device)


def tril(t, diagonal=0):
    """Lower triangle (the rest zeroed; `diagonal` > 0 keeps more above the main one); differentiable."""
    return t.tril(diagonal)


def triu(t, diagonal=0):
    """Upper triangle (the rest zeroed); differentiable."""
    return t.triu(diagonal)
