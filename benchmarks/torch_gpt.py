"""The GPT of models/gpt.py written again in PyTorch, with the same parameter names, and `torch_twin`,
which copies a tensorlite GPT's weights into it: the reference compare_torch checks and times against.

It uses torch.nn.functional.scaled_dot_product_attention and one fused q/k/v projection, as a PyTorch
user would write it. Without PyTorch, `torch` is None and TORCH_IMPORT_ERROR says why.
"""
from tensorlite import backend

try:  # PyTorch is only a benchmark's reference, never a dependency of tensorlite
    import torch
    import torch.nn as tnn
    import torch.nn.functional as TF
except ImportError as exc:
    torch = None
    TORCH_IMPORT_ERROR = exc
else:
    TORCH_IMPORT_ERROR = None


if torch is not None:
    class TorchAttention(tnn.Module):
        def __init__(self, c):
            super().__init__()
            self.n_head, self.dropout = c.n_head, c.dropout
            self.c_attn = tnn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
            self.c_proj = tnn.Linear(c.n_embd, c.n_embd, bias=c.bias)
            self.resid_dropout = tnn.Dropout(c.dropout)

        def forward(self, x):
            B, T, C = x.shape
            # the same split as tensorlite: columns [q | k | v], each head a contiguous run of hs columns
            q, k, v = self.c_attn(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
            y = TF.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                dropout_p=self.dropout if self.training else 0.0)
            return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, C)))

    class TorchFeedForward(tnn.Module):
        def __init__(self, c):
            super().__init__()
            self.c_fc = tnn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias)
            self.act = tnn.ReLU() if c.activation == "relu" else tnn.GELU()
            self.c_proj = tnn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias)
            self.dropout = tnn.Dropout(c.dropout)

        def forward(self, x):
            return self.dropout(self.c_proj(self.act(self.c_fc(x))))

    class TorchBlock(tnn.Module):
        def __init__(self, c):
            super().__init__()
            self.pre_norm = c.norm == "pre"
            self.ln1 = tnn.LayerNorm(c.n_embd)
            self.attn = TorchAttention(c)
            self.ln2 = tnn.LayerNorm(c.n_embd)
            self.mlp = TorchFeedForward(c)

        def forward(self, x):
            if self.pre_norm:
                x = x + self.attn(self.ln1(x))
                return x + self.mlp(self.ln2(x))
            x = self.ln1(x + self.attn(x))
            return self.ln2(x + self.mlp(x))

    class TorchGPT(tnn.Module):
        def __init__(self, c):
            super().__init__()
            self.token_embedding = tnn.Embedding(c.vocab_size, c.n_embd)
            self.position_embedding = tnn.Embedding(c.block_size, c.n_embd)
            self.blocks = tnn.ModuleList([TorchBlock(c) for _ in range(c.n_layer)])
            self.ln_f = tnn.LayerNorm(c.n_embd)
            self.lm_head = tnn.Linear(c.n_embd, c.vocab_size, bias=c.bias)

        def forward(self, idx, targets):
            B, T = idx.shape
            x = self.token_embedding(idx) + self.position_embedding(torch.arange(T, device=idx.device))
            for block in self.blocks:
                x = block(x)
            logits = self.lm_head(self.ln_f(x))
            return logits, TF.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))


def torch_device(device):
    """tensorlite's 'cuda:N' is PyTorch's too; 'cpu' is 'cpu'."""
    return "cpu" if device == "cpu" else device


def torch_twin(tl_model, device):
    """A TorchGPT with tensorlite's config and a copy of its weights, on `device`."""
    tl_params = dict(tl_model.named_parameters())
    dtype = getattr(torch, next(iter(tl_params.values())).dtype.name)  # float32 -> torch.float32
    model = TorchGPT(tl_model.config).to(device=torch_device(device), dtype=dtype)
    t_params = dict(model.named_parameters())
    if set(t_params) != set(tl_params):
        raise RuntimeError(f"parameter names differ: only tensorlite {sorted(set(tl_params) - set(t_params))}, "
                           f"only torch {sorted(set(t_params) - set(tl_params))}")
    with torch.no_grad():
        for name, p in tl_params.items():
            if tuple(t_params[name].shape) != tuple(p.shape):
                raise RuntimeError(f"{name}: tensorlite shape {p.shape}, torch shape {tuple(t_params[name].shape)}")
            t_params[name].copy_(torch.from_numpy(backend.to_numpy(p.data)))
    model.train(tl_model.training)
    return model
