"""Fused neural-network functions: ``import tensorlite.nn.functional as F``.

Each function here is ONE ``Function`` whose backward is derived by hand,
instead of a chain of primitives recorded by autograd. That saves memory (one
node and a few saved arrays instead of a dozen) and time (no intermediate
gradients), and it lets the forward use the numerically stable formulation.
The tests compare every one of them with the same computation composed from
primitives: two derivations of the same derivative that must agree.

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
from ..autograd import Function
from ..ops.softmax import LogSoftmax, Softmax
from ..dtypes import is_float
from ..tensor import Tensor

__all__ = ["softmax", "log_softmax", "cross_entropy", "layer_norm", "embedding", "dropout", "linear", "relu",
           "gelu", "scaled_dot_product_attention", "self_attention"]


# ---------------------------------------------------------------- boundary checks
def _check_tensor(x, name, fname, floating=True):
    if not isinstance(x, Tensor):
        raise TypeError(f"{fname}(): {name} must be a tensorlite.Tensor, got {type(x).__name__}")
    if floating and not is_float(x.dtype):
        raise TypeError(f"{fname}(): {name} must be a floating-point tensor, got dtype {x.dtype}")


def _check_dim(dim, ndim, fname):
    if not isinstance(dim, (int, np.integer)) or not -max(ndim, 1) <= dim < max(ndim, 1):
        raise IndexError(f"{fname}(): dim {dim!r} is out of range for a tensor with {ndim} dimension(s)")
    return int(dim) % max(ndim, 1)


def _check_same_dtype(fname, **tensors):
    dtypes = {name: t.dtype for name, t in tensors.items() if t is not None}
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{n} {d}" for n, d in dtypes.items())
        raise TypeError(f"{fname}(): expected tensors of one dtype, got {listed}; convert with .to(dtype)")


def _check_device(fname, ref, **tensors):
    for name, t in tensors.items():
        if t is not None and t.device != ref.device:
            raise RuntimeError(f"{fname}(): {name} is on {t.device} but the input is on {ref.device}; "
                               f"move it with .to({ref.device!r})")


def _index_array(idx, device, fname, name):
    """An integer index (Tensor, array or list) as an array on `device`."""
    if isinstance(idx, Tensor):
        if idx.device != device:
            raise RuntimeError(f"{fname}(): {name} is on {idx.device} but the weights are on {device}; "
                               f"move it with .to({device!r})")
        arr = idx.data
    else:
        arr = backend.to_device(np.asarray(idx), device)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{fname}(): {name} must hold integer (int64) class indices, got dtype {arr.dtype}")
    return arr


# ---------------------------------------------------------------- softmax family
def softmax(x, dim=-1):
    """exp(x) / sum(exp(x)) along `dim`, computed without overflow."""
    _check_tensor(x, "input", "softmax")
    return Softmax.apply(x, dim=_check_dim(dim, x.ndim, "softmax"))


def log_softmax(x, dim=-1):
    """x - logsumexp(x) along `dim`: finite for any finite logits (unlike log(softmax(x)))."""
    _check_tensor(x, "input", "log_softmax")
    return LogSoftmax.apply(x, dim=_check_dim(dim, x.ndim, "log_softmax"))


class CrossEntropy(Function):
    """Mean (or sum, or per-row) of -log softmax(logits)[target] over rows whose target is not ignored."""

    def forward(self, logits):
        xp = backend.get_array_module(logits)
        t, valid = self.targets, self.valid
        shifted = logits - logits.max(axis=1, keepdims=True)
        lse = xp.log(xp.exp(shifted).sum(axis=1))
        picked = xp.take_along_axis(shifted, xp.where(valid, t, 0)[:, None], axis=1)[:, 0]
        losses = xp.where(valid, lse - picked, 0).astype(logits.dtype, copy=False)
        self.shifted, self.lse = shifted, lse
        if self.reduction == "none":
            return losses.reshape(self.out_shape)
        if self.reduction == "sum":
            return losses.sum()
        self.count = valid.sum().astype(logits.dtype)  # stays on the device: no host sync
        with np.errstate(invalid="ignore", divide="ignore"):  # all ignored -> nan, as in PyTorch
            return losses.sum() / self.count

    # d loss_i / d logits_i = softmax(logits_i) - onehot(target_i)   (0 for ignored rows), times g (/ count)
    def backward(self, g):
        xp = backend.get_array_module(g)
        t, valid = self.targets, self.valid
        grad = xp.exp(self.shifted - self.lse[:, None])
        rows = xp.arange(grad.shape[0])
        grad[rows, xp.where(valid, t, 0)] -= 1
        if self.reduction == "none":
            scale = g.reshape(-1) * valid
        else:
            scale = valid * (g if self.reduction == "sum" else g / self.count)
        grad *= scale.astype(grad.dtype, copy=False)[:, None]  # in place: logits can be (B*T, 50304)
        return grad


def cross_entropy(logits, targets, ignore_index=-100, reduction="mean"):
    """Cross-entropy of logits (N, C) or (..., C) against int64 class indices of shape (N,) or (...).

    Leading dimensions are flattened, so (B, T, C) logits with (B, T) targets
    work as PyTorch's (B*T, C) with (B*T,). Rows whose target is `ignore_index`
    count neither in the sum nor in the mean.
    """
    _check_tensor(logits, "logits", "cross_entropy")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy(): reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if logits.ndim == 0:
        raise ValueError("cross_entropy(): logits must have a class dimension, got a 0-d tensor")
    t = _index_array(targets, logits.device, "cross_entropy", "targets")
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
class LayerNorm(Function):
    """Works on x viewed as (rows, D), D = the size of normalized_shape. Row means and column sums are
    matrix-vector products with a constant vector (BLAS), and row sums of squares are row-wise dot
    products: several times faster than ufunc reductions over a short last axis."""

    def forward(self, x, *affine):
        xp = backend.get_array_module(x)
        d = x.shape[-1] if self.k == 1 else int(np.prod(x.shape[x.ndim - self.k:]))
        x2 = x.reshape(-1, d)
        self.avg = xp.full(d, 1 / d, dtype=x.dtype)  # x2 @ avg = mean of each row
        xhat = x2 - (x2 @ self.avg)[:, None]
        self.rstd = (1 / xp.sqrt(_row_dot(xp, xhat, xhat) * self.avg[0] + self.eps))[:, None]
        xhat *= self.rstd
        self.xhat, self.w = xhat, (affine[0].reshape(-1) if self.has_weight else None)
        y = xhat * self.w if self.has_weight else xhat.copy() if self.has_bias else xhat
        if self.has_bias:
            y += affine[-1].reshape(-1)
        return y.reshape(x.shape)

    # y = xhat * w + b,  xhat = (x - mean) * rstd:
    # dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat)) with gh = g * w;  dw = sum(g * xhat);  db = sum(g)
    # mean(gh) = g @ (w / D) and mean(gh * xhat) = (g * xhat) @ (w / D) reuse g * xhat, which dw needs too.
    def backward(self, g):
        xp = backend.get_array_module(g)
        xhat, w = self.xhat, self.w
        g2 = g.reshape(xhat.shape)
        gx = g2 * xhat if self.needs_input_grad[0] or (self.has_weight and self.needs_input_grad[1]) else None
        dx = None
        if self.needs_input_grad[0]:
            wd = self.avg * w if self.has_weight else self.avg
            dx = g2 * w if self.has_weight else g2.copy()
            dx -= (g2 @ wd)[:, None]
            dx -= xhat * (gx @ wd)[:, None]
            dx *= self.rstd
            dx = dx.reshape(g.shape)
        ones = xp.ones(g2.shape[0], dtype=g.dtype)  # ones @ m = sum of the rows of m
        grads = [dx]
        if self.has_weight:
            grads.append((ones @ gx).reshape(self.w_shape) if self.needs_input_grad[1] else None)
        if self.has_bias:
            grads.append((ones @ g2).reshape(self.w_shape) if self.needs_input_grad[-1] else None)
        return tuple(grads)


def _row_dot(xp, a, b):
    """sum(a * b, axis=-1) of 2-D arrays: NumPy's vecdot is one pass; elsewhere a product then a BLAS GEMV."""
    if hasattr(xp, "vecdot"):
        return xp.vecdot(a, b)
    return (a * b) @ xp.ones(a.shape[-1], dtype=a.dtype)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalize over the trailing dimensions `normalized_shape`, then scale by weight and shift by bias."""
    _check_tensor(x, "input", "layer_norm")
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or k > x.ndim or x.shape[x.ndim - k:] != shape:
        raise ValueError(f"layer_norm(): normalized_shape {shape} does not match the trailing dimensions of the "
                         f"input of shape {x.shape}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None:
            _check_tensor(p, name, "layer_norm")
            if p.shape != shape:
                raise ValueError(f"layer_norm(): {name} has shape {p.shape}, expected normalized_shape {shape}")
    _check_same_dtype("layer_norm", input=x, weight=weight, bias=bias)
    _check_device("layer_norm", x, weight=weight, bias=bias)
    affine = [p for p in (weight, bias) if p is not None]
    return LayerNorm.apply(x, *affine, k=k, eps=float(eps), has_weight=weight is not None,
                           has_bias=bias is not None, w_shape=shape)


# ---------------------------------------------------------------- embedding
def scatter_add_rows(idx, g, num_rows):
    """out[r] = sum of g[n] over all n with idx[n] == r, for idx (N,) and g (N, D).

    This is the embedding's backward. NumPy's ``np.add.at(out, idx, g)`` on a 2-D
    array does it one row at a time and is ~50x slower than the forward, so on
    the CPU (measured at N = 2048, D = 384):
    - few distinct rows (a character vocabulary): sort the positions by row so
      equal rows are adjacent, and sum each run with one ``np.add.reduceat``;
    - many distinct rows: ``np.add.at`` on the FLAT array, with one offset per
      element (NumPy >= 1.25 has a fast path for 1-D ufunc.at).
    Both are single-threaded, so they stay fast on a busy machine; a one-hot
    matrix product was no faster single-threaded and erratic under load.
    On CuPy ``add.at`` is an atomic scatter-add kernel, fast as it is.
    """
    xp = backend.get_array_module(g)
    n, d = g.shape
    out = xp.zeros((num_rows, d), dtype=g.dtype)
    if xp is not np:
        xp.add.at(out, idx, g)
        return out
    order = np.argsort(idx, kind="stable")
    rows = idx[order]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])  # where each run of one row begins
    if len(starts) <= n // 16:
        out[rows[starts]] = np.add.reduceat(np.take(g, order, axis=0), starts, axis=0)
    else:
        flat = (idx[:, None] * d + np.arange(d)).reshape(-1)
        np.add.at(out.reshape(-1), flat, g.reshape(-1))
    return out


class Embedding(Function):
    def forward(self, weight):
        xp = backend.get_array_module(weight)
        self.num_rows = weight.shape[0]
        return xp.take(weight, self.idx, axis=0)

    # out[n] = W[idx[n]]:  dW[r] = sum of g[n] over positions n with idx[n] == r
    def backward(self, g):
        d = g.shape[-1]
        return scatter_add_rows(self.idx.reshape(-1), g.reshape(-1, d), self.num_rows)


def embedding(idx, weight):
    """Rows of `weight` (num_embeddings, dim) picked by the integer tensor `idx`: shape idx.shape + (dim,)."""
    _check_tensor(weight, "weight", "embedding")
    if weight.ndim != 2:
        raise ValueError(f"embedding(): weight must be 2-D (num_embeddings, embedding_dim), got shape {weight.shape}")
    arr = _index_array(idx, weight.device, "embedding", "idx")
    v = weight.shape[0]
    # never let take() wrap an index around (checked without a host sync on a GPU)
    if arr.size and backend.check_values((arr < 0) | (arr >= v), arr, lambda first: IndexError(
            f"embedding(): index {first} is out of range for an embedding table of size {v} "
            f"(valid indices: 0..{v - 1})")):
        arr = arr.clip(0, v - 1)  # the error comes at the next read; until then keep the kernels in bounds
    return Embedding.apply(weight, idx=arr.astype(np.int64, copy=False))


# ---------------------------------------------------------------- dropout
class Dropout(Function):
    def forward(self, x):
        return x * self.mask

    # y = x * mask / (1 - p):  dx = g * mask / (1 - p)   (the same mask)
    def backward(self, g):
        return g * self.mask


def _dropout_mask(shape, p, dtype, device):
    """Keep-mask already scaled by 1 / (1 - p), from the device's seeded generator."""
    xp = backend.xp_for(device)
    with backend.device_context(device):
        u = backend.generator(device).random(shape, np.dtype(dtype))
        return (u >= p).astype(dtype) * xp.asarray(1 / (1 - p), dtype=dtype)


