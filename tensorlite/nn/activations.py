"""Activation functions of ``nn.functional``, with PyTorch's names, arguments and defaults.

``inplace=`` is accepted for compatibility, but the result is always a new tensor (the input is
left as it is): use the returned value, as in ``x = F.relu(x, inplace=True)``.
"""
from .. import amp
from .arguments import check_same_device, check_same_dtype, check_tensor
from .fused.activation import ELU, SELU, BiasAct, Hardtanh, LeakyReLU, LogSigmoid, Mish, SiLU, Softplus, Softsign


def tanh(input):
    return input.tanh()


def sigmoid(input):
    return input.sigmoid()


def relu(input, inplace=False):
    """max(x, 0); the gradient at 0 is 0, as in PyTorch."""
    return input.relu()


def gelu(input, approximate="none"):
    """x Phi(x) (approximate='tanh': PyTorch's tanh formula)."""
    if approximate not in ("none", "tanh"):
        raise RuntimeError(f"gelu(): approximate must be 'none' or 'tanh', got {approximate!r}")
    return input.gelu(approximate)


def bias_act(input, bias, activation="relu"):
    """activation(input + bias) as one Function, with bias (D,) along the last dim and activation 'relu',
    'gelu' or 'gelu_tanh' (GELU with approximate='tanh'): FeedForward's first bias and its activation.
    A tensorlite addition (not in PyTorch); the same as F.gelu(input + bias), in one node."""
    check_tensor(input, "input", "bias_act")
    check_tensor(bias, "bias", "bias_act")
    if activation not in ("relu", "gelu", "gelu_tanh"):
        raise ValueError(f"bias_act(): activation must be 'relu', 'gelu' or 'gelu_tanh', got {activation!r}")
    if input.ndim == 0 or bias.shape != (input.shape[-1],):
        raise RuntimeError(f"bias_act(): bias of shape {tuple(bias.shape)} does not match the last dimension of "
                           f"the input of shape {tuple(input.shape)}")
    input, bias = amp.lower(input, bias)  # inside autocast: linear's bias add, in float16 as linear's own
    check_same_dtype("bias_act", input=input, bias=bias)
    check_same_device("bias_act", input=input, bias=bias)
    return BiasAct.apply(input, bias, kind=activation)


def silu(input, inplace=False):
    """x * sigmoid(x) (also called swish)."""
    check_tensor(input, "input", "silu")
    return SiLU.apply(input)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    check_tensor(input, "input", "leaky_relu")
    return LeakyReLU.apply(input, negative_slope=float(negative_slope))


def elu(input, alpha=1.0, inplace=False):
    check_tensor(input, "input", "elu")
    return ELU.apply(input, alpha=float(alpha))


def selu(input, inplace=False):
    """scale * elu(x, alpha), alpha = 1.6733 and scale = 1.0507 (PyTorch's constants)."""
    check_tensor(input, "input", "selu")
    return SELU.apply(input)


def mish(input, inplace=False):
    """x * tanh(softplus(x))."""
    check_tensor(input, "input", "mish")
    return Mish.apply(input)


def softplus(input, beta=1.0, threshold=20.0):
    check_tensor(input, "input", "softplus")
    return Softplus.apply(input, beta=float(beta), threshold=float(threshold))


def softsign(input):
    check_tensor(input, "input", "softsign")
    return Softsign.apply(input)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    check_tensor(input, "input", "hardtanh")
    if min_val > max_val:
        raise ValueError(f"hardtanh(): min_val ({min_val}) cannot be greater than max_val ({max_val})")
    return Hardtanh.apply(input, min_val=float(min_val), max_val=float(max_val))


def relu6(input, inplace=False):
    """min(max(x, 0), 6): hardtanh(x, 0, 6)."""
    return hardtanh(input, 0.0, 6.0)


def logsigmoid(input):
    check_tensor(input, "input", "logsigmoid")
    return LogSigmoid.apply(input)


def glu(input, dim=-1):
    """a * sigmoid(b), with a and b the two halves of input along `dim`."""
    check_tensor(input, "input", "glu")
    if input.ndim == 0:
        raise RuntimeError("glu(): glu does not support scalars because halving size must be even")
    if input.shape[dim] % 2:
        raise RuntimeError(f"glu(): Halving dimension must be even, but dimension {dim} is size {input.shape[dim]}")
    a, b = input.chunk(2, dim)
    return a * b.sigmoid()
