"""Pre-tokenizing for BPE: the split patterns (by name) and the cut of overlong pre-tokens.

A BPE tokenizer first splits text into pre-tokens (words with their leading space, numbers, punctuation
runs, whitespace); merges never cross a pre-token's edge. Both training and encoding split here.
"""

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


def split_pieces(findall, text, limit):
    """The pre-tokens of `text` (findall: the split pattern's findall), each cut to at most `limit`
    characters (no cut when limit is None)."""
    pieces = findall(text)
    if limit is None or not pieces or max(map(len, pieces)) <= limit:
        return pieces
    out = []
    for p in pieces:
        if len(p) <= limit:
            out.append(p)
        else:
            out.extend(p[i:i + limit] for i in range(0, len(p), limit))
    return out
