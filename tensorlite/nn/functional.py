"""Neural-network functions: ``import tensorlite.nn.functional as F``.

Each public function checks its arguments (shapes, dtypes, devices; errors
name the bad values) and then applies ONE ``Function`` whose backward is
derived by hand, instead of a chain of primitives recorded by autograd. That
saves memory (one node and a few saved arrays instead of a dozen) and time (no
intermediate gradients), and it lets the forward use the numerically stable
formulation. The Functions live in ``nn/fused/``, one family a file;
``nn.reference`` computes the same functions composed from primitives, and the
tests make the two derivations agree.

Differences from PyTorch, on purpose:
- ``cross_entropy`` takes logits (..., C) with targets (...): the class axis is
  the LAST one, so (B, T, C) logits with (B, T) targets work directly (PyTorch
  would want (B, C, T)). All-ignored targets give nan with reduction='mean',
  as in PyTorch.
- ``dropout`` accepts p in [0, 1) only (p = 1 would drop everything).
- ``scaled_dot_product_attention`` is causal by default (``causal=True``,
  PyTorch calls it ``is_causal`` and defaults to False) and takes no attn_mask.
"""
import math

import numpy as np

from .. import backend
from .._checks import same_device, wrap_dim
from ..dtypes import is_float
from ..ops.softmax import LogSoftmax, Softmax
from ..tensor import Tensor
from .fused.attention import ScaledDotProductAttention, SelfAttention
from .fused.embedding import Embedding, scatter_add_rows
from .fused.linear import Dropout, Linear, dropout_mask
from .fused.loss import CrossEntropy
from .fused.norm import LayerNorm

__all__ = ["softmax", "log_softmax", "cross_entropy", "layer_norm", "embedding", "dropout", "linear", "relu",
           "gelu", "scaled_dot_product_attention", "self_attention"]

# reachable as F.scatter_add_rows too (outside __all__): the embedding's backward on raw arrays
scatter_add_rows = scatter_add_rows


