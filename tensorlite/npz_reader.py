"""Reading a tensorlite file as untrusted input: every size is checked before anything is allocated.

A tensorlite file is a zip of .npy members (see serialization.py). A crafted one may be a FIFO or a
device, declare a huge array in a few bytes of compressed data (a "zip bomb"), hold members nobody
refers to, or a JSON header nested a million levels deep. `read_file` reads it in this order, so none
of that costs more than a header read:

1. open: only a regular file (opened non-blocking, then fstat: a FIFO cannot hang the open);
2. the zip's central directory, then the JSON header member, bounded by MAX_HEADER_BYTES;
3. the JSON tree: strict JSON (no NaN), nested at most MAX_DEPTH levels; it names the arrays;
4. each named member's .npy header: dtype (bool, int, float, complex only: no pickled objects) and
   shape, which must agree with what the tree declares and with the member's uncompressed size;
   the sum of the arrays' bytes must not exceed `max_bytes`;
5. only then the named arrays' data, each checked against its CRC. Members not named are never read.

Every problem is one CheckpointError naming the file.
"""
import ast
import contextlib
import json
import math
import os
import stat
import zipfile
import zlib

import numpy as np

from .backend import physical_memory

MARKER = "__tensorlite__"
FORMAT = "tensorlite"
VERSION = 1
ARRAY_KINDS = "biufc"          # bool, ints, unsigned, floats, complex: what .npy stores without pickle
MAX_HEADER_BYTES = 64 << 20    # the JSON tree: a GPT's checkpoint needs a few tens of kB
MAX_NPY_HEADER = 1 << 16       # a .npy header is ~128 bytes; numpy itself refuses above 10 kB by default
MAX_DEPTH = 100                # nesting of the JSON tree (a checkpoint needs ~6); save refuses deeper objects
ARRAY_TYPES = ("tensor", "ndarray", "scalar")
UNKNOWN_MEMORY = 64 << 30      # the default max_bytes where the system does not say how much memory it has


class CheckpointError(RuntimeError):
    """A file could not be loaded as a tensorlite checkpoint (missing, truncated, foreign or corrupted)."""


def gigabytes(n):
    return f"{n / 1e9:.3g} GB" if n >= 1e9 else f"{n / 1e6:.3g} MB"


def open_regular(path):
    """A binary file object for `path`, which must be a regular file (not a folder, FIFO or device)."""
    def fail(what):
        return CheckpointError(f"cannot load {path!r}: {what}")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise fail("no such file") from None
    except IsADirectoryError:
        raise fail("it is a directory, not a checkpoint file") from None
    except OSError as exc:
        raise fail(exc.strerror or str(exc)) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise fail("it is a directory, not a checkpoint file")
        if not stat.S_ISREG(mode):
            raise fail("it is not a regular file (a FIFO, device or socket); pass a checkpoint file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_file(path, max_bytes=None):
    """(header dict, {name: array}) of the arrays the header's tree refers to; see the module docstring."""
    limit = (physical_memory() or UNKNOWN_MEMORY) if max_bytes is None else int(max_bytes)
    if hasattr(path, "read"):  # a file object: read from it, messages name it
        opened, path = contextlib.nullcontext(path), getattr(path, "name", "<file object>")
    else:
        opened = open_regular(path)
    with opened as f:
        magic = f.read(4)
        _check_magic(magic, path)
        f.seek(0)
        try:
            with zipfile.ZipFile(f) as zf:
                return _read_zip(zf, path, limit)
        except CheckpointError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError, KeyError, NotImplementedError,
                RuntimeError, OverflowError) as exc:
            raise CheckpointError(f"cannot load {path!r}: the file is truncated or corrupted "
                                  f"({type(exc).__name__}: {exc})") from None


def _check_magic(magic, path):
    if magic[:2] == b"PK":
        return
    if not magic:
        what = "the file is empty"
    elif magic[:1] == b"\x80":
        what = "it looks like a pickle (e.g. from torch.save); tensorlite never loads pickles"
    elif magic[:4] == b"\x93NUM":
        what = "it is a single .npy array, not a tensorlite checkpoint"
    else:
        what = "it is not a tensorlite checkpoint (not an .npz/zip file)"
    raise CheckpointError(f"cannot load {path!r}: {what}")


def _read_zip(zf, path, limit):
    members = {info.filename: info for info in zf.infolist()}
    marker = members.get(MARKER + ".npy")
    if marker is None:
        names = sorted(n[:-4] if n.endswith(".npy") else n for n in members)
        raise CheckpointError(f"cannot load {path!r}: it is an .npz file without the {MARKER!r} entry, "
                              f"so not a tensorlite checkpoint (arrays in it: {names[:5]})")
    dtype, shape, _, offset = _npy_header(zf, marker, path)
    if dtype != np.uint8 or len(shape) != 1 or shape[0] > MAX_HEADER_BYTES:
        raise CheckpointError(f"cannot load {path!r}: its {MARKER!r} header is not a uint8 array of at most "
                              f"{MAX_HEADER_BYTES >> 20} MB (it is {dtype} of shape {shape})")
    _check_size(marker, offset, shape[0], path, MARKER)
    header = _parse_header(_read_data(zf, marker, dtype, shape, offset, False).tobytes(), path)
    wanted = array_refs(header["tree"], path)
    plans, total = {}, 0
    for name, (declared_dtype, declared_shape) in wanted.items():
        info = members.get(name + ".npy")
        if info is None:
            raise CheckpointError(f"cannot load {path!r}: the checkpoint is corrupted: its tree refers to array "
                                  f"{name!r}, which the file does not hold")
        dtype, shape, fortran, offset = _npy_header(zf, info, path)
        nbytes = math.prod(shape) * dtype.itemsize
        if declared_dtype is not None and declared_dtype != dtype.str:
            raise CheckpointError(f"cannot load {path!r}: array {name!r} is {dtype.str} in the file but {declared_dtype}"
                                  " in its tree; the checkpoint is corrupted")
        if declared_shape is not None and declared_shape != list(shape):
            raise CheckpointError(f"cannot load {path!r}: array {name!r} has shape {list(shape)} in the file but "
                                  f"{declared_shape} in its tree; the checkpoint is corrupted")
        _check_size(info, offset, nbytes, path, name)
        total += nbytes
        plans[name] = (info, dtype, shape, offset, fortran)
    if total > limit:
        raise CheckpointError(f"cannot load {path!r}: its arrays would need {gigabytes(total)} of memory, more than "
                              f"the limit of {gigabytes(limit)} (this machine's memory, or max_bytes)")
    arrays = {name: _read_data(zf, *plan) for name, plan in plans.items()}
    return header, arrays


