"""Devices: availability, device strings, clear errors without CUDA, mixing devices, import without CuPy."""
import importlib.util
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import tensorlite as tl
from tensorlite import backend


@pytest.fixture
def no_cupy(monkeypatch):
    """Pretend CuPy failed to import."""
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_CUPY_IMPORT_ERROR", ImportError("No module named 'cupy'"))


@pytest.fixture
def cupy_without_gpu(monkeypatch):
    """Pretend CuPy imported but sees no GPU."""
    monkeypatch.setattr(backend, "_cupy", object())
    monkeypatch.setattr(backend, "cuda_device_count", lambda: 0)


def test_is_available_is_honest():
    available = tl.cuda.is_available()
    assert isinstance(available, bool)
    if importlib.util.find_spec("cupy") is None:
        assert not available and tl.cuda.device_count() == 0
    assert available == (backend.cuda_device_count() > 0)


def test_is_available_false_without_cupy(no_cupy):
    assert tl.cuda.is_available() is False
    assert tl.cuda.device_count() == 0


@pytest.mark.parametrize("spelling", ["cuda", "cuda:0", "CUDA:0"])
def test_cuda_without_cupy_raises_one_clear_error(no_cupy, spelling):
    with pytest.raises(RuntimeError, match=r"CUDA is not available: CuPy is not installed.*No module named 'cupy'"):
        tl.zeros(2, device=spelling)
    with pytest.raises(RuntimeError, match="CuPy is not installed"):
        tl.tensor([1.0]).to(spelling)
    with pytest.raises(RuntimeError, match="CuPy is not installed"):
        tl.tensor([1.0], device=spelling)


def test_cuda_without_gpu_says_so(cupy_without_gpu):
    with pytest.raises(RuntimeError, match="CUDA is not available.*no CUDA GPU is visible"):
        tl.randn(2, device="cuda")
    assert not tl.cuda.is_available()


def test_cuda_index_out_of_range(monkeypatch):
    monkeypatch.setattr(backend, "_cupy", object())
    monkeypatch.setattr(backend, "cuda_device_count", lambda: 1)
    assert backend.normalize_device("cuda") == "cuda:0"
    assert backend.normalize_device("cuda:0") == "cuda:0"
    with pytest.raises(RuntimeError, match=r"'cuda:3'.*only 1 CUDA device"):
        backend.normalize_device("cuda:3")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "cuda:", "", "cpu:0", "tpu", 0])
def test_invalid_device_strings_raise_valueerror(bad):
    with pytest.raises(ValueError, match="invalid device"):
        backend.normalize_device(bad)
    with pytest.raises(ValueError, match="invalid device"):
        tl.ones(2, device=bad)


@pytest.mark.parametrize("spelling", [None, "cpu", "CPU", " cpu "])
def test_cpu_spellings(spelling):
    assert backend.normalize_device(spelling) == "cpu"
    assert tl.zeros(1, device=spelling).device == "cpu"


def test_array_modules_on_cpu():
    a = np.ones(3)
    assert backend.get_array_module(a) is np
    assert backend.xp_for("cpu") is np
    assert backend.device_of(a) == "cpu" and backend.device_of(np.float32(1)) == "cpu"
    assert backend.to_device(a, "cpu") is a
    assert backend.to_numpy(a) is a
    backend.synchronize("cpu")
    tl.cuda.synchronize("cpu")
    with pytest.raises(TypeError, match="numpy or cupy array"):
        backend.device_of([1, 2])


def test_erf_matches_math():
    x = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(backend.erf(x), [math.erf(v) for v in x], rtol=1e-12, atol=1e-15)


def test_mixing_devices_message_names_both_devices():
    # CPU-only: fake a tensor's device string; the check runs before any data is touched
    a = tl.ones(2)
    b = tl.ones(2)
    b.device = "cuda:0"
    with pytest.raises(RuntimeError, match=r"same device, but found cpu and cuda:0.*\.to\("):
        a * b
    with pytest.raises(RuntimeError, match=r"cpu.*cuda:0"):
        tl.cat([a, b])
    with pytest.raises(RuntimeError, match=r"cpu.*cuda:0"):
        a @ b


