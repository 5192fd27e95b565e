"""Functions that make tensors: the ones a PyTorch beginner meets first.

Every one takes ``device=`` (and ``dtype=`` where it makes sense); floating
results default to float32 and integer ones to int64, as in PyTorch.
"""
import numpy as np

from . import backend
from .tensor import Tensor, default_float, int64, is_float


def _shape(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for n in size:
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"sizes must be non-negative integers, got {tuple(size)}")
    return tuple(int(n) for n in size)


def _make(fill, size, dtype, device, requires_grad, default=default_float):
    device = backend.normalize_device(device)
    dtype = np.dtype(dtype or default)
    with backend.device_context(device):
        data = fill(backend.xp_for(device), _shape(size), dtype)
    t = Tensor._wrap(data, device)
    return t.requires_grad_(requires_grad) if requires_grad else t


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor holding a copy of `data` (a list, scalar, array or tensor)."""
    if isinstance(data, Tensor):
        data = data.data
    t = Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)
    if t.data is data:
        t.data = t.data.copy()
    return t


def from_numpy(array):
    """A CPU tensor that shares memory with a NumPy array."""
    return Tensor._wrap(np.asarray(array), "cpu")


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return _make(lambda xp, s, d: xp.zeros(s, d), size, dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _make(lambda xp, s, d: xp.ones(s, d), size, dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False):
    return _make(lambda xp, s, d: xp.empty(s, d), size, dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    if dtype is None:
        dtype = default_float if isinstance(fill_value, float) else np.asarray(fill_value).dtype
        dtype = int64 if np.dtype(dtype).kind in "iu" else dtype
    return _make(lambda xp, s, d: xp.full(s, fill_value, d), (size,) if isinstance(size, int) else tuple(size),
                 dtype, device, requires_grad)


def zeros_like(t, dtype=None, device=None, requires_grad=False):
    return zeros(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad=False):
    return ones(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def empty_like(t, dtype=None, device=None, requires_grad=False):
    return empty(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def full_like(t, fill_value, dtype=None, device=None, requires_grad=False):
    return full(t.shape, fill_value, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """arange(end) or arange(start, end, step); int64 unless an argument is a float."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange(): step must be nonzero")
    floats = any(isinstance(v, float) for v in (start, end, step))
    default = default_float if floats else int64
    return _make(lambda xp, s, d: xp.arange(start, end, step).astype(d), (), dtype, device, requires_grad, default)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    return _make(lambda xp, s, d: xp.linspace(start, end, steps).astype(d), (), dtype, device, requires_grad)


def logspace(start, end, steps, base=10.0, dtype=None, device=None, requires_grad=False):
    return _make(lambda xp, s, d: xp.logspace(start, end, steps, base=base).astype(d), (), dtype, device,
                 requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    return _make(lambda xp, s, d: xp.eye(n, m, dtype=d), (), dtype, device, requires_grad)


def rand(*size, dtype=None, device=None, requires_grad=False):
    """Uniform on [0, 1), from the device's seeded generator."""
    return _make(lambda xp, s, d: backend.generator(_dev(device)).random(s, d), size, dtype, device, requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False):
    """Standard normal, from the device's seeded generator."""
    return _make(lambda xp, s, d: backend.generator(_dev(device)).normal(s, d), size, dtype, device, requires_grad)


def randint(low, high=None, size=None, dtype=None, device=None):
    """randint(high, size) or randint(low, high, size): integers in [low, high)."""
    if size is None:
        low, high, size = 0, low, high
    if size is None:
        raise TypeError("randint() needs a size, e.g. randint(10, (3,))")
    if high <= low:
        raise ValueError(f"randint(): high ({high}) must be greater than low ({low})")
    size = (size,) if isinstance(size, int) else tuple(size)
    return _make(lambda xp, s, d: backend.generator(_dev(device)).integers(low, high, s, d), size, dtype, device,
                 False, int64)


def randperm(n, dtype=None, device=None):
    dev = _dev(device)
    keys = backend.generator(dev).random((n,), np.float64)
    return _make(lambda xp, s, d: xp.argsort(keys).astype(d), (), dtype, device, False, int64)


def multinomial(probs, num_samples, replacement=False):
    """Draw indices from each row of non-negative weights (1-D or 2-D), like torch.multinomial.

    With replacement: inverse-CDF sampling. Without: the Gumbel-top-k trick
    (the k largest of log(w) + Gumbel noise are a sample without replacement).
    """
    w = probs.data if isinstance(probs, Tensor) else np.asarray(probs)
    device = probs.device if isinstance(probs, Tensor) else "cpu"
    xp = backend.xp_for(device)
    if w.ndim not in (1, 2):
        raise ValueError(f"multinomial(): probs must be 1-D or 2-D, got shape {w.shape}")
    rows = w[None] if w.ndim == 1 else w
    if not is_float(rows.dtype):
        rows = rows.astype(np.float64)
    if bool((rows < 0).any()) or not bool(xp.isfinite(rows).all()):
        raise ValueError("multinomial(): probabilities must be finite and non-negative")
    if bool((rows.sum(axis=1) <= 0).any()):
        raise ValueError("multinomial(): every row needs a positive total weight")
    n = rows.shape[1]
    if not replacement and num_samples > n:
        raise ValueError(f"multinomial(): cannot draw {num_samples} samples without replacement from {n} categories")
    gen = backend.generator(device)
    with backend.device_context(device):
        if replacement:
            cdf = xp.cumsum(rows.astype(np.float64), axis=1)
            cdf /= cdf[:, -1:]
            u = gen.random((rows.shape[0], num_samples), np.float64)
            out = xp.stack([xp.searchsorted(cdf[i], u[i], side="right") for i in range(rows.shape[0])])
            out = xp.minimum(out, n - 1)
        else:
            u = gen.random(rows.shape, np.float64)
            with np.errstate(divide="ignore"):
                keys = xp.log(rows.astype(np.float64)) - xp.log(-xp.log(xp.maximum(u, 1e-300)))
            out = xp.argsort(-keys, axis=1, kind="stable")[:, :num_samples] if xp is np else xp.argsort(-keys, axis=1)[:, :num_samples]
    out = out.astype(np.int64)
    return Tensor._wrap(out[0] if w.ndim == 1 else out, device)


def _dev(device):
    return backend.normalize_device(device)


def tril(t, diagonal=0):
    """Lower triangle (the rest zeroed); differentiable through masked_fill."""
    xp = t.xp
    keep = xp.tril(xp.ones(t.shape[-2:], dtype=bool), diagonal)
    return t.masked_fill(~keep, 0)


def triu(t, diagonal=0):
    xp = t.xp
    keep = xp.triu(xp.ones(t.shape[-2:], dtype=bool), diagonal)
    return t.masked_fill(~keep, 0)
