"""tensorlite against PyTorch: the same GPT, the same weights, the same batch.

    python -m benchmarks.compare_torch                        # cpu preset on cpu (+ cuda if present)
    python -m benchmarks.compare_torch --presets cpu course --steps 20 --json out.json
    python -m benchmarks.compare_torch --no_check --breakdown  # where each library's step goes
    python -m benchmarks.compare_torch --presets cpu course --plot steps.png   # bars per library and preset
    python -m benchmarks.compare_torch --device cuda --presets course --dtype tf32   # or float16 (autocast)

1. Correctness. The GPT of models/gpt.py is written again in PyTorch (torch_gpt.py), with
   torch.nn.functional.scaled_dot_product_attention and one fused q/k/v
   projection, and with the same parameter names. tensorlite's weights are copied
   into it, both compute the loss and the gradients of one batch, and every
   gradient must agree: relative error (max |a - b| / max |b|) <= 1e-9 in float64,
   <= 1e-4 in float32. The check runs without dropout (the two libraries draw
   different random masks); the float32 one uses GELU (see _checks for why).
2. Speed. One training step (forward, backward, AdamW with the same
   hyperparameters) of each, timed in alternation (tensorlite, torch, tensorlite,
   torch, ...) so that a change in the machine's load hits both alike; the table
   gives the medians with quartiles and the ratio tensorlite / PyTorch.
3. With --breakdown (CPU), where each one's step goes: tensorlite.profiler and
   torch.profiler over a few more steps, the same kinds of work side by side
   (matrix products, attention, layer norm, ...; see WORK).

PyTorch gets as many threads as NumPy's BLAS uses, so both use the same cores.
Without PyTorch this prints why and exits with status 0.

Two thread pools in one process
-------------------------------
NumPy's OpenBLAS and PyTorch's OpenMP each keep worker threads, and an idle
worker may spin (busy-wait) before it sleeps. OpenBLAS's spin for ~0.1 s by
default, enough to make PyTorch's step 10x slower in alternation on a 2-core
machine; tensorlite sets OPENBLAS_THREAD_TIMEOUT=4 at import (see
tensorlite/backend.py), so its workers sleep at once, and each library then runs
as fast as alone (cpu preset, 2 cores: PyTorch 85-89 ms alone, 83-92 ms
alternated; tensorlite 95-108 ms alone, 100-104 ms alternated).

PyTorch keeps its own defaults on purpose: OMP_WAIT_POLICY=PASSIVE would make
its step ~17% slower than alone (86 -> 104 ms at the cpu preset) and so flatter
tensorlite's ratio. The thread variables in effect are printed with the results.
"""
import os
import sys
import time

import numpy as np

import tensorlite
from tensorlite import backend

from . import common, precision
from .torch_gpt import TORCH_IMPORT_ERROR, torch, torch_device, torch_twin
from .train_step import PRESETS, add_size_args, build, resolve_size

TOLERANCE = {"float64": 1e-9, "float32": 1e-4}
THREAD_ENV = ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY", "OMP_NUM_THREADS")  # printed with the results


def _torch_batch(setup):
    dev = torch_device(setup.device)
    return (torch.from_numpy(backend.to_numpy(setup.x.data)).to(dev),
            torch.from_numpy(backend.to_numpy(setup.y.data)).to(dev))


def relative_error(a, b):
    """max |a - b| / max |b|: the error measured against the size of the reference."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.max(np.abs(b)) if b.size else 0.0
    diff = np.max(np.abs(a - b)) if b.size else 0.0
    return float(diff / scale) if scale > 0 else float(diff)


def check_gradients(size, device="cpu", dtype="float64", seed=0, activation="relu"):
    """Loss and every parameter's gradient from both libraries on one batch, without dropout."""
    size = dict(size, dropout=0.0)
    s = build("gpt", size, device, dtype, seed, activation=activation)
    twin = torch_twin(s.model, device)
    x, y = _torch_batch(s)
    _, loss = s.model(s.x, s.y)
    loss.backward()
    _, t_loss = twin(x, y)
    t_loss.backward()
    t_params = dict(twin.named_parameters())
    errors = {name: relative_error(backend.to_numpy(p.grad.data), t_params[name].grad.detach().cpu().numpy())
              for name, p in s.model.named_parameters()}
    loss_error = relative_error(loss.item(), t_loss.item())
    worst = max(errors, key=errors.get)
    tol = TOLERANCE[dtype]
    return {"dtype": dtype, "device": device, "activation": activation, "tolerance": tol, "loss_tensorlite": loss.item(),
            "loss_torch": t_loss.item(), "loss_rel_error": loss_error, "grad_rel_errors": errors,
            "worst_param": worst, "worst_grad_rel_error": errors[worst],
            "ok": loss_error <= tol and errors[worst] <= tol}


