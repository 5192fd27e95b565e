"""Tokenizers: text <-> integer ids. Each one saves itself as a JSON-able dict for checkpoints.

CharTokenizer   one id per character. Built from the text itself (`from_text`) or from character counts
                (`from_counts`), where characters rarer than a threshold share one unknown token so a
                web corpus does not yield a 50,000-symbol alphabet.
BPETokenizer    byte-level byte-pair encoding trained from scratch: 256 byte tokens, then one token per
                learned merge, then one end-of-text token. Lossless for any string without lone surrogates.

Both offer `encode(text) -> list`, `encode_array(text) -> np.ndarray` (the fast path for big corpora),
`encode_stream([(text, ends_document), ...])` (many documents at once, each followed by the tokenizer's
document separator), `decode(ids)`, `vocab_size`, `to_dict()` / `from_dict()`.
"""
import heapq
from itertools import chain, repeat

import numpy as np

from train.bpe_train import BATCH_CHARS, batches, count_pieces, learn_merges, merge
from train.errors import UserError
from train.pretokenize import GPT2_SPLIT, MAX_PIECE_CHARS, SPLIT_PATTERNS, split_batch, split_pattern  # noqa: F401

N_CODEPOINTS = 0x110000
UNKNOWN_CHAR = "\ufffd"  # what an unknown character decodes to: the Unicode replacement character


class UnknownCharacterError(UserError, ValueError):
    """Text holds characters that the vocabulary does not have."""

    def __init__(self, chars):
        self.chars = sorted(set(chars))
        shown = ", ".join(repr(c) for c in self.chars[:20]) + (" ..." if len(self.chars) > 20 else "")
        super().__init__(f"{len(self.chars)} character(s) not in the model's vocabulary: {shown}. "
                         "Remove them, or drop them with --unknown skip.")


def _codepoints(text):
    """The code points of `text` as a uint32 array (lone surrogates pass through as themselves)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _check_unknown(unknown):
    if unknown not in ("error", "skip"):
        raise ValueError(f"unknown={unknown!r}: expected 'error' or 'skip'")


class CharTokenizer:
    """Vocabulary = sorted characters; id = position in it. With `unk`, unseen characters map to that one token.

    Without an unknown token, encode(unknown='error') raises UnknownCharacterError on characters outside the
    vocabulary and unknown='skip' drops them. With one, both map such characters to it (it decodes as `unk`,
    by default U+FFFD), except that 'skip' still drops them.
    """

    kind = "char"
    separator = "\n\n"  # between documents of a prepared corpus

    def __init__(self, chars, unk=None):
        self.chars = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        if len(self.stoi) != len(self.chars):
            raise ValueError("CharTokenizer: the vocabulary lists some character twice")
        if unk is not None and unk not in self.stoi:
            raise ValueError(f"CharTokenizer: unknown token {unk!r} is not in the vocabulary")
        self.unk = unk
        self.unk_id = None if unk is None else self.stoi[unk]
        self._lut = None

    @classmethod
    def from_text(cls, text):
        return cls(sorted(set(text)))

    @classmethod
    def from_counts(cls, counts, min_count=1, keep="\n", unk=UNKNOWN_CHAR):
        """Vocabulary from {char: count}: characters seen fewer than `min_count` times become `unk`.

        Characters in `keep` (the document separator) are always in. The unknown token is added only when
        some character was dropped; it is the character `unk` itself, so decoding stays readable.
        """
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        kept = {c for c, n in counts.items() if n >= min_count} | set(keep)
        dropped = any(c not in kept for c, n in counts.items() if n > 0)
        if dropped:
            kept.add(unk)
        return cls(sorted(kept), unk=unk if dropped else None)

    @property
    def vocab_size(self):
        return len(self.chars)

    def unknown(self, text):
        return sorted({c for c in text if c not in self.stoi})

    def _table(self):
        # One int32 entry per Unicode code point (4.4 MB): encoding is then a single gather.
        if self._lut is None:
            lut = np.full(N_CODEPOINTS, -1 if self.unk_id is None else self.unk_id, dtype=np.int32)
            lut[_codepoints("".join(self.chars))] = np.arange(len(self.chars), dtype=np.int32)
            self._lut = lut
        return self._lut

    def encode_array(self, text, unknown="error"):
        """int32 array of ids; see the class docstring for `unknown`."""
        _check_unknown(unknown)
        cps = _codepoints(text)
        if unknown == "skip" and self.unk_id is not None:
            lut = self._table().copy()
            lut[lut == self.unk_id] = -1
            lut[ord(self.unk)] = self.unk_id  # the unknown character itself is a known character
        else:
            lut = self._table()
        ids = lut[cps]
        if self.unk_id is None or unknown == "skip":
            missing = ids < 0
            if missing.any():
                if unknown == "skip":
                    return ids[~missing]
                raise UnknownCharacterError(chr(c) for c in np.unique(cps[missing]).tolist())
        return ids

    def encode(self, text, unknown="error"):
        """List of ids. unknown='error' raises UnknownCharacterError (unless there is an unknown token),
        'skip' drops such characters."""
        return self.encode_array(text, unknown).tolist()

    def encode_stream(self, pieces):
        """Ids of many (text, ends_document) pieces at once, `separator` after each document's last piece."""
        sep = self.separator
        return self.encode_array("".join(t + sep if end else t for t, end in pieces))

    def decode(self, ids):
        chars = self.chars
        if isinstance(ids, np.ndarray):
            ids = ids.tolist()
        try:
            return "".join([chars[i] for i in ids])
        except (IndexError, TypeError):
            bad = [i for i in ids if not isinstance(i, int) or not 0 <= i < len(chars)]
            raise ValueError(f"decode: id(s) {bad[:10]} outside the vocabulary of {len(chars)}") from None

    def to_dict(self):
        d = {"kind": self.kind, "chars": "".join(self.chars)}
        if self.unk is not None:
            d["unk"] = self.unk
        return d

    @classmethod
    def from_dict(cls, d):
        _check_keys(d, {"kind", "chars"}, {"unk"})
        chars, unk = d["chars"], d.get("unk")
        if not isinstance(chars, str):
            raise ValueError(f"the tokenizer's 'chars' must be a string, got {str(chars)[:40]!r}")
        if unk is not None and not (isinstance(unk, str) and len(unk) == 1):
            raise ValueError(f"the tokenizer's 'unk' must be one character, got {str(unk)[:40]!r}")
        return cls(list(chars), unk=unk)