def _check_p(p, fname):
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)) or not 0 <= p < 1:
        raise ValueError(f"{fname}(): dropout probability must be in [0, 1), got {p!r}")
    return float(p)


def dropout(x, p=0.5, training=True):
    """Zero each element with probability p and scale the rest by 1/(1-p) (identity when not training)."""
    _check_tensor(x, "input", "dropout")
    p = _check_p(p, "dropout")
    if not training or p == 0:
        return x
    return Dropout.apply(x, mask=_dropout_mask(x.shape, p, x.dtype, x.device))


# ---------------------------------------------------------------- linear
class Linear(Function):
    def forward(self, x, weight, *bias):
        self.x2 = x.reshape(-1, x.shape[-1])  # leading dims flattened: one 2-D product
        self.weight, self.x_shape = weight, x.shape
        y = self.x2 @ weight.T
        if bias:
            y += bias[0]
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    # y = x W^T + b:  dx = g W,  dW = g^T x,  db = sum of g over rows (ones @ g: a BLAS product, 2-3x
    # faster than g.sum(axis=0))
    def backward(self, g):
        xp = backend.get_array_module(g)
        g2 = g.reshape(-1, g.shape[-1])
        dx = (g2 @ self.weight).reshape(self.x_shape) if self.needs_input_grad[0] else None
        dw = g2.T @ self.x2 if self.needs_input_grad[1] else None
        if len(self.needs_input_grad) == 2:
            return dx, dw
        return dx, dw, (xp.ones(g2.shape[0], dtype=g.dtype) @ g2 if self.needs_input_grad[2] else None)


