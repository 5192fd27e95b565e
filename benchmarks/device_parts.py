"""The parts of benchmarks.device_check: what each one runs, and how its output is read.

Each part is one subprocess (a crash, a hang or a CUDA error in it leaves the others running) that
writes one file: the benchmarks their --json, pytest its --junitxml. `parts()` lists them in the order
they run; `read_*` turn a part's file into the summary device_check keeps.

    python -m benchmarks.device_parts machine OUT.json   # the machine part: GPU, driver, CUDA, libraries
"""
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

from tensorlite import backend
from tensorlite.serialization import atomic_write

from . import common

# Sizes of the CPU dry run: a GPT small enough that every part takes seconds on two cores.
TINY = ["--batch_size", "2", "--block_size", "8", "--n_embd", "16", "--n_layer", "1", "--n_head", "2",
        "--vocab_size", "11"]
TEST_SELECTION = {"cuda": ["tests"], "cpu": ["tests/test_backend.py"]}  # the CPU run's pytest: a few seconds
MODES = (("float32", "float32"), ("tf32", "TF32"), ("float16", "float16 (autocast + GradScaler)"))
NAMES = ("machine", "tests", "tests_fused", "compare_float32", "compare_tf32", "compare_float16", "memory",
         "train_step", "matmul")  # what parts() lists, in its order (device_check's --only and --skip)
MAX_FAILURES = 30  # failures kept in the JSON: names and first lines


@dataclasses.dataclass
class Part:
    name: str
    title: str
    weight_s: float  # its share of the default budget, in seconds: limits are these shares of what is left
    argv: list
    output: str  # the file the part writes
    read: object  # read(part, returncode) -> (status or None, summary dict); None: "passed" / "failed" by rc
    env: dict = dataclasses.field(default_factory=dict)  # variables to set; a value None removes one


def _python(module, *args):
    return [sys.executable, "-m", module, *map(str, args)]


def _xdist_args(workers):
    """pytest-xdist's -n for `workers` processes, if asked for and installed (the GPU image has it)."""
    if workers <= 1:
        return []
    try:
        import xdist  # noqa: F401
    except ImportError:
        return []
    return ["-n", str(workers)]


def parts(args, work):
    """Every part for `args` (device_check's options), writing its files under the folder `work`."""
    quick = args.device == "cpu"
    dev = args.device
    size = TINY if quick else ["--preset", "course"]
    steps = ["--steps", "2", "--warmup", "1"] if quick else ["--steps", str(args.steps), "--warmup", "5"]
    out = lambda name, ext="json": os.path.join(work, f"{name}.{ext}")  # noqa: E731
    selection = args.tests or TEST_SELECTION["cpu" if quick else "cuda"]
    workers = 0 if quick else args.test_workers
    listed = [Part("machine", "the machine: GPU, driver, CUDA, libraries", 20,
                   _python("benchmarks.device_parts", "machine", out("machine")), out("machine"), read_machine)]
    for name, fused in (("tests", None), ("tests_fused", "1")):
        xml = out(name, "xml")
        env = {"TENSORLITE_FUSED": fused}
        if args.hypothesis_examples:
            env["HYPOTHESIS_EXAMPLES"] = str(args.hypothesis_examples)
        listed.append(Part(name, f"pytest -m {args.marker}" + (", TENSORLITE_FUSED=1" if fused else ""),
                           110 if fused is None else 80,
                           [sys.executable, "-m", "pytest", "-q", "-m", args.marker, "-p", "no:cacheprovider", "-rfE",
                            f"--junitxml={xml}", *_xdist_args(workers), *selection], xml, read_pytest, env))
    for mode, label in MODES:
        check = (["--check_size", "tiny" if quick else "preset"] if mode == "float32" else ["--no_check"])
        preset = "cpu" if quick else "course"  # the tiny sizes override the cpu preset's
        listed.append(Part(f"compare_{mode}", f"tensorlite / PyTorch eager, {label}", 55 if mode == "float32" else 35,
                           _python("benchmarks.compare_torch", "--device", dev, "--presets", preset, *size,
                                   "--dtype", mode, *steps, *check, "--json", out(f"compare_{mode}")),
                           out(f"compare_{mode}"), read_compare))
    listed += [
        Part("memory", "peak memory of one training step, float32", 30,
             _python("benchmarks.peak_memory", "--device", dev, *size, "--json", out("memory")), out("memory"),
             read_memory),
        Part("train_step", "tensorlite's step and its per-Function breakdown", 45,
             _python("benchmarks.train_step", "--device", dev, "--model", "gpt", *size,
                     *(["--steps", "2", "--warmup", "1", "--profile_steps", "1"] if quick else
                       ["--steps", "10", "--profile_steps", "3"]), "--json", out("train_step")),
             out("train_step"), read_train_step),
        Part("matmul", "matrix products and elementwise kernels", 60,
             _python("benchmarks.matmul", *(["--quick", "--sizes", "8", "16", "--repeats", "1"] if quick else
                                            ["--sizes", "64", "256", "1024", "2048", "4096", "--repeats", "5"]),
                     "--json", out("matmul")),
             out("matmul"), read_matmul),
    ]
    return listed


