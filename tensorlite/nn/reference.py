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


def softmax(x, dim=-1):
    """exp(x - max) / sum(exp(x - max)) along `dim`: subtracting the max changes nothing but overflow."""
    e = (x - x.amax(dim, keepdim=True)).exp()
    return e / e.sum(dim, keepdim=True)


def log_softmax(x, dim=-1):
    """x - logsumexp(x) along `dim`."""
    return x - x.logsumexp(dim, keepdim=True)


def cross_entropy(logits, targets, ignore_index=-100, reduction="mean"):
    """-log_softmax(logits)[target] per row (class axis last), zero where the target is ignore_index;
    then their mean over the counted rows, their sum, or all of them ('none'). Targets go via the host."""
    c = logits.shape[-1]
    flat = logits.reshape(-1, c)
    t = (targets.numpy() if hasattr(targets, "numpy") else np.asarray(targets)).reshape(-1)
    valid = t != ignore_index
    logp = log_softmax(flat, -1)
    picked = -logp[np.arange(len(t)), np.where(valid, t, 0)]
    mask = tensor(valid.astype(logits.dtype), device=logits.device)
    losses = picked * mask
    if reduction == "none":
        return losses.reshape(logits.shape[:-1])
    return losses.sum() / (1 if reduction == "sum" else float(valid.sum()))


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """(x - mean) / sqrt(var + eps) over the trailing dims `normalized_shape` (biased variance), * weight + bias."""
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


def embedding(idx, weight):
    """Rows of `weight` picked by `idx`: plain indexing, whose backward scatters g back into the rows."""
    return weight[idx]


def dropout(x, p=0.5, training=True):
    """x times a keep-mask scaled by 1 / (1 - p): the same single draw from the device's generator as F.dropout."""
    if not training or p == 0:
        return x
    return x * tensor(dropout_mask(x.shape, p, x.dtype, x.device), device=x.device)


def linear(x, weight, bias=None):
    """x @ weight.T + bias."""
    y = x @ weight.T
    return y if bias is None else y + bias


def relu(x):
    return x.relu()


def gelu(x, approximate="none"):
    return x.gelu(approximate)


def scaled_dot_product_attention(q, k, v, causal=True, dropout_p=0.0, training=True, scale=None):
    """softmax(q k^T * scale, future keys masked to -inf when causal), dropped out, @ v.

    q (..., Tq, hs), k (..., Tk, hs), v (..., Tk, hv); scale defaults to 1/sqrt(hs).
    """
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = (q @ k.transpose(-2, -1)) * scale  # (..., Tq, Tk)
    if causal:
        tq, tk = s.shape[-2:]
        s = s.masked_fill(np.triu(np.ones((tq, tk), dtype=bool), 1), -np.inf)
    p = dropout(softmax(s, -1), dropout_p, training)
    return p @ v  # (..., Tq, hv)


def self_attention(qkv, n_head, causal=True, dropout_p=0.0, training=True, scale=None):
    """Split qkv (B, T, 3C) into q | k | v and n_head heads, attend, and put the heads side by side: (B, T, C)."""
    B, T, C3 = qkv.shape
    hs = C3 // (3 * n_head)
    heads = qkv.reshape(B, T, 3, n_head, hs).permute(2, 0, 3, 1, 4)  # (3, B, n_head, T, hs)
    y = scaled_dot_product_attention(heads[0], heads[1], heads[2], causal, dropout_p, training, scale)
    return y.transpose(1, 2).reshape(B, T, C3 // 3)  # (B, T, n_head, hs) -> (B, T, C)
