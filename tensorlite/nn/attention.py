"""Causal multi-head self-attention with one fused q/k/v projection."""
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
        self.n_embd, self.n_head, self.dropout = n_embd, n_head, F._check_p(dropout, "MultiHeadAttention")
        self.c_attn = Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = Dropout(dropout)

    def forward(self, x):
        if x.ndim != 3 or x.shape[-1] != self.n_embd:
            raise ValueError(f"MultiHeadAttention: expected input of shape (B, T, {self.n_embd}), got {x.shape}")
        # one Function views q | k | v and the heads inside c_attn's output (B, T, 3C), attends, and puts
        # the heads side by side again; F.scaled_dot_product_attention on split heads computes the same
        y = F.self_attention(self.c_attn(x), self.n_head, causal=True, dropout_p=self.dropout,
                             training=self.training)
        return self.resid_dropout(self.c_proj(y))

    def extra_repr(self):
        return f"n_embd={self.n_embd}, n_head={self.n_head}, dropout={self.dropout}"
