"""class Tensor: one array (NumPy or CuPy) plus what autograd needs.

A Tensor is thin: every differentiable method forwards to a Function in
``tensorlite.ops``; comparisons and other non-differentiable queries work on
the array directly and return tensors that never require grad.
"""
import numbers
from collections import namedtuple

import numpy as np

from . import autograd, backend
from .ops import elementwise as E, linalg as L, reduce as R, shape as S

float16, float32, float64 = np.dtype("float16"), np.dtype("float32"), np.dtype("float64")
int8, int16, int32, int64, uint8 = (np.dtype(t) for t in ("int8", "int16", "int32", "int64", "uint8"))
bool_ = np.dtype("bool")
long, double, half = int64, float64, float16
default_float = float32

ReturnTypes = namedtuple("ReturnTypes", ["values", "indices"])


def is_float(dtype):
    return np.dtype(dtype).kind == "f"


# Python values of each kind (bool < int < float) get PyTorch's default dtype of that kind.
_KIND_RANK = {"b": 0, "u": 1, "i": 1, "f": 2}
_KIND_DEFAULT = {"b": bool_, "u": int64, "i": int64, "f": default_float}


def _to_array(data, dtype=None, device=None):
    """`data` (a Python scalar, nested list, NumPy or CuPy array) as a C-contiguous array on `device`.

    Arrays keep their dtype; Python values take the default of their kind (floats -> float32).
    """
    if not hasattr(data, "dtype"):
        data = np.asarray(data)
        if data.dtype.kind not in _KIND_DEFAULT:
            raise TypeError(f"cannot make a tensor from {data.dtype} data (got {type(data).__name__})")
        dtype = _KIND_DEFAULT[data.dtype.kind] if dtype is None else dtype
    device = backend.device_of(data) if device is None else backend.normalize_device(device)
    data = backend.to_device(data, device)
    with backend.device_context(device):
        return backend.xp_for(device).asarray(data, dtype=dtype, order="C")


def _check_requires_grad(requires_grad, dtype):
    if requires_grad and not is_float(dtype):
        raise RuntimeError(f"only floating-point tensors can require gradients, got dtype {dtype}")


