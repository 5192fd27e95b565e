"""Reading a corpus: finding its source files (units), splitting them train/val, streaming their documents.

OpenWebText comes as `.xz` files that are each an xz-compressed tar of `.txt` documents, often packed
into outer `.tar` subsets; some copies have plain `.xz` text files instead (one document each). All three
are read with the stdlib (tarfile, lzma), one document at a time and in chunks of at most CHUNK_BYTES, so
memory stays bounded whatever the corpus size.
"""
import lzma
import sys
import tarfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from train.errors import UserError

CHUNK_BYTES = 1 << 20      # documents are read in pieces of at most this many bytes (what BPE splits at once)
CORRUPT = (tarfile.TarError, lzma.LZMAError, EOFError, OSError)  # a damaged source file: skip it, go on


XZ_MAGIC = b"\xfd7zXZ\x00"   # how every .xz file starts
TEXT_SAMPLE = 1 << 16      # the bytes of a text file looked at to tell text from binary data
MAX_BAD_SHARE = 0.25       # a share of undecodable bytes above this (or any NUL byte) is binary, not text


class NotText(ValueError):
    """A file given as text holds binary data: it is skipped, with a warning naming it (the message says why)."""


class PrepareError(UserError, ValueError):
    """Bad input to preparation (a flag, or a --src without readable text): the CLI prints it as one line
    and exits with status 2."""


def warn(msg):
    """One warning line on stderr that does not break a progress bar."""
    tqdm.write(f"warning: {msg}", file=sys.stderr)


# ---------------------------------------------------------------- documents: pieces of text
def utf8_cut(data):
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


def read_document(f):
    """Yield (text, is_last_piece, had_bad_utf8) for one document read from binary file `f`, in chunks.

    An empty document yields nothing. Bytes that are not UTF-8 are decoded as U+FFFD.
    """
    carry, pending = b"", None
    while True:
        block = f.read(CHUNK_BYTES)
        data = carry + block
        cut = len(data) if not block else utf8_cut(data)
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


def is_tar(head):
    """Whether the first 512 bytes of a stream are a tar header, in any layout (POSIX, GNU or the old V7
    one, which has no "ustar" magic), or an empty tar (a zero block: the end-of-archive marker).

    Every tar header carries a checksum (bytes 148-155, octal): the sum of the header's 512 bytes with
    those eight counted as spaces. Text almost never satisfies it, so it tells a tar from text whatever
    the layout, where the magic alone missed V7 tars and read their headers into the dataset as text."""
    if len(head) < 512:
        return False
    if not any(head):
        return True  # an empty archive
    field = head[148:156].replace(b"\0", b" ").strip()
    if not field or any(c not in b"01234567" for c in field):
        return False
    return int(field, 8) == sum(head[:148]) + 8 * 32 + sum(head[156:512])


def documents_in_xz(raw, name="?", note=warn):
    """Documents of one OpenWebText `.xz`: an xz-compressed tar of text files, or xz-compressed text.
    An empty tar contributes nothing, with a note (a line passed to `note`) naming the file."""
    with lzma.open(raw) as f:
        head = f.read(512)
        f.seek(0)
        if is_tar(head) and not any(head):
            while f.read(CHUNK_BYTES):  # still read to the end: a truncated stream fails here, not silently
                pass
            note(f"{name} holds an empty tar archive: nothing taken from it")
        elif is_tar(head):
            with tarfile.open(fileobj=f, mode="r|") as tar:
                for member in tar:
                    if member.isfile():
                        yield from read_document(tar.extractfile(member))
            while f.read(CHUNK_BYTES):  # to the end of the xz stream: a truncated one fails here, not silently
                pass
        else:
            yield from read_document(f)


def check_text(sample):
    """NotText if `sample` (a file's first bytes) looks like binary data: a NUL byte (text never has one),
    or more than MAX_BAD_SHARE of its bytes outside valid UTF-8 (a Latin-1 text has a few: it is kept,
    its odd bytes read as U+FFFD)."""
    if b"\0" in sample:
        raise NotText("it holds NUL bytes: binary data, not text")
    # U+FFFD that decoding adds, not ones the text holds (a character cut at the sample's end adds at most 3)
    bad = sample.decode("utf-8", errors="replace").count("\ufffd") - \
        sample.decode("utf-8", errors="ignore").count("\ufffd")
    if sample and bad > MAX_BAD_SHARE * len(sample):
        raise NotText(f"it is not UTF-8 text ({bad} of its first {len(sample)} bytes are not): binary data?")


# ---------------------------------------------------------------- units: the source files
class Unit:
    """One source file: a top-level file, or an `.xz` member (its TarInfo) of an outer `.tar` subset.
    `size` is its size on disk (compressed), what the progress bar counts."""

    def __init__(self, name, path, member=None, kind="xz"):
        self.name, self.path, self.member, self.kind = name, path, member, kind
        self.size = member.size if member is not None else Path(path).stat().st_size

    def documents(self, outer_tars, note=warn):
        """Pieces of this file's documents; `outer_tars` ({path: open TarFile}) keeps the subset tar open
        between its members, so it is opened once rather than once per member. `note` gets the lines worth
        telling the user (an empty archive)."""
        if self.kind == "text":
            with open(self.path, "rb") as raw:
                compressed = raw.read(len(XZ_MAGIC)) == XZ_MAGIC
                raw.seek(0)
                with (lzma.open(raw) if compressed else raw) as f:  # an .xz of text is decompressed, not read
                    check_text(f.read(TEXT_SAMPLE))
                    f.seek(0)
                    yield from read_document(f)
        elif self.member is None:
            with open(self.path, "rb") as f:
                yield from documents_in_xz(f, self.name, note)
        else:
            if self.path not in outer_tars:
                for t in outer_tars.values():
                    t.close()
                outer_tars.clear()
                outer_tars[self.path] = tarfile.open(self.path, mode="r:")
            yield from documents_in_xz(outer_tars[self.path].extractfile(self.member), self.name, note)


def find_units(corpus, src):
    """(units, skipped): every source file under `src`, sorted by name; outer tars that cannot be listed
    (or only partly) are reported in `skipped` as (name, reason, bytes of the tar lost)."""
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
            # Each member is kept as its TarInfo (where its bytes are), so reading it later never needs the
            # tar's whole index: a tar damaged after some members still gives every member before the damage.
            listed, last, end = 0, None, 0
            try:
                with tarfile.open(path, mode="r:") as outer:
                    for m in outer:
                        end = m.offset_data + -(-m.size // 512) * 512
                        last = m.name
                        if m.isfile() and m.name.endswith(".xz"):
                            units.append(Unit(f"{name}/{m.name}", path, member=m))
                            listed += 1
                if path.stat().st_size < end + 1024:  # a whole tar ends with two zero blocks after its last member
                    raise tarfile.ReadError("it ends without the end-of-archive marker (truncated?)")
            except CORRUPT as e:
                where = f"after member {last!r}" if last else "before its first member"
                reason = (f"the tar is damaged {where} ({e}): its {listed} member(s) up to there are read, "
                          "any after it are lost")
                skipped.append((name, reason, max(path.stat().st_size - end, 0)))
                warn(f"{name}: {reason}")
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
