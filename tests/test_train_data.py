"""train/data.py: the packaged book (with no network), reading text, the split, and batches."""
import ast
import fnmatch
import lzma
import os
import socket
import sys
import types

import numpy as np
import pytest

import tensorlite
from train import data as D
from train.tokenizers import CharTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def no_network(monkeypatch):
    """Every attempt to resolve a name or open a connection fails, as on a machine without a network."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access is disabled in this test")
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


def test_the_packaged_book_is_the_book_only():
    text = D.default_corpus_text()
    assert text.startswith("The Adventures of Sherlock Holmes\n\nby Arthur Conan Doyle\n")
    assert text.rstrip().endswith("she has met with considerable success.")
    assert "A Scandal in Bohemia" in text and "The Adventure of the Copper Beeches" in text
    assert "Project Gutenberg" not in text and "*** START" not in text  # no licence header or footer
    assert "\r" not in text and "\ufeff" not in text and text.endswith("\n") and len(text) > 500_000


def test_the_default_corpus_loads_with_no_network(no_network):
    corpus = D.load_corpus(None, 0.2)
    assert corpus.tokenizer.decode(np.concatenate([corpus.train, corpus.val])) == D.default_corpus_text()
    assert len(corpus.train) == int(0.8 * (len(corpus.train) + len(corpus.val)))
    assert corpus.source == D.DEFAULT_TITLE and "Sherlock Holmes" in corpus.source
    assert no_network == []  # nothing even tried to connect
    with pytest.raises(OSError, match="disabled"):  # and the guard itself works
        socket.create_connection(("example.org", 80))


def test_setup_py_ships_the_book_in_the_wheel():
    tree = ast.parse(open(os.path.join(ROOT, "setup.py"), encoding="utf-8").read())
    setup = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    package_data = ast.literal_eval(next(k.value for k in setup.keywords if k.arg == "package_data"))
    relative = os.path.relpath(D.BOOK_PATH, os.path.join(ROOT, "train")).replace(os.sep, "/")
    assert any(fnmatch.fnmatch(relative, pattern) for pattern in package_data["train"]), (relative, package_data)
    assert "train/data" not in relative  # a folder train/data/ would clash with the module train/data.py


@pytest.mark.parametrize("damage", ["missing", "truncated", "not xz"])
def test_a_damaged_installation_says_so_and_names_data(tmp_path, monkeypatch, damage):
    path = tmp_path / "book.txt.xz"
    if damage == "truncated":
        path.write_bytes(open(D.BOOK_PATH, "rb").read()[:1000])
    elif damage == "not xz":
        path.write_bytes(b"plain text, not compressed")
    monkeypatch.setattr(D, "BOOK_PATH", str(path))
    with pytest.raises(D.DataError) as err:
        D.load_corpus(None)
    msg = str(err.value)
    assert str(path) in msg and "--data" in msg and "reinstall" in msg


def test_the_packaged_book_is_xz_compressed_utf8():
    with open(D.BOOK_PATH, "rb") as f:
        assert f.read(6) == b"\xfd7zXZ\x00"  # the xz magic number
    assert lzma.open(D.BOOK_PATH).read().decode("utf-8") == D.default_corpus_text()


def write(tmp_path, content, name="data.txt"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


@pytest.mark.parametrize("content,match", [
    (None, "does not exist"),
    ("", "empty"),
    (" \n\n", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    (b"caf\xe9 latin-1 text", "not UTF-8"),
])
def test_bad_data_files_fail_clearly(tmp_path, content, match):
    path = str(tmp_path / "missing.txt") if content is None else write(tmp_path, content)
    with pytest.raises(D.DataError, match=match):
        D.load_corpus(path)


def test_a_plain_directory_is_not_data(tmp_path):
    with pytest.raises(D.DataError, match="directory"):
        D.load_corpus(str(tmp_path))


def test_split_is_the_first_and_last_part(tmp_path):
    text = "abcdefghij" * 10
    corpus = D.load_corpus(write(tmp_path, "\ufeff" + text), val_fraction=0.2)
    assert corpus.tokenizer.decode(corpus.train) == text[:80]
    assert corpus.tokenizer.decode(corpus.val) == text[80:]
    with pytest.raises(ValueError, match="val_fraction"):
        D.load_corpus(write(tmp_path, text), val_fraction=1.0)


def test_block_size_longer_than_the_data_fails_clearly(tmp_path):
    corpus = D.load_corpus(write(tmp_path, "abcdefghij" * 10), val_fraction=0.2)
    with pytest.raises(D.DataError, match="block_size 20 .* validation split"):
        D.Batches(corpus, 4, 20)
    with pytest.raises(D.DataError, match="block_size 100 .* training split"):
        D.Batches(corpus, 4, 100)
    D.Batches(corpus, 4, 19)  # 20 tokens: exactly one window fits


def test_batches_are_shifted_windows_on_the_device(device, tmp_path):
    text = "".join(chr(ord("a") + i % 26) for i in range(500))
    corpus = D.load_corpus(write(tmp_path, text))
    batches = D.Batches(corpus, 5, 7, device=device, seed=1)
    x, y = batches.next()
    assert x.shape == y.shape == (5, 7) and x.dtype == tensorlite.int64 and x.device.startswith(device)
    x, y = x.numpy(), y.numpy()
    assert (x[:, 1:] == y[:, :-1]).all()
    assert ((x + 1) % 26 == y).all()  # in this text each letter is followed by the next one


def test_memmap_batches_equal_in_memory_batches(tmp_path):
    tokens = np.random.default_rng(0).integers(0, 50000, 1000).astype(np.uint16)
    path = tmp_path / "train.bin"
    tokens.tofile(path)
    mm = np.memmap(path, dtype=np.uint16, mode="r")
    a = D.get_batch(tokens, 4, 16, np.random.default_rng(5))
    b = D.get_batch(mm, 4, 16, np.random.default_rng(5))
    for u, v in zip(a, b):
        assert type(v) is np.ndarray and v.dtype == np.int64 and (u == v).all()


def test_generator_state_restores_the_batch_order(tmp_path):
    corpus = D.load_corpus(write(tmp_path, "hello world, " * 40))
    a = D.Batches(corpus, 3, 5, seed=7)
    a.next()
    state = a.get_state()
    expected = [a.next()[0].numpy() for _ in range(3)]
    b = D.Batches(corpus, 3, 5, seed=0)
    b.set_state(state)
    assert all((b.next()[0].numpy() == e).all() for e in expected)
    # evaluation batches are the same every time and do not move the training stream
    ev1 = [x.numpy() for x, _ in a.eval_batches("val", 2)]
    ev2 = [x.numpy() for x, _ in a.eval_batches("val", 2)]
    assert all((p == q).all() for p, q in zip(ev1, ev2))


def test_prepared_directories_go_through_train_prepare(tmp_path, monkeypatch):
    (tmp_path / "meta.json").write_text("{}")
    train = np.arange(100, dtype=np.uint16) % 7
    val = np.arange(30, dtype=np.uint16) % 7
    fake = types.ModuleType("train.prepare")
    fake.is_prepared = lambda p: p == str(tmp_path)
    fake.load_prepared = lambda p: (CharTokenizer(list("abcdefg")), train, val, {"name": "fake"})
    monkeypatch.setitem(sys.modules, "train.prepare", fake)
    corpus = D.load_corpus(str(tmp_path))
    assert corpus.train is train and corpus.val is val and corpus.meta == {"name": "fake"}
    monkeypatch.setitem(sys.modules, "train.prepare", None)  # as if the module were missing
    with pytest.raises(D.DataError, match="train/prepare.py is missing"):
        D.load_corpus(str(tmp_path))
