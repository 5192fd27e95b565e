"""train/data.py: the download (against a local server), reading text, the split, and batches."""
import http.server
import os
import sys
import threading
import types

import numpy as np
import pytest

import tensorlite
from train import data as D
from train.tokenizers import CharTokenizer

BOOK = "It was a dark and stormy night.\nHolmes smiled.\n"
GUTENBERG = ("\ufeffThe Project Gutenberg eBook of Something\r\nlicence text\r\n"
             "*** START OF THE PROJECT GUTENBERG EBOOK SOMETHING ***\r\n"
             + BOOK.replace("\n", "\r\n") +
             "*** END OF THE PROJECT GUTENBERG EBOOK SOMETHING ***\r\nmore licence\r\n")


@pytest.fixture
def server():
    """A local HTTP server on 127.0.0.1 serving one book at /book.txt; yields (url, hit counter)."""
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            if self.path != "/book.txt":
                self.send_error(404)
                return
            body = GUTENBERG.encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", hits
    httpd.shutdown()
    httpd.server_close()


def test_strip_gutenberg_keeps_only_the_book():
    assert D.strip_gutenberg(GUTENBERG) == BOOK
    assert D.strip_gutenberg("no markers here\n") == "no markers here\n"


def test_download_once_strip_and_reuse(server, tmp_path):
    url, hits = server
    path = D.default_corpus(url + "/book.txt", folder=str(tmp_path))
    assert open(path, encoding="utf-8").read() == BOOK
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]  # the atomic write left no temp file
    assert D.default_corpus(url + "/book.txt", folder=str(tmp_path)) == path
    assert hits == ["/book.txt"]  # the second call used the cached copy


def test_cache_folder_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TENSORLITE_DATA", str(tmp_path))
    assert D.cache_dir() == str(tmp_path)
    monkeypatch.delenv("TENSORLITE_DATA")
    assert D.cache_dir().endswith(os.path.join(".cache", "tensorlite"))


@pytest.mark.parametrize("path", ["/missing.txt", None])
def test_offline_without_a_cached_copy_gives_one_clear_message(server, tmp_path, path):
    url, _ = server
    if path is None:  # nothing listens on a port we just closed
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        url, path = f"http://127.0.0.1:{s.getsockname()[1]}", "/book.txt"
        s.close()
    with pytest.raises(D.DataError) as err:
        D.default_corpus(url + path, folder=str(tmp_path), timeout=5)
    msg = str(err.value)
    assert "--data" in msg and url + path in msg and str(tmp_path) in msg
    assert not os.listdir(tmp_path)


def test_load_corpus_downloads_when_no_data_is_given(server, monkeypatch, tmp_path):
    url, _ = server
    monkeypatch.setenv("TENSORLITE_DATA", str(tmp_path))
    corpus = D.load_corpus(None, 0.2, url=url + "/book.txt")
    assert corpus.tokenizer.decode(np.concatenate([corpus.train, corpus.val])) == BOOK


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
