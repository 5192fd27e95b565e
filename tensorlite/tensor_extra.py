"""More of Tensor's math: sin, cos, erf, ... and rounding; prod, cumsum; gather, sort, argsort, topk;
comparison and logic methods (eq, isclose, logical_and, ...); add/sub/mul/div with PyTorch's keywords.

A mixin of ``Tensor`` (beside tensor_math.py, which holds the first set). It needs from the class: ``data``,
``device``, ``dtype``, ``ndim``, ``shape``, ``xp``, ``wrap(array, device)``, ``to(dtype)``, and from the
other mixins ``_other``, ``_array``, ``_as_float``, the operators and ``sum``.
"""
import math
from collections import namedtuple

import numpy as np

from . import backend
from ._checks import wrap_dim
from .dtypes import bool_, default_float, int64, is_float
from .ops import elementwise as E, scan as C, sort as S, unary as U

SortResult = namedtuple("SortResult", ["values", "indices"])  # torch.return_types.sort / topk fields


class TensorExtra:
    __slots__ = ()

    # ------------------------------------------------------------ elementwise math
    def sin(self):
        return U.Sin.apply(self._as_float())

    def cos(self):
        return U.Cos.apply(self._as_float())

    def erf(self):
        return U.Erf.apply(self._as_float())

    def log1p(self):
        return U.Log1p.apply(self._as_float())

    def expm1(self):
        return U.Expm1.apply(self._as_float())

    def log2(self):
        return self.log() / math.log(2)

    def log10(self):
        return self.log() / math.log(10)

    def reciprocal(self):
        return 1 / self._as_float()

    def square(self):
        return self * self

    def neg(self):
        return -self

    negative = neg

    def _rounding(self, name, op):
        """floor/ceil/round/trunc: ints come back unchanged (a copy), floats with a zero gradient."""
        if self.dtype == bool_:
            raise NotImplementedError(f"{name}() is not implemented for bool tensors")
        if not is_float(self.dtype):
            return self.wrap(self.data.copy(), self.device)
        return E.Rounding.apply(self, op=op)

    def floor(self):
        return self._rounding("floor", self.xp.floor)

    def ceil(self):
        return self._rounding("ceil", self.xp.ceil)

    def trunc(self):
        return self._rounding("trunc", self.xp.trunc)

    def round(self, decimals=0):
        """Halves round to even, as in PyTorch and NumPy."""
        xp = self.xp
        return self._rounding("round", lambda a: xp.round(a, decimals))

    # ------------------------------------------------------------ arithmetic with PyTorch's keywords
    def add(self, other, *, alpha=1):
        return self + (other if alpha == 1 else other * alpha)

    def sub(self, other, *, alpha=1):
        return self - (other if alpha == 1 else other * alpha)

    subtract = sub

    def mul(self, other):
        return self * other

    multiply = mul

    def div(self, other, *, rounding_mode=None):
        """a / b; rounding_mode='floor' or 'trunc' rounds the quotient (integers stay integers, as in PyTorch)."""
        if rounding_mode is None:
            return self / other
        if rounding_mode not in ("floor", "trunc"):
            raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                             f"{rounding_mode!r}")
        other = self._other(other)
        if not is_float(self.dtype) and not is_float(other.dtype):
            q = self // other
            if rounding_mode == "trunc":  # floor rounds down; trunc rounds towards zero instead
                off = ((self.data % other.data) != 0) & ((self.data < 0) != (other.data < 0))
                q = self.wrap(q.data + off, self.device)
            return q
        return (self / other).floor() if rounding_mode == "floor" else (self / other).trunc()

    divide = true_divide = div

    # ------------------------------------------------------------ reductions and scans
    def prod(self, dim=None, keepdim=False, dtype=None):
        """The product over one dim (or all); integer products are int64 unless `dtype` says otherwise."""
        x = self._reduce_input(dtype)
        if dim is not None:
            dim = wrap_dim(dim, x.ndim, "prod")
            if x.ndim == 0:
                dim = None
        return C.Prod.apply(x, dim=dim, keepdim=keepdim and x.ndim > 0)

    def cumsum(self, dim, dtype=None):
        x = self._reduce_input(dtype)
        return C.CumSum.apply(x, dim=wrap_dim(dim, x.ndim, "cumsum"))

    # ------------------------------------------------------------ gather and sorting
    def gather(self, dim, index):
        """out[i][j] = self[i][index[i][j]] for dim=1 (torch.gather); differentiable in self."""
        d = wrap_dim(dim, self.ndim, "gather")
        idx = self._array(index)
        if idx.dtype.kind not in "iu" or idx.dtype == np.uint8:
            raise RuntimeError(f"gather(): Expected dtype int32/int64 for index, got {idx.dtype}")
        if idx.ndim != self.ndim:
            raise RuntimeError(f"gather(): index tensor must have the same number of dimensions as the input "
                               f"({self.ndim}), got {idx.ndim}")
        idx = idx.astype(int64, copy=False)
        for i, (n, m) in enumerate(zip(idx.shape, self.shape)):
            if i != d and n > m:
                raise RuntimeError(f"gather(): size does not match at dimension {i}: expected index {tuple(idx.shape)} to "
                                   f"be no larger than self {tuple(self.shape)} apart from dimension {d}")
        size = self.shape[d] if self.ndim else 1
        if idx.size and backend.check_values((idx < 0) | (idx >= size), idx, lambda v: RuntimeError(
                f"gather(): index {v} is out of bounds for dimension {d} with size {size}")):
            idx = self.xp.clip(idx, 0, max(size - 1, 0))  # (a check deferred on a GPU: keep the kernel in bounds)
        return S.Gather.apply(self, dim=d, index=idx)

    def sort(self, dim=-1, descending=False, *, stable=True):
        """(values, indices) along `dim`; always stable (equal values keep their order), nan last ascending."""
        d = wrap_dim(dim, self.ndim, "sort")
        if self.ndim == 0:  # one element: itself, at index 0
            index = self.xp.zeros((), dtype=int64)
            return SortResult(S.Gather.apply(self, dim=0, index=index), self.wrap(index, self.device))
        index = S.stable_argsort(self.xp, self.data, d, descending).astype(int64, copy=False)
        return SortResult(S.Gather.apply(self, dim=d, index=index), self.wrap(index, self.device))

    def argsort(self, dim=-1, descending=False, stable=True):
        return self.sort(dim, descending).indices

    def topk(self, k, dim=-1, largest=True, sorted=True):
        """The k largest (or smallest) values along `dim` and their indices, largest first. Among equal values
        the first ones win (a stable order; PyTorch leaves the order of ties unspecified)."""
        d = wrap_dim(dim, self.ndim, "topk")
        n = self.shape[d] if self.ndim else 1
        if not 0 <= k <= n:
            raise RuntimeError(f"topk(): selected index k={k} out of range for a dimension of size {n}")
        if self.ndim == 0:
            return self.sort()
        index = S.stable_argsort(self.xp, self.data, d, descending=largest)
        index = self.xp.take(index, self.xp.arange(k), axis=d).astype(int64, copy=False)
        return SortResult(S.Gather.apply(self, dim=d, index=index), self.wrap(index, self.device))

    # ------------------------------------------------------------ comparisons and logic (never differentiable)
    def eq(self, other):
        return self == other

    def ne(self, other):
        return self != other

    def lt(self, other):
        return self < other

    def le(self, other):
        return self <= other

    def gt(self, other):
        return self > other

    def ge(self, other):
        return self >= other

    not_equal, less, less_equal, greater, greater_equal = ne, lt, le, gt, ge

    def equal(self, other):
        """True if both have the same shape and the same values (dtypes may differ, as in PyTorch)."""
        other = self._other(other)
        return self.shape == other.shape and bool((self.data == other.data).all())

    def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        other = self._other(other)
        if other.dtype != self.dtype:
            raise RuntimeError(f"isclose(): {self.dtype} did not match {other.dtype}; convert one of them first")
        return self.wrap(self.xp.isclose(self.data, other.data, rtol=rtol, atol=atol, equal_nan=equal_nan), self.device)

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return bool(self.isclose(other, rtol, atol, equal_nan).data.all())

    def isnan(self):
        return self._test(self.xp.isnan)

    def isinf(self):
        return self._test(self.xp.isinf)

    def isfinite(self):
        return self._test(self.xp.isfinite)

    def _test(self, fn):
        return self.wrap(fn(self.data) if is_float(self.dtype) else self._nonfloat_test(fn), self.device)

    def _nonfloat_test(self, fn):
        return self.xp.full(self.shape, fn is self.xp.isfinite)  # integers are all finite, never nan or inf

    def logical_and(self, other):
        return self.wrap(self.xp.logical_and(self.data, self._other(other).data), self.device)

    def logical_or(self, other):
        return self.wrap(self.xp.logical_or(self.data, self._other(other).data), self.device)

    def logical_xor(self, other):
        return self.wrap(self.xp.logical_xor(self.data, self._other(other).data), self.device)

    def logical_not(self):
        return self.wrap(self.xp.logical_not(self.data), self.device)
