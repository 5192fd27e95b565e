"""Pre-tokenizing for BPE: the split pattern, the cut of overlong pre-tokens, and a fast vectorised splitter.

A BPE tokenizer first splits text into pre-tokens (words with their leading space, numbers, punctuation
runs, whitespace); merges never cross a pre-token's edge. Both training and encoding split here.

The definition is GPT-2's regular expression (`split_reference`). Running it through `re` costs about
500 ns per pre-token (~8 MB/s on English), more than everything else in encoding. `split_batch` gives the
same pieces from NumPy: it classifies every character (letter, digit, whitespace, other) with one table
lookup, puts a piece boundary wherever the class changes, then applies the pattern's three exceptions
(a single space joins the word after it, a run of whitespace before a word gives up its last character,
contractions such as 's are their own piece). Tests check it against the regex on random text.
"""
import re

import numpy as np

# GPT-2's pre-tokenizer splits text into contractions, words, numbers, punctuation runs and whitespace, each
# word keeping its leading space. GPT-2 writes it with \p{L} / \p{N}, which the stdlib `re` lacks:
# [^\W\d_] is "a word character that is not a digit or underscore" (letters, plus other numerics such as ½),
# \d is a decimal digit, and (?:[^\s\w]|_) is everything else that is not whitespace. The alternatives
# together match every character, so joining the pieces gives back the text (tests check this).
GPT2_SPLIT = r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""
# The split patterns a tokenizer may use, by name. A checkpoint stores the name, never a regex: a pattern
# from a file would be compiled and run on every prompt, and a crafted one ("(a|aa)+$") takes forever.
SPLIT_PATTERNS = {"gpt2": GPT2_SPLIT}

# A pre-token longer than this many characters (a run of base64, DNA or minified code with no space) is cut
# into pieces of this length, as GPT-4's pattern cuts digit runs at 3: training then costs at most this much
# work per word and merge, where one 8 MB word made every merge rescan 8 MB. Joining the pieces gives the
# text back, so nothing is lost; tokens just never cross a cut. Stored with the tokenizer ("max_piece"):
# files written before it have none and keep encoding without cuts, exactly as they were trained.
MAX_PIECE_CHARS = 256


def split_pattern(pattern):
    """(name, regex text) of a known split pattern, given its name or its exact text; ValueError otherwise."""
    if isinstance(pattern, str):
        if pattern in SPLIT_PATTERNS:
            return pattern, SPLIT_PATTERNS[pattern]
        for name, text in SPLIT_PATTERNS.items():
            if pattern == text:
                return name, text
    shown = pattern[:60] if isinstance(pattern, str) else pattern
    raise ValueError(f"unknown split pattern {shown!r}: expected one of {sorted(SPLIT_PATTERNS)}")


def cut_long(pieces, limit):
    """`pieces`, each cut into parts of at most `limit` characters (no cut when limit is None)."""
    if limit is None or not pieces or max(map(len, pieces)) <= limit:
        return pieces
    out = []
    for p in pieces:
        if len(p) <= limit:
            out.append(p)
        else:
            out.extend(p[i:i + limit] for i in range(0, len(p), limit))
    return out


_GPT2_FINDALL = re.compile(GPT2_SPLIT).findall


def split_reference(text, limit=MAX_PIECE_CHARS):
    """The pre-tokens of `text` by the definition: GPT-2's regex, then the cut at `limit` characters."""
    return cut_long(_GPT2_FINDALL(text), limit)


# ---------------------------------------------------------------- the vectorised splitter
LETTER, DIGIT, OTHER, SPACE = 0, 1, 2, 3
_CLASSES = None
_SPACE, _QUOTE = ord(" "), ord("'")
_CONTRACT_1 = np.array([ord(c) for c in "sdmt"], dtype=np.uint32)      # 's 'd 'm 't
_CONTRACT_2 = [(ord(a), ord(b)) for a, b in ("ll", "ve", "re")]        # 'll 've 're


