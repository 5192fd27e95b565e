"""Data-parallel training on one machine: R ranks with one BLAS thread each against one process with all
cores, and against PyTorch eager, alternated in one run.

    python -m benchmarks.data_parallel                         # --ranks = cores, 3 rounds of 10 steps
    python -m benchmarks.data_parallel --ranks 2 --rounds 5 --steps 20 --json dp.json
    python -m benchmarks.data_parallel --network_gbps 25 --latency_us 10   # the estimate's network

Each round runs three programs, each in its own process(es), one after the other:
  (a) tensorlite, `mpiexec -n R python -m benchmarks.train_step`, cores / R BLAS threads per rank (one on a
      machine with R cores): every rank computes its B/R sequences, one all-reduce averages the gradients;
  (b) tensorlite, `python -m benchmarks.train_step`, one process with all cores' BLAS threads;
  (c) PyTorch eager, one process, torch.set_num_threads(cores): torch_gpt's twin of the same GPT, AdamW of
      the same hyperparameters (this module's --_torch_worker).
The same GPT (the cpu preset: B=32 global, T=64, n_embd 128, 4 layers, 4 heads, dropout 0, vocab 65) and the
same global batch in all three. Rounds alternate so that a change in the machine's load hits all three alike;
the tables pool every round's steps. Targets: (a)/(c) <= 0.8, the all-reduce < 5% of (a)'s step.

The all-reduce time is the reduce call's (train_step.reduce): the minimum over the ranks of each step, which
is the transfer itself (the last rank to arrive waits for no one); the maximum, with the wait for the slowest
rank's backward, is shown beside it. From these, `estimate` puts on paper what 8 ranks on an 8-core machine
and 2 machines would take (the model is printed with the numbers; train_step also times an all-reduce of
2 numbers, the latency, so that the bandwidth can be told from it). Without mpiexec or mpi4py this says so in
one line and exits 0; without PyTorch, (c) and the ratios are left out and the rest is measured.
"""
import argparse
import importlib.util
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

from tensorlite import backend  # first: it sets OPENBLAS_THREAD_TIMEOUT before NumPy loads OpenBLAS
from train import distributed

from . import common
from .train_step import SIZE_FIELDS, add_size_args, build, resolve_size

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = {"a": "(a) tensorlite, mpiexec -n {ranks}", "b": "(b) tensorlite, one process",
        "c": "(c) PyTorch eager, one process"}


# ---------------------------------------------------------------- what the machine has
def cpu_vendor():
    """The CPU's vendor (GenuineIntel, AuthenticAMD, an ARM implementer code) from /proc/cpuinfo or lscpu."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("vendor_id", "CPU implementer")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        text = ""
    found = re.search(r"^Vendor ID:\s*(.+)$", text, flags=re.M)
    return found.group(1).strip() if found else platform.machine()


def numpy_blas():
    """NumPy's BLAS from its build configuration, and from threadpoolctl (the loaded library) if installed."""
    info = dict(common.blas_info())
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return info
    info["loaded"] = [{k: lib.get(k) for k in ("internal_api", "version", "num_threads")}
                      for lib in threadpool_info() if lib.get("user_api") == "blas"]
    return info


def torch_blas(torch):
    """PyTorch's BLAS (MKL, OpenBLAS, ...) from torch.__config__.show(): its BLAS_INFO and the library line."""
    text = torch.__config__.show()
    found = re.search(r"BLAS_INFO=(\w+)", text)
    name = found.group(1) if found else "unknown"
    line = next((ln.strip(" -") for ln in text.splitlines() if "Math Kernel Library" in ln or "OpenBLAS" in ln), "")
    return {"name": {"mkl": "MKL", "open": "OpenBLAS", "openblas": "OpenBLAS"}.get(name.lower(), name),
            "detail": line}


# ---------------------------------------------------------------- (c): PyTorch in a process of its own
def torch_worker(args):
    """Times PyTorch eager's step of tensorlite's GPT (the same weights and batch, copied) and writes the
    samples to the JSON file args._torch_worker. A process of its own, so that its OpenMP threads and
    NumPy's never share one."""
    from . import precision
    from .torch_gpt import torch, torch_twin
    torch.set_num_threads(args.threads)
    s = build("gpt", args.size, "cpu", "float32", args.seed)
    twin = torch_twin(s.model, "cpu")
    opt = torch.optim.AdamW(twin.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)
    x, y = (torch.from_numpy(backend.to_numpy(t.data)) for t in (s.x, s.y))
    step = precision.torch_step(twin, opt, x, y, "cpu", "float32")
    for _ in range(args.warmup):
        step()
    samples = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        samples.append(time.perf_counter() - t0)
    with open(args._torch_worker, "w") as f:
        json.dump({"samples_s": samples, "threads": torch.get_num_threads(), "torch": torch.__version__,
                   "blas": torch_blas(torch)}, f)
    return 0


