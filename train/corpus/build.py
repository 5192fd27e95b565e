"""The preparation pipeline: `prepare(corpus, src, out, ...)` turns a corpus into a dataset directory.

Each source file (an `.xz`, an `.xz` member of an outer `.tar` subset, or a `.txt` for `text`) is one
unit. Units are split train/val by file with a seeded shuffle, so the same seed always puts the same
files in the same split. A single source file is split by its tail instead (the last val_fraction of its
tokens). Preparation runs two passes:

1. the tokenizer: character counts over every unit (char), or the pre-token counts of a seeded sample of
   the train units and BPE training on them (bpe);
2. encoding: every unit into its own part file, appended in unit order to train.bin or val.bin.

Counting and encoding run on `workers` processes, one unit at a time each (work.py). A unit is read whole
or not at all, and results are taken in unit order, so the dataset is the same, byte for byte, whatever
the number of workers. A unit that turns out corrupt, truncated or not text is skipped with a warning.
"""
import json
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tensorlite.serialization import atomic_write
from train.cli import os_error_line
from train.corpus import work
from train.corpus.dataset import (FORMAT, FORMAT_VERSION, move_into_place, split_tail, staging_folder,
                                  token_dtype, write_meta)
from train.corpus.pool import Pool, WorkerDied, default_workers, start_server
from train.corpus.readers import PrepareError, find_units, split_units, warn
from train.pretokenize import MAX_PIECE_CHARS
from train.tokenizers import BPETokenizer, CharTokenizer


class _Run:
    """What the passes share: the units, the files skipped so far, the number of workers, their peak memory."""

    def __init__(self, units, skipped, quiet, workers):
        self.units = units
        self.skipped = {name: {"reason": reason, "bytes": lost} for name, reason, lost in skipped}
        self.quiet, self.workers = quiet, workers
        self.worker_peak_mb = 0.0  # the main process reads its own peak at the end
        self.told = set()  # notes already printed (each pass reads the file again)

    def each(self, units, desc, fn, args, init=(), workers=None, total=None, step=None):
        """Yield (unit, result of fn(*args(unit))) for every unit not skipped yet, in order, the work spread
        over the workers. A unit that fails is recorded in `skipped` and warned about (and still yielded).
        The progress bar counts the units' compressed bytes, or `step(result)` up to `total`."""
        todo = [u for u in units if u.name not in self.skipped]
        n_workers = max(1, min(self.workers if workers is None else workers, len(todo)))
        total = sum(u.size for u in todo) if total is None else total
        bar = tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, disable=self.quiet,
                   mininterval=1.0, file=sys.stderr, dynamic_ncols=True)
        start, docs, chars = time.perf_counter(), 0, 0
        try:
            with Pool(n_workers, work.init, init) as pool:
                for unit, result in zip(todo, pool.imap(fn, map(args, todo))):
                    for line in result.notes:
                        if line not in self.told:
                            self.told.add(line)
                            warn(line)
                    if not result.ok:
                        self.skipped[unit.name] = {"reason": result.reason, "bytes": unit.size}
                        warn(result.warning)
                    if n_workers > 1:
                        self.worker_peak_mb = max(self.worker_peak_mb, result.peak_rss_mb)
                    yield unit, result
                    docs, chars = docs + result.documents * result.ok, chars + result.chars * result.ok
                    bar.update(unit.size if step is None else step(result))
                    bar.set_postfix_str(f"{docs:,} docs, {chars / 1e6 / (time.perf_counter() - start):.1f} MB/s "
                                        "text", refresh=False)
        finally:
            bar.close()
            work.close()


def _char_tokenizer(run, min_char_count):
    """Pass 1 for `char`: counts over every file; characters rarer than min_char_count become unknown."""
    total = np.zeros(0, dtype=np.int64)
    for _, result in run.each(run.units, "counting characters", work.count_chars, lambda u: (u,)):
        if result.ok:
            total = work.add_counts(total, result.counts)
    counter = {chr(c): int(total[c]) for c in np.flatnonzero(total)}
    tok = CharTokenizer.from_counts(counter, min_count=min_char_count, keep=CharTokenizer.separator)
    return tok, {"distinct_characters": len(counter)}


