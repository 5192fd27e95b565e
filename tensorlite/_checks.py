"""Boundary checks: each decision about a caller's dims, shapes and devices, made in one place.

Public functions (Tensor methods, ``tensorlite.*``, ``nn.functional``) call these before they
apply a Function; the Functions themselves trust their inputs. Every error names the bad values
and says what would be valid. This module imports only NumPy, so any layer of the package can use it.
"""
import numbers

import numpy as np


def wrap_dim(dim, ndim, fname=None):
    """`dim` in [-ndim, ndim) as a non-negative index. A 0-d tensor accepts 0 and -1, as in PyTorch."""
    n = max(ndim, 1)
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or not -n <= dim < n:
        where = f"{fname}(): " if fname else ""
        raise IndexError(f"{where}dimension {dim!r} is out of range for a tensor with {ndim} dimension(s) "
                         f"(expected {-n} to {n - 1})")
    return int(dim) % n


def normalize_dims(dim, ndim):
    """dim (None, int or a sequence of ints, negatives allowed) -> sorted tuple of axes; None is all of them."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    out = [wrap_dim(d, ndim) for d in dims]
    if len(set(out)) != len(out):
        raise RuntimeError(f"dimension repeated in {dim}: name each dimension once")
    return tuple(sorted(out)) if ndim else ()  # a 0-d tensor accepts dim 0 / -1 and has nothing to reduce


def shape_args(args):
    """Accept f(2, 3) and f((2, 3)) alike."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(int(a) for a in args[0])
    return tuple(int(a) for a in args)


def resolve_shape(shape, current, size):
    """A reshape target with its one -1 filled in; RuntimeError if it does not keep the element count."""
    shape = list(shape)
    bad = RuntimeError(f"shape {tuple(shape)} is invalid for a tensor of shape {tuple(current)} ({size} elements)")
    if shape.count(-1) > 1 or any(n < -1 for n in shape):
        raise bad
    if -1 in shape:
        known = int(np.prod([n for n in shape if n != -1]))
        if known == 0 or size % known:
            raise bad
        shape[shape.index(-1)] = size // known
    if int(np.prod(shape)) != size:
        raise bad
    return tuple(shape)


def broadcast_shape(shapes, message):
    """The shape `shapes` broadcast to (NumPy's and PyTorch's rule), or a ValueError that starts with
    `message` (which names the caller and the shapes) and states the rule."""
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ValueError(f"{message} (each dimension, aligned from the right, must be equal or 1)") from None


def same_device(where, tensors):
    """The one device of `tensors` (pairs of (name, tensor); None entries are skipped); RuntimeError naming
    the first two that differ, and how to move one."""
    first = None
    for name, t in tensors:
        if t is None:
            continue
        if first is None:
            first = (name, t.device)
        elif t.device != first[1]:
            raise RuntimeError(f"{where}: expected all tensors on the same device, but found {first[1]} and "
                               f"{t.device} ({first[0]} and {name}); move them with .to({first[1]!r}) or "
                               f".to({t.device!r})")
    return None if first is None else first[1]
