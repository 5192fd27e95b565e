"""Argument checks shared by the functions of ``nn.functional`` (and its loss and activation files).

Each raises the exception type PyTorch raises for the same mistake, with a one-line message.
"""
import numpy as np

from .. import backend
from .._checks import same_device
from ..dtypes import is_float
from ..tensor import Tensor


# ---------------------------------------------------------------- boundary checks: the nn-specific ones
# (dims and devices are decided in tensorlite._checks; these take the function's name for the message)
def check_tensor(x, name, fname, floating=True):
    """TypeError unless x is a Tensor (of a floating-point dtype, when `floating`)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{fname}(): {name} must be a tensorlite.Tensor, got {type(x).__name__}")
    if floating and not is_float(x.dtype):
        raise TypeError(f"{fname}(): {name} must be a floating-point tensor, got dtype {x.dtype}")


def check_same_dtype(fname, **tensors):
    """RuntimeError (PyTorch's type) unless the given tensors (None entries skipped) share one dtype: nn functions
    never promote."""
    dtypes = {name: t.dtype for name, t in tensors.items() if t is not None}
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{n} {d}" for n, d in dtypes.items())
        raise RuntimeError(f"{fname}(): expected tensors of one dtype, got {listed}; convert with .to(dtype)")


def check_same_device(fname, **tensors):
    """RuntimeError unless the given tensors (None entries skipped) are on one device."""
    same_device(f"{fname}()", tensors.items())


def index_array(idx, like, fname, name, like_name):
    """An integer index (Tensor, array or list) as an array on the device of the tensor `like`."""
    if isinstance(idx, Tensor):
        check_same_device(fname, **{like_name: like, name: idx})
        arr = idx.data
    else:
        arr = backend.to_device(np.asarray(idx), like.device)
    if arr.dtype.kind not in "iu":
        raise RuntimeError(f"{fname}(): expected {name} of an integer dtype (int64 indices), got {arr.dtype}")
    return arr


def check_dropout_p(p, fname):
    """p as a float; ValueError unless it is a number in [0, 1] (p = 1 drops everything, as in PyTorch)."""
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)) or not 0 <= p <= 1:
        raise ValueError(f"{fname}(): dropout probability has to be between 0 and 1, but got {p!r}")
    return float(p)

def check_reduction(reduction, fname):
    """ValueError unless reduction is 'mean', 'sum' or 'none' (PyTorch's message)."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{fname}(): {reduction!r} is not a valid value for reduction: use 'mean', 'sum' or 'none'")


def reduce_loss(losses, reduction):
    """Elementwise losses (a Tensor) reduced as `reduction` says."""
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.mean()