@pytest.mark.cuda
def test_mixing_real_devices_raises():
    a = tl.ones(2, device="cuda")
    b = tl.ones(2)
    for op in (lambda: a + b, lambda: b * a, lambda: a @ b, lambda: a < b, lambda: tl.cat([a, b])):
        with pytest.raises(RuntimeError, match="cuda:0"):
            op()


def test_device_fixture_round_trip(device):
    x = tl.tensor([1.0, 2.0], device=device)
    assert x.device == backend.normalize_device(device)
    assert x.to("cpu").numpy().tolist() == [1.0, 2.0]
    assert backend.get_array_module(x.data) is x.xp


def test_import_works_without_cupy():
    code = ("import sys; sys.modules['cupy'] = None\n"  # makes `import cupy` raise ImportError
            "import tensorlite as tl\n"
            "assert not tl.cuda.is_available()\n"
            "assert (tl.ones(2) * 2).tolist() == [2.0, 2.0]\n"
            "try:\n    tl.zeros(1, device='cuda')\nexcept RuntimeError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert out.returncode == 0, out.stderr
    assert "CuPy is not installed" in out.stdout


def test_parallel_for_covers_every_index_once(monkeypatch):
    for threads in (1, 2, 3):
        monkeypatch.setattr(backend, "host_threads", threads)
        for n in (0, 1, 2, 5, 17):
            seen = []
            backend.parallel_for(n, lambda r: seen.extend(range(n)[r]))
            assert sorted(seen) == list(range(n))


def test_parallel_for_raises_the_workers_error(monkeypatch):
    monkeypatch.setattr(backend, "host_threads", 2)

    def body(r):
        raise ValueError(f"rows {r}")

    with pytest.raises(ValueError, match="rows"):
        backend.parallel_for(4, body)


def test_parallel_rows_splits_large_work_into_parts_of_at_least_half_the_threshold(monkeypatch):
    monkeypatch.setattr(backend, "host_threads", 8)
    for rows, expected in ((30, 1), (40, 2), (100, 5), (1000, 8)):  # 10 elements a row, threshold 400
        parts = []
        backend.parallel_rows(np, rows, 10, parts.append, min_elements=400)
        assert len(parts) == expected and sorted(i for p in parts for i in range(rows)[p]) == list(range(rows))
    parts = []
    backend.parallel_rows(None, 1000, 10, parts.append, min_elements=400)  # not NumPy (a GPU): one call
    assert parts == [slice(0, 1000)]


def test_parallel_for_inside_parallel_for_runs_inline(monkeypatch):
    monkeypatch.setattr(backend, "host_threads", 2)
    seen = []
    backend.parallel_for(4, lambda r: backend.parallel_for(3, lambda inner: seen.append((r.start, inner))))
    assert sorted(seen) == [(0, slice(0, 3)), (2, slice(0, 3))]


def test_parallel_for_after_an_interrupted_run_starts_new_workers(monkeypatch):
    """Ctrl-C in the caller's part while a worker still runs: the next call gets fresh workers, whose answers
    are its own."""
    import threading
    monkeypatch.setattr(backend, "host_threads", 2)
    release = threading.Event()

    def body(r):
        if r.start == 0:
            raise KeyboardInterrupt
        release.wait(5)

    with pytest.raises(KeyboardInterrupt):
        backend.parallel_for(2, body)
    release.set()
    seen = []
    backend.parallel_for(6, lambda r: seen.extend(range(6)[r]))
    assert sorted(seen) == list(range(6))


@pytest.mark.parametrize("given,expected", [(None, "4"), ("12", "12")])
def test_idle_blas_threads_sleep_at_once_unless_the_user_says_otherwise(given, expected):
    """tensorlite sets OPENBLAS_THREAD_TIMEOUT before NumPy loads OpenBLAS (train/ imports it first)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if given is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = given
    # what the variable is at the moment NumPy is first imported (when OpenBLAS reads it), not afterwards
    code = ("import os, sys\n"
            "seen = []\n"
            "class Watch:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'numpy' and not seen:\n"
            "            seen.append(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))\n"
            "sys.meta_path.insert(0, Watch())\n"
            "import train\n"
            "print(seen[0])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected
