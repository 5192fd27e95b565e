"""Tokenizers: text <-> integer ids. Each one saves itself as a JSON-able dict for checkpoints."""


class UnknownCharacterError(ValueError):
    """Text holds characters that the vocabulary does not have."""

    def __init__(self, chars):
        self.chars = sorted(set(chars))
        shown = ", ".join(repr(c) for c in self.chars[:20]) + (" ..." if len(self.chars) > 20 else "")
        super().__init__(f"{len(self.chars)} character(s) not in the model's vocabulary: {shown}. "
                         "Remove them, or drop them with --unknown skip.")


class CharTokenizer:
    """Vocabulary = the sorted distinct characters of the corpus; id = position in it."""

    kind = "char"

    def __init__(self, chars):
        self.chars = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text):
        return cls(sorted(set(text)))

    @property
    def vocab_size(self):
        return len(self.chars)

    def unknown(self, text):
        return sorted({c for c in text if c not in self.stoi})

    def encode(self, text, unknown="error"):
        """List of ids. unknown='error' raises UnknownCharacterError, 'skip' drops such characters."""
        if unknown == "skip":
            return [self.stoi[c] for c in text if c in self.stoi]
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            raise UnknownCharacterError(self.unknown(text)) from None

    def decode(self, ids):
        return "".join(self.chars[int(i)] for i in ids)

    def to_dict(self):
        return {"kind": self.kind, "chars": "".join(self.chars)}

    @classmethod
    def from_dict(cls, d):
        return cls(list(d["chars"]))


def tokenizer_from_dict(d):
    """Rebuild whichever tokenizer a checkpoint or meta.json describes."""
    kinds = {CharTokenizer.kind: CharTokenizer}
    try:
        return kinds[d["kind"]].from_dict(d)
    except KeyError:
        raise ValueError(f"unknown tokenizer description {str(d)[:80]!r}: expected kind in {sorted(kinds)}") from None
