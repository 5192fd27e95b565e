"""PyTorch's legacy typed constructors: tensorlite.LongTensor([1, 2]), FloatTensor(2, 3), ...

Each is a class whose call makes a plain CPU ``Tensor`` of its dtype, so ``isinstance(x, tensorlite.Tensor)``
holds for what it returns, and ``isinstance(x, tensorlite.LongTensor)`` is true for any int64 CPU tensor,
as in PyTorch.
"""
import numbers

import numpy as np

from .dtypes import TENSOR_TYPE_NAMES, bool_, float16, float32, float64, int8, int16, int32, int64, uint8
from .tensor import Tensor


class TensorType(type):
    """The type of LongTensor and the others (PyTorch's torch.tensortype)."""

    def __call__(cls, *args, device=None):
        """LongTensor(data) converts data; LongTensor(2, 3) is an uninitialized (2, 3) tensor; LongTensor()
        is empty."""
        if all(isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in args):
            return Tensor(np.empty(args if args else (0,), dtype=cls.dtype), device=device)
        if len(args) != 1:
            raise TypeError(f"{cls.__name__}() takes one sequence of data or integer sizes, got {args!r}")
        data = args[0]
        return Tensor(data.data if isinstance(data, Tensor) else data, dtype=cls.dtype, device=device)

    def __instancecheck__(cls, obj):
        return isinstance(obj, Tensor) and obj.dtype == cls.dtype and obj.device == "cpu"

    def __repr__(cls):
        return f"<class 'tensorlite.{cls.__name__}'>"


def _typed(dtype):
    return TensorType(TENSOR_TYPE_NAMES[dtype], (), {"dtype": dtype, "is_cuda": False,
                                                     "__doc__": f"A constructor of {dtype} tensors on the CPU."})


FloatTensor, DoubleTensor, HalfTensor = _typed(float32), _typed(float64), _typed(float16)
LongTensor, IntTensor, ShortTensor, CharTensor = _typed(int64), _typed(int32), _typed(int16), _typed(int8)
ByteTensor, BoolTensor = _typed(uint8), _typed(bool_)
