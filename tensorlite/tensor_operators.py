"""Tensor's operators: + - * / // % ** @, unary -, comparisons, & | ~, and in-place arithmetic.

A mixin of ``Tensor``. It needs from the class: ``data``, ``device``, ``dtype``, ``xp``,
``requires_grad``, ``wrap(array, device)``, ``to(dtype)`` and the constructor ``type(self)(data, device=)``.

Operands meet by PyTorch's rules (``tensorlite.dtypes.result_type``): the highest kind (bool < int <
float) wins, and within a kind a tensor with dimensions decides over a 0-d tensor, which decides over a
Python scalar. Float operands are cast through a differentiable Cast, so each gradient keeps its
tensor's dtype.

In-place methods (add_ ... fill_, []=) change the array itself and bump the tensor's version counter.
When a gradient must pass (grad mode, and the tensor or an operand requires grad) the change is
recorded: the new value is computed out of place by the usual Functions from a copy of the old one,
written into the same memory, and the tensor becomes the output of the new node (PyTorch's "rebase").
"""
import numbers
import operator

import numpy as np

from . import amp, autograd, backend
from ._checks import broadcast_shape, same_device
from .dtypes import can_cast, default_float, is_float, result_type, scalar_dtype, torch_name
from .ops import arith as A, elementwise as E, linalg as L, shape as S