# ---------------------------------------------------------------- boundary checks: the nn-specific ones
# (dims and devices are decided in tensorlite._checks; these take the function's name for the message)
def check_tensor(x, name, fname, floating=True):
    """TypeError unless x is a Tensor (of a floating-point dtype, when `floating`)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{fname}(): {name} must be a tensorlite.Tensor, got {type(x).__name__}")
    if floating and not is_float(x.dtype):
        raise TypeError(f"{fname}(): {name} must be a floating-point tensor, got dtype {x.dtype}")


def check_same_dtype(fname, **tensors):
    """TypeError unless the given tensors (None entries skipped) share one dtype: nn functions never promote."""
    dtypes = {name: t.dtype for name, t in tensors.items() if t is not None}
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{n} {d}" for n, d in dtypes.items())
        raise TypeError(f"{fname}(): expected tensors of one dtype, got {listed}; convert with .to(dtype)")


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
        raise TypeError(f"{fname}(): {name} must hold integer (int64) class indices, got dtype {arr.dtype}")
    return arr


def check_dropout_p(p, fname):
    """p as a float; ValueError unless it is a number in [0, 1)."""
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)) or not 0 <= p < 1:
        raise ValueError(f"{fname}(): dropout probability must be in [0, 1), got {p!r}")
    return float(p)


# ---------------------------------------------------------------- softmax family
def softmax(x, dim=-1):
    """exp(x) / sum(exp(x)) along `dim`, computed without overflow."""
    check_tensor(x, "input", "softmax")
    return Softmax.apply(x, dim=wrap_dim(dim, x.ndim, "softmax"))


def log_softmax(x, dim=-1):
    """x - logsumexp(x) along `dim`: finite for any finite logits (unlike log(softmax(x)))."""
    check_tensor(x, "input", "log_softmax")
    return LogSoftmax.apply(x, dim=wrap_dim(dim, x.ndim, "log_softmax"))


def cross_entropy(logits, targets, ignore_index=-100, reduction="mean"):
    """Cross-entropy of logits (N, C) or (..., C) against int64 class indices of shape (N,) or (...).

    Leading dimensions are flattened, so (B, T, C) logits with (B, T) targets
    work as PyTorch's (B*T, C) with (B*T,). Rows whose target is `ignore_index`
    count neither in the sum nor in the mean.
    """
    check_tensor(logits, "logits", "cross_entropy")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy(): reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if logits.ndim == 0:
        raise ValueError("cross_entropy(): logits must have a class dimension, got a 0-d tensor")
    t = index_array(targets, logits, "cross_entropy", "targets", "logits")
    lead, c = logits.shape[:-1], logits.shape[-1]
    n = int(np.prod(lead))
    if tuple(t.shape) != lead and not (t.ndim == 1 and t.shape[0] == n and len(lead) > 1):
        raise ValueError(f"cross_entropy(): targets of shape {tuple(t.shape)} do not match logits of shape "
                         f"{logits.shape}: expected targets of shape {lead} (one class index per row)")
    t = t.reshape(-1).astype(np.int64, copy=False)
    valid = t != ignore_index
    # a wrong class index must not turn into a silent wrong loss (checked without a host sync on a GPU)
    if backend.check_values(valid & ((t < 0) | (t >= c)), t, lambda first: IndexError(
            f"cross_entropy(): target {first} is out of range for {c} classes "
            f"(valid: 0..{c - 1}, or ignore_index={ignore_index})")):
        t = t.clip(0, c - 1)  # the error comes at the next read; until then keep the kernels in bounds
    return CrossEntropy.apply(logits.reshape(n, c), targets=t, valid=valid, reduction=reduction, out_shape=lead)


# ---------------------------------------------------------------- layer norm
def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalize over the trailing dimensions `normalized_shape`, then scale by weight and shift by bias."""
    check_tensor(x, "input", "layer_norm")
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or k > x.ndim or x.shape[x.ndim - k:] != shape:
        raise ValueError(f"layer_norm(): normalized_shape {shape} does not match the trailing dimensions of the "
                         f"input of shape {x.shape}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None:
            check_tensor(p, name, "layer_norm")
            if p.shape != shape:
                raise ValueError(f"layer_norm(): {name} has shape {p.shape}, expected normalized_shape {shape}")
    check_same_dtype("layer_norm", input=x, weight=weight, bias=bias)
    check_same_device("layer_norm", input=x, weight=weight, bias=bias)
    affine = [p for p in (weight, bias) if p is not None]
    return LayerNorm.apply(x, *affine, k=k, eps=float(eps), has_weight=weight is not None,
                           has_bias=bias is not None, w_shape=shape)


# ---------------------------------------------------------------- embedding
def embedding(idx, weight):
    """Rows of `weight` (num_embeddings, dim) picked by the integer tensor `idx`: shape idx.shape + (dim,)."""
    check_tensor(weight, "weight", "embedding")
    if weight.ndim != 2:
        raise ValueError(f"embedding(): weight must be 2-D (num_embeddings, embedding_dim), got shape {weight.shape}")
    arr = index_array(idx, weight, "embedding", "idx", "weight")
    v = weight.shape[0]
    # never let take() wrap an index around (checked without a host sync on a GPU)
    if arr.size and backend.check_values((arr < 0) | (arr >= v), arr, lambda first: IndexError(
            f"embedding(): index {first} is out of range for an embedding table of size {v} "
            f"(valid indices: 0..{v - 1})")):
        arr = arr.clip(0, v - 1)  # the error comes at the next read; until then keep the kernels in bounds
    return Embedding.apply(weight, idx=arr.astype(np.int64, copy=False))


# ---------------------------------------------------------------- dropout
def dropout(x, p=0.5, training=True):
    """Zero each element with probability p and scale the rest by 1/(1-p) (identity when not training)."""
    check_tensor(x, "input", "dropout")
    p = check_dropout_p(p, "dropout")
    if not training or p == 0:
        return x
    return Dropout.apply(x, mask=dropout_mask(x.shape, p, x.dtype, x.device))


# ---------------------------------------------------------------- linear
def linear(x, weight, bias=None):
    """x @ weight.T + bias, with weight (out_features, in_features) as in PyTorch."""
    check_tensor(x, "input", "linear")
    check_tensor(weight, "weight", "linear")
    if weight.ndim != 2:
        raise ValueError(f"linear(): weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear(): input of shape {x.shape} does not match weight of shape {weight.shape}: "
                         f"the last input dimension must be in_features={weight.shape[1]}")
    if bias is not None:
        check_tensor(bias, "bias", "linear")
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"linear(): bias has shape {bias.shape}, expected ({weight.shape[0]},)")
    check_same_dtype("linear", input=x, weight=weight, bias=bias)
    check_same_device("linear", input=x, weight=weight, bias=bias)
    return Linear.apply(x, weight, *([bias] if bias is not None else []))


