"""Matrix products and elementwise/reduction kernels: NumPy on the CPU against CuPy on a GPU.

    python -m benchmarks.matmul                      # full sweep
    python -m benchmarks.matmul --quick              # small sizes, few repeats
    python -m benchmarks.matmul --sizes 256 1024 --repeats 9 --json out.json
    python -m benchmarks.matmul --quick --plot matmul.png   # GFLOP/s against size, a line per library

Three tables:
* square products (n, n) @ (n, n) and batched ones (8, n, n) @ (8, n, n) over
  a sweep of n, in float32 and float64 (and float16 on the GPU);
* products with the shapes a GPT actually runs (a Linear layer on B*T rows,
  the attention scores q @ k^T per head) at the cpu and course presets;
* the elementwise and reduction kernels that dominate small models (add, mul,
  exp, sum over the last axis, a softmax built from them) on (n, n) arrays.

Each cell is the median time of ``--repeats`` samples with its quartiles, and
the throughput: GFLOP/s for products (2 m n k flops), GB/s of memory traffic
for elementwise kernels (bytes read + written). GPU times are device times
measured with CUDA events after a warm-up; the last column is the GPU's
speed-up over the CPU. Without CuPy or a GPU the GPU columns say why.

Where PyTorch is installed (and unless --no_torch), the square and batched products are timed in
torch.matmul too, on the CPU with as many threads as NumPy's BLAS and on the GPU, so that --plot draws
every library on one picture (benchmarks/plot.py).
"""
import sys

import numpy as np

from tensorlite import backend

from . import common
from .torch_gpt import TORCH_IMPORT_ERROR, torch
from .train_step import PRESETS

DEFAULT_SIZES = [64, 128, 256, 512, 1024, 2048]
QUICK_SIZES = [32, 64, 128]
BATCH = 8
MAX_BATCHED_N = 1024  # (8, 2048, 2048) products take seconds each on a small CPU


def model_shapes(presets=PRESETS):
    """(name, A shape, B shape) of the products in one GPT forward pass, at each preset's size."""
    shapes = []
    for name, p in presets.items():
        rows, c, t = p["batch_size"] * p["block_size"], p["n_embd"], p["block_size"]
        bh, hs = p["batch_size"] * p["n_head"], p["n_embd"] // p["n_head"]
        shapes += [(f"{name} preset: Linear {c}->{4 * c} on B*T={rows} rows", (rows, c), (c, 4 * c)),
                   (f"{name} preset: scores q@k^T, B*H={bh}, T={t}, hs={hs}", (bh, t, hs), (bh, hs, t))]
    return shapes


MODEL_SHAPES = model_shapes()
CPU_HALF_REASON = "NumPy has no BLAS float16 matmul"


def _softmax(xp, x):
    e = xp.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# name -> (function of (xp, x, y), number of array-sized reads + writes)
ELEMENTWISE = {
    "add x+y": (lambda xp, x, y: x + y, 3),
    "mul x*y": (lambda xp, x, y: x * y, 3),
    "exp(x)": (lambda xp, x, y: xp.exp(x), 2),
    "sum(x, -1)": (lambda xp, x, y: x.sum(axis=-1), 1),
    "softmax(x, -1)": (lambda xp, x, y: _softmax(xp, x), 2),  # the minimum traffic; unfused it is ~5x
}


def _arrays(shapes, dtype, device, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(dtype) for s in shapes]
    return [backend.to_device(a, device) for a in arrays]


def _time(fn, device, repeats):
    samples, number = common.measure(fn, repeats=repeats, device=device)
    return dict(common.summarize(samples), number=number)


def _cell(st, work, unit):
    """(time text, throughput text) for a measured dict, or the skip reason."""
    if "skipped" in st:
        return f"skipped: {st['skipped']}", "-"
    return common.fmt_stats(st), f"{work / st['median_s'] / 1e9:.1f} {unit}"


