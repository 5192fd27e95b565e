"""The data-parallel benchmarks at tiny sizes: `mpiexec -n 2 python -m benchmarks.train_step` measures the
global step, and `python -m benchmarks.data_parallel` runs its three programs and writes the table, the
ratios and the estimate. The runs need mpiexec and mpi4py (the mpi extra) and are skipped without them;
the estimate's arithmetic and the flag checks are tested everywhere."""
import json
import math
import os
import subprocess
import sys

import pytest

from benchmarks import data_parallel
from train import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--batch_size", "4", "--block_size", "8", "--n_embd", "16", "--n_layer", "1", "--n_head", "2",
        "--vocab_size", "11"]
MPIEXEC, NO_MPI = distributed.mpiexec_command()
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason=f"no MPI to start ranks with: {NO_MPI}")


def _run(cmd, timeout=60):
    """Run a program from the repository root (not under this pytest's own environment's mpiexec, if any)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "MV2_", "MPI_LOCAL"))}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@needs_mpi
def test_train_step_under_mpiexec_measures_the_global_step(tmp_path):
    path = tmp_path / "ts.json"
    p = _run(MPIEXEC + ["-n", "2", sys.executable, "-m", "benchmarks.train_step", "--model", "gpt", "--device", "cpu",
                        *TINY, "--steps", "2", "--warmup", "1", "--profile_steps", "1", "--json", str(path)])
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("One training step") == 1 and p.stdout.count("wrote ") == 1  # rank 0 alone prints
    assert "data-parallel: 2 ranks" in p.stdout
    (r,) = json.loads(path.read_text())["results"]
    assert r["ranks"] == 2 and r["tokens_per_step"] == 4 * 8  # the global batch, not a rank's 2 sequences
    assert r["size"]["batch_size"] == 4 and r["blas_threads"] >= 1
    assert set(r["phases_s"]) == {"forward", "backward", "allreduce", "optimizer"}
    ar = r["allreduce"]
    assert ar["bytes"] == 4 * (r["parameters"] + 2)  # float32 gradients, the loss and the stop flag
    assert 0 < ar["share"] < 1 and ar["share"] == pytest.approx(ar["median_s"] / r["step"]["median_s"])
    assert 0 < ar["median_s"] <= ar["with_wait_median_s"] and ar["latency_s"] > 0
    assert len(ar["samples_s"]) == len(r["step_samples_s"]) == 2
    assert all(a <= s for a, s in zip(ar["samples_s"], r["step_samples_s"]))  # the reduce is part of its step


@needs_mpi
def test_train_step_under_mpiexec_refuses_a_batch_the_ranks_do_not_divide():
    p = _run(MPIEXEC + ["-n", "2", sys.executable, "-m", "benchmarks.train_step", "--model", "gpt", "--device", "cpu",
                        *TINY[2:], "--batch_size", "3"])
    assert p.returncode != 0
    errors = [line for line in p.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "divisible by the 2 ranks" in errors[0]  # said once, by rank 0
    assert "Traceback" not in p.stderr


@needs_mpi
def test_data_parallel_tiny(tmp_path):
    path = tmp_path / "dp.json"
    p = _run([sys.executable, "-m", "benchmarks.data_parallel", "--ranks", "2", "--rounds", "1", "--steps", "2",
              "--warmup", "1", *TINY, "--json", str(path)], timeout=120)
    assert p.returncode == 0, p.stderr
    assert "Scaling estimate (ON PAPER" in p.stdout and "All-reduce of (a)" in p.stdout
    r = json.loads(path.read_text())["results"]
    torch = r["torch"].get("skipped") is None
    assert [row["run"] for row in r["rows"]] == (["a", "b", "c"] if torch else ["a", "b"])
    a, b = r["rows"][:2]
    assert (a["processes"], a["threads"], b["processes"]) == (2, r["threads_per_rank"], 1)
    for row in r["rows"]:
        assert 0 < row["step"]["median_s"] and len(row["samples_s"]) == 2
        assert row["tokens_per_s"] == pytest.approx(32 / row["step"]["median_s"])
    ratios = r["ratios"]
    assert ratios["a_over_b"] == pytest.approx(a["step"]["median_s"] / b["step"]["median_s"])
    if torch:
        c = r["rows"][2]
        assert ratios["a_over_c"] == pytest.approx(a["step"]["median_s"] / c["step"]["median_s"])
        assert ratios["b_over_c"] == pytest.approx(b["step"]["median_s"] / c["step"]["median_s"])
        assert r["torch"]["blas"]["name"] and r["machine"]["torch_blas"]
    assert 0 < r["allreduce"]["share"] < 1 and r["machine"]["vendor"] and r["machine"]["numpy_blas"]["name"]
    est = r["estimate"]
    assert [c["ranks"] for c in est["configurations"]] == [2, 8, 16]
    measured = est["configurations"][0]  # the model reproduces the measured run it was fitted to
    assert measured["step_s"] == pytest.approx(a["step"]["median_s"])
    assert all(c["step_s"] > 0 and c["speedup"] > 0 for c in est["configurations"])


def test_ring_allreduce_model():
    assert data_parallel.ring_s(1, 1e6, 1e9, 1e-5) == 0
    # 2 ranks: each sends and receives half the buffer twice, 2 latencies
    assert data_parallel.ring_s(2, 1e6, 1e9, 1e-5) == pytest.approx(1e6 / 1e9 + 2e-5)
    assert data_parallel.ring_s(8, 8e6, 1e9, 0) == pytest.approx(2 * 7 / 8 * 8e6 / 1e9)


def test_estimate_reproduces_its_inputs_and_scales_the_batch_share():
    configs = [("measured", 2, "shm"), ("8 ranks", 8, "shm"), ("2 x 8", 16, "network")]
    est = data_parallel.estimate(step_s=0.1, allreduce_s=0.002, nbytes=4e6, ranks=2, batch=32, fixed_share=0.1,
                                 configurations=configs, shm_latency_s=1e-6, network_bytes_per_s=1.25e9,
                                 network_latency_s=5e-5)
    measured, eight, sixteen = est["configurations"]
    assert measured["step_s"] == pytest.approx(0.1) and measured["allreduce_s"] == pytest.approx(0.002)
    compute = 0.098  # 10% fixed (the optimizer), 90% proportional to the 16 sequences of a rank
    assert eight["compute_s"] == pytest.approx(compute * (0.1 + 0.9 * 4 / 16))
    assert eight["allreduce_s"] == pytest.approx(data_parallel.ring_s(8, 4e6, est["shm_bandwidth_bytes_per_s"], 1e-6))
    assert sixteen["allreduce_s"] == pytest.approx(data_parallel.ring_s(16, 4e6, 1.25e9, 5e-5))
    assert est["one_rank_step_s"] == pytest.approx(compute * (0.1 + 0.9 * 2))
    assert eight["speedup"] == pytest.approx(est["one_rank_step_s"] / eight["step_s"])
    latency_bound = data_parallel.estimate(0.1, 1e-6, 4e6, 2, 32, 0.1, configs, 1e-6, 1.25e9, 5e-5)
    assert math.isinf(latency_bound["shm_bandwidth_bytes_per_s"])  # all latency: no bandwidth to fit


@pytest.mark.parametrize("bad, says", [(["--ranks", "3"], "divisible by --ranks 3"), (["--ranks", "1"], "at least 2"),
                                       (["--network_gbps", "0"], "positive"), (["--rounds", "0"], "at least 1")])
def test_data_parallel_rejects_bad_flags_in_one_line(bad, says, capsys):
    with pytest.raises(SystemExit):
        data_parallel.parse_args(["--batch_size", "32", *bad])
    assert says in capsys.readouterr().err.splitlines()[-1]


def test_data_parallel_without_mpi_skips_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(distributed, "mpiexec_command", lambda: (None, "mpi4py is not installed"))
    assert data_parallel.main(["--rounds", "1"]) == 0
    assert capsys.readouterr().out.strip() == "data_parallel: skipped: mpi4py is not installed"


@needs_mpi
def test_data_parallel_without_torch_measures_the_rest(tmp_path, monkeypatch, capsys):
    find_spec = data_parallel.importlib.util.find_spec
    monkeypatch.setattr(data_parallel.importlib.util, "find_spec",
                        lambda name: None if name == "torch" else find_spec(name))
    path = tmp_path / "dp.json"
    assert data_parallel.main(["--rounds", "1", "--steps", "1", "--warmup", "0", *TINY, "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "(c) skipped: PyTorch is not installed" in out and "(c) PyTorch" not in out
    r = json.loads(path.read_text())["results"]
    assert [row["run"] for row in r["rows"]] == ["a", "b"] and "a_over_c" not in r["ratios"]
    assert r["torch"] == {"skipped": "PyTorch is not installed (pip install torch)"} and r["estimate"]["configurations"]
