"""Where the read text goes: a Batcher gathers document pieces into big batches (bulk encoding is much
faster) and hands them to a sink, CharCounts (pass 1 of a char tokenizer) or TokenFile (pass 2).

A sink has write(pieces), and mark / commit / rollback so that a source file that fails midway leaves
no trace, even after part of it was handed over. Pieces are (text, is_last_piece_of_a_document).
"""
import os

import numpy as np

BATCH_BYTES = 8 << 20      # text is handed to a sink in batches of about this size


class Batcher:
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


class CharCounts:
    """Sink that counts characters (one bincount per batch over the code points)."""

    def __init__(self):
        self.total = np.zeros(0, dtype=np.int64)
        self.pending = None   # counts since mark(), until commit() adds them to total

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
        """{character: count} of everything committed."""
        return {chr(c): int(self.total[c]) for c in np.flatnonzero(self.total)}


class TokenFile:
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
