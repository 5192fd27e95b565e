"""What the benchmarks share: a machine description, timing, statistics, tables, JSON output, and the
frame of their main() (`run_benchmark`).

Timing rules used everywhere
----------------------------
* Warm up first: the first calls pay for allocation, BLAS thread start-up and,
  on a GPU, kernel compilation and the memory pool's first growth.
* On the CPU, time with ``time.perf_counter``. A call shorter than about a
  millisecond is repeated ``number`` times inside one sample (and the sample
  divided by ``number``) so the clock's resolution and Python's overhead of
  one loop turn do not dominate.
* On a GPU, CuPy returns before the kernel has run. Each sample is bracketed
  by CUDA events recorded on the stream, and we wait for the end event: the
  elapsed time is the device's own.
* Report the median of several samples with their spread (quartiles, min/max),
  never one run: other processes share the machine.
"""
import argparse
import ctypes
import datetime
import json
import os
import platform
import resource
import statistics
import sys
import time
from importlib import metadata

import numpy as np

from tensorlite import backend
from tensorlite.serialization import atomic_write

from . import plot


# ---------------------------------------------------------------- the machine
def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count():
    """Cores this process may run on (the affinity mask), else all logical cores."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def blas_info():
    """NumPy's BLAS: name and version from its build configuration."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return {"name": blas.get("name"), "version": blas.get("version"),
                "config": blas.get("openblas configuration")}
    except Exception:  # older NumPy, or a build without that section
        return {"name": "unknown"}


def blas_threads():
    """Threads NumPy's OpenBLAS will use, asked from the loaded library itself (None if unknown)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line}
    except OSError:
        libs = set()
    for path in sorted(libs):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                       "openblas_get_num_threads"):
            fn = getattr(lib, symbol, None)
            if fn is not None:
                fn.restype = ctypes.c_int
                return int(fn())
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return None


def _version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def gpu_status():
    """(True, None) if CuPy sees a GPU, else (False, why not)."""
    if not backend.cupy_installed():
        return False, "CuPy is not installed"
    if not backend.cuda_is_available():
        return False, "no CUDA GPU is visible"
    return True, None


def gpu_info():
    ok, reason = gpu_status()
    if not ok:
        return {"available": False, "reason": reason}
    cp = backend.xp_for("cuda:0")
    props = cp.cuda.runtime.getDeviceProperties(0)
    name = props["name"]
    return {"available": True, "name": name.decode() if isinstance(name, bytes) else name,
            "count": backend.cuda_device_count(), "memory_bytes": int(props["totalGlobalMem"]),
            "compute_capability": f"{props['major']}.{props['minor']}",
            "cuda_runtime": cp.cuda.runtime.runtimeGetVersion(), "cupy": cp.__version__}


def machine_info():
    """Everything a reader needs to judge a number: CPU, cores, GPU, library versions, BLAS."""
    cupy_version = None
    for dist in ("cupy", "cupy-cuda12x", "cupy-cuda11x", "cupy-cuda13x"):
        cupy_version = cupy_version or _version(dist)
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cores": cpu_count(),
        "logical_cpus": os.cpu_count(),
        "blas": blas_info(),
        "blas_threads": blas_threads(),
        "numpy": np.__version__,
        "cupy": cupy_version,
        "torch": _version("torch"),  # read from the installed metadata: importing torch is slow
        "gpu": gpu_info(),
    }


def describe_machine(info):
    """One or two lines for the top of a printed report."""
    gpu = info["gpu"]
    gpu_text = gpu["name"] if gpu["available"] else f"none ({gpu['reason']})"
    return (f"{info['date']} | CPU: {info['cpu']}, {info['cores']} cores | GPU: {gpu_text}\n"
            f"numpy {info['numpy']} ({info['blas'].get('name')} {info['blas'].get('version') or ''}, "
            f"{info['blas_threads']} threads) | cupy {info['cupy']} | torch {info['torch']} | "
            f"python {info['python']}")


# ---------------------------------------------------------------- timing
def summarize(samples):
    """Median and spread of a list of seconds."""
    s = sorted(samples)
    if len(s) >= 2:
        q1, _, q3 = statistics.quantiles(s, n=4, method="inclusive")
    else:
        q1 = q3 = s[0]
    return {"median_s": statistics.median(s), "q1_s": q1, "q3_s": q3, "min_s": s[0], "max_s": s[-1],
            "n": len(s)}


def measure(fn, repeats=5, device="cpu", warmup=2, min_sample_s=1e-3, max_number=10_000, sync=None):
    """Per-call seconds of ``fn()``: ``repeats`` samples after ``warmup`` calls.

    Each sample runs ``fn`` ``number`` times, with ``number`` chosen so a
    sample lasts at least ``min_sample_s``; on a GPU the sample is timed with
    CUDA events (device time), on the CPU with the host clock. ``sync``: for
    work that another library queues on a GPU (PyTorch), a function that waits
    for it (``torch.cuda.synchronize``), called at the end of each host-clock sample.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    gpu = device != "cpu"
    cp = backend.xp_for(device) if gpu else None
    for _ in range(warmup):
        fn()
    backend.synchronize(device if gpu else None)
    if sync is not None:
        sync()

    def sample(number):
        if gpu:
            start, end = cp.cuda.Event(), cp.cuda.Event()
            start.record()
            for _ in range(number):
                fn()
            end.record()
            end.synchronize()
            return cp.cuda.get_elapsed_time(start, end) / 1e3
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        if sync is not None:
            sync()
        return time.perf_counter() - t0

    number, elapsed = 1, sample(1)
    while elapsed < min_sample_s and number < max_number:  # calibrate (these runs also warm up)
        number = min(max_number, max(2 * number, int(1.2 * number * min_sample_s / max(elapsed, 1e-9))))
        elapsed = sample(number)
    return [sample(number) / number for _ in range(repeats)], number


