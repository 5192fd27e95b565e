"""class Tensor: one array (NumPy or CuPy) plus what autograd needs.

A Tensor is thin: every differentiable method forwards to a Function in ``tensorlite.ops``;
comparisons and other non-differentiable queries work on the array directly and return tensors
that never require grad. This file holds what makes a Tensor a Tensor: construction, properties,
reading values back to the host, the autograd entry points and moves between devices and dtypes.
The rest of its surface is written as mixins, one file per kind:

    tensor_operators.py   + - * / ** @, comparisons, in-place arithmetic (and PyTorch's dtype rules for them)
    tensor_math.py        elementwise math (exp, relu, clamp, ...) and reductions (sum, max, var, ...)
    tensor_shape.py       reshape, permute, expand, indexing, split
"""
import numpy as np

from . import autograd, backend
from .dtypes import (DTYPE_OF, KIND_DEFAULT, TENSOR_TYPE_NAMES, as_dtype, bool_, check_requires_grad, float16,
                     float32, float64, int32, int64, is_float)
from .ops import elementwise as E, shape as S
from .printing import Size, tensor_repr
from .tensor_extra import TensorExtra
from .tensor_pickle import TensorPickle
from .tensor_math import TensorMath
from .tensor_operators import TensorOperators
from .tensor_shape import TensorShape


def _to_array(data, dtype=None, device=None):
    """`data` (a Python scalar, nested list, NumPy or CuPy array) as a C-contiguous array on `device`.

    Arrays keep their dtype; Python values take the default of their kind (floats -> float32).
    """
    if not hasattr(data, "dtype"):
        data = np.asarray(data)
        if data.dtype.kind not in KIND_DEFAULT:
            raise TypeError(f"cannot make a tensor from {data.dtype} data (got {type(data).__name__})")
        dtype = KIND_DEFAULT[data.dtype.kind] if dtype is None else dtype
    device = backend.device_of(data) if device is None else backend.normalize_device(device)
    data = backend.to_device(data, device)
    with backend.device_context(device):
        return backend.xp_for(device).asarray(data, dtype=dtype, order="C")


# The default dtype= of Tensor(): PyTorch's legacy constructor makes Python data float32 (see __init__).
FLOAT32_FOR_PYTHON_DATA = "float32 for Python data"