# ---------------------------------------------------------------- reading what a part wrote
def _results(part):
    with open(part.output) as f:
        return json.load(f)["results"]


def read_machine(part, rc):
    with open(part.output) as f:
        return None, json.load(f)


def _case_name(case):
    """pytest's node id back from junit's classname (tests.test_x.TestY) and name."""
    parts = case.get("classname", "").split(".")
    i = next((k for k in range(len(parts), 0, -1) if os.path.exists(os.path.join(*parts[:k]) + ".py")), 0)
    if i:
        return "::".join([os.path.join(*parts[:i]) + ".py", *parts[i:], case.get("name", "?")])
    return "::".join(p for p in (case.get("classname"), case.get("name")) if p)


def _first_line(text):
    return (text or "").strip().splitlines()[0][:300] if (text or "").strip() else ""


def read_pytest(part, rc):
    """Counts and failures from the junit XML; pytest's exit status decides passed or failed."""
    root = ET.parse(part.output).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    failures = []
    for case in root.iter("testcase"):
        for kind in ("failure", "error"):
            for bad in case.findall(kind):
                failures.append({"test": _case_name(case), "kind": kind,
                                 "first_line": _first_line(bad.get("message") or bad.text)})
    summary = {"counts": counts, "failures": failures[:MAX_FAILURES], "failures_total": len(failures)}
    if rc == 5:
        return "failed: pytest collected no test", summary
    return None, summary


def pytest_counts_from_output(text):
    """The counts of pytest's closing line ("3 passed, 1 failed, 2 skipped in 4.5s"), where no XML came."""
    lines = [line for line in text.splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", line)]
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)",
                                                     lines[-1])} if lines else {}


def read_compare(part, rc):
    """The ratio and both medians of the one timing (one preset, one device), and the gradient checks."""
    res = _results(part)
    (t,) = res["timings"]
    checks = [{k: c[k] for k in ("size", "dtype", "activation", "loss_rel_error", "worst_grad_rel_error",
                                 "worst_param", "tolerance", "ok")} for c in res["checks"]]
    if "unavailable" in t:
        return f"unavailable: {t['unavailable']}", {"checks": checks}
    if "skipped" in t:
        return f"skipped: {t['skipped']}", {"checks": checks}
    st = t["stats"]
    return None, {"preset": t["preset"], "parameters": t["parameters"], "ratio": t["ratio"],
                  "pair_ratio": t["pair_ratio"], "tensorlite": st["tensorlite"], "torch": st["torch"],
                  "tokens_per_step": t["tokens_per_step"], "checks": checks}


def read_memory(part, rc):
    res = _results(part)
    if "skipped" in res:
        return f"skipped: {res['skipped']}", res
    return None, res


def read_train_step(part, rc):
    (r,) = _results(part)
    if "skipped" in r:
        return f"skipped: {r['skipped']}", r
    top = sorted(r["functions_per_step"].items(), key=lambda kv: -kv[1]["total_s"])
    return None, {k: r[k] for k in ("parameters", "step", "tokens_per_s", "phases_s", "gpu_memory",
                                    "profiled_wall_s_per_step")} | {"functions_per_step": dict(top)}


def read_matmul(part, rc):
    """The GPU's best rate per dtype (square products), and every product and kernel as measured."""
    res = _results(part)
    best = {}
    for e in res["matmul"]:
        st = e["gpu"]
        if "median_s" in st:
            best[e["dtype"]] = max(best.get(e["dtype"], 0.0), e["flops"] / st["median_s"] / 1e9)
    return None, {"gpu_best_gflops": best, "results": res}


# ---------------------------------------------------------------- the machine part
def _run(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unavailable: {exc}"


def _torch_info():
    try:
        import torch
    except ImportError as exc:
        return {"available": False, "reason": str(exc)}
    info = {"version": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}
    if info["cuda_available"]:
        info["device"] = torch.cuda.get_device_name(0)
    return info


def machine(path):
    """Everything about the machine a reader needs to judge the numbers, written to `path`."""
    info = common.machine_info()
    if info["gpu"]["available"]:
        cupy = backend.xp_for("cuda:0")
        info["gpu"]["cuda_driver"] = cupy.cuda.runtime.driverGetVersion()
    info["nvidia_smi"] = (_run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm,"
                                "power.limit", "--format=csv"]) if shutil.which("nvidia-smi") else "not found")
    info["torch_detail"] = _torch_info()
    info["commit"] = (_run(["git", "rev-parse", "HEAD"]) if shutil.which("git") else "") or None
    atomic_write(path, lambda f: json.dump(info, f, indent=2, default=str), mode="w")
    return info


if __name__ == "__main__":
    if sys.argv[1:2] != ["machine"] or len(sys.argv) != 3:
        sys.exit("usage: python -m benchmarks.device_parts machine OUT.json")
    machine(sys.argv[2])