def _both(size, device, args, warmup):
    """tensorlite's setup and one training step of each library in the precision mode args.dtype
    ({"tensorlite": f, "torch": f}, the PyTorch twin with AdamW of the same hyperparameters), after
    `warmup` steps of each. Call it, and the steps, inside precision.flags(args.dtype)."""
    s = build("gpt", size, device, precision.param_dtype(args.dtype), args.seed, lr=args.lr)
    twin = torch_twin(s.model, device)
    opt = torch.optim.AdamW(twin.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)
    x, y = _torch_batch(s)
    runs = {"tensorlite": precision.tensorlite_step(s, args.dtype),
            "torch": precision.torch_step(twin, opt, x, y, device, args.dtype)}
    for _ in range(warmup):
        for run in runs.values():
            run()
    return s, runs


def time_alternating(size, device, args):
    """Median step times of both libraries, measured tl, torch, tl, torch, ... after a warm-up."""
    with precision.flags(args.dtype):
        s, runs = _both(size, device, args, args.warmup)
        samples = {name: [] for name in runs}
        for _ in range(args.steps):
            for name, run in runs.items():
                t0 = time.perf_counter()
                run()
                samples[name].append(time.perf_counter() - t0)
    stats = {name: common.summarize(v) for name, v in samples.items()}
    pair_ratios = [a / b for a, b in zip(samples["tensorlite"], samples["torch"])]
    return {"device": device, "size": size, "dtype": args.dtype, "tokens_per_step": s.tokens,
            "parameters": sum(p.numel() for p in s.model.parameters()), "samples_s": samples,
            "stats": stats, "ratio": stats["tensorlite"]["median_s"] / stats["torch"]["median_s"],
            "pair_ratio": common.summarize(pair_ratios)}


# ---------------------------------------------------------------- where the time goes, side by side
# Each kind of work: the tensorlite Functions that do it, and the PyTorch operators that do it (exact
# names, then substrings). Self times, so nested operators are not counted twice.
WORK = (
    ("matrix products (Linear)", ("Linear",), ("aten::mm", "aten::addmm", "aten::bmm"), ()),
    ("attention", ("SelfAttention", "ScaledDotProductAttention"), (),
     ("scaled_dot_product", "flash_attention", "efficient_attention")),
    ("layer norm", ("LayerNorm",), (), ("layer_norm",)),
    # tensorlite's BiasAct also adds c_fc's bias, which PyTorch adds inside addmm (its matrix products)
    ("activation (ReLU / GELU)", ("ReLU", "GELU", "BiasAct"),
     ("aten::relu", "aten::clamp_min", "aten::threshold_backward", "aten::gelu", "aten::gelu_backward"), ()),
    ("dropout", ("Dropout",), ("aten::bernoulli_",), ("dropout",)),
    ("embedding", ("Embedding",), ("aten::index_select",), ("embedding",)),
    ("loss (cross-entropy)", ("CrossEntropy",), (), ("log_softmax", "nll_loss", "cross_entropy")),
)


def breakdown(size, device, args, steps=5):
    """Milliseconds per step of each kind of WORK in both libraries, plus the optimizer and the rest.

    tensorlite: tensorlite.profiler's Function times; the optimizer step timed around it.
    PyTorch: torch.profiler's self CPU time of the matching operators; its optimizer is the
    inclusive time of ``Optimizer.step``. "everything else" is the step's wall time minus the rows
    (residual adds, reshapes, gradient bookkeeping, Python). CPU only: on a GPU these would be
    launch times, not kernel times.
    """
    s, runs = _both(size, device, args, max(args.warmup, 1))
    opt_s = 0.0
    with tensorlite.profiler.profile() as prof:
        for _ in range(steps):
            _, loss = s.model(s.x, s.y)
            s.optimizer.zero_grad()
            loss.backward()
            t0 = time.perf_counter()
            s.optimizer.step()
            opt_s += time.perf_counter() - t0
    fns = prof.totals()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as tprof:
        t0 = time.perf_counter()
        for _ in range(steps):
            runs["torch"]()
        torch_wall = time.perf_counter() - t0
    events = tprof.key_averages()
    rows = {}
    for label, tl_names, exact, parts in WORK:
        tl_s = sum(fns[n]["total_s"] for n in tl_names if n in fns)
        t_us = sum(e.self_cpu_time_total for e in events if e.key in exact or any(p in e.key for p in parts))
        rows[label] = (tl_s / steps, t_us / 1e6 / steps)
    t_opt = sum(e.cpu_time_total for e in events if e.key.startswith("Optimizer.step")) / 1e6 / steps
    rows["optimizer (AdamW)"] = (opt_s / steps, t_opt)
    step = (prof.wall_s / steps, torch_wall / steps)
    rows["everything else"] = tuple(step[i] - sum(r[i] for r in rows.values()) for i in range(2))
    rows["whole step (profiled)"] = step
    return rows


