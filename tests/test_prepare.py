"""Corpus preparation end to end (train.corpus.prepare and its CLI, python -m train.prepare):
OpenWebText-shaped archives and text files -> train.bin / val.bin / meta.json.

The tests build their own small archives in tmp_path, in every shape OpenWebText comes in, and check that
the token streams decode back to exactly the documents that went in, file by file and split by split.
"""
import io
import json
import lzma
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from train.cli import cli_main
from train.corpus import readers, sinks
from train.prepare import is_prepared, load_prepared, main, prepare
from train.tokenizers import EOT

ROOT = Path(__file__).resolve().parent.parent


def xz_of_tar(docs):
    """An OpenWebText .xz: an xz-compressed tar holding one .txt per document."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for i, d in enumerate(docs):
            data = d if isinstance(d, bytes) else d.encode("utf-8")
            info = tarfile.TarInfo(f"{i:04d}.txt")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return lzma.compress(buf.getvalue(), preset=0)


def make_owt(root, n_subset=4):
    """Every shape: an outer .tar of .xz, top-level .xz of tar, a plain .xz text file, a truncated .xz.
    Returns {unit name: [documents as decoded text]} for the readable files, and the corrupt file's name."""
    root.mkdir(parents=True, exist_ok=True)
    docs = {}
    with tarfile.open(root / "urlsf_subset00.tar", "w") as outer:
        for k in range(n_subset):
            d = [f"subset doc {k}.{j}: héllo wörld 🌍\nsecond line {k * j}" for j in range(3)]
            data = xz_of_tar(d)
            name = f"openwebtext/urlsf_subset00-{k}_data.xz"
            info = tarfile.TarInfo(name)
            info.size = len(data)
            outer.addfile(info, io.BytesIO(data))
            docs[f"urlsf_subset00.tar/{name}"] = d
    top = ["top-level one", "top-level two\n", b"not utf-8: \xff\xfe end"]
    (root / "top_data.xz").write_bytes(xz_of_tar(top))
    docs["top_data.xz"] = ["top-level one", "top-level two\n", "not utf-8: \ufffd\ufffd end"]
    (root / "plain.xz").write_bytes(lzma.compress("a plain document, one per file".encode(), preset=0))
    docs["plain.xz"] = ["a plain document, one per file"]
    (root / "zz_truncated.xz").write_bytes(xz_of_tar(["never seen " * 300])[:-30])
    return docs, "zz_truncated.xz"


def stream(docs, names, sep):
    """The text a split's token stream must decode to: its files' documents in order, each followed by sep."""
    return "".join(d + sep for n in names for d in docs[n] if d)


@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_openwebtext_all_shapes_decode_to_the_documents(tmp_path, tokenizer):
    docs, corrupt = make_owt(tmp_path / "src")
    meta = prepare("openwebtext", tmp_path / "src", tmp_path / "out", tokenizer=tokenizer, vocab_size=300,
                   val_fraction=0.3, seed=0, quiet=True)
    tok, train, val, meta2 = load_prepared(tmp_path / "out")
    assert meta2 == json.loads(json.dumps(meta))
    assert [s["name"] for s in meta["skipped"]] == [corrupt]
    assert "EOFError" in meta["skipped"][0]["reason"]
    assert meta["non_utf8_documents"] == 1
    assert meta["separator"] == (EOT if tokenizer == "bpe" else "\n\n")
    # every readable file lands in exactly one split; files are read in sorted order
    assert sorted(meta["split"]["train"] + meta["split"]["val"]) == sorted(docs)
    assert meta["split"]["train"] == sorted(meta["split"]["train"])
    planned_val = readers.split_units([*docs, corrupt], 0.3, 0)
    assert set(meta["split"]["val"]) == planned_val - {corrupt}
    for ids, split in ((train, "train"), (val, "val")):
        assert isinstance(ids, np.memmap) and ids.ndim == 1 and not ids.flags.writeable
        assert ids.dtype == np.dtype(meta["dtype"])
        assert tok.decode(ids) == stream(docs, meta["split"][split], meta["separator"])
    assert meta["counts"]["documents"] == sum(len(d) for d in docs.values())


