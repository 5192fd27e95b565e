"""Tensor's shape and indexing: reshape/view, permute/transpose, (un)squeeze, expand, split, [] and []=.

A mixin of ``Tensor``. It needs from the class: ``data``, ``shape``, ``ndim``, ``requires_grad``, and from
the operators mixin ``_array`` and ``_write``. Every shape a caller gives is checked in ``tensorlite._checks``.

Contiguity is NumPy's: after permute/transpose the array is not C-contiguous, so ``view`` refuses a
shape that would need a copy (as PyTorch), ``reshape`` copies then, and ``contiguous()`` makes a copy.
Indexing follows PyTorch where it differs from NumPy: a short list holding lists is a tuple of indices
(``x[[[0, 1], [2, 2]]]`` is ``x[[0, 1], [2, 2]]``), a uint8 tensor is a mask, slices need a positive step.
"""
import numbers
import warnings

import numpy as np

from . import autograd
from ._checks import broadcast_shape, normalize_dims, resolve_shape, shape_args, wrap_dim
from .ops import shape as S

_VIEW_ERROR = ("view size is not compatible with input tensor's size and stride (at least one dimension spans "
               "across two contiguous subspaces). Use .reshape(...) instead.")


class TensorShape:
    __slots__ = ()

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    @property
    def mT(self):
        return self.transpose(-2, -1)

    # ------------------------------------------------------------ shape
    def reshape(self, *shape):
        target = resolve_shape(shape_args(shape), self.shape, self.data.size)
        if target == self.shape:
            return self
        return S.Reshape.apply(self, shape=target)

    def view(self, *shape):
        """reshape without a copy: RuntimeError (as PyTorch) if the memory layout does not allow it.
        view(dtype) reinterprets the bytes, for a dtype of the same size."""
        if len(shape) == 1 and not isinstance(shape[0], (numbers.Integral, tuple, list)):
            return self._view_dtype(shape[0])
        target = resolve_shape(shape_args(shape), self.shape, self.data.size)
        if self.data.size and not self.xp.may_share_memory(self.data.reshape(target), self.data):
            raise RuntimeError(_VIEW_ERROR)
        return self.reshape(target)

    def _view_dtype(self, dtype):
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        if dtype.itemsize != self.dtype.itemsize or self.requires_grad:
            raise RuntimeError(f"view({dtype}): tensorlite reinterprets only between dtypes of the same size "
                               f"({self.dtype} has {self.dtype.itemsize} bytes), and not in a graph; use .to()")
        out = self.wrap(self.data.view(dtype), self.device)
        out._version_counter = self._version_counter
        return out

    def is_contiguous(self):
        return bool(self.data.flags.c_contiguous)

    def contiguous(self):
        """self if its memory is in row-major order, else a copy that is (differentiable)."""
        return self if self.data.flags.c_contiguous else S.Clone.apply(self)

    def flatten(self, start_dim=0, end_dim=-1):
        s, e = wrap_dim(start_dim, self.ndim, "flatten"), wrap_dim(end_dim, self.ndim, "flatten")
        if s > e:
            raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
        if self.ndim == 0:
            return self.reshape(1)
        merged = int(np.prod(self.shape[s:e + 1]))  # not -1: that is ambiguous when another dim is 0
        return self.reshape(self.shape[:s] + (merged,) + self.shape[e + 1:])

    def view_as(self, other):
        return self.reshape(other.shape)

    def permute(self, *dims):
        dims = shape_args(dims)
        if len(dims) != self.ndim:
            raise RuntimeError(f"permute{dims}: a tensor of shape {tuple(self.shape)} needs {self.ndim} dims, "
                               f"one for each of its dimensions")
        dims = tuple(wrap_dim(d, self.ndim, "permute") for d in dims)
        if len(set(dims)) != len(dims):
            raise RuntimeError(f"permute{dims}: duplicate dims are not allowed; name each dimension once")
        return S.Permute.apply(self, dims=dims)

    def transpose(self, dim0, dim1):
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return self.permute(*dims)

    def t(self):
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, got {self.ndim}; use transpose()")
        return self.T

    def unsqueeze(self, dim):
        dim = wrap_dim(dim, self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        dim = wrap_dim(dim, max(self.ndim, 1))
        if self.ndim == 0 or self.shape[dim] != 1:
            return self
        return self.reshape(self.shape[:dim] + self.shape[dim + 1:])

    def expand(self, *shape):
        shape = shape_args(shape)
        lead = len(shape) - self.ndim  # new leading axes have no size to keep, so -1 is not allowed there
        if -1 in shape[:max(lead, 0)]:
            raise RuntimeError(f"expand{shape}: -1 (keep the size) is not allowed in a new leading dimension "
                               f"of a tensor of shape {tuple(self.shape)}")
        shape = tuple(self.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
        return self.broadcast_to(shape)

    def broadcast_to(self, shape):
        shape = tuple(shape)
        try:
            if broadcast_shape((self.shape, shape), "") != shape:
                raise ValueError
        except ValueError:
            raise RuntimeError(f"cannot expand a tensor of shape {tuple(self.shape)} to {shape}") from None
        return self if shape == self.shape else S.BroadcastTo.apply(self, shape=shape)

    def expand_as(self, other):
        return self.broadcast_to(other.shape)

    def split(self, split_size_or_sections, dim=0):
        """Pieces of `split_size_or_sections` elements along `dim` (the last one may be shorter), or of the
        listed sizes; each a view-like slice through GetItem."""
        dim = wrap_dim(dim, self.ndim, "split")
        n = self.shape[dim]
        if isinstance(split_size_or_sections, numbers.Integral):
            size = int(split_size_or_sections)
            if size < 0 or (size == 0 and n != 0):
                raise RuntimeError(f"split(): split_size must be positive (0 only for a dimension of size 0), "
                                   f"got {size} for dimension {dim} of size {n}")
            # an empty dimension still gives one (empty) piece, as in PyTorch
            sizes = [min(size, n - i) for i in range(0, n, size)] if n else [0]
        else:
            sizes = [int(k) for k in split_size_or_sections]
            if any(k < 0 for k in sizes) or sum(sizes) != n:
                raise RuntimeError(f"split(): sizes {sizes} must be non-negative and add up to dimension {dim} "
                                   f"of size {n}")
        out, start = [], 0
        lead = (slice(None),) * dim
        for s in sizes:
            out.append(self[lead + (slice(start, start + s),)])
            start += s
        return tuple(out)

    def chunk(self, chunks, dim=0):
        if chunks <= 0:
            raise RuntimeError(f"chunk(): the number of chunks must be positive, got {chunks}")
        n = self.shape[wrap_dim(dim, self.ndim, "chunk")]
        if n == 0:  # PyTorch gives `chunks` empty pieces here
            return self.split([0] * chunks, dim)
        return self.split(-(-n // chunks), dim)

    # ------------------------------------------------------------ copies that move elements
    def repeat(self, *sizes):
        """The tensor tiled sizes[i] times along dimension i; extra leading sizes add new dimensions."""
        sizes = shape_args(sizes)
        if len(sizes) < self.ndim:
            raise RuntimeError(f"repeat{sizes}: give at least one size per dimension of the tensor "
                               f"(shape {tuple(self.shape)})")
        if any(r < 0 for r in sizes):
            raise RuntimeError(f"repeat{sizes}: the sizes must be non-negative")
        x = self.reshape((1,) * (len(sizes) - self.ndim) + tuple(self.shape))
        return S.Repeat.apply(x, reps=sizes)

    def flip(self, *dims):
        """A copy with the order of the elements reversed along each of `dims`."""
        dims = shape_args(dims)
        return S.Flip.apply(self, dims=normalize_dims(dims, self.ndim))

    def roll(self, shifts, dims=None):
        """Elements shifted cyclically by `shifts` along `dims`; without dims, over the flattened tensor."""
        as_tuple = isinstance(shifts, (tuple, list)) or isinstance(dims, (tuple, list))
        shifts = shape_args((shifts,)) if isinstance(shifts, (tuple, list)) else (int(shifts),)
        if dims is None:
            if len(shifts) != 1:
                raise RuntimeError(f"roll(): shifts {shifts} without dims: give one shift, or one dim per shift")
            return S.Roll.apply(self, shifts=shifts[0], dims=None)
        dims = shape_args((dims,)) if isinstance(dims, (tuple, list)) else (int(dims),)
        if len(shifts) != len(dims):
            raise RuntimeError(f"roll(): shifts {shifts} and dims {dims} must have the same length")
        dims = tuple(wrap_dim(d, self.ndim, "roll") for d in dims)
        if not as_tuple:
            shifts, dims = shifts[0], dims[0]
        return S.Roll.apply(self, shifts=shifts, dims=dims)

    def tril(self, diagonal=0):
        """Lower triangle of the last two dimensions (the rest zeroed); diagonal > 0 keeps more above it."""
        return self._triangle("tril", diagonal)

    def triu(self, diagonal=0):
        """Upper triangle of the last two dimensions (the rest zeroed); diagonal < 0 keeps more below it."""
        return self._triangle("triu", diagonal)

    def _triangle(self, name, diagonal):
        if self.ndim < 2:
            raise RuntimeError(f"{name}(): the input needs at least 2 dimensions, got shape {tuple(self.shape)}")
        keep = getattr(np, name)(np.ones(self.shape[-2:], dtype=bool), diagonal)  # the kept places
        return self.masked_fill(type(self)(~keep, device=self.device), 0)

    def __getitem__(self, index):
        return S.GetItem.apply(self, index=self._index(index))

    def __setitem__(self, index, value):
        """x[index] = value, in place. Recorded (the gradient reaches value, and x's old values outside the
        index) when grad mode is on and x or value requires grad; a leaf that requires grad refuses."""
        self._check_uint8_fill(index, value)
        index = self._index(index)
        is_tensor = isinstance(value, TensorShape)
        if autograd.is_grad_enabled() and (self.requires_grad or (is_tensor and value.requires_grad)):
            value = value if is_tensor else type(self)(value, device=self.device)
            if value.dtype != self.dtype:
                value = value.to(self.dtype)
            self._write(lambda old, v: S.SetItem.apply(old, v, index=index), (value,), reads_self=False,
                        check_cast=False)
            return
        self._check_inplace()
        self.data[index] = self._array(value) if is_tensor else value
        self._version_counter.value += 1

    @staticmethod
    def _check_uint8_fill(index, value):
        """PyTorch writes one value through a lone mask index with masked_fill_, which refuses uint8 masks."""
        parts = index if isinstance(index, tuple) else (index,)
        arrays = [p for p in parts if isinstance(p, (TensorShape, np.ndarray))]
        if len(arrays) == 1 and arrays[0].dtype == np.uint8 and np.size(getattr(value, "data", value)) == 1:
            raise RuntimeError("x[mask] = value: a uint8 mask cannot be used to write one value (as in PyTorch, "
                               "whose masked_fill_ needs a bool mask); use mask.bool()")

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def _index(self, index):
        """`index` with its Tensors, lists and arrays replaced by arrays on this device, checking their dtype."""
        if isinstance(index, list) and len(index) < 32 and any(
                isinstance(p, (list, tuple, TensorShape, np.ndarray, slice)) or p is None or p is Ellipsis
                for p in index):
            index = tuple(index)  # PyTorch (like old NumPy) reads such a list as a tuple of indices
        parts = index if isinstance(index, tuple) else (index,)
        out = []
        for p in parts:
            if isinstance(p, list) and not p:
                p = np.zeros(0, dtype=np.int64)  # x[[]]: no rows picked (NumPy would read [] as floats)
            if isinstance(p, (TensorShape, list, np.ndarray)):
                arr = self._array(p)
                if arr.dtype.kind not in "iub":
                    raise IndexError(f"tensors used as indices must be long, int, byte or bool tensors, got dtype "
                                     f"{arr.dtype}")
                if arr.dtype == np.uint8 and not isinstance(p, list):
                    warnings.warn("indexing with dtype uint8 is deprecated (as in PyTorch, it is read as a mask); "
                                  "use a bool tensor instead", UserWarning, stacklevel=3)
                    arr = arr.astype(bool)
                p = arr
            elif isinstance(p, slice) and p.step is not None:
                step = p.step.__index__()
                if step == 0:
                    raise ValueError("slice step cannot be zero")
                if step < 0:
                    raise ValueError("step must be greater than zero (PyTorch has no negative-step slices; "
                                     "index with a reversed arange instead)")
            out.append(p)
        return tuple(out) if isinstance(index, tuple) else out[0]
