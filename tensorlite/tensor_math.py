"""Tensor's math: elementwise functions (exp, tanh, relu, gelu, clamp, ...) and reductions (sum, mean,
var, max, logsumexp, argmax, ...), each a Function from ``tensorlite.ops``.

A mixin of ``Tensor``. It needs from the class: ``data``, ``device``, ``dtype``, ``ndim``, ``xp``,
``wrap(array, device)``, ``to(dtype)``, and from the operators mixin ``_binary`` and ``_array``.
"""
from collections import namedtuple

import numpy as np

from ._checks import normalize_dims, wrap_dim
from .dtypes import bool_, default_float, int64, is_float
from .ops import elementwise as E, reduce as R
from .ops.softmax import LogSoftmax, Softmax

ReturnTypes = namedtuple("ReturnTypes", ["values", "indices"])


def _all_if_empty(dim):
    """dim=[] or () means every dim, as in PyTorch (NumPy's axis=() would mean none)."""
    return None if isinstance(dim, (tuple, list)) and len(dim) == 0 else dim


class TensorMath:
    __slots__ = ()

    # ------------------------------------------------------------ elementwise math
    def _as_float(self):
        """Integer/bool input to a float-valued function becomes float32 first (PyTorch's rule), not NumPy's float64."""
        return self if is_float(self.dtype) else self.to(default_float)

    def _floating(self, fname):
        """self, if it is a floating-point tensor; functions without an integer meaning refuse the others."""
        if not is_float(self.dtype):
            raise TypeError(f"{fname}(): input must be a floating-point tensor, got dtype {self.dtype}")
        return self

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
        if approximate not in ("none", "tanh"):
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        return E.GELU.apply(self._as_float(), approximate=approximate)

    def maximum(self, other):
        return self._binary(E.Maximum, other)

    def minimum(self, other):
        return self._binary(E.Minimum, other)

    def clamp(self, min=None, max=None):
        """Bounds are numbers or tensors (broadcasting, differentiable in all three, as in PyTorch)."""
        if min is None and max is None:
            raise RuntimeError("clamp(): at least one of 'min' or 'max' must not be None")
        if isinstance(min, TensorMath) or isinstance(max, TensorMath):
            return self._clamp_tensors(min, max)
        if not is_float(self.dtype) and any(isinstance(v, float) for v in (min, max)):
            return self.to(default_float).clamp(min, max)  # int tensor, float bounds: a float result, as in PyTorch
        return E.Clamp.apply(self, min=min, max=max)

    clip = clamp

    def _clamp_tensors(self, min, max):
        bounds = [self._other(b) for b in (min, max) if b is not None]
        x = self
        for b in bounds:  # the dtype all three meet in
            x = x._promote(b)[0]
        bounds = [b if b.dtype == x.dtype else b.to(x.dtype) for b in bounds]
        return E.ClampTensor.apply(x, *bounds, has_min=min is not None, has_max=max is not None)

    def masked_fill(self, mask, value):
        """`value` where `mask` holds; a 0-d tensor value is differentiable (its gradient: the filled places' sum)."""
        mask = self._array(mask)
        if mask.dtype != bool:
            raise RuntimeError(f"masked_fill only supports boolean masks, but got mask with dtype {mask.dtype}; "
                               "compare to make one (x > 0)")
        E.check_broadcast("masked_fill(): mask and tensor", mask.shape, self.shape)
        if isinstance(value, TensorMath):
            if value.ndim != 0:
                raise RuntimeError(f"masked_fill only supports a 0-dimensional value tensor, but got a tensor with "
                                   f"{value.ndim} dimension(s); pass a number or a 0-d tensor")
            return E.MaskedFill.apply(self, value, mask=mask, value=None)
        return E.MaskedFill.apply(self, mask=mask, value=value)

    def sign(self):
        """-1, 0 or 1; for floats its gradient is 0 everywhere (PyTorch's), for ints and bools a plain copy."""
        if is_float(self.dtype):
            return E.Rounding.apply(self, op=self.xp.sign)
        return self.wrap(self.xp.sign(self.data), self.device)

    # ------------------------------------------------------------ reductions
    def sum(self, dim=None, keepdim=False, dtype=None):
        """Integer and bool sums are int64 unless `dtype` says otherwise (PyTorch's rule); dim=[] is every dim."""
        return R.Sum.apply(self._reduce_input(dtype), dim=_all_if_empty(dim), keepdim=keepdim)

    def _reduce_input(self, dtype):
        if dtype is not None:
            return self if np.dtype(dtype) == self.dtype else self.to(dtype)
        return self if is_float(self.dtype) or self.dtype == int64 else self.to(int64)

    def mean(self, dim=None, keepdim=False, dtype=None):
        x = self if dtype is None else self.to(dtype)
        if not is_float(x.dtype):
            raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be a floating point dtype, "
                               f"got {x.dtype}; convert with .float() or pass dtype=")
        return R.Mean.apply(x, dim=_all_if_empty(dim), keepdim=keepdim)

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        """PyTorch's overloads: var(dim, unbiased, keepdim), var(dim, *, correction, keepdim), var(unbiased)."""
        x, params = self._var_args("var", dim, unbiased, keepdim, correction)
        return R.Var.apply(x, **params)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        x, params = self._var_args("std", dim, unbiased, keepdim, correction)
        return R.Std.apply(x, **params)

    def _var_args(self, name, dim, unbiased, keepdim, correction):
        if isinstance(dim, bool):  # var(False): the only positional argument is `unbiased`
            dim, unbiased = None, dim
        if unbiased is not None and not isinstance(unbiased, bool):
            raise TypeError(f"{name}(): the second positional argument is `unbiased` (a bool), got {unbiased!r}; "
                            f"pass keepdim= and correction= by keyword")
        if unbiased is not None and correction is not None:
            raise TypeError(f"{name}(): give either unbiased or correction, not both")
        if not is_float(self.dtype):
            raise RuntimeError(f"{name}(): std and var only support floating point dtypes, got {self.dtype}; "
                               "convert with .float()")
        c = (0 if unbiased is False else 1) if correction is None else correction
        return self, {"dim": _all_if_empty(dim), "keepdim": keepdim, "correction": c}

    def _extreme(self, dim, keepdim, is_min):
        name = "min" if is_min else "max"
        if dim is None or not isinstance(dim, int):  # max() splits ties; max(dim) sends them to its index
            return R.Max.apply(self, dim=_all_if_empty(dim), keepdim=keepdim, is_min=is_min, split_ties=True, name=name)
        values = R.Max.apply(self, dim=dim, keepdim=keepdim, is_min=is_min, split_ties=False, name=name)
        index = (self.xp.argmin if is_min else self.xp.argmax)(self.data, axis=dim)
        if keepdim and self.ndim:  # (a 0-d tensor has no axis to keep: its index stays 0-d, like its value)
            index = self.xp.expand_dims(index, dim)
        return ReturnTypes(values, self.wrap(index.astype(int64), self.device))

    def max(self, dim=None, keepdim=False):
        """max() -> tensor; max(dim) -> (values, indices), as in PyTorch."""
        if isinstance(dim, TensorMath):
            return self.maximum(dim)
        return self._extreme(dim, keepdim, is_min=False)

    def min(self, dim=None, keepdim=False):
        if isinstance(dim, TensorMath):
            return self.minimum(dim)
        return self._extreme(dim, keepdim, is_min=True)

    def amax(self, dim=None, keepdim=False):
        """The maximum over dims; tied maxima share the gradient evenly (PyTorch's convention)."""
        return R.Max.apply(self, dim=_all_if_empty(dim), keepdim=keepdim, is_min=False, split_ties=True, name="amax")

    def amin(self, dim=None, keepdim=False):
        return R.Max.apply(self, dim=_all_if_empty(dim), keepdim=keepdim, is_min=True, split_ties=True, name="amin")

    def logsumexp(self, dim, keepdim=False):
        return R.LogSumExp.apply(self._as_float(), dim=dim, keepdim=keepdim)

    def argmax(self, dim=None, keepdim=False):
        return self._arg("argmax", dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return self._arg("argmin", dim, keepdim)

    def _arg(self, name, dim, keepdim):
        dims = normalize_dims(dim, self.ndim)
        R.check_nonempty(name, self.data, dims, dim is None)
        index = getattr(self.xp, name)(self.data, axis=None if dim is None else dims[0] if dims else None)
        index = self.xp.asarray(index).astype(int64)
        if keepdim:  # without a dim, every dim is kept as 1 (PyTorch's (1, 1, ...) shape)
            index = index.reshape(self.shape[:dims[0]] + (1,) + self.shape[dims[0] + 1:]) \
                if dim is not None and dims else index.reshape((1,) * self.ndim)
        return self.wrap(index, self.device)

    def norm(self, p="fro", dim=None, keepdim=False):
        """The vector p-norm over dims (all by default): p = 2 / 'fro' (gradient 0 at 0, as in PyTorch), 1, inf."""
        x, dim = self._floating("norm"), _all_if_empty(dim)
        if p in (2, "fro"):
            return R.Norm2.apply(x, dim=dim, keepdim=keepdim)
        if p == 1:
            return x.abs().sum(dim, keepdim)
        if p == float("inf"):
            return x.abs().amax(dim, keepdim)
        raise ValueError(f"norm(): p must be 1, 2, 'fro' or inf here, got {p!r}")

    def all(self, dim=None, keepdim=False):
        return self._logical_reduce("all", dim, keepdim)

    def any(self, dim=None, keepdim=False):
        return self._logical_reduce("any", dim, keepdim)

    def _logical_reduce(self, name, dim, keepdim):
        axis = None if dim is None else normalize_dims(dim, self.ndim)
        out = getattr(self.data.astype(bool, copy=False), name)(axis=axis, keepdims=keepdim)
        return self.wrap(self.xp.asarray(out), self.device)

    # ------------------------------------------------------------ NumPy ufuncs
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """np.exp(t), np.multiply(t, t), ndarray + t: the Tensor operation of the same name, so the result is a
        Tensor that keeps the graph (PyTorch also returns a Tensor). A ufunc without a Tensor meaning, or a
        ufunc method such as np.add.reduce, raises TypeError instead of silently returning an ndarray.
        out= is accepted only for ndarrays and tensors that do not require grad (a plain NumPy computation)."""
        name = ufunc.__name__
        if method == "__call__" and "out" in kwargs and len(kwargs) == 1 and not any(
                getattr(x, "requires_grad", False) for x in inputs):
            arrays = [np.asarray(x) if isinstance(x, TensorMath) else x for x in inputs]
            return ufunc(*arrays, out=tuple(np.asarray(o) if isinstance(o, TensorMath) else o for o in kwargs["out"]))
        op = _UFUNCS.get(name) if method == "__call__" and not kwargs else None
        if op is None:
            what = f"np.{name}.{method}" if method != "__call__" else f"np.{name}" + (
                f" with {', '.join(kwargs)}=" if kwargs else "")
            raise TypeError(f"{what} is not supported on tensorlite tensors (it would drop the autograd graph); use "
                            f"the Tensor method or tensorlite function, or convert with .numpy() / .detach().numpy()")
        # every operand becomes a tensor; a NumPy scalar counts as a Python number (PyTorch's dtype rule)
        args = [x if isinstance(x, TensorMath) else self._other(x.item() if isinstance(x, np.generic) else x)
                for x in inputs]
        return op(*args)

    def softmax(self, dim):
        """exp(x) / sum(exp(x)) along `dim`, computed without overflow."""
        return Softmax.apply(self._floating("softmax"), dim=wrap_dim(dim, self.ndim, "softmax"))

    def log_softmax(self, dim):
        """x - logsumexp(x) along `dim`: finite for any finite logits (unlike log(softmax(x)))."""
        return LogSoftmax.apply(self._floating("log_softmax"), dim=wrap_dim(dim, self.ndim, "log_softmax"))


# NumPy ufunc name -> the Tensor operation (every operand already a Tensor)
_UFUNCS = {
    "add": lambda a, b: a + b, "subtract": lambda a, b: a - b, "multiply": lambda a, b: a * b,
    "true_divide": lambda a, b: a / b, "divide": lambda a, b: a / b, "floor_divide": lambda a, b: a // b,
    "remainder": lambda a, b: a % b, "power": lambda a, b: a ** b, "matmul": lambda a, b: a @ b,
    "maximum": lambda a, b: a.maximum(b), "minimum": lambda a, b: a.minimum(b),
    "equal": lambda a, b: a == b, "not_equal": lambda a, b: a != b, "less": lambda a, b: a < b,
    "less_equal": lambda a, b: a <= b, "greater": lambda a, b: a > b, "greater_equal": lambda a, b: a >= b,
    "logical_and": lambda a, b: a.logical_and(b), "logical_or": lambda a, b: a.logical_or(b),
    "logical_xor": lambda a, b: a.logical_xor(b), "bitwise_and": lambda a, b: a & b, "bitwise_or": lambda a, b: a | b,
    "logical_not": lambda a: a.logical_not(), "invert": lambda a: ~a, "negative": lambda a: -a,
    "positive": lambda a: +a, "absolute": lambda a: a.abs(), "rint": lambda a: a.round(),
}
for _name in ("exp", "log", "sqrt", "tanh", "sin", "cos", "sign", "square", "log1p", "expm1", "log2", "log10",
              "reciprocal", "floor", "ceil", "trunc", "isnan", "isinf", "isfinite"):
    _UFUNCS[_name] = getattr(TensorMath, _name, None) or (lambda n: lambda a: getattr(a, n)())(_name)
