"""One full training step (forward, backward, AdamW) of the bigram model and the GPT, and where its time goes.

    python -m benchmarks.train_step                          # cpu preset, bigram + GPT, cpu (+ cuda if present)
    python -m benchmarks.train_step --preset course --device cuda
    python -m benchmarks.train_step --n_embd 256 --n_layer 2 --steps 20 --json out.json
    mpiexec -n 2 python -m benchmarks.train_step --model gpt --device cpu   # data-parallel: see below

For each model and device it reports the median step time after a warm-up,
tokens per second (batch_size * block_size / step time), the peak memory (the
process's host high-water RSS; on a GPU the CuPy memory pool's bytes in use
and held) and a breakdown of one step:
* by phase: forward (model(x, y)), backward (loss.backward()), optimizer
  (zero_grad + AdamW.step);
* by Function: the forward and backward time of each Function type, summed
  over a step, from tensorlite.profiler (device-synchronised on a GPU, so the
  numbers are kernel times, but also slower than an unprofiled step).

Under mpiexec -n N it measures the global step of data-parallel training (train/distributed.py): every
rank builds the same model from the same seed and takes its share, batch_size / N sequences, of one global
batch (batch_size is the global batch, so tokens per step do not depend on N); a step is forward,
backward, GradientReducer.reduce (the one all-reduce of every gradient), AdamW. The step time of each step
is the slowest rank's, and the all-reduce call is timed on its own (see `reduce`). Rank 0 alone prints and
writes --json; the per-Function profile is rank 0's.
"""
import contextlib
import dataclasses
import io
import sys
import time

import numpy as np

import tensorlite
import tensorlite.optim
import tensorlite.profiler
from models import build_model, config_from
from tensorlite import backend
from train import distributed
from train.errors import DeviceError, UserError
from train.presets import PRESETS as TRAIN_PRESETS

from . import common

# The sizes everything is measured at are train.gpt's presets (train/presets.py decides them): course,
# the GPT of the course (B=128, T=64, n_embd=384, 8 layers, 8 heads, dropout 0.2); cpu, the CPU-sized
# GPT that trains in minutes on two cores (B=32, T=64, n_embd=128, 4 layers, 4 heads). The training data
# decides the vocabulary; the benchmarks use the course's character vocabulary of 65 (tiny Shakespeare),
# the size PyTorch's reference times were taken at, so the numbers compare.
MODEL_FIELDS = ("batch_size", "block_size", "n_embd", "n_layer", "n_head", "dropout")
VOCAB_SIZE = 65
PRESETS = {name: dict({k: preset[k] for k in MODEL_FIELDS}, vocab_size=VOCAB_SIZE)
           for name, preset in TRAIN_PRESETS.items()}
SIZE_FIELDS = ("batch_size", "block_size", "n_embd", "n_layer", "n_head", "vocab_size", "dropout")


@dataclasses.dataclass
class Setup:
    """A model, its optimizer and one fixed batch, ready to step."""
    model: object
    optimizer: object
    x: object
    y: object
    device: str
    tokens: int  # of the global batch (all ranks together)
    reducer: object = None  # a GradientReducer under mpiexec, else None
    reduce_s: float = 0.0  # the last all-reduce's seconds


def build(model_name, size, device, dtype="float32", seed=0, lr=1e-3, activation="relu", share=(0, 1)):
    """Model + AdamW + a random batch of token ids on `device` (the data loader is not what is measured).
    share=(rank, ranks): this rank's rows of the global batch, so the ranks of a run see different data."""
    tensorlite.manual_seed(seed)
    model = build_model(model_name, config_from(model_name, dict(size, activation=activation)))
    model = model.to(device=device, dtype=dtype)
    model.train()
    optimizer = tensorlite.optim.AdamW(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    shape = (size["batch_size"], size["block_size"])
    rank, ranks = share
    rows = slice(rank * shape[0] // ranks, (rank + 1) * shape[0] // ranks)
    x = tensorlite.tensor(rng.integers(0, size["vocab_size"], shape)[rows], device=device)
    y = tensorlite.tensor(rng.integers(0, size["vocab_size"], shape)[rows], device=device)
    return Setup(model, optimizer, x, y, device, shape[0] * shape[1])


def reduce(s, loss):
    """The all-reduce of the gradients, timed alone. On a GPU the device is synchronised before (so the
    backward's queued kernels are not counted) and after. The time includes waiting for the ranks that
    finish their backward later; the rank that arrives last waits for no one, so the minimum over the
    ranks is the all-reduce itself."""
    backend.synchronize(s.device)
    t0 = time.perf_counter()
    loss = s.reducer.reduce(loss)
    backend.synchronize(s.device)
    s.reduce_s = time.perf_counter() - t0
    return loss


def train_step(s):
    """forward, backward, (under mpiexec) the all-reduce, AdamW; waits for the device so the time is the
    step's."""
    _, loss = s.model(s.x, s.y)
    s.optimizer.zero_grad()
    loss.backward()
    if s.reducer is not None:
        loss = reduce(s, loss)
    s.optimizer.step()
    backend.synchronize(s.device)
    return loss


def phase_names(s):
    return ("forward", "backward") + (("allreduce",) if s.reducer is not None else ()) + ("optimizer",)


def phase_times(s):
    """Seconds of each of phase_names(s) in one step, the device synchronised between phases."""
    t0 = time.perf_counter()
    _, loss = s.model(s.x, s.y)
    backend.synchronize(s.device)
    t1 = time.perf_counter()
    loss.backward()
    backend.synchronize(s.device)
    times = [t1 - t0, time.perf_counter() - t1]
    if s.reducer is not None:
        reduce(s, loss)
        times.append(s.reduce_s)
    t2 = time.perf_counter()
    s.optimizer.step()
    s.optimizer.zero_grad()
    backend.synchronize(s.device)
    return times + [time.perf_counter() - t2]


def over_ranks(world, values, op):
    """Each of `values` (seconds) reduced over the ranks with op "MAX" or "MIN", in one Allreduce on
    MPI's communicator (world.allreduce_sum_ only sums); the values themselves in one process."""
    if world.size == 1:
        return [float(v) for v in values]
    buf = np.array(values, dtype=np.float64)
    world.comm.Allreduce(world.MPI.IN_PLACE, buf, op=getattr(world.MPI, op))
    return buf.tolist()


def allreduce_latency(world, reducer, repeats=20):
    """Seconds of an all-reduce of two numbers, the smallest message: its latency, which benchmarks.data_parallel
    needs to tell the bandwidth from a measured all-reduce. Each after a barrier; the median over `repeats`
    of the minimum over the ranks."""
    with backend.device_context(reducer.device):
        buf = reducer.buffer[-2:].copy()
    samples = []
    for _ in range(repeats):
        world.comm.Barrier()
        t0 = time.perf_counter()
        world.allreduce_sum_(buf)
        backend.synchronize(reducer.device)
        samples.append(time.perf_counter() - t0)
    return float(np.median(over_ranks(world, samples, "MIN")))


def blas_threads():
    """Threads of NumPy's BLAS: threadpoolctl's answer where it is installed, else the loaded library's own
    (common.blas_threads, which falls back on OPENBLAS_NUM_THREADS)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return common.blas_threads()
    counts = [lib["num_threads"] for lib in threadpool_info() if lib.get("user_api") == "blas"]
    return counts[0] if counts else common.blas_threads()


def gpu_memory(device):
    if device == "cpu":
        return None
    pool = backend.xp_for(device).get_default_memory_pool()
    return {"pool_used_bytes": int(pool.used_bytes()), "pool_total_bytes": int(pool.total_bytes())}


def run_one(model_name, size, device, args, world=None):
    """Everything measured for one (model, device): a JSON-able dict. Under mpiexec (world.size > 1) every
    rank calls it alike; each step's time is then the slowest rank's (an Allreduce MAX of the samples)."""
    world = world or distributed.World()
    if device != "cpu":
        backend.xp_for(device).get_default_memory_pool().free_all_blocks()  # so 'held' is this model's high-water
    s = build(model_name, size, device, args.dtype, args.seed, share=(world.rank, world.size))
    if world.size > 1:
        distributed.broadcast_model(world, s.model)  # as train/ does (the same seed made them equal already)
        s.reducer = distributed.GradientReducer(s.model.parameters(), world)
    n_params = sum(p.numel() for p in s.model.parameters())
    for _ in range(args.warmup):
        train_step(s)
    samples, reduce_samples = [], []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        train_step(s)
        samples.append(time.perf_counter() - t0)
        reduce_samples.append(s.reduce_s)
    samples = over_ranks(world, samples, "MAX")
    stats = common.summarize(samples)
    allreduce = None
    if s.reducer is not None:
        alone, waited = over_ranks(world, reduce_samples, "MIN"), over_ranks(world, reduce_samples, "MAX")
        allreduce = {"bytes": int(s.reducer.buffer.nbytes), "median_s": float(np.median(alone)),
                     "share": float(np.median(alone)) / stats["median_s"], "samples_s": alone,
                     "with_wait_median_s": float(np.median(waited)), "with_wait_samples_s": waited,
                     "latency_s": allreduce_latency(world, s.reducer)}
    phases = np.median([phase_times(s) for _ in range(args.profile_steps)], axis=0)
    with tensorlite.profiler.profile(sync=device != "cpu") as prof:
        for _ in range(args.profile_steps):
            train_step(s)
    per_step = {name: {k: (v / args.profile_steps) for k, v in row.items()} for name, row in prof.totals().items()}
    return {
        "model": model_name, "device": device, "dtype": args.dtype, "size": dict(size), "parameters": n_params,
        "tokens_per_step": s.tokens, "step": stats, "tokens_per_s": s.tokens / stats["median_s"],
        "step_samples_s": samples, "ranks": world.size, "blas_threads": blas_threads(), "allreduce": allreduce,
        "phases_s": {name: float(t) for name, t in zip(phase_names(s), phases)},
        "peak_host_rss_bytes": common.peak_host_rss_bytes(), "gpu_memory": gpu_memory(device),
        "profile_steps": args.profile_steps, "profiled_wall_s_per_step": prof.wall_s / args.profile_steps,
        "functions_per_step": per_step, "_table": prof.table(per=args.profile_steps, limit=args.top),
    }


def _mib(n):
    return f"{n / 2**20:.0f} MiB"


def summary_table(results):
    """The table of every (model, device); under mpiexec with a column for the all-reduce."""
    parallel = any(r.get("allreduce") for r in results)
    headers = ["model", "device", "params", "B x T", "step median [q1, q3]", "tokens/s", "fwd / bwd / opt",
               "peak host RSS", "GPU pool used / held"] + (["all-reduce (share)"] if parallel else [])
    rows = []
    for r in results:
        if "skipped" in r:
            rows.append([r["model"], r["device"], f"skipped: {r['skipped']}"])
            continue
        ph = r["phases_s"]
        gm = r["gpu_memory"]
        ar = r.get("allreduce")
        rows.append([r["model"], r["device"], f"{r['parameters']:,}",
                     f"{r['size']['batch_size']} x {r['size']['block_size']}", common.fmt_stats(r["step"]),
                     f"{r['tokens_per_s']:,.0f}",
                     " / ".join(common.fmt_time(ph[k]) for k in ("forward", "backward", "optimizer")),
                     _mib(r["peak_host_rss_bytes"]),
                     f"{_mib(gm['pool_used_bytes'])} / {_mib(gm['pool_total_bytes'])}" if gm else "-"]
                    + ([f"{common.fmt_time(ar['median_s'])} ({100 * ar['share']:.1f}%)" if ar else "-"]
                       if parallel else []))
    return common.format_table(headers, rows, title="One training step (forward + backward + AdamW)")


def resolve_size(args):
    size = dict(PRESETS[args.preset])
    for field in SIZE_FIELDS:
        value = getattr(args, field)
        if value is not None:
            size[field] = value
    if size["batch_size"] < 1:
        raise ValueError(f"batch_size must be positive, got {size['batch_size']}")
    config_from("gpt", size)  # the model's own checks: positive sizes, n_embd % n_head, dropout in [0, 1)
    return size


def add_size_args(p):
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu",
                   help="; ".join(f"{k}: {v}" for k, v in PRESETS.items()))
    for field in SIZE_FIELDS:
        p.add_argument(f"--{field}", type=float if field == "dropout" else int, default=None,
                       help="overrides the preset")


def parse_args(argv):
    p = common.base_parser(__doc__.splitlines()[0])
    ranks, rank, _ = distributed.launched()
    if rank > 0:  # under mpiexec every rank meets the same bad flag: rank 0 alone says so
        p.error = lambda message: sys.exit(2)
    add_size_args(p)
    p.add_argument("--model", nargs="+", choices=["bigram", "gpt"], default=["bigram", "gpt"])
    p.add_argument("--device", nargs="+", default=["cpu", "cuda"], help="cpu and/or cuda[:N]")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 10; --quick 3)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 2; --quick 1)")
    p.add_argument("--profile_steps", type=int, default=None, help="steps under the profiler (default 3; --quick 1)")
    p.add_argument("--top", type=int, default=20, help="rows of the per-Function table")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.repeats is not None and args.steps is None:
        args.steps = args.repeats
    args.steps = (3 if args.quick else 10) if args.steps is None else args.steps
    args.warmup = (1 if args.quick else 2) if args.warmup is None else args.warmup
    args.profile_steps = (1 if args.quick else 3) if args.profile_steps is None else args.profile_steps
    if args.steps < 1 or args.warmup < 0 or args.profile_steps < 1:
        p.error(f"need steps >= 1, warmup >= 0, profile_steps >= 1; got {args.steps}, {args.warmup}, "
                f"{args.profile_steps}")
    try:
        args.size = resolve_size(args)
    except ValueError as e:
        p.error(str(e))
    if args.size["batch_size"] % ranks:
        p.error(f"--batch_size {args.size['batch_size']} is the global batch and must be divisible by the "
                f"{ranks} ranks of mpiexec")
    return args


def usable_device(device):
    """(normalized device, None) or (device, why it is skipped)."""
    try:
        return backend.normalize_device(device), None
    except RuntimeError as e:
        ok, reason = common.gpu_status()
        return device, reason or str(e)


def run(args, machine, world=None):
    world = world or distributed.World()
    print(f"size: {args.size} | dtype {args.dtype} | median of {args.steps} steps after {args.warmup} warm-up; "
          f"breakdown: {args.profile_steps} profiled step(s)")
    if world.size > 1:
        print(f"data-parallel: {world.describe()}; {args.size['batch_size'] // world.size} of the "
              f"{args.size['batch_size']} sequences of the global batch on each; a step's time is the slowest "
              f"rank's; per-Function profile of rank 0")
    print()
    results = []
    for device in args.device:
        device, reason = usable_device(device)
        if reason is None and world.size > 1:
            try:
                device = world.use_device(device)  # cuda: GPU <local rank>, and NCCL between the ranks
            except DeviceError as e:
                reason = str(e)
        for model_name in args.model:
            if reason:
                results.append({"model": model_name, "device": device, "skipped": reason})
                continue
            results.append(run_one(model_name, args.size, device, args, world))
    print(summary_table(results) + "\n")
    for r in results:
        if "_table" in r:
            print(f"Per-Function time of one step: {r['model']} on {r['device']} "
                  f"(profiled step: {common.fmt_time(r['profiled_wall_s_per_step'])}; rest of the step is Python, "
                  f"graph bookkeeping and the optimizer)")
            print(r.pop("_table") + "\n")
    return results


def main(argv=None):
    """One process: as always. Under mpiexec every rank measures; rank 0 alone prints and writes --json."""
    args = parse_args(argv)
    try:
        world = distributed.init_world()
    except UserError as e:  # mpi4py missing, or the mpiexec of another MPI
        if distributed.launched()[1] == 0:
            print(f"error: {e}", file=sys.stderr)
        return 2
    if world.is_main:
        common.run_benchmark("train_step", args, lambda a, machine: run(a, machine, world))
    else:
        with contextlib.redirect_stdout(io.StringIO()):
            run(args, None, world)
    return 0


if __name__ == "__main__":
    sys.exit(main())
