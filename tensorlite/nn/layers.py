"""The layers of a GPT, each a thin Module around a function of ``tensorlite.nn.functional``."""
import numpy as np

from .. import amp, backend
from ..autograd import no_grad
from ..tensor import Tensor
from . import functional as F, init
from .activations import bias_act
from .arguments import check_same_device, check_same_dtype, check_tensor
from .fused.norm import LayerNorm as FusedLayerNorm
from .module import Module, Parameter


def _param(shape, device, dtype):
    """A zero Parameter of `shape` (float32 unless told) on `device`; the layer initializes it."""
    device = backend.normalize_device(device)
    with backend.device_context(device):
        data = backend.xp_for(device).zeros(shape, dtype=np.dtype(dtype or np.float32))
    return Parameter(Tensor.wrap(data, device))


class Linear(Module):
    """y = x W^T + b with W of shape (out_features, in_features); PyTorch's default initialization."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        for name, n in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(n, (int, np.integer)) or n < 0:
                raise ValueError(f"Linear: {name} must be a non-negative integer, got {n!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = _param((out_features, in_features), device, dtype)
        self.register_parameter("bias", _param((out_features,), device, dtype) if bias else None)
        init.linear_default_(self.weight, self.bias)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A lookup table: row i of `weight` (num_embeddings, embedding_dim) is the vector of index i. N(0, 1) init.

    padding_idx (as in PyTorch): that row starts at zero and never gets a gradient, so it stays what it is.
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, sparse=False, _weight=None, _freeze=False, device=None, dtype=None):
        super().__init__()
        for name, n in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if not isinstance(n, (int, np.integer)) or n <= 0:
                raise ValueError(f"Embedding: {name} must be a positive integer, got {n!r}")
        if max_norm is not None or scale_grad_by_freq or sparse:
            raise NotImplementedError("Embedding: max_norm, scale_grad_by_freq and sparse are not supported")
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.padding_idx = F.check_padding_idx(padding_idx, self.num_embeddings, "Embedding")
        if _weight is None:
            self.weight = _param((num_embeddings, embedding_dim), device, dtype)
            init.normal_(self.weight)
            if self.padding_idx is not None:
                with no_grad():
                    self.weight.data[self.padding_idx] = 0
        else:
            if tuple(_weight.shape) != (self.num_embeddings, self.embedding_dim):
                raise ValueError(f"Embedding: _weight has shape {tuple(_weight.shape)}, expected "
                                 f"{(self.num_embeddings, self.embedding_dim)}")
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, **kwargs):
        """An Embedding whose table is `embeddings` (rows, dim); frozen (no gradient) unless freeze=False."""
        if embeddings.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D, got shape {tuple(embeddings.shape)}")
        rows, dim = embeddings.shape
        return cls(rows, dim, padding_idx=padding_idx, _weight=embeddings, _freeze=freeze, **kwargs)

    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}" + (
            f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


class LayerNorm(Module):
    """Normalize over the trailing `normalized_shape` dimensions; weight starts at 1, bias at 0."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None, dtype=None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        if not shape or any(not isinstance(n, (int, np.integer)) or n <= 0 for n in shape):
            raise ValueError(f"LayerNorm: normalized_shape must be positive integers, got {normalized_shape!r}")
        self.normalized_shape, self.eps = tuple(int(n) for n in shape), float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        self.register_parameter("weight", init.ones_(_param(shape, device, dtype)) if elementwise_affine else None)
        self.register_parameter("bias", _param(shape, device, dtype) if elementwise_affine and bias else None)

    def forward(self, x, residual=None):
        """LN(x); with `residual`, LN(x + residual) as one Function (the post-norm block's residual add
        fused in: one node, and on CUDA one kernel with TENSORLITE_FUSED=1). residual has x's shape."""
        if residual is None:
            return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        check_tensor(x, "input", "LayerNorm")
        check_tensor(residual, "residual", "LayerNorm")
        x, residual = amp.full(x, residual)  # inside autocast: as F.layer_norm, in float32
        k = len(self.normalized_shape)
        if residual.shape != x.shape or x.ndim < k or tuple(x.shape[x.ndim - k:]) != self.normalized_shape:
            raise RuntimeError(f"LayerNorm: input {tuple(x.shape)} and residual {tuple(residual.shape)} must have "
                               f"one shape that ends in normalized_shape {self.normalized_shape}")
        check_same_dtype("LayerNorm", input=x, residual=residual, weight=self.weight, bias=self.bias)
        check_same_device("LayerNorm", input=x, residual=residual, weight=self.weight, bias=self.bias)
        affine = [p for p in (self.weight, self.bias) if p is not None]
        return FusedLayerNorm.apply(x, residual, *affine, has_residual=True, k=k, eps=self.eps,
                                    has_weight=self.weight is not None, has_bias=self.bias is not None,
                                    w_shape=self.normalized_shape)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class Dropout(Module):
    """Inverted dropout while training (zero with probability p, scale the rest by 1/(1-p)); identity in eval().
    inplace= is accepted; the result is always a new tensor."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        self.p, self.inplace = F.check_dropout_p(p, "Dropout"), bool(inplace)

    def forward(self, input):
        return F.dropout(input, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class ReLU(Module):
    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = bool(inplace)

    def forward(self, input):
        return F.relu(input)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class GELU(Module):
    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input):
        return F.gelu(input, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


_ACTIVATIONS = {"relu": ReLU, "gelu": GELU, "gelu_tanh": lambda: GELU("tanh")}


class FeedForward(Module):
    """The transformer's position-wise MLP: n_embd -> 4 n_embd -> activation -> n_embd -> dropout.

    With a bias, c_fc's bias add and the activation are one Function (bias_act: one node, and on CUDA one
    kernel each way with TENSORLITE_FUSED=1) after c_fc's product; `act` is the activation's Module, kept
    for printing and for the bias-free case."""

    def __init__(self, n_embd, dropout=0.0, activation="relu", bias=True):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"FeedForward: activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        self.activation = activation
        self.c_fc = Linear(n_embd, 4 * n_embd, bias=bias)
        self.act = _ACTIVATIONS[activation]()
        self.c_proj = Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = Dropout(dropout)

    def forward(self, x):
        if self.c_fc.bias is None:
            h = self.act(self.c_fc(x))
        else:  # act(x W^T + b): the product, then the bias and the activation in one Function
            h = bias_act(F.linear(x, self.c_fc.weight), self.c_fc.bias, self.activation)
        return self.dropout(self.c_proj(h))
