"""The functions of ``nn.functional`` composed from primitives: what the fused ones are checked against.

``F.layer_norm`` is one Function with a backward derived by hand; ``reference.layer_norm`` is the
same formula written with Tensor operations, so autograd derives its backward from the primitives'.
The two derivations must agree (the tests compare outputs and gradients), and the composed form is
the one to read first: it is the definition, the fused one is the fast way to compute it.
Same names and arguments as in ``nn.functional``; no checks beyond what the primitives do.
"""
import math

import numpy as np

from ..creation import tensor
from .fused.linear import dropout_mask


__all__ = ["softmax", "log_softmax", "cross_entropy", "layer_norm", "embedding", "dropout", "linear", "relu", "gelu",
           "scaled_dot_product_attention", "self_attention"]


def _dim(x, dim):
    return (0 if x.ndim in (0, 1, 3) else 1) if dim is None else dim  # PyTorch's implicit choice


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """exp(x - max) / sum(exp(x - max)) along `dim`: subtracting the max changes nothing but overflow."""
    x, dim = (input if dtype is None else input.to(dtype)), _dim(input, dim)
    e = (x - x.amax(dim, keepdim=True)).exp()
    return e / e.sum(dim, keepdim=True)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """x - logsumexp(x) along `dim`."""
    x, dim = (input if dtype is None else input.to(dtype)), _dim(input, dim)
    return x - x.logsumexp(dim, keepdim=True)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                  label_smoothing=0.0):
    """-log_softmax(logits)[target] per row with classes on dim 1 (dim 0 when 1-D), times weight[target],
    label-smoothed: (1 - eps) of that plus eps / C of sum_c -weight_c log_softmax_c; zero where the target
    is ignore_index; then their mean (divided by the summed weights of the counted rows), their sum, or
    all of them ('none'). Targets (class indices) go via the host. (size_average, reduce: not used.)"""
    logits, targets = input, target
    c = logits.shape[0] if logits.ndim == 1 else logits.shape[1]
    if logits.ndim == 1:
        flat = logits.reshape(1, c)
    else:
        flat = logits.permute(0, *range(2, logits.ndim), 1).reshape(-1, c)
    t = (targets.numpy() if hasattr(targets, "numpy") else np.asarray(targets)).reshape(-1)
    valid = t != ignore_index
    tv = np.where(valid, t, 0)
    w = np.ones(c) if weight is None else weight.numpy().astype(np.float64)
    logp = log_softmax(flat, -1)
    wt = w[tv] * valid
    losses = -logp[np.arange(len(t)), tv] * tensor(wt.astype(logits.dtype), device=logits.device)
    if label_smoothing:
        smooth = -(logp * tensor(w.astype(logits.dtype), device=logits.device)).sum(-1)
        losses = losses * (1 - label_smoothing) + smooth * tensor(
            (valid * label_smoothing / c).astype(logits.dtype), device=logits.device)
    if reduction == "none":
        return losses.reshape(targets.shape)
    return losses.sum() / (1 if reduction == "sum" else float(wt.sum()))


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """(x - mean) / sqrt(var + eps) over the trailing dims `normalized_shape` (biased variance), * weight + bias."""
    x = input
    k = 1 if isinstance(normalized_shape, (int, np.integer)) else len(normalized_shape)
    dims = tuple(range(x.ndim - k, x.ndim))
    mu = x.mean(dims, keepdim=True)
    var = ((x - mu) ** 2).mean(dims, keepdim=True)
    y = (x - mu) / (var + eps).sqrt()
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    """Rows of `weight` picked by `idx`: plain indexing, whose backward scatters g back into the rows
    (the row padding_idx is cut from the graph: its rows are a constant copy)."""
    idx = input
    if padding_idx is None:
        return weight[idx]
    keep = tensor((np.arange(weight.shape[0]) != padding_idx % weight.shape[0])[:, None].astype(weight.dtype),
                  device=weight.device)
    return (weight * keep + weight.detach() * (1 - keep))[idx]


def dropout(input, p=0.5, training=True, inplace=False):
    """x times a keep-mask scaled by 1 / (1 - p): the same single draw from the device's generator as F.dropout."""
    x = input
    if not training or p == 0:
        return x
    return x * tensor(dropout_mask(x.shape, p, x.dtype, x.device), device=x.device)


def linear(input, weight, bias=None):
    """x @ weight.T + bias."""
    y = input @ weight.T
    return y if bias is None else y + bias


def relu(input, inplace=False):
    return input.relu()


def gelu(input, approximate="none"):
    return input.gelu(approximate)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """softmax(q k^T * scale + attn_mask, future keys masked to -inf when causal), dropped out, @ v.

    q (..., Tq, hs), k (..., Tk, hs), v (..., Tk, hv); scale defaults to 1/sqrt(hs); attn_mask bool (True:
    may attend) or float (added). (enable_gqa: k and v must have q's heads here.)
    """
    q, k, v = query, key, value
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = (q @ k.transpose(-2, -1)) * scale  # (..., Tq, Tk)
    if is_causal:
        tq, tk = s.shape[-2:]
        s = s.masked_fill(np.triu(np.ones((tq, tk), dtype=bool), 1), -np.inf)
    if attn_mask is not None:
        s = s.masked_fill(~attn_mask.numpy(), -np.inf) if attn_mask.dtype == np.bool_ else s + attn_mask
    return dropout(softmax(s, -1), dropout_p) @ v  # (..., Tq, hv)


def self_attention(qkv, n_head, is_causal=True, dropout_p=0.0, scale=None):
    """Split qkv (B, T, 3C) into q | k | v and n_head heads, attend, and put the heads side by side: (B, T, C)."""
    B, T, C3 = qkv.shape
    hs = C3 // (3 * n_head)
    heads = qkv.reshape(B, T, 3, n_head, hs).permute(2, 0, 3, 1, 4)  # (3, B, n_head, T, hs)
    y = scaled_dot_product_attention(heads[0], heads[1], heads[2], None, dropout_p, is_causal, scale)
    return y.transpose(1, 2).reshape(B, T, C3 // 3)  # (B, T, n_head, hs) -> (B, T, C)
