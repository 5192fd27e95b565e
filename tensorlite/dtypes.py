"""Dtypes and the rules that pick one: every dtype decision of the package is made here.

``tensorlite.float32`` etc. are ``DType`` objects: they print as PyTorch's (``tensorlite.float32``), and
they stand for a NumPy dtype everywhere: ``==`` and ``hash`` are the NumPy dtype's (``t.dtype == np.float32``),
and NumPy and CuPy accept them as a dtype (``np.zeros(3, tensorlite.int64)``) through their ``.dtype``
attribute, the NumPy dtype itself. ``np.dtype(d)`` gives that NumPy dtype. The rules are PyTorch's where
the two libraries differ:
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



class DType:
    """A tensor's dtype, as PyTorch shows it (``tensorlite.float32``), standing for one NumPy dtype.

    NumPy reads ``__numpy_dtype__`` (NumPy >= 2.4; it is the fast path) or else ``.dtype`` of any object it
    is given as a dtype, so ``np.dtype(tensorlite.float32)``, ``a.astype(tensorlite.float32)`` and
    ``np.zeros(3, tensorlite.float32)`` all work, in CuPy too (it asks NumPy).
    Equality and hash are those of the NumPy dtype, so a DType and its NumPy dtype (or scalar type, or
    name: ``tensorlite.float32 == 'float32'``, as NumPy compares) are interchangeable, also as dict keys.
    Attributes NumPy's dtype has and PyTorch's has not (``kind``, ``type``, ``str``...) are forwarded.
    """
    __slots__ = ("dtype", "__numpy_dtype__", "name", "kind", "itemsize", "is_floating_point", "is_signed",
                 "is_complex")

    def __init__(self, numpy_dtype, name):
        d = np.dtype(numpy_dtype)
        self.dtype = self.__numpy_dtype__ = d
        self.name, self.kind, self.itemsize = name, d.kind, d.itemsize
        self.is_floating_point, self.is_signed, self.is_complex = d.kind == "f", d.kind in "if", d.kind == "c"

    def __repr__(self):
        return f"tensorlite.{self.name}"

    def __eq__(self, other):
        if isinstance(other, np.dtype):  # the common case first: it is on the hot paths
            return self.dtype == other
        if isinstance(other, DType):
            return self.dtype == other.dtype
        if other is None:  # np.dtype(None) would be float64
            return False
        try:
            return self.dtype == np.dtype(other)
        except TypeError:
            return NotImplemented

    def __hash__(self):
        return hash(self.dtype)

    def __getattr__(self, attr):  # only called for names not in __slots__: NumPy's dtype attributes
        if attr.startswith("__") or attr == "dtype":
            raise AttributeError(attr)
        return getattr(self.dtype, attr)

    def __reduce__(self):  # pickles as its name, and unpickles to the same object
        return as_dtype, (self.dtype.str,)


float16, float32, float64 = DType("float16", "float16"), DType("float32", "float32"), DType("float64", "float64")
int8, int16, int32, int64 = (DType(t, t) for t in ("int8", "int16", "int32", "int64"))
uint8, uint16, uint32, uint64 = (DType(t, t) for t in ("uint8", "uint16", "uint32", "uint64"))
bool_ = DType("bool", "bool")  # tensorlite.bool in the package; here `bool` stays Python's
long, double, half, short = int64, float64, float16, int16
default_float = float32
# No bfloat16: NumPy has no such dtype, so tensorlite.bfloat16 is absent (an AttributeError) rather than
# a float32 in disguise.

# The DType of each NumPy dtype: Tensor.dtype is one lookup here (it is read on every op).
DTYPE_OF = {d.dtype: d for d in (float16, float32, float64, int8, int16, int32, int64, uint8, uint16, uint32,
                                 uint64, bool_)}

# PyTorch's legacy tensor type names (Tensor.type(), tensorlite.LongTensor ...).
TENSOR_TYPE_NAMES = {float16: "HalfTensor", float32: "FloatTensor", float64: "DoubleTensor", int8: "CharTensor",
                     int16: "ShortTensor", int32: "IntTensor", int64: "LongTensor", uint8: "ByteTensor",
                     uint16: "UInt16Tensor", uint32: "UInt32Tensor", uint64: "UInt64Tensor", bool_: "BoolTensor"}


def as_dtype(dtype):
    """The DType for anything NumPy reads as a dtype (a DType, np.float32, 'int64', np.dtype('bool')...).
    A NumPy dtype without a PyTorch name (complex, big-endian) gets a DType named as NumPy names it."""
    d = np.dtype(dtype)
    found = DTYPE_OF.get(d)
    if found is None:
        found = DTYPE_OF[d] = DType(d, d.name)
    return found


def get_default_dtype():
    """The dtype Python floats become: float32, as in PyTorch (tensorlite has no set_default_dtype)."""
    return default_float

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
