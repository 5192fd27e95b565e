"""A GPT: token + position embeddings, a stack of attention/MLP blocks, a final layer norm, a linear head.

The default is the course's architecture (post-norm blocks, 4x ReLU MLP):

    x = ln1(x + attention(x))        norm='post' (default)
    x = ln2(x + mlp(x))

norm='pre' puts each layer norm inside its residual branch (x = x + attention(ln1(x)), ...), as GPT-2 does;
it trains more stably when the model gets deep.

Generation keeps a key/value cache (see tensorlite.nn.attention.KVCache): the prompt runs once, then each
new token runs one position through the network and attends over the cached keys and values.
The model sees at most block_size tokens, with positions 0..block_size-1 counted from the start of that
window. Once the text is longer, the window slides by one token per step, every token's position (so its
embedding, and every key and value computed from it) changes, and the cache is stale: rebuilt from the
cropped window, it would be full, with no room for the next token, which slides the window again. So past
block_size each step costs a full forward of the window, the same as without a cache (models/sampling.py).
"""
from dataclasses import asdict, dataclass, field

import tensorlite
import tensorlite.nn as nn
import tensorlite.nn.functional as F
from models.sampling import generate_tokens
from tensorlite.nn.attention import KVCache


def _setting(default, help, **kw):
    """A config field with the help text the training programs show for its --flag (and its choices)."""
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class GPTConfig:
    """A GPT's hyperparameters: the one place they are named, checked and explained (train.gpt makes its
    command line from these fields)."""
    vocab_size: int = _setting(65, "tokens in the vocabulary (the training data decides it)")
    block_size: int = _setting(64, "context length in tokens")
    n_embd: int = _setting(384, "embedding width")
    n_layer: int = _setting(8, "transformer blocks")
    n_head: int = _setting(8, "attention heads per block (must divide n_embd)")
    dropout: float = _setting(0.2, "dropout probability")
    norm: str = _setting("post", "layer norm placement: post (the course's) or pre (GPT-2's)", choices=["post", "pre"])
    activation: str = _setting("relu", "MLP activation", choices=["relu", "gelu"])
    bias: bool = _setting(True, "biases in the linear layers")

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_embd", "n_layer", "n_head"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): "
                             "each head gets n_embd / n_head channels")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.norm not in ("post", "pre"):
            raise ValueError(f"norm must be 'post' or 'pre', got {self.norm!r}")
        if self.activation not in ("relu", "gelu"):
            raise ValueError(f"activation must be 'relu' or 'gelu', got {self.activation!r}")

    def num_params(self):
        """The parameters a GPT of this config has, computed without building it (to refuse, before allocating,
        one that cannot fit): embeddings, per block attention 4e^2 + MLP 8e^2 + two layer norms, final norm, head."""
        v, b, e, n = self.vocab_size, self.block_size, self.n_embd, self.n_layer
        per_block = 12 * e * e + 4 * e + self.bias * 9 * e
        return v * e + b * e + n * per_block + 2 * e + e * v + self.bias * v

    def to_dict(self):
        return asdict(self)


class Block(nn.Module):
    """Communication (causal self-attention across positions), then computation (an MLP per position)."""

    def __init__(self, config):
        super().__init__()
        self.pre_norm = config.norm == "pre"
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.attn = nn.MultiHeadAttention(config.n_embd, config.n_head, dropout=config.dropout, bias=config.bias)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.mlp = nn.FeedForward(config.n_embd, dropout=config.dropout, activation=config.activation,
                                  bias=config.bias)

    def forward(self, x, kv_cache=None):
        if self.pre_norm:
            x = x + self.attn(self.ln1(x), kv_cache)
            return x + self.mlp(self.ln2(x))
        x = self.ln1(x, self.attn(x, kv_cache))  # ln1(x + attn(x)): the add is fused into the norm
        return self.ln2(x, self.mlp(x))


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT needs a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.position_embedding = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=config.bias)
        # small weights keep the first logits near uniform (loss ~ ln(vocab)); biases start at zero
        for name, p in self.named_parameters():
            if p.ndim >= 2:
                nn.init.normal_(p, mean=0.0, std=0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx, targets=None, kv_cache=None):
        """idx, targets: (B, T) int64 with T <= block_size -> logits (B, T, vocab), mean cross-entropy or None.

        kv_cache (from new_kv_cache(), for generation): idx holds only the tokens after the cached ones,
        either a whole prompt into an empty cache or one token; they get the positions after the cached
        ones, their keys and values are appended, and the logits are those of these new positions.
        """
        if idx.ndim != 2:
            raise ValueError(f"idx must be (batch, time) token ids, got shape {tuple(idx.shape)}")
        B, T = idx.shape
        past = 0 if kv_cache is None else kv_cache[0].length
        if past + T > self.config.block_size:
            raise ValueError(f"sequence of length {past + T} is longer than the model's block_size "
                             f"{self.config.block_size}; crop it to the last {self.config.block_size} tokens"
                             + (f" (and start a new cache: {past} positions are cached)" if past else ""))
        if kv_cache is not None and len(kv_cache) != len(self.blocks):
            raise ValueError(f"kv_cache has {len(kv_cache)} layers, the model {len(self.blocks)}: "
                             "make it with model.new_kv_cache()")
        pos = tensorlite.arange(past, past + T, dtype=tensorlite.int64, device=idx.device)
        x = self.token_embedding(idx) + self.position_embedding(pos)
        for i, block in enumerate(self.blocks):
            x = block(x, None if kv_cache is None else kv_cache[i])
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits, None
        if targets.shape != idx.shape:
            raise ValueError(f"targets shape {tuple(targets.shape)} does not match idx shape {tuple(idx.shape)}")
        return logits, F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))

    @property
    def context_size(self):
        """The most tokens the model sees at once: generation slides a window of this length."""
        return self.config.block_size

    def new_kv_cache(self):
        """An empty key/value cache, one KVCache per block, for forward(..., kv_cache=...)."""
        return [KVCache() for _ in self.blocks]

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, use_cache=True):
        """idx (B, T) extended by max_new_tokens sampled tokens; the model sees the last block_size of them.

        use_cache=False runs the whole window through the model for every token (same tokens, slower)."""
        new = list(generate_tokens(self, idx, max_new_tokens, temperature, top_k, context=self.context_size,
                                   use_cache=use_cache))
        return tensorlite.cat([idx, *new], dim=1) if new else idx