def char_classes():
    """uint8 class of every code point, as the regex sees it: made once by running the pattern's own
    character classes over all 1,114,112 code points, so it agrees with `re` by construction."""
    global _CLASSES
    if _CLASSES is None:
        # every code point once, lone surrogates included (they are "other")
        every = np.arange(0x110000, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
        table = np.full(0x110000, OTHER, dtype=np.uint8)
        for cls, pattern in ((LETTER, r"[^\W\d_]+"), (DIGIT, r"\d+"), (SPACE, r"\s+")):
            for m in re.finditer(pattern, every):
                table[m.start():m.end()] = cls
        _CLASSES = table
    return _CLASSES


def piece_starts(cp, first):
    """Where pieces start in the code points `cp` of several texts joined; first[i] says that a text
    starts at i (first has one more entry, True, for the end). Returns a bool array of len(cp) + 1."""
    n = len(cp)
    c = char_classes()[cp]
    start = np.ones(n + 1, dtype=bool)
    start[1:n] = c[1:] != c[:-1]           # a piece ends where the character class changes ...
    start |= first                         # ... and where a text ends: pieces never span two texts
    # Whitespace before a non-space of the same text: its last character leaves the run (\s+(?!\S)). If it
    # is a space, it joins the piece after it (" ?word"); anything else (a newline) is a piece by itself.
    space = c == SPACE
    last = np.flatnonzero(space[:-1] & ~space[1:] & ~first[1:n])
    start[last] = True
    start[last[cp[last] == _SPACE] + 1] = False
    # A quote that begins a piece, followed in its text by s d m t or ll ve re: that contraction is one piece.
    q = np.flatnonzero((cp == _QUOTE) & start[:n])
    if len(q):
        pad = np.zeros(2, dtype=cp.dtype)
        nxt1, nxt2 = np.concatenate([cp, pad])[q + 1], np.concatenate([cp, pad, pad])[q + 2]
        same1 = ~np.concatenate([first, [True]])[q + 1]
        same2 = same1 & ~np.concatenate([first, [True, True]])[q + 2]
        one = same1 & np.isin(nxt1, _CONTRACT_1)
        two = same2 & ~one & np.any([(nxt1 == a) & (nxt2 == b) for a, b in _CONTRACT_2], axis=0)
        length = np.where(one, 2, 3)[one | two]
        q = q[one | two]
        start[q + 1] = False
        start[q + length] = True
    return start


def split_batch(texts, limit=MAX_PIECE_CHARS):
    """(pieces, count): the pre-tokens of every text in `texts`, in order, as split_reference gives them
    text by text; count[t] is how many of them come from texts[t]."""
    joined = "".join(texts)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    offsets = np.cumsum(lengths) - lengths
    n = len(joined)
    if n == 0:
        return [], np.zeros(len(texts), dtype=np.int64)
    cp = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    first = np.zeros(n + 1, dtype=bool)
    first[offsets[lengths > 0]] = True
    first[n] = True
    starts = np.flatnonzero(piece_starts(cp, first))  # ends with n
    if limit is not None:
        size = np.diff(starts)
        long = np.flatnonzero(size > limit)
        if len(long):  # cut every `limit` characters from the piece's start, as cut_long does
            extra = (size[long] - 1) // limit
            step = np.arange(extra.sum()) - np.repeat(np.cumsum(extra) - extra, extra) + 1
            starts = np.sort(np.concatenate([starts, np.repeat(starts[long], extra) + limit * step]))
    count = np.bincount(np.searchsorted(offsets, starts[:-1], side="right") - 1, minlength=len(texts))
    return _cut(joined, cp, starts), count


def _cut(joined, cp, starts):
    """joined[starts[k]:starts[k+1]] for every k. Slicing costs ~170 ns a piece in Python; instead a character
    the text does not hold goes in before each piece, and str.split cuts there in C (~2.5x faster)."""
    inner = starts[1:-1]
    for sep in (0xFFFF, 0xFFFE, 0x10FFFF, 0x10FFFE):  # noncharacters: text practically never holds them
        if not (cp == sep).any():
            out = np.full(len(cp) + len(inner), sep, dtype=np.uint32)
            keep = np.ones(len(out), dtype=bool)
            keep[inner + np.arange(len(inner))] = False
            out[keep] = cp
            return out.tobytes().decode("utf-32-le", "surrogatepass").split(chr(sep))
    bounds = starts.tolist()
    return [joined[a:b] for a, b in zip(bounds, bounds[1:])]