def _check_size(info, offset, nbytes, path, name):
    if info.file_size != offset + nbytes:
        raise CheckpointError(f"cannot load {path!r}: member {info.filename!r} holds {info.file_size} bytes but "
                              f"its .npy header declares {offset + nbytes}; the checkpoint is corrupted")


def _npy_header(zf, info, path):
    """(dtype, shape, fortran_order, data offset) from a member's .npy header, without reading its data."""
    def fail(why):
        return CheckpointError(f"cannot load {path!r}: member {info.filename!r} is not a valid .npy array ({why})")
    with zf.open(info) as s:
        magic = s.read(8)
        if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
            raise fail("no .npy magic")
        major = magic[6]
        if major not in (1, 2, 3):
            raise fail(f"format version {major}")
        size_bytes = 2 if major == 1 else 4
        hlen = int.from_bytes(s.read(size_bytes), "little")
        if hlen > MAX_NPY_HEADER:
            raise fail(f"a header of {hlen} bytes")
        text = s.read(hlen)
    try:
        d = ast.literal_eval(text.decode("utf-8" if major == 3 else "latin1"))  # a literal: nothing is run
    except (ValueError, SyntaxError, MemoryError, RecursionError, UnicodeDecodeError, TypeError):
        raise fail("unreadable header") from None
    if not (isinstance(d, dict) and set(d) == {"descr", "fortran_order", "shape"} and isinstance(d["descr"], str)
            and isinstance(d["fortran_order"], bool) and isinstance(d["shape"], tuple)
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in d["shape"])):
        raise fail("its header is not a plain array's")
    try:
        dtype = np.dtype(d["descr"])
    except (TypeError, ValueError):
        raise fail(f"unknown dtype {d['descr'][:40]!r}") from None
    if dtype.kind not in ARRAY_KINDS or dtype.hasobject:
        raise fail(f"dtype {dtype} is not bool, integer, float or complex; tensorlite never loads pickled objects")
    return dtype, d["shape"], d["fortran_order"], 8 + size_bytes + hlen


def _read_data(zf, info, dtype, shape, offset, fortran):
    """The member's array, read straight into its buffer; reading to the end checks the CRC."""
    flat = np.empty(math.prod(shape), dtype=dtype)
    with zf.open(info) as s:
        s.read(offset)
        view, done = memoryview(flat).cast("B"), 0
        while done < len(view):
            n = s.readinto(view[done:])
            if not n:
                raise EOFError(f"member {info.filename!r} ends early")
            done += n
        if s.read(1):
            raise ValueError(f"member {info.filename!r} is longer than its header says")
    return flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)


def _reject_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def _parse_header(raw, path):
    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"cannot load {path!r}: its {MARKER!r} header is not valid JSON ({exc})") from None
    except RecursionError:
        raise CheckpointError(f"cannot load {path!r}: its {MARKER!r} header is nested too deeply") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT or "tree" not in header:
        raise CheckpointError(f"cannot load {path!r}: its header does not describe a tensorlite checkpoint")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version > VERSION:
        raise CheckpointError(f"cannot load {path!r}: it has format version {version!r}, this tensorlite reads "
                              f"versions up to {VERSION}; upgrade tensorlite")
    return header


def array_refs(tree, path):
    """{array name: (declared dtype str or None, declared shape or None)} of a tree, walked without
    recursion; a tree nested deeper than MAX_DEPTH or an array entry without a name is refused."""
    refs, stack = {}, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise CheckpointError(f"cannot load {path!r}: its tree is nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
        elif isinstance(node, dict):
            if node.get("$type") in ARRAY_TYPES:
                name, dtype, shape = node.get("array"), node.get("dtype"), node.get("shape")
                if not isinstance(name, str) or name == MARKER or not (dtype is None or isinstance(dtype, str)) \
                        or not (shape is None or isinstance(shape, list)):
                    raise CheckpointError(f"cannot load {path!r}: the checkpoint is corrupted (an array entry "
                                          f"{str(node)[:80]})")
                refs[name] = (dtype, shape)
            elif node.get("$type") in ("dict", "tuple"):  # user data that is walked as decode walks it
                items = node.get("items")
                if isinstance(items, (dict, list)):
                    stack.extend((v, depth + 1) for v in (items.values() if isinstance(items, dict) else items))
            elif "$type" not in node:
                stack.extend((v, depth + 1) for v in node.values())
    return refs


def tree_depth(tree):
    """How many levels of lists and dicts a JSON tree nests (a scalar: 0), walked without recursion."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (list, dict)):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in (node.values() if isinstance(node, dict) else node))
    return deepest
