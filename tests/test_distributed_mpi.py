"""`mpiexec -n 2 python -m train.gpt` for real (tests/mpi_launch.py finds the MPI; skipped without one): the same
losses as one process and as --grad_accum 2, identical weights on every rank, resume with another number of
ranks, Ctrl-C and SIGTERM, a rank that dies, hangs or cannot read its data."""
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.mpi_launch import mpi_env, mpiexec, requires_mpi, run_mpi, run_mpmd
from tests.test_distributed import assert_same_losses, losses
from train.checkpoint import load_checkpoint

pytestmark = requires_mpi

@pytest.fixture
def data(text_file):
    return text_file  # (conftest's tiny corpus)


def argv(data, out_dir, *extra, steps=8):
    return ["-m", "train.gpt", "--data", data, "--out_dir", str(out_dir), "--device", "cpu", "--preset", "cpu",
            "--batch_size", "8", "--block_size", "8", "--n_embd", "16", "--n_layer", "2", "--n_head", "2",
            "--max_iters", str(steps), "--eval_interval", "4", "--eval_iters", "3", "--dropout", "0",
            "--sample_tokens", "0", "--no-plot", "--learning_rate", "3e-3", *extra]


def ok(result):
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result


def one_process(args):
    return ok(subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, env=mpi_env()))


# ---------------------------------------------------------------- the same training
def test_two_ranks_train_as_one_process_and_as_grad_accum(data, tmp_path):
    one_process(argv(data, tmp_path / "one"))
    one_process(argv(data, tmp_path / "accum", "--grad_accum", "2"))
    two = ok(run_mpi(2, argv(data, tmp_path / "two")))
    ok(run_mpi(2, argv(data, tmp_path / "two_accum", "--grad_accum", "2")))
    for other in ("accum", "two", "two_accum"):
        assert_same_losses(losses(tmp_path / other), losses(tmp_path / "one"))
    assert "mpi: 2 ranks" in two.stdout
    assert two.stdout.count("step 8: train loss") == 1 and two.stdout.count("done:") == 1  # rank 0 alone prints
    assert sorted(os.listdir(tmp_path / "two")) == ["best.ckpt", "last.ckpt", "log.jsonl"]


WATCH_WEIGHTS = """
import hashlib, sys
import numpy as np
from train import distributed, loop, run
def kept(model, *args, **kw):
    state = original(model, *args, **kw)
    h = hashlib.sha256(b"".join(np.ascontiguousarray(p.detach().numpy()).tobytes() for p in model.parameters()))
    with open(f"{OUT}/weights.{distributed.init_world().rank}", "w") as f:
        f.write(h.hexdigest())
    return state
original, run.train_loop = run.train_loop, kept
from train import gpt
from train.cli import cli_main
sys.exit(cli_main(gpt.main, sys.argv[1:]))
"""


def test_weights_stay_identical_on_every_rank(data, tmp_path):
    script = tmp_path / "watch.py"
    script.write_text(f"OUT = {str(tmp_path)!r}\n" + WATCH_WEIGHTS)
    ok(run_mpi(3, [str(script), *argv(data, tmp_path / "run", "--dropout", "0.1", "--batch_size", "6")[2:]]))
    digests = {(tmp_path / f"weights.{r}").read_text() for r in range(3)}
    assert len(digests) == 1


# ---------------------------------------------------------------- resume with another number of ranks
@pytest.mark.parametrize("first, then", [(2, 1), (1, 2)])
def test_resume_with_another_number_of_ranks_continues_the_same_run(data, tmp_path, first, then):
    one_process(argv(data, tmp_path / "straight", steps=12))
    start = argv(data, tmp_path / "run", steps=4)
    ok(run_mpi(first, start) if first > 1 else one_process(start))
    more = argv(data, tmp_path / "run", "--resume", "--max_iters", "12")
    ok(run_mpi(then, more) if then > 1 else one_process(more))
    assert_same_losses(losses(tmp_path / "run"), losses(tmp_path / "straight"))


