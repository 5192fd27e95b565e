"""What preparation does with one source file (a unit), in a worker process or in the main process.

Each function reads one unit from start to end and returns a UnitResult: what it found (documents,
characters, tokens) or why it had to skip the file. A unit is all or nothing: a file that turns out
corrupt halfway contributes nothing (its counts are dropped, its part file deleted), so the output does
not depend on which worker read what, or in which order they finished.
"""
import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from train.corpus.readers import CORRUPT, NotText
from train.corpus import sinks
from train.corpus.sinks import TokenFile, WriteFailed
from train import bpe_train
from train.tokenizers import tokenizer_from_dict

_state = {"tokenizer": None, "dtype": None, "outer_tars": {}}  # per process: set by init()


def init(tokenizer=None, dtype=None):
    """Run once per worker: the tokenizer (its dict) and token dtype (its name) that encode_unit uses."""
    close()
    _state["tokenizer"] = None if tokenizer is None else tokenizer_from_dict(tokenizer)
    _state["dtype"] = None if dtype is None else np.dtype(dtype)


def close():
    """Close the outer tars kept open between their members."""
    for t in _state["outer_tars"].values():
        t.close()
    _state["outer_tars"].clear()


@dataclass
class UnitResult:
    name: str
    documents: int = 0
    non_utf8_documents: int = 0
    chars: int = 0           # characters of text read
    tokens: int = 0
    reason: str = None       # why the unit was skipped (None: it was read whole)
    warning: str = None      # the line that says so
    notes: list = field(default_factory=list)  # other lines for the user (an empty archive)
    counts: object = None    # count_chars: characters by code point; count_pieces: a Counter of pre-tokens
    peak_rss_mb: float = 0.0  # the peak memory of the process that read it, so far

    @property
    def ok(self):
        return self.reason is None


def _read(unit, on_batch, budget=None):
    """Feed the unit's (text, ends_document) pieces to on_batch in batches of about sinks.BATCH_CHARS; stop once
    `budget` characters were read. A corrupt or non-text file fills in the result's reason instead."""
    result = UnitResult(unit.name)
    batch, size, bad_doc = [], 0, False
    try:
        for text, end, bad in unit.documents(_state["outer_tars"], result.notes.append):
            batch.append((text, end))
            size += len(text)
            result.chars += len(text)
            bad_doc |= bad
            if end:
                result.documents += 1
                result.non_utf8_documents += bad_doc
                bad_doc = False
            if size >= sinks.BATCH_CHARS:
                on_batch(batch)
                batch, size = [], 0
            if budget is not None and result.chars >= budget:
                break
        if batch:
            on_batch(batch)
    except WriteFailed as e:
        raise e.error from None  # writing failed (a full disk): not the source file's fault
    except NotText as e:
        result.reason, result.warning = str(e), f"skipping {unit.name}: {e}"
    except CORRUPT as e:
        result.reason = f"{type(e).__name__}: {e}"
        result.warning = f"skipping {unit.name} (corrupt or truncated: {e})"
    result.peak_rss_mb = peak_rss_mb()
    return result


def peak_rss_mb():
    """This process's peak resident memory (VmHWM) in MB; 0 where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def add_counts(total, counts):
    """total + counts for two bincounts of different lengths, added into the longer one (which is returned)."""
    if len(counts) > len(total):
        total, counts = counts, total
    total[:len(counts)] += counts
    return total


def count_chars(unit):
    """Pass 1 of a char tokenizer: how often each code point occurs in the unit."""
    total = [np.zeros(0, dtype=np.int64)]
    def on_batch(batch):
        text = "".join(t for t, _ in batch)
        total[0] = add_counts(total[0], np.bincount(np.frombuffer(text.encode("utf-32-le", "surrogatepass"),
                                                                  dtype=np.uint32)))
    result = _read(unit, on_batch)
    result.counts = total[0] if result.ok else None
    return result


def count_pieces(unit, budget, max_piece):
    """The BPE sample: a Counter of the unit's pre-tokens, over its first `budget` characters or more
    (reading stops after the piece that reaches the budget)."""
    counts = Counter()
    result = _read(unit, lambda batch: counts.update(bpe_train.count_pieces([t for t, _ in batch], max_piece)), budget)
    result.counts = counts if result.ok else None
    return result


def encode_unit(unit, part):
    """Pass 2: the unit's tokens into the file `part` (deleted again if the unit turns out corrupt)."""
    sink = TokenFile(part, _state["tokenizer"], _state["dtype"])
    try:
        result = _read(unit, sink.write)
    finally:
        sink.close()
    if result.ok:
        result.tokens = sink.tokens
    else:
        os.unlink(part)
    return result
