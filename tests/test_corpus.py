"""The parts of train.corpus on their own: splitting units, reading documents in pieces, the batcher's
transactions, and the dataset loader's checks. The whole pipeline is tested in test_prepare.py."""
import io
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from train.corpus import DatasetError, PrepareError, is_prepared, load_prepared, prepare, readers, sinks
from train.errors import DataError, UserError


def test_split_units_counts():
    names = [f"f{i}" for i in range(10)]
    assert len(readers.split_units(names, 0.1, 0)) == 1
    assert len(readers.split_units(names, 0.5, 0)) == 5
    assert readers.split_units(names, 0.0, 0) == set()
    assert len(readers.split_units(names[:2], 0.01, 0)) == 1  # at least one validation file
    assert len(readers.split_units(names[:2], 0.99, 0)) == 1  # at least one training file
    assert readers.split_units(names, 0.3, 1) == readers.split_units(list(reversed(names)), 0.3, 1)


@given(st.text(max_size=60), st.integers(1, 9))
def test_read_document_pieces_join_back(text, chunk):
    old = readers.CHUNK_BYTES
    readers.CHUNK_BYTES = chunk
    try:
        pieces = list(readers.read_document(io.BytesIO(text.encode("utf-8"))))
    finally:
        readers.CHUNK_BYTES = old
    assert "".join(t for t, _, _ in pieces) == text
    assert [end for _, end, _ in pieces] == [False] * (len(pieces) - 1) + [True] * bool(text)
    assert not any(bad for _, _, bad in pieces)


def test_a_unit_that_fails_midway_contributes_nothing(tmp_path, monkeypatch):
    """work.py reads a unit whole or not at all: a truncated .xz already handed to the encoder in batches
    leaves no part file and no counts, and says why."""
    import lzma
    from train.corpus import work
    from train.tokenizers import CharTokenizer
    monkeypatch.setattr(sinks, "BATCH_CHARS", 4)
    monkeypatch.setattr(readers, "CHUNK_BYTES", 64)
    path = tmp_path / "b.xz"
    path.write_bytes(lzma.compress(("partial " * 4000).encode(), preset=0)[:-40])
    unit = readers.Unit("b.xz", path)
    work.init(CharTokenizer.from_text("partil ").to_dict(), "uint8")
    part = tmp_path / "part.bin"
    result = work.encode_unit(unit, part)
    assert not result.ok and "EOFError" in result.reason and "b.xz" in result.warning and not part.exists()
    assert result.chars > 0  # it had read (and encoded) some of it before the damage
    counted = work.count_chars(unit)
    assert not counted.ok and counted.counts is None
    work.close()


def test_errors_are_user_errors_and_value_errors():
    assert issubclass(PrepareError, UserError) and issubclass(PrepareError, ValueError)
    assert issubclass(DatasetError, DataError) and issubclass(DatasetError, ValueError)


# ------------------------------------------------------------------------ load_prepared / is_prepared

@pytest.fixture
def prepared(tmp_path):
    (tmp_path / "t.txt").write_text("hello world, a small text\n" * 20, encoding="utf-8")
    prepare("text", tmp_path / "t.txt", tmp_path / "ds", quiet=True)
    return tmp_path / "ds"


def test_load_prepared_errors(prepared, tmp_path):
    assert is_prepared(prepared) and not is_prepared(tmp_path / "t.txt") and not is_prepared(tmp_path / "nope")
    meta = json.loads((prepared / "meta.json").read_text())
    with open(prepared / "train.bin", "ab") as f:
        f.write(b"\0")
    with pytest.raises(DatasetError, match=r"train.bin is \d+ bytes, but meta.json says"):
        load_prepared(prepared)
    (prepared / "val.bin").unlink()
    with pytest.raises(DatasetError, match="val.bin is missing|train.bin"):
        load_prepared(prepared)
    (prepared / "meta.json").write_text("{not json")
    with pytest.raises(DatasetError, match="meta.json is unreadable"):
        load_prepared(prepared)
    (prepared / "meta.json").write_text(json.dumps({**meta, "dtype": "float32"}))
    with pytest.raises(DatasetError, match="meta.json is corrupt"):
        load_prepared(prepared)
    (prepared / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "tokenizer"}))
    with pytest.raises(DatasetError, match="meta.json is corrupt"):
        load_prepared(prepared)
    (prepared / "meta.json").unlink()
    assert not is_prepared(prepared)
    with pytest.raises(DatasetError, match="meta.json is missing"):
        load_prepared(prepared)
    with pytest.raises(DatasetError, match="not a directory"):
        load_prepared(tmp_path / "nope")


def test_load_prepared_arrays(prepared):
    tok, train, val, meta = load_prepared(prepared)
    assert isinstance(train, np.memmap) and train.ndim == 1 and train.dtype == np.uint8
    with pytest.raises(ValueError):
        train[0] = 1
    assert len(train) == meta["counts"]["train_tokens"] and len(val) == meta["counts"]["val_tokens"] > 0
    assert tok.decode(np.concatenate([train, val])) == "hello world, a small text\n" * 20 + "\n\n"
    assert sorted(p.name for p in prepared.iterdir()) == ["meta.json", "timings.json", "train.bin", "val.bin"]  # no temporaries