# ---------------------------------------------------------------- signals and failures
def start_long_run(data, out_dir, ranks=2, env=None):
    proc = subprocess.Popen([*mpiexec(), "-n", str(ranks), sys.executable,
                             *argv(data, out_dir, "--eval_interval", "20", steps=10 ** 6)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or mpi_env())
    deadline = time.monotonic() + 60
    while not (out_dir / "last.ckpt").exists():  # the first evaluation: training is under way
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    return proc


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_every_rank_after_the_same_step_and_saves_once(data, tmp_path, signum, code):
    proc = start_long_run(data, tmp_path / "run")
    time.sleep(1.0)
    proc.send_signal(signum)  # mpiexec passes it to every rank
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, out[-2000:] + err[-2000:]
    assert out.count("saved") == 1 and "continue with --resume" in out and "Traceback" not in err
    step = load_checkpoint(str(tmp_path / "run" / "last.ckpt"))["step"]
    assert f"interrupted at step {step};" in out and step > 20


@pytest.mark.parametrize("delay", [0.3, 0.5, 0.8])
def test_ctrl_c_while_the_ranks_start_is_one_line(data, tmp_path, delay):
    """Ctrl-C while the ranks import, start MPI, set up, or have just begun: the job ends, every rank."""
    proc = subprocess.Popen([*mpiexec(), "-n", "2", sys.executable, *argv(data, tmp_path / "run", steps=10 ** 6)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=mpi_env(TENSORLITE_MPI_TIMEOUT="5"))
    deadline = time.monotonic() + 30
    while len(rank_pids(tmp_path / "run", 0) + rank_pids(tmp_path / "run", 1)) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and time.monotonic() - started < 30, out[-2000:] + err[-2000:]
    # Usually exit 130 and one line. A signal inside MPI_Init (which holds Python's lock) can also end with
    # MPICH's Abort line, or after TENSORLITE_MPI_TIMEOUT: what must hold is that the job ends, and wholly.
    said = [line for line in err.splitlines() if line.startswith(("interrupted", "error"))]
    assert 1 <= len(said) + out.count("saved") <= 2, out[-2000:] + err[-2000:]
    deadline = time.monotonic() + 20  # and no rank is left behind (one stuck in MPI_Init ends after 5 s)
    while rank_pids(tmp_path / "run", 0) + rank_pids(tmp_path / "run", 1):
        assert time.monotonic() < deadline, "a rank outlived mpiexec"
        time.sleep(0.2)


def test_sigterm_to_one_rank_stops_them_all_after_the_same_step(data, tmp_path):
    if "Open MPI" in subprocess.run([mpiexec()[0], "--version"], capture_output=True, text=True).stdout:
        pytest.skip("finds the rank by MPICH's PMI_RANK")
    proc = start_long_run(data, tmp_path / "run")
    os.kill(rank_pids(tmp_path / "run", 1)[0], signal.SIGTERM)  # rank 1 alone: its wish reaches rank 0
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, out[-2000:] + err[-2000:]
    step = load_checkpoint(str(tmp_path / "run" / "last.ckpt"))["step"]
    assert out.count("saved") == 1 and f"interrupted at step {step};" in out


def rank_pids(out_dir, rank):
    """The pids of the processes of rank `rank` of the run writing to out_dir (from /proc)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if str(out_dir).encode() in cmd and f"PMI_RANK={rank}".encode() in env:
            pids.append(int(pid))
    return pids


def test_a_rank_that_dies_ends_the_job_within_seconds_and_keeps_the_checkpoint(data, tmp_path):
    if "Open MPI" in subprocess.run([mpiexec()[0], "--version"], capture_output=True, text=True).stdout:
        pytest.skip("finds the rank by MPICH's PMI_RANK")
    proc = start_long_run(data, tmp_path / "run")
    pids = rank_pids(tmp_path / "run", 1)
    assert pids
    os.kill(pids[0], signal.SIGKILL)
    started = time.monotonic()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and time.monotonic() - started < 20
    said = (out + err).lower()  # the launcher's report (MPICH's "BAD TERMINATION ... Killed (signal 9)"), or
    # MPICH's own when rank 0's all-reduce sees the loss first (its "Fatal error ... error stack", then abort)
    assert "killed" in said or "signal 9" in said or "fatal error" in said, out[-2000:] + err[-2000:]
    assert "traceback" not in said, out[-2000:] + err[-2000:]
    assert load_checkpoint(str(tmp_path / "run" / "last.ckpt"))["step"] >= 0  # whole, loadable


def rank_0_beside(data, tmp_path, other):
    """A training run as rank 0 and `other` (a command) as rank 1, each rank waiting at most 3 s for the other:
    (CompletedProcess, seconds it took)."""
    started = time.monotonic()
    result = run_mpmd([sys.executable, *argv(data, tmp_path / "run")], other, env=mpi_env(TENSORLITE_MPI_TIMEOUT="3"))
    return result, time.monotonic() - started


def test_a_rank_that_hangs_makes_the_job_end_with_one_line(data, tmp_path):
    result, seconds = rank_0_beside(data, tmp_path, [sys.executable, "-c",
                                                     "import time; from mpi4py import MPI; time.sleep(120)"])
    assert result.returncode != 0 and seconds < 60
    assert "error: rank 0 waited 3 s for the other ranks" in result.stderr, result.stderr


def test_a_rank_that_never_starts_mpi_ends_the_others_with_one_line(data, tmp_path):
    # no MPI_Init in rank 1: rank 0 waits in its own
    result, seconds = rank_0_beside(data, tmp_path, [sys.executable, "-c", "import time; time.sleep(60)"])
    assert result.returncode != 0 and seconds < 30
    assert "error: rank 0: MPI did not start within 3 s" in result.stderr, result.stderr


def test_a_rank_without_its_data_fails_every_rank_with_one_line(data, tmp_path):
    good, bad = argv(data, tmp_path / "run"), argv(str(tmp_path / "missing.txt"), tmp_path / "run")
    result = run_mpmd([sys.executable, *good], [sys.executable, *bad])
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"error: rank 1 of 2: data file {str(tmp_path / 'missing.txt')!r} does not exist"], lines
    assert not (tmp_path / "run").exists()  # nothing written: the folder rank 0 made is removed


def test_a_bad_batch_split_is_one_line_from_rank_0(data, tmp_path):
    result = run_mpi(2, argv(data, tmp_path / "run", "--batch_size", "7"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: --batch_size 7 cannot be split evenly into 2 rank(s) x 1 "
                                          "micro-step(s) (--grad_accum); give a --batch_size that is a multiple of 2"]
