"""Neural-network functions: ``import tensorlite.nn.functional as F``, with PyTorch's names, arguments,
defaults and semantics (class dim 1 in cross_entropy, is_causal=False in scaled_dot_product_attention, ...).

The functions a training step runs (cross_entropy, layer_norm, embedding, dropout, linear, attention,
the softmax family) check their arguments (shapes, dtypes, devices; errors name the bad values) and
then apply ONE ``Function`` whose backward is derived by hand, instead of a chain of primitives recorded
by autograd. That saves memory (one node and a few saved arrays instead of a dozen) and time (no
intermediate gradients), and it lets the forward use the numerically stable formulation. The Functions
live in ``nn/fused/``, one family a file; ``nn.reference`` computes the same functions composed from
primitives, and the tests make the two derivations agree. Rarer cases (class-probability targets, a
learned attention mask, pad, normalize) are composed from Tensor operations.

The losses live in ``nn/losses.py`` and the activations in ``nn/activations.py``; all are reachable from here.

Differences from PyTorch, on purpose:
- ``inplace=`` arguments are accepted, but the result is always a new tensor (use the returned value).
- Not supported (NotImplementedError): pad modes other than 'constant'; embedding's max_norm,
  scale_grad_by_freq and sparse; normalize's out=. cross_entropy's weight gets no gradient.
"""
import math
import warnings

import numpy as np

from .. import amp, backend
from .._checks import wrap_dim
from ..ops.softmax import LogSoftmax, Softmax
from ..functions import cat
from ..tensor import Tensor
from . import reference
from .activations import (elu, gelu, glu, hardtanh, leaky_relu, logsigmoid, mish, relu, relu6, selu, sigmoid, silu,
                          softplus, softsign, tanh)
from .arguments import (check_dropout_p, check_same_device, check_same_dtype, check_tensor, index_array)
from .fused.attention import ScaledDotProductAttention, SelfAttention
from .fused.embedding import Embedding, scatter_add_rows
from .fused.linear import Dropout, Linear, dropout_mask
from .fused.norm import LayerNorm
from .losses import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, l1_loss,
                     legacy_reduction, mse_loss, nll_loss, smooth_l1_loss)

__all__ = ["softmax", "log_softmax", "softmin", "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss",
           "binary_cross_entropy", "binary_cross_entropy_with_logits", "layer_norm", "embedding", "dropout",
           "linear", "one_hot", "pad", "normalize", "relu", "relu6", "gelu", "silu", "tanh", "sigmoid", "leaky_relu",
           "elu", "softplus", "softsign", "hardtanh", "logsigmoid", "glu", "scaled_dot_product_attention",
           "self_attention"]

# reachable as F.scatter_add_rows and F.check_* too (outside __all__): used by the layers and tests
scatter_add_rows = scatter_add_rows
check_tensor, check_dropout_p = check_tensor, check_dropout_p


# ---------------------------------------------------------------- softmax family
def implicit_softmax_dim(ndim, fname, stacklevel):
    """PyTorch's rule when dim is not given (deprecated there, with a UserWarning): dim 0 for 0-, 1- and
    3-dimensional inputs, else dim 1."""
    warnings.warn(f"Implicit dimension choice for {fname} has been deprecated. Change the call to include "
                  "dim=X as an argument.", UserWarning, stacklevel=stacklevel)
    return 0 if ndim in (0, 1, 3) else 1


def _softmax_args(input, dim, dtype, fname, stacklevel):
    check_tensor(input, "input", fname)
    if dim is None:
        dim = implicit_softmax_dim(input.ndim, fname, stacklevel + 1)
    if dtype is not None:  # PyTorch casts the input first (to avoid overflow in a small dtype)
        input = input.to(dtype)
    return input, wrap_dim(dim, input.ndim, fname)


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """exp(x) / sum(exp(x)) along `dim`, computed without overflow; dtype: cast the input first."""
    input, dim = _softmax_args(input, dim, dtype, "softmax", _stacklevel)
    input, = amp.full(input)
    return Softmax.apply(input, dim=dim)


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    """softmax(-x) along `dim`."""
    input, dim = _softmax_args(input, dim, dtype, "softmin", _stacklevel)
    input, = amp.full(input)
    return Softmax.apply(-input, dim=dim)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """x - logsumexp(x) along `dim`: finite for any finite logits (unlike log(softmax(x)))."""
    input, dim = _softmax_args(input, dim, dtype, "log_softmax", _stacklevel)
    input, = amp.full(input)
    return LogSoftmax.apply(input, dim=dim)


