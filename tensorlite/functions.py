"""Functions of tensors that are not methods of one: cat, stack, where; and the functional spellings
of the methods (``tensorlite.exp(x)`` is ``x.exp()``), as PyTorch has both.
"""
import builtins

from ._checks import wrap_dim
from .ops import elementwise as E, shape as S
from .tensor import Tensor


# ---------------------------------------------------------------- functions of several tensors
def matmul(a, b):
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError("matmul() takes two tensors")
    return a.matmul(b)


def where(condition, a, b):
    """where(cond, a, b): a where cond is true, else b; differentiable in a and b."""
    if isinstance(a, Tensor):
        ref = a
    elif isinstance(b, Tensor):
        ref = b
    elif isinstance(condition, Tensor):  # where(cond, 1.0, 0.0): the numbers take their kind's default dtype
        ref = condition
    else:
        raise TypeError("where() needs a tensor among condition, a and b")
    cond = ref._array(condition)
    if cond.dtype != bool:
        raise TypeError(f"where(): condition must be bool, got {cond.dtype}")
    a, b = ref._other(a)._promote(ref._other(b))
    return E.Where.apply(a, b, cond=cond)


def _check_same(tensors, name, empty_error):
    tensors = list(tensors)
    if not tensors:  # (PyTorch: a ValueError from cat, a RuntimeError from stack)
        raise empty_error(f"{name}() needs a non-empty sequence of tensors")
    if not builtins.all(isinstance(t, Tensor) for t in tensors):  # (all is shadowed below)
        raise TypeError(f"{name}() takes a sequence of tensors")
    return tensors


def cat(tensors, dim=0):
    """Join tensors along `dim`. As in PyTorch, 1-D empty tensors (shape (0,)) are skipped, whatever the
    others' shapes (they still take part in the result's dtype)."""
    tensors = _check_same(tensors, "cat", ValueError)
    for i, t in enumerate(tensors):
        if t.ndim == 0:
            raise RuntimeError(f"cat(): the tensor at position {i} is zero-dimensional and cannot be "
                               f"concatenated; use stack() or unsqueeze it first")
    kept = [t for t in tensors if t.shape != (0,)]
    if not kept:
        return S.Cat.apply(*tensors, dim=0)
    first = kept[0]
    d = wrap_dim(dim, first.ndim, "cat")
    for t in kept[1:]:
        if t.ndim != first.ndim:
            raise RuntimeError(f"cat(): tensors must have the same number of dimensions, got shapes "
                               f"{tuple(first.shape)} and {tuple(t.shape)}")
        if t.shape[:d] + t.shape[d + 1:] != first.shape[:d] + first.shape[d + 1:]:
            raise RuntimeError(f"cat(): shapes {tuple(first.shape)} and {tuple(t.shape)} differ outside "
                               f"dimension {dim}")
    return S.Cat.apply(*tensors, dim=d)


def stack(tensors, dim=0):
    tensors = _check_same(tensors, "stack", RuntimeError)
    for t in tensors[1:]:
        if t.shape != tensors[0].shape:
            raise RuntimeError(f"stack(): all tensors need the same shape, got {tuple(tensors[0].shape)} and "
                               f"{tuple(t.shape)}")
    return S.Stack.apply(*tensors, dim=wrap_dim(dim, tensors[0].ndim + 1))


def split(t, split_size_or_sections, dim=0):
    return t.split(split_size_or_sections, dim)


def chunk(t, chunks, dim=0):
    return t.chunk(chunks, dim)


def gelu(x, approximate="none"):
    return x.gelu(approximate)


# ---------------------------------------------------------------- binary functions: either side may be a number
def _binary(name):
    def f(a, b, **kwargs):
        if not isinstance(a, Tensor):
            if not isinstance(b, Tensor):
                raise TypeError(f"{name}() needs at least one tensor argument, got {type(a).__name__} and "
                                f"{type(b).__name__}")
            a = b._other(a)  # a number or array on the left: a tensor with the dtype the operator would give it
        return getattr(a, name)(b, **kwargs)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"tensorlite.{name}(a, b, ...) is a.{name}(b, ...); a may be a number when b is a tensor"
    return f


add, sub, subtract, mul, multiply, div, divide, true_divide, pow, maximum, minimum = (
    _binary(n) for n in ("add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide", "pow", "maximum",
                         "minimum"))
eq, ne, lt, le, gt, ge = (_binary(n) for n in ("eq", "ne", "lt", "le", "gt", "ge"))
not_equal, less, less_equal, greater, greater_equal = (
    _binary(n) for n in ("not_equal", "less", "less_equal", "greater", "greater_equal"))
logical_and, logical_or, logical_xor = (_binary(n) for n in ("logical_and", "logical_or", "logical_xor"))
equal, isclose, allclose = (_binary(n) for n in ("equal", "isclose", "allclose"))


# ---------------------------------------------------------------- tensorlite.f(x, ...) is x.f(...)
# (sum, max, min, abs, pow, round, all and any shadow Python's built-ins from here on; this module uses them
# only through `builtins`.)
def _method(name):
    def f(x, *args, **kwargs):
        return getattr(x, name)(*args, **kwargs)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"tensorlite.{name}(x, ...) is x.{name}(...)"
    return f


exp, log, sqrt, rsqrt, abs, tanh, sigmoid, relu, sign = (
    _method(n) for n in ("exp", "log", "sqrt", "rsqrt", "abs", "tanh", "sigmoid", "relu", "sign"))
sin, cos, erf, log1p, expm1, log2, log10, reciprocal, square, neg, negative = (
    _method(n) for n in ("sin", "cos", "erf", "log1p", "expm1", "log2", "log10", "reciprocal", "square", "neg",
                         "negative"))
floor, ceil, round, trunc = (_method(n) for n in ("floor", "ceil", "round", "trunc"))
clamp, clip, masked_fill = (_method(n) for n in ("clamp", "clip", "masked_fill"))
sum, mean, var, std, max, min, amax, amin, logsumexp, argmax, argmin, prod, cumsum = (
    _method(n) for n in ("sum", "mean", "var", "std", "max", "min", "amax", "amin", "logsumexp", "argmax", "argmin",
                         "prod", "cumsum"))
gather, sort, argsort, topk = (_method(n) for n in ("gather", "sort", "argsort", "topk"))
isnan, isinf, isfinite, logical_not = (_method(n) for n in ("isnan", "isinf", "isfinite", "logical_not"))
all, any, norm = _method("all"), _method("any"), _method("norm")
reshape, permute, transpose, unsqueeze, squeeze, flatten, flip, roll = (
    _method(n) for n in ("reshape", "permute", "transpose", "unsqueeze", "squeeze", "flatten", "flip", "roll"))
softmax, log_softmax = _method("softmax"), _method("log_softmax")
