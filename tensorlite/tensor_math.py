"""Tensor's math: elementwise functions (exp, tanh, relu, gelu, clamp, ...) and reductions (sum, mean,
var, max, logsumexp, argmax, ...), each a Function from ``tensorlite.ops``.

A mixin of ``Tensor``. It needs from the class: ``data``, ``device``, ``dtype``, ``ndim``, ``xp``,
``wrap(array, device)``, ``to(dtype)``, and from the operators mixin ``_binary`` and ``_array``.
"""
from collections import namedtuple

from ._checks import broadcast_shape, wrap_dim
from .dtypes import bool_, default_float, int64, is_float
from .ops import elementwise as E, reduce as R
from .ops.softmax import LogSoftmax, Softmax

ReturnTypes = namedtuple("ReturnTypes", ["values", "indices"])


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
        if min is None and max is None:
            raise ValueError("clamp() needs min, max or both")
        if not is_float(self.dtype) and any(isinstance(v, float) for v in (min, max)):
            return self.to(default_float).clamp(min, max)  # int tensor, float bounds: a float result, as in PyTorch
        return E.Clamp.apply(self, min=min, max=max)

    clip = clamp

    def masked_fill(self, mask, value):
        mask = self._array(mask)
        if mask.dtype != bool:
            raise TypeError(f"masked_fill() needs a bool mask, got dtype {mask.dtype}")
        broadcast_shape((mask.shape, self.shape), f"masked_fill(): mask of shape {mask.shape} does not broadcast "
                                                  f"to {self.shape}")
        return E.MaskedFill.apply(self, mask=mask, value=value)

    def sign(self):
        return self.wrap(self.xp.sign(self.data), self.device)

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
        return R.Max.apply(self, dim=dim, keepdim=keepdim, is_min=False)

    def amin(self, dim=None, keepdim=False):
        return R.Max.apply(self, dim=dim, keepdim=keepdim, is_min=True)

    def logsumexp(self, dim, keepdim=False):
        return R.LogSumExp.apply(self._as_float(), dim=dim, keepdim=keepdim)

    def argmax(self, dim=None, keepdim=False):
        return self._arg(self.xp.argmax, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return self._arg(self.xp.argmin, dim, keepdim)

    def _arg(self, fn, dim, keepdim):
        index = fn(self.data, axis=dim)
        if keepdim and dim is not None:
            index = self.xp.expand_dims(index, dim)
        return self.wrap(self.xp.asarray(index).astype(int64), self.device)

    def all(self):
        return self.wrap(self.xp.asarray(self.data.all()), self.device)

    def any(self):
        return self.wrap(self.xp.asarray(self.data.any()), self.device)

    def softmax(self, dim):
        """exp(x) / sum(exp(x)) along `dim`, computed without overflow."""
        return Softmax.apply(self._floating("softmax"), dim=wrap_dim(dim, self.ndim, "softmax"))

    def log_softmax(self, dim):
        """x - logsumexp(x) along `dim`: finite for any finite logits (unlike log(softmax(x)))."""
        return LogSoftmax.apply(self._floating("log_softmax"), dim=wrap_dim(dim, self.ndim, "log_softmax"))