def linear(x, weight, bias=None):
    """x @ weight.T + bias, with weight (out_features, in_features) as in PyTorch."""
    _check_tensor(x, "input", "linear")
    _check_tensor(weight, "weight", "linear")
    if weight.ndim != 2:
        raise ValueError(f"linear(): weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear(): input of shape {x.shape} does not match weight of shape {weight.shape}: "
                         f"the last input dimension must be in_features={weight.shape[1]}")
    if bias is not None:
        _check_tensor(bias, "bias", "linear")
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"linear(): bias has shape {bias.shape}, expected ({weight.shape[0]},)")
    _check_same_dtype("linear", input=x, weight=weight, bias=bias)
    _check_device("linear", x, weight=weight, bias=bias)
    return Linear.apply(x, weight, *([bias] if bias is not None else []))


# ---------------------------------------------------------------- activations (primitives, re-exported)
def relu(x):
    return x.relu()


def gelu(x, approximate="none"):
    return x.gelu(approximate)


# ---------------------------------------------------------------- attention
_causal_bias_cache = {}


def _causal_bias(tq, tk, like):
    """(tq, tk) additive mask, cached per size, dtype and device: 0 where query i may see key j <= i,
    -inf above the diagonal."""
    key = (tq, tk, like.dtype.str, backend.device_of(like))
    bias = _causal_bias_cache.get(key)
    if bias is None:
        xp = backend.get_array_module(like)
        future = xp.triu(xp.ones((tq, tk), dtype=bool), 1)
        bias = _causal_bias_cache[key] = xp.where(future, xp.asarray(-np.inf, like.dtype), xp.zeros((), like.dtype))
    return bias


