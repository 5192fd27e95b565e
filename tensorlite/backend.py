"""Devices, array modules and random generators.

This is the only module that imports CuPy. Everything else asks it which array
module (``xp``) belongs to a device, so the same forward/backward code runs on
NumPy (``'cpu'``) and on CuPy (``'cuda'`` / ``'cuda:N'``).
"""
import ctypes
import math
import os
import sys

# OpenBLAS's idle worker threads spin for about 0.1 s (2^28 cycles) after each matrix product before they
# sleep. In a training step a product is followed by NumPy work on the same cores (attention rows even run
# in threads of our own), and the spinning workers take those cores from it: the cpu-preset GPT step was
# 11% slower and its attention 60% slower. OPENBLAS_THREAD_TIMEOUT=4 (2^4 cycles) lets them sleep at once.
# OpenBLAS reads it when it loads, at NumPy's import, so it is set here, before `import numpy`; train/ and
# benchmarks/ import tensorlite first for that reason. A value the user set is kept. A script that imports
# NumPy before tensorlite gets OpenBLAS's default; it should set the variable in its environment.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

# Under mpiexec several processes (ranks) share this machine's cores. Each gets cores / ranks-on-this-machine
# BLAS threads (and as many threads of its own, `host_threads`), set here before NumPy loads its BLAS, so the
# ranks do not fight over the cores. The launchers say how many ranks share the machine: MPICH and Intel MPI
# (Hydra) in MPI_LOCALNRANKS, Open MPI in OMPI_COMM_WORLD_LOCAL_SIZE, MVAPICH in MV2_COMM_WORLD_LOCAL_SIZE.
# A thread count the user set is kept; a launcher that already bound each rank to its own cores (the CPU
# affinity is then smaller than the machine) is trusted as it is.
LOCAL_RANK_VARIABLES = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def ranks_on_this_machine(environ=os.environ):
    """How many processes of an MPI job run on this machine (1 outside mpiexec)."""
    for name in LOCAL_RANK_VARIABLES:
        try:
            return max(1, int(environ[name]))
        except (KeyError, ValueError):
            continue
    return 1


def cores_per_process(environ=os.environ):
    """The cores this process may use: its CPU affinity, shared evenly by the ranks on this machine."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if usable < (os.cpu_count() or usable):  # bound by the launcher (or by taskset): already its own share
        return usable
    return max(1, usable // ranks_on_this_machine(environ))


if ranks_on_this_machine() > 1 and not any(name in os.environ for name in THREAD_VARIABLES):
    for _name in THREAD_VARIABLES:
        os.environ[_name] = str(cores_per_process())

import numpy as np  # noqa: E402 (after the variable above)

try:  # CuPy is optional: importing tensorlite must work without it.
    import cupy as _cupy
except Exception as exc:  # ImportError, or a broken CUDA install
    _cupy = None
    _CUPY_IMPORT_ERROR = exc
else:
    _CUPY_IMPORT_ERROR = None


# ---------------------------------------------------------------- host memory
def keep_freed_host_memory():
    """Ask glibc's malloc to keep freed memory for reuse instead of handing it back to the OS.

    A training step makes and frees hundreds of temporary arrays, up to hundreds of MB.
    By default glibc serves each large one from fresh pages (mmap) and returns it on
    free, so every temporary page-faults again, and trims the heap after each step:
    20% of a GPT's step on the CPU goes to page faults. Serving every block from the
    heap and never trimming it makes freed blocks reusable, as the frameworks' own
    allocators do; the cost is that the process keeps its peak memory. Runs once at
    import (glibc only); set TENSORLITE_KEEP_HOST_MEMORY=0 to leave malloc alone.
    Returns True if applied.
    """
    if os.environ.get("TENSORLITE_KEEP_HOST_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
        return bool(libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, -1))
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False


keep_freed_host_memory()


def physical_memory():
    """This machine's RAM in bytes, or None where the system does not say: the limit used to refuse, before
    allocating, a model, batch or file that cannot fit."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


# ---------------------------------------------------------------- host threads
host_threads = cores_per_process()  # the threads of parallel_for: one per core of this process