# ---------------------------------------------------------------- layer norm
def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalize over the trailing dimensions `normalized_shape`, then scale by weight and shift by bias."""
    check_tensor(input, "input", "layer_norm")
    x, weight, bias = amp.full(input, weight, bias)  # inside autocast: statistics and output in float32
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or k > x.ndim or x.shape[x.ndim - k:] != shape:
        raise RuntimeError(f"layer_norm(): normalized_shape {shape} does not match the trailing dimensions of the "
                         f"input of shape {tuple(x.shape)}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None:
            check_tensor(p, name, "layer_norm")
            if p.shape != shape:
                raise RuntimeError(f"layer_norm(): {name} has shape {tuple(p.shape)}, expected normalized_shape {shape}")
    check_same_dtype("layer_norm", input=x, weight=weight, bias=bias)
    check_same_device("layer_norm", input=x, weight=weight, bias=bias)
    affine = [p for p in (weight, bias) if p is not None]
    return LayerNorm.apply(x, *affine, k=k, eps=float(eps), has_weight=weight is not None,
                           has_bias=bias is not None, w_shape=shape)


# ---------------------------------------------------------------- embedding
def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    """Rows of `weight` (num_embeddings, dim) picked by the integer tensor `input`: shape input.shape + (dim,).

    The row padding_idx (negative counts from the end) gets no gradient, as in PyTorch.
    """
    check_tensor(weight, "weight", "embedding")
    if weight.ndim != 2:
        raise ValueError(f"embedding(): weight must be 2-D (num_embeddings, embedding_dim), got shape {tuple(weight.shape)}")
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding(): max_norm, scale_grad_by_freq and sparse are not supported")
    arr = index_array(input, weight, "embedding", "input", "weight")
    v = weight.shape[0]
    padding_idx = check_padding_idx(padding_idx, v, "embedding")
    # never let take() wrap an index around (checked without a host sync on a GPU)
    if arr.size and backend.check_values((arr < 0) | (arr >= v), arr, lambda first: IndexError(
            f"embedding(): index {first} is out of range for an embedding table of size {v} "
            f"(valid indices: 0..{v - 1})")):
        arr = arr.clip(0, v - 1)  # the error comes at the next read; until then keep the kernels in bounds
    return Embedding.apply(weight, idx=arr.astype(np.int64, copy=False), padding_idx=padding_idx)


def check_padding_idx(padding_idx, num_embeddings, fname):
    """padding_idx as a row index in 0..num_embeddings-1 (negative counts from the end), or None."""
    if padding_idx is None:
        return None
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise AssertionError(f"{fname}(): padding_idx must be within num_embeddings ({num_embeddings}), "
                             f"got {padding_idx}")
    return int(padding_idx) % num_embeddings


# ---------------------------------------------------------------- dropout
def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability p and scale the rest by 1/(1-p) (identity when not training)."""
    check_tensor(input, "input", "dropout")
    p = check_dropout_p(p, "dropout")
    if not training or p == 0:
        return input
    return Dropout.apply(input, p=p)  # the Function draws the mask (one kernel with it on CUDA when fused)


# ---------------------------------------------------------------- linear
def linear(input, weight, bias=None):
    """x @ weight.T + bias, with weight (out_features, in_features) as in PyTorch."""
    x = input
    check_tensor(x, "input", "linear")
    check_tensor(weight, "weight", "linear")
    if weight.ndim != 2:
        raise ValueError(f"linear(): weight must be 2-D (out_features, in_features), got shape {tuple(weight.shape)}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise RuntimeError(f"linear(): input of shape {tuple(x.shape)} does not match weight of shape "
                           f"{tuple(weight.shape)}: the last input dimension must be in_features={weight.shape[1]}")
    if bias is not None:
        check_tensor(bias, "bias", "linear")
        if bias.shape != (weight.shape[0],):
            raise RuntimeError(f"linear(): bias has shape {tuple(bias.shape)}, expected ({weight.shape[0]},)")
    x, weight, bias = amp.lower(x, weight, bias)  # inside autocast: a float16 product
    check_same_dtype("linear", input=x, weight=weight, bias=bias)
    check_same_device("linear", input=x, weight=weight, bias=bias)
    return Linear.apply(x, weight, *([bias] if bias is not None else []))