def _measure_pair(make_fn, shapes, dtype, repeats, gpu_ok, gpu_reason, cpu_skip=None):
    """CPU and GPU measurements of one case: make_fn(xp, *arrays) returns the thunk to time."""
    out = {}
    if cpu_skip:
        out["cpu"] = {"skipped": cpu_skip}
    else:
        arrays = _arrays(shapes, dtype, "cpu")
        out["cpu"] = _time(make_fn(np, *arrays), "cpu", repeats)
    if not gpu_ok:
        out["gpu"] = {"skipped": gpu_reason}
    else:
        arrays = _arrays(shapes, dtype, "cuda:0")
        out["gpu"] = _time(make_fn(backend.xp_for("cuda:0"), *arrays), "cuda:0", repeats)
    if "median_s" in out["cpu"] and "median_s" in out["gpu"]:
        out["speedup"] = out["cpu"]["median_s"] / out["gpu"]["median_s"]
    return out


def _measure_torch(shapes, dtype, repeats, gpu_ok, gpu_reason):
    """torch.matmul of the same operands on the CPU and the GPU (times as _measure_pair's)."""
    out = {}
    a, b = (torch.from_numpy(x) for x in _arrays(shapes, dtype, "cpu"))
    if dtype == "float16":
        out["cpu"] = {"skipped": "float16 products on a CPU are not what anyone trains with"}
    else:
        out["cpu"] = _time(lambda: torch.matmul(a, b), "cpu", repeats)
    if not gpu_ok or not torch.cuda.is_available():
        out["gpu"] = {"skipped": gpu_reason if not gpu_ok else f"this PyTorch build ({torch.__version__}) has no CUDA"}
    else:
        a, b = a.to("cuda:0"), b.to("cuda:0")
        samples, number = common.measure(lambda: torch.matmul(a, b), repeats=repeats, device="cpu",
                                         sync=torch.cuda.synchronize)
        out["gpu"] = dict(common.summarize(samples), number=number)
    return out


def _row(label, shape_text, dtype, res, work, unit):
    cpu_t, cpu_thr = _cell(res["cpu"], work, unit)
    gpu_t, gpu_thr = _cell(res["gpu"], work, unit)
    speedup = f"{res['speedup']:.1f}x" if "speedup" in res else "-"
    return [label, shape_text, str(np.dtype(dtype)), cpu_t, cpu_thr, gpu_t, gpu_thr, speedup]


HEADERS = ["case", "shape", "dtype", "CPU median [q1, q3]", "CPU rate", "GPU median [q1, q3]", "GPU rate",
           "GPU/CPU"]


def matmul_flops(a_shape, b_shape):
    """2 m n k per product, times the batch."""
    batch = int(np.prod(a_shape[:-2])) if len(a_shape) > 2 else 1
    m, k = a_shape[-2:]
    n = b_shape[-1]
    return 2 * batch * m * n * k


