"""Turn a large text corpus into token files that training memory-maps: train.bin, val.bin, meta.json.

    python -m train.prepare openwebtext --src DIR --out DIR [--tokenizer char|bpe] [--vocab_size N] ...
    python -m train.prepare text --src FILE_OR_DIR --out DIR ...

OpenWebText comes as `.xz` files that are each an xz-compressed tar of `.txt` documents, often packed
into outer `.tar` subsets; some copies have plain `.xz` text files instead (one document each). All three
are read with the stdlib (tarfile, lzma), one document at a time and in chunks of at most a few MB, so
memory stays bounded whatever the corpus size.

Each source file (an `.xz`, or a `.txt` for `text`) is one unit. Units are split train/val by file with a
seeded shuffle, so the same seed always puts the same files in the same split. A single source file is
split by its tail instead (the last val_fraction of its tokens). Preparation runs two passes: the first
builds the tokenizer (character counts over everything, or a BPE trained on a sample of the train files),
the second encodes. A source file that turns out corrupt or truncated is skipped with a warning, and what
it had already contributed is rolled back.

The dataset is written into a temporary directory next to --out, meta.json last, and renamed into place
at the very end: an interrupted run leaves no directory that `load_prepared` would take as whole.
"""
import argparse
import io
import json
import lzma
import os
import shutil
import sys
import tarfile
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from train.tokenizers import BPETokenizer, CharTokenizer, tokenizer_from_dict

FORMAT = "tensorlite-prepared"
FORMAT_VERSION = 1
CHUNK_BYTES = 4 << 20      # documents are read in pieces of at most this many bytes
BATCH_BYTES = 8 << 20      # text is encoded in batches of about this size (bulk encoding is much faster)
CORRUPT = (tarfile.TarError, lzma.LZMAError, EOFError, OSError)


class _Enough(Exception):
    """Raised by a reader callback that has all the text it wants (the BPE sample)."""


class PrepareError(ValueError):
    """Bad input to preparation: the CLI prints it and exits with status 2."""


class DatasetError(ValueError):
    """A prepared dataset directory is missing, incomplete or inconsistent."""


# ----------------------------------------------------------------------------- reading documents

def _utf8_cut(data):
    """Length of the longest prefix of `data` that does not end inside a UTF-8 character."""
    nl = data.rfind(b"\n")
    if nl >= 0:
        return nl + 1  # also keeps BPE pre-tokens from being split across chunks
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # a lead byte (or ASCII): does its sequence fit?
            need = 1 if byte < 0x80 else 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
            return len(data) if need <= back else len(data) - back
    return len(data)


def _read_document(f):
    """Yield (text, is_last_piece, had_bad_utf8) for one document read from binary file `f`, in chunks.

    An empty document yields nothing. Bytes that are not UTF-8 are decoded as U+FFFD.
    """
    carry, pending = b"", None
    while True:
        block = f.read(CHUNK_BYTES)
        data = carry + block
        cut = len(data) if not block else _utf8_cut(data)
        data, carry = data[:cut], data[cut:]
        if data:
            try:
                text, bad = data.decode("utf-8"), False
            except UnicodeDecodeError:
                text, bad = data.decode("utf-8", errors="replace"), True
            if pending is not None:
                yield pending[0], False, pending[1]
            pending = (text, bad)
        if not block and not carry:
            break
    if pending is not None:
        yield pending[0], True, pending[1]


def _is_tar(head):
    return len(head) >= 262 and head[257:262] == b"ustar"


def _documents_in_xz(raw):
    """Documents of one OpenWebText `.xz`: an xz-compressed tar of text files, or xz-compressed text."""
    with lzma.open(raw) as f:
        head = f.read(512)
        f.seek(0)
        if _is_tar(head):
            with tarfile.open(fileobj=f, mode="r|") as tar:
                for member in tar:
                    if member.isfile():
                        yield from _read_document(tar.extractfile(member))
            while f.read(CHUNK_BYTES):  # to the end of the xz stream: a truncated one fails here, not silently
                pass
        else:
            yield from _read_document(f)


