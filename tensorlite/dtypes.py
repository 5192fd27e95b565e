"""Dtypes and the rules that pick one: every dtype decision of the package is made here.

tensorlite's dtypes are NumPy's (``tensorlite.float32 is numpy.dtype('float32')``), but the rules
are PyTorch's where the two differ:
- Python floats become float32 (the default float), not float64; Python ints int64, bools bool.
- A Python scalar next to a tensor takes the tensor's dtype unless it is of a higher kind
  (bool < int < float): float32 * 2.5 stays float32, int64 * 2.5 is float32.
- Integer or bool input to a float-valued function (exp, mean, /) becomes float32.
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