def _bpe_tokenizer(run, train_units, vocab_size, sample_bytes, seed):
    """Pass 1 for `bpe`: the pre-tokens of whole train files in a seeded random order, until sample_bytes
    characters (the file that reaches it is read only that far), then training on their counts. The sample
    is read in the main process (it is small), and only its counts are kept, never its text."""
    order = np.random.default_rng(seed + 1).permutation(len(train_units))
    shuffled = [train_units[i] for i in order]
    counts, size = Counter(), [0]
    for _, result in run.each(shuffled, "sampling for BPE", work.count_pieces,
                              lambda u: (u, sample_bytes - size[0], MAX_PIECE_CHARS), workers=1,
                              total=sample_bytes, step=lambda r: r.chars * r.ok):
        if result.ok:
            counts.update(result.counts)
            size[0] += result.chars
        if size[0] >= sample_bytes:
            break
    if not counts:
        raise PrepareError("no text could be read for training the BPE tokenizer")
    t0 = time.perf_counter()
    tok = BPETokenizer.train_from_counts(counts, vocab_size, max_piece=MAX_PIECE_CHARS)
    seconds = time.perf_counter() - t0
    if not run.quiet:
        print(f"trained BPE: {tok.vocab_size} tokens from {size[0] / 1e6:.1f} MB in {seconds:.1f} s",
              file=sys.stderr)
    return tok, {"bpe_sample_chars": size[0]}, seconds


def _check_arguments(corpus, src, out, tokenizer, vocab_size, min_char_count, bpe_sample_bytes, val_fraction,
                     force, workers):
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
    if not (isinstance(workers, int) and workers >= 1):
        raise PrepareError(f"--workers must be a positive integer, got {workers}")
    if out.exists() and not out.is_dir():
        raise PrepareError(f"--out {str(out)!r} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise PrepareError(f"--out {str(out)!r} exists and is not empty; pass --force to replace it")
    if Path(src).is_file() and Path(src).stat().st_size == 0:
        raise PrepareError(f"--src {str(src)!r} is empty")


def prepare(corpus, src, out, tokenizer="char", vocab_size=8192, min_char_count=1, bpe_sample_bytes=20_000_000,
            val_fraction=0.1, seed=1337, force=False, quiet=False, workers=None):
    """Prepare `src` into the dataset directory `out`; returns its meta dict. Raises PrepareError on bad input.
    workers: processes that read and encode (default: one per CPU core); the output does not depend on it."""
    out = Path(out)
    workers = default_workers() if workers is None else workers
    _check_arguments(corpus, src, out, tokenizer, vocab_size, min_char_count, bpe_sample_bytes, val_fraction,
                     force, workers)
    t_start = time.perf_counter()
    units, skipped = find_units(corpus, src)
    val_names = split_units([u.name for u in units], val_fraction, seed) if len(units) > 1 else set()
    split_method = "by_file" if len(units) > 1 else "tail"
    train_units = [u for u in units if u.name not in val_names]
    run = _Run(units, skipped, quiet, workers)
    if workers > 1 and len(units) > 1:
        start_server()  # its imports overlap with the first pass
    timings = {"workers": max(1, min(workers, len(units)))}  # the workers a pass can use: one per unit at most
    try:
        if tokenizer == "char":
            tok, tok_info = _char_tokenizer(run, min_char_count)
        else:
            tok, tok_info, timings["bpe_train_seconds"] = _bpe_tokenizer(run, train_units, vocab_size,
                                                                         bpe_sample_bytes, seed)
        timings["tokenizer_seconds"] = time.perf_counter() - t_start
        dtype = token_dtype(tok.vocab_size)
        meta = _encode(corpus, src, out, tok, tok_info, dtype, units, val_names, split_method, run, val_fraction,
                       seed, timings, t_start)
    except WorkerDied as exc:
        raise PrepareError(f"{exc}: run again with fewer --workers; --out is unchanged") from None
    except MemoryError:
        raise PrepareError("out of memory while preparing: run again with fewer --workers (each needs about "
                           "100-200 MB); --out is unchanged") from None
    except OSError as exc:  # staging_folder removed its folder: --out is as it was
        exc.filename = exc.filename or str(out)
        need = sum(u.size for u in units) * 4
        raise PrepareError(f"{os_error_line(exc, 'write', '--out')} (the tokens need up to about "
                           f"{need / 2**20:,.1f} MiB; --out is unchanged)") from None
    if not quiet:
        _summary(meta, timings, out)
    return meta


def _encode(corpus, src, out, tok, tok_info, dtype, units, val_names, split_method, run, val_fraction, seed,
            timings, t_start):
    """Pass 2 into a staging folder, then meta.json, timings.json and the rename into place; returns meta."""
    with staging_folder(out) as tmp:
        parts = tmp / "parts"
        parts.mkdir()
        number = {u.name: i for i, u in enumerate(units)}
        def part_of(unit):
            return parts / f"{number[unit.name]:08d}.bin"
        split_of = {u.name: ("val" if u.name in val_names else "train") for u in units}
        files = {s: open(tmp / f"{s}.bin", "wb") for s in ("train", "val")}
        tokens, documents, stats = Counter(), Counter(), Counter()
        t0 = time.perf_counter()
        try:
            for unit, result in run.each(units, "encoding", work.encode_unit, lambda u: (u, part_of(u)),
                                         init=(tok.to_dict(), dtype.name)):
                if not result.ok:
                    continue
                split = split_of[unit.name]
                with open(part_of(unit), "rb") as f:
                    shutil.copyfileobj(f, files[split], 1 << 20)
                os.unlink(part_of(unit))
                tokens[split] += result.tokens
                documents[split] += result.documents
                stats.update(documents=result.documents, non_utf8_documents=result.non_utf8_documents,
                             text_chars=result.chars)
            for f in files.values():
                f.flush()
                os.fsync(f.fileno())
        finally:
            for f in files.values():
                f.close()
        parts.rmdir()
        timings["encode_seconds"] = time.perf_counter() - t0
        timings["encode_MB_per_s"] = stats["text_chars"] / 1e6 / max(timings["encode_seconds"], 1e-9)
        if tokens["train"] == 0:
            raise PrepareError(f"no text could be read from {str(src)!r} ({len(run.skipped)} file(s) skipped)")
        counts = {"train_tokens": tokens["train"], "val_tokens": tokens["val"]}
        if split_method == "tail":
            counts = split_tail(tmp, dtype, counts["train_tokens"], val_fraction)
        read_ok = [u.name for u in units if u.name not in run.skipped]
        meta = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "corpus": corpus,
            "src": str(Path(src).resolve()), "tokenizer": tok.to_dict(), "vocab_size": tok.vocab_size,
            "dtype": dtype.name, "separator": tok.separator,
            "counts": {**counts, "train_documents": documents["train"], "val_documents": documents["val"],
                       "documents": stats["documents"], "text_chars": stats["text_chars"]},
            "non_utf8_documents": stats["non_utf8_documents"],
            "split": {"method": split_method, "seed": seed, "val_fraction": val_fraction,
                      "train": [n for n in read_ok if split_of[n] == "train"],
                      "val": [n for n in read_ok if split_of[n] == "val"]},
            "skipped": [{"name": n, **s} for n, s in run.skipped.items()],
            "tokenizer_info": tok_info,
        }
        timings.update(total_seconds=time.perf_counter() - t_start,
                       peak_rss_MB={"main": round(work.peak_rss_mb(), 1), "worker": round(run.worker_peak_mb, 1)})
        timings = {k: round(v, 3) if isinstance(v, float) else v for k, v in timings.items()}
        atomic_write(tmp / "timings.json", lambda f: json.dump(timings, f, indent=1), mode="w")
        write_meta(tmp, meta)  # last: it marks the dataset whole
        move_into_place(tmp, out)
    return meta


