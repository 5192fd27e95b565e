"""train/plot.py: reading logs, the loss figure, loss.png during training (with and without matplotlib),
and `python -m train.plot`."""
import json
import math
import os
import subprocess
import sys

import pytest

from train import bigram as train_bigram
from train import plot as P
from train.cli import cli_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_log(folder, n=6, tokens_per_step=256, lr=1e-3, start=4.2):
    """A log.jsonl as train.loop writes it: losses falling, validation lowest at the next-to-last step."""
    os.makedirs(folder, exist_ok=True)
    records = []
    for i in range(n):
        step = 10 * i
        val = start - 0.3 * i + (0.5 if i == n - 1 else 0.0)
        records.append({"step": step, "train_loss": start - 0.32 * i, "val_loss": val, "lr": lr * (1 - i / (2 * n)),
                        "tokens": step * tokens_per_step, "time": 1.5 * i, "cpu_time": 3.0 * i})
    with open(os.path.join(folder, "log.jsonl"), "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    return records


def assert_png(path, width=None):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    image = pytest.importorskip("matplotlib.image").imread(path)  # matplotlib reads it back
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0.05  # not a blank canvas
    if width:
        assert image.shape[1] == width
    return image


@pytest.fixture
def no_matplotlib(monkeypatch):
    """As if matplotlib were not installed: every import of it (or of a submodule) fails."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError):
        __import__("matplotlib.figure")


def bigram_argv(data, out_dir, *extra):
    return ["--data", data, "--out_dir", str(out_dir), "--max_iters", "20", "--eval_interval", "10",
            "--eval_iters", "2", "--learning_rate", "0.1", "--sample_tokens", "0", *extra]


# ---------------------------------------------------------------- the log
def test_read_log_reads_what_the_loop_writes_and_finds_the_best(tmp_path):
    records = write_log(tmp_path)
    assert P.read_log(str(tmp_path / "log.jsonl")) == records
    best = P.best_record(records)
    assert best["val_loss"] == min(r["val_loss"] for r in records) and best["step"] == 40
    assert P.tokens_per_step(records) == 256
    assert P.tokens_per_step(records[:1]) is None  # only step 0: nothing says


def test_a_half_written_last_line_is_skipped_but_damage_elsewhere_is_an_error(tmp_path):
    records = write_log(tmp_path)
    path = tmp_path / "log.jsonl"
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"step": 60, "train_lo')  # the run is appending right now
    assert P.read_log(str(path)) == records
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "not json", *lines[1:]]) + "\n")
    with pytest.raises(P.PlotError, match="line 2 is not JSON"):
        P.read_log(str(path))
    path.write_text(json.dumps({"step": 0, "train_loss": float("nan"), "val_loss": 1.0}) + "\n")
    with pytest.raises(P.PlotError, match="'train_loss' should be a finite number"):
        P.read_log(str(path))
    path.write_text("[1, 2]\n")
    with pytest.raises(P.PlotError, match="not a training-log record"):
        P.read_log(str(path))
    path.write_text("\n")
    with pytest.raises(P.PlotError, match="no evaluations yet"):
        P.read_log(str(path))
    with pytest.raises(P.PlotError, match="no training log"):
        P.read_log(str(tmp_path / "missing.jsonl"))


# ---------------------------------------------------------------- the figure
def test_draw_one_run_writes_a_png_atomically(tmp_path):
    pytest.importorskip("matplotlib")
    records = write_log(tmp_path / "run")
    out = tmp_path / "loss.png"
    P.draw([("run", records)], str(out), lr_at=lambda step: 1e-3)
    assert_png(out, width=1000)
    assert sorted(os.listdir(tmp_path)) == ["loss.png", "run"]  # no temporary file left beside it
    P.draw([("run", records[:1])], str(out))  # a single evaluation (step 0) draws too
    assert_png(out)


def test_labels_are_folder_names_or_paths_where_names_repeat(tmp_path):
    assert P.labels_for([str(tmp_path / "a"), str(tmp_path / "b") + os.sep]) == ["a", "b"]
    labels = P.labels_for([os.path.join("x", "gpt"), os.path.join("y", "gpt")])
    assert len(set(labels)) == 2 and all("gpt" in label for label in labels)


# ---------------------------------------------------------------- python -m train.plot
def test_plot_cli_one_run_and_two_runs(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    write_log(tmp_path / "small")
    write_log(tmp_path / "large", n=9, tokens_per_step=1024, start=4.0)
    assert cli_main(P.main, [str(tmp_path / "small")]) == 0
    assert_png(tmp_path / "small" / "loss.png")
    out = tmp_path / "compare.png"
    assert cli_main(P.main, [str(tmp_path / "small"), str(tmp_path / "large"), "--out", str(out)]) == 0
    assert_png(out)
    assert capsys.readouterr().out.splitlines() == [f"wrote {tmp_path / 'small' / 'loss.png'}", f"wrote {out}"]
    monkeypatch.chdir(tmp_path)  # several runs without --out: loss_comparison.png in the current folder
    assert cli_main(P.main, ["small", "large"]) == 0
    assert_png(tmp_path / "loss_comparison.png")


@pytest.mark.parametrize("problem", ["missing folder", "no log", "bad log", "out is a folder", "no out folder"])
def test_plot_cli_bad_input_gives_one_error_line(tmp_path, capsys, problem):
    write_log(tmp_path / "good")
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "log.jsonl").write_text("garbage\nmore\n")
    argv = {"missing folder": [str(tmp_path / "nowhere")],
            "no log": [str(tmp_path / "good"), str(tmp_path / "empty")],
            "bad log": [str(tmp_path / "bad")],
            "out is a folder": [str(tmp_path / "good"), "--out", str(tmp_path)],
            "no out folder": [str(tmp_path / "good"), "--out", str(tmp_path / "no" / "x.png")]}[problem]
    assert cli_main(P.main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not os.path.exists(tmp_path / "good" / "loss.png")


def test_plot_cli_without_matplotlib_says_how_to_install_it(tmp_path, capsys, no_matplotlib):
    write_log(tmp_path / "run")
    assert cli_main(P.main, [str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: matplotlib is not installed") and P.INSTALL_HINT in err
    assert len(err.strip().splitlines()) == 1 and not os.path.exists(tmp_path / "run" / "loss.png")


def test_plot_runs_as_a_module(tmp_path):
    pytest.importorskip("matplotlib")
    write_log(tmp_path / "run")
    env = dict(os.environ, PYTHONPATH=ROOT)
    run = subprocess.run([sys.executable, "-m", "train.plot", str(tmp_path / "run")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.startswith("wrote "), run.stderr
    assert_png(tmp_path / "run" / "loss.png")
    run = subprocess.run([sys.executable, "-m", "train.plot", str(tmp_path / "nothing")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.startswith("error:") and "Traceback" not in run.stderr


# ---------------------------------------------------------------- loss.png during training
def test_a_run_redraws_loss_png_at_every_evaluation(text_file, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    drawn = []
    draw = P.draw
    monkeypatch.setattr(P, "draw", lambda runs, path, lr_at=None: drawn.append(len(runs[0][1])) or
                        draw(runs, path, lr_at))
    train_bigram.main(bigram_argv(text_file, tmp_path / "run"))
    assert drawn == [1, 2, 3]  # steps 0, 10 and 20: each drawing holds every evaluation so far
    assert_png(tmp_path / "run" / "loss.png", width=1000)


def test_a_run_without_matplotlib_says_so_once_and_trains(text_file, tmp_path, capsys, no_matplotlib):
    state = train_bigram.main(bigram_argv(text_file, tmp_path / "run"))
    printed = capsys.readouterr().out
    assert state.step == 20 and math.isfinite(state.best_val_loss)
    hint = [line for line in printed.splitlines() if "not installed" in line or P.INSTALL_HINT in line]
    assert len(hint) == 1 and "matplotlib is not installed" in hint[0] and P.INSTALL_HINT in hint[0]  # once
    assert "Traceback" not in printed and "done:" in printed
    assert sorted(os.listdir(tmp_path / "run")) == ["best.ckpt", "last.ckpt", "log.jsonl"]


def test_a_failing_plot_warns_once_and_never_stops_training(text_file, tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    calls = []

    def broken(runs, path, lr_at=None):
        calls.append(path)
        raise RuntimeError("the disk is full")
    monkeypatch.setattr(P, "draw", broken)
    state = train_bigram.main(bigram_argv(text_file, tmp_path / "run"))
    printed = capsys.readouterr().out
    assert state.step == 20 and len(calls) == 3  # it kept trying at every evaluation
    assert printed.count("warning: could not draw") == 1 and "the disk is full" in printed
    assert P.read_log(str(tmp_path / "run" / "log.jsonl"))[-1]["step"] == 20


def test_no_plot_draws_nothing(text_file, tmp_path, monkeypatch):
    monkeypatch.setattr(P, "draw", lambda *a, **k: pytest.fail("--no-plot drew a figure"))
    train_bigram.main(bigram_argv(text_file, tmp_path / "run", "--no-plot"))
    assert not os.path.exists(tmp_path / "run" / "loss.png")