_workers = None
if hasattr(os, "register_at_fork"):  # a forked child has none of the parent's threads
    os.register_at_fork(after_in_child=lambda: globals().update(_workers=None))


def parallel_for(n, body, max_parts=None):
    """Run body(slice) over [0, n) split into one contiguous part per CPU core, in threads.

    NumPy releases the GIL inside its loops and BLAS calls, so independent rows
    (the batch of an attention) run on all cores, where one NumPy call would use
    one. Small n, one core, or a call made while another runs (from a body, or
    from another Python thread) runs body(slice(0, n)) inline. max_parts caps the parts.
    """
    global _workers
    parts = min(host_threads, n, n if max_parts is None else max_parts)
    workers = _workers
    if parts >= 2 and (workers is None or workers.broken or len(workers.inboxes) < parts - 1):
        from .workers import Workers  # (a test may change host_threads)
        workers = _workers = Workers(host_threads - 1)
    if parts < 2 or not workers.busy.acquire(blocking=False):
        body(slice(0, n))
        return
    try:
        bounds = [n * i // parts for i in range(parts + 1)]
        workers.run(body, [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])])
    finally:
        workers.busy.release()


# Row-wise work (layer norm) goes to the cores from this many elements on. Measured on a 2-core AMD EPYC,
# layer norm forward + backward of (rows, 128) with a residual: 65k elements 0.38 ms in one thread, 0.50 split;
# 131k: 0.65 and 0.66; 262k (the cpu preset): 1.19 and 0.92. Each part makes ~15 NumPy calls, and the two
# threads hand Python's lock to each other between them, which costs more than a second core gains on small
# arrays. (Attention, with more work per element, splits from its own PARALLEL_SCORES on.)
PARALLEL_ELEMENTS = 1 << 17


