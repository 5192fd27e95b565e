"""save / load: checkpoints as one .npz file, never pickle.

File layout (a normal NumPy ``.npz``, i.e. a zip of ``.npy`` files):

    __tensorlite__.npy   uint8 bytes of UTF-8 JSON: {"format": "tensorlite", "version": 1, "tree": ...}
    a0.npy, a1.npy, ...  every array in the saved object, bit for bit

The JSON ``tree`` mirrors the saved object. Dicts (string keys), lists, strings,
ints, floats, bools and None are written as themselves; anything JSON has no
word for is an object with a ``"$type"`` key:

    {"$type": "tensor", "array": "a0", "device": "cuda:0", "requires_grad": false}
    {"$type": "ndarray", "array": "a1", "device": "cpu"}     (a CuPy array has device "cuda:N")
    {"$type": "scalar", "array": "a2"}                      (a NumPy scalar such as np.float32(1))
    {"$type": "tuple", "items": [...]}
    {"$type": "float", "value": "nan" | "inf" | "-inf"}     (strict JSON has no such numbers)
    {"$type": "dict", "items": {...}}                       (a user dict that itself has a "$type" key)

Arrays are read back with ``allow_pickle=False``, so loading a file can never
run code. Saving writes a temporary file in the target's directory, fsyncs it
and renames it over the target, so a crash leaves either the old file or the
new one, never half of one.
"""
import json
import math
import os
import secrets
import zipfile

import numpy as np

from . import backend
from .tensor import Tensor

FORMAT = "tensorlite"
VERSION = 1
MARKER = "__tensorlite__"
_ARRAY_KINDS = "biufc"  # bool, ints, unsigned, floats, complex: what .npy stores without pickle


class CheckpointError(RuntimeError):
    """A file could not be loaded as a tensorlite checkpoint (missing, truncated, foreign or corrupted)."""


# ---------------------------------------------------------------- save
def save(obj, path):
    """Write `obj` (nested dicts/lists/tuples of Tensors, arrays, numbers, strings, bools, None) to `path`."""
    path = os.fspath(path)
    arrays = {}
    tree = _encode(obj, arrays, "obj", set())
    header = json.dumps({"format": FORMAT, "version": VERSION, "tree": tree}, allow_nan=False).encode("utf-8")
    arrays[MARKER] = np.frombuffer(header, dtype=np.uint8)
    atomic_write(path, lambda f: _write_npz(f, arrays))


