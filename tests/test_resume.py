"""A run's folder keeps its work (issue 14): no silent replacement, one run at a time, --resume applies what
can change and refuses what cannot, damaged logs, file-system and memory errors as one line."""
import errno
import json
import os

import numpy as np
import pytest

from train import bigram as train_bigram, gpt as train_gpt
from train import run as train_run
from train.checkpoint import load_checkpoint
from train.cli import cli_main
from train.rundir import LOCK_NAME

TEXT = "the cat sat on the mat. the dog sat on the log. " * 30


def bigram_argv(data, out_dir, *extra):
    return ["--data", data, "--out_dir", str(out_dir), "--device", "cpu", "--max_iters", "6", "--eval_interval",
            "3", "--eval_iters", "2", "--learning_rate", "0.1", "--sample_tokens", "0", "--no-plot", *extra]


def gpt_argv(data, out_dir, *extra):
    return ["--data", data, "--out_dir", str(out_dir), "--device", "cpu", "--preset", "cpu", "--batch_size", "4",
            "--block_size", "8", "--n_embd", "8", "--n_layer", "1", "--n_head", "2", "--max_iters", "6",
            "--eval_interval", "3", "--eval_iters", "2", "--warmup_iters", "2", "--dropout", "0.1",
            "--sample_tokens", "0", "--no-plot", *extra]


def log_steps(out_dir):
    with open(os.path.join(out_dir, "log.jsonl")) as f:
        return [json.loads(line)["step"] for line in f]


def weights(path):
    return {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v) for k, v in load_checkpoint(str(path))["model"].items()}


def one_error_line(capsys, rc, code=2):
    err = capsys.readouterr().err
    assert rc == code and err.startswith("error:") and "Traceback" not in err and err.count("\n") == 1, err
    return err