def peak_host_rss_bytes():
    """This process's high-water resident memory (Linux reports kilobytes, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


# ---------------------------------------------------------------- printing
def fmt_time(seconds):
    """A time in the unit that keeps three or four significant digits."""
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def fmt_stats(st):
    """'median [q1, q3]' of a summarize() dict."""
    return f"{fmt_time(st['median_s'])} [{fmt_time(st['q1_s'])}, {fmt_time(st['q3_s'])}]"


def format_table(headers, rows, title=None):
    """Left-aligned first column, right-aligned others; a cell can be any object.

    A shorter row (e.g. device, model, 'skipped: why') is printed as is and does not widen the columns.
    """
    rows = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows if len(r) == len(headers)]) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [title] if title else []
    out += [line(headers), "-" * len(line(headers))]
    out += [line(r) if len(r) == len(headers) else "  ".join(r) for r in rows]
    return "\n".join(out)


# ---------------------------------------------------------------- command line and JSON
def base_parser(description, plot=False):
    """The flags every benchmark has; plot=True adds --plot (for those benchmarks/plot.py can draw)."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--repeats", type=int, default=None, help="timed samples per measurement")
    p.add_argument("--quick", action="store_true", help="small sizes and few repeats (a smoke test)")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the results as JSON to PATH")
    if plot:
        p.add_argument("--plot", metavar="PATH", default=None,
                       help="also draw the results to PATH (.png, .svg, .pdf; needs matplotlib)")
    return p


def payload_of(benchmark, args, results, machine):
    """What --json writes and --plot draws, as plain JSON values (a round trip through JSON text)."""
    payload = {"benchmark": benchmark, "args": vars(args), "machine": machine, "results": results}
    return json.loads(json.dumps(payload, default=_jsonable))


def write_json(path, benchmark, args, results, machine):
    payload = {"benchmark": benchmark, "args": vars(args), "machine": machine, "results": results}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(f):
        json.dump(payload, f, indent=2, default=_jsonable)
        f.write("\n")
    atomic_write(path, write, mode="w")
    return payload


def run_benchmark(name, args, run, machine=None):
    """The frame every benchmark's main() shares: the machine described on top, then `run(args, machine)`
    (which prints its own header and tables and returns JSON-able results), then the results written to
    --json and drawn to --plot. Returns the results. A --plot that cannot be drawn (no matplotlib, a suffix
    that names no format) stops the program with one line before anything is measured."""
    plot_path = getattr(args, "plot", None)
    if plot_path:
        try:
            plot.check_path(plot_path)
        except ValueError as exc:
            sys.exit(f"--plot: {exc}")
        missing = plot.matplotlib_missing()
        if missing:
            sys.exit(missing)
    machine = machine or machine_info()
    print(describe_machine(machine))
    results = run(args, machine)
    if args.json:
        write_json(args.json, name, args, results, machine)
        print(f"wrote {args.json}")
    if plot_path:
        plot.draw(payload_of(name, args, results, machine), plot_path)
        print(f"wrote {plot_path}")
    return results


def _jsonable(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.dtype):
        return str(obj)
    return str(obj)
