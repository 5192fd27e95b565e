"""The preparation pipeline: `prepare(corpus, src, out, ...)` turns a corpus into a dataset directory.

Each source file (an `.xz`, or a `.txt` for `text`) is one unit. Units are split train/val by file with a
seeded shuffle, so the same seed always puts the same files in the same split. A single source file is
split by its tail instead (the last val_fraction of its tokens). Preparation runs two passes: the first
builds the tokenizer (character counts over everything, or a BPE trained on a sample of the train files),
the second encodes. A source file that turns out corrupt or truncated is skipped with a warning, and what
it had already contributed is rolled back.
"""
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from train.corpus.dataset import (FORMAT, FORMAT_VERSION, move_into_place, split_tail, staging_folder,
                                  token_dtype, write_meta)
from train.corpus.readers import CORRUPT, NotText, PrepareError, find_units, split_units, warn
from train.cli import os_error_line
from train.corpus.sinks import Batcher, CharCounts, TokenFile
from train.tokenizers import BPETokenizer, CharTokenizer


class _Enough(Exception):
    """Raised by a reader callback that has all the text it wants (the BPE sample)."""


class _Run:
    """State shared by the passes: units, skipped files, progress bars."""

    def __init__(self, units, skipped, quiet):
        self.units = units
        self.skipped = dict(skipped)
        self.quiet = quiet

    def read(self, units, desc, on_piece, on_file_done, on_file_failed, stats=None):
        """Feed every piece of every unit to on_piece; a unit that raises a CORRUPT error is skipped. Returns
        the characters read. on_piece may raise _Enough to end the pass (the unit being read counts as done)."""
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
                except NotText as e:
                    on_file_failed(unit)
                    self.skipped[unit.name] = str(e)
                    warn(f"skipping {unit.name}: {e}")
                except CORRUPT as e:
                    on_file_failed(unit)
                    self.skipped[unit.name] = f"{type(e).__name__}: {e}"
                    warn(f"skipping {unit.name} (corrupt or truncated: {e})")
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
        return nbytes


def _char_tokenizer(run, min_char_count):
    """Pass 1 for `char`: counts over every file; characters rarer than min_char_count become unknown."""
    counts = CharCounts()
    batcher = Batcher(counts)
    run.read(run.units, "counting characters", lambda u, t, e: batcher.add(t, e),
             lambda u: batcher.commit(), lambda u: batcher.rollback())
    batcher.flush()
    tok = CharTokenizer.from_counts(counts.counter(), min_count=min_char_count, keep=CharTokenizer.separator)
    return tok, {"distinct_characters": int(np.count_nonzero(counts.total))}


def _bpe_tokenizer(run, train_units, vocab_size, sample_bytes, seed):
    """Pass 1 for `bpe`: whole documents from train files in a seeded random order, until sample_bytes."""
    order = np.random.default_rng(seed + 1).permutation(len(train_units))
    shuffled = [train_units[i] for i in order]
    sample, current, size = [], [], [0]
    def on_piece(unit, text, end):
        current.append(text)
        size[0] += len(text)
        if size[0] >= sample_bytes:
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
    tok = BPETokenizer.train(sample, vocab_size)
    info = {"bpe_sample_chars": size[0], "bpe_train_seconds": round(time.perf_counter() - t0, 3)}
    if not run.quiet:
        print(f"trained BPE: {tok.vocab_size} tokens from {size[0] / 1e6:.1f} MB in "
              f"{info['bpe_train_seconds']:.1f} s", file=sys.stderr)
    return tok, info


def _check_arguments(corpus, src, out, tokenizer, vocab_size, min_char_count, bpe_sample_bytes, val_fraction,
                     force):
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
    if out.exists() and not out.is_dir():
        raise PrepareError(f"--out {str(out)!r} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise PrepareError(f"--out {str(out)!r} exists and is not empty; pass --force to replace it")
    if Path(src).is_file() and Path(src).stat().st_size == 0:
        raise PrepareError(f"--src {str(src)!r} is empty")


def prepare(corpus, src, out, tokenizer="char", vocab_size=8192, min_char_count=1, bpe_sample_bytes=20_000_000,
            val_fraction=0.1, seed=1337, force=False, quiet=False):
    """Prepare `src` into the dataset directory `out`; returns its meta dict. Raises PrepareError on bad input."""
    out = Path(out)
    _check_arguments(corpus, src, out, tokenizer, vocab_size, min_char_count, bpe_sample_bytes, val_fraction,
                     force)
    units, skipped = find_units(corpus, src)
    val_names = split_units([u.name for u in units], val_fraction, seed) if len(units) > 1 else set()
    split_method = "by_file" if len(units) > 1 else "tail"
    train_units = [u for u in units if u.name not in val_names]
    run = _Run(units, skipped, quiet)
    if tokenizer == "char":
        tok, tok_info = _char_tokenizer(run, min_char_count)
    else:
        tok, tok_info = _bpe_tokenizer(run, train_units, vocab_size, bpe_sample_bytes, seed)
    dtype = token_dtype(tok.vocab_size)

    try:
        meta, nbytes, seconds = _encode(corpus, src, out, tok, tok_info, dtype, units, val_names, split_method,
                                        run, seed, val_fraction)
    except OSError as exc:  # staging_folder removed its folder: --out is as it was
        exc.filename = exc.filename or str(out)
        need = sum(os.path.getsize(p) for p in {u.path for u in units} if os.path.isfile(p)) * dtype.itemsize
        raise PrepareError(f"{os_error_line(exc, 'write', '--out')} (the tokens need up to about "
                           f"{need / 2**20:,.1f} MiB; --out is unchanged)") from None
    if not quiet:
        _summary(meta, nbytes, seconds, out)
    return meta


def _encode(corpus, src, out, tok, tok_info, dtype, units, val_names, split_method, run, seed, val_fraction):
    """Pass 2 into a staging folder, then meta.json and the rename into place: (meta, bytes read, seconds)."""
    with staging_folder(out) as tmp:
        # pass 2: encode every readable file into its split's .bin
        sinks = {s: TokenFile(tmp / f"{s}.bin", tok, dtype) for s in ("train", "val")}
        batchers = {s: Batcher(sinks[s]) for s in sinks}
        split_of = {u.name: ("val" if u.name in val_names else "train") for u in units}
        stats = Counter(documents=0, non_utf8_documents=0, text_chars=0)
        per_split_docs = Counter()
        def on_piece(unit, text, end):
            batchers[split_of[unit.name]].add(text, end)
            per_split_docs[split_of[unit.name]] += end
        def failed(unit):
            batchers[split_of[unit.name]].rollback()
        t0 = time.perf_counter()
        nbytes = run.read(units, "encoding", on_piece, lambda u: batchers[split_of[u.name]].commit(),
                          failed, stats=stats)
        for s in batchers:
            batchers[s].flush()
            sinks[s].close()
        seconds = time.perf_counter() - t0
        if sinks["train"].tokens == 0:
            raise PrepareError(f"no text could be read from {str(src)!r} ({len(run.skipped)} file(s) skipped)")
        counts = {"train_tokens": sinks["train"].tokens, "val_tokens": sinks["val"].tokens}
        if split_method == "tail":
            counts = split_tail(tmp, dtype, counts["train_tokens"], val_fraction)
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
        write_meta(tmp, meta)
        move_into_place(tmp, out)
    return meta, nbytes, seconds


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