EOT = "<|endoftext|>"
MAX_MERGES = 1 << 20       # a vocabulary of a million tokens; GPT-4's has 100k
MAX_TOKEN_BYTES = 1 << 16  # one token's bytes: each merge may double them, so a crafted list could reach 2**n
MAX_EOT_CHARS = 64
_NO_RANK = 1 << 62




def _is_int(x):
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


class _PieceTable(dict):
    """pre-token string -> its row in a table of encodings (misses are encoded on the fly). The encodings
    are kept as one flat int32 array with each row's start and length, so a whole batch of pre-tokens turns
    into ids with a few NumPy gathers instead of one Python step per id."""

    def __init__(self, encode_piece):
        super().__init__()
        self.encode_piece = encode_piece
        self.new = []  # encodings of the rows added since the last sync()
        self.flat = np.zeros(0, dtype=np.int32)
        self.start = np.zeros(0, dtype=np.int64)
        self.length = np.zeros(0, dtype=np.int64)

    def __missing__(self, piece):
        row = self[piece] = len(self)
        self.new.append(self.encode_piece(piece))
        return row

    def sync(self):
        """Append the new rows' encodings to the arrays."""
        if self.new:
            length = np.fromiter(map(len, self.new), dtype=np.int64, count=len(self.new))
            self.start = np.concatenate([self.start, len(self.flat) + np.cumsum(length) - length])
            self.length = np.concatenate([self.length, length])
            self.flat = np.concatenate([self.flat, np.fromiter(chain.from_iterable(self.new), dtype=np.int32)])
            self.new = []

    def ids(self, pieces):
        """(ids of all the pieces in order, number of ids of each piece)."""
        rows = np.fromiter(map(self.__getitem__, pieces), dtype=np.int64, count=len(pieces))
        self.sync()
        length = self.length[rows]
        before = np.cumsum(length) - length  # where each piece's ids go in the output
        at = np.arange(int(length.sum())) + np.repeat(self.start[rows] - before, length)
        return self.flat[at], length