class Tensor(TensorPickle, TensorOperators, TensorMath, TensorExtra, TensorShape):
    __slots__ = ("data", "grad", "requires_grad", "device", "_ctx", "_retains_grad", "_version_counter", "_base",
                 "__weakref__")
    __array_priority__ = 1000  # make ndarray <op> Tensor defer to Tensor's reflected operators

    def __init__(self, data, dtype=FLOAT32_FOR_PYTHON_DATA, device=None, requires_grad=False):
        """Wrap `data` (list, scalar, array or Tensor); an array already right for dtype/device is not copied.

        Without dtype=, Python data become float32, as with torch.Tensor([1, 2]); arrays and tensors keep
        their dtype (torch.Tensor converts them to float32 too). dtype=None, what tensorlite.tensor()
        passes, gives Python data the default of their kind instead: tensorlite.tensor([1, 2]) is int64.
        """
        if dtype is FLOAT32_FOR_PYTHON_DATA:
            dtype = None if hasattr(data, "dtype") else float32
        data = _to_array(data.data if isinstance(data, Tensor) else data, dtype, device)
        check_requires_grad(requires_grad, data.dtype)
        self.data, self.device, self.requires_grad = data, backend.device_of(data), bool(requires_grad)
        self.grad, self._ctx, self._retains_grad = None, None, False
        self._version_counter, self._base = autograd.VersionCounter(), None

    @classmethod
    def wrap(cls, array, device, requires_grad=False):
        """A tensor around an existing array (NumPy on 'cpu', CuPy on 'cuda:N') without copying or checking
        it: the constructor of the autograd protocol (Function.apply makes every output through it), and
        what optimizers and layers use for arrays they made themselves. Use tensorlite.tensor() for data."""
        t = cls.__new__(cls)
        t.data, t.device, t.requires_grad = array, device, requires_grad
        t.grad, t._ctx, t._retains_grad = None, None, False
        t._version_counter, t._base = autograd.VersionCounter(), None
        return t

    # ------------------------------------------------------------ properties
    @property
    def xp(self):
        return backend.xp_for(self.device)

    @property
    def shape(self):
        return Size(self.data.shape)

    @property
    def dtype(self):
        """The DType (prints as tensorlite.float32; == and hash as the NumPy dtype of .data)."""
        try:
            return DTYPE_OF[self.data.dtype]
        except KeyError:  # a NumPy dtype PyTorch has no name for (complex, big-endian...)
            return as_dtype(self.data.dtype)

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def _version(self):
        """How many in-place changes this tensor's memory has seen (shared with its views and detach())."""
        return self._version_counter.value

    @property
    def is_leaf(self):
        return self._ctx is None

    @property
    def grad_fn(self):
        return self._ctx

    def dim(self):
        return self.ndim

    def size(self, dim=None):
        return Size(self.data.shape) if dim is None else self.data.shape[dim]

    def numel(self):
        return int(self.data.size)

    def is_floating_point(self):
        return self.dtype.is_floating_point

    def element_size(self):
        """Bytes per element."""
        return self.data.dtype.itemsize

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self):
        """PyTorch's text for the tensor (tensorlite/printing.py has the rules)."""
        grad_fn = None if self._ctx is None else self._ctx.name()
        return tensor_repr(backend.to_numpy(self.data), self.dtype, self.device, grad_fn, self.requires_grad)

    def __format__(self, spec):
        """f"{loss:.4f}": as in PyTorch, a 0-d tensor formats as its value (so f"{t}" is the number, too);
        any other tensor formats as str(t) with an empty spec and raises TypeError with any other.
        (PyTorch also refuses a spec for a 0-d Parameter; here any 0-d tensor takes one.)"""
        if self.ndim == 0:
            return format(self.item(), spec)
        return object.__format__(self, spec)

    # ------------------------------------------------------------ host access
    # Each read first runs the range checks queued on a GPU (backend.check_values), so an error
    # raised late still comes before any value computed from bad indices is seen.
    def numpy(self):
        """A NumPy copy on the host (a copy also on the CPU, so it never aliases a graph's array)."""
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        backend.run_deferred_checks()
        return self.data.copy() if self.device == "cpu" else backend.to_numpy(self.data)

    def item(self):
        if self.data.size != 1:
            raise RuntimeError(f"a Tensor with {self.data.size} elements cannot be converted to Scalar (item() needs "
                               f"one element, this one has shape {tuple(self.shape)})")
        backend.run_deferred_checks()
        return self.data.reshape(()).item() if self.device == "cpu" else backend.to_numpy(self.data).reshape(()).item()

    def tolist(self):
        return backend.to_numpy(self.data).tolist()

    def __float__(self):
        if self.data.size != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return float(self.item())

    def __int__(self):
        if self.data.size != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
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
        check_requires_grad(requires_grad, self.dtype)
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("you can only change requires_grad of leaf tensors; use detach()")
        self.requires_grad = requires_grad
        return self

    def detach(self):
        """The same array, cut from the graph (shares memory and so the version counter, like PyTorch)."""
        out = Tensor.wrap(self.data, self.device)
        out._version_counter = self._version_counter
        return out

    def clone(self):
        """A copy with its own memory; differentiable (the gradient passes through unchanged)."""
        return S.Clone.apply(self)

    def zero_(self):
        """Fill with zeros in place (see fill_)."""
        return self.fill_(0)

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
                else Tensor.wrap(out.data.astype(dtype), out.device)
        if device is not None:
            try:
                device = backend.normalize_device(device)
            except ValueError as e:  # an unknown device name is a RuntimeError in PyTorch
                raise RuntimeError(str(e)) from None
            if device != out.device:
                out = ToDevice.apply(out, device=device) if out.requires_grad else \
                    Tensor.wrap(backend.to_device(out.data, device), device)
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

    def type(self, dtype=None):
        """Without an argument the PyTorch type name ('tensorlite.FloatTensor', 'tensorlite.cuda.LongTensor');
        with a dtype, a type name or a type such as tensorlite.LongTensor, the tensor converted to it."""
        if dtype is None:
            return f"tensorlite.{'' if self.device == 'cpu' else 'cuda.'}{TENSOR_TYPE_NAMES.get(self.dtype, 'Tensor')}"
        if isinstance(dtype, str):
            package, _, name = dtype.rpartition(".")
            if package not in ("tensorlite", "torch", "tensorlite.cuda", "torch.cuda") or \
                    name not in TENSOR_TYPE_NAMES.values():
                raise ValueError(f"invalid type: {dtype!r} (expected a name such as 'tensorlite.LongTensor')")
            out = self.to(next(d for d, n in TENSOR_TYPE_NAMES.items() if n == name))
            on_cuda = package.endswith("cuda")
            return out if on_cuda == (out.device != "cpu") else out.cuda() if on_cuda else out.cpu()
        return self.to(getattr(dtype, "dtype", dtype))


class ToDevice(autograd.Function):
    """A copy to another device; its output lives on `device`, its gradient goes back to the input's."""
    saves_inputs = False

    def forward(self, a):
        self.src, self.out_device = backend.device_of(a), self.device
        return backend.to_device(a, self.device)

    # y = x on another device:  dx = g copied back
    def backward(self, g):
        return backend.to_device(g, self.src)
