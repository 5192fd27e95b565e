"""Text in, batches out: the default book, reading text, the train/val split and random training windows.

A corpus is one 1-D array of token ids (in memory, or an np.memmap for a prepared
OpenWebText directory). A batch is `batch_size` random windows of `block_size + 1`
consecutive tokens: the first `block_size` are the input x, the last `block_size`
the targets y (each target is the token that follows its input position).

The default book ships inside the package, so the first run needs no network: BOOK_PATH is
"The Adventures of Sherlock Holmes" (Project Gutenberg ebook 1661, public domain), the text
between Gutenberg's START and END markers with LF line ends, xz-compressed.
"""
import lzma
import os
from dataclasses import dataclass, field

import numpy as np

import tensorlite
from train.errors import DataError
from train.tokenizers import CharTokenizer

BOOK_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "books", "sherlock_holmes.txt.xz")
DEFAULT_TITLE = '"The Adventures of Sherlock Holmes" (Project Gutenberg ebook 1661)'


# ---------------------------------------------------------------- the default corpus
def default_corpus_text():
    """The text of the book that ships with the package (what a run without --data trains on)."""
    try:
        with lzma.open(BOOK_PATH, "rb") as f:
            raw = f.read()
        return raw.decode("utf-8")
    except (OSError, lzma.LZMAError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"the default book {DEFAULT_TITLE} that ships with tensorlite cannot be read from "
                        f"{BOOK_PATH} ({exc}); reinstall the package (pip install -e .), or train on any "
                        "UTF-8 text file with --data PATH") from None