# ---------------------------------------------------------------- a second run into the same out_dir
def test_a_second_run_without_resume_refuses_and_keeps_the_trained_model(text_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli_main(train_bigram.main, bigram_argv(text_file, out)) == 0
    before = {name: (out / name).read_bytes() for name in ("last.ckpt", "best.ckpt", "log.jsonl")}
    capsys.readouterr()
    err = one_error_line(capsys, cli_main(train_bigram.main, bigram_argv(text_file, out)))
    assert "--resume" in err and "--overwrite" in err and "already holds a run" in err
    assert {name: (out / name).read_bytes() for name in before} == before  # nothing touched
    assert not (out / LOCK_NAME).exists()


def test_overwrite_starts_over_with_a_log_of_its_own(text_file, tmp_path):
    out = tmp_path / "run"
    train_bigram.main(bigram_argv(text_file, out))
    old_log = (out / "log.jsonl").read_text()
    train_bigram.main(bigram_argv(text_file, out, "--overwrite", "--max_iters", "3"))
    assert log_steps(out) == [0, 3] and (out / "log.old.jsonl").read_text() == old_log
    assert load_checkpoint(str(out / "last.ckpt"))["step"] == 3
    with pytest.raises(Exception, match="give one of them"):
        train_bigram.main(bigram_argv(text_file, out, "--overwrite", "--resume"))


def test_resume_without_a_last_checkpoint_says_how_to_start(text_file, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    err = one_error_line(capsys, cli_main(train_bigram.main, bigram_argv(text_file, out, "--resume")))
    assert "does not exist" in err and "without --resume" in err


# ---------------------------------------------------------------- the lock
def test_a_second_run_while_one_holds_the_folder_is_refused(text_file, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_NAME).write_text(f"{os.getppid()} {os.uname().nodename}\n")  # a live process: our parent
    err = one_error_line(capsys, cli_main(train_bigram.main, bigram_argv(text_file, out)))
    assert "in use by another training run" in err and str(os.getppid()) in err
    assert (out / LOCK_NAME).exists() and not (out / "last.ckpt").exists()


def test_a_stale_lock_of_a_killed_run_is_taken_over(text_file, tmp_path, capsys):
    import subprocess
    import sys
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_NAME).write_text(f"{dead} {os.uname().nodename}\n")
    (out / ".last.ckpt.0123456789ab.tmp").write_bytes(b"half a checkpoint")  # what a kill -9 leaves
    assert cli_main(train_bigram.main, bigram_argv(text_file, out)) == 0
    assert f"taking over the lock {out / LOCK_NAME} of a run that is gone (process {dead})" in capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["best.ckpt", "last.ckpt", "log.jsonl"]


# ---------------------------------------------------------------- what --resume may change
def test_resume_applies_what_can_change_and_records_it(text_file, tmp_path):
    out = tmp_path / "run"
    train_gpt.main(gpt_argv(text_file, out))
    train_gpt.main(gpt_argv(text_file, out, "--resume", "--max_iters", "9", "--dropout", "0.0",
                            "--learning_rate", "0.005", "--block_size", "4"))
    ckpt = load_checkpoint(str(out / "last.ckpt"))
    assert ckpt["step"] == 9 and ckpt["model_config"]["dropout"] == 0.0
    assert ckpt["model_config"]["block_size"] == 8  # the model's context; the batches use 4
    tc = ckpt["train_config"]
    assert (tc["dropout"], tc["learning_rate"], tc["max_iters"], tc["block_size"]) == (0.0, 0.005, 9, 4)
    assert log_steps(out) == [0, 3, 6, 9]


@pytest.mark.parametrize("extra,match", [
    (["--n_embd", "16", "--n_head", "2"], "--n_embd 16: the model in"),
    (["--n_layer", "2"], "--n_layer 2"),
    (["--norm", "pre"], "--norm pre"),
    (["--no-bias"], "--bias False"),
    (["--block_size", "16"], "--block_size 16 is longer than the context"),
    (["--preset", "course"], "--preset course"),
    (["--max_iters", "2"], "--max_iters 2 is below"),
])
def test_resume_refuses_what_cannot_change_naming_the_flag(text_file, tmp_path, capsys, extra, match):
    out = tmp_path / "run"
    train_gpt.main(gpt_argv(text_file, out))
    before = (out / "last.ckpt").read_bytes()
    capsys.readouterr()
    err = one_error_line(capsys, cli_main(train_gpt.main, gpt_argv(text_file, out, "--resume", *extra)))
    assert match in err and "Python" not in err
    assert (out / "last.ckpt").read_bytes() == before


def test_seed_minus_one_is_a_random_seed_recorded_in_the_checkpoint(text_file, tmp_path, capsys):
    out = tmp_path / "run"
    train_bigram.main(bigram_argv(text_file, out, "--seed", "-1", "--max_iters", "3"))
    seed = load_checkpoint(str(out / "last.ckpt"))["train_config"]["seed"]
    assert seed >= 0 and f"seed: {seed} (random)" in capsys.readouterr().out
    train_bigram.main(bigram_argv(text_file, out, "--resume", "--seed", "-1"))
    assert load_checkpoint(str(out / "last.ckpt"))["train_config"]["seed"] == seed  # kept on resume
    err = one_error_line(capsys, cli_main(train_bigram.main, bigram_argv(text_file, tmp_path / "b", "--seed", "-5")))
    assert "--seed" in err


# ---------------------------------------------------------------- a damaged log
@pytest.mark.parametrize("junk", [b'{"step": 6, "train_lo', b"\xff\xfe\x00junk\n", b'{"train_loss": 1.0}\n',
                                  b"[1, 2]\n", b"[" * 100_000 + b"]" * 100_000 + b"\n",
                                  b'{"step": 1' + b"0" * 400 + b', "train_loss": 1.0, "val_loss": 1.0}\n'])
def test_resume_drops_a_damaged_log_tail_with_a_warning(text_file, tmp_path, capsys, junk):
    out = tmp_path / "run"
    train_bigram.main(bigram_argv(text_file, out, "--max_iters", "3"))
    with open(out / "log.jsonl", "ab") as f:
        f.write(junk)
    capsys.readouterr()
    assert cli_main(train_bigram.main, bigram_argv(text_file, out, "--resume")) == 0
    captured = capsys.readouterr()
    assert f"warning: {out / 'log.jsonl'} line 3 is damaged" in captured.out and "Traceback" not in captured.err
    assert log_steps(out) == [0, 3, 6]


def test_a_log_that_is_a_folder_is_refused_by_name(text_file, tmp_path, capsys):
    out = tmp_path / "run"
    train_bigram.main(bigram_argv(text_file, out, "--max_iters", "3"))
    os.remove(out / "log.jsonl")
    (out / "log.jsonl").mkdir()
    err = one_error_line(capsys, cli_main(train_bigram.main, bigram_argv(text_file, out, "--resume")))
    assert "log.jsonl is a folder" in err
    assert load_checkpoint(str(out / "last.ckpt"))["step"] == 3


# ---------------------------------------------------------------- the file system
def test_out_dir_that_is_a_file_or_under_one(text_file, tmp_path, capsys):
    a_file = tmp_path / "plain"
    a_file.write_text("x")
    err = one_error_line(capsys, cli_main(train_bigram.main, bigram_argv(text_file, a_file)))
    assert "is a file" in err and str(a_file) in err
    err = one_error_line(capsys, cli_main(train_bigram.main, bigram_argv(text_file, a_file / "sub")))
    assert str(a_file) in err


def test_last_ckpt_that_is_a_folder_is_refused(text_file, tmp_path, capsys):
    out = tmp_path / "run"
    (out / "last.ckpt").mkdir(parents=True)
    err = one_error_line(capsys, cli_main(train_bigram.main, bigram_argv(text_file, out, "--overwrite")))
    assert "last.ckpt is a folder" in err


@pytest.mark.parametrize("code,words", [(errno.ENOSPC, "needs about"), (errno.EROFS, "read-only"),
                                        (errno.EACCES, "permissions")])
def test_a_failing_checkpoint_write_is_one_line_and_keeps_the_previous_one(text_file, tmp_path, capsys,
                                                                          monkeypatch, code, words):
    out = tmp_path / "run"
    train_bigram.main(bigram_argv(text_file, out, "--max_iters", "3"))
    before = weights(out / "last.ckpt")
    real_fsync, calls = os.fsync, []

    def failing_fsync(fd):  # the disk fills up (or turns read-only) while a checkpoint is written
        calls.append(fd)
        if len(calls) > 2:
            raise OSError(code, os.strerror(code))
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", failing_fsync)
    err = one_error_line(capsys, cli_main(train_bigram.main, bigram_argv(text_file, out, "--resume")))
    assert words in err and "ckpt" in err
    monkeypatch.setattr(os, "fsync", real_fsync)
    ckpt = load_checkpoint(str(out / "last.ckpt"))
    assert ckpt["step"] == 3 and all(np.array_equal(before[k], v) for k, v in weights(out / "last.ckpt").items())
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")] and not (out / LOCK_NAME).exists()


def test_an_os_error_escaping_a_program_is_one_line_naming_the_file(capsys):
    def program(argv):
        raise PermissionError(errno.EACCES, "Permission denied", "/some/file")
    err = one_error_line(capsys, cli_main(program, []))
    assert "/some/file" in err and "Permission denied" in err

    def bug(argv):
        raise OSError(errno.EBADF, "Bad file descriptor")  # ours, not the user's: a traceback
    with pytest.raises(OSError):
        cli_main(bug, [])


# ---------------------------------------------------------------- memory
def test_a_model_or_batch_too_big_for_memory_is_refused_before_allocating(text_file, tmp_path, capsys):
    err = one_error_line(capsys, cli_main(train_gpt.main, gpt_argv(text_file, tmp_path / "a", "--n_embd", "400000",
                                                                   "--n_head", "1")))
    assert "GiB" in err and "--n_embd" in err
    err = one_error_line(capsys, cli_main(train_gpt.main, gpt_argv(text_file, tmp_path / "b",
                                                                   "--batch_size", "2000000000")))
    assert "--batch_size" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # nothing left behind


def test_memory_error_in_a_program_gives_the_advice(capsys, monkeypatch):
    def program(argv):
        raise MemoryError
    err = one_error_line(capsys, cli_main(program, []))
    assert "out of memory" in err and "--batch_size" in err


def test_the_estimate_is_below_what_the_model_really_holds():
    from models import build_model, config_from
    from train.loop import TrainConfig
    config = config_from("gpt", {"vocab_size": 65, "block_size": 16, "n_embd": 32, "n_layer": 2, "n_head": 2})
    model_bytes, _ = train_run.memory_needed("gpt", config.to_dict(), TrainConfig(block_size=16))
    params = build_model("gpt", config).num_params()
    assert 0.8 * 16 * params < model_bytes <= 16 * params * 1.05


# ---------------------------------------------------------------- data
def test_token_ids_outside_the_vocabulary_are_one_line(tmp_path, capsys):
    from train.prepare import prepare
    src = tmp_path / "src.txt"
    src.write_text(TEXT, encoding="utf-8")
    data = tmp_path / "data"
    prepare("text", str(src), str(data), quiet=True)
    meta = json.loads((data / "meta.json").read_text())
    tokens = np.memmap(data / "train.bin", dtype=meta["dtype"], mode="r+")
    tokens[5] = np.iinfo(tokens.dtype).max  # an id no vocabulary of this size has
    tokens.flush()
    del tokens
    err = one_error_line(capsys, cli_main(train_bigram.main, bigram_argv(str(data), tmp_path / "run",
                                                                         "--eval_iters", "50")))
    assert "outside the vocabulary" in err and "--force" in err


def test_a_prepared_folder_without_validation_tokens_gets_advice_that_helps(tmp_path, capsys):
    from train.prepare import prepare
    src = tmp_path / "src.txt"
    src.write_text(TEXT, encoding="utf-8")
    prepare("text", str(src), str(tmp_path / "data"), val_fraction=0.0, quiet=True)
    err = one_error_line(capsys, cli_main(train_bigram.main, bigram_argv(str(tmp_path / "data"), tmp_path / "run")))
    assert "no validation tokens" in err and "--val_fraction 0.1 --force" in err
