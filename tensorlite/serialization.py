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

import numpy as np

from . import backend
from .npz_reader import ARRAY_KINDS, FORMAT, MARKER, MAX_DEPTH, VERSION, CheckpointError, read_file, tree_depth
from .tensor import Tensor

__all__ = ["CheckpointError", "atomic_write", "load", "save"]


# ---------------------------------------------------------------- save
def save(obj, path):
    """Write `obj` (nested dicts/lists/tuples of Tensors, arrays, numbers, strings, bools, None) to `path`."""
    path = os.fspath(path)
    arrays = {}
    tree = _encode(obj, arrays, "obj", set())
    if tree_depth(tree) > MAX_DEPTH:
        raise ValueError(f"cannot save the object: it is nested more than {MAX_DEPTH} levels deep (a tuple counts "
                         "twice), more than load reads back")
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


def _array_node(kind, arrays, array, where, **more):
    """The tree entry of one array: its name in the file, and its dtype and shape, which load checks against
    the member's own .npy header before reading it."""
    key = _add_array(arrays, array, where)
    return {"$type": kind, "array": key, "dtype": arrays[key].dtype.str, "shape": list(arrays[key].shape), **more}


def _add_array(arrays, array, where):
    if array.dtype.kind not in ARRAY_KINDS:
        raise TypeError(f"cannot save {where}: arrays of dtype {array.dtype} are not supported "
                        f"(only bool, integer, float and complex arrays)")
    key = f"a{len(arrays)}"
    arrays[key] = backend.to_numpy(array)
    return key


def _encode(obj, arrays, where, active):
    """The JSON tree for obj; arrays go into `arrays`. `where` names the spot for error messages."""
    if len(active) > MAX_DEPTH:  # deeper than load reads back (checked exactly on the tree, in save)
        raise ValueError(f"cannot save {where}: it is nested more than {MAX_DEPTH} levels deep")
    if isinstance(obj, np.generic):  # before int/float: np.float64 is a float, and must come back as itself
        return _array_node("scalar", arrays, np.asarray(obj), where)
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if math.isfinite(obj):
            return float(obj)
        return {"$type": "float", "value": "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")}
    if isinstance(obj, Tensor):
        return _array_node("tensor", arrays, obj.data, where, device=obj.device,
                           requires_grad=bool(obj.requires_grad))
    if isinstance(obj, np.ndarray) or backend.get_array_module(obj) is not np:
        return _array_node("ndarray", arrays, obj, where, device=backend.device_of(obj))
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
def load(path, map_location=None, max_bytes=None):
    """Read what `save` wrote. Tensors come back on their saved device, or all on `map_location`
    ('cpu', 'cuda', 'cuda:N'). The file is untrusted input (see npz_reader): its arrays may not need more
    than `max_bytes` (default: this machine's memory). Raises CheckpointError if `path` is not a readable
    tensorlite file. `path` may also be a binary file object (io.BytesIO of a file's bytes), as in
    torch.load; messages name it by its `name` attribute."""
    source = path
    path = getattr(path, "name", "<file object>") if hasattr(path, "read") else os.fspath(path)
    if map_location is not None:
        map_location = backend.normalize_device(map_location)
    header, arrays = read_file(source, max_bytes)
    try:
        return _decode(header["tree"], arrays, map_location, path)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError, OverflowError) as exc:
        raise CheckpointError(f"cannot load {path!r}: the checkpoint is corrupted ({type(exc).__name__}: {exc})") \
            from None


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
        return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}[node["value"]]
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
        return t.requires_grad_() if node.get("requires_grad") is True else t
    raise CheckpointError(f"cannot load {path!r}: unknown entry type {kind!r} (written by a newer tensorlite?)")


def _device(saved, path):
    if not isinstance(saved, str):
        raise CheckpointError(f"cannot load {path!r}: the checkpoint is corrupted (device {saved!r})")
    try:
        return backend.normalize_device(saved)
    except (RuntimeError, ValueError) as exc:
        raise CheckpointError(f"cannot load {path!r}: it holds tensors saved on {saved}, which is not available "
                              f"here ({exc}); load with map_location='cpu'") from None
