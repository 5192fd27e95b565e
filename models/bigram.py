"""The bigram language model: the next token's logits are one row of a (vocab x vocab) table,
looked up by the current token alone. The simplest model that learns anything from text."""
from dataclasses import asdict, dataclass

import tensorlite
import tensorlite.nn as nn
import tensorlite.nn.functional as F
from models.sampling import generate_tokens


@dataclass
class BigramConfig:
    vocab_size: int = 65

    def __post_init__(self):
        if int(self.vocab_size) != self.vocab_size or self.vocab_size < 1:
            raise ValueError(f"vocab_size must be a positive integer, got {self.vocab_size}")
        self.vocab_size = int(self.vocab_size)

    def num_params(self):
        """The parameters a model of this config has (the vocab x vocab table), computed without building it."""
        return self.vocab_size ** 2

    def to_dict(self):
        return asdict(self)


class BigramLanguageModel(nn.Module):
    # the next token depends on the current one only: generation feeds the model one token
    context_size = 1

    def __init__(self, config):
        """config: a BigramConfig, or just the vocabulary size (as the course writes it)."""
        super().__init__()
        if not isinstance(config, BigramConfig):
            config = BigramConfig(config)
        self.config = config
        self.vocab_size = config.vocab_size
        self.token_embedding_table = nn.Embedding(config.vocab_size, config.vocab_size)

    def forward(self, idx, targets=None):
        """idx, targets: (B, T) int64 -> logits (B, T, vocab), and the mean cross-entropy (or None)."""
        if idx.ndim != 2:
            raise ValueError(f"idx must be (batch, time) token ids, got shape {tuple(idx.shape)}")
        logits = self.token_embedding_table(idx)
        if targets is None:
            return logits, None
        if targets.shape != idx.shape:
            raise ValueError(f"targets shape {tuple(targets.shape)} does not match idx shape {tuple(idx.shape)}")
        B, T, C = logits.shape
        return logits, F.cross_entropy(logits.reshape(B * T, C), targets.reshape(B * T))

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        """idx (B, T) extended by max_new_tokens sampled tokens; only the last token matters here."""
        new = list(generate_tokens(self, idx, max_new_tokens, temperature, top_k, context=self.context_size))
        return tensorlite.cat([idx, *new], dim=1) if new else idx
