"""Modules around the activations of ``nn.functional`` and a few shape helpers, with PyTorch's names,
constructor arguments and printed form (``inplace=`` is accepted; the result is always a new tensor)."""
from . import functional as F
from .module import Module


class _Elementwise(Module):
    """A module applying `fn` with the constructor's settings (kept as attributes, shown by repr)."""
    fn = None
    settings = ()  # (name, default) pairs, in PyTorch's order

    def __init__(self, *args, **kwargs):
        super().__init__()
        names = [n for n, _ in self.settings]
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__}() takes at most {len(names)} arguments, got {len(args)}")
        values = dict(self.settings)
        values.update(zip(names, args))
        for k, v in kwargs.items():
            if k not in values:
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {k!r}")
            values[k] = v
        for k, v in values.items():
            setattr(self, k, v)

    def forward(self, input):
        return type(self).fn(input, *(getattr(self, n) for n, _ in self.settings if n != "inplace"))

    def extra_repr(self):
        shown = [(n, getattr(self, n)) for n, _ in self.settings if n != "inplace" or self.inplace]
        return ", ".join(f"{n}={v}" for n, v in shown)


class Tanh(_Elementwise):
    fn = F.tanh


class Sigmoid(_Elementwise):
    fn = F.sigmoid


class SiLU(_Elementwise):
    fn, settings = F.silu, (("inplace", False),)


class SELU(_Elementwise):
    fn, settings = F.selu, (("inplace", False),)


class Mish(_Elementwise):
    fn, settings = F.mish, (("inplace", False),)


class ReLU6(_Elementwise):
    fn, settings = F.relu6, (("inplace", False),)


class LeakyReLU(_Elementwise):
    fn, settings = F.leaky_relu, (("negative_slope", 0.01), ("inplace", False))


class ELU(_Elementwise):
    fn, settings = F.elu, (("alpha", 1.0), ("inplace", False))


class Softplus(_Elementwise):
    fn, settings = F.softplus, (("beta", 1.0), ("threshold", 20.0))


class Hardtanh(_Elementwise):
    fn, settings = F.hardtanh, (("min_val", -1.0), ("max_val", 1.0), ("inplace", False))


class Softsign(_Elementwise):
    fn = F.softsign


class LogSigmoid(_Elementwise):
    fn = F.logsigmoid


class GLU(_Elementwise):
    fn, settings = F.glu, (("dim", -1),)


class Softmax(_Elementwise):
    fn, settings = F.softmax, (("dim", None),)


class LogSoftmax(_Elementwise):
    fn, settings = F.log_softmax, (("dim", None),)


class Softmin(_Elementwise):
    fn, settings = F.softmin, (("dim", None),)


class Identity(Module):
    """Returns its input; any constructor arguments are ignored (as in PyTorch)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Flatten(Module):
    """input.flatten(start_dim, end_dim); by default every dim but the batch dim."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dim `dim` into the shape `unflattened_size`."""

    def __init__(self, dim, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, input):
        d = self.dim % input.ndim
        return input.reshape(*input.shape[:d], *self.unflattened_size, *input.shape[d + 1:])

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