def _attention_forward(fn, q, k, v):
    """P = softmax(scale q k^T + causal bias), then (P * dropout mask) @ v. Keeps q, k, v, P, out on `fn`.

    The softmax runs in place on the one (..., Tq, Tk) score array. On the CPU the
    leading (batch) rows are split over the cores (backend.parallel_for).
    """
    xp = backend.get_array_module(q)
    lead, tq, tk = q.shape[:-2], q.shape[-2], k.shape[-2]
    p = xp.empty(lead + (tq, tk), dtype=q.dtype)
    out = xp.empty(lead + (tq, v.shape[-1]), dtype=q.dtype)
    bias = _causal_bias(tq, tk, q) if fn.causal else None
    scale = q.dtype.type(fn.scale)
    ones = xp.ones(tk, dtype=q.dtype)  # pr @ ones: the row sums as a BLAS product, 5x faster than .sum(-1)

    def rows(r):
        pr = p[r]
        xp.matmul(q[r], k[r].swapaxes(-1, -2), out=pr)
        pr *= scale
        if bias is not None:
            pr += bias
        pr -= pr.max(axis=-1, keepdims=True)
        xp.exp(pr, out=pr)
        pr *= (1 / (pr @ ones))[..., None]  # one division per row, then products
        xp.matmul(pr * fn.mask[r] if fn.mask is not None else pr, v[r], out=out[r])

    _over_rows(xp, lead, rows)
    fn.q, fn.k, fn.v, fn.p, fn.out = q, k, v, p, out  # P' = P * mask is recomputed in backward
    return out


