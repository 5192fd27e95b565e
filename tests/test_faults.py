"""Fault injection (issue 14): a training run killed at any moment (kill -9 between steps, inside a
checkpoint write, between the writes of one evaluation) and resumed ends with the same best.ckpt, last.ckpt
and log.jsonl as a run never interrupted; SIGTERM and SIGHUP save like Ctrl-C; Ctrl-C while starting is
one line."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from train import gpt as train_gpt
from train.checkpoint import load_checkpoint
from train.cli import cli_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork and signals")


def argv(data, out_dir, *extra):  # a tiny GPT with dropout: the random generators must resume too
    return ["--data", data, "--out_dir", str(out_dir), "--device", "cpu", "--preset", "cpu", "--batch_size", "4",
            "--block_size", "8", "--n_embd", "8", "--n_layer", "1", "--n_head", "2", "--max_iters", "6",
            "--eval_interval", "2", "--eval_iters", "2", "--warmup_iters", "2", "--dropout", "0.1",
            "--learning_rate", "0.01", "--sample_tokens", "0", "--no-plot", *extra]


# The run to kill: `python -c DRIVER KILL_AT ARGS...` counts the moments a kill can hit (before each fsync and
# os.replace, after each os.replace: inside and between the atomic writes and the log's append; before each
# training step) and SIGKILLs itself at the KILL_AT-th one (0: never; it prints how many there were).
DRIVER = """
import atexit, os, signal, sys
kill_at, count = int(sys.argv[1]), [0]
def moment():
    count[0] += 1
    if count[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
def hook(fn, after=False):
    def hooked(*args, **kwargs):
        moment()
        result = fn(*args, **kwargs)
        if after:
            moment()
        return result
    return hooked
from train import gpt, loop
from train.cli import cli_main
os.fsync, os.replace, loop.train_step = hook(os.fsync), hook(os.replace, after=True), hook(loop.train_step)
atexit.register(lambda: print("moments", count[0], file=sys.stderr))
sys.exit(cli_main(gpt.main, sys.argv[2:]))
"""


def driven(kill_at, args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(kill_at), *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def outcome(out_dir):
    """What a run leaves: both checkpoints' steps, best losses and weights, and the log without its clock."""
    result = {}
    for name in ("last.ckpt", "best.ckpt"):
        ckpt = load_checkpoint(os.path.join(out_dir, name))
        result[name] = (ckpt["step"], ckpt["best_val_loss"], ckpt["last_eval_step"],
                        {k: np.asarray(v.numpy()).tobytes() for k, v in ckpt["model"].items()})
    with open(os.path.join(out_dir, "log.jsonl"), encoding="utf-8") as f:
        result["log"] = [{k: v for k, v in json.loads(line).items() if k not in ("time", "cpu_time")} for line in f]
    return result


def finish(args, out_dir):
    """What a user does after a crash: --resume where a last.ckpt exists, else start over."""
    again = "--resume" if os.path.exists(os.path.join(out_dir, "last.ckpt")) else "--overwrite"
    assert cli_main(train_gpt.main, args + [again]) == 0


def test_a_kill_at_any_moment_then_resume_equals_an_uninterrupted_run(text_file, tmp_path, capsys):
    ref = driven(0, argv(text_file, tmp_path / "ref"))
    err = ref.communicate(timeout=120)[1]
    assert ref.returncode == 0, err
    expected, moments = outcome(tmp_path / "ref"), int(err.split("moments")[-1])
    assert moments > 25 and [r["step"] for r in expected["log"]] == [0, 2, 4, 6]
    started = time.time()
    for first in range(1, moments + 1, 4):  # four at a time: most of a start is waiting for imports
        kills = {kill_at: driven(kill_at, argv(text_file, tmp_path / f"kill{kill_at}"))
                 for kill_at in range(first, min(first + 4, moments + 1))}
        for kill_at, proc in kills.items():
            err = proc.communicate(timeout=120)[1]
            assert proc.returncode == -signal.SIGKILL, (kill_at, err)
        for kill_at in kills:
            out = tmp_path / f"kill{kill_at}"
            finish(argv(text_file, out), out)
            assert outcome(out) == expected, f"killed at moment {kill_at} of {moments}"
            assert sorted(os.listdir(out)) in (["best.ckpt", "last.ckpt", "log.jsonl"],
                                               ["best.ckpt", "last.ckpt", "log.jsonl", "log.old.jsonl"])
    assert time.time() - started < 90
    capsys.readouterr()


def test_two_kills_in_a_row_then_resume_equal_an_uninterrupted_run(text_file, tmp_path):
    assert cli_main(train_gpt.main, argv(text_file, tmp_path / "ref")) == 0
    expected = outcome(tmp_path / "ref")
    out = tmp_path / "twice"
    args = argv(text_file, out)
    for kill_at, extra in ((15, []), (12, ["--resume"])):  # in an evaluation's writes, then in the resumed run's
        proc = driven(kill_at, args + extra)
        proc.communicate(timeout=120)
        assert proc.returncode == -signal.SIGKILL
    finish(args, out)
    assert outcome(out) == expected


def start(args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-u", "-m", "train.gpt", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_training(proc):
    for line in proc.stdout:
        if line.startswith("step 0"):
            return
    raise AssertionError(proc.stderr.read())


@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_save_a_checkpoint_like_ctrl_c(text_file, tmp_path, signum, code):
    proc = start(argv(text_file, tmp_path, "--max_iters", "100000", "--eval_interval", "50000"))
    wait_for_training(proc)
    time.sleep(0.5)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code and "Traceback" not in err, err
    assert "continue with --resume" in out and signal.Signals(signum).name in out
    assert load_checkpoint(str(tmp_path / "last.ckpt"))["step"] > 0 and not (tmp_path / "train.lock").exists()


def test_kill_9_of_a_real_process_then_resume_equals_an_uninterrupted_run(text_file, tmp_path):
    assert cli_main(train_gpt.main, argv(text_file, tmp_path / "ref", "--max_iters", "300",
                                         "--eval_interval", "25")) == 0
    expected = outcome(tmp_path / "ref")
    args = argv(text_file, tmp_path / "b", "--max_iters", "300", "--eval_interval", "25")
    proc = start(args)
    wait_for_training(proc)
    time.sleep(0.3)
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert (tmp_path / "b" / "train.lock").exists()  # a stale lock: the next run takes it over
    finish(args, tmp_path / "b")
    assert outcome(tmp_path / "b") == expected


def test_ctrl_c_while_starting_is_one_line_and_exit_130(text_file, tmp_path):
    proc = start(argv(text_file, tmp_path / "run"))
    time.sleep(0.15)  # importing tensorlite and the model
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err and err.count("\n") <= 1, err
    assert not (tmp_path / "run" / "last.ckpt").exists()
