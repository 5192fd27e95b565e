"""Functions that move elements around without changing their values."""
from ..autograd import Function, unbroadcast
from ..backend import get_array_module


class Reshape(Function):
    def forward(self, a):
        self.in_shape = a.shape
        return a.reshape(self.shape)

    # same values, old shape
    def backward(self, g):
        return g.reshape(self.in_shape)


class Permute(Function):
    def forward(self, a):
        return a.transpose(self.dims)

    # the gradient goes back through the inverse permutation
    def backward(self, g):
        inverse = [0] * len(self.dims)
        for i, d in enumerate(self.dims):
            inverse[d] = i
        return g.transpose(inverse)


class BroadcastTo(Function):
    def forward(self, a):
        self.in_shape = a.shape
        return get_array_module(a).broadcast_to(a, self.shape)

    # every copy of a stretched element sends its gradient back to the one original
    def backward(self, g):
        return unbroadcast(g, self.in_shape)


def _has_advanced(index):
    """True if an index uses integer or boolean arrays (then duplicates must add up)."""
    parts = index if isinstance(index, tuple) else (index,)
    return any(hasattr(p, "shape") or isinstance(p, list) for p in parts)


class GetItem(Function):
    def forward(self, a):
        self.in_shape, self.dtype = a.shape, a.dtype
        return a[self.index]

    # scatter the gradient back; an element picked twice gets both contributions
    def backward(self, g):
        xp = get_array_module(g)
        out = xp.zeros(self.in_shape, dtype=self.dtype)
        if _has_advanced(self.index):
            xp.add.at(out, self.index, g)
        else:
            out[self.index] = g
        return out


class Cat(Function):
    def forward(self, *arrays):
        xp = get_array_module(arrays[0])
        self.sizes = [a.shape[self.dim] for a in arrays]
        self.dtypes = [a.dtype for a in arrays]  # mixed dtypes promote; each gradient goes back in its own
        return xp.concatenate(arrays, axis=self.dim)

    # each input gets back its own slab of the gradient
    def backward(self, g):
        xp = get_array_module(g)
        cuts, total = [], 0
        for n in self.sizes[:-1]:
            total += n
            cuts.append(total)
        return tuple(part.astype(dt, copy=False) for part, dt in zip(xp.split(g, cuts, axis=self.dim), self.dtypes))


class Stack(Function):
    def forward(self, *arrays):
        self.dtypes = [a.dtype for a in arrays]
        return get_array_module(arrays[0]).stack(arrays, axis=self.dim)

    # each input gets back its own slice of the gradient, without the stacking axis
    def backward(self, g):
        xp = get_array_module(g)
        parts = xp.split(g, g.shape[self.dim], axis=self.dim)
        return tuple(xp.squeeze(p, axis=self.dim).astype(dt, copy=False) for p, dt in zip(parts, self.dtypes))