class TensorOperators:
    __slots__ = ()

    # ------------------------------------------------------------ operands
    def _other(self, other):
        """`other` (Tensor, Python scalar, list or array) as a tensor on this device; a Python scalar gets
        the dtype it meets this tensor in."""
        if isinstance(other, TensorOperators):
            same_device("an operator", (("one operand", self), ("the other", other)))
            return other
        if isinstance(other, numbers.Number):
            dtype = scalar_dtype(other, self.dtype)  # result_type(self, other), without the general machinery
            try:
                array = self.xp.asarray(other, dtype=dtype)
            except OverflowError:  # e.g. int8 tensor + 1000: wraps around, as PyTorch
                array = self.xp.asarray(other).astype(dtype)
            return self.wrap(array, self.device)
        return type(self)(other, device=self.device)

    def _array(self, x):
        """`x` (a Tensor on this device, or anything array-like) as an array on this device, without autograd:
        masks, conditions and indices."""
        if isinstance(x, TensorOperators):
            same_device("an index, mask or condition", (("the tensor", self), ("the argument", x)))
            return x.data
        return backend.to_device(np.asarray(x), self.device)

    def _promote(self, other, dtype=None):
        """(self, other) cast to the dtype they meet in (or to `dtype`)."""
        dtype = result_type(self, other) if dtype is None else dtype
        return (self if self.dtype == dtype else self.to(dtype)), (other if other.dtype == dtype else other.to(dtype))

    def _binary(self, fn, other, reverse=False, floating=False):
        if floating and isinstance(other, numbers.Number) and not is_float(self.dtype):
            other = float(other)  # uint8 / -3: the scalar joins as a float (in uint8 it would wrap to 253)
        other = self._other(other)
        a, b = (other, self) if reverse else (self, other)
        dtype = result_type(a, b)
        if floating and not is_float(dtype):
            dtype = default_float  # int / int is a float, as in PyTorch
        a, b = a._promote(b, dtype)
        return fn.apply(a, b)

    # ------------------------------------------------------------ arithmetic
    def __add__(self, other):
        return self._binary(E.Add, other)

    def __radd__(self, other):
        return self._binary(E.Add, other, reverse=True)

    def _no_bool_sub(self, other):
        """PyTorch refuses `-` when either operand is a bool (tensor or Python bool): a mask is inverted with ~."""
        a = self.data.dtype == np.bool_
        b = isinstance(other, bool) or (isinstance(other, TensorOperators) and other.data.dtype == np.bool_)
        if a or b:
            what = "with two bool tensors" if a and b else "with a bool tensor"
            raise RuntimeError(f"Subtraction, the `-` operator, {what} is not supported. If you are trying to "
                               "invert a mask, use the `~` or `logical_not()` operator instead.")

    def __sub__(self, other):
        self._no_bool_sub(other)
        return self._binary(E.Sub, other)

    def __rsub__(self, other):
        self._no_bool_sub(other)
        return self._binary(E.Sub, other, reverse=True)

    def __mul__(self, other):
        return self._binary(E.Mul, other)

    def __rmul__(self, other):
        return self._binary(E.Mul, other, reverse=True)

    def __truediv__(self, other):
        return self._binary(E.Div, other, floating=True)

    def __rtruediv__(self, other):
        return self._binary(E.Div, other, reverse=True, floating=True)

    def _not_for_bool(self, other, name):
        """// % ** have no bool kernel in PyTorch: a NotImplementedError when the operands meet in bool."""
        if not isinstance(other, (TensorOperators, numbers.Number)):
            other = self._other(other)
        if result_type(self, other) == np.bool_:
            raise NotImplementedError(f'"{name}" not implemented for \'Bool\'; convert with .long() or .float() first')

    def __floordiv__(self, other):
        self._not_for_bool(other, "div_floor")
        return self._binary(A.FloorDivide, other)

    def __rfloordiv__(self, other):
        self._not_for_bool(other, "div_floor")
        return self._binary(A.FloorDivide, other, reverse=True)

    def __mod__(self, other):
        self._not_for_bool(other, "remainder")
        return self._binary(A.Remainder, other)

    def __rmod__(self, other):
        self._not_for_bool(other, "remainder")
        return self._binary(A.Remainder, other, reverse=True)

    def floor_divide(self, other):
        return self // other

    def remainder(self, other):
        return self % other

    def __pow__(self, other):
        if isinstance(other, numbers.Integral) and not is_float(self.dtype):
            if not isinstance(other, bool) and other < 0:
                raise RuntimeError("Integers to negative integer powers are not allowed. (Use a float: x.float() ** -1)")
            if isinstance(other, bool) and self.data.dtype == np.bool_:  # PyTorch: b ** True is b, b ** False is all True (x ** 0 = 1)
                return self.clone() if other else self.wrap(self.xp.ones(self.shape, dtype=bool), self.device)
        self._not_for_bool(other, "pow")
        return self._binary(E.Pow, other)

    def __rpow__(self, other):
        self._not_for_bool(other, "pow")
        return self._binary(E.Pow, other, reverse=True)

    def pow(self, exponent):
        return self ** exponent

    def __neg__(self):
        if self.data.dtype == np.bool_:
            raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. If you are trying "
                               "to invert a mask, use the `~` or `logical_not()` operator instead.")
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
            raise RuntimeError(f"matmul: both arguments need at least 1 dimension, got shapes {tuple(a.shape)} and {tuple(b.shape)}")
        k_a = a.shape[-1]
        k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
        if k_a != k_b:
            raise RuntimeError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied: the last "
                               f"dimension of the first ({k_a}) must equal the "
                               f"{'first' if b.ndim == 1 else 'second-to-last'} of the second ({k_b})")
        a, b = amp.lower(a, b)  # inside autocast: a float16 product
        if a.dtype != b.dtype:  # PyTorch does not promote in matmul
            raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {a.dtype} != {b.dtype}; "
                               "convert one with .to(dtype)")
        try:
            broadcast_shape((a.shape[:-2], b.shape[:-2]), "")
        except ValueError:
            raise RuntimeError(f"matmul: batch dimensions of {tuple(a.shape)} and {tuple(b.shape)} do not broadcast "
                               "(each, aligned from the right, must be equal or 1)") from None
        return L.MatMul.apply(a, b)

    def __matmul__(self, other):
        return self.matmul(self._other(other))  # x @ ndarray works, like x * ndarray and ndarray @ x

    def __rmatmul__(self, other):
        return self._other(other).matmul(self)

    # ------------------------------------------------------------ comparisons and logic (never differentiable)
    def _compare(self, op, other):
        a, b = self._promote(self._other(other))
        return self.wrap(op(a.data, b.data), self.device)

    def __eq__(self, other):
        return self._compare(operator.eq, other)

    def __ne__(self, other):
        return self._compare(operator.ne, other)

    def __lt__(self, other):
        return self._compare(operator.lt, other)

    def __le__(self, other):
        return self._compare(operator.le, other)

    def __gt__(self, other):
        return self._compare(operator.gt, other)

    def __ge__(self, other):
        return self._compare(operator.ge, other)

    def __invert__(self):
        return self.wrap(~self.data, self.device)

    def _bitwise(self, op, other):
        """& | ^ on bools and integers only; PyTorch has no float kernel for them (NotImplementedError)."""
        a, b = self._promote(self._other(other))
        if is_float(a.dtype):
            raise NotImplementedError(f'"bitwise_{op.__name__.strip("_")}" not implemented for '
                                      f"'{torch_name(a.dtype)}' (& | ^ take bool or integer tensors)")
        return self.wrap(op(a.data, b.data), self.device)

    def __and__(self, other):
        return self._bitwise(operator.and_, other)

    def __or__(self, other):
        return self._bitwise(operator.or_, other)

    def __xor__(self, other):
        return self._bitwise(operator.xor, other)

    def __rand__(self, other):
        return self._bitwise(operator.and_, other)

    def __ror__(self, other):
        return self._bitwise(operator.or_, other)

    def __rxor__(self, other):
        return self._bitwise(operator.xor, other)

    def __contains__(self, element):
        """`v in x`: whether any element of x equals v (a number or a tensor that broadcasts), as PyTorch."""
        if not isinstance(element, (TensorOperators, numbers.Number)):
            raise RuntimeError(f"Tensor.__contains__ only supports Tensor or scalar, but you passed in a "
                               f"{type(element).__name__}")
        return bool((self == element).data.any())

    __hash__ = object.__hash__  # defining __eq__ would otherwise make tensors unhashable

    # ------------------------------------------------------------ in place
    def _check_inplace(self):
        """PyTorch's refusals: under grad mode a leaf that requires grad (or a view of one) cannot change in
        place, since its old value is what the gradient is about."""
        if not autograd.is_grad_enabled():
            return
        if self.requires_grad and self._ctx is None:
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation. "
                               "(Change it inside `with tensorlite.no_grad():`, as optimizers do.)")
        base = self._base
        if base is not None and base.requires_grad and base._ctx is None:
            raise RuntimeError("a view of a leaf Variable that requires grad is being used in an in-place "
                               "operation. (Change it inside `with tensorlite.no_grad():`.)")

    def _write(self, compute, operands=(), reads_self=True, check_cast=True):
        """Set self's memory to compute(old, *operands), a tensor computed out of place; bump the version.
        `reads_self`: compute reads old's values, so a recorded graph gets a copy of them (Clone).
        `check_cast`: refuse a result of a higher kind than self (PyTorch: int += 1.5 raises)."""
        self._check_inplace()
        record = autograd.is_grad_enabled() and (self.requires_grad or any(o.requires_grad for o in operands))
        if record and self._base is not None:
            raise RuntimeError("tensorlite does not record an in-place change of a view of a tensor in a graph; "
                               "change the tensor itself (x[0, 1] = v, not x[0][1] = v), or work out of place")
        new = compute(S.Clone.apply(self) if record and reads_self else self, *operands)
        if check_cast and not can_cast(new.dtype, self.dtype):
            raise RuntimeError(f"result type {torch_name(new.dtype)} can't be cast to the desired output type "
                               f"{torch_name(self.dtype)}")
        if new.shape != self.shape:  # x.add_(y) with y of a bigger shape: x cannot grow
            raise RuntimeError(f"output with shape {tuple(self.shape)} doesn't match the broadcast shape "
                               f"{tuple(new.shape)} (an in-place result must keep the tensor's shape)")
        if record and new.dtype != self.dtype:
            new = new.to(self.dtype)
        self.data[...] = new.data
        if record:
            self._ctx, self.requires_grad = new._ctx, new.requires_grad
        self._version_counter.value += 1
        return self

    def _arith_(self, fn, iop, other, alpha=1):
        """add_/sub_/mul_/div_: NumPy's in-place operator when nothing is recorded and no cast is needed."""
        other = self._other(other)
        if alpha != 1:
            other = other * alpha
        if fn is not E.Div and not (autograd.is_grad_enabled() and (self.requires_grad or other.requires_grad)):
            self._check_inplace()
            dtype = result_type(self, other)
            if dtype == self.dtype:  # the common case, e.g. p -= lr * g under no_grad: no temporary
                iop(self.data, other.data if other.dtype == dtype else other.data.astype(dtype))
                self._version_counter.value += 1
                return self
        return self._write(lambda old, b: old._binary(fn, b, floating=fn is E.Div), (other,))

    def add_(self, other, alpha=1):
        return self._arith_(E.Add, operator.iadd, other, alpha)

    def sub_(self, other, alpha=1):
        self._no_bool_sub(other)
        return self._arith_(E.Sub, operator.isub, other, alpha)

    def mul_(self, other):
        return self._arith_(E.Mul, operator.imul, other)

    def div_(self, other):
        return self._arith_(E.Div, operator.itruediv, other)

    __iadd__, __isub__, __imul__, __itruediv__ = add_, sub_, mul_, div_

    def clamp_(self, min=None, max=None):
        return self._write(lambda old: old.clamp(min, max))

    def pow_(self, exponent):
        return self._write(lambda old: old ** exponent)

    __ipow__ = pow_

    def exp_(self):
        return self._write(lambda old: old.exp())

    def neg_(self):
        return self._write(lambda old: -old, reads_self=False)  # -old needs only the gradient, not old's values

    negative_ = neg_

    def masked_fill_(self, mask, value):
        """`value` written where `mask` (a bool tensor that broadcasts to this shape) holds."""
        if isinstance(value, TensorOperators):
            return self._write(lambda old, v: old.masked_fill(mask, v), (value,), reads_self=False)
        return self._write(lambda old: old.masked_fill(mask, value), reads_self=False)

    def copy_(self, src):
        """Copy `src` (broadcast to this shape, any dtype: floats truncate into integers) into self."""
        src = src if isinstance(src, TensorOperators) else type(self)(src, device=self.device)
        if src.device != self.device:
            src = src.to(self.device)
        return self._write(lambda old, s: S.Overwrite.apply(old, s), (src,), reads_self=False, check_cast=False)

    def fill_(self, value):
        """Every element set to `value` (a number or a 0-d tensor, whose gradient is then recorded)."""
        if isinstance(value, TensorOperators) and value.ndim:
            raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor with {value.ndim} "
                               "dimensions")
        return self.copy_(value if isinstance(value, TensorOperators) else
                          self.wrap(self.xp.asarray(value).astype(self.dtype), self.device))