def _over_rows(xp, lead, body):
    if xp is np and lead:
        backend.parallel_for(lead[0], lambda r: body((r,)))
    else:
        body((Ellipsis,))


# out = P' V, P' = dropout(P), P = softmax(scale * Q K^T + causal mask):
# dV = P'^T G;  dP = (G V^T) * mask;  dS = P * (dP - sum(dP * P));  dQ = scale dS K;  dK = scale dS^T Q
# and the row sums sum_j dP_ij P_ij = sum_j (g_i . v_j) P'_ij = g_i . out_i: a (T, hs) product, not (T, T)
def _attention_backward(fn, g, need_q=True, need_k=True, need_v=True, into=None):
    """dq, dk, dv (None where not needed), written into the arrays `into` when given."""
    xp = backend.get_array_module(g)
    q, k, v, p, mask = fn.q, fn.k, fn.v, fn.p, fn.mask
    dq, dk, dv = into if into is not None else (
        xp.empty(x.shape, dtype=g.dtype) if need else None for x, need in ((q, need_q), (k, need_k), (v, need_v)))
    scale = g.dtype.type(fn.scale)
    ones = xp.ones(g.shape[-1], dtype=g.dtype)

    def rows(r):
        pr = p[r]
        if need_v:
            xp.matmul((pr * mask[r] if mask is not None else pr).swapaxes(-1, -2), g[r], out=dv[r])
        ds = g[r] @ v[r].swapaxes(-1, -2)
        if mask is not None:
            ds *= mask[r]
        ds -= ((g[r] * fn.out[r]) @ ones)[..., None]
        ds *= pr
        ds *= scale
        if need_q:
            xp.matmul(ds, k[r], out=dq[r])
        if need_k:
            xp.matmul(ds.swapaxes(-1, -2), q[r], out=dk[r])

    _over_rows(xp, q.shape[:-2], rows)
    return dq, dk, dv


class ScaledDotProductAttention(Function):
    def forward(self, q, k, v):
        return _attention_forward(self, q, k, v)

    def backward(self, g):
        return _attention_backward(self, g, *self.needs_input_grad)


