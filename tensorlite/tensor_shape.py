"""Tensor's shape and indexing: reshape/view, permute/transpose, (un)squeeze, expand, split, [] and []=.

A mixin of ``Tensor``. It needs from the class: ``data``, ``shape``, ``ndim``, ``requires_grad``, and from
the operators mixin ``_array``. Every shape a caller gives is checked in ``tensorlite._checks``.
"""
import numpy as np

from . import autograd
from ._checks import broadcast_shape, resolve_shape, shape_args, wrap_dim
from .ops import shape as S


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

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:
            return self.reshape(1)
        s, e = start_dim % self.ndim, end_dim % self.ndim
        return self.reshape(self.shape[:s] + (-1,) + self.shape[e + 1:])

    def view_as(self, other):
        return self.reshape(other.shape)

    def permute(self, *dims):
        dims = tuple(wrap_dim(d, self.ndim) for d in shape_args(dims))
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
                               f"of a tensor of shape {self.shape}")
        shape = tuple(self.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
        return self.broadcast_to(shape)

    def broadcast_to(self, shape):
        shape = tuple(shape)
        try:
            if broadcast_shape((self.shape, shape), "") != shape:
                raise ValueError
        except ValueError:
            raise RuntimeError(f"cannot expand a tensor of shape {self.shape} to {shape}") from None
        return self if shape == self.shape else S.BroadcastTo.apply(self, shape=shape)

    def expand_as(self, other):
        return self.broadcast_to(other.shape)

    def split(self, split_size_or_sections, dim=0):
        """Pieces of `split_size_or_sections` elements along `dim` (the last one may be shorter), or of the
        listed sizes; each a view-like slice through GetItem."""
        n = self.shape[dim]
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
        lead = (slice(None),) * (dim % self.ndim)
        for s in sizes:
            out.append(self[lead + (slice(start, start + s),)])
            start += s
        return tuple(out)

    def chunk(self, chunks, dim=0):
        if chunks <= 0:
            raise ValueError(f"chunk(): the number of chunks must be positive, got {chunks}")
        return self.split(-(-self.shape[dim] // chunks), dim)

    def contiguous(self):
        return self

    def __getitem__(self, index):
        return S.GetItem.apply(self, index=self._index(index))

    def __setitem__(self, index, value):
        if self.requires_grad and autograd.is_grad_enabled():
            raise RuntimeError("item assignment on a tensor that requires grad; wrap it in tensorlite.no_grad()")
        value = self._array(value) if isinstance(value, TensorShape) else value
        self.data[self._index(index)] = value

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def _index(self, index):
        """`index` with its Tensors, lists and arrays replaced by arrays on this device, checking their dtype."""
        parts = index if isinstance(index, tuple) else (index,)
        out = []
        for p in parts:
            if isinstance(p, (TensorShape, list, np.ndarray)):
                arr = self._array(p)
                if arr.dtype.kind not in "iub":
                    raise IndexError(f"tensors used as indices must be integer (long) or bool, got dtype {arr.dtype}")
                p = arr
            out.append(p)
        return tuple(out) if isinstance(index, tuple) else out[0]
