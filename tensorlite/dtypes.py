"""Dtypes and the rules that pick one: every dtype decision of the package is made here.

tensorlite's dtypes are NumPy's (``tensorlite.float32 is numpy.dtype('float32')``), but the rules
are PyTorch's where the two differ:
- Python floats become float32 (the default float), not float64; Python ints int64, bools bool.
- A Python scalar next to a tensor takes the tensor's dtype unless it is of a higher kind
  (bool < int < float): float32 * 2.5 stays float32, int64 * 2.5 is float32.
- Integer or bool input to a float-valued function (exp, mean, /) becomes float32.
- Operands meet by ``result_type``: the highest kind wins; within a kind, tensors with dimensions
  decide over 0-d tensors, which decide over Python scalars (float32 tensor + 0-d float64 tensor
  is float32, int64 tensor + 0-d float64 tensor is float64).
"""
import numbers

import numpy as np

float16, float32, float64 = np.dtype("float16"), np.dtype("float32"), np.dtype("float64")
int8, int16, int32, int64, uint8 = (np.dtype(t) for t in ("int8", "int16", "int32", "int64", "uint8"))
bool_ = np.dtype("bool")
long, double, half = int64, float64, float16
default_float = float32

# Each kind of Python value (b: bool, i: int, f: float) ranks bool < int < float and has a default dtype.
KIND_RANK = {"b": 0, "u": 1, "i": 1, "f": 2}
KIND_DEFAULT = {"b": bool_, "u": int64, "i": int64, "f": default_float}


def is_float(dtype):
    return np.dtype(dtype).kind == "f"


def scalar_dtype(value, tensor_dtype):
    """The dtype a Python number takes as the other operand of a tensor of `tensor_dtype`."""
    if not isinstance(value, numbers.Real):
        raise TypeError(f"complex numbers are not supported (got {value!r})")
    kind = "b" if isinstance(value, bool) else "i" if isinstance(value, numbers.Integral) else "f"
    return tensor_dtype if KIND_RANK[kind] <= KIND_RANK.get(tensor_dtype.kind, 2) else KIND_DEFAULT[kind]


def kind_rank(dtype):
    """0 for bool, 1 for integers, 2 for floats: the categories of PyTorch's promotion."""
    return KIND_RANK.get(np.dtype(dtype).kind, 2)


def promote_types(a, b):
    """The dtype two dtypes meet in: a higher category wins outright (int64 with float16 is float16, where
    NumPy says float64); within one category the wider, as NumPy (uint8 with int8 is int16)."""
    a, b = np.dtype(a), np.dtype(b)
    ra, rb = kind_rank(a), kind_rank(b)
    if ra != rb:
        return a if ra > rb else b
    return np.promote_types(a, b)


def _python_dtype(value):
    if not isinstance(value, numbers.Real):
        raise TypeError(f"complex numbers are not supported (got {value!r})")
    return bool_ if isinstance(value, bool) else int64 if isinstance(value, numbers.Integral) else default_float


def result_type(*operands):
    """The dtype PyTorch computes `operands` (tensors, or anything with a dtype, and Python numbers) in.

    Three tiers, in order of priority: tensors with dimensions, 0-d tensors, Python scalars (each of the
    default dtype of its kind). Each tier promotes within itself; a lower tier changes the result only
    when it brings a higher category (bool < int < float)."""
    if len(operands) == 2 and hasattr(operands[0], "dtype") and hasattr(operands[1], "dtype") and \
            operands[0].dtype == operands[1].dtype:
        return np.dtype(operands[0].dtype)  # the common case: nothing to promote
    tiers = ([], [], [])
    for x in operands:
        if hasattr(x, "dtype"):
            tiers[0 if x.ndim else 1].append(np.dtype(x.dtype))
        else:
            tiers[2].append(_python_dtype(x))
    best = None
    for tier in tiers:
        if not tier:
            continue
        d = tier[0]
        for other in tier[1:]:
            d = promote_types(d, other)
        if best is None:
            best = d
        elif kind_rank(d) > kind_rank(best):
            best = promote_types(best, d)
    return best


def can_cast(src, dst):
    """Whether an in-place result of dtype `src` may be stored into a tensor of dtype `dst`: not into a lower
    category (a float into an integer tensor, an integer into a bool one), as PyTorch."""
    return kind_rank(src) <= kind_rank(dst)


def torch_name(dtype):
    """PyTorch's scalar-type name of a dtype (Float, Long...), for its in-place cast error."""
    names = {"float32": "Float", "float64": "Double", "float16": "Half", "int64": "Long", "int32": "Int",
             "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}
    return names.get(np.dtype(dtype).name, np.dtype(dtype).name)


def result_float(a, b):
    """The float dtype two operands meet in, or None when neither is a float: a float meets an integer
    in the float's dtype (PyTorch's rule, not NumPy's float64), two floats in the wider one."""
    fa, fb = is_float(a), is_float(b)
    if fa and fb:
        return np.promote_types(a, b)
    return a if fa else b if fb else None


def check_requires_grad(requires_grad, dtype):
    """Only floating-point tensors can require gradients (integers have no derivative)."""
    if requires_grad and not is_float(dtype):
        raise RuntimeError(f"only floating-point tensors can require gradients, got dtype {dtype}")