# ---------------------------------------------------------------- command line
def parse_args(argv):
    p = common.base_parser(__doc__.splitlines()[0], plot=True)
    add_size_args(p)
    p.set_defaults(preset=None)
    p.add_argument("--presets", nargs="+", choices=sorted(PRESETS), default=None,
                   help="several presets in one run (default: cpu, or --preset)")
    p.add_argument("--device", nargs="+", default=["cpu", "cuda"], help="cpu and/or cuda[:N]")
    p.add_argument("--dtype", choices=precision.MODES, default="float32",
                   help="precision of the timed steps: float32, float64, tf32 (TF32 tensor cores for float32 "
                        "products, both libraries), float16 (autocast + GradScaler, both libraries)")
    p.add_argument("--steps", type=int, default=None, help="alternated timed steps of each (default 10; --quick 3)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps of each first (default 2; --quick 1)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no_check", action="store_true", help="skip the gradient agreement check")
    p.add_argument("--check_only", action="store_true", help="only the gradient agreement check")
    p.add_argument("--check_size", choices=["tiny", "preset"], default="preset",
                   help="check the gradients on a tiny GPT only, or also at each preset's size")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: NumPy's BLAS threads)")
    p.add_argument("--breakdown", action="store_true",
                   help="also profile both libraries and show each kind of work side by side (CPU only)")
    args = p.parse_args(argv)
    args.presets = args.presets or [args.preset or "cpu"]
    if args.steps is None:
        args.steps = args.repeats if args.repeats is not None else (3 if args.quick else 10)
    args.warmup = (1 if args.quick else 2) if args.warmup is None else args.warmup
    if args.steps < 1 or args.warmup < 0:
        p.error(f"need steps >= 1 and warmup >= 0, got {args.steps} and {args.warmup}")
    args.sizes = {}
    for preset in args.presets:
        args.preset = preset
        try:
            args.sizes[preset] = resolve_size(args)
        except ValueError as e:
            p.error(str(e))
    return args


TINY = dict(batch_size=2, block_size=8, n_embd=16, n_layer=2, n_head=2, vocab_size=11, dropout=0.0)


def _checks(args):
    """(label, size, dtype, activation) of each gradient check.

    float64 with the course's ReLU on a tiny model and on each preset: the two
    computations must be the same math, so they agree to rounding (~1e-15).
    float32 on each preset with GELU: ReLU's kink makes float32 comparisons of a
    full-size model meaningless, because a pre-activation within rounding
    distance of 0 (about one among the 4M of the cpu preset) lands on
    different sides in the two libraries and changes a row of that layer's
    weight gradient, and everything upstream of it, by a full-size amount.
    GELU is smooth, so there the float32 difference measures rounding only.
    """
    checks = [("tiny", TINY, "float64", "relu")]
    if args.check_size == "tiny":
        return checks + [("tiny", TINY, "float32", "gelu")]
    for p in args.presets:
        checks += [(p, args.sizes[p], "float64", "relu"), (p, args.sizes[p], "float32", "gelu")]
    return checks


def _usable(device):
    """(normalized device, None), or (device, why both libraries cannot run there)."""
    try:
        device = backend.normalize_device(device)
    except RuntimeError:
        return device, common.gpu_status()[1] or "CUDA is not available"
    if device != "cpu" and not torch.cuda.is_available():
        return device, f"this PyTorch build ({torch.__version__}) has no CUDA"
    return device, None


def torch_machine(args):
    """The machine description with PyTorch's settings: its threads (as many as NumPy's BLAS uses), the
    thread variables in effect."""
    machine = common.machine_info()
    blas_threads = machine["blas_threads"] or machine["cores"]
    torch.set_num_threads(args.threads or blas_threads)
    machine["torch_threads"] = torch.get_num_threads()
    machine["torch_parallel_info"] = torch.__config__.parallel_info().splitlines()[:6]
    machine["thread_env"] = {k: os.environ.get(k, "unset") for k in THREAD_ENV}
    return machine