def run(args):
    gpu_ok, gpu_reason = common.gpu_status()
    if args.no_gpu:
        gpu_ok, gpu_reason = False, "--no_gpu given"
    use_torch = torch is not None and not args.no_torch
    if use_torch:
        torch.set_num_threads(common.blas_threads() or common.cpu_count())
    results = {"matmul": [], "model_shapes": [], "elementwise": []}
    tables = []
    matmul = lambda xp, a, b: (lambda: xp.matmul(a, b))  # noqa: E731

    rows, torch_rows = [], []
    for n in args.sizes:
        for batched in (False, True):
            if batched and n > args.max_batched_n:
                continue
            shape = (BATCH, n, n) if batched else (n, n)
            for dtype in args.dtypes:
                if dtype == "float16" and not gpu_ok:
                    continue  # a row of two skips says nothing
                res = _measure_pair(matmul, [shape, shape], dtype, args.repeats, gpu_ok, gpu_reason,
                                    cpu_skip=CPU_HALF_REASON if dtype == "float16" else None)
                flops = matmul_flops(shape, shape)
                label = "batched matmul" if batched else "matmul"
                if use_torch:
                    res["torch"] = _measure_torch([shape, shape], dtype, args.repeats, gpu_ok, gpu_reason)
                    torch_rows.append(_row(label, "x".join(map(str, shape)), dtype, res["torch"], flops,
                                           "GFLOP/s")[:-1])
                results["matmul"].append(dict(res, shape=list(shape), dtype=dtype, flops=flops))
                rows.append(_row(label, "x".join(map(str, shape)), dtype, res, flops, "GFLOP/s"))
    tables.append(common.format_table(HEADERS, rows, title="Matrix products (A @ B, both of the shape shown)"))
    if use_torch:
        tables.append(common.format_table(HEADERS[:-1], torch_rows, title="The same products in torch.matmul"))
    else:
        results["torch_skipped"] = "--no_torch given" if torch is not None else f"not installed ({TORCH_IMPORT_ERROR})"
        tables.append(f"PyTorch: not timed: {results['torch_skipped']}")

    if not args.quick:
        rows = []
        for label, a_shape, b_shape in MODEL_SHAPES:
            res = _measure_pair(matmul, [a_shape, b_shape], "float32", args.repeats, gpu_ok, gpu_reason)
            flops = matmul_flops(a_shape, b_shape)
            results["model_shapes"].append(dict(res, case=label, a_shape=list(a_shape), b_shape=list(b_shape),
                                                dtype="float32", flops=flops))
            rows.append(_row(label, f"{'x'.join(map(str, a_shape))} @ {'x'.join(map(str, b_shape))}", "float32",
                             res, flops, "GFLOP/s"))
        tables.append(common.format_table(HEADERS, rows, title="Products with a GPT's shapes (float32)"))

    rows = []
    for n in args.sizes:
        for name, (fn, traffic) in ELEMENTWISE.items():
            def make(xp, x, y, fn=fn):
                return lambda: fn(xp, x, y)
            res = _measure_pair(make, [(n, n), (n, n)], args.ew_dtype, args.repeats, gpu_ok, gpu_reason)
            nbytes = traffic * n * n * np.dtype(args.ew_dtype).itemsize
            results["elementwise"].append(dict(res, op=name, shape=[n, n], dtype=args.ew_dtype, bytes=nbytes))
            rows.append(_row(name, f"{n}x{n}", args.ew_dtype, res, nbytes, "GB/s"))
    tables.append(common.format_table(HEADERS, rows, title="Elementwise and reductions (rate: GB/s moved)"))
    return results, tables


def parse_args(argv):
    p = common.base_parser(__doc__.splitlines()[0], plot=True)
    p.add_argument("--sizes", type=int, nargs="+", default=None, help=f"n of the (n, n) operands "
                   f"(default {DEFAULT_SIZES}; --quick: {QUICK_SIZES})")
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64", "float16"],
                   choices=["float16", "float32", "float64"], help="matmul dtypes (float16 runs on the GPU only)")
    p.add_argument("--ew_dtype", default="float32", choices=["float16", "float32", "float64"],
                   help="dtype of the elementwise table")
    p.add_argument("--max_batched_n", type=int, default=MAX_BATCHED_N, help="largest n of the batched products")
    p.add_argument("--no_gpu", action="store_true", help="measure the CPU only")
    p.add_argument("--no_torch", action="store_true", help="do not time torch.matmul even where PyTorch is installed")
    args = p.parse_args(argv)
    if args.sizes is None:
        args.sizes = QUICK_SIZES if args.quick else DEFAULT_SIZES
    if args.repeats is None:
        args.repeats = 3 if args.quick else 7
    bad = [n for n in args.sizes if n < 1]
    if bad or args.repeats < 1:
        p.error(f"sizes and repeats must be positive, got sizes={args.sizes} repeats={args.repeats}")
    return args


def main(argv=None):
    def report(args, machine):
        print(f"median of {args.repeats} samples after warm-up; [q1, q3] = quartiles\n")
        results, tables = run(args)
        for t in tables:
            print(t + "\n")
        return results
    common.run_benchmark("matmul", parse_args(argv), report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
