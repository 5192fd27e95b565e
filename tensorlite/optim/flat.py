"""One parameter group's parameters, moments and gradients in flat buffers, so a fused update is one launch.

``FlatGroup`` copies the group's parameters into one flat array and makes each parameter's ``.data`` a view
of its slice (likewise the Adam moments ``exp_avg`` / ``exp_avg_sq`` of its state); gradients, which the
backward pass makes afresh, are packed into one flat array at each step (one concatenate). The per-
parameter Tensors stay what they were, views now, so a state_dict has its usual format and a loaded one
works: a parameter or moment replaced since (``p.data = ...``, ``load_state_dict``, ``.to()``) is noticed
by ``holds`` (an identity check per array, no device work) and the group is packed again.
"""
from .. import backend


class FlatGroup:
    def __init__(self, params, states, names=("exp_avg", "exp_avg_sq")):
        first = params[0]
        xp, self.names = first.xp, names
        sizes = [p.data.size for p in params]
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        with backend.device_context(first.device):
            self.p = xp.empty(sum(sizes), dtype=first.dtype)
            self.g = xp.empty_like(self.p)
            self.moments = [xp.empty_like(self.p) for _ in names]
        self.views = []  # per parameter: (its data, its moments) as the arrays the Tensors hold now
        for p, state, start, n in zip(params, states, starts, sizes):
            arrays = [self._into(self.p, p, start, n)]
            arrays += [self._into(flat, state[name], start, n) for flat, name in zip(self.moments, names)]
            self.views.append(arrays)

    @staticmethod
    def _into(flat, t, start, n):
        """Copy Tensor t into flat[start:start + n] and make t.data that slice (a view in t's shape)."""
        view = flat[start:start + n].reshape(t.shape)
        view[...] = t.data
        t.data = view
        return view

    def holds(self, params, states):
        """Whether every parameter and moment still is the view made here (same order, same arrays)."""
        if len(params) != len(self.views):
            return False
        return all(p.data is arrays[0] and all(s.get(name) is not None and s[name].data is a
                                               for name, a in zip(self.names, arrays[1:]))
                   for p, s, arrays in zip(params, states, self.views))

    def gather_grads(self, params):
        """The gradients of `params` copied into the flat gradient buffer, which is returned."""
        xp = params[0].xp
        with backend.device_context(params[0].device):
            xp.concatenate([p.grad.data.reshape(-1) for p in params], out=self.g)
        return self.g