def test_split_is_by_file_deterministic_and_seeded(tmp_path):
    docs, _ = make_owt(tmp_path / "src", n_subset=8)
    splits = []
    for i, seed in enumerate([5, 5, 6, 7, 8]):
        meta = prepare("openwebtext", tmp_path / "src", tmp_path / f"out{i}", val_fraction=0.25, seed=seed, quiet=True)
        splits.append((meta["split"]["train"], meta["split"]["val"]))
        n_units = len(docs) + 1  # the truncated file is split too, then skipped
        assert len(meta["split"]["val"]) + (meta["skipped"][0]["name"] in readers.split_units(
            [*docs, "zz_truncated.xz"], 0.25, seed)) == round(n_units * 0.25)
    assert splits[0] == splits[1]
    assert len({tuple(v) for _, v in splits[1:]}) > 1  # the seed matters


def crash_on_file(monkeypatch, k, watch):
    """Make the k-th source file opened (counting both passes) raise partway through its documents (in this
    process: prepare with workers=1). Returns a list that gets the names in directory `watch` at the moment of the crash."""
    real, opened, seen = readers.Unit.documents, [0], []
    def documents(self, outer_tars, note=readers.warn):
        opened[0] += 1
        pieces = real(self, outer_tars, note)
        if opened[0] == k:
            yield next(pieces)
            seen.extend(sorted(p.name for p in watch.iterdir()))
            raise RuntimeError("simulated crash")
        yield from pieces
    monkeypatch.setattr(readers.Unit, "documents", documents)
    return seen


def test_interrupted_run_leaves_no_dataset(tmp_path, monkeypatch):
    docs, _ = make_owt(tmp_path / "src")
    seen = crash_on_file(monkeypatch, len(docs) + 1 + 3, tmp_path)  # the counting pass opens every file
    with pytest.raises(RuntimeError, match="simulated"):
        prepare("openwebtext", tmp_path / "src", tmp_path / "out", quiet=True, workers=1)
    assert any(n.startswith(".out.tmp") for n in seen)  # it crashed while writing
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no temporary directory left either


def test_interrupted_forced_run_keeps_the_old_dataset(tmp_path, monkeypatch):
    docs, _ = make_owt(tmp_path / "src")
    prepare("openwebtext", tmp_path / "src", tmp_path / "out", quiet=True)
    before = (tmp_path / "out" / "train.bin").read_bytes()
    with monkeypatch.context() as m:
        crash_on_file(m, len(docs) + 1 + 2, tmp_path)
        with pytest.raises(RuntimeError):
            prepare("openwebtext", tmp_path / "src", tmp_path / "out", quiet=True, force=True, workers=1)
    assert (tmp_path / "out" / "train.bin").read_bytes() == before
    load_prepared(tmp_path / "out")
    prepare("openwebtext", tmp_path / "src", tmp_path / "out", quiet=True, force=True, tokenizer="bpe", vocab_size=300)
    assert load_prepared(tmp_path / "out")[0].kind == "bpe"


def test_a_killed_runs_temporary_folder_is_removed_by_the_next_run(tmp_path):
    make_owt(tmp_path / "src")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()  # a PID that has just exited
    killed = tmp_path / f".out.tmp-{dead}"
    alive = tmp_path / ".out.tmp-1"  # PID 1 always runs: another live preparation must be left alone
    for d in (killed, alive):
        d.mkdir()
        (d / "train.bin").write_bytes(b"half")
    prepare("openwebtext", tmp_path / "src", tmp_path / "out", quiet=True)
    assert not killed.exists() and alive.exists()
    load_prepared(tmp_path / "out")