class BPETokenizer:
    """Byte-level BPE: ids 0..255 are bytes, 256+r is the r-th merge, the last id is the end-of-text token.

    Encoding splits text with the pre-tokenizer pattern, turns each piece into UTF-8 bytes and applies the
    merges in rank order (lowest rank first, every occurrence of that pair left to right), exactly as
    training applied them. Pieces repeat a lot in real text, so their encodings are cached.
    """

    kind = "bpe"
    CACHE_LIMIT = 1 << 19  # pieces (~60 MB); the cache is cleared when it grows past this: memory stays bounded
    LONG_PIECE = 48        # bytes; longer pieces use the heap-based merge (linear-ish instead of quadratic)

    def __init__(self, merges, pattern="gpt2", eot=EOT, max_piece=MAX_PIECE_CHARS):
        """merges: pairs of ids; pattern: the name of a split pattern in SPLIT_PATTERNS (or its exact text);
        max_piece: the longest pre-token in characters (None: no limit, as in files from before it)."""
        if max_piece is not None and not (_is_int(max_piece) and 1 <= max_piece <= MAX_TOKEN_BYTES):
            raise ValueError(f"BPETokenizer: max_piece must be an integer in [1, {MAX_TOKEN_BYTES}] or None, "
                             f"got {str(max_piece)[:40]!r}")
        self.max_piece = None if max_piece is None else int(max_piece)
        merges = list(merges)
        if len(merges) > MAX_MERGES:
            raise ValueError(f"BPETokenizer: {len(merges)} merges, more than the {MAX_MERGES} allowed")
        lengths = [1] * 256
        for r, m in enumerate(merges):
            if not (isinstance(m, (list, tuple)) and len(m) == 2 and all(_is_int(x) and 0 <= x < 256 + r for x in m)):
                raise ValueError(f"BPETokenizer: merge {r} = {str(m)[:40]} must join two ids below {256 + r}")
            lengths.append(lengths[m[0]] + lengths[m[1]])
            if lengths[-1] > MAX_TOKEN_BYTES:
                raise ValueError(f"BPETokenizer: merge {r} makes a token of {lengths[-1]} bytes, more than "
                                 f"{MAX_TOKEN_BYTES}")
        self.merges = [(int(a), int(b)) for a, b in merges]
        self.ranks = {m: r for r, m in enumerate(self.merges)}
        if len(self.ranks) != len(self.merges):
            raise ValueError("BPETokenizer: the same pair is merged twice")
        if not (isinstance(eot, str) and 0 < len(eot) <= MAX_EOT_CHARS):
            raise ValueError(f"BPETokenizer: the end-of-text token must be a string of 1 to {MAX_EOT_CHARS} "
                             f"characters, got {str(eot)[:80]!r}")
        self.pattern_name, self.pattern = split_pattern(pattern)
        self.eot = eot
        self.eot_id = 256 + len(self.merges)
        table = [bytes([i]) for i in range(256)]
        for a, b in self.merges:
            table.append(table[a] + table[b])
        table.append(eot.encode("utf-8"))
        self.token_bytes = table
        self._cache = _PieceTable(self._encode_piece)

    @property
    def vocab_size(self):
        return 256 + len(self.merges) + 1

    @property
    def separator(self):
        return self.eot

    # ---------------------------------------------------------------- training
    @classmethod
    def train(cls, texts, vocab_size, pattern="gpt2", eot=EOT, min_pair_count=2, max_piece=MAX_PIECE_CHARS):
        """Learn vocab_size - 257 merges from an iterable of strings (fewer if pairs run out)."""
        return cls.train_from_counts(count_pieces(texts, max_piece), vocab_size, pattern, eot, min_pair_count,
                                     max_piece)

    @classmethod
    def train_from_counts(cls, counts, vocab_size, pattern="gpt2", eot=EOT, min_pair_count=2,
                          max_piece=MAX_PIECE_CHARS):
        """Learn the merges from {pre-token: count} (count_pieces of the training text; see bpe_train)."""
        if vocab_size < 257:
            raise ValueError(f"vocab_size must be >= 257 (256 bytes + end-of-text), got {vocab_size}")
        split_pattern(pattern)  # only gpt2's exists, and count_pieces splits with it
        merges = learn_merges(counts, vocab_size - 257, min_pair_count)
        return cls(merges, pattern=pattern, eot=eot, max_piece=max_piece)

    # ---------------------------------------------------------------- encoding
    def _encode_piece(self, piece):
        ids = list(piece.encode("utf-8", "surrogatepass"))
        if len(ids) > self.LONG_PIECE:
            return self._encode_long(ids)
        get, merges, none = self.ranks.get, self.merges, repeat(_NO_RANK)
        while len(ids) > 1:
            r = min(map(get, zip(ids, ids[1:]), none))
            if r == _NO_RANK:
                break
            ids = merge(ids, merges[r], 256 + r)[0]
        return tuple(ids)

    def _encode_long(self, ids):
        # Same result as _encode_piece: a heap of (rank, position) over a linked list of tokens, so each merge
        # costs O(log n). Equal ranks pop leftmost first; a merge's new pairs always have larger ranks.
        ranks = self.ranks
        n = len(ids)
        val, nxt, prv = list(ids), list(range(1, n + 1)), list(range(-1, n - 1))
        nxt[-1] = -1
        heap = [(ranks[p], i) for i, p in enumerate(zip(ids, ids[1:])) if p in ranks]
        heapq.heapify(heap)
        alive = [True] * n
        while heap:
            r, i = heapq.heappop(heap)
            j = nxt[i] if alive[i] else -1
            if j < 0 or ranks.get((val[i], val[j])) != r:
                continue
            val[i] = 256 + r
            alive[j] = False
            nxt[i] = nxt[j]
            if nxt[j] >= 0:
                prv[nxt[j]] = i
                q = ranks.get((val[i], val[nxt[j]]))
                if q is not None:
                    heapq.heappush(heap, (q, i))
            if prv[i] >= 0:
                q = ranks.get((val[prv[i]], val[i]))
                if q is not None:
                    heapq.heappush(heap, (q, prv[i]))
        return tuple(v for v, a in zip(val, alive) if a)

    def encode_array(self, text, unknown="error"):
        """int32 array of ids (`unknown` is accepted for a common signature: bytes are never unknown)."""
        _check_unknown(unknown)
        return self.encode_stream([(text, False)])

    def encode(self, text, unknown="error"):
        """List of ids. The end-of-text token is never produced from text: '<|endoftext|>' in text is bytes."""
        return self.encode_array(text, unknown).tolist()

    def encode_stream(self, pieces):
        """Ids of many (text, ends_document) pieces at once, the end-of-text token after each document.
        Each text is split on its own (pre-tokens never span two), but a whole batch goes through NumPy."""
        out = [np.zeros(0, dtype=np.int32)]
        for batch in batches(pieces, BATCH_CHARS):  # bounded memory
            if len(self._cache) > self.CACHE_LIMIT:
                self._cache = _PieceTable(self._encode_piece)
            words, count = split_batch([t for t, _ in batch], self.max_piece)
            ids, length = self._cache.ids(words)
            # the end-of-text token goes after the last id of each text that ends a document
            ends = np.fromiter((e for _, e in batch), dtype=bool, count=len(batch))
            text_end = np.concatenate([[0], np.cumsum(length)])[np.cumsum(count)]  # ids up to each text's end
            out.append(np.insert(ids, text_end[ends], self.eot_id))
        return np.concatenate(out)

    def decode(self, ids):
        """Text of the ids; byte sequences that are not valid UTF-8 (a cut-off sample) become U+FFFD."""
        if isinstance(ids, np.ndarray):
            ids = ids.tolist()
        table = self.token_bytes
        try:
            data = b"".join([table[i] for i in ids])
        except (IndexError, TypeError):
            bad = [i for i in ids if not isinstance(i, int) or not 0 <= i < len(table)]
            raise ValueError(f"decode: id(s) {bad[:10]} outside the vocabulary of {len(table)}") from None
        return data.decode("utf-8", errors="replace")

    def to_dict(self):
        return {"kind": self.kind, "merges": [list(m) for m in self.merges], "pattern": self.pattern_name,
                "eot": self.eot, "max_piece": self.max_piece}

    @classmethod
    def from_dict(cls, d):
        """From to_dict's output. Files written before patterns had names hold the pattern's text: it is
        accepted only when it is exactly one of SPLIT_PATTERNS."""
        _check_keys(d, {"kind", "merges"}, {"pattern", "eot", "max_piece"})
        if not isinstance(d["merges"], list):
            raise ValueError(f"'merges' must be a list of [id, id] pairs, got {type(d['merges']).__name__}")
        return cls(d["merges"], pattern=d.get("pattern", "gpt2"), eot=d.get("eot", EOT),
                   max_piece=d.get("max_piece"))  # absent: a file from before the limit, encoded without cuts


def _check_keys(d, required, optional=()):
    missing = sorted(required - set(d))
    unknown = sorted(set(d) - set(required) - set(optional))
    if missing or unknown:
        raise ValueError("the tokenizer description has " + (f"no {missing}" if missing else "")
                         + (" and " if missing and unknown else "") + (f"unknown keys {unknown[:5]}" if unknown else ""))


def tokenizer_from_dict(d):
    """Rebuild whichever tokenizer a checkpoint or meta.json describes. The description is untrusted input:
    every field is checked, and anything wrong is one ValueError naming it."""
    kinds = {CharTokenizer.kind: CharTokenizer, BPETokenizer.kind: BPETokenizer}
    if not isinstance(d, dict) or not isinstance(d.get("kind"), str) or d["kind"] not in kinds:
        raise ValueError(f"unknown tokenizer description {str(d)[:80]!r}: expected kind in {sorted(kinds)}")
    return kinds[d["kind"]].from_dict(d)
