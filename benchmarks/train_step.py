"""One full training step (forward, backward, AdamW) of the bigram model and the GPT, and where its time goes.

    python -m benchmarks.train_step                          # cpu preset, bigram + GPT, cpu (+ cuda if present)
    python -m benchmarks.train_step --preset course --device cuda
    python -m benchmarks.train_step --n_embd 256 --n_layer 2 --steps 20 --json out.json

For each model and device it reports the median step time after a warm-up,
tokens per second (batch_size * block_size / step time), the peak memory (the
process's host high-water RSS; on a GPU the CuPy memory pool's bytes in use
and held) and a breakdown of one step:
* by phase: forward (model(x, y)), backward (loss.backward()), optimizer
  (zero_grad + AdamW.step);
* by Function: the forward and backward time of each Function type, summed
  over a step, from tensorlite.profiler (device-synchronised on a GPU, so the
  numbers are kernel times, but also slower than an unprofiled step).
"""
import dataclasses
import sys
import time

import numpy as np

import tensorlite
import tensorlite.optim
import tensorlite.profiler
from models import build_model, config_from
from tensorlite import backend
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
    tokens: int


def build(model_name, size, device, dtype="float32", seed=0, lr=1e-3, activation="relu"):
    """Model + AdamW + a random batch of token ids on `device` (the data loader is not what is measured)."""
    tensorlite.manual_seed(seed)
    model = build_model(model_name, config_from(model_name, dict(size, activation=activation)))
    model = model.to(device=device, dtype=dtype)
    model.train()
    optimizer = tensorlite.optim.AdamW(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    shape = (size["batch_size"], size["block_size"])
    x = tensorlite.tensor(rng.integers(0, size["vocab_size"], shape), device=device)
    y = tensorlite.tensor(rng.integers(0, size["vocab_size"], shape), device=device)
    return Setup(model, optimizer, x, y, device, shape[0] * shape[1])


def train_step(s):
    """forward, backward, AdamW; waits for the device so the time is the step's."""
    _, loss = s.model(s.x, s.y)
    s.optimizer.zero_grad()
    loss.backward()
    s.optimizer.step()
    backend.synchronize(s.device)
    return loss


def phase_times(s):
    """(forward, backward, optimizer) seconds of one step, the device synchronised between phases."""
    t0 = time.perf_counter()
    _, loss = s.model(s.x, s.y)
    backend.synchronize(s.device)
    t1 = time.perf_counter()
    loss.backward()
    backend.synchronize(s.device)
    t2 = time.perf_counter()
    s.optimizer.step()
    s.optimizer.zero_grad()
    backend.synchronize(s.device)
    return t1 - t0, t2 - t1, time.perf_counter() - t2


def gpu_memory(device):
    if device == "cpu":
        return None
    pool = backend.xp_for(device).get_default_memory_pool()
    return {"pool_used_bytes": int(pool.used_bytes()), "pool_total_bytes": int(pool.total_bytes())}


def run_one(model_name, size, device, args):
    """Everything measured for one (model, device): a JSON-able dict."""
    if device != "cpu":
        backend.xp_for(device).get_default_memory_pool().free_all_blocks()  # so 'held' is this model's high-water
    s = build(model_name, size, device, args.dtype, args.seed)
    n_params = sum(p.numel() for p in s.model.parameters())
    for _ in range(args.warmup):
        train_step(s)
    samples = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        train_step(s)
        samples.append(time.perf_counter() - t0)
    stats = common.summarize(samples)
    phases = np.median([phase_times(s) for _ in range(args.profile_steps)], axis=0)
    with tensorlite.profiler.profile(sync=device != "cpu") as prof:
        for _ in range(args.profile_steps):
            train_step(s)
    per_step = {name: {k: (v / args.profile_steps) for k, v in row.items()} for name, row in prof.totals().items()}
    return {
        "model": model_name, "device": device, "dtype": args.dtype, "size": dict(size), "parameters": n_params,
        "tokens_per_step": s.tokens, "step": stats, "tokens_per_s": s.tokens / stats["median_s"],
        "phases_s": {"forward": float(phases[0]), "backward": float(phases[1]), "optimizer": float(phases[2])},
        "peak_host_rss_bytes": common.peak_host_rss_bytes(), "gpu_memory": gpu_memory(device),
        "profile_steps": args.profile_steps, "profiled_wall_s_per_step": prof.wall_s / args.profile_steps,
        "functions_per_step": per_step, "_table": prof.table(per=args.profile_steps, limit=args.top),
    }


def _mib(n):
    return f"{n / 2**20:.0f} MiB"


def summary_table(results):
    headers = ["model", "device", "params", "B x T", "step median [q1, q3]", "tokens/s", "fwd / bwd / opt",
               "peak host RSS", "GPU pool used / held"]
    rows = []
    for r in results:
        if "skipped" in r:
            rows.append([r["model"], r["device"], f"skipped: {r['skipped']}"])
            continue
        ph = r["phases_s"]
        gm = r["gpu_memory"]
        rows.append([r["model"], r["device"], f"{r['parameters']:,}",
                     f"{r['size']['batch_size']} x {r['size']['block_size']}", common.fmt_stats(r["step"]),
                     f"{r['tokens_per_s']:,.0f}",
                     " / ".join(common.fmt_time(ph[k]) for k in ("forward", "backward", "optimizer")),
                     _mib(r["peak_host_rss_bytes"]),
                     f"{_mib(gm['pool_used_bytes'])} / {_mib(gm['pool_total_bytes'])}" if gm else "-"])
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
    return args


def usable_device(device):
    """(normalized device, None) or (device, why it is skipped)."""
    try:
        return backend.normalize_device(device), None
    except RuntimeError as e:
        ok, reason = common.gpu_status()
        return device, reason or str(e)


def run(args, machine):
    print(f"size: {args.size} | dtype {args.dtype} | median of {args.steps} steps after {args.warmup} warm-up; "
          f"breakdown: {args.profile_steps} profiled step(s)\n")
    results = []
    for device in args.device:
        device, reason = usable_device(device)
        for model_name in args.model:
            if reason:
                results.append({"model": model_name, "device": device, "skipped": reason})
                continue
            results.append(run_one(model_name, args.size, device, args))
    print(summary_table(results) + "\n")
    for r in results:
        if "_table" in r:
            print(f"Per-Function time of one step: {r['model']} on {r['device']} "
                  f"(profiled step: {common.fmt_time(r['profiled_wall_s_per_step'])}; rest of the step is Python, "
                  f"graph bookkeeping and the optimizer)")
            print(r.pop("_table") + "\n")
    return results


def main(argv=None):
    common.run_benchmark("train_step", parse_args(argv), run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