def test_text_folder_and_non_utf8(tmp_path):
    src = tmp_path / "books"
    src.mkdir()
    texts = {"a.txt": "First book.\nÜber alles.\n", "b.txt": "Second 🌍 book", "c.txt": "third",
             "sub/d.txt": "nested book"}
    for name, t in texts.items():
        (src / name).parent.mkdir(exist_ok=True)
        (src / name).write_text(t, encoding="utf-8")
    (src / "e.txt").write_bytes(b"latin-1 caf\xe9")
    (src / "notes.md").write_text("not a .txt: ignored")
    texts["e.txt"] = "latin-1 caf\ufffd"
    meta = prepare("text", src, tmp_path / "out", val_fraction=0.2, seed=3, quiet=True)
    tok, train, val, _ = load_prepared(tmp_path / "out")
    assert meta["non_utf8_documents"] == 1 and meta["split"]["method"] == "by_file"
    for ids, split in ((train, "train"), (val, "val")):
        assert tok.decode(ids) == stream({n: [t] for n, t in texts.items()}, meta["split"][split], "\n\n")


def test_single_big_text_is_split_by_tail_in_chunks(tmp_path, monkeypatch):
    # tiny chunks and batches: documents arrive in many pieces and batches are handed over mid-file
    monkeypatch.setattr(readers, "CHUNK_BYTES", 7)
    monkeypatch.setattr(sinks, "BATCH_CHARS", 20)
    book = "".join(f"Line {i}: naïve café 東京 🌍\n" for i in range(60))
    (tmp_path / "book.txt").write_text(book, encoding="utf-8")
    for tokenizer in ("char", "bpe"):
        out = tmp_path / f"out_{tokenizer}"
        meta = prepare("text", tmp_path / "book.txt", out, tokenizer=tokenizer, vocab_size=280, val_fraction=0.1,
                       quiet=True)
        tok, train, val, _ = load_prepared(out)
        assert meta["split"]["method"] == "tail"
        n = len(train) + len(val)
        assert len(val) == round(n * 0.1)
        assert tok.decode(np.concatenate([train, val])) == book + meta["separator"]


def test_truncated_file_rolls_back_what_it_already_wrote(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "CHUNK_BYTES", 64)
    monkeypatch.setattr(sinks, "BATCH_CHARS", 100)  # the truncated file is handed to the encoder before it fails
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.xz").write_bytes(lzma.compress(b"good document", preset=0))
    (src / "b.xz").write_bytes(lzma.compress(("partial " * 4000).encode(), preset=0)[:-40])
    (src / "c.xz").write_bytes(lzma.compress(b"another good one", preset=0))
    meta = prepare("openwebtext", src, tmp_path / "out", val_fraction=0, quiet=True, workers=1)
    tok, train, val, _ = load_prepared(tmp_path / "out")
    assert [s["name"] for s in meta["skipped"]] == ["b.xz"]
    assert tok.decode(train) == "good document\n\nanother good one\n\n"
    assert len(val) == 0 and not val.flags.writeable


def test_min_char_count_maps_rare_characters_to_unknown(tmp_path):
    (tmp_path / "t.txt").write_text("aaaa bbbb ab ba ✓ q", encoding="utf-8")
    prepare("text", tmp_path / "t.txt", tmp_path / "out", min_char_count=3, val_fraction=0, quiet=True)
    tok, train, _, meta = load_prepared(tmp_path / "out")
    assert meta["tokenizer"]["unk"] == "\ufffd"
    assert set(tok.chars) == {"a", "b", " ", "\n", "\ufffd"}
    assert tok.decode(train) == "aaaa bbbb ab ba \ufffd \ufffd\n\n"