class Unit:
    """One source file: a top-level file, or an `.xz` member of an outer `.tar` subset."""

    def __init__(self, name, path, member=None, kind="xz"):
        self.name, self.path, self.member, self.kind = name, path, member, kind

    def documents(self, outer_tars):
        """Pieces of this file's documents; `outer_tars` ({path: open TarFile}) keeps the subset tar open
        between its members, so its index is read once rather than once per member."""
        if self.kind == "text":
            with open(self.path, "rb") as f:
                yield from _read_document(f)
        elif self.member is None:
            with open(self.path, "rb") as f:
                yield from _documents_in_xz(f)
        else:
            if self.path not in outer_tars:
                for t in outer_tars.values():
                    t.close()
                outer_tars.clear()
                outer_tars[self.path] = tarfile.open(self.path, mode="r:")
            yield from _documents_in_xz(outer_tars[self.path].extractfile(self.member))


def _warn(msg):
    tqdm.write(f"warning: {msg}", file=sys.stderr)


def find_units(corpus, src):
    """(units, skipped): every source file under `src`, sorted by name; outer tars that cannot be listed
    (or only partly) are reported in `skipped` as (name, reason)."""
    src = Path(src)
    if not src.exists():
        raise PrepareError(f"--src {str(src)!r} does not exist")
    if src.is_file():
        files, root = [src], src.parent
    else:
        pattern = ("*.xz", "*.tar") if corpus == "openwebtext" else ("*.txt",)
        files = sorted({p for pat in pattern for p in src.rglob(pat) if p.is_file()})
        root = src
        if not files:
            want = ".xz or .tar archives" if corpus == "openwebtext" else ".txt files"
            raise PrepareError(f"--src {str(src)!r} holds no {want}")
    units, skipped = [], []
    for path in files:
        name = path.relative_to(root).as_posix()
        if corpus == "text":
            units.append(Unit(name, path, kind="text"))
        elif path.suffix == ".tar":
            try:
                with tarfile.open(path, mode="r:") as outer:
                    end = 0
                    for m in outer:
                        end = m.offset_data + -(-m.size // 512) * 512
                        if m.isfile() and m.name.endswith(".xz"):
                            units.append(Unit(f"{name}/{m.name}", path, member=m.name))
                if path.stat().st_size < end + 1024:  # a whole tar ends with two zero blocks after its last member
                    raise tarfile.ReadError("it ends without the end-of-archive marker (truncated?)")
            except CORRUPT as e:
                skipped.append((name, f"cannot list the tar (members after the damage are lost): {e}"))
                _warn(f"skipping the unreadable part of {name}: {e}")
        else:
            units.append(Unit(name, path))
    if not units:
        raise PrepareError(f"--src {str(src)!r}: no readable source files ({len(skipped)} skipped)")
    return units, skipped


def split_units(names, val_fraction, seed):
    """Set of names that go to validation: a seeded shuffle of the sorted names, the first round(n * f)."""
    names = sorted(names)
    n = len(names)
    if n < 2 or val_fraction == 0:
        return set()
    n_val = min(max(1, round(n * val_fraction)), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    return {names[i] for i in order[:n_val]}


# ----------------------------------------------------------------------------- batching with rollback

class _Batcher:
    """Gathers document pieces and hands them to a sink in big batches. Each source file is a transaction:
    if it fails midway, `rollback` removes everything it contributed, even what was already handed over."""

    def __init__(self, sink):
        self.sink = sink
        self.done, self.done_bytes = [], 0   # pieces of finished files, not yet handed over
        self.cur, self.cur_bytes = [], 0     # pieces of the file being read
        self.spilled = False

    def add(self, text, end):
        self.cur.append((text, end))
        self.cur_bytes += len(text)
        if self.cur_bytes >= BATCH_BYTES:  # a huge file: hand it over in parts, after a mark to roll back to
            self.flush()
            if not self.spilled:
                self.sink.mark()
                self.spilled = True
            self.sink.write(self.cur)
            self.cur, self.cur_bytes = [], 0

    def commit(self):
        self.done += self.cur
        self.done_bytes += self.cur_bytes
        self.cur, self.cur_bytes = [], 0
        if self.spilled:
            self.sink.commit()
            self.spilled = False
        if self.done_bytes >= BATCH_BYTES:
            self.flush()

    def rollback(self):
        self.cur, self.cur_bytes = [], 0
        if self.spilled:
            self.sink.rollback()
            self.spilled = False

    def flush(self):
        if self.done:
            self.sink.write(self.done)
        self.done, self.done_bytes = [], 0


class _CharCounts:
    """Sink that counts characters (one bincount per batch over the code points)."""

    def __init__(self):
        self.total = np.zeros(0, dtype=np.int64)
        self.pending = None

    @staticmethod
    def _add(acc, counts):
        if len(counts) > len(acc):
            acc = np.concatenate([acc, np.zeros(len(counts) - len(acc), dtype=np.int64)])
        acc[:len(counts)] += counts
        return acc

    def write(self, pieces):
        text = "".join(t + "\n" if end else t for t, end in pieces)
        counts = np.bincount(np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32))
        if self.pending is None:
            self.total = self._add(self.total, counts)
        else:
            self.pending = self._add(self.pending, counts)

    def mark(self):
        self.pending = np.zeros(0, dtype=np.int64)

    def commit(self):
        self.total, self.pending = self._add(self.total, self.pending), None

    def rollback(self):
        self.pending = None

    def counter(self):
        return {chr(c): int(self.total[c]) for c in np.flatnonzero(self.total)}


class _TokenFile:
    """Sink that encodes batches and appends the ids to a .bin file."""

    def __init__(self, path, tokenizer, dtype):
        self.f = open(path, "wb")
        self.tokenizer, self.dtype = tokenizer, dtype
        self.tokens = 0
        self._mark = None

    def write(self, pieces):
        ids = self.tokenizer.encode_stream(pieces)
        self.f.write(ids.astype(self.dtype).tobytes())
        self.tokens += len(ids)

    def mark(self):
        self._mark = (self.f.tell(), self.tokens)

    def commit(self):
        self._mark = None

    def rollback(self):
        pos, self.tokens = self._mark
        self.f.truncate(pos)
        self.f.seek(pos)
        self._mark = None

    def close(self):
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()


def token_dtype(vocab_size):
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise ValueError(f"vocab_size {vocab_size} does not fit in uint32")


# ----------------------------------------------------------------------------- the passes

class _Run:
    """State shared by the passes: units, skipped files, statistics, progress bars."""

    def __init__(self, units, skipped, quiet):
        self.units = units
        self.skipped = dict(skipped)
        self.quiet = quiet

    def read(self, units, desc, on_piece, on_file_done, on_file_failed, stats=None):
        """Feed every piece of every unit to on_piece; a unit that raises a CORRUPT error is skipped.
        on_piece may raise _Enough to end the pass (the unit being read counts as done)."""
        bar = tqdm(total=len(units), desc=desc, unit="file", disable=self.quiet, mininterval=1.0,
                   file=sys.stderr, dynamic_ncols=True)
        start, nbytes = time.perf_counter(), 0
        outer_tars = {}
        try:
            for unit in units:
                if unit.name in self.skipped:
                    bar.update(1)
                    continue
                docs = bad_docs = unit_bytes = 0
                doc_bad = False
                try:
                    for text, end, bad in unit.documents(outer_tars):
                        on_piece(unit, text, end)
                        unit_bytes += len(text)
                        doc_bad |= bad
                        if end:
                            docs += 1
                            bad_docs += doc_bad
                            doc_bad = False
                except _Enough:
                    on_file_done(unit)
                    bar.update(1)
                    break
                except CORRUPT as e:
                    on_file_failed(unit)
                    self.skipped[unit.name] = f"{type(e).__name__}: {e}"
                    _warn(f"skipping {unit.name} (corrupt or truncated: {e})")
                else:
                    on_file_done(unit)
                    if stats is not None:
                        stats["documents"] += docs
                        stats["non_utf8_documents"] += bad_docs
                        stats["text_chars"] += unit_bytes
                nbytes += unit_bytes
                bar.update(1)
                bar.set_postfix_str(f"{nbytes / 1e6 / max(time.perf_counter() - start, 1e-9):.1f} MB/s text",
                                    refresh=False)
        finally:
            bar.close()
            for t in outer_tars.values():
                t.close()
        return nbytes, time.perf_counter() - start


def build_tokenizer(run, train_units, args):
    """Pass 1: the character vocabulary from counts over all files, or a BPE trained on a train sample."""
    if args.tokenizer == "char":
        counts = _CharCounts()
        batcher = _Batcher(counts)
        run.read(run.units, "counting characters", lambda u, t, e: batcher.add(t, e),
                 lambda u: batcher.commit(), lambda u: batcher.rollback())
        batcher.flush()
        tok = CharTokenizer.from_counts(counts.counter(), min_count=args.min_char_count,
                                        keep=CharTokenizer.separator)
        return tok, {"distinct_characters": int(np.count_nonzero(counts.total))}
    # BPE: whole documents from train files in a seeded random order, until --bpe_sample_bytes
    order = np.random.default_rng(args.seed + 1).permutation(len(train_units))
    shuffled = [train_units[i] for i in order]
    sample, current, size = [], [], [0]
    def on_piece(unit, text, end):
        current.append(text)
        size[0] += len(text)
        if size[0] >= args.bpe_sample_bytes:
            raise _Enough  # also ends a single huge file early, so the sample never exceeds the budget by much
    def done(unit):
        sample.extend(current)
        current.clear()
    def failed(unit):
        size[0] -= sum(map(len, current))
        current.clear()
    run.read(shuffled, "sampling for BPE", on_piece, done, failed)
    if not sample:
        raise PrepareError("no text could be read for training the BPE tokenizer")
    t0 = time.perf_counter()
    tok = BPETokenizer.train(sample, args.vocab_size)
    info = {"bpe_sample_chars": size[0], "bpe_train_seconds": round(time.perf_counter() - t0, 3)}
    if not args.quiet:
        print(f"trained BPE: {tok.vocab_size} tokens from {size[0] / 1e6:.1f} MB in "
              f"{info['bpe_train_seconds']:.1f} s", file=sys.stderr)
    return tok, info


def prepare(corpus, src, out, tokenizer="char", vocab_size=8192, min_char_count=1, bpe_sample_bytes=20_000_000,
            val_fraction=0.1, seed=1337, force=False, quiet=False):
    """Prepare `src` into the dataset directory `out`; returns its meta dict. Raises PrepareError on bad input."""
    args = argparse.Namespace(tokenizer=tokenizer, vocab_size=vocab_size, min_char_count=min_char_count,
                              bpe_sample_bytes=bpe_sample_bytes, seed=seed, quiet=quiet)
    if corpus not in ("openwebtext", "text"):
        raise PrepareError(f"corpus must be 'openwebtext' or 'text', got {corpus!r}")
    if tokenizer not in ("char", "bpe"):
        raise PrepareError(f"--tokenizer must be 'char' or 'bpe', got {tokenizer!r}")
    if tokenizer == "bpe" and not 257 <= vocab_size <= 2**32:
        raise PrepareError(f"--vocab_size must be at least 257 (256 bytes + end-of-text), got {vocab_size}")
    if min_char_count < 1:
        raise PrepareError(f"--min_char_count must be >= 1, got {min_char_count}")
    if not 0 <= val_fraction < 1:
        raise PrepareError(f"--val_fraction must be in [0, 1), got {val_fraction}")
    if bpe_sample_bytes < 1:
        raise PrepareError(f"--bpe_sample_bytes must be positive, got {bpe_sample_bytes}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PrepareError(f"--out {str(out)!r} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise PrepareError(f"--out {str(out)!r} exists and is not empty; pass --force to replace it")
    if Path(src).is_file() and Path(src).stat().st_size == 0:
        raise PrepareError(f"--src {str(src)!r} is empty")

    units, skipped = find_units(corpus, src)
    val_names = split_units([u.name for u in units], val_fraction, seed) if len(units) > 1 else set()
    split_method = "by_file" if len(units) > 1 else "tail"
    train_units = [u for u in units if u.name not in val_names]
    run = _Run(units, skipped, quiet)
    tok, tok_info = build_tokenizer(run, train_units, args)
    dtype = token_dtype(tok.vocab_size)

    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        sinks = {s: _TokenFile(tmp / f"{s}.bin", tok, dtype) for s in ("train", "val")}
        batchers = {s: _Batcher(sinks[s]) for s in sinks}
        split_of = {u.name: ("val" if u.name in val_names else "train") for u in units}
        stats = Counter(documents=0, non_utf8_documents=0, text_chars=0)
        per_split_docs = Counter()
        def on_piece(unit, text, end):
            batchers[split_of[unit.name]].add(text, end)
            per_split_docs[split_of[unit.name]] += end
        def failed(unit):
            batchers[split_of[unit.name]].rollback()
        t0 = time.perf_counter()
        nbytes, _ = run.read(units, "encoding", on_piece, lambda u: batchers[split_of[u.name]].commit(),
                             failed, stats=stats)
        for s in batchers:
            batchers[s].flush()
            sinks[s].close()
        seconds = time.perf_counter() - t0
        if sinks["train"].tokens == 0:
            raise PrepareError(f"no text could be read from {str(src)!r} ({len(run.skipped)} file(s) skipped)")
        counts = {"train_tokens": sinks["train"].tokens, "val_tokens": sinks["val"].tokens}
        if split_method == "tail":
            counts = _split_tail(tmp, dtype, counts["train_tokens"], val_fraction)
        read_ok = [u.name for u in units if u.name not in run.skipped]
        meta = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "corpus": corpus,
            "src": str(Path(src).resolve()), "tokenizer": tok.to_dict(), "vocab_size": tok.vocab_size,
            "dtype": dtype.name, "separator": tok.separator,
            "counts": {**counts, "train_documents": per_split_docs["train"], "val_documents": per_split_docs["val"],
                       "documents": stats["documents"], "text_chars": stats["text_chars"]},
            "non_utf8_documents": stats["non_utf8_documents"],
            "split": {"method": split_method, "seed": seed, "val_fraction": val_fraction,
                      "train": [n for n in read_ok if split_of[n] == "train"],
                      "val": [n for n in read_ok if split_of[n] == "val"]},
            "skipped": [{"name": n, "reason": r} for n, r in run.skipped.items()],
            "tokenizer_info": tok_info,
            "encode_seconds": round(seconds, 3),
        }
        _write_json(tmp / "meta.json", meta)  # last file: its presence marks the dataset whole
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not quiet:
        _summary(meta, nbytes, seconds, out)
    return meta


def _remove_stale_temps(out):
    """Delete temporary folders of earlier runs for the same --out that were killed (their process is gone)."""
    for stale in out.parent.glob(f".{out.name}.tmp-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            shutil.rmtree(stale, ignore_errors=True)
        except PermissionError:  # it exists, under another user
            pass


def _split_tail(tmp, dtype, n, val_fraction):
    """Single source file: move the last val_fraction of train.bin's tokens into val.bin."""
    n_val = int(round(n * val_fraction)) if n > 1 else 0
    n_val = min(n_val, n - 1)
    n_train = n - n_val
    if n_val:
        src = np.memmap(tmp / "train.bin", dtype=dtype, mode="r")
        with open(tmp / "val.bin", "wb") as f:
            for i in range(n_train, n, 1 << 24):
                f.write(src[i:min(i + (1 << 24), n)].tobytes())
            f.flush()
            os.fsync(f.fileno())
        del src
        with open(tmp / "train.bin", "r+b") as f:
            f.truncate(n_train * dtype.itemsize)
    return {"train_tokens": n_train, "val_tokens": n_val}


def _write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def _move_into_place(tmp, out):
    """Rename the finished temporary directory to `out`; an old `out` (--force) is removed only afterwards."""
    old = None
    if out.exists() and any(out.iterdir()):
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.rename(out, old)
    os.replace(tmp, out)  # replaces an empty directory atomically
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _summary(meta, nbytes, seconds, out):
    c = meta["counts"]
    print(f"prepared {out}: {c['train_tokens']:,} train + {c['val_tokens']:,} val tokens ({meta['dtype']}), "
          f"vocab {meta['vocab_size']}, {c['documents']:,} documents, "
          f"{len(meta['split']['train'])} train / {len(meta['split']['val'])} val files "
          f"(split {meta['split']['method']}); encoding pass {nbytes / 1e6:.1f} MB text in {seconds:.1f} s "
          f"({nbytes / 1e6 / max(seconds, 1e-9):.1f} MB/s)", file=sys.stderr)
    if meta["non_utf8_documents"]:
        print(f"{meta['non_utf8_documents']} document(s) were not valid UTF-8 and were decoded with U+FFFD",
              file=sys.stderr)
    if meta["skipped"]:
        print(f"skipped {len(meta['skipped'])} file(s):", file=sys.stderr)
        for s in meta["skipped"]:
            print(f"  {s['name']}: {s['reason']}", file=sys.stderr)


# ----------------------------------------------------------------------------- reading a prepared dataset

def is_prepared(path):
    """True if `path` is a directory holding a meta.json (load_prepared then checks that it is whole)."""
    p = Path(path)
    return p.is_dir() and (p / "meta.json").is_file()


def load_prepared(path):
    """(tokenizer, train_tokens, val_tokens, meta) of a prepared dataset; tokens are 1-D read-only memmaps.

    Raises DatasetError (a ValueError) naming the problem when meta.json is missing or unreadable, or does
    not match train.bin / val.bin. An empty split comes back as an empty read-only array.
    """
    p = Path(path)
    hint = "re-run `python -m train.prepare ... --out DIR --force`"
    if not p.is_dir():
        raise DatasetError(f"prepared dataset {str(p)!r}: not a directory")
    try:
        meta = json.loads((p / "meta.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"prepared dataset {str(p)!r}: meta.json is missing (preparation did not finish?); "
                           f"{hint}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"prepared dataset {str(p)!r}: meta.json is unreadable ({e}); {hint}") from None
    try:
        if meta.get("format") != FORMAT:
            raise ValueError(f"format is {meta.get('format')!r}, expected {FORMAT!r}")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format_version {meta.get('format_version')!r}, this code reads {FORMAT_VERSION}")
        dtype = np.dtype(meta["dtype"])
        if dtype not in (np.uint8, np.uint16, np.uint32):
            raise ValueError(f"dtype {dtype} is not uint8/uint16/uint32")
        tok = tokenizer_from_dict(meta["tokenizer"])
        if tok.vocab_size > np.iinfo(dtype).max + 1:
            raise ValueError(f"vocabulary of {tok.vocab_size} does not fit dtype {dtype}")
        counts = {s: meta["counts"][f"{s}_tokens"] for s in ("train", "val")}
        if not all(isinstance(n, int) and n >= 0 for n in counts.values()):
            raise ValueError(f"token counts {counts} are not non-negative integers")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise DatasetError(f"prepared dataset {str(p)!r}: meta.json is corrupt ({e}); {hint}") from None
    arrays = []
    for s in ("train", "val"):
        f = p / f"{s}.bin"
        want = counts[s] * dtype.itemsize
        have = f.stat().st_size if f.is_file() else None
        if have != want:
            got = "missing" if have is None else f"{have} bytes"
            raise DatasetError(f"prepared dataset {str(p)!r}: {s}.bin is {got}, but meta.json says {counts[s]} "
                               f"{dtype} tokens = {want} bytes; {hint}")
        if counts[s] == 0:
            a = np.zeros(0, dtype=dtype)
            a.flags.writeable = False
        else:
            a = np.memmap(f, dtype=dtype, mode="r", shape=(counts[s],))
        arrays.append(a)
    return tok, arrays[0], arrays[1], meta


# ----------------------------------------------------------------------------- CLI

def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m train.prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", choices=["openwebtext", "text"],
                        help="openwebtext: .xz / .tar archives; text: a UTF-8 file or a folder of .txt")
    parser.add_argument("--src", required=True, help="the corpus: a directory (or a single file)")
    parser.add_argument("--out", required=True, help="directory to create with train.bin, val.bin, meta.json")
    parser.add_argument("--tokenizer", choices=["char", "bpe"], default="char")
    parser.add_argument("--vocab_size", type=int, default=8192, help="BPE: total vocabulary, incl. 256 bytes + EOT")
    parser.add_argument("--bpe_sample_bytes", type=int, default=20_000_000, help="BPE: text to train on")
    parser.add_argument("--min_char_count", type=int, default=None,
                        help="char: rarer characters become one unknown token (default: 1 for text, "
                             "1000 for openwebtext)")
    parser.add_argument("--val_fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    args = parser.parse_args(argv)
    if args.min_char_count is None:
        args.min_char_count = 1000 if args.corpus == "openwebtext" else 1
    try:
        prepare(args.corpus, args.src, args.out, tokenizer=args.tokenizer, vocab_size=args.vocab_size,
                min_char_count=args.min_char_count, bpe_sample_bytes=args.bpe_sample_bytes,
                val_fraction=args.val_fraction, seed=args.seed, force=args.force, quiet=args.quiet)
    except PrepareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was written to --out", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