def parallel_rows(xp, rows, row_size, part, min_elements=None):
    """part(slice of rows) over [0, rows): split over the CPU cores (parallel_for) when the rows hold at
    least `min_elements` (default PARALLEL_ELEMENTS) elements, into parts of at least half that many (so
    more cores do not make the parts too small to pay for their hand-offs); else one call (always on a GPU)."""
    least = PARALLEL_ELEMENTS if min_elements is None else min_elements
    total = rows * row_size
    if xp is np and total >= least:
        parallel_for(rows, part, max_parts=max(1, 2 * total // max(least, 1)))
    else:
        part(slice(0, rows))


# ---------------------------------------------------------------- devices
def cupy_installed():
    return _cupy is not None


def cuda_device_count():
    if _cupy is None:
        return 0
    try:
        return _cupy.cuda.runtime.getDeviceCount()
    except Exception:  # no driver, no GPU visible
        return 0


def cuda_is_available():
    return cuda_device_count() > 0


_tf32 = False


def tf32_enabled():
    return _tf32


def set_tf32(enabled):
    """Let float32 matrix products on CUDA use TF32 tensor cores (inputs rounded to a 10-bit mantissa,
    sums in float32): cuBLAS's compute type for float32 in CuPy. No effect on the CPU, whose BLAS has no
    TF32. CuPy asks the device for its compute capability here, so without a GPU only the flag is kept."""
    global _tf32
    _tf32 = bool(enabled)
    if cuda_is_available():
        linalg = _cupy._core._routines_linalg
        linalg.set_compute_type(_cupy.float32, linalg.COMPUTE_TYPE_TF32 if _tf32 else linalg.COMPUTE_TYPE_DEFAULT)


def nccl_communicator(size, rank):
    """CuPy's NCCL communicator for `size` processes, one GPU each (the current device), its unique id
    passed around over MPI (mpi4py): cupyx.distributed.NCCLBackend. Raises RuntimeError without NCCL."""
    from cupy.cuda import nccl
    if not nccl.available:
        raise RuntimeError("CuPy cannot load NCCL, which reduces the gradients of the ranks on their GPUs; install "
                           "it with `pip install nvidia-nccl-cu12` (for CUDA 12) and run again")
    from cupyx.distributed import NCCLBackend
    return NCCLBackend(size, rank, use_mpi=True)


def _cuda_unavailable_reason():
    if _cupy is None:
        return ("CuPy is not installed (or failed to import: %s). Install the CUDA extra with "
                "`pip install -e .[cuda]` (a cupy-cudaXXx wheel matching your CUDA), or use device='cpu'."
                % _CUPY_IMPORT_ERROR)
    return "CuPy is installed but no CUDA GPU is visible (check the driver and CUDA_VISIBLE_DEVICES), or use device='cpu'."


def normalize_device(device):
    """Turn 'cpu', 'cuda', 'cuda:1', None or a device-like object into 'cpu' or 'cuda:N'."""
    if device is None:
        return "cpu"
    device = str(device).strip().lower()
    if device == "cpu":
        return "cpu"
    if device == "cuda" or device.startswith("cuda:"):
        index = 0
        if device != "cuda":
            try:
                index = int(device[5:])
            except ValueError:
                raise ValueError(f"invalid device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'") from None
        count = cuda_device_count()
        if count == 0:
            raise RuntimeError(f"device {device!r} was asked for, but CUDA is not available: "
                               + _cuda_unavailable_reason())
        if not 0 <= index < count:
            raise RuntimeError(f"device {device!r} was asked for, but only {count} CUDA device(s) are visible")
        return f"cuda:{index}"
    raise ValueError(f"invalid device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'")


def device_of(array):
    """The device string an array lives on."""
    if isinstance(array, np.ndarray) or np.isscalar(array):
        return "cpu"
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return f"cuda:{array.device.id}"
    raise TypeError(f"expected a numpy or cupy array, got {type(array).__name__}")


def xp_for(device):
    """The array module (numpy or cupy) of a normalized device string."""
    return np if device == "cpu" else _cupy


def get_array_module(array):
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy
    return np


class _NullContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def device_context(device):
    """Context manager that makes `device` CuPy's current device (no-op on cpu)."""
    if device == "cpu":
        return _NullContext()
    return _cupy.cuda.Device(int(device.split(":")[1]))


def to_device(array, device):
    """Copy an array to `device` (returns it unchanged if it is already there)."""
    if device_of(array) == device:
        return array
    if device == "cpu":
        run_deferred_checks()
        return _cupy.asnumpy(array)
    with device_context(device):
        return _cupy.asarray(array)


def to_numpy(array):
    """A NumPy array of `array` (itself when it is one; a NumPy scalar becomes a 0-d array)."""
    run_deferred_checks()
    if isinstance(array, np.ndarray):
        return array
    return np.asarray(array) if _cupy is None or isinstance(array, np.generic) else _cupy.asnumpy(array)


def synchronize(device=None):
    """Wait for all queued GPU work on `device` (no-op on cpu)."""
    run_deferred_checks()
    if device is None or device == "cpu" or _cupy is None:
        return
    with device_context(device):
        _cupy.cuda.Device().synchronize()


# ---------------------------------------------------------------- range checks that do not stall a GPU
# A check such as "every embedding index is < num_embeddings" needs the answer on the host. On a GPU
# reading it makes the host wait until the device has run all the work queued before it, so a check
# in every embedding of every training step would leave the GPU idle between steps. There the test
# is computed on the device and queued instead; the queue is read at the next read of device data
# (Tensor.item(), .numpy(), .tolist(), a copy to the CPU, synchronize()), when MAX_DEFERRED checks
# are waiting, or by run_deferred_checks(). The error is the same, raised late, as CUDA reports its
# own errors. On the CPU the answer costs nothing to read, so the check is immediate.
MAX_DEFERRED = 256
defer_checks_on_cpu = False  # tests set this to run the GPU's deferred path on NumPy
_deferred = []  # (any_bad, first_bad_value, make_error): two 0-d device arrays and a function


def check_values(bad, values, make_error):
    """Raise make_error(v), v being the first of `values` at which the boolean array `bad` is True,
    if there is one: now on the CPU, at the next read of device data on a GPU (see above).

    Returns True if the check was deferred: the caller must then keep its kernels in bounds
    (clip the indices), since the bad values are still there when they run.
    """
    if isinstance(bad, np.ndarray) and not defer_checks_on_cpu:
        if bad.any():
            raise make_error(int(values.reshape(-1)[bad.reshape(-1).argmax()]))
        return False
    bad = bad.reshape(-1)
    _deferred.append((bad.any(), values.reshape(-1).take(bad.argmax()), make_error))
    if len(_deferred) >= MAX_DEFERRED:  # bounded: a loop that never reads a value still gets its errors
        run_deferred_checks()
    return True


def run_deferred_checks():
    """Read the queued checks (one wait for the device) and raise the first error among them."""
    global _deferred
    if not _deferred:
        return
    pending, _deferred = _deferred, []
    for any_bad, first, make_error in pending:
        if bool(any_bad):
            err = make_error(int(first))
            raise type(err)(f"{err} [this check ran on the device and is reported at the first read of a "
                            "value after it, so the call that failed came before this line]")


# ---------------------------------------------------------------- special functions
def erf(x):
    """Error function, elementwise, on either array module."""
    if _cupy is not None and isinstance(x, _cupy.ndarray):
        import cupyx.scipy.special
        return cupyx.scipy.special.erf(x)
    try:  # SciPy is optional; it is only faster than the fallback below.
        from scipy.special import erf as _erf
        return _erf(x).astype(x.dtype, copy=False)
    except ImportError:
        return np.vectorize(math.erf, otypes=[x.dtype])(x)


# ---------------------------------------------------------------- random generators
class Generator:
    """A reproducible random stream for one device.

    On the CPU it is a NumPy PCG64 generator. On a GPU each draw reseeds CuPy's
    Philox generator from a host PCG64 stream, so the whole state is a small
    JSON-able dict on both devices (which lets checkpoints resume exactly).
    """

    def __init__(self, device, seed=0):
        self.device = device
        self.manual_seed(seed)

    def manual_seed(self, seed):
        self._host = np.random.Generator(np.random.PCG64(seed))
        self._cuda = None

    def get_state(self):
        return self._host.bit_generator.state

    def set_state(self, state):
        self._host.bit_generator.state = state

    def _cuda_rs(self):
        seed = int(self._host.integers(0, 2**63 - 1))
        with device_context(self.device):
            if self._cuda is None:
                from cupy.cuda import curand
                self._cuda = _cupy.random.RandomState(seed, method=curand.CURAND_RNG_PSEUDO_PHILOX4_32_10)
            else:
                self._cuda.seed(seed)
        return self._cuda

    def _draw(self, host_method, cuda_method, shape, dtype):
        """Draw in float32 or float64 (the dtypes the generators make); other float dtypes are cast after."""
        native = dtype if np.dtype(dtype) in (np.float32, np.float64) else np.float32
        if self.device == "cpu":
            return getattr(self._host, host_method)(shape, dtype=native).astype(dtype, copy=False)
        with device_context(self.device):
            return getattr(self._cuda_rs(), cuda_method)(shape, dtype=native).astype(dtype, copy=False)

    def random(self, shape, dtype):
        return self._draw("random", "random_sample", shape, dtype)

    def normal(self, shape, dtype):
        return self._draw("standard_normal", "standard_normal", shape, dtype)

    def integers(self, low, high, shape, dtype):
        if self.device == "cpu":
            return self._host.integers(low, high, shape, dtype=dtype)
        with device_context(self.device):
            return self._cuda_rs().randint(low, high, shape, dtype=dtype)


_generators = {}
_default_seed = 0


def generator(device):
    gen = _generators.get(device)
    if gen is None:
        index = 0 if device == "cpu" else 1 + int(device.split(":")[1])
        gen = _generators[device] = Generator(device, _default_seed * 1000003 + index)
    return gen


def manual_seed(seed):
    """Seed the generators of every device; the same seed gives the same run on one device."""
    global _default_seed
    _default_seed = int(seed)
    _generators.clear()


def get_rng_state():
    """States of all generators used so far, plus the seed: JSON-able, for checkpoints."""
    return {"seed": _default_seed, "devices": {d: g.get_state() for d, g in _generators.items()}}


def set_rng_state(state):
    manual_seed(state["seed"])
    for device, gen_state in state["devices"].items():
        if device != "cpu" and not cuda_is_available():
            continue
        generator(device).set_state(gen_state)