# ---------------------------------------------------------------- running the three
class ChildFailed(Exception):
    pass


def child_env(threads):
    """This environment with `threads` BLAS/OpenMP threads set explicitly (whatever the shell had)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for name in backend.THREAD_VARIABLES:
        env[name] = str(threads)
    return env


def run_child(label, cmd, env, path, timeout):
    """Run one program in its own session (so that mpiexec's ranks end with it) and read its JSON file."""
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise ChildFailed(f"{label} ran past --timeout_s {timeout:g} s") from None
    if p.returncode != 0:
        lines = (err.strip() or out.strip() or "no output").splitlines()
        raise ChildFailed(f"{label} failed (exit {p.returncode}): {lines[-1]}")
    with open(path) as f:
        return json.load(f)


def commands(args, mpiexec, tmp, k):
    """(run, label, command, environment, JSON path) of each program of round k, in order."""
    size = ["--preset", args.preset] + [a for f in SIZE_FIELDS for a in (f"--{f}", str(args.size[f]))]
    timing = ["--steps", str(args.steps), "--warmup", str(args.warmup), "--seed", str(args.seed)]
    step = [sys.executable, "-m", "benchmarks.train_step", "--model", "gpt", "--device", "cpu", "--profile_steps",
            "1", "--top", "1", *size, *timing]
    path = {run: os.path.join(tmp, f"{run}{k}.json") for run in RUNS}
    out = [("a", mpiexec + ["-n", str(args.ranks)] + step + ["--json", path["a"]], child_env(args.rank_threads)),
           ("b", step + ["--json", path["b"]], child_env(args.cores))]
    if args.torch_missing is None:
        out.append(("c", [sys.executable, "-m", "benchmarks.data_parallel", "--_torch_worker", path["c"],
                          "--threads", str(args.cores), *size, *timing], child_env(args.cores)))
    return [(run, RUNS[run].format(ranks=args.ranks), cmd, env, path[run]) for run, cmd, env in out]


def take(run, payload):
    """What one round keeps of a program's JSON."""
    if run == "c":
        return payload
    r = payload["results"][0]
    kept = {"samples_s": r["step_samples_s"], "blas_threads": r["blas_threads"], "ranks": r["ranks"],
            "phases_s": r["phases_s"], "parameters": r["parameters"], "tokens_per_step": r["tokens_per_step"]}
    if r["allreduce"]:
        kept["allreduce"] = {k: r["allreduce"][k] for k in ("bytes", "samples_s", "with_wait_samples_s", "latency_s")}
    return kept


# ---------------------------------------------------------------- the estimate
def ring_s(ranks, nbytes, bandwidth, latency):
    """Seconds of a ring all-reduce of `nbytes` over `ranks`: 2(P-1) steps (reduce-scatter, then all-gather),
    each sending nbytes/P over the ring's slowest link and paying its latency."""
    if ranks <= 1:
        return 0.0
    return 2 * (ranks - 1) / ranks * nbytes / bandwidth + 2 * (ranks - 1) * latency


def estimate(step_s, allreduce_s, nbytes, ranks, batch, fixed_share, configurations, shm_latency_s,
             network_bytes_per_s, network_latency_s):
    """The step time of each of `configurations` [(label, ranks, "shm" or "network")], on paper.

    Compute per rank = the measured step minus its all-reduce, split into a part proportional to the rank's
    sequences and a fixed part (the AdamW update of every weight: fixed_share of the compute, from the phase
    times). The shared-memory bandwidth is fitted to the measured all-reduce with ring_s (latency
    shm_latency_s per ring step); the network's is given. Speed-up: over one rank computing the whole batch alone."""
    compute = step_s - allreduce_s
    fixed, per_sequence = compute * fixed_share, compute * (1 - fixed_share) / (batch / ranks)
    transfer = allreduce_s - 2 * (ranks - 1) * shm_latency_s
    shm_bandwidth = 2 * (ranks - 1) / ranks * nbytes / transfer if transfer > 0 else math.inf
    one_rank = fixed + per_sequence * batch
    rows = []
    for label, p, link in configurations:
        bandwidth, latency = ((shm_bandwidth, shm_latency_s) if link == "shm"
                              else (network_bytes_per_s, network_latency_s))
        c = fixed + per_sequence * batch / p
        ar = ring_s(p, nbytes, bandwidth, latency)
        rows.append({"configuration": label, "ranks": p, "link": link, "sequences_per_rank": batch / p,
                     "possible": batch % p == 0,  # else the batch cannot be shared out: the row is arithmetic only
                     "compute_s": c, "allreduce_s": ar, "step_s": c + ar, "allreduce_share": ar / (c + ar),
                     "speedup": one_rank / (c + ar)})
    return {"compute_s": compute, "fixed_share": fixed_share, "shm_bandwidth_bytes_per_s": shm_bandwidth,
            "shm_latency_s": shm_latency_s, "network_bytes_per_s": network_bytes_per_s,
            "network_latency_s": network_latency_s, "one_rank_step_s": one_rank, "configurations": rows}


# ---------------------------------------------------------------- the report
def _median(values):
    return common.summarize(list(values))["median_s"]


def summarize_rounds(args, rounds):
    """Pool each program's steps over the rounds: rows, ratios, the all-reduce and the estimate."""
    a0 = rounds[0]["a"]
    rows = []
    for run in (r for r in RUNS if r in rounds[0]):
        samples = [t for r in rounds for t in r[run]["samples_s"]]
        threads = args.rank_threads if run == "a" else rounds[0][run].get("threads") or rounds[0][run]["blas_threads"]
        step = common.summarize(samples)
        rows.append({"run": run, "label": RUNS[run].format(ranks=args.ranks), "threads": threads,
                     "processes": args.ranks if run == "a" else 1, "step": step, "samples_s": samples,
                     "tokens_per_s": a0["tokens_per_step"] / step["median_s"]})
    median = {r["run"]: r["step"]["median_s"] for r in rows}
    per_round = {run: [_median(r[run]["samples_s"]) for r in rounds] for run in median}
    ratios = {}
    for x, y in (("a", "c"), ("b", "c"), ("a", "b")):
        if y in median:
            ratios[f"{x}_over_{y}"] = median[x] / median[y]
            ratios[f"{x}_over_{y}_per_round"] = [u / v for u, v in zip(per_round[x], per_round[y])]
    ar = {"bytes": a0["allreduce"]["bytes"],
          "median_s": _median(t for r in rounds for t in r["a"]["allreduce"]["samples_s"]),
          "with_wait_median_s": _median(t for r in rounds for t in r["a"]["allreduce"]["with_wait_samples_s"]),
          "small_message_s": _median(r["a"]["allreduce"]["latency_s"] for r in rounds)}
    ar["share"], ar["with_wait_share"] = ar["median_s"] / median["a"], ar["with_wait_median_s"] / median["a"]
    shm_latency = (ar["small_message_s"] / (2 * (args.ranks - 1)) if args.shm_latency_us is None
                   else args.shm_latency_us * 1e-6)  # a ring of R ranks takes 2(R-1) steps
    fixed_share = _median(p["optimizer"] / (p["forward"] + p["backward"] + p["optimizer"])
                          for p in (r["a"]["phases_s"] for r in rounds))
    n, m = args.estimate_ranks, args.machines
    configurations = [(f"{args.ranks} ranks, this machine (the measured run, by the model)", args.ranks, "shm"),
                      (f"{n} ranks, one {n}-core machine", n, "shm"),
                      (f"{m} machines x {n} ranks, {args.network_gbps:g} Gbit/s, {args.latency_us:g} us", m * n,
                       "network")]
    est = estimate(median["a"], ar["median_s"], ar["bytes"], args.ranks, args.size["batch_size"], fixed_share,
                   configurations, shm_latency, args.network_gbps * 1e9 / 8, args.latency_us * 1e-6)
    return {"ranks": args.ranks, "threads_per_rank": args.rank_threads, "cores": args.cores, "size": args.size,
            "parameters": a0["parameters"], "rows": rows, "ratios": ratios, "allreduce": ar, "estimate": est}


def print_report(results, args):
    ratios, ar, est, s = results["ratios"], results["allreduce"], results["estimate"], args.size
    table = []
    for r in results["rows"]:
        to_c = ratios.get(f"{r['run']}_over_c")
        table.append([r["label"], f"{r['processes']} x {r['threads']}", common.fmt_stats(r["step"]),
                      f"{r['tokens_per_s']:,.0f}", "1" if r["run"] == "c" else (f"{to_c:.2f}" if to_c else "-"),
                      "<= 0.8" if r["run"] == "a" else ""])
    title = (f"\nOne training step, GPT n_embd {s['n_embd']}, {s['n_layer']} layers, {s['n_head']} heads, "
             f"B={s['batch_size']} (global) x T={s['block_size']}, {results['parameters']:,} parameters; "
             f"{args.rounds} round(s) alternated")
    print(common.format_table(["run", "processes x threads", "step median [q1, q3]", "tokens/s", "/ (c)", "target"],
                              table, title=title))
    for name in ("a_over_c", "b_over_c", "a_over_b"):
        if name in ratios:
            each = ", ".join(f"{x:.2f}" for x in ratios[name + "_per_round"])
            print(f"{name.replace('_over_', '/')} per round: {each}")
    print(f"\nAll-reduce of (a): {common.fmt_time(ar['median_s'])} per step for {ar['bytes'] / 2**20:.2f} MiB, "
          f"{100 * ar['share']:.1f}% of the step (target < 5%); {common.fmt_time(ar['with_wait_median_s'])} "
          f"({100 * ar['with_wait_share']:.1f}%) with the wait for the slowest rank's backward")
    m = results["machine"]
    print(f"CPU: {m['vendor']}, {m['model']}, {m['cores']} cores | NumPy's BLAS: {m['numpy_blas'].get('name')} "
          f"{m['numpy_blas'].get('version') or ''} | PyTorch's BLAS: {m['torch_blas']}")
    rows = [[c["configuration"], c["ranks"], f"{c['sequences_per_rank']:g}" + ("" if c["possible"] else " (!)"),
             common.fmt_time(c["compute_s"]), common.fmt_time(c["allreduce_s"]), common.fmt_time(c["step_s"]),
             f"{100 * c['allreduce_share']:.1f}%", f"{c['speedup']:.2f}x"] for c in est["configurations"]]
    print(common.format_table(["configuration", "ranks", "seq/rank", "compute/rank", "all-reduce", "step", "share",
                               "speed-up"], rows,
                              title="\nScaling estimate (ON PAPER: computed from the run above, not measured)"))
    if not all(c["possible"] for c in est["configurations"]):
        print(f"(!) the global batch of {s['batch_size']} cannot be shared out among that many ranks")
    model = (f"Model: compute per rank = a fixed part ({100 * est['fixed_share']:.0f}% of (a)'s compute, the AdamW "
             f"update of every weight) + a part proportional to the rank's share of the batch, each rank as fast as "
             f"one of (a) ({args.rank_threads} thread(s)); all-reduce of S bytes by ring = 2(P-1)/P * S / bandwidth "
             f"+ 2(P-1) * latency, at the slowest link's pace. Shared memory: "
             f"{est['shm_bandwidth_bytes_per_s'] / 1e9:.2f} GB/s and {est['shm_latency_s'] * 1e6:.3g} us per ring "
             f"step, fitted to (a)'s all-reduce and to its all-reduce of 2 numbers "
             f"({common.fmt_time(ar['small_message_s'])}; --shm_latency_us sets it); network: "
             f"{args.network_gbps:g} Gbit/s, {args.latency_us:g} us (--network_gbps, --latency_us). Speed-up: over "
             f"one rank computing the whole batch ({common.fmt_time(est['one_rank_step_s'])}). Fixed per-Function "
             f"Python costs are counted as proportional, so small shares are estimated too fast; a shared memory "
             f"bus and the cores' clocks are not modelled.")
    print(textwrap.fill(model, 110))


def run(args, machine):
    torch = "" if args.torch_missing else f", (c) PyTorch x {args.cores} threads"
    print(f"{args.rounds} round(s) of (a) mpiexec -n {args.ranks} x {args.rank_threads} BLAS thread(s), (b) one "
          f"process x {args.cores}{torch}; {args.steps} timed steps each after {args.warmup} warm-up")
    if args.torch_missing:
        print(f"(c) skipped: {args.torch_missing}; (a) and (b) are still measured")
    rounds = []
    with tempfile.TemporaryDirectory(prefix="data_parallel") as tmp:
        for k in range(args.rounds):
            got = {}
            for run_name, label, cmd, env, path in commands(args, args.mpiexec, tmp, k):
                got[run_name] = take(run_name, run_child(label, cmd, env, path, args.timeout_s))
            rounds.append(got)
            print(f"round {k + 1}: " + ", ".join(f"({r}) {common.fmt_time(_median(v['samples_s']))}"
                                                for r, v in got.items()))
    results = summarize_rounds(args, rounds)
    c = rounds[0].get("c")
    results["machine"] = {"vendor": cpu_vendor(), "model": common.cpu_model(), "cores": args.cores,
                          "numpy_blas": numpy_blas(),
                          "torch_blas": f"{c['blas']['name']} ({c['blas']['detail']})" if c else args.torch_missing}
    results["torch"] = {k: c[k] for k in ("torch", "threads", "blas")} if c else {"skipped": args.torch_missing}
    results["rounds"] = rounds
    print_report(results, args)
    return results


# ---------------------------------------------------------------- command line
def parse_args(argv):
    p = common.base_parser(__doc__.splitlines()[0])
    add_size_args(p)
    cores = common.cpu_count()
    p.add_argument("--ranks", type=int, default=max(2, cores), help="ranks of (a) (default: the cores, at least 2)")
    p.add_argument("--rounds", type=int, default=None, help="rounds of (a), (b), (c) (default 3; --quick 1)")
    p.add_argument("--steps", type=int, default=None, help="timed steps of each per round (default 10; --quick 3)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 2; --quick 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout_s", type=float, default=600, help="limit of each program's run")
    p.add_argument("--estimate_ranks", type=int, default=8, help="ranks per machine in the estimate")
    p.add_argument("--machines", type=int, default=2, help="machines in the estimate's network row")
    p.add_argument("--network_gbps", type=float, default=10.0, help="the estimate's network bandwidth, Gbit/s")
    p.add_argument("--latency_us", type=float, default=50.0, help="the estimate's network latency, us")
    p.add_argument("--shm_latency_us", type=float, default=None,
                   help="shared memory's latency per ring step, us (default: from (a)'s all-reduce of 2 numbers)")
    p.add_argument("--_torch_worker", metavar="PATH", default=None, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=cores, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.rounds = (1 if args.quick else 3) if args.rounds is None else args.rounds
    if args.steps is None:
        args.steps = args.repeats if args.repeats is not None else (3 if args.quick else 10)
    args.warmup = (1 if args.quick else 2) if args.warmup is None else args.warmup
    try:
        args.size = resolve_size(args)
    except ValueError as e:
        p.error(str(e))
    bad = [f"--{name} {value:g} must be {need}" for name, value, ok, need in (
        ("ranks", args.ranks, args.ranks >= 2, "at least 2"), ("rounds", args.rounds, args.rounds >= 1, "at least 1"),
        ("steps", args.steps, args.steps >= 1, "at least 1"), ("warmup", args.warmup, args.warmup >= 0, ">= 0"),
        ("estimate_ranks", args.estimate_ranks, args.estimate_ranks >= 1, "at least 1"),
        ("machines", args.machines, args.machines >= 1, "at least 1"),
        ("network_gbps", args.network_gbps, args.network_gbps > 0, "positive"),
        ("latency_us", args.latency_us, args.latency_us >= 0, ">= 0"),
        ("shm_latency_us", args.shm_latency_us or 0, (args.shm_latency_us or 0) >= 0, ">= 0"),
        ("timeout_s", args.timeout_s, args.timeout_s > 0, "positive")) if not ok]
    if bad:
        p.error(bad[0])
    if args._torch_worker is None and args.size["batch_size"] % args.ranks:
        p.error(f"--batch_size {args.size['batch_size']} (the global batch) must be divisible by --ranks {args.ranks}")
    args.cores = cores
    args.rank_threads = max(1, cores // args.ranks)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args._torch_worker:
        return torch_worker(args)
    if distributed.launched()[0] > 1:
        sys.exit("benchmarks.data_parallel starts mpiexec itself: run it without mpiexec")
    args.mpiexec, why = distributed.mpiexec_command()
    if args.mpiexec is None:
        print(f"data_parallel: skipped: {why}")
        return 0
    args.torch_missing = None if importlib.util.find_spec("torch") else "PyTorch is not installed (pip install torch)"
    try:
        common.run_benchmark("data_parallel", args, run)
    except ChildFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
