"""Scaled dot-product attention as one Function: on separate q, k, v, and on packed q | k | v projections.

Both share one forward and one backward on raw arrays (_attention_forward/_backward), which keep the
(..., Tq, Tk) attention matrix as the only large saved array and split the batch over the CPU cores.
"""
import math

import numpy as np

from ... import backend, kernels
from ...autograd import Function
from ...kernels.rows import compute_dtype
from ...kernels.softmax import causal_softmax, causal_softmax_backward

_causal_bias_cache = {}


def _causal_bias(tq, tk, dtype, like):
    """(tq, tk) additive mask of `dtype` on like's device, cached per size, dtype and device: 0 where
    query i may see key j <= i, -inf above the diagonal."""
    key = (tq, tk, dtype.str, backend.device_of(like))
    bias = _causal_bias_cache.get(key)
    if bias is None:
        xp = backend.get_array_module(like)
        future = xp.triu(xp.ones((tq, tk), dtype=bool), 1)
        bias = _causal_bias_cache[key] = xp.where(future, xp.asarray(-np.inf, dtype), xp.zeros((), dtype))
    return bias


def _attention_forward(fn, q, k, v):
    """P = softmax(scale q k^T + causal bias), then (P * dropout mask) @ v. Keeps q, k, v, P, out on `fn`.

    The softmax runs in place on the one (..., Tq, Tk) score array, in float32 for float16 scores (P is
    stored in the scores' dtype). On the CPU the leading (batch) rows are split over the cores
    (backend.parallel_for). On CUDA with TENSORLITE_FUSED=1 and no attn_bias, scale, causal mask and
    softmax are one kernel (tensorlite.kernels.softmax).
    """
    xp = backend.get_array_module(q)
    lead, tq, tk = q.shape[:-2], q.shape[-2], k.shape[-2]
    p = xp.empty(lead + (tq, tk), dtype=q.dtype)
    out = xp.empty(lead + (tq, v.shape[-1]), dtype=q.dtype)
    # attn_bias: an additive mask (0 / -inf from a bool mask, or the user's floats) broadcast to (..., Tq, Tk)
    extra = getattr(fn, "attn_bias", None)
    extra = None if extra is None else xp.broadcast_to(extra, lead + (tq, tk))
    fn.kernel = extra is None and kernels.use_fused(q, k, v)
    ct = compute_dtype(q.dtype)
    bias = _causal_bias(tq, tk, ct, q) if fn.causal and not fn.kernel else None
    scale = ct.type(fn.scale)
    ones = xp.ones(tk, dtype=ct)  # pr @ ones: the row sums as a BLAS product, 5x faster than .sum(-1)

    def rows(r):
        pr = p[r]
        xp.matmul(q[r], k[r].swapaxes(-1, -2), out=pr)  # (..., Tq, hs) @ (..., hs, Tk) -> (..., Tq, Tk)
        if fn.kernel:  # r is Ellipsis on a GPU: every row at once
            causal_softmax(xp, pr, fn.scale, fn.causal)
        else:
            sr = pr.astype(ct, copy=False)  # float16: the softmax in float32
            if not _softmax_rows(xp, sr, scale, bias, None if extra is None else extra[r], ones):
                sr = xp.matmul(q[r], k[r].swapaxes(-1, -2)).astype(ct, copy=False)  # the scores again
                _softmax_rows(xp, sr, scale, bias, None if extra is None else extra[r], ones, diagonal=False)
            if sr is not pr:
                pr[...] = sr
        xp.matmul(pr * fn.mask[r] if fn.mask is not None else pr, v[r], out=out[r])  # (..., Tq, hv)

    _over_rows(xp, p.shape, rows)
    fn.q, fn.k, fn.v, fn.p, fn.out = q, k, v, p, out  # P' = P * mask is recomputed in backward
    return out


def _softmax_rows(xp, pr, scale, bias, extra, ones, diagonal=True):
    """pr = softmax(scale pr + bias + extra) along the last axis, in place (bias, extra: None or additive).

    Softmax is the same for any shift of a row; the shift only keeps exp in range. On the CPU, without
    `extra`, and with a key for every query (Tq <= Tk), each row is shifted by its diagonal score (query i with key i,
    never masked) instead of its max: the max over the last axis is NumPy's slowest step here (~0.44 of
    1.9 ms per layer at the cpu preset), the diagonal a strided view. The diagonal's own term is exp(0) = 1,
    so a row sum cannot underflow; if one overflows (a score 88 above its row's diagonal in float32), this
    returns False, pr is lost, and the caller recomputes the scores and calls again with diagonal=False.
    """
    pr *= scale
    if bias is not None:
        pr += bias
    if extra is None:
        diagonal = diagonal and xp is np and pr.shape[-2] <= pr.shape[-1]  # (on a GPU the check would sync)
        if diagonal:
            pr -= xp.diagonal(pr, axis1=-2, axis2=-1)[..., None].copy()  # copied: pr changes under it
        else:
            pr -= pr.max(axis=-1, keepdims=True)
        with np.errstate(over="ignore"):  # an overflow is found in the row sums below
            xp.exp(pr, out=pr)
            total = pr @ ones
        if diagonal and not xp.isfinite(total).all():
            return False
        pr *= (1 / total)[..., None]  # one division per row, then products
    else:  # a row whose keys are all masked gets weights 0 (output and gradients 0), as in PyTorch
        pr += extra
        top = pr.max(axis=-1, keepdims=True)
        pr -= xp.where(top == -np.inf, 0, top)
        xp.exp(pr, out=pr)
        total = pr @ ones
        pr *= xp.where(total > 0, 1 / xp.where(total > 0, total, 1), 0)[..., None]
    return True