# ---------------------------------------------------------------- reading a text file
def read_text(path):
    """The content of a UTF-8 text file, with clear errors for everything that is not one."""
    if not os.path.exists(path):
        raise DataError(f"data file {path!r} does not exist")
    if os.path.isdir(path):
        raise DataError(f"--data {path!r} is a directory, but not a prepared dataset (no meta.json from "
                        "`python -m train.prepare`); pass a UTF-8 text file or a prepared directory")
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.strip():
        raise DataError(f"data file {path!r} is empty")
    if b"\x00" in raw:
        raise DataError(f"data file {path!r} looks binary (it holds NUL bytes at offset {raw.index(0)}); "
                        "pass a UTF-8 text file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"data file {path!r} is not UTF-8 text (byte {raw[exc.start]:#04x} at offset "
                        f"{exc.start}); convert it to UTF-8 first") from None


# ---------------------------------------------------------------- the dataset
@dataclass
class Corpus:
    """A tokenizer and the train / validation token arrays (1-D, in memory or memmap)."""
    tokenizer: object
    train: np.ndarray
    val: np.ndarray
    source: str
    meta: dict = field(default_factory=dict)

    def check_block_size(self, block_size):
        for name, tokens in (("training", self.train), ("validation", self.val)):
            if len(tokens) == 0 and self.meta.get("format"):  # a prepared folder (train.prepare)
                raise DataError(f"the prepared dataset {self.source} has no {name} tokens (prepared with "
                                f"--val_fraction {(self.meta.get('split') or {}).get('val_fraction', 0)}?); training needs both "
                                "splits: prepare it again with --val_fraction 0.1 --force (training's own "
                                "--val_fraction applies to text files only)")
            if len(tokens) <= block_size:
                raise DataError(
                    f"block_size {block_size} is longer than the {name} split ({len(tokens)} tokens of "
                    f"{self.source}): a window needs block_size + 1 tokens. Use a smaller --block_size "
                    "or more data.")


def split_tokens(tokens, val_fraction):
    """The first (1 - val_fraction) of the tokens train, the rest validate (as the course does)."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    n = int((1 - val_fraction) * len(tokens))
    return tokens[:n], tokens[n:]


def load_corpus(data=None, val_fraction=0.2):
    """A Corpus from a text file, a prepared directory (train/prepare.py), or (no data) the packaged book."""
    if data is None or data == "":
        return corpus_from_text(default_corpus_text(), val_fraction, DEFAULT_TITLE)
    if os.path.isdir(data) and os.path.exists(os.path.join(data, "meta.json")):
        try:
            from train.prepare import is_prepared, load_prepared
        except ImportError:
            raise DataError(f"{data!r} looks like a prepared dataset, but train/prepare.py is missing") from None
        if is_prepared(data):
            tokenizer, train, val, meta = load_prepared(data)
            return Corpus(tokenizer, train, val, data, dict(meta))
    return corpus_from_text(read_text(data), val_fraction, data)


def corpus_from_text(text, val_fraction, source):
    """A character-level Corpus of a text: its own vocabulary, the first part trains, the rest validates."""
    tokenizer = CharTokenizer.from_text(text)
    tokens = np.array(tokenizer.encode(text), dtype=np.int32)
    train, val = split_tokens(tokens, val_fraction)
    return Corpus(tokenizer, train, val, source, {"characters": len(text)})


# ---------------------------------------------------------------- batches
def get_batch(tokens, batch_size, block_size, rng):
    """Random windows as two int64 NumPy arrays (batch_size, block_size): inputs x and targets y.

    The same fancy index reads from an in-memory array and from an np.memmap, so
    both give the same batch for the same generator state.
    """
    starts = rng.integers(0, len(tokens) - block_size, size=batch_size)
    windows = np.asarray(tokens[starts[:, None] + np.arange(block_size + 1)], dtype=np.int64)
    return windows[:, :-1], windows[:, 1:]


class Batches:
    """Training batches from one seeded generator (its state goes into checkpoints), on a device.

    Evaluation draws from a fresh generator with a fixed seed each time, so every
    evaluation scores the same windows and leaves the training stream untouched.

    Under mpiexec (train/distributed.py) every rank draws the same global batch of `batch_size` windows
    and uses its own slice of `batch_size / ranks` of them; with `micro_steps` K (--grad_accum) that slice
    is cut into K micro-batches. The global batches are the same for any number of ranks and any K.
    """

    def __init__(self, corpus, batch_size, block_size, device="cpu", seed=0, rank=0, ranks=1, micro_steps=1):
        corpus.check_block_size(block_size)
        if batch_size % (ranks * micro_steps):
            raise DataError(f"--batch_size {batch_size} cannot be split evenly into {ranks} rank(s) x "
                            f"{micro_steps} micro-step(s) (--grad_accum); give a --batch_size that is a "
                            f"multiple of {ranks * micro_steps}")
        self.corpus, self.batch_size, self.block_size = corpus, batch_size, block_size
        self.device, self.seed = device, seed
        self.rank, self.ranks, self.micro_steps = rank, ranks, micro_steps
        self.rng = np.random.default_rng(seed)
        # token files from disk may hold ids the vocabulary lacks: each batch is checked (a max of a few
        # thousand ids); the text of a file is encoded by the tokenizer itself, so it needs no check
        self.vocab_size = corpus.tokenizer.vocab_size if isinstance(corpus.train, np.memmap) \
            or isinstance(corpus.val, np.memmap) else None

    def _to_device(self, x, y):
        top = max(int(x.max()), int(y.max())) if self.vocab_size is not None and x.size else None
        if top is not None and top >= self.vocab_size:
            raise DataError(f"the token files of {self.corpus.source} hold id {top}, outside the vocabulary of "
                            f"{self.vocab_size} in its meta.json (damaged or from another tokenizer); prepare "
                            "it again with `python -m train.prepare ... --force`")
        return (tensorlite.tensor(x, dtype=tensorlite.int64, device=self.device),
                tensorlite.tensor(y, dtype=tensorlite.int64, device=self.device))

    def split(self, name):
        if name not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {name!r}")
        return self.corpus.train if name == "train" else self.corpus.val

    def next(self):
        """The next training batch (the whole global batch)."""
        return self._to_device(*get_batch(self.corpus.train, self.batch_size, self.block_size, self.rng))

    def _share(self, x, y):
        """This rank's micro-batches of a global batch: a list of micro_steps (x, y) pairs."""
        per_rank = self.batch_size // self.ranks
        step = per_rank // self.micro_steps
        first = self.rank * per_rank
        return [self._to_device(x[a:a + step], y[a:a + step]) for a in range(first, first + per_rank, step)]

    def next_share(self):
        """This rank's micro-batches of the next global batch (all of it as one, in one process without
        --grad_accum)."""
        x, y = get_batch(self.corpus.train, self.batch_size, self.block_size, self.rng)
        return self._share(x, y)

    def eval_batches(self, name, n, share=False):
        """`n` batches of one split, the same ones on every call (with share=True: this rank's micro-batches
        of each, as a list)."""
        rng = np.random.default_rng([self.seed, 1])
        for _ in range(n):
            x, y = get_batch(self.split(name), self.batch_size, self.block_size, rng)
            yield self._share(x, y) if share else self._to_device(x, y)

    def get_state(self):
        return self.rng.bit_generator.state

    def set_state(self, state):
        self.rng.bit_generator.state = state
