"""benchmarks.device_check runs its parts on the CPU at tiny sizes: the JSON and the summary it writes,
the time budget, a failing or hanging part that does not stop the others, and no GPU with --device cuda.
Fake parts (one-line Python programs) and a fake clock test the budget without waiting for it."""
import contextlib
import json
import os
import signal
import sys
import threading
from types import SimpleNamespace

import pytest

from benchmarks import device_check, device_parts, device_report, peak_memory
from tensorlite import backend

STATUSES = {"passed", "failed", "timed out", "skipped", "unavailable"}


def _load(out):
    report = json.loads((out / "device_check.json").read_text())
    return report, {p["name"]: p for p in report["parts"]}, (out / "device_check.md").read_text()


def test_a_cpu_run_measures_every_part_and_writes_the_summary(tmp_path, capsys):
    out = tmp_path / "out"
    assert device_check.main(["--out", str(out), "--device", "cpu"]) == 0
    report, parts, md = _load(out)
    assert list(parts) == list(device_parts.NAMES)
    assert {p["status"] for p in report["parts"]} <= STATUSES and report["exit_status"] == 0
    for key in ("gpu", "cupy", "torch", "numpy", "nvidia_smi", "torch_detail"):
        assert key in report["machine"], key
    assert parts["tests"]["result"]["counts"]["skipped"] >= 1  # the CUDA tests of the CPU selection skip here
    assert "TENSORLITE_FUSED" in parts["tests_fused"]["env"] and parts["tests"]["env"]["TENSORLITE_FUSED"] is None
    f32 = parts["compare_float32"]["result"]
    assert f32["ratio"] > 0 and all(c["ok"] for c in f32["checks"]) and f32["tensorlite"]["median_s"] > 0
    for mode in ("tf32", "float16"):  # unavailable until tensorlite has the API; measured once it has
        p = parts[f"compare_{mode}"]
        assert p["status"] == "unavailable" and "this tensorlite has no" in p["reason"] or "ratio" in p["result"]
    memory = parts["memory"]["result"]["tensorlite"]
    assert memory["peak_bytes"] > memory["at_rest_bytes"] > 0
    assert parts["train_step"]["result"]["functions_per_step"] and "gpu_best_gflops" in parts["matmul"]["result"]
    assert "| model | tensorlite / PyTorch eager |" in md and "<= 1.0" in md and "peak memory of one step" in md
    assert "## Tests" in md and "| `pytest -m cuda, TENSORLITE_FUSED=1` |" in md
    assert all(f"| {name} |" in md for name in device_parts.NAMES)
    log = (out / "device_check.log").read_text()
    assert "===== machine: passed" in log and "$ " in log  # every part's full output, its command first
    printed = capsys.readouterr().out
    assert "compare_float32: passed" in printed and "every part that ran passed" in printed


def test_a_budget_too_small_for_any_part_skips_them_all(tmp_path):
    assert device_check.main(["--out", str(tmp_path), "--device", "cpu", "--budget_s", "0"]) == 0
    report, parts, md = _load(tmp_path)
    assert {(p["status"], p["reason"]) for p in parts.values()} == {("skipped", "out of time")}
    assert "skipped: out of time" in md


def _fake_part(tmp_path, name, code, weight=1.0):
    """A part that runs `code`; it passes if it writes its file, which `code` does by itself."""
    output = tmp_path / f"{name}.json"
    argv = [sys.executable, "-c", f"import json, sys, time; OUT = {str(output)!r}\n{code}"]
    return device_parts.Part(name, f"fake {name}", weight, argv, str(output), lambda part, rc: (None, {"ok": True}))


WRITES = "json.dump({}, open(OUT, 'w'))"


def _run_fakes(tmp_path, monkeypatch, fakes, *options):
    monkeypatch.setattr(device_parts, "parts", lambda args, work: fakes)
    out = tmp_path / "out"
    code = device_check.main(["--out", str(out), "--device", "cpu", *options])
    return (code, *_load(out))