# ---------------------------------------------------------------- the one atomic writer
def atomic_write(path, write, mode="wb"):
    """Write a file so that `path` holds either its old content or all of the new one, never a part.

    write(f) fills a temporary file beside `path` (so the rename stays within one file system); it is
    fsynced and renamed over `path`, and the rename is made durable by an fsync of the folder. On any
    error, or a signal, the temporary file is removed and `path` is untouched. mode 'w' writes UTF-8 text.
    Every writer of the project (checkpoints, logs' rewrites, corpora, benchmark JSON) goes through here.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _write_npz(f, arrays):
    np.savez(f, **arrays)


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX); not possible or needed everywhere, so best effort."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _add_array(arrays, array, where):
    if array.dtype.kind not in _ARRAY_KINDS:
        raise TypeError(f"cannot save {where}: arrays of dtype {array.dtype} are not supported "
                        f"(only bool, integer, float and complex arrays)")
    key = f"a{len(arrays)}"
    arrays[key] = backend.to_numpy(array)
    return key


def _encode(obj, arrays, where, active):
    """The JSON tree for obj; arrays go into `arrays`. `where` names the spot for error messages."""
    if isinstance(obj, np.generic):  # before int/float: np.float64 is a float, and must come back as itself
        return {"$type": "scalar", "array": _add_array(arrays, np.asarray(obj), where)}
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if math.isfinite(obj):
            return float(obj)
        return {"$type": "float", "value": "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")}
    if isinstance(obj, Tensor):
        return {"$type": "tensor", "array": _add_array(arrays, obj.data, where), "device": obj.device,
                "requires_grad": bool(obj.requires_grad)}
    if isinstance(obj, np.ndarray) or backend.get_array_module(obj) is not np:
        return {"$type": "ndarray", "array": _add_array(arrays, obj, where), "device": backend.device_of(obj)}
    if isinstance(obj, (dict, list, tuple)):
        if id(obj) in active:
            raise ValueError(f"cannot save {where}: it contains itself (a reference cycle)")
        active.add(id(obj))
        try:
            if isinstance(obj, dict):
                items = {}
                for k, v in obj.items():
                    if not isinstance(k, str):
                        raise TypeError(f"cannot save {where}: dict keys must be strings, got key {k!r} "
                                        f"of type {type(k).__name__}")
                    items[k] = _encode(v, arrays, f"{where}[{k!r}]", active)
                return {"$type": "dict", "items": items} if "$type" in items else items
            items = [_encode(v, arrays, f"{where}[{i}]", active) for i, v in enumerate(obj)]
            return items if isinstance(obj, list) else {"$type": "tuple", "items": items}
        finally:
            active.discard(id(obj))
    raise TypeError(f"cannot save {where}: objects of type {type(obj).__name__} are not supported (save Tensors, "
                    f"arrays, numbers, strings, bools, None, and dicts/lists/tuples of them)")


# ---------------------------------------------------------------- load
def load(path, map_location=None):
    """Read what `save` wrote. Tensors come back on their saved device, or all on `map_location`
    ('cpu', 'cuda', 'cuda:N'). Raises CheckpointError if `path` is not a readable tensorlite file."""
    path = os.fspath(path)
    if map_location is not None:
        map_location = backend.normalize_device(map_location)
    header, arrays = _read(path)
    try:
        return _decode(header["tree"], arrays, map_location, path)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"cannot load {path!r}: the checkpoint is corrupted ({type(exc).__name__}: {exc})") \
            from None


def _read(path):
    """The JSON header and all arrays of the file, or one CheckpointError saying what is wrong."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise CheckpointError(f"cannot load {path!r}: no such file") from None
    except OSError as exc:
        raise CheckpointError(f"cannot load {path!r}: {exc.strerror or exc}") from None
    if magic[:2] != b"PK":
        if not magic:
            what = "the file is empty"
        elif magic[:1] == b"\x80":
            what = "it looks like a pickle (e.g. from torch.save); tensorlite never loads pickles"
        elif magic[:4] == b"\x93NUM":
            what = "it is a single .npy array, not a tensorlite checkpoint"
        else:
            what = "it is not a tensorlite checkpoint (not an .npz/zip file)"
        raise CheckpointError(f"cannot load {path!r}: {what}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = set(npz.files)
            if MARKER not in names:
                raise CheckpointError(f"cannot load {path!r}: it is an .npz file without the {MARKER!r} entry, "
                                      f"so not a tensorlite checkpoint (arrays in it: {sorted(names)[:5]})")
            arrays = {name: npz[name] for name in names}  # reading everything here checks every CRC
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError) as exc:
        raise CheckpointError(f"cannot load {path!r}: the file is truncated or corrupted "
                              f"({type(exc).__name__}: {exc})") from None
    try:
        header = json.loads(arrays.pop(MARKER).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"cannot load {path!r}: its {MARKER!r} header is not valid JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT or "tree" not in header:
        raise CheckpointError(f"cannot load {path!r}: its header does not describe a tensorlite checkpoint")
    version = header.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(f"cannot load {path!r}: it has format version {version!r}, this tensorlite reads "
                              f"versions up to {VERSION}; upgrade tensorlite")
    return header, arrays


def _decode(node, arrays, map_location, path):
    if isinstance(node, list):
        return [_decode(v, arrays, map_location, path) for v in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("$type")
    if kind is None:
        return {k: _decode(v, arrays, map_location, path) for k, v in node.items()}
    if kind == "dict":
        return {k: _decode(v, arrays, map_location, path) for k, v in node["items"].items()}
    if kind == "tuple":
        return tuple(_decode(v, arrays, map_location, path) for v in node["items"])
    if kind == "float":
        return float(node["value"])
    if kind == "scalar":
        return arrays[node["array"]][()]
    if kind in ("tensor", "ndarray"):
        array = arrays[node["array"]]
        saved = node.get("device", "cpu")
        if kind == "ndarray" and saved == "cpu":
            return array  # NumPy arrays stay NumPy arrays
        device = map_location or _device(saved, path)
        with backend.device_context(device):
            array = backend.to_device(array, device)
        if kind == "ndarray":
            return array
        t = Tensor.wrap(array, device)
        return t.requires_grad_() if node.get("requires_grad") else t
    raise CheckpointError(f"cannot load {path!r}: unknown entry type {kind!r} (written by a newer tensorlite?)")


def _device(saved, path):
    try:
        return backend.normalize_device(saved)
    except RuntimeError as exc:
        raise RuntimeError(f"{path!r} holds tensors saved on {saved}, which is not available here ({exc}); "
                           f"load with map_location='cpu'") from None
