"""The prepared dataset on disk: a directory with train.bin, val.bin (token ids, one dtype) and meta.json.

meta.json says the format and its version, the tokenizer, the dtype and how many tokens each .bin holds;
it depends only on the input and the flags, never on the machine or the number of workers (how long each
pass took, and on how many workers, is in timings.json beside it, which nothing reads back). It is written
last, so its presence marks the directory whole; the writer helpers build the directory in
a temporary folder beside its destination and rename it into place at the very end, so an interrupted run
leaves nothing that `load_prepared` would take as whole, and an older dataset stays until the new one is
complete. `load_prepared` checks every declared size against the files before it maps them.
"""
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tensorlite.serialization import atomic_write
from train.errors import DataError
from train.tokenizers import tokenizer_from_dict

FORMAT = "tensorlite-prepared"
FORMAT_VERSION = 1
TOKEN_DTYPES = (np.uint8, np.uint16, np.uint32)


class DatasetError(DataError):
    """A prepared dataset directory is missing, incomplete or inconsistent (a ValueError)."""


def token_dtype(vocab_size):
    """The smallest unsigned dtype that holds every id of a vocabulary of `vocab_size`."""
    for dtype in TOKEN_DTYPES:
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise ValueError(f"vocab_size {vocab_size} does not fit in uint32")


# ---------------------------------------------------------------- writing
def remove_stale_temps(out):
    """Delete the temporary folders for the same `out` left by runs that were killed (their process is gone)."""
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


@contextmanager
def staging_folder(out):
    """A fresh temporary folder beside `out` (named after this process) to write the dataset into; removed
    if the block raises. The block ends with write_meta and move_into_place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def split_tail(folder, dtype, n, val_fraction):
    """Single source file: move the last val_fraction of train.bin's `n` tokens into val.bin; the new counts."""
    n_val = int(round(n * val_fraction)) if n > 1 else 0
    n_val = min(n_val, n - 1)
    n_train = n - n_val
    if n_val:
        src = np.memmap(folder / "train.bin", dtype=dtype, mode="r")
        with open(folder / "val.bin", "wb") as f:
            for i in range(n_train, n, 1 << 24):
                f.write(src[i:min(i + (1 << 24), n)].tobytes())
            f.flush()
            os.fsync(f.fileno())
        del src
        with open(folder / "train.bin", "r+b") as f:
            f.truncate(n_train * dtype.itemsize)
    return {"train_tokens": n_train, "val_tokens": n_val}


def write_meta(folder, meta):
    """meta.json, the dataset's last file: its presence marks the dataset whole."""
    atomic_write(folder / "meta.json", lambda f: json.dump(meta, f, indent=1), mode="w")


def move_into_place(tmp, out):
    """Rename the finished temporary directory to `out`; an old `out` (--force) is removed only afterwards."""
    old = None
    if out.exists() and any(out.iterdir()):
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.rename(out, old)
    os.replace(tmp, out)  # replaces an empty directory atomically
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------- reading
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
        if dtype not in TOKEN_DTYPES:
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