def _summary(meta, timings, out):
    c = meta["counts"]
    print(f"prepared {out}: {c['train_tokens']:,} train + {c['val_tokens']:,} val tokens ({meta['dtype']}), "
          f"vocab {meta['vocab_size']}, {c['documents']:,} documents, "
          f"{len(meta['split']['train'])} train / {len(meta['split']['val'])} val files "
          f"(split {meta['split']['method']}); encoding {c['text_chars'] / 1e6:.1f} MB of text took "
          f"{timings['encode_seconds']:.1f} s ({timings['encode_MB_per_s']:.1f} MB/s, {timings['workers']} "
          f"worker{'s' * (timings['workers'] > 1)}), {timings['total_seconds']:.1f} s in all", file=sys.stderr)
    if meta["non_utf8_documents"]:
        print(f"{meta['non_utf8_documents']} document(s) were not valid UTF-8 and were decoded with U+FFFD",
              file=sys.stderr)
    if meta["skipped"]:
        lost = sum(s["bytes"] for s in meta["skipped"])
        size = f"{lost / 1e6:,.1f} MB" if lost >= 1e5 else f"{lost:,} bytes"
        print(f"skipped {len(meta['skipped'])} file(s) ({size} on disk, lost to damage or not text):",
              file=sys.stderr)
        for s in meta["skipped"]:
            print(f"  {s['name']}: {s['reason']}", file=sys.stderr)
