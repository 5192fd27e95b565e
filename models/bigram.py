"""The bigram language model: the next token's logits are one row of a (vocab x vocab) table,
looked up by the current token alone. The simplest model that learns anything from text."""
import tensorlite
import tensorlite.nn as nn
import tensorlite.nn.functional as F
from models.sampling import generate_tokens


class BigramLanguageModel(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        if int(vocab_size) != vocab_size or vocab_size < 1:
            raise ValueError(f"vocab_size must be a positive integer, got {vocab_size}")
        self.vocab_size = int(vocab_size)
        self.token_embedding_table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx, targets=None):
        """idx, targets: (B, T) int64 -> logits (B, T, vocab), and the mean cross-entropy (or None)."""
        if idx.ndim != 2:
            raise ValueError(f"idx must be (batch, time) token ids, got shape {idx.shape}")
        logits = self.token_embedding_table(idx)
        if targets is None:
            return logits, None
        if targets.shape != idx.shape:
            raise ValueError(f"targets shape {targets.shape} does not match idx shape {idx.shape}")
        B, T, C = logits.shape
        return logits, F.cross_entropy(logits.reshape(B * T, C), targets.reshape(B * T))

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        """idx (B, T) extended by max_new_tokens sampled tokens; only the last token matters here."""
        new = list(generate_tokens(self, idx, max_new_tokens, temperature, top_k, context=1))
        return tensorlite.cat([idx, *new], dim=1) if new else idx