def test_the_budget_gives_later_parts_what_is_left_and_skips_when_it_is_gone(tmp_path, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(device_check, "_now", lambda: clock[0])
    real_run = device_check.run_part

    def run_part(part, limit_s, log_path):
        clock[0] += 300  # each part takes 300 s of the fake clock
        return real_run(part, limit_s, log_path)
    monkeypatch.setattr(device_check, "run_part", run_part)
    fakes = [_fake_part(tmp_path, n, WRITES, w) for n, w in (("a", 3.0), ("b", 1.0), ("c", 1.0))]
    code, report, parts, md = _run_fakes(tmp_path, monkeypatch, fakes, "--budget_s", "480")
    assert code == 0
    left = 480 - device_check.GRACE_S
    assert parts["a"]["limit_s"] == pytest.approx(left * 3 / 5)  # its share of what is left
    assert parts["b"]["limit_s"] == pytest.approx((left - 300) / 2)  # half of what is left then
    assert parts["b"]["status"] == "passed"
    assert (parts["c"]["status"], parts["c"]["reason"]) == ("skipped", "out of time")


def test_a_failing_part_and_a_hanging_one_do_not_stop_the_others(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(device_check, "GRACE_S", 2)
    monkeypatch.setattr(device_check, "MIN_PART_S", 1)
    fakes = [_fake_part(tmp_path, "crash", "print('before the crash'); raise SystemExit('boom: a CUDA error')"),
             _fake_part(tmp_path, "hang", "print('started', flush=True); time.sleep(120)", weight=0.01),
             _fake_part(tmp_path, "silent", "pass"),
             _fake_part(tmp_path, "fine", WRITES)]
    code, report, parts, md = _run_fakes(tmp_path, monkeypatch, fakes, "--budget_s", "60")
    assert code == 1 and report["failed_parts"] == ["crash", "hang", "silent"]
    assert (parts["crash"]["status"], parts["crash"]["reason"]) == ("failed", "exit status 1")
    assert parts["crash"]["tail"][-2:] == ["before the crash", "boom: a CUDA error"]
    assert parts["hang"]["status"] == "timed out" and "started" in parts["hang"]["tail"]
    assert parts["hang"]["seconds"] < 30  # stopped at its limit (Ctrl-C), not left to sleep
    assert parts["silent"]["reason"] == "it wrote no silent.json" and parts["fine"]["status"] == "passed"
    assert "### crash: the last lines of its output" in md and "boom: a CUDA error" in md
    assert "failed: crash, hang, silent" in capsys.readouterr().out


def test_a_kill_from_outside_stops_the_part_and_keeps_what_was_measured(tmp_path, monkeypatch):
    fakes = [_fake_part(tmp_path, "first", WRITES), _fake_part(tmp_path, "hang", "time.sleep(120)"),
             _fake_part(tmp_path, "never", WRITES)]
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    real_run = device_check.run_part

    def run_part(part, limit_s, log_path):
        if part.name == "hang":
            timer.start()  # the kill comes while this part runs
        return real_run(part, limit_s, log_path)
    monkeypatch.setattr(device_check, "run_part", run_part)
    try:
        code, report, parts, md = _run_fakes(tmp_path, monkeypatch, fakes)
    finally:
        timer.cancel()
    assert code == 1 and parts["first"]["status"] == "passed" and parts["hang"]["seconds"] < 30
    assert parts["hang"]["reason"] == parts["never"]["reason"] == "device_check was interrupted"
    assert signal.getsignal(signal.SIGTERM) is not device_check._interrupt  # put back


FAILING_TESTS = '''
import pytest

@pytest.mark.cuda
def test_passes():
    pass

@pytest.mark.cuda
def test_fails():
    assert 1 == 2, "one is not two"

@pytest.mark.cuda
def test_skips():
    pytest.skip("no GPU here")

def test_not_selected():
    pass
'''


def test_failing_tests_are_counted_and_named_and_the_next_parts_still_run(tmp_path):
    tests = tmp_path / "test_failing.py"
    tests.write_text(FAILING_TESTS)
    out = tmp_path / "out"
    code = device_check.main(["--out", str(out), "--device", "cpu", "--only", "tests", "compare_float16", "memory",
                              "--tests", str(tests)])
    report, parts, md = _load(out)
    assert code == 1 and report["failed_parts"] == ["tests"]
    r = parts["tests"]["result"]
    assert {k: r["counts"][k] for k in ("tests", "passed", "failures", "skipped")} == \
        {"tests": 3, "passed": 1, "failures": 1, "skipped": 1}
    (failure,) = r["failures"]
    assert failure["test"].endswith("test_fails") and failure["first_line"].startswith("AssertionError: one is not two")
    assert parts["memory"]["status"] == "passed" and parts["compare_float16"]["status"] in ("passed", "unavailable")
    assert "test_fails`: AssertionError: one is not two" in md


def test_pytest_counts_from_its_last_line():
    text = "....F\nFAILED tests/x.py::t - boom\n===== 1 failed, 4 passed, 2 skipped, 3 deselected in 1.50s ====="
    assert device_parts.pytest_counts_from_output(text) == {"failed": 1, "passed": 4, "skipped": 2, "deselected": 3}
    assert device_parts.pytest_counts_from_output("killed before the end") == {}


@pytest.mark.skipif(backend.cuda_is_available(), reason="a CUDA GPU is here")
def test_no_gpu_with_device_cuda_is_one_line_and_exit_status_2(tmp_path, capsys):
    assert device_check.main(["--out", str(tmp_path / "out"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a CUDA GPU" in err and "--device cpu" in err
    assert not (tmp_path / "out").exists()


def test_the_gpu_run_asks_for_the_course_preset_in_each_mode():
    args = SimpleNamespace(device="cuda", steps=30, tests=None, marker="cuda", test_workers=1, hypothesis_examples=None)
    parts = {p.name: p for p in device_parts.parts(args, "/w")}
    assert tuple(parts) == device_parts.NAMES
    for mode in ("float32", "tf32", "float16"):
        argv = parts[f"compare_{mode}"].argv
        assert argv[argv.index("--dtype") + 1] == mode and argv[argv.index("--presets") + 1] == "course"
        assert ("--no_check" in argv) == (mode != "float32")
    assert parts["tests"].argv[-1] == "tests" and parts["tests_fused"].env == {"TENSORLITE_FUSED": "1"}
    assert "course" in parts["memory"].argv and "course" in parts["train_step"].argv


def _stats(median):
    return {"median_s": median, "q1_s": median * 0.98, "q3_s": median * 1.02, "min_s": median, "max_s": median, "n": 3}


def test_the_summary_of_a_gpu_run(tmp_path):
    """markdown() on what a GPU run records (the CPU run leaves the GPU rows empty)."""
    def compare(ratio):
        return {"name": f"compare_{ratio[0]}", "title": "t", "status": "passed", "seconds": 20, "limit_s": 50,
                "result": {"preset": "course", "parameters": 14_271_041, "ratio": ratio[1], "pair_ratio": _stats(1.0),
                           "tensorlite": _stats(0.05 * ratio[1]), "torch": _stats(0.05), "checks": []}}
    parts = [compare(("float32", 1.25)), compare(("tf32", 0.95)),
             {"name": "compare_float16", "title": "t", "status": "timed out", "reason": "after its limit of 35 s",
              "tail": ["Traceback", "KeyboardInterrupt"]},
             {"name": "memory", "title": "t", "status": "passed", "result": {
                 "ratio": 1.5, "tensorlite": {"peak_bytes": 3 * 2**30}, "torch": {"peak_bytes": 2 * 2**30}}},
             {"name": "matmul", "title": "t", "status": "passed", "result": {"gpu_best_gflops": {"float16": 7.0e5},
              "results": {"model_shapes": [{"case": "course preset: Linear", "gpu": _stats(1e-5), "flops": 4e9,
                                            "speedup": 80.0}]}}}]
    gpu = {"available": True, "name": "NVIDIA H200", "cuda_driver": 13000, "cuda_runtime": 12080}
    machine = {"date": "d", "cpu": "x", "cores": 16, "numpy": "2", "blas": {}, "blas_threads": 16, "cupy": "14",
               "torch": "2.11", "python": "3.12", "gpu": gpu, "torch_detail": {"cuda": "13.0"},
               "nvidia_smi": "name, driver_version, memory.total [MiB]\nNVIDIA H200, 580.159.03, 143771 MiB"}
    report = {"args": {"device": "cuda"}, "started": "now", "budget_s": 480, "elapsed_s": 400, "exit_status": 1,
              "machine": machine, "parts": parts}
    md = device_report.markdown(report)
    assert "nvidia-smi: NVIDIA H200, 580.159.03, 143771 MiB" in md
    assert "# tensorlite device check: NVIDIA H200" in md and "CUDA driver 13000" in md and "torch CUDA 13.0" in md
    assert "| course GPT (14,271,041 parameters), float32 | **1.25** |" in md and "<= 1.0: **not met** |" in md
    assert "TF32 | **0.95** |" in md and "<= 1.0: met |" in md
    assert "| GPT, float16 (autocast + GradScaler) | timed out: after its limit of 35 s |" in md
    assert "| peak memory of one step, float32 | **1.50** | 3.00 GiB | 2.00 GiB |" in md
    assert "float16 700,000 GFLOP/s" in md and "| course preset: Linear |" in md and "80.0x" in md
    assert "### compare_float16: the last lines of its output" in md
    assert device_report.one_line(parts[0]) == "passed (20 s): tensorlite / PyTorch 1.25 (62.5 ms / 50 ms)"


def test_the_pool_peak_counts_every_block_handed_out_and_given_back(monkeypatch):
    """peak_memory's CuPy hook, with a fake pool: only the hook's accounting is tested here."""
    cupy = pytest.importorskip("cupy")
    from cupy.cuda import memory_hook

    def hooks(event, **kw):
        for h in memory_hook.get_memory_hooks().values():
            getattr(h, f"{event}_postprocess")(device_id=0, mem_ptr=0, pmem_id=0, **kw)

    def step():  # 1000 in use before; +512, +2048, -512, +1024: the peak is 1000 + 3072
        hooks("malloc", size=500, mem_size=512)
        hooks("malloc", size=2000, mem_size=2048)
        hooks("free", mem_size=512)
        hooks("malloc", size=1000, mem_size=1024)
        hooks("free", mem_size=1000)  # a block allocated before the step
    pool = SimpleNamespace(used_bytes=lambda: 1000, total_bytes=lambda: 8192)
    fake = SimpleNamespace(cuda=cupy.cuda, get_default_memory_pool=lambda: pool)
    monkeypatch.setattr(backend, "xp_for", lambda device: fake)
    monkeypatch.setattr(backend, "synchronize", lambda device=None: None)
    monkeypatch.setattr(backend, "device_context", lambda device: contextlib.nullcontext())
    assert peak_memory.pool_peak(step, "cuda:0") == {"at_rest_bytes": 1000, "peak_bytes": 4072, "held_bytes": 8192}