# ---------------------------------------------------------------- activations (the Tensor methods, re-exported)
def relu(x):
    return x.relu()


def gelu(x, approximate="none"):
    return x.gelu(approximate)


# ---------------------------------------------------------------- attention
def self_attention(qkv, n_head, causal=True, dropout_p=0.0, training=True, scale=None):
    """Multi-head self-attention from packed projections qkv (B, T, 3C): q | k | v along the last axis,
    each split into n_head heads of size C // n_head. Returns the heads side by side, (B, T, C).

    The same as splitting qkv into q, k, v of shape (B, n_head, T, hs), calling
    scaled_dot_product_attention and merging the heads, in one Function.
    """
    check_tensor(qkv, "qkv", "self_attention")
    if qkv.ndim != 3 or qkv.shape[-1] % (3 * n_head):
        raise ValueError(f"self_attention(): qkv must be (B, T, 3 * C) with C divisible by n_head={n_head}, "
                         f"got shape {qkv.shape}")
    p = check_dropout_p(dropout_p, "self_attention")
    B, T, C3 = qkv.shape
    scale = 1 / math.sqrt(C3 // (3 * n_head)) if scale is None else float(scale)
    mask = dropout_mask((B, n_head, T, T), p, qkv.dtype, qkv.device) if training and p > 0 else None
    return SelfAttention.apply(qkv, n_head=n_head, causal=bool(causal), scale=scale, mask=mask)


def scaled_dot_product_attention(q, k, v, causal=True, dropout_p=0.0, training=True, scale=None):
    """softmax(q k^T * scale [+ causal mask]) (dropped out) @ v, for q (..., Tq, hs), k (..., Tk, hs), v (..., Tk, hv).

    scale defaults to 1/sqrt(hs). The causal mask lets query i see keys j <= i.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_tensor(t, name, "scaled_dot_product_attention")
        if t.ndim < 2:
            raise ValueError(f"scaled_dot_product_attention(): {name} must be at least 2-D (..., T, head_size), "
                             f"got shape {t.shape}")
    if q.shape[:-2] != k.shape[:-2] or k.shape[:-2] != v.shape[:-2]:
        raise ValueError(f"scaled_dot_product_attention(): q, k, v need the same leading dimensions, got "
                         f"{q.shape}, {k.shape}, {v.shape}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention(): q {q.shape} and k {k.shape} need the same head size, "
                         f"and k and v {v.shape} the same number of keys")
    check_same_dtype("scaled_dot_product_attention", q=q, k=k, v=v)
    check_same_device("scaled_dot_product_attention", q=q, k=k, v=v)
    p = check_dropout_p(dropout_p, "scaled_dot_product_attention")
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    mask = None
    if training and p > 0:
        shape = q.shape[:-1] + (k.shape[-2],)  # (..., Tq, Tk): one draw per attention weight
        mask = dropout_mask(shape, p, q.dtype, q.device)
    return ScaledDotProductAttention.apply(q, k, v, causal=bool(causal), scale=scale, mask=mask)