@pytest.mark.parametrize("cut", [0, 100])  # at a block boundary (no error from tarfile) or inside a member
def test_outer_tar_truncated_keeps_the_members_before_the_damage(tmp_path, cut):
    docs, _ = make_owt(tmp_path / "src", n_subset=6)
    outer = tmp_path / "src" / "urlsf_subset00.tar"
    outer.write_bytes(outer.read_bytes()[:outer.stat().st_size // 2 + cut])
    meta = prepare("openwebtext", tmp_path / "src", tmp_path / "out", val_fraction=0, quiet=True)
    tok, train, _, _ = load_prepared(tmp_path / "out")
    skipped = [s["name"] for s in meta["skipped"]]
    assert "zz_truncated.xz" in skipped and any(s.startswith("urlsf_subset00.tar") for s in skipped)
    kept = [n for n in meta["split"]["train"] if n.startswith("urlsf_subset00.tar/")]
    assert 0 < len(kept) < 6
    assert tok.decode(train) == stream(docs, meta["split"]["train"], "\n\n")


# ------------------------------------------------------------------------ bad input: clear message, exit 2

def cli(capsys, *argv):
    code = cli_main(main, [str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_cli_bad_inputs(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "noarch").mkdir()
    (tmp_path / "noarch" / "readme.json").write_text("{}")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    (tmp_path / "t.txt").write_text("some text")
    cases = [
        (["openwebtext", "--src", tmp_path / "missing", "--out", tmp_path / "o"], "does not exist"),
        (["openwebtext", "--src", tmp_path / "empty", "--out", tmp_path / "o"], "holds no .xz or .tar"),
        (["openwebtext", "--src", tmp_path / "noarch", "--out", tmp_path / "o"], "holds no .xz or .tar"),
        (["text", "--src", tmp_path / "empty", "--out", tmp_path / "o"], "holds no .txt"),
        (["text", "--src", tmp_path / "empty.txt", "--out", tmp_path / "o"], "is empty"),
        (["text", "--src", tmp_path / "t.txt", "--out", tmp_path / "full"], "not empty; pass --force"),
        (["text", "--src", tmp_path / "t.txt", "--out", tmp_path / "t.txt"], "not a directory"),
        (["text", "--src", tmp_path / "t.txt", "--out", tmp_path / "o", "--tokenizer", "bpe", "--vocab_size", 100],
         "at least 257"),
        (["text", "--src", tmp_path / "t.txt", "--out", tmp_path / "o", "--val_fraction", 1.5], "val_fraction"),
        (["text", "--src", tmp_path / "t.txt", "--out", tmp_path / "o", "--min_char_count", 0], "min_char_count"),
    ]
    for argv, message in cases:
        code, err = cli(capsys, *argv)
        assert code == 2 and message in err, (argv, err)
        assert not (tmp_path / "o").exists()
    assert (tmp_path / "full" / "x").read_text() == "x"


def test_cli_all_archives_corrupt(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.xz").write_bytes(b"definitely not xz")
    code, err = cli(capsys, "openwebtext", "--src", tmp_path / "src", "--out", tmp_path / "o", "--quiet")
    assert code == 2 and "no text could be read" in err and "a.xz" in err
    assert not (tmp_path / "o").exists()


def test_cli_interrupted(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr("train.prepare.prepare", interrupted)
    (tmp_path / "t.txt").write_text("some text")
    code, err = cli(capsys, "text", "--src", tmp_path / "t.txt", "--out", tmp_path / "o")
    assert code == 130 and "interrupted: nothing was written to --out" in err


def test_cli_runs_as_module(tmp_path):
    (tmp_path / "t.txt").write_text("module run " * 10)
    ok = subprocess.run([sys.executable, "-m", "train.prepare", "text", "--src", tmp_path / "t.txt", "--out",
                         tmp_path / "o"], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0 and "prepared" in ok.stderr and is_prepared(tmp_path / "o")
    bad = subprocess.run([sys.executable, "-m", "train.prepare", "text", "--src", tmp_path / "t.txt", "--out",
                          tmp_path / "o"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "--force" in bad.stderr and "Traceback" not in bad.stderr


def test_bpe_sample_is_bounded_even_for_one_huge_file(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "CHUNK_BYTES", 100)
    book = "".join(f"sentence number {i} of the book.\n" for i in range(400))
    (tmp_path / "book.txt").write_text(book)
    meta = prepare("text", tmp_path / "book.txt", tmp_path / "out", tokenizer="bpe", vocab_size=300,
                   bpe_sample_bytes=500, quiet=True)
    assert 500 <= meta["tokenizer_info"]["bpe_sample_chars"] < 700
    tok, train, val, _ = load_prepared(tmp_path / "out")
    assert tok.decode(np.concatenate([train, val])) == book + EOT


# ---------------------------------------------------------------- the file system (issue 14)
def test_out_under_a_file_is_one_line_naming_it(tmp_path, capsys):
    src = tmp_path / "src.txt"
    src.write_text("hello world. " * 50, encoding="utf-8")
    (tmp_path / "afile").write_text("x")
    rc = cli_main(main, ["text", "--src", str(src), "--out", str(tmp_path / "afile" / "sub"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and "Traceback" not in err and str(tmp_path / "afile") in err


@pytest.mark.parametrize("code,words", [(28, "free some disk space"), (30, "read-only"), (13, "permissions")])
def test_a_full_or_read_only_disk_is_one_line_and_keeps_the_old_dataset(tmp_path, capsys, monkeypatch, code, words):
    import errno
    import os
    src = tmp_path / "src.txt"
    src.write_text("hello world. " * 50, encoding="utf-8")
    out = tmp_path / "data"
    prepare("text", str(src), str(out), quiet=True)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_write = sinks.TokenFile.write

    class Full:  # a file on a disk that has filled up (or turned read-only)
        closed = False
        def write(self, data):
            raise OSError(code, os.strerror(code))
        flush = close = lambda self: None

    def full(self, pieces):  # ... while the tokens are written
        self.f.close()
        self.f = Full()
        return real_write(self, pieces)
    monkeypatch.setattr(sinks.TokenFile, "write", full)
    rc = cli_main(main, ["text", "--src", str(src), "--out", str(out), "--force", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err and words in err and str(out) in err
    assert code != errno.ENOSPC or "MiB" in err
    monkeypatch.setattr(sinks.TokenFile, "write", real_write)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before and is_prepared(out)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left


def v7_tar(docs):
    """A tar in the old V7 layout: no "ustar" magic, only the header checksum says it is a tar."""
    blocks = []
    for i, d in enumerate(docs):
        data = d.encode("utf-8")
        head = bytearray(512)
        for offset, value in ((0, f"{i:04d}.txt".encode()), (100, b"0000644\0"), (108, b"0000000\0"),
                              (116, b"0000000\0"), (124, b"%011o\0" % len(data)), (136, b"00000000000\0"),
                              (156, b"0")):
            head[offset:offset + len(value)] = value
        head[148:156] = b" " * 8
        head[148:156] = b"%06o\0 " % sum(head)
        blocks += [bytes(head), data + b"\0" * (-len(data) % 512)]
    return b"".join(blocks) + b"\0" * 1024


def test_tar_content_is_recognised_whatever_its_layout(tmp_path, capsys):
    """A V7 tar (no magic) is read member by member, an empty tar gives nothing (with a note naming it):
    neither ends up in the dataset as text with its NUL bytes and headers."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a_v7.xz").write_bytes(lzma.compress(v7_tar(["old layout one", "old layout two"]), preset=0))
    (src / "b_empty.xz").write_bytes(lzma.compress(b"\0" * 10240, preset=0))
    (src / "c_text.xz").write_bytes(lzma.compress("plain text, not a tar".encode(), preset=0))
    meta = prepare("openwebtext", src, tmp_path / "out", val_fraction=0, quiet=True)
    tok, train, _, _ = load_prepared(tmp_path / "out")
    assert tok.decode(train) == "old layout one\n\nold layout two\n\nplain text, not a tar\n\n"
    assert "\0" not in tok.decode(train) and meta["skipped"] == []
    assert "b_empty.xz holds an empty tar archive" in capsys.readouterr().err


def test_is_tar_reads_the_checksum_not_text():
    assert readers.is_tar(v7_tar(["x"])[:512]) and readers.is_tar(b"\0" * 512)
    assert not readers.is_tar(b"0000644 " * 64) and not readers.is_tar(b"short")


def test_text_input_that_is_binary_is_skipped_and_xz_text_is_decompressed(tmp_path, capsys):
    """prepare text: random bytes and a file with NUL bytes are skipped with a warning naming them (and
    listed in meta.json); an .xz of text is read decompressed; a Latin-1 text (a few odd bytes) is kept."""
    src = tmp_path / "books"
    src.mkdir()
    (src / "a.txt").write_text("a real book\n", encoding="utf-8")
    (src / "b.txt").write_bytes(np.random.default_rng(0).integers(1, 256, 5000, dtype=np.uint8).tobytes())
    (src / "c.txt").write_bytes(b"text with a NUL\0 inside")
    (src / "d.txt").write_bytes(lzma.compress("compressed book".encode(), preset=0))
    (src / "e.txt").write_bytes(b"caf\xe9 au lait, cr\xe8me br\xfbl\xe9e")
    meta = prepare("text", src, tmp_path / "out", val_fraction=0, quiet=True)
    tok, train, _, _ = load_prepared(tmp_path / "out")
    assert tok.decode(train) == "a real book\n\n\ncompressed book\n\ncaf\ufffd au lait, cr\ufffdme br\ufffdl\ufffde\n\n"
    reasons = {s["name"]: s["reason"] for s in meta["skipped"]}
    assert sorted(reasons) == ["b.txt", "c.txt"]
    assert reasons["b.txt"].startswith("it is not UTF-8 text") and "NUL bytes" in reasons["c.txt"]
    err = capsys.readouterr().err
    assert "skipping b.txt: it is not UTF-8 text" in err and "skipping c.txt: it holds NUL bytes" in err


def test_a_single_xz_given_as_text_is_decompressed(tmp_path):
    (tmp_path / "book.txt.xz").write_bytes(lzma.compress(("line of a book\n" * 50).encode(), preset=0))
    prepare("text", tmp_path / "book.txt.xz", tmp_path / "out", val_fraction=0.1, quiet=True)
    tok, train, val, _ = load_prepared(tmp_path / "out")
    assert (tok.decode(train) + tok.decode(val)).replace("\n\n", "\n").count("line of a book") == 50


@pytest.mark.parametrize("into", [0, 300, 700])  # at a header, inside a header, inside the member's data
def test_outer_tar_damaged_inside_a_member_keeps_every_member_before_it(tmp_path, into):
    docs, _ = make_owt(tmp_path / "src", n_subset=6)
    outer = tmp_path / "src" / "urlsf_subset00.tar"
    with tarfile.open(outer) as t:
        offsets = [m.offset for m in t.getmembers()]
    outer.write_bytes(outer.read_bytes()[:offsets[3] + into])  # members 0, 1, 2 are whole
    meta = prepare("openwebtext", tmp_path / "src", tmp_path / "out", val_fraction=0, quiet=True)
    tok, train, _, _ = load_prepared(tmp_path / "out")
    kept = [n for n in meta["split"]["train"] if n.startswith("urlsf_subset00.tar/")]
    assert kept == [f"urlsf_subset00.tar/openwebtext/urlsf_subset00-{k}_data.xz" for k in range(3)]
    assert tok.decode(train) == stream(docs, meta["split"]["train"], "\n\n")
    reason = {s["name"]: s["reason"] for s in meta["skipped"]}["urlsf_subset00.tar"]
    last = 3 if into > 512 else 2  # a member whose header was read is named (and skipped as truncated itself)
    assert f"damaged after member 'openwebtext/urlsf_subset00-{last}_data.xz'" in reason
