"""tensorlite.save / load: bit-exact round trips, devices, atomic writes, and clear errors on bad files."""
import json
import math
import os
import pickle
import tracemalloc
import zipfile

import numpy as np
import pytest

import tensorlite as tl
from tensorlite import serialization
from tensorlite.serialization import CheckpointError

DTYPES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool", "complex64"]


def sample_arrays(seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for i, dt in enumerate(DTYPES):
        shape = [(2, 3), (4,), (), (0, 2), (1, 1, 2)][i % 5]
        out[dt] = np.asarray((rng.normal(size=shape) * 100).astype(dt) if dt != "bool" else rng.random(shape) > 0.5)
    out["special"] = np.array([np.nan, np.inf, -np.inf, -0.0, 5e-324, np.finfo(np.float64).max])
    return out


def assert_same_array(a, b):
    assert type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()  # bit for bit, NaN payloads and -0.0 included


def assert_same(a, b):
    """Deep equality that also checks types, dtypes, devices and bits."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, tl.Tensor):
        assert a.device == b.device and a.requires_grad == b.requires_grad
        assert_same_array(a.detach().numpy(), b.detach().numpy())
    elif isinstance(a, np.ndarray):
        assert_same_array(a, b)
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    elif isinstance(a, float):
        assert a == b and math.copysign(1, a) == math.copysign(1, b)
    else:
        assert a == b


def nested(device):
    arrays = sample_arrays()
    return {
        "tensors": {k: tl.tensor(v, device=device) for k, v in arrays.items()},
        "arrays": arrays,
        "param": tl.tensor([[1.5, -2.0]], device=device, requires_grad=True),
        "numbers": [0, -7, 2**80, 1.0 / 3, float("inf"), float("-inf"), float("nan"), -0.0, 1e-310],
        "flags": (True, False, None),
        "text": ["", "héllo \u2603", 'quote " and \\ backslash'],
        "numpy scalars": [np.float32(1.25), np.float64(-0.5), np.int64(-3), np.bool_(True), np.float16(0.1)],
        "nested": {"a": [{"b": ({"c": []},)}], "empty": {}, "tuple": ()},
        "$type": {"$type": "tensor"},  # user keys that look like the file's own markers
        "step": 1000,
    }


def test_round_trip_is_bit_exact(device, tmp_path):
    obj = nested(device)
    tl.save(obj, tmp_path / "ckpt.tl")
    back = tl.load(tmp_path / "ckpt.tl")
    assert_same(obj, back)
    assert back["tensors"]["float32"].device == tl.tensor([0.0], device=device).device


def test_save_writes_exactly_the_path_given(tmp_path):
    path = str(tmp_path / "model.bin")
    tl.save({"x": np.zeros(1)}, path)
    assert sorted(os.listdir(tmp_path)) == ["model.bin"]  # no ".npz" appended, no temp left
    assert_same(tl.load(path), {"x": np.zeros(1)})


def test_top_level_values_of_any_supported_kind(tmp_path):
    for obj in [tl.tensor([1, 2]), [1, 2], (3,), "s", 4, 2.5, None, True, np.arange(3)]:
        tl.save(obj, tmp_path / "x")
        assert_same(obj, tl.load(tmp_path / "x"))


def test_map_location(device, tmp_path):
    t = tl.tensor([[1.0, 2.0]], device=device, requires_grad=True)
    tl.save({"t": t, "a": np.ones(2)}, tmp_path / "x")
    on_cpu = tl.load(tmp_path / "x", map_location="cpu")
    assert on_cpu["t"].device == "cpu" and on_cpu["t"].requires_grad
    assert isinstance(on_cpu["a"], np.ndarray)  # plain NumPy arrays stay NumPy arrays
    assert_same_array(on_cpu["t"].detach().numpy(), t.detach().numpy())
    back = tl.load(tmp_path / "x", map_location=device)
    assert back["t"].device == t.device
    assert_same_array(back["t"].detach().numpy(), t.detach().numpy())
    with pytest.raises(ValueError, match="tpu"):
        tl.load(tmp_path / "x", map_location="tpu")


def as_if_saved_on_cuda(path):
    """Rewrite the header of a file holding one tensor "t" as if the tensor had been saved on a GPU."""
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(arrays["__tensorlite__"].tobytes())
    header["tree"]["t"]["device"] = "cuda:0"
    arrays["__tensorlite__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)



@pytest.mark.skipif(tl.cuda.is_available(), reason="checks the message shown where CUDA is missing")
def test_cuda_checkpoint_without_cuda_says_use_map_location(tmp_path):
    tl.save({"t": tl.tensor([1.0])}, tmp_path / "x")
    as_if_saved_on_cuda(tmp_path / "x")
    with pytest.raises(RuntimeError, match="map_location='cpu'"):
        tl.load(tmp_path / "x")
    assert tl.load(tmp_path / "x", map_location="cpu")["t"].device == "cpu"


# ---------------------------------------------------------------- atomic writes
def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.tl"
    tl.save({"version": "old", "w": np.arange(4)}, path)
    before = path.read_bytes()

    def crash(f, arrays):  # half a file gets written, then the "machine dies"
        f.write(b"PK\x03\x04 partial data")
        raise KeyboardInterrupt
    monkeypatch.setattr(serialization, "_write_npz", crash)
    with pytest.raises(KeyboardInterrupt):
        tl.save({"version": "new", "w": np.arange(1000)}, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ckpt.tl"]
    assert tl.load(path)["version"] == "old"

    monkeypatch.undo()
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        tl.save({"version": "new"}, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ckpt.tl"]


def test_unsupported_objects_fail_before_touching_the_file(tmp_path):
    path = tmp_path / "ckpt.tl"
    tl.save({"ok": 1}, path)
    cyclic = []
    cyclic.append(cyclic)
    cases = [({1: "int key"}, TypeError, "keys must be strings"),
             ({"a": {(1, 2): 0}}, TypeError, r"obj\['a'\]"),
             ({"f": lambda: 0}, TypeError, "function"),
             ([{1, 2}], TypeError, "set"),
             ({"o": np.array([object()])}, TypeError, "dtype object"),
             ({"s": np.array(["text"])}, TypeError, "dtype <U4"),
             (cyclic, ValueError, "contains itself")]
    for obj, error, message in cases:
        with pytest.raises(error, match=message):
            tl.save(obj, path)
    assert tl.load(path) == {"ok": 1} and os.listdir(tmp_path) == ["ckpt.tl"]


def test_shared_subobjects_are_not_cycles(tmp_path):
    shared = [1, 2]
    tl.save({"a": shared, "b": shared}, tmp_path / "x")
    assert tl.load(tmp_path / "x") == {"a": [1, 2], "b": [1, 2]}


# ---------------------------------------------------------------- bad files
def bad_files(tmp_path):
    good = tmp_path / "good.tl"
    tl.save({"w": np.arange(10000, dtype=np.float32), "meta": {"step": 3}}, good)
    data = good.read_bytes()
    files = {}

    def put(name, content):
        files[name] = tmp_path / name
        files[name].write_bytes(content)
    put("empty", b"")
    put("random", np.random.default_rng(0).bytes(1000))
    put("truncated-half", data[: len(data) // 2])
    put("truncated-tail", data[:-10])
    put("pickle", pickle.dumps({"w": [1, 2, 3]}))
    with open(tmp_path / "plain.npz", "wb") as f:
        np.savez(f, w=np.arange(3))
    files["plain-npz"] = tmp_path / "plain.npz"
    np.save(tmp_path / "single.npy", np.arange(3))
    files["npy"] = tmp_path / "single.npy"
    corrupt = bytearray(data)
    i = data.index(b"a0.npy") + 200  # flip bytes inside the stored array: the CRC check must notice
    corrupt[i:i + 4] = b"\xff\xff\xff\xff"
    put("bit-flip", bytes(corrupt))
    for name, marker in [("bad-json", b"{not json"), ("foreign-json", b'{"format": "other"}'),
                         ("future", json.dumps({"format": "tensorlite", "version": 99, "tree": 1}).encode())]:
        with open(tmp_path / name, "wb") as f:
            np.savez(f, __tensorlite__=np.frombuffer(marker, np.uint8))
        files[name] = tmp_path / name
    with open(tmp_path / "dangling", "wb") as f:  # refers to an array that is not in the file
        header = {"format": "tensorlite", "version": 1, "tree": {"$type": "ndarray", "array": "a7", "device": "cpu"}}
        np.savez(f, __tensorlite__=np.frombuffer(json.dumps(header).encode(), np.uint8))
    files["dangling"] = tmp_path / "dangling"
    files["missing"] = tmp_path / "does-not-exist.tl"
    files["directory"] = tmp_path
    return files


EXPECT = {"empty": "empty", "random": "not a tensorlite checkpoint", "truncated-half": "truncated",
          "truncated-tail": "truncated", "pickle": "pickle", "plain-npz": "without the '__tensorlite__'",
          "npy": ".npy", "bit-flip": "truncated or corrupted", "bad-json": "not valid JSON",
          "foreign-json": "does not describe", "future": "version 99", "dangling": "corrupted",
          "missing": "no such file", "directory": "directory"}


def test_bad_files_raise_one_clear_error(tmp_path):
    files = bad_files(tmp_path)
    assert set(files) == set(EXPECT)
    for name, path in files.items():
        with pytest.raises(CheckpointError) as info:
            tl.load(path)
        message = str(info.value)
        assert repr(str(path)) in message, name
        assert EXPECT[name].lower() in message.lower(), (name, message)
    assert issubclass(CheckpointError, RuntimeError) and tl.CheckpointError is CheckpointError
    assert tl.load(tmp_path / "good.tl")["meta"] == {"step": 3}


def test_module_round_trip(tmp_path):
    nn = pytest.importorskip("tensorlite.nn")
    if not hasattr(nn, "Module") or not hasattr(nn, "Linear"):
        pytest.skip("tensorlite.nn has no Module/Linear yet")
    tl.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 3)) if hasattr(nn, "Sequential") \
        else nn.Linear(4, 3)
    tl.save(model.state_dict(), tmp_path / "model.tl")
    tl.manual_seed(2)
    other = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 3)) if hasattr(nn, "Sequential") \
        else nn.Linear(4, 3)
    assert any(not np.array_equal(a.numpy(), b.numpy())
               for a, b in zip(model.state_dict().values(), other.state_dict().values()))
    other.load_state_dict(tl.load(tmp_path / "model.tl"))
    assert list(other.state_dict()) == list(model.state_dict())
    for (name, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        assert a.dtype == b.dtype and a.numpy().tobytes() == b.numpy().tobytes(), name
    x = tl.randn(2, 4)
    assert np.array_equal(model(x).detach().numpy(), other(x).detach().numpy())


# ---------------------------------------------------------------- crafted files: sizes are checked before allocating
def npy(descr, shape, data=b"", fortran=False):
    """A .npy member: a version-1 header saying whatever we like, then `data`."""
    text = repr({"descr": descr, "fortran_order": fortran, "shape": tuple(shape)}).encode("latin1")
    text += b" " * (63 - (len(text) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + data


def crafted(path, tree, members, deflate=()):
    """A zip with the tensorlite header for `tree` and the given members ({name.npy: bytes})."""
    header = json.dumps({"format": "tensorlite", "version": 1, "tree": tree}).encode() if not isinstance(tree, bytes) \
        else tree
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("__tensorlite__.npy", npy("|u1", (len(header),), header))
        for name, content in members.items():
            zf.writestr(name, content, zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED)
    return path


def peak_bytes(fn):
    tracemalloc.start()
    try:
        result = fn()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


def ndarray(name, **more):
    return {"$type": "ndarray", "array": name, "device": "cpu", **more}


def test_a_zip_bomb_is_refused_from_its_headers_without_inflating(tmp_path):
    zeros = bytes(64 << 20)  # 64 MB of zeros deflate to ~64 kB
    path = crafted(tmp_path / "bomb", {"w": ndarray("a0")}, {"a0.npy": npy("<f8", (8 << 20,), zeros)}, {"a0.npy"})
    assert path.stat().st_size < 1 << 20
    peak, _ = peak_bytes(lambda: pytest.raises(CheckpointError, tl.load, path, max_bytes=1 << 20))
    assert peak < 4 << 20  # nothing was inflated
    with pytest.raises(CheckpointError, match=r"would need 67.1 MB of memory, more than the limit of 1.05 MB"):
        tl.load(path, max_bytes=1 << 20)
    assert tl.load(path)["w"].shape == (8 << 20,)  # within the default limit (this machine's memory) it loads


def test_a_header_declaring_more_than_the_member_holds_is_refused(tmp_path):
    # a few bytes that claim to be 8 TB: the zip member's size gives it away before anything is allocated
    path = crafted(tmp_path / "liar", {"w": ndarray("a0")}, {"a0.npy": npy("<f4", (1 << 41,), b"\0" * 16)})
    with pytest.raises(CheckpointError, match="holds .* bytes but its .npy header declares") as info:
        tl.load(path)
    assert repr(str(path)) in str(info.value)


def test_members_the_tree_does_not_name_are_never_read(tmp_path):
    junk = {"junk.npy": bytes(64 << 20), "notes.txt": b"hello", "a9.npy": npy("|O", (1,), b"x")}
    path = crafted(tmp_path / "extra", {"w": ndarray("a0")}, {"a0.npy": npy("<i8", (3,), np.arange(3).tobytes()),
                                                               **junk}, set(junk))
    peak, back = peak_bytes(lambda: tl.load(path))
    assert peak < 4 << 20 and back["w"].tolist() == [0, 1, 2]


def test_the_tree_and_the_npy_header_must_agree(tmp_path):
    data = np.arange(6, dtype=np.float32).tobytes()
    for declared, message in [(dict(shape=[2, 3]), r"has shape \[6\] in the file but \[2, 3\]"),
                              (dict(dtype="<f8"), "is <f4 in the file but <f8")]:
        path = crafted(tmp_path / "x", {"w": ndarray("a0", **declared)}, {"a0.npy": npy("<f4", (6,), data)})
        with pytest.raises(CheckpointError, match=message):
            tl.load(path)
    path = crafted(tmp_path / "x", {"w": ndarray("a0", shape=[6], dtype="<f4")}, {"a0.npy": npy("<f4", (6,), data)})
    assert tl.load(path)["w"].tolist() == list(range(6))
    path = crafted(tmp_path / "f", {"w": ndarray("a0")}, {"a0.npy": npy("<f4", (2, 3), data, fortran=True)})
    assert tl.load(path)["w"].tolist() == np.arange(6, dtype=np.float32).reshape(3, 2).T.tolist()


@pytest.mark.parametrize("member, message", [
    (npy("|O", (1,), b"\x80\x04N."), "never loads pickled objects"),
    (npy("<U4", (1,), b"\0" * 16), "not bool, integer, float or complex"),
    (npy([("a", "<f4")], (1,), b"\0" * 4), "not a plain array"),
    (b"plain text, not an array", "no .npy magic"),
    (b"\x93NUMPY\x02\x00" + (1 << 30).to_bytes(4, "little") + b"{" * 100, "a header of 1073741824 bytes"),
    (b"\x93NUMPY\x01\x00\x10\x00__import__('os')", "unreadable header"),
])
def test_members_that_are_not_plain_npy_arrays_are_refused(tmp_path, member, message):
    path = crafted(tmp_path / "x", {"w": ndarray("a0")}, {"a0.npy": member})
    with pytest.raises(CheckpointError, match=message):
        tl.load(path)


@pytest.mark.parametrize("header, message", [
    (b'{"format": "tensorlite", "version": 1, "tree": NaN}', "not valid JSON"),
    (b'{"format": "tensorlite", "version": 1, "tree": ' + b"9" * 5000 + b"}", "not valid JSON"),
    (b'{"format": "tensorlite", "version": 1, "tree": ' + b"[" * 100000 + b"]" * 100000 + b"}", "nested too deeply"),
    (b'{"format": "tensorlite", "version": 1, "tree": ' + b"[" * 150 + b"]" * 150 + b"}", "more than 100 levels"),
    (b'{"format": "tensorlite", "version": true, "tree": 1}', "version True"),
    (b'{"format": "tensorlite", "version": 1, "tree": {"$type": "tensor", "array": 5}}', "an array entry"),
    (b'{"format": "tensorlite", "version": 1, "tree": {"$type": "float", "value": "1e999"}}', "corrupted"),
    (b'{"format": "tensorlite", "version": 1, "tree": {"$type": "tensor", "array": "a0", "device": 7}}', "device 7"),
])
def test_crafted_json_headers_give_one_error(tmp_path, header, message):
    path = crafted(tmp_path / "x", header, {"a0.npy": npy("<f4", (1,), b"\0" * 4)})
    with pytest.raises(CheckpointError, match=message):
        tl.load(path)


def test_the_json_header_is_bounded_in_size(tmp_path):
    with zipfile.ZipFile(tmp_path / "x", "w") as zf:
        zf.writestr("__tensorlite__.npy", npy("|u1", (1 << 40,), b"{}"))
    with pytest.raises(CheckpointError, match="header is not a uint8 array of at most 64 MB"):
        tl.load(tmp_path / "x")


def test_save_refuses_what_load_would_not_read_back(tmp_path):
    deep = 0
    for _ in range(60):
        deep = (deep,)   # each tuple is two levels in the file
    with pytest.raises(ValueError, match="nested more than 100 levels"):
        tl.save(deep, tmp_path / "x")
    ok = 0
    for _ in range(45):
        ok = [ok]
    tl.save(ok, tmp_path / "x")
    assert tl.load(tmp_path / "x") == ok


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_a_fifo_or_a_device_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    for path in (tmp_path / "fifo", "/dev/zero", "/dev/null"):
        if os.path.exists(path):
            with pytest.raises(CheckpointError, match="not a regular file"):
                tl.load(path)


def test_cuda_tensors_load_anywhere_with_map_location_and_keep_their_bits(tmp_path):
    t = tl.tensor([[1.0, -2.5]], requires_grad=True)
    tl.save({"t": t}, tmp_path / "x")
    as_if_saved_on_cuda(tmp_path / "x")
    back = tl.load(tmp_path / "x", map_location="cpu")["t"]
    assert back.device == "cpu" and back.requires_grad and back.detach().numpy().tobytes() == t.detach().numpy().tobytes()