def compare(args, machine):
    """The gradient checks and the alternated timings (and the --breakdown) on each device: prints the
    tables, returns the results."""
    print(f"threads: NumPy BLAS {machine['blas_threads']}, torch {machine['torch_threads']} | "
          f"{' '.join(f'{k}={v}' for k, v in machine['thread_env'].items())} | "
          f"timed dtype {args.dtype} | {args.steps} alternated steps each after {args.warmup} warm-up\n")

    results = {"checks": [], "timings": []}
    check_rows, time_rows, breakdown_rows = [], [], []
    for device in args.device:
        device, reason = _usable(device)
        if reason:
            check_rows.append([device, "-", f"skipped: {reason}"])
            time_rows.append([device, "-", f"skipped: {reason}"])
            results["timings"].append({"device": device, "skipped": reason})
            continue
        if not args.no_check:
            for label, size, dtype, activation in _checks(args):
                c = check_gradients(size, device, dtype, args.seed, activation)
                c["size"] = label
                results["checks"].append(c)
                check_rows.append([device, label, dtype, activation, f"{c['loss_rel_error']:.2e}",
                                   f"{c['worst_grad_rel_error']:.2e} ({c['worst_param']})", f"{c['tolerance']:.0e}",
                                   "ok" if c["ok"] else "FAIL"])
        if args.check_only:
            continue
        missing = precision.tensorlite_missing(args.dtype, device)
        for preset in args.presets:
            if missing:  # recorded, not raised: the other modes and presets still say something
                time_rows.append([device, preset, f"unavailable: {missing}"])
                results["timings"].append({"device": device, "preset": preset, "dtype": args.dtype,
                                           "unavailable": missing})
                continue
            r = time_alternating(args.sizes[preset], device, args)
            r["preset"] = preset
            results["timings"].append(r)
            st = r["stats"]
            if args.breakdown:
                if args.dtype not in ("float32", "float64"):
                    breakdown_rows.append([device, preset, "skipped: the breakdown times plain float32/float64 steps"])
                elif device == "cpu":
                    r["breakdown_s"] = breakdown(args.sizes[preset], device, args)
                    breakdown_rows += [[device, preset, label, f"{a * 1e3:.2f}", f"{b * 1e3:.2f}",
                                        f"{a / b:.2f}" if a > 0 and b > 0 else "-"]
                                       for label, (a, b) in r["breakdown_s"].items()]
                else:
                    breakdown_rows.append([device, preset, "skipped: the breakdown covers the CPU only"])
            time_rows.append([device, preset, f"{r['parameters']:,}", common.fmt_stats(st["tensorlite"]),
                              common.fmt_stats(st["torch"]), f"{r['ratio']:.2f}",
                              f"{r['pair_ratio']['median_s']:.2f} [{r['pair_ratio']['q1_s']:.2f}, "
                              f"{r['pair_ratio']['q3_s']:.2f}]",
                              f"{r['tokens_per_step'] / st['tensorlite']['median_s']:,.0f} / "
                              f"{r['tokens_per_step'] / st['torch']['median_s']:,.0f}"])
    if not args.no_check:
        print(common.format_table(["device", "size", "dtype", "activation", "loss rel. err", "worst grad rel. err (param)",
                                   "tol", ""], check_rows, title="Gradient agreement (same weights, same batch)"))
        print()
    if not args.check_only:
        print(common.format_table(["device", "preset", "params", "tensorlite median [q1, q3]",
                                   "torch median [q1, q3]", "ratio tl/torch", "per-pair ratio [q1, q3]",
                                   "tokens/s tl / torch"], time_rows,
                                  title="Training step (forward + backward + AdamW), alternated"))
        print()
    if breakdown_rows:
        print(common.format_table(["device", "preset", "work", "tensorlite ms", "torch ms", "ratio"], breakdown_rows,
                                  title="Where the time goes, per step (tensorlite.profiler; torch.profiler self "
                                        "CPU time)"))
        print()
    return results


def main(argv=None):
    args = parse_args(argv)
    if torch is None:
        print(f"PyTorch is not importable ({TORCH_IMPORT_ERROR}); nothing to compare against. "
              "Install it (pip install torch) to run this benchmark."
              + (" No plot was drawn." if args.plot else ""))
        return 0
    results = common.run_benchmark("compare_torch", args, compare, machine=torch_machine(args))
    return 1 if any(not c["ok"] for c in results["checks"]) else 0


if __name__ == "__main__":
    sys.exit(main())