class Tensor:
    __slots__ = ("data", "grad", "requires_grad", "device", "_ctx", "_retains_grad", "__weakref__")
    __array_priority__ = 1000  # make ndarray <op> Tensor defer to Tensor's reflected operators

    def __init__(self, data, dtype=None, device=None, requires_grad=False):
        """Wrap `data` (list, scalar, array or Tensor); an array already right for dtype/device is not copied."""
        data = _to_array(data.data if isinstance(data, Tensor) else data, dtype, device)
        _check_requires_grad(requires_grad, data.dtype)
        self.data, self.device, self.requires_grad = data, backend.device_of(data), bool(requires_grad)
        self.grad, self._ctx, self._retains_grad = None, None, False

    @classmethod
    def _wrap(cls, array, device, requires_grad=False):
        """Make a tensor around an existing array without copying or checking it."""
        t = cls.__new__(cls)
        t.data, t.device, t.requires_grad = array, device, requires_grad
        t.grad, t._ctx, t._retains_grad = None, None, False
        return t

    # ------------------------------------------------------------ properties
    @property
    def xp(self):
        return backend.xp_for(self.device)

    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def is_leaf(self):
        return self._ctx is None

    @property
    def grad_fn(self):
        return self._ctx

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    @property
    def mT(self):
        return self.transpose(-2, -1)

    def dim(self):
        return self.ndim

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self):
        return int(self.data.size)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self):
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        extra = ""
        if self.device != "cpu":
            extra += f", device='{self.device}'"
        if self.dtype not in (float32, int64, bool_):
            extra += f", dtype={self.dtype}"
        if self._ctx is not None:
            extra += f", grad_fn=<{type(self._ctx).__name__}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # ------------------------------------------------------------ host access
    # Each read first runs the range checks queued on a GPU (backend.check_values), so an error
    # raised late still comes before any value computed from bad indices is seen.
    def numpy(self):
        """A NumPy copy on the host (a copy also on the CPU, so it never aliases a graph's array)."""
        backend.run_deferred_checks()
        return self.data.copy() if self.device == "cpu" else backend.to_numpy(self.data)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        backend.run_deferred_checks()
        return self.data.reshape(()).item() if self.device == "cpu" else backend.to_numpy(self.data).reshape(()).item()

    def tolist(self):
        return backend.to_numpy(self.data).tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(f"the truth value of a tensor with {self.data.size} elements is ambiguous; use .any() or .all()")
        return bool(self.item())

    def __index__(self):
        if is_float(self.dtype) or self.data.size != 1:
            raise TypeError("only integer tensors of a single element can be used as an index")
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        out = backend.to_numpy(self.data)
        if dtype is not None:
            return out.astype(dtype)
        return out.copy() if copy else out

    # ------------------------------------------------------------ autograd
    def backward(self, gradient=None, retain_graph=False):
        autograd.backward(self, gradient, retain_graph)

    def retain_grad(self):
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        self._retains_grad = True

    def requires_grad_(self, requires_grad=True):
        _check_requires_grad(requires_grad, self.dtype)
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("you can only change requires_grad of leaf tensors; use detach()")
        self.requires_grad = requires_grad
        return self

    def detach(self):
        """The same array, cut from the graph (shares memory, like PyTorch)."""
        return Tensor._wrap(self.data, self.device)

    def clone(self):
        return self * 1 if self.requires_grad else Tensor._wrap(self.data.copy(), self.device)

    def zero_(self):
        self.data[...] = 0
        return self

    # ------------------------------------------------------------ devices and dtypes
    def to(self, *args, dtype=None, device=None):
        """to(device), to(dtype), or to(device, dtype); differentiable, like PyTorch."""
        for a in args:
            if isinstance(a, str) or a is None:
                device = a
            else:
                dtype = a
        out = self
        if dtype is not None and np.dtype(dtype) != self.dtype:
            out = E.Cast.apply(out, dtype=np.dtype(dtype)) if out.requires_grad and is_float(dtype) \
                else Tensor._wrap(out.data.astype(dtype), out.device)
        if device is not None:
            device = backend.normalize_device(device)
            if device != out.device:
                out = _ToDevice.apply(out, device=device) if out.requires_grad else \
                    Tensor._wrap(backend.to_device(out.data, device), device)
        return out

    def cpu(self):
        return self.to("cpu")

    def cuda(self, index=0):
        return self.to(f"cuda:{index}")

    def float(self):
        return self.to(float32)

    def double(self):
        return self.to(float64)

    def half(self):
        return self.to(float16)

    def long(self):
        return self.to(int64)

    def int(self):
        return self.to(int32)

    def bool(self):
        return self.to(bool_)

    def type(self, dtype):
        return self.to(dtype)

    # ------------------------------------------------------------ operators
    def _other(self, other):
        """`other` (Tensor, Python scalar, list or array) as a tensor on this device.

        A Python scalar takes this tensor's dtype unless it is of a higher kind (bool < int < float);
        then it takes that kind's default: float32 * 2.5 stays float32, int64 * 2.5 is float32 (PyTorch's rule).
        """
        if isinstance(other, Tensor):
            if other.device != self.device:
                raise RuntimeError(f"expected both tensors on the same device, but found {self.device} and "
                                   f"{other.device}; move one with .to({self.device!r}) or .to({other.device!r})")
            return other
        if isinstance(other, numbers.Number):
            if not isinstance(other, numbers.Real):
                raise TypeError(f"complex numbers are not supported (got {other!r})")
            kind = "b" if isinstance(other, bool) else "i" if isinstance(other, numbers.Integral) else "f"
            dtype = self.dtype if _KIND_RANK[kind] <= _KIND_RANK.get(self.dtype.kind, 2) else _KIND_DEFAULT[kind]
            return Tensor._wrap(self.xp.asarray(other, dtype=dtype), self.device)
        return Tensor(other, device=self.device)

    def _binary(self, fn, other, reverse=False):
        other = self._other(other)
        a, b = (other, self) if reverse else (self, other)
        a, b = _promote(a, b)
        return fn.apply(a, b)

    def __add__(self, other):
        return self._binary(E.Add, other)

    def __radd__(self, other):
        return self._binary(E.Add, other, reverse=True)

    def __sub__(self, other):
        return self._binary(E.Sub, other)

    def __rsub__(self, other):
        return self._binary(E.Sub, other, reverse=True)

    def __mul__(self, other):
        return self._binary(E.Mul, other)

    def __rmul__(self, other):
        return self._binary(E.Mul, other, reverse=True)

    def __truediv__(self, other):
        if not is_float(self.dtype) and not (isinstance(other, Tensor) and is_float(other.dtype)):
            return self.to(default_float)._binary(E.Div, other)  # int / int is a float, as in PyTorch
        return self._binary(E.Div, other)

    def __rtruediv__(self, other):
        if not is_float(self.dtype):
            return self.to(default_float)._binary(E.Div, other, reverse=True)
        return self._binary(E.Div, other, reverse=True)

    def __floordiv__(self, other):
        return Tensor._wrap(self.data // self._other(other).data, self.device)

    def __mod__(self, other):
        return Tensor._wrap(self.data % self._other(other).data, self.device)

    def __pow__(self, other):
        return self._binary(E.Pow, other)

    def __rpow__(self, other):
        return self._binary(E.Pow, other, reverse=True)

    def __matmul__(self, other):
        return matmul(self, self._other(other))  # x @ ndarray works, like x * ndarray and ndarray @ x

    def __rmatmul__(self, other):
        return matmul(self._other(other), self)

    def __neg__(self):
        return E.Neg.apply(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return self.abs()

    def _compare(self, op, other):
        return Tensor._wrap(op(self.data, self._other(other).data), self.device)

    def __eq__(self, other):
        return self._compare(lambda a, b: a == b, other)

    def __ne__(self, other):
        return self._compare(lambda a, b: a != b, other)

    def __lt__(self, other):
        return self._compare(lambda a, b: a < b, other)

    def __le__(self, other):
        return self._compare(lambda a, b: a <= b, other)

    def __gt__(self, other):
        return self._compare(lambda a, b: a > b, other)

    def __ge__(self, other):
        return self._compare(lambda a, b: a >= b, other)

    def __invert__(self):
        return Tensor._wrap(~self.data, self.device)

    def __and__(self, other):
        return self._compare(lambda a, b: a & b, other)

    def __or__(self, other):
        return self._compare(lambda a, b: a | b, other)

    __hash__ = object.__hash__

    # in-place arithmetic on tensors outside any graph (what optimizers and users do under no_grad)
    def _inplace(self, op, other):
        if self.requires_grad and autograd.is_grad_enabled():
            raise RuntimeError("in-place operation on a tensor that requires grad; wrap it in tensorlite.no_grad()")
        other = self._other(other).data
        op(self.data, other.astype(self.dtype, copy=False) if hasattr(other, "astype") else other)
        return self

    def __iadd__(self, other):
        return self._inplace(lambda a, b: a.__iadd__(b), other)

    def __isub__(self, other):
        return self._inplace(lambda a, b: a.__isub__(b), other)

    def __imul__(self, other):
        return self._inplace(lambda a, b: a.__imul__(b), other)

    def __itruediv__(self, other):
        return self._inplace(lambda a, b: a.__itruediv__(b), other)

    add_ = __iadd__
    sub_ = __isub__
    mul_ = __imul__
    div_ = __itruediv__

    def copy_(self, src):
        return self._inplace(lambda a, b: a.__setitem__(Ellipsis, b), src)

    def fill_(self, value):
        return self._inplace(lambda a, b: a.fill(b.item() if hasattr(b, "item") else b), value)

    # ------------------------------------------------------------ elementwise math
    def _as_float(self):
        """Integer/bool input to a float-valued function becomes float32 first (PyTorch's rule), not NumPy's float64."""
        return self if is_float(self.dtype) else self.to(default_float)

    def exp(self):
        return E.Exp.apply(self._as_float())

    def log(self):
        return E.Log.apply(self._as_float())

    def sqrt(self):
        return E.Sqrt.apply(self._as_float())

    def rsqrt(self):
        return 1 / self.sqrt()

    def abs(self):
        return E.Abs.apply(self)

    def tanh(self):
        return E.Tanh.apply(self._as_float())

    def sigmoid(self):
        return E.Sigmoid.apply(self._as_float())

    def relu(self):
        return E.ReLU.apply(self)

    def gelu(self, approximate="none"):
        return gelu(self, approximate)

    def pow(self, exponent):
        return self ** exponent

    def maximum(self, other):
        return self._binary(E.Maximum, other)

    def minimum(self, other):
        return self._binary(E.Minimum, other)

    def clamp(self, min=None, max=None):
        if min is None and max is None:
            raise ValueError("clamp() needs min, max or both")
        if not is_float(self.dtype) and any(isinstance(v, float) for v in (min, max)):
            return self.to(default_float).clamp(min, max)  # int tensor, float bounds: a float result, as in PyTorch
        return E.Clamp.apply(self, min=min, max=max)

    clip = clamp

    def masked_fill(self, mask, value):
        mask = _as_array(mask, self.device)
        if mask.dtype != bool:
            raise TypeError(f"masked_fill() needs a bool mask, got dtype {mask.dtype}")
        try:
            np.broadcast_shapes(mask.shape, self.shape)
        except ValueError:
            raise ValueError(f"masked_fill(): mask of shape {mask.shape} does not broadcast to {self.shape}") from None
        return E.MaskedFill.apply(self, mask=mask, value=value)

    def sign(self):
        return Tensor._wrap(self.xp.sign(self.data), self.device)

    # ------------------------------------------------------------ reductions
    def sum(self, dim=None, keepdim=False, dtype=None):
        x = self if dtype is None else self.to(dtype)
        if x.dtype == bool_:
            x = x.to(int64)
        return R.Sum.apply(x, dim=dim, keepdim=keepdim)

    def mean(self, dim=None, keepdim=False):
        if not is_float(self.dtype):
            raise RuntimeError(f"mean() needs a floating-point tensor, got {self.dtype}; convert with .float()")
        return R.Mean.apply(self, dim=dim, keepdim=keepdim)

    def var(self, dim=None, keepdim=False, unbiased=True, correction=None):
        if not is_float(self.dtype):
            raise RuntimeError(f"var()/std() need a floating-point tensor, got {self.dtype}; convert with .float()")
        c = (1 if unbiased else 0) if correction is None else correction
        return R.Var.apply(self, dim=dim, keepdim=keepdim, correction=c)

    def std(self, dim=None, keepdim=False, unbiased=True, correction=None):
        return self.var(dim, keepdim, unbiased, correction).sqrt()

    def _extreme(self, dim, keepdim, is_min):
        values = R.Max.apply(self, dim=dim, keepdim=keepdim, is_min=is_min)
        if dim is None or not isinstance(dim, int):
            return values
        index = (self.xp.argmin if is_min else self.xp.argmax)(self.data, axis=dim)
        if keepdim and self.ndim:  # (a 0-d tensor has no axis to keep: its index stays 0-d, like its value)
            index = self.xp.expand_dims(index, dim)
        return ReturnTypes(values, Tensor._wrap(index.astype(int64), self.device))

    def max(self, dim=None, keepdim=False):
        """max() -> tensor; max(dim) -> (values, indices), as in PyTorch."""
        if isinstance(dim, Tensor):
            return self.maximum(dim)
        return self._extreme(dim, keepdim, is_min=False)

    def min(self, dim=None, keepdim=False):
        if isinstance(dim, Tensor):
            return self.minimum(dim)
        return self._extreme(dim, keepdim, is_min=True)

    def amax(self, dim=None, keepdim=False):
        return R.Max.apply(self, dim=dim, keepdim=keepdim, is_min=False)

    def amin(self, dim=None, keepdim=False):
        return R.Max.apply(self, dim=dim, keepdim=keepdim, is_min=True)

    def logsumexp(self, dim, keepdim=False):
        return R.LogSumExp.apply(self._as_float(), dim=dim, keepdim=keepdim)

    def argmax(self, dim=None, keepdim=False):
        return _arg(self, self.xp.argmax, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return _arg(self, self.xp.argmin, dim, keepdim)

    def all(self):
        return Tensor._wrap(self.xp.asarray(self.data.all()), self.device)

    def any(self):
        return Tensor._wrap(self.xp.asarray(self.data.any()), self.device)

    # ------------------------------------------------------------ shape
    def reshape(self, *shape):
        target = _resolve_shape(_shape_args(shape), self.shape, self.data.size)
        if target == self.shape:
            return self
        return S.Reshape.apply(self, shape=target)

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:
            return self.reshape(1)
        s, e = start_dim % self.ndim, end_dim % self.ndim
        return self.reshape(self.shape[:s] + (-1,) + self.shape[e + 1:])

    def view_as(self, other):
        return self.reshape(other.shape)

    def permute(self, *dims):
        dims = tuple(_wrap_dim(d, self.ndim) for d in _shape_args(dims))
        if sorted(dims) != list(range(self.ndim)):
            raise ValueError(f"permute({dims}) is not a permutation of the {self.ndim} dimensions of {self.shape}")
        return S.Permute.apply(self, dims=dims)

    def transpose(self, dim0, dim1):
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return self.permute(*dims)

    def t(self):
        if self.ndim > 2:
            raise ValueError("t() expects a tensor with <= 2 dimensions; use transpose()")
        return self.T

    def unsqueeze(self, dim):
        dim = _wrap_dim(dim, self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        dim = _wrap_dim(dim, max(self.ndim, 1))
        if self.ndim == 0 or self.shape[dim] != 1:
            return self
        return self.reshape(self.shape[:dim] + self.shape[dim + 1:])

    def expand(self, *shape):
        shape = _shape_args(shape)
        lead = len(shape) - self.ndim  # new leading axes have no size to keep, so -1 is not allowed there
        if -1 in shape[:max(lead, 0)]:
            raise RuntimeError(f"expand{shape}: -1 (keep the size) is not allowed in a new leading dimension "
                               f"of a tensor of shape {self.shape}")
        shape = tuple(self.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
        return self.broadcast_to(shape)

    def broadcast_to(self, shape):
        shape = tuple(shape)
        try:
            np.broadcast_shapes(self.shape, shape)
            if np.broadcast_shapes(self.shape, shape) != shape:
                raise ValueError
        except ValueError:
            raise RuntimeError(f"cannot expand a tensor of shape {self.shape} to {shape}") from None
        return self if shape == self.shape else S.BroadcastTo.apply(self, shape=shape)

    def expand_as(self, other):
        return self.broadcast_to(other.shape)

    def split(self, split_size_or_sections, dim=0):
        return split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return chunk(self, chunks, dim)

    def contiguous(self):
        return self

    def __getitem__(self, index):
        return S.GetItem.apply(self, index=_index(index, self.device))

    def __setitem__(self, index, value):
        if self.requires_grad and autograd.is_grad_enabled():
            raise RuntimeError("item assignment on a tensor that requires grad; wrap it in tensorlite.no_grad()")
        value = _as_array(value, self.device) if isinstance(value, Tensor) else value
        self.data[_index(index, self.device)] = value

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    # ------------------------------------------------------------ linear algebra and friends
    def matmul(self, other):
        return matmul(self, other)

    def softmax(self, dim):
        from .nn import functional as F
        return F.softmax(self, dim)

    def log_softmax(self, dim):
        from .nn import functional as F
        return F.log_softmax(self, dim)


# ---------------------------------------------------------------- helpers
def _wrap_dim(dim, ndim):
    """A dimension in [-ndim, ndim) as a non-negative index; IndexError naming the range otherwise."""
    if not -ndim <= dim < ndim:
        raise IndexError(f"dimension {dim} is out of range for a tensor with {ndim} dimension(s) "
                         f"(expected {-ndim} to {ndim - 1})")
    return dim % ndim


def _shape_args(args):
    """Accept f(2, 3) and f((2, 3)) alike."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(int(a) for a in args)


def _resolve_shape(shape, current, size):
    """Fill in one -1 and check that the element count is kept."""
    shape = list(shape)
    bad = RuntimeError(f"shape {tuple(shape)} is invalid for a tensor of shape {current} ({size} elements)")
    if shape.count(-1) > 1 or any(n < -1 for n in shape):
        raise bad
    if -1 in shape:
        known = 1
        for n in shape:
            known *= n if n != -1 else 1
        if known == 0 or size % known:
            raise bad
        shape[shape.index(-1)] = size // known
    total = 1
    for n in shape:
        total *= n
    if total != size:
        raise bad
    return tuple(shape)


def _as_array(x, device):
    if isinstance(x, Tensor):
        if x.device != device:
            raise RuntimeError(f"expected a tensor on {device}, but it is on {x.device}")
        return x.data
    return backend.to_device(np.asarray(x), device)


def _index(index, device):
    """Replace Tensors in an index by arrays on `device`, checking their dtype."""
    parts = index if isinstance(index, tuple) else (index,)
    out = []
    for p in parts:
        if isinstance(p, Tensor) or isinstance(p, (list, np.ndarray)):
            arr = _as_array(p, device)
            if arr.dtype.kind not in "iub":
                raise IndexError(f"tensors used as indices must be integer (long) or bool, got dtype {arr.dtype}")
            p = arr
        out.append(p)
    return tuple(out) if isinstance(index, tuple) else out[0]


def _promote(a, b):
    """Mixed float/int operands: the integer side takes the float dtype (PyTorch's rule).
    Two float dtypes meet in the wider one through a differentiable cast, so each gradient keeps its tensor's dtype."""
    fa, fb = is_float(a.dtype), is_float(b.dtype)
    if fa and not fb:
        return a, b.to(a.dtype)
    if fb and not fa:
        return a.to(b.dtype), b
    if fa and fb and a.dtype != b.dtype:
        wide = np.promote_types(a.dtype, b.dtype)
        return a.to(wide), b.to(wide)
    return a, b


def _arg(t, fn, dim, keepdim):
    index = fn(t.data, axis=dim)
    if keepdim and dim is not None:
        index = t.xp.expand_dims(index, dim)
    return Tensor._wrap(t.xp.asarray(index).astype(int64), t.device)


class _ToDevice(autograd.Function):
    def forward(self, a):
        self.src = backend.device_of(a)
        return backend.to_device(a, self.device)

    def backward(self, g):
        return backend.to_device(g, self.src)

    @classmethod
    def apply(cls, t, device):
        # the output lives on another device than the input, so build the node by hand
        fn = cls(device=device)
        fn.needs_input_grad = (t.requires_grad,)
        record = autograd.is_grad_enabled() and t.requires_grad
        out = Tensor._wrap(fn.forward(t.data), device, requires_grad=record)
        if record:
            fn.inputs, out._ctx = (t,), fn
        return out


# ---------------------------------------------------------------- functions that take several tensors
def matmul(a, b):
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError("matmul() takes two tensors")
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"matmul: both arguments need at least 1 dimension, got shapes {a.shape} and {b.shape}")
    k_a = a.shape[-1]
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if k_a != k_b:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match: the last dimension of the first "
                         f"({k_a}) must equal the {'first' if b.ndim == 1 else 'second-to-last'} of the second ({k_b})")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of {a.shape} and {b.shape} do not broadcast") from None
    a, b = _promote(a, b)
    return L.MatMul.apply(a, b)


def where(condition, a, b):
    """where(cond, a, b): a where cond is true, else b; differentiable in a and b."""
    if isinstance(a, Tensor):
        ref = a
    elif isinstance(b, Tensor):
        ref = b
    else:
        raise TypeError("where() needs at least one of a, b to be a tensor")
    cond = _as_array(condition, ref.device)
    if cond.dtype != bool:
        raise TypeError(f"where(): condition must be bool, got {cond.dtype}")
    a, b = _promote(ref._other(a), ref._other(b))
    return E.Where.apply(a, b, cond=cond)


def gelu(x, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return E.GELU.apply(x._as_float(), approximate=approximate)


def _check_same(tensors, name):
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{name}() needs a non-empty sequence of tensors")
    if not all(isinstance(t, Tensor) for t in tensors):
        raise TypeError(f"{name}() takes a sequence of tensors")
    return tensors


def cat(tensors, dim=0):
    tensors = _check_same(tensors, "cat")
    ndim = tensors[0].ndim
    if ndim == 0:
        raise ValueError("cat(): zero-dimensional tensors cannot be concatenated; use stack()")
    d = _wrap_dim(dim, ndim)
    for t in tensors[1:]:
        if t.ndim != ndim or t.shape[:d] + t.shape[d + 1:] != tensors[0].shape[:d] + tensors[0].shape[d + 1:]:
            raise ValueError(f"cat(): shapes {tensors[0].shape} and {t.shape} differ outside dimension {dim}")
    return S.Cat.apply(*tensors, dim=d)


def stack(tensors, dim=0):
    tensors = _check_same(tensors, "stack")
    for t in tensors[1:]:
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack(): all tensors need the same shape, got {tensors[0].shape} and {t.shape}")
    return S.Stack.apply(*tensors, dim=_wrap_dim(dim, tensors[0].ndim + 1))


def split(t, split_size_or_sections, dim=0):
    n = t.shape[dim]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        if size <= 0:
            raise ValueError("split size must be positive")
        sizes = [min(size, n - i) for i in range(0, n, size)]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(f"split sections {sizes} do not add up to dimension {dim} of size {n}")
    out, start = [], 0
    lead = (slice(None),) * (dim % t.ndim)
    for s in sizes:
        out.append(t[lead + (slice(start, start + s),)])
        start += s
    return tuple(out)


def chunk(t, chunks, dim=0):
    if chunks <= 0:
        raise ValueError(f"chunk(): the number of chunks must be positive, got {chunks}")
    n = t.shape[dim]
    return split(t, -(-n // chunks), dim)