# ---------------------------------------------------------------- one_hot, pad, normalize
def one_hot(tensor, num_classes=-1):
    """int64 tensor of shape tensor.shape + (num_classes,) with a 1 at each index (num_classes=-1: max + 1)."""
    arr = index_array(tensor, tensor, "one_hot", "tensor", "tensor") if isinstance(tensor, Tensor) else None
    if arr is None:
        raise TypeError(f"one_hot(): tensor must be a tensorlite.Tensor of class indices, got {type(tensor).__name__}")
    if arr.size and int(arr.min()) < 0:
        raise RuntimeError("one_hot(): Class values must be non-negative.")
    if num_classes == -1:
        if arr.size == 0:
            raise RuntimeError("one_hot(): Can not infer total number of classes from empty tensor.")
        num_classes = int(arr.max()) + 1
    elif arr.size and int(arr.max()) >= num_classes:
        raise RuntimeError(f"one_hot(): Class values must be smaller than num_classes ({num_classes}).")
    xp = backend.xp_for(tensor.device)
    with backend.device_context(tensor.device):
        out = (arr[..., None] == xp.arange(num_classes)).astype(np.int64)
    return Tensor.wrap(out, tensor.device)


def pad(input, pad, mode="constant", value=None):
    """Pad the last len(pad) // 2 dims: pad = (left of the last dim, right of it, left of the one before, ...).

    Only mode='constant' (value, default 0); negative amounts crop, as in PyTorch."""
    check_tensor(input, "input", "pad", floating=False)
    if mode != "constant":
        raise NotImplementedError(f"pad(): only mode='constant' is supported, got {mode!r}")
    pad = [int(n) for n in pad]
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise RuntimeError(f"pad(): Padding length must be divisible by 2 and at most twice the input's "
                           f"dimensions ({input.ndim}), got {len(pad)}")
    x = input
    for i in range(len(pad) // 2):
        dim = input.ndim - 1 - i
        before, after = pad[2 * i], pad[2 * i + 1]
        if before < 0:
            x = x[(slice(None),) * dim + (slice(-before, None),)]
            before = 0
        if after < 0:
            x = x[(slice(None),) * dim + (slice(0, x.shape[dim] + after),)]
            after = 0
        parts = []
        for n in (before, after):
            shape = x.shape[:dim] + (n,) + x.shape[dim + 1:]
            fill = 0 if value is None else value
            with backend.device_context(x.device):
                parts.append(Tensor.wrap(x.xp.full(shape, fill, dtype=x.dtype), x.device))
        if before or after:
            x = cat([parts[0], x, parts[1]], dim=dim)
    return x


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """input / max(||input||_p along dim, eps)."""
    check_tensor(input, "input", "normalize")
    if out is not None:
        raise NotImplementedError("normalize(): out= is not supported; use the returned tensor")
    if p == 2:
        norm = (input * input).sum(dim, keepdim=True).sqrt()
    elif p == 1:
        norm = input.abs().sum(dim, keepdim=True)
    else:
        norm = (input.abs() ** p).sum(dim, keepdim=True) ** (1 / p)
    return input / norm.clamp(min=eps)


# ---------------------------------------------------------------- attention
def self_attention(qkv, n_head, is_causal=True, dropout_p=0.0, scale=None):
    """Multi-head self-attention from packed projections qkv (B, T, 3C): q | k | v along the last axis,
    each split into n_head heads of size C // n_head. Returns the heads side by side, (B, T, C).

    The same as splitting qkv into q, k, v of shape (B, n_head, T, hs), calling
    scaled_dot_product_attention and merging the heads, in one Function. As there, dropout applies
    whenever dropout_p > 0: pass dropout_p=0.0 in eval mode.
    """
    check_tensor(qkv, "qkv", "self_attention")
    if qkv.ndim != 3 or qkv.shape[-1] % (3 * n_head):
        raise ValueError(f"self_attention(): qkv must be (B, T, 3 * C) with C divisible by n_head={n_head}, "
                         f"got shape {tuple(qkv.shape)}")
    p = check_dropout_p(dropout_p, "self_attention")
    qkv, = amp.lower(qkv)
    B, T, C3 = qkv.shape
    scale = 1 / math.sqrt(C3 // (3 * n_head)) if scale is None else float(scale)
    mask = dropout_mask((B, n_head, T, T), p, qkv.dtype, qkv.device) if p > 0 else None
    return SelfAttention.apply(qkv, n_head=n_head, causal=bool(is_causal), scale=scale, mask=mask)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """softmax(q k^T * scale + mask) (dropped out) @ v, for q (..., Tq, E), k (..., Tk, E), v (..., Tk, Ev).

    As PyTorch's: scale defaults to 1/sqrt(E); is_causal lets query i see keys j <= i (not together with
    attn_mask); attn_mask (broadcast to (..., Tq, Tk)) is bool (True: may attend) or float (added to the
    scores); dropout applies whenever dropout_p > 0 (there is no training flag: pass 0.0 in eval mode).
    A query whose keys are all masked gets output 0. Leading dims broadcast; enable_gqa lets k and v have fewer heads (dim -3) than q.
    """
    fname = "scaled_dot_product_attention"
    q, k, v = query, key, value
    for name, t in (("query", q), ("key", k), ("value", v)):
        check_tensor(t, name, fname)
    if min(q.ndim, k.ndim, v.ndim) < 2:
        raise RuntimeError(f"{fname}(): Expected query, key, and value to all be at least 2 dimensional, but got "
                           f"query.dim: {q.ndim} key.dim: {k.ndim} and value.dim: {v.ndim} instead.")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise RuntimeError(f"{fname}(): query {tuple(q.shape)} and key {tuple(k.shape)} need the same embedding size, "
                           f"and key and value {tuple(v.shape)} the same number of keys")
    q, k, v = amp.lower(q, k, v)  # inside autocast: float16 products (the softmax statistics stay float32)
    if attn_mask is not None and attn_mask.dtype.kind == "f":
        attn_mask, = amp.lower(attn_mask)
    check_same_dtype(fname, query=q, key=k, value=v)
    check_same_device(fname, query=q, key=k, value=v)
    if enable_gqa and q.ndim >= 3 and k.shape[-3] != q.shape[-3]:
        k, v = (_repeat_heads(t, q.shape[-3], fname) for t in (k, v))
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    q, k, v = (t if t.shape[:-2] == lead else t.broadcast_to(lead + t.shape[-2:]) for t in (q, k, v))
    p = check_dropout_p(dropout_p, fname)
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    bias = None
    if attn_mask is not None:
        if is_causal:
            raise RuntimeError(f"{fname}(): Explicit attn_mask should not be set when is_causal=True; "
                               "fold the causal mask into attn_mask instead")
        check_tensor(attn_mask, "attn_mask", fname, floating=False)
        check_same_device(fname, query=q, attn_mask=attn_mask)
        if attn_mask.dtype != np.bool_ and attn_mask.dtype != q.dtype:
            raise RuntimeError(f"{fname}(): Expected attn_mask dtype to be bool or float or to match query dtype, "
                               f"but got attn_mask.dtype: {attn_mask.dtype} and query.dtype: {q.dtype} instead.")
        if attn_mask.requires_grad:  # a learned additive mask: composed from primitives, so it gets a gradient
            return reference.scaled_dot_product_attention(q, k, v, attn_mask, p, is_causal, scale)
        bias = attn_mask.data
        if bias.dtype == np.bool_:
            xp = backend.xp_for(q.device)
            bias = xp.where(bias, xp.zeros((), q.dtype), xp.asarray(-np.inf, dtype=q.dtype))
    mask = dropout_mask(lead + (q.shape[-2], k.shape[-2]), p, q.dtype, q.device) if p > 0 else None
    return ScaledDotProductAttention.apply(q, k, v, causal=bool(is_causal), scale=scale, mask=mask, attn_bias=bias)


def _repeat_heads(t, n_head, fname):
    """(..., Hk, T, E) -> (..., n_head, T, E), each key/value head serving n_head // Hk query heads in turn."""
    hk = t.shape[-3]
    if n_head % hk:
        raise RuntimeError(f"{fname}(): with enable_gqa the query heads ({n_head}) must be a multiple of the "
                           f"key/value heads ({hk})")
    lead = t.shape[:-3]
    expanded = t.unsqueeze(-3).expand(*lead, hk, n_head // hk, *t.shape[-2:])
    return expanded.reshape(*lead, n_head, *t.shape[-2:])
