"""Tensor's operators: + - * / // % ** @, unary -, comparisons, & | ~, and in-place arithmetic.

A mixin of ``Tensor``. It needs from the class: ``data``, ``device``, ``dtype``, ``xp``,
``requires_grad``, ``wrap(array, device)``, ``to(dtype)`` and the constructor ``type(self)(data, device=)``.

Operands meet by PyTorch's rules (``tensorlite.dtypes``): a Python scalar takes the tensor's
dtype unless it is of a higher kind, an integer tensor meets a float one in the float's dtype,
and two floats meet in the wider one through a differentiable cast, so each gradient keeps its
tensor's dtype.
"""
import numbers

import numpy as np

from . import autograd, backend
from ._checks import broadcast_shape, same_device
from .dtypes import default_float, is_float, result_float, scalar_dtype
from .ops import elementwise as E, linalg as L


class TensorOperators:
    __slots__ = ()

    # ------------------------------------------------------------ operands
    def _other(self, other):
        """`other` (Tensor, Python scalar, list or array) as a tensor on this device."""
        if isinstance(other, TensorOperators):
            same_device("an operator", (("one operand", self), ("the other", other)))
            return other
        if isinstance(other, numbers.Number):
            return self.wrap(self.xp.asarray(other, dtype=scalar_dtype(other, self.dtype)), self.device)
        return type(self)(other, device=self.device)

    def _array(self, x):
        """`x` (a Tensor on this device, or anything array-like) as an array on this device, without autograd:
        masks, conditions and indices."""
        if isinstance(x, TensorOperators):
            same_device("an index, mask or condition", (("the tensor", self), ("the argument", x)))
            return x.data
        return backend.to_device(np.asarray(x), self.device)

    def _promote(self, other):
        """(self, other) cast to the dtype they meet in, when one of them is a float."""
        wide = result_float(self.dtype, other.dtype)
        if wide is None:
            return self, other
        return (self if self.dtype == wide else self.to(wide)), (other if other.dtype == wide else other.to(wide))

    def _binary(self, fn, other, reverse=False):
        other = self._other(other)
        a, b = (other, self) if reverse else (self, other)
        a, b = a._promote(b)
        return fn.apply(a, b)

    # ------------------------------------------------------------ arithmetic
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
        if not is_float(self.dtype) and not (isinstance(other, TensorOperators) and is_float(other.dtype)):
            return self.to(default_float)._binary(E.Div, other)  # int / int is a float, as in PyTorch
        return self._binary(E.Div, other)

    def __rtruediv__(self, other):
        if not is_float(self.dtype):
            return self.to(default_float)._binary(E.Div, other, reverse=True)
        return self._binary(E.Div, other, reverse=True)

    def __floordiv__(self, other):
        return self.wrap(self.data // self._other(other).data, self.device)

    def __mod__(self, other):
        return self.wrap(self.data % self._other(other).data, self.device)

    def __pow__(self, other):
        return self._binary(E.Pow, other)

    def __rpow__(self, other):
        return self._binary(E.Pow, other, reverse=True)

    def pow(self, exponent):
        return self ** exponent

    def __neg__(self):
        return E.Neg.apply(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return self.abs()

    # ------------------------------------------------------------ matrix product
    def matmul(self, other):
        """self @ other with NumPy's (and PyTorch's) rules for 1-D operands and batch dimensions."""
        if not isinstance(other, TensorOperators):
            raise TypeError("matmul() takes two tensors")
        a, b = self, other
        if a.ndim == 0 or b.ndim == 0:
            raise RuntimeError(f"matmul: both arguments need at least 1 dimension, got shapes {a.shape} and {b.shape}")
        k_a = a.shape[-1]
        k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
        if k_a != k_b:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match: the last dimension of the first "
                             f"({k_a}) must equal the {'first' if b.ndim == 1 else 'second-to-last'} of the second "
                             f"({k_b})")
        broadcast_shape((a.shape[:-2], b.shape[:-2]),
                        f"matmul: batch dimensions of {a.shape} and {b.shape} do not broadcast")
        a, b = a._promote(b)
        return L.MatMul.apply(a, b)

    def __matmul__(self, other):
        return self.matmul(self._other(other))  # x @ ndarray works, like x * ndarray and ndarray @ x

    def __rmatmul__(self, other):
        return self._other(other).matmul(self)

    # ------------------------------------------------------------ comparisons and logic (never differentiable)
    def _compare(self, op, other):
        return self.wrap(op(self.data, self._other(other).data), self.device)

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
        return self.wrap(~self.data, self.device)

    def __and__(self, other):
        return self._compare(lambda a, b: a & b, other)

    def __or__(self, other):
        return self._compare(lambda a, b: a | b, other)

    __hash__ = object.__hash__  # defining __eq__ would otherwise make tensors unhashable

    # ------------------------------------------------------------ in place (outside any graph)
    # What optimizers and users do under no_grad: the array changes, no node is recorded.
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
