"""Check and measure tensorlite on a GPU in one call, inside a time budget (issue 17).

    python -m benchmarks.device_check --out DIR                  # on a CUDA machine: everything, 8 minutes
    python -m benchmarks.device_check --out DIR --device cpu     # the same machinery on the CPU, tiny sizes
    python -m benchmarks.device_check --out DIR --only tests compare_float16 --budget_s 200

A GPU may be lent for a few minutes, once. So one command runs every part (listed in
benchmarks/device_parts.py, in this order):

    machine          GPU name, driver and CUDA versions, CuPy and PyTorch versions
    tests            pytest -m cuda, TENSORLITE_FUSED unset (the array paths)
    tests_fused      pytest -m cuda with TENSORLITE_FUSED=1 (the fused CUDA kernels)
    compare_float32  compare_torch, course preset: gradients agree, then the alternated step times
    compare_tf32     the same timing with TF32 tensor cores allowed in both libraries
    compare_float16  autocast float16 + GradScaler in both libraries
    memory           peak memory of one step, tensorlite against PyTorch (peak_memory)
    train_step       tensorlite's step with its per-Function breakdown
    matmul           the matmul sweep and the elementwise kernels

Each part is a subprocess with a time limit, so that a failure, a hang or a CUDA error in one leaves
the others running; a failing part is recorded with the last lines of its output. The limits are
shares of the time still left (each part's weight_s over the weights of the parts still to run), so
time a part does not use goes to the ones after it. When less than MIN_PART_S is left, the remaining
parts are recorded as "skipped: out of time". A part past its limit gets Ctrl-C (pytest then still
writes its report) and, GRACE_S later, is killed.

DIR/device_check.json (everything measured, the machine, each part's command, status, time and last
lines), DIR/device_check.md (the summary a person reads: tensorlite / PyTorch per precision mode
against the issue's targets, peak memory, test counts) and DIR/device_check.log (every part's full
output) are rewritten after each part, so a run killed from outside leaves what it measured.

Exit status: 0 if every part that ran passed, 1 if one failed or ran out of its time, 2 if
--device cuda finds no CUDA GPU (one line, nothing run).
"""
import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from tensorlite.serialization import atomic_write

from . import common, device_parts, device_report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_BUDGET_S = 480  # 8 minutes: a 15-minute lease less the machine's start, the copies, and a margin
MIN_PART_S = 10  # a part is not started with less than this left
GRACE_S = 10  # from Ctrl-C to kill for a part past its limit; kept back from the budget for that
TAIL_LINES = 40  # lines of a part's output kept in the JSON
_now = time.monotonic  # a function, so that tests can run the budget on a clock of their own


def _signal_group(proc, sig):
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:  # already gone
        pass


def run_part(part, limit_s, log_path):
    """Run one part with its output to `log_path`: (return code, timed out?)."""
    env = dict(os.environ)
    for key, value in part.env.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    with open(log_path, "w") as log:
        log.write(f"$ {' '.join(part.argv)}\n")
        log.flush()
        # its own process group, so that Ctrl-C and kill reach the part's children too (pytest-xdist's
        # workers), but the same session: whatever kills this command still kills the parts
        proc = subprocess.Popen(part.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=ROOT, preexec_fn=os.setpgrp)
        try:
            return proc.wait(timeout=limit_s), False
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGINT)
            try:
                return proc.wait(timeout=GRACE_S), True
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                return proc.wait(), True
        except BaseException:  # this program was interrupted: the part must not run on without it
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
            raise


def _tail(path, n=TAIL_LINES):
    try:
        with open(path, errors="replace") as f:
            return f.read().splitlines()[-n:]
    except OSError:
        return []


def finish_part(record, part, rc, timed_out, log_path):
    """Fill `record` from the part's return code and the file it wrote."""
    record.update(returncode=rc, tail=_tail(log_path))
    if timed_out:
        status, reason = "timed out", f"after its limit of {record['limit_s']:.0f} s"
    elif rc != 0:
        status, reason = "failed", f"exit status {rc}"
    else:
        status, reason = "passed", None
    said = None  # the reader's word, if it has one: "unavailable: why", "skipped: why", "failed: why"
    if os.path.exists(part.output):  # also after a failure: pytest's report, a failed check's numbers
        try:
            said, record["result"] = part.read(part, rc)
        except Exception as exc:  # a file left half-written, or a format the reader does not know
            record["read_error"] = f"{type(exc).__name__}: {exc}"
            if status == "passed":
                status, reason = "failed", f"its output could not be read ({record['read_error']})"
    elif part.name.startswith("tests"):  # pytest killed before its report: the counts of its last line
        record["result"] = {"counts": device_parts.pytest_counts_from_output("\n".join(record["tail"]))}
    elif status == "passed":
        status, reason = "failed", f"it wrote no {os.path.basename(part.output)}"
    if said and not timed_out and (rc == 0 or said.startswith("failed")):  # a reader never hides a failure
        status, _, reason = said.partition(": ")
    record.update(status=status, reason=reason)


def write_outputs(out, report):
    """device_check.json and device_check.md, each replaced whole (never half-written)."""
    atomic_write(os.path.join(out, "device_check.json"),
                 lambda f: (json.dump(report, f, indent=2, default=str), f.write("\n")), mode="w")
    try:
        text = device_report.markdown(report)
    except Exception as exc:  # a summary that cannot be drawn must not lose the measurements: the JSON has them
        text = f"# tensorlite device check\n\nThe summary could not be written ({type(exc).__name__}: {exc}); " \
               "device_check.json holds everything measured.\n"
    atomic_write(os.path.join(out, "device_check.md"), lambda f: f.write(text), mode="w")


