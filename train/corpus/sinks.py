"""Where encoded text goes: TokenFile appends the ids of batches of (text, ends_document) pieces to a file.

Text is handed over in batches of about BATCH_CHARS characters: encoding many documents at once is much
faster than one at a time, and the batch bounds the memory a worker needs whatever the file.
"""
import os

BATCH_CHARS = 4 << 20      # text is encoded in batches of about this many characters


class WriteFailed(Exception):
    """Writing the tokens failed (a full disk, ...): carries the OSError, so that it is never mistaken for a
    corrupt source file (reading errors are OSErrors too)."""

    def __init__(self, error):
        super().__init__(str(error))
        self.error = error


class TokenFile:
    """Encodes batches and appends the ids, as `dtype`, to the file at `path` (created)."""

    def __init__(self, path, tokenizer, dtype):
        self.f = open(path, "wb")
        self.tokenizer, self.dtype = tokenizer, dtype
        self.tokens = 0

    def write(self, pieces):
        ids = self.tokenizer.encode_stream(pieces).astype(self.dtype)
        try:
            self.f.write(ids.tobytes())
        except OSError as e:
            raise WriteFailed(e) from None
        self.tokens += len(ids)

    def close(self):
        if not self.f.closed:
            try:
                self.f.flush()
            finally:
                self.f.close()
