"""Tokenizers: the character tokenizer (with and without an unknown token) and byte-level BPE.

BPE training and encoding are compared with naive reference versions written here: training recounts every
pair after each merge, encoding applies the merges one after another over the whole text.
"""
import json
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from train.pretokenize import split_reference
from train.tokenizers import (EOT, GPT2_SPLIT, BPETokenizer, CharTokenizer, UnknownCharacterError,
                              tokenizer_from_dict)

CORPUS = ("The quick brown fox jumps over the lazy dog. It's 2024; the dog's 3 friends aren't lazy!\n"
          "Ünïcödé wörds, 東京 and emoji 🌍🌍 too.   Spaces   and\ttabs\n\n") * 5


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train([CORPUS], 400)


# ------------------------------------------------------------------------ character tokenizer

@given(st.text())
def test_char_roundtrip_any_text(text):
    tok = CharTokenizer.from_text(text)
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert ids == [tok.chars.index(c) for c in text]
    assert tok.encode_array(text).tolist() == ids
    assert tokenizer_from_dict(json.loads(json.dumps(tok.to_dict()))).encode(text) == ids


def test_char_unknown_error_and_skip():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(UnknownCharacterError) as e:
        tok.encode("abxyx")
    assert e.value.chars == ["x", "y"]
    from train.errors import UserError
    assert isinstance(e.value, UserError) and isinstance(e.value, ValueError)  # one line through cli_main
    assert tok.decode(tok.encode("abxyc", unknown="skip")) == "abc"
    with pytest.raises(ValueError, match="unknown="):
        tok.encode("abc", unknown="ignore")


def test_char_decode_rejects_out_of_range_ids():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([0, 3])


def test_char_from_counts_min_count_maps_rare_characters_to_unknown():
    text = "aaaa bbbb cc d é\n"
    counts = Counter(text)
    tok = CharTokenizer.from_counts(counts, min_count=3)
    frequent = {c for c, n in counts.items() if n >= 3} | {"\n"}
    assert set(tok.chars) == frequent | {"\ufffd"}
    assert tok.unk == "\ufffd" and tok.vocab_size == len(frequent) + 1
    # rare characters (and ones never seen) decode as U+FFFD; known ones stay as they are
    expected = "".join(c if c in frequent else "\ufffd" for c in text + "Z")
    assert tok.decode(tok.encode(text + "Z")) == expected
    assert tok.decode(tok.encode("a d b", unknown="skip")) == "a  b"
    assert tokenizer_from_dict(json.loads(json.dumps(tok.to_dict()))).to_dict() == tok.to_dict()


def test_char_from_counts_without_rare_characters_has_no_unknown():
    tok = CharTokenizer.from_counts(Counter("abcab"), min_count=1)
    assert tok.unk is None and "unk" not in tok.to_dict()
    assert tok.chars == ["\n", "a", "b", "c"]  # the separator is always in
    with pytest.raises(ValueError, match="min_count"):
        CharTokenizer.from_counts(Counter("ab"), min_count=0)


def test_char_unknown_token_must_be_in_vocabulary():
    with pytest.raises(ValueError, match="not in the vocabulary"):
        CharTokenizer(["a", "b"], unk="?")
    with pytest.raises(ValueError, match="twice"):
        CharTokenizer(["a", "a"])


def test_char_encode_stream_puts_separator_after_documents():
    tok = CharTokenizer.from_text("abc\n")
    ids = tok.encode_stream([("ab", False), ("c", True), ("a", True)])
    assert tok.decode(ids) == "abc" + tok.separator + "a" + tok.separator


# ------------------------------------------------------------------------ BPE: reference implementations

