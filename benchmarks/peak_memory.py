"""Peak memory of one training step: tensorlite (CuPy's memory pool) against PyTorch (its CUDA allocator).

    python -m benchmarks.peak_memory --preset course --device cuda
    python -m benchmarks.peak_memory --preset course --device cuda --dtype float16 --json mem.json

Both numbers count the bytes that live arrays and tensors hold, rounded up to each allocator's block
size, not what the allocator keeps cached for later (printed beside: the pool's held bytes, PyTorch's
reserved bytes). The step measured comes after --warmup steps, so AdamW's moments already exist and
the peak is that of a step in the middle of training.
* tensorlite on a GPU: a cupy.cuda.MemoryHook adds each block the pool hands out and subtracts each
  block given back; the peak is the bytes in use when the step began plus the highest that sum reached.
  Counting every allocation catches the short-lived peak inside backward that sampling used_bytes()
  between phases would miss.
* PyTorch on a GPU: torch.cuda.max_memory_allocated() after reset_peak_memory_stats().
* On the CPU (a smoke test of the same code): tensorlite through tracemalloc, to which NumPy reports
  its arrays; PyTorch's CPU allocator reports to neither, so its row says so.
"""
import sys
import tracemalloc

from tensorlite import backend

from . import common, precision
from .torch_gpt import TORCH_IMPORT_ERROR, torch, torch_device, torch_twin
from .train_step import add_size_args, build, resolve_size


def pool_peak(step, device):
    """{at_rest, peak, held} bytes of CuPy's default pool around one call of `step`."""
    cupy = backend.xp_for(device)

    class PeakHook(cupy.cuda.MemoryHook):
        name = "PeakHook"

        def __init__(self):
            self.now = self.high = 0  # bytes handed out since the hook was entered, and their maximum

        def malloc_postprocess(self, **kw):
            self.now += kw["mem_size"]
            self.high = max(self.high, self.now)

        def free_postprocess(self, **kw):
            self.now -= kw["mem_size"]

    with backend.device_context(device):
        pool = cupy.get_default_memory_pool()
        backend.synchronize(device)
        at_rest, hook = pool.used_bytes(), PeakHook()
        with hook:
            step()
        return {"at_rest_bytes": int(at_rest), "peak_bytes": int(at_rest + hook.high),
                "held_bytes": int(pool.total_bytes())}


def traced_peak(step):
    """The same from tracemalloc (already started), for the CPU."""
    at_rest, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    step()
    return {"at_rest_bytes": at_rest, "peak_bytes": tracemalloc.get_traced_memory()[1], "held_bytes": None}


def measure_tensorlite(size, device, args):
    missing = precision.tensorlite_missing(args.dtype, device)
    if missing:
        return {"unavailable": missing}
    on_cpu = device == "cpu"
    if on_cpu:
        tracemalloc.start()  # before the model is built, so that its weights are counted at rest
    try:
        with precision.flags(args.dtype):
            s = build("gpt", size, device, precision.param_dtype(args.dtype), args.seed)
            step = precision.tensorlite_step(s, args.dtype)
            for _ in range(args.warmup):
                step()
            return traced_peak(step) if on_cpu else pool_peak(step, device)
    finally:
        if on_cpu:
            tracemalloc.stop()


def measure_torch(size, device, args):
    if torch is None:
        return {"skipped": f"PyTorch is not importable ({TORCH_IMPORT_ERROR})"}
    if device == "cpu":
        return {"skipped": "PyTorch's CPU allocator reports its peak to neither tracemalloc nor torch.cuda"}
    if not torch.cuda.is_available():
        return {"skipped": f"this PyTorch build ({torch.__version__}) has no CUDA"}
    s = build("gpt", size, "cpu", precision.param_dtype(args.dtype), args.seed)  # weights only: the twin copies them
    dev = torch_device(device)
    twin = torch_twin(s.model, device)
    x, y = (torch.from_numpy(backend.to_numpy(t.data)).to(dev) for t in (s.x, s.y))
    opt = torch.optim.AdamW(twin.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)
    with precision.flags(args.dtype):
        step = precision.torch_step(twin, opt, x, y, device, args.dtype)
        for _ in range(args.warmup):
            step()
        torch.cuda.reset_peak_memory_stats(dev)
        at_rest = torch.cuda.memory_allocated(dev)
        step()
    return {"at_rest_bytes": int(at_rest), "peak_bytes": int(torch.cuda.max_memory_allocated(dev)),
            "held_bytes": int(torch.cuda.memory_reserved(dev))}


def _mib(n):
    return "-" if n is None else f"{n / 2**20:,.1f} MiB"


def _row(name, device, mode, r):
    if "peak_bytes" not in r:
        return [name, device, f"unavailable: {r['unavailable']}" if "unavailable" in r else f"skipped: {r['skipped']}"]
    return [name, device, mode, _mib(r["at_rest_bytes"]), _mib(r["peak_bytes"]), _mib(r["held_bytes"])]


def run(args, machine):
    print(f"size: {args.size} | mode {args.dtype} | one step after {args.warmup} warm-up step(s)\n")
    device = args.device
    if device != "cpu":
        ok, reason = common.gpu_status()
        if not ok:
            print(f"{device}: skipped: {reason}")
            return {"device": device, "dtype": args.dtype, "size": args.size, "skipped": reason}
        device = backend.normalize_device(device)
    tl, tt = measure_tensorlite(args.size, device, args), measure_torch(args.size, device, args)
    ratio = tl["peak_bytes"] / tt["peak_bytes"] if "peak_bytes" in tl and "peak_bytes" in tt else None
    print(common.format_table(["library", "device", "mode", "in use at rest", "peak during the step",
                               "held (pool / reserved)"],
                              [_row("tensorlite", device, args.dtype, tl), _row("PyTorch", device, args.dtype, tt)],
                              title="Memory of one training step"))
    if ratio is not None:
        print(f"\npeak tensorlite / PyTorch: {ratio:.2f}")
    return {"device": device, "dtype": args.dtype, "size": args.size, "tensorlite": tl, "torch": tt, "ratio": ratio}


def parse_args(argv):
    p = common.base_parser(__doc__.splitlines()[0])
    add_size_args(p)
    p.add_argument("--device", default="cuda", help="cuda[:N], or cpu for a smoke test")
    p.add_argument("--dtype", choices=precision.MODES, default="float32", help="precision mode (see precision.py)")
    p.add_argument("--warmup", type=int, default=2, help="steps before the measured one (AdamW's state exists after 1)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.warmup < 1:
        p.error(f"need --warmup >= 1 (the first step allocates AdamW's moments), got {args.warmup}")
    try:
        args.size = resolve_size(args)
    except ValueError as e:
        p.error(str(e))
    return args


def main(argv=None):
    common.run_benchmark("peak_memory", parse_args(argv), run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
