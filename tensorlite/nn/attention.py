"""Causal multi-head self-attention with one fused q/k/v projection, and the key/value cache for generation."""
from ..functions import cat
from . import functional as F
from .layers import Dropout, Linear
from .module import Module


class MultiHeadAttention(Module):
    """Causal self-attention on x of shape (B, T, C) with n_head heads of size C // n_head.

    One Linear (c_attn) makes q, k and v for every head at once; F.self_attention
    reads them as three (B, n_head, T, head_size) views, so all heads run in the
    same batched matrix products. c_proj mixes the heads back.
    """

    def __init__(self, n_embd, n_head, dropout=0.0, bias=True):
        super().__init__()
        if not isinstance(n_embd, int) or not isinstance(n_head, int) or n_embd <= 0 or n_head <= 0:
            raise ValueError(f"MultiHeadAttention: n_embd and n_head must be positive integers, "
                             f"got n_embd={n_embd!r}, n_head={n_head!r}")
        if n_embd % n_head:
            raise ValueError(f"MultiHeadAttention: n_embd ({n_embd}) must be divisible by n_head ({n_head}) "
                             "so that every head gets the same size")
        self.n_embd, self.n_head, self.dropout = n_embd, n_head, F.check_dropout_p(dropout, "MultiHeadAttention")
        self.c_attn = Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = Dropout(dropout)

    def forward(self, x, kv_cache=None):
        """x (B, T, C) -> (B, T, C). With a KVCache, x holds only the positions after the cached ones:
        either the whole prompt into an empty cache, or one new position at a time."""
        if x.ndim != 3 or x.shape[-1] != self.n_embd:
            raise ValueError(f"MultiHeadAttention: expected input of shape (B, T, {self.n_embd}), got {tuple(x.shape)}")
        qkv = self.c_attn(x)
        if kv_cache is None or kv_cache.length == 0:
            # one Function views q | k | v and the heads inside c_attn's output (B, T, 3C), attends, and puts
            # the heads side by side again; F.scaled_dot_product_attention on split heads computes the same
            y = F.self_attention(qkv, self.n_head, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
            if kv_cache is not None:
                _, k, v = self._heads(qkv)
                kv_cache.append(k, v)
        else:
            y = self._attend_cached(qkv, kv_cache)
        return self.resid_dropout(self.c_proj(y))

    def _heads(self, qkv):
        """qkv (B, T, 3C) -> q, k, v, each (B, n_head, T, head_size)."""
        B, T, C3 = qkv.shape
        # (B, T, 3C) -> (B, T, 3, n_head, hs) -> (3, B, n_head, T, hs)
        heads = qkv.reshape(B, T, 3, self.n_head, C3 // (3 * self.n_head)).permute(2, 0, 3, 1, 4)
        return heads[0], heads[1], heads[2]

    def _attend_cached(self, qkv, kv_cache):
        B, T, _ = qkv.shape
        if T != 1:
            raise ValueError(f"MultiHeadAttention: with a non-empty KVCache ({kv_cache.length} positions) feed one "
                             f"new position at a time, got {T}")
        q, k, v = self._heads(qkv)
        k, v = kv_cache.append(k, v)
        # the one new query may see every cached key (all are in its past): no causal mask needed
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return y.transpose(1, 2).reshape(B, T, self.n_embd)  # (B, n_head, 1, hs) -> (B, 1, n_head, hs) -> (B, 1, C)

    def extra_repr(self):
        return f"n_embd={self.n_embd}, n_head={self.n_head}, dropout={self.dropout}"


class KVCache:
    """The keys and values one attention layer has computed so far, each (B, n_head, T, head_size).

    Why it helps: generating token t+1 needs attention of the newest position over all t earlier ones.
    Without a cache the whole context runs through the network again at every step, an O(T^2) attention
    and T times the MLP work, though only the last position's output is used. The keys and values of the
    earlier positions do not change when a token is appended (causal attention: a position never sees
    the future), so we keep them: each step runs one position and attends over the cached keys, O(T).
    Meant for generation under tensorlite.no_grad() (with gradients on, the cache would hold every step's graph).
    """

    def __init__(self):
        self.k = self.v = None

    @property
    def length(self):
        """How many positions are cached."""
        return 0 if self.k is None else self.k.shape[2]

    def append(self, k, v):
        """Add the keys and values of new positions (B, n_head, T_new, hs); returns all of them."""
        if self.k is None:
            self.k, self.v = k, v
        else:
            self.k, self.v = cat([self.k, k], dim=2), cat([self.v, v], dim=2)
        return self.k, self.v