def _append_log(out, record, log_path):
    with open(os.path.join(out, "device_check.log"), "a", errors="replace") as log:
        log.write(f"\n===== {record['name']}: {record['status']}"
                  f"{': ' + record['reason'] if record.get('reason') else ''} ({record.get('seconds', 0):.1f} s)\n")
        try:
            with open(log_path, errors="replace") as f:
                shutil.copyfileobj(f, log)
        except OSError:
            pass


def _outcome(report):
    bad = [p["name"] for p in report["parts"] if p["status"] in ("failed", "timed out")]
    return 1 if bad else 0, bad


def check(args, parts, out, work):
    """Run `parts` in order inside the budget, writing the outputs after each; returns the report."""
    start = _now()
    report = {"benchmark": "device_check", "args": vars(args), "started": _date(), "budget_s": args.budget_s,
              "machine": common.machine_info(), "parts": [dict(name=p.name, title=p.title, command=p.argv,
                                                               env=p.env, status="not run yet") for p in parts]}
    open(os.path.join(out, "device_check.log"), "w").close()
    write_outputs(out, report)
    for i, (part, record) in enumerate(zip(parts, report["parts"])):
        elapsed = _now() - start
        left = args.budget_s - elapsed - GRACE_S
        if left < MIN_PART_S:
            record.update(status="skipped", reason="out of time")
            print(f"[{elapsed:4.0f} s] {part.name}: skipped: out of time", flush=True)
            continue
        # its share of what is left, among the parts still to run; never under MIN_PART_S, never over what is left
        limit = min(left, max(MIN_PART_S, left * part.weight_s / sum(p.weight_s for p in parts[i:])))
        record["limit_s"] = limit
        print(f"[{elapsed:4.0f} s] {part.name}: {part.title} (limit {limit:.0f} s)", flush=True)
        log_path = os.path.join(work, f"{part.name}.log")
        t0 = _now()
        try:
            rc, timed_out = run_part(part, limit, log_path)
        except KeyboardInterrupt:  # Ctrl-C or a kill from outside: keep what was measured, run nothing more
            record.update(status="failed", reason="device_check was interrupted", seconds=_now() - t0,
                          tail=_tail(log_path))
            for later in report["parts"][i + 1:]:
                later.update(status="skipped", reason="device_check was interrupted")
            break
        record["seconds"] = _now() - t0
        finish_part(record, part, rc, timed_out, log_path)
        if part.name == "machine" and isinstance(record.get("result"), dict):
            report["machine"] = record["result"]
        _append_log(out, record, log_path)
        print(f"[{_now() - start:4.0f} s] {part.name}: {device_report.one_line(record)}", flush=True)
        write_outputs(out, report)
    report["elapsed_s"] = _now() - start
    report["exit_status"], report["failed_parts"] = _outcome(report)
    write_outputs(out, report)
    return report


def _interrupt(signum, frame):
    """A plain kill from outside ends like Ctrl-C: the part running is stopped, the outputs are written."""
    raise KeyboardInterrupt


def _date():
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def parse_args(argv):
    names = device_parts.NAMES  # the choices of --only and --skip
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="folder for device_check.json, .md and .log")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                   help="cuda: the real check; cpu: the same parts at tiny sizes, to test the machinery")
    p.add_argument("--budget_s", type=float, default=DEFAULT_BUDGET_S, help="seconds for everything")
    p.add_argument("--only", nargs="+", choices=names, default=None, help="run these parts only")
    p.add_argument("--skip", nargs="+", choices=names, default=[], help="leave these parts out")
    p.add_argument("--tests", nargs="+", default=None, help="what pytest runs (default: tests; on the CPU "
                   f"{' '.join(device_parts.TEST_SELECTION['cpu'])})")
    p.add_argument("--marker", default="cuda", help="pytest -m expression of the test parts")
    p.add_argument("--test_workers", type=int, default=min(8, max(1, common.cpu_count() // 2)),
                   help="pytest-xdist processes for the test parts on a GPU, where xdist is installed (1: none)")
    p.add_argument("--hypothesis_examples", type=int, default=None, help="examples per property test "
                   "(tests/conftest.py's HYPOTHESIS_EXAMPLES; default: as set there)")
    p.add_argument("--steps", type=int, default=30, help="alternated timed steps of each library per mode")
    p.add_argument("--work", default=None, help="keep each part's own files (JSON, junit XML, output) here "
                   "(default: a temporary folder, removed)")
    args = p.parse_args(argv)
    if args.budget_s < 0 or args.steps < 1:
        p.error(f"need --budget_s >= 0 and --steps >= 1, got {args.budget_s} and {args.steps}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.device == "cuda":
        ok, reason = common.gpu_status()
        if not ok:
            print(f"device_check: --device cuda needs a CUDA GPU, and {reason[0].lower() + reason[1:]} here; "
                  "--device cpu runs the same parts on the CPU at tiny sizes", file=sys.stderr)
            return 2
    os.makedirs(args.out, exist_ok=True)
    work = args.work or tempfile.mkdtemp(prefix="device_check_")
    os.makedirs(work, exist_ok=True)
    parts = [p for p in device_parts.parts(args, work)
             if (args.only is None or p.name in args.only) and p.name not in args.skip]
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        report = check(args, parts, args.out, work)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    code, bad = report["exit_status"], report["failed_parts"]
    print(f"wrote {os.path.join(args.out, 'device_check.json')}, device_check.md, device_check.log in "
          f"{report['elapsed_s']:.0f} s; " + (f"failed: {', '.join(bad)}" if bad else "every part that ran passed"))
    return code


if __name__ == "__main__":
    sys.exit(main())
