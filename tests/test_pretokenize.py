"""The vectorised pre-tokenizer (split_batch) against its definition, GPT-2's regex (split_reference).

split_batch finds piece boundaries from character classes; every rule of the regex it reproduces (a space
joining the next word, whitespace runs giving up their last character, contractions, texts never sharing a
piece, the cut of long pieces) is exercised here on random text built from the characters that matter.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from train.pretokenize import (DIGIT, LETTER, MAX_PIECE_CHARS, OTHER, SPACE, char_classes, cut_long,
                               split_batch, split_reference)

# the characters each rule looks at: spaces of several kinds, the contraction letters, classes' edge cases
TRICKY = list(" \n\t\r\x0b\x1c\u3000\u00a0'sdmtlvre") + ["a", "Z", "é", "東", "1", "٣", "½", "_", "!", ".",
                                                          "\ud800", "🌍", "\uffff", "\U0010ffff"]
tricky_text = st.lists(st.sampled_from(TRICKY), max_size=40).map("".join)
any_text = st.one_of(tricky_text, st.text(max_size=60))
limits = st.sampled_from([None, 1, 2, 3, 5, MAX_PIECE_CHARS])


def expected(texts, limit):
    per_text = [split_reference(t, limit) for t in texts]
    return [p for ps in per_text for p in ps], [len(ps) for ps in per_text]


@given(st.lists(any_text, max_size=8), limits)
def test_split_batch_gives_the_regex_pieces_text_by_text(texts, limit):
    pieces, count = split_batch(texts, limit)
    want, want_count = expected(texts, limit)
    assert pieces == want
    assert count.tolist() == want_count and "".join(pieces) == "".join(texts)


@given(st.lists(tricky_text, min_size=1, max_size=4))
def test_split_batch_when_the_text_holds_every_separator_it_could_use(texts):
    texts = texts + ["\uffff\ufffe\U0010ffff\U0010fffe"]  # str.split has no free character left: slices
    assert split_batch(texts)[0] == expected(texts, MAX_PIECE_CHARS)[0]


@pytest.mark.parametrize("text, pieces", [
    ("Hello world", ["Hello", " world"]),
    ("it's don't we'll", ["it", "'s", " don", "'t", " we", "'ll"]),
    ("a  b\n\nc", ["a", " ", " b", "\n", "\n", "c"]),
    ("x 's", ["x", " '", "s"]),
    ("'sam 12345 !!", ["'s", "am", " 12345", " !!"]),
    ("end   ", ["end", "   "]),
])
def test_split_batch_examples(text, pieces):
    assert split_reference(text) == pieces
    assert split_batch([text])[0] == pieces


def test_a_piece_never_spans_two_texts():
    # "'l" + "l": no contraction across texts; "a " + "b": the space stays with the first text
    assert split_batch(["x'l", "l", "a ", "b"], None)[0] == ["x", "'", "l", "l", "a", " ", "b"]
    assert split_batch(["", "ab", ""], None)[1].tolist() == [0, 1, 0]


def test_long_pieces_are_cut_from_their_start():
    run = "ACGT" * 300  # 1200 letters, no space
    pieces, _ = split_batch(["x " + run + " y"], 256)
    assert pieces == ["x"] + cut_long([" " + run], 256) + [" y"] and max(map(len, pieces)) == 256


def test_character_classes_are_the_regex_classes():
    table = char_classes()
    assert table.shape == (0x110000,) and table.dtype == np.uint8
    for ch, cls in [("a", LETTER), ("½", LETTER), ("東", LETTER), ("7", DIGIT), ("٣", DIGIT), ("_", OTHER),
                    ("'", OTHER), ("\ud800", OTHER), (" ", SPACE), ("\u3000", SPACE), ("\x1c", SPACE)]:
        assert table[ord(ch)] == cls, ch