class SelfAttention(Function):
    """Multi-head attention on packed projections: qkv (B, T, 3C) -> (B, T, C).

    The q, k and v of every head are strided views into qkv, so neither the split
    nor the head transpose copies anything, and backward writes the three
    gradients straight into one (B, T, 3C) array.
    """

    def forward(self, qkv):
        B, T, C3 = qkv.shape
        heads = qkv.reshape(B, T, 3, self.n_head, C3 // (3 * self.n_head)).transpose(2, 0, 3, 1, 4)
        y = _attention_forward(self, heads[0], heads[1], heads[2])  # (B, H, T, hs)
        return y.transpose(0, 2, 1, 3).reshape(B, T, C3 // 3)

    def backward(self, g):
        xp = backend.get_array_module(g)
        B, T, C = g.shape
        hs = C // self.n_head
        gh = g.reshape(B, T, self.n_head, hs).transpose(0, 2, 1, 3)
        dqkv = xp.empty((B, T, 3, self.n_head, hs), dtype=g.dtype)
        heads = dqkv.transpose(2, 0, 3, 1, 4)  # the same views of q | k | v as in forward
        if xp is np:
            _attention_backward(self, gh, into=(heads[0], heads[1], heads[2]))
        else:  # CuPy's matmul is trusted with contiguous outputs only: compute, then copy into the views
            for view, d in zip(heads, _attention_backward(self, gh)):
                view[...] = d
        return dqkv.reshape(B, T, 3 * C)


def self_attention(qkv, n_head, causal=True, dropout_p=0.0, training=True, scale=None):
    """Multi-head self-attention from packed projections qkv (B, T, 3C): q | k | v along the last axis,
    each split into n_head heads of size C // n_head. Returns the heads side by side, (B, T, C).

    The same as splitting qkv into q, k, v of shape (B, n_head, T, hs), calling
    scaled_dot_product_attention and merging the heads, in one Function.
    """
    _check_tensor(qkv, "qkv", "self_attention")
    if qkv.ndim != 3 or qkv.shape[-1] % (3 * n_head):
        raise ValueError(f"self_attention(): qkv must be (B, T, 3 * C) with C divisible by n_head={n_head}, "
                         f"got shape {qkv.shape}")
    p = _check_p(dropout_p, "self_attention")
    B, T, C3 = qkv.shape
    scale = 1 / math.sqrt(C3 // (3 * n_head)) if scale is None else float(scale)
    mask = _dropout_mask((B, n_head, T, T), p, qkv.dtype, qkv.device) if training and p > 0 else None
    return SelfAttention.apply(qkv, n_head=n_head, causal=bool(causal), scale=scale, mask=mask)


def scaled_dot_product_attention(q, k, v, causal=True, dropout_p=0.0, training=True, scale=None):
    """softmax(q k^T * scale [+ causal mask]) (dropped out) @ v, for q (..., Tq, hs), k (..., Tk, hs), v (..., Tk, hv).

    scale defaults to 1/sqrt(hs). The causal mask lets query i see keys j <= i.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        _check_tensor(t, name, "scaled_dot_product_attention")
        if t.ndim < 2:
            raise ValueError(f"scaled_dot_product_attention(): {name} must be at least 2-D (..., T, head_size), "
                             f"got shape {t.shape}")
    if q.shape[:-2] != k.shape[:-2] or k.shape[:-2] != v.shape[:-2]:
        raise ValueError(f"scaled_dot_product_attention(): q, k, v need the same leading dimensions, got "
                         f"{q.shape}, {k.shape}, {v.shape}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention(): q {q.shape} and k {k.shape} need the same head size, "
                         f"and k and v {v.shape} the same number of keys")
    _check_same_dtype("scaled_dot_product_attention", q=q, k=k, v=v)
    _check_device("scaled_dot_product_attention", q, k=k, v=v)
    p = _check_p(dropout_p, "scaled_dot_product_attention")
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    mask = None
    if training and p > 0:
        shape = q.shape[:-1] + (k.shape[-2],)
        mask = _dropout_mask(shape, p, q.dtype, q.device)
    return ScaledDotProductAttention.apply(q, k, v, causal=bool(causal), scale=scale, mask=mask)