def naive_train(text, n_merges, pattern=GPT2_SPLIT):
    import re
    words = Counter(re.findall(pattern, text))
    seqs = {w: list(w.encode("utf-8")) for w in words}
    merges = []
    for _ in range(n_merges):
        pairs = Counter()
        for w, f in words.items():
            for p in zip(seqs[w], seqs[w][1:]):
                pairs[p] += f
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < 2:
            break
        merges.append(best)
        for w in seqs:
            s, out, i = seqs[w], [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(256 + len(merges) - 1)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = out
    return merges


def naive_encode(tok, text):
    ids = []
    for piece in split_reference(text, tok.max_piece):
        s = list(piece.encode("utf-8"))
        for r, (a, b) in enumerate(tok.merges):
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                    out.append(256 + r)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            s = out
        ids += s
    return ids


words = st.sampled_from(["the", " the", "cat", " cat", "at", " a", "ab", "ba", "aaa", ".", "\n", "  ", "é", "ü"])
small_corpora = st.lists(words, min_size=1, max_size=60).map("".join)


@given(small_corpora, st.integers(1, 30))
def test_bpe_training_matches_naive_recount(text, n_merges):
    tok = BPETokenizer.train([text], 257 + n_merges)
    assert tok.merges == naive_train(text, n_merges)


@given(st.text(max_size=200))
def test_bpe_encode_matches_naive_and_roundtrips(bpe, text):
    ids = bpe.encode(text)
    assert ids == naive_encode(bpe, text)
    assert bpe.decode(ids) == text
    assert all(0 <= i < bpe.eot_id for i in ids)


@given(st.text())
def test_pretokenizer_covers_every_character(text):
    import re
    assert "".join(re.findall(GPT2_SPLIT, text)) == text


@given(st.lists(st.sampled_from("ab ét"), min_size=49, max_size=200).map("".join))
def test_bpe_long_pieces_use_heap_merge_with_same_result(bpe, text):
    ids = list(text.encode("utf-8"))
    short = BPETokenizer._encode_piece.__get__(bpe)
    bpe.LONG_PIECE = 10**9
    try:
        assert bpe._encode_long(ids) == short(text)
    finally:
        del bpe.LONG_PIECE


@given(st.lists(st.text(max_size=40), min_size=1, max_size=8), st.integers(257, 320))
def test_bpe_retraining_reproduces_merges(texts, vocab_size):
    a = BPETokenizer.train(texts, vocab_size)
    b = BPETokenizer.train(list(texts), vocab_size)
    assert a.merges == b.merges
    c = tokenizer_from_dict(json.loads(json.dumps(a.to_dict())))
    assert c.merges == a.merges and c.vocab_size == a.vocab_size
    for t in texts:
        assert c.encode(t) == a.encode(t) and c.decode(a.encode(t)) == t


def test_bpe_learns_merges_and_compresses(bpe):
    # training stops early once no pair occurs twice: the corpus is small
    assert 300 < bpe.vocab_size <= 400 and bpe.eot_id == bpe.vocab_size - 1 == 256 + len(bpe.merges)
    ids = bpe.encode(CORPUS)
    assert len(ids) < len(CORPUS.encode("utf-8")) / 2
    assert bpe.decode(np.asarray(ids, dtype=np.uint16)) == CORPUS


def test_bpe_end_of_text_and_stream(bpe):
    ids = bpe.encode_stream([("hello ", False), ("world", True), ("again", True)])
    assert ids.tolist().count(bpe.eot_id) == 2 and ids[-1] == bpe.eot_id
    assert bpe.decode(ids) == f"hello world{EOT}again{EOT}"
    assert bpe.eot_id not in bpe.encode(EOT)  # the text '<|endoftext|>' is ordinary bytes
    assert bpe.decode(bpe.encode(EOT)) == EOT


def test_bpe_decode_invalid_utf8_and_bad_ids(bpe):
    assert bpe.decode([0xC3]) == "\ufffd"  # half of a 2-byte character: replaced, not an exception
    with pytest.raises(ValueError, match="outside the vocabulary"):
        bpe.decode([bpe.vocab_size])


def test_bpe_cache_is_bounded(bpe):
    tok = BPETokenizer(bpe.merges)
    tok.CACHE_LIMIT = 10
    for i in range(50):
        tok.encode(f"w{i} ")
    assert len(tok._cache) <= 10 + 3


def test_bpe_bad_arguments():
    with pytest.raises(ValueError, match="vocab_size"):
        BPETokenizer.train(["abc"], 256)
    with pytest.raises(ValueError, match="merge 0"):
        BPETokenizer([[300, 1]])
    with pytest.raises(ValueError, match="twice"):
        BPETokenizer([[1, 2], [1, 2]])
    with pytest.raises(ValueError, match="unknown tokenizer"):
        tokenizer_from_dict({"kind": "wordpiece"})
    with pytest.raises(ValueError, match="unknown tokenizer"):
        tokenizer_from_dict(None)


# ------------------------------------------------------------------------ descriptions from files are untrusted
def test_the_split_pattern_is_stored_by_name_and_old_files_with_its_text_still_load(bpe):
    d = bpe.to_dict()
    assert d["pattern"] == "gpt2" and bpe.pattern == GPT2_SPLIT
    old = {**d, "pattern": GPT2_SPLIT}  # how checkpoints stored it before: accepted because it is exactly gpt2's
    again = tokenizer_from_dict(json.loads(json.dumps(old)))
    assert again.to_dict() == d and again.encode(CORPUS) == bpe.encode(CORPUS)


@pytest.mark.parametrize("pattern", ["(a|aa)+$|.", GPT2_SPLIT + " ", "gpt5", 7, None])
def test_a_pattern_that_is_not_a_known_one_is_refused_never_compiled(bpe, pattern, monkeypatch):
    import re
    compiled, compile_ = [], re.compile
    monkeypatch.setattr(re, "compile", lambda p, *a: compiled.append(p) or compile_(p, *a))
    with pytest.raises(ValueError) as info:
        tokenizer_from_dict({**bpe.to_dict(), "pattern": pattern})
    assert pattern not in compiled
    assert "unknown split pattern" in str(info.value) and "expected one of ['gpt2']" in str(info.value)


@pytest.mark.parametrize("change, message", [
    ({"merges": "abc"}, "'merges' must be a list"),
    ({"merges": [[1, 2, 3]]}, "merge 0"),
    ({"merges": [[1.5, 2]]}, "merge 0"),
    ({"merges": [["1", 2]]}, "merge 0"),
    ({"merges": [[True, 2]]}, "merge 0"),
    ({"merges": [[-1, 2]]}, "merge 0"),
    ({"merges": [[1, 256]]}, "merge 0"),
    ({"merges": [[97, 97]] + [[256 + r, 256 + r] for r in range(20)]}, "more than 65536"),  # 2**21 bytes
    ({"merges": [[1, 2]] * (1 << 20 | 1)}, "more than the 1048576 allowed"),
    ({"eot": ""}, "end-of-text"), ({"eot": 5}, "end-of-text"), ({"eot": "x" * 65}, "end-of-text"),
    ({"vocab": 3}, "unknown keys \\['vocab'\\]"),
])
def test_every_field_of_a_bpe_description_is_checked(bpe, change, message):
    with pytest.raises(ValueError, match=message):
        tokenizer_from_dict({**bpe.to_dict(), **change})
    d = bpe.to_dict()
    del d["merges"]
    with pytest.raises(ValueError, match=r"no \['merges'\]"):
        tokenizer_from_dict(d)


@pytest.mark.parametrize("d, message", [
    ({"kind": "char", "chars": "aab"}, "twice"),
    ({"kind": "char", "chars": ["a", "b"]}, "must be a string"),
    ({"kind": "char", "chars": "ab", "unk": "c"}, "not in the vocabulary"),
    ({"kind": "char", "chars": "ab", "unk": "ab"}, "one character"),
    ({"kind": "char"}, r"no \['chars'\]"),
    ({"kind": "char", "chars": "ab", "extra": 1}, "unknown keys"),
    ({"kind": ["char"]}, "unknown tokenizer"),
])
def test_every_field_of_a_char_description_is_checked(d, message):
    with pytest.raises(ValueError, match=message):
        tokenizer_from_dict(d)
    assert tokenizer_from_dict({"kind": "char", "chars": "ab", "unk": "b"}).encode("abc") == [0, 1, 1]


def test_a_long_run_without_spaces_trains_in_bounded_time_and_stays_lossless():
    """One long word (a DNA sequence: letters only, so the split pattern keeps it whole) made every merge
    rescan all of it: pre-tokens are cut at MAX_PIECE_CHARS, so the work per merge is bounded (here 150 KB and
    1000 merges took 10 s before, 3.6 s after). Deterministic, and decoding gives the text back."""
    import time
    run = "".join(np.random.default_rng(0).choice(list("ACGT"), 40_000))
    text = "some ordinary words here and there " * 200 + run + " the end"
    start = time.perf_counter()
    bpe = BPETokenizer.train([text], 257 + 300)
    assert time.perf_counter() - start < 60  # about a second here; generous for a loaded machine
    assert bpe.decode(bpe.encode(text)) == text
    assert BPETokenizer.train([text], 257 + 300).merges == bpe.merges
    assert bpe.max_piece == 256 and bpe.to_dict()["max_piece"] == 256


def test_max_piece_cuts_long_pre_tokens_and_old_files_keep_theirs():
    unbounded = BPETokenizer.train(["x" * 40 + " " + "x" * 40], 257 + 20, max_piece=None)  # as before the limit
    old = {k: v for k, v in unbounded.to_dict().items() if k != "max_piece"}  # a file from before the limit
    assert unbounded.to_dict()["max_piece"] is None and tokenizer_from_dict(old).max_piece is None
    assert tokenizer_from_dict(old).encode("x" * 40) == unbounded.encode("x" * 40)  # encodes as it was trained
    bounded = tokenizer_from_dict({**old, "max_piece": 8})
    ids = bounded.encode("x" * 40)
    assert bounded.decode(ids) == "x" * 40 and len(ids) >= 5 > len(unbounded.encode("x" * 40))  # no token crosses a cut
    for bad in (0, -1, 1.5, "8", True):
        with pytest.raises(ValueError, match="max_piece"):
            tokenizer_from_dict({**old, "max_piece": bad})