# The batch rows of an attention go to the cores from this many scores (B x heads x Tq x Tk) on. Measured on a
# 2-core AMD EPYC, self-attention forward + backward, 4 heads: 16k scores 0.36 ms in one thread, 0.48 split;
# 33k: 0.56 and 0.58; 131k: 1.43 and 1.04; 524k (the cpu preset): 7.7 and 4.3.
PARALLEL_SCORES = 1 << 15


def _over_rows(xp, scores, body):
    """body(r) over the leading (batch) rows of the `scores` shape (..., Tq, Tk): on the CPU split over the
    cores by the first axis (backend.parallel_rows); on a GPU, or without leading axes, one call on
    everything (r = Ellipsis)."""
    if xp is np and len(scores) > 2:
        backend.parallel_rows(xp, scores[0], math.prod(scores[1:]), lambda r: body((r,)), PARALLEL_SCORES)
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
    ct = compute_dtype(g.dtype)
    scale = ct.type(fn.scale)
    ones = xp.ones(g.shape[-1], dtype=ct)

    def rows(r):
        pr = p[r]
        if need_v:
            xp.matmul((pr * mask[r] if mask is not None else pr).swapaxes(-1, -2), g[r], out=dv[r])  # (..., Tk, hv)
        ds = g[r] @ v[r].swapaxes(-1, -2)  # (..., Tq, hv) @ (..., hv, Tk) -> (..., Tq, Tk)
        if fn.kernel:  # dS = scale P (dP M - rowsum(dP M P)) in one kernel, the row sums from dP itself
            causal_softmax_backward(xp, ds, pr, None if mask is None else mask[r], fn.scale)
        else:  # float16: the row sums and dS in float32
            ds = ds.astype(ct, copy=False)
            if mask is not None:
                ds *= mask[r]
            ds -= ((g[r].astype(ct, copy=False) * fn.out[r]) @ ones)[..., None]
            ds *= pr
            ds *= scale
            ds = ds.astype(g.dtype, copy=False)
        if need_q:
            xp.matmul(ds, k[r], out=dq[r])  # (..., Tq, hs)
        if need_k:
            xp.matmul(ds.swapaxes(-1, -2), q[r], out=dk[r])  # (..., Tk, hs)

    _over_rows(xp, p.shape, rows)
    return dq, dk, dv


class ScaledDotProductAttention(Function):
    """q (..., Tq, hs), k (..., Tk, hs), v (..., Tk, hv) -> (..., Tq, hv); causal, scale, the dropout mask
    and attn_bias (an additive (..., Tq, Tk)-broadcastable array, or None) as attributes."""
    saves_inputs = True
    saves_output = True  # backward reads out (the row sums g . out)

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
    saves_inputs = True  # q, k, v are views of the input
    # backward reads the (B, H, T, hs) result before the heads are merged, which the output can share memory
    # with (one head): an in-place change of the output is refused, as PyTorch does for its attention
    saves_output = True

    def forward(self, qkv):
        B, T, C3 = qkv.shape
        # (B, T, 3C) -> (B, T, 3, H, hs) -> (3, B, H, T, hs): heads[i] is q, k or v of every head, a view
        heads = qkv.reshape(B, T, 3, self.n_head, C3 // (3 * self.n_head)).transpose(2, 0, 3, 1, 4)
        y = _attention_forward(self, heads[0], heads[1], heads[2])  # (B, H, T, hs)
        return y.transpose(0, 2, 1, 3).reshape(B, T, C3 // 3)  # (B, T, H, hs) -> (B, T, C): heads side by side

    def backward(self, g):
        xp = backend.get_array_module(g)
        B, T, C = g.shape
        hs = C // self.n_head
        gh = g.reshape(B, T, self.n_head, hs).transpose(0, 2, 1, 3)  # (B, T, C) -> (B, H, T, hs)
        dqkv = xp.empty((B, T, 3, self.n_head, hs), dtype=g.dtype)
        heads = dqkv.transpose(2, 0, 3, 1, 4)  # (3, B, H, T, hs): the same views of q | k | v as in forward
        if xp is np:
            _attention_backward(self, gh, into=(heads[0], heads[1], heads[2]))
        else:  # CuPy's matmul is trusted with contiguous outputs only: compute, then copy into the views
            for view, d in zip(heads, _attention_backward(self, gh)):
                view[...] = d
        return dqkv.reshape(B, T, 3 * C)
