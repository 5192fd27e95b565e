"""Functions that move elements around without changing their values, and the in-place writes
(SetItem, Overwrite) that Tensor's ``[]=``, ``copy_`` and ``fill_`` record when a gradient must pass.

Flags (see autograd.Function): none of these reads its input arrays in backward, only shapes and
indices, so ``saves_inputs = False`` everywhere; Reshape, Permute, BroadcastTo and a basic GetItem
return views of their input (``is_view``), decided per call where NumPy may have to copy.
"""

from ..autograd import Function, unbroadcast
from ..backend import get_array_module
from ..dtypes import promote_types


class Reshape(Function):
    saves_inputs = False

    def forward(self, a):
        self.in_shape = a.shape
        out = a.reshape(self.shape)
        self.is_view = get_array_module(a).may_share_memory(out, a)  # a non-contiguous input is copied
        return out

    # same values, old shape
    def backward(self, g):
        return g.reshape(self.in_shape)


class Permute(Function):
    saves_inputs, is_view = False, True

    def forward(self, a):
        return a.transpose(self.dims)

    # the gradient goes back through the inverse permutation
    def backward(self, g):
        inverse = [0] * len(self.dims)
        for i, d in enumerate(self.dims):
            inverse[d] = i
        return g.transpose(inverse)


class BroadcastTo(Function):
    saves_inputs, is_view = False, True

    def forward(self, a):
        self.in_shape = a.shape
        return get_array_module(a).broadcast_to(a, self.shape)

    # every copy of a stretched element sends its gradient back to the one original
    def backward(self, g):
        return unbroadcast(g, self.in_shape)


class Clone(Function):
    """A copy in new memory (C-contiguous): clone() and contiguous()."""
    saves_inputs = False

    def forward(self, a):
        return get_array_module(a).array(a, order="C", copy=True)

    # the identity on values
    def backward(self, g):
        return g


class Repeat(Function):
    """a tiled `reps` times along each dimension (a has been given leading 1s up to len(reps) dims)."""
    saves_inputs = False

    def forward(self, a):
        self.in_shape = a.shape
        return get_array_module(a).tile(a, self.reps)

    # each copy sends its gradient back: view g as (r0, s0, r1, s1, ...) and sum over the r axes
    def backward(self, g):
        pairs = []
        for r, s in zip(self.reps, self.in_shape):
            pairs += [r, s]
        return g.reshape(pairs).sum(axis=tuple(range(0, len(pairs), 2))).reshape(self.in_shape)


class Flip(Function):
    """a reversed along `dims`, copied (PyTorch's flip makes a copy, NumPy's is a negative-stride view)."""
    saves_inputs = False

    def forward(self, a):
        return get_array_module(a).flip(a, axis=self.dims).copy()

    # flipping again puts every gradient back in its place
    def backward(self, g):
        return get_array_module(g).flip(g, axis=self.dims).copy()


class Roll(Function):
    """a shifted cyclically by `shifts` along `dims` (dims None: over the flattened array, shape kept)."""
    saves_inputs = False

    def forward(self, a):
        return get_array_module(a).roll(a, self.shifts, axis=self.dims)

    # rolling back by the opposite shifts
    def backward(self, g):
        back = -self.shifts if isinstance(self.shifts, int) else tuple(-s for s in self.shifts)
        return get_array_module(g).roll(g, back, axis=self.dims)


def _has_advanced(index):
    """True if an index uses integer or boolean arrays (then duplicates must add up)."""
    parts = index if isinstance(index, tuple) else (index,)
    return any(hasattr(p, "shape") or isinstance(p, list) for p in parts)


class GetItem(Function):
    saves_inputs = False

    def forward(self, a):
        self.in_shape, self.dtype = a.shape, a.dtype
        self.advanced = _has_advanced(self.index)
        self.is_view = not self.advanced  # basic indexing (ints, slices, None, ...) gives a view
        return a[self.index]

    # scatter the gradient back; an element picked twice gets both contributions
    def backward(self, g):
        xp = get_array_module(g)
        out = xp.zeros(self.in_shape, dtype=self.dtype)
        if self.advanced:
            xp.add.at(out, self.index, g)
        else:
            out[self.index] = g
        return out


class SetItem(Function):
    """a with a[index] replaced by b (b broadcast to the selected shape): what ``a[index] = b`` records."""
    saves_inputs = False

    def forward(self, a, b):
        self.b_shape = b.shape
        out = a.copy()
        out[self.index] = b
        return out

    # the replaced elements give a nothing; b gets the gradient of the places it was written to
    def backward(self, g):
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = g.copy()
            ga[self.index] = 0
        if self.needs_input_grad[1]:
            part = g[self.index]
            missing = len(self.b_shape) - part.ndim  # b may carry extra leading 1s (NumPy drops them)
            gb = unbroadcast(part.reshape((1,) * missing + part.shape) if missing > 0 else part, self.b_shape)
        return ga, gb


class Overwrite(Function):
    """b broadcast to a's shape and dtype (a's values are not used): what copy_, fill_ and zero_ record."""
    saves_inputs = False

    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return get_array_module(a).broadcast_to(b, a.shape).astype(a.dtype)

    # a's old values are gone: no gradient to a; b gets the sum over the places it was copied to
    def backward(self, g):
        xp = get_array_module(g)
        return (xp.zeros(self.a_shape, dtype=g.dtype) if self.needs_input_grad[0] else None,
                unbroadcast(g, self.b_shape) if self.needs_input_grad[1] else None)


def _common_dtype(arrays):
    """The dtype cat/stack give mixed inputs (PyTorch's rule: a float wins over any integer)."""
    dtype = arrays[0].dtype
    for a in arrays[1:]:
        dtype = promote_types(dtype, a.dtype)
    return dtype


class Cat(Function):
    """Concatenation along `dim`. 1-D empty inputs are skipped when any input is not one (PyTorch's rule)."""
    saves_inputs = False

    def forward(self, *arrays):
        xp = get_array_module(arrays[0])
        some_kept = any(a.shape != (0,) for a in arrays)
        self.skipped = [some_kept and a.shape == (0,) for a in arrays]
        kept = [a for a, s in zip(arrays, self.skipped) if not s]
        self.sizes = [a.shape[self.dim] for a in kept]
        self.dtypes = [a.dtype for a in arrays]  # mixed dtypes promote; each gradient goes back in its own
        out = _common_dtype(arrays)
        return xp.concatenate([a.astype(out, copy=False) for a in kept], axis=self.dim)

    # each input gets back its own slab of the gradient (a skipped one an empty gradient)
    def backward(self, g):
        xp = get_array_module(g)
        cuts, total = [], 0
        for n in self.sizes[:-1]:
            total += n
            cuts.append(total)
        parts = iter(xp.split(g, cuts, axis=self.dim))
        return tuple(xp.zeros((0,), dt) if s else next(parts).astype(dt, copy=False)
                     for s, dt in zip(self.skipped, self.dtypes))


class Stack(Function):
    saves_inputs = False

    def forward(self, *arrays):
        self.dtypes = [a.dtype for a in arrays]
        out = _common_dtype(arrays)
        return get_array_module(arrays[0]).stack([a.astype(out, copy=False) for a in arrays], axis=self.dim)

    # each input gets back its own slice of the gradient, without the stacking axis
    def backward(self, g):
        xp = get_array_module(g)
        parts = xp.split(g, g.shape[self.dim], axis=self.dim)
        return tuple(xp.squeeze(p, axis=self.dim).astype(dt, copy=False) for p, dt in zip(parts, self.dtypes))
