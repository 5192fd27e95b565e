"""train/loop.py and the entry points: CLI from dataclasses, checkpoints, exact resume, interrupts, errors."""
import dataclasses
import importlib.util
import io
import json
import math
import os
import shlex
import socket
import subprocess
import sys

import numpy as np
import pytest

import tensorlite
from tensorlite import backend
from models.sampling import generate_stream
from train import bigram as train_bigram, chat as train_chat, gpt as train_gpt, run as train_run
from train import sample as train_sample
from train.checkpoint import load_checkpoint, load_checkpoint_model
from train.cli import apply_preset, build_parser, cli_main, parse_config
from train.errors import CheckpointError, TrainingDiverged
from train.loop import TrainConfig
from train.tokenizers import UnknownCharacterError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = "the cat sat on the mat. the dog sat on the log. " * 30


def gpt_argv(data, out_dir, *extra):
    return ["--data", data, "--out_dir", str(out_dir), "--device", "cpu", "--preset", "cpu", "--batch_size", "4",
            "--block_size", "8", "--n_embd", "8", "--n_layer", "1", "--n_head", "2", "--max_iters", "10",
            "--eval_interval", "4", "--eval_iters", "2", "--warmup_iters", "2", "--dropout", "0.1",
            "--sample_tokens", "0", "--no-plot", *extra]  # loss.png: tests/test_plot.py


def recorder(losses, stop_at=None, exc=KeyboardInterrupt):
    def on_step(step, loss):
        losses[step] = loss.item()
        if step == stop_at:
            raise exc("stop")
    return on_step


def log(out_dir):
    with open(os.path.join(out_dir, "log.jsonl")) as f:
        return [json.loads(line) for line in f]


# ---------------------------------------------------------------- CLI from the dataclass
def test_parser_has_a_flag_per_field_and_presets_yield_to_flags():
    parser = build_parser(train_gpt.GPTTrainConfig, presets=train_gpt.PRESETS)
    flags = {a.dest for a in parser._actions} - {"help"}
    assert flags == {f.name for f in dataclasses.fields(train_gpt.GPTTrainConfig)}
    for name in ("data", "device", "batch_size", "block_size", "max_iters", "learning_rate", "eval_interval",
                 "eval_iters", "seed", "out_dir", "resume", "n_embd", "n_layer", "n_head", "dropout", "norm",
                 "activation", "weight_decay", "grad_clip", "warmup_iters", "lr_decay", "preset"):
        assert name in flags
    cfg, given = parse_config(train_gpt.GPTTrainConfig, ["--n_layer", "3", "--no-lr_decay", "--resume"])
    assert cfg.n_layer == 3 and cfg.lr_decay is False and cfg.resume is True and given == {"n_layer", "lr_decay",
                                                                                        "resume"}
    course = apply_preset(cfg, train_gpt.PRESETS, "course", given)
    assert (course.n_layer, course.n_embd, course.block_size, course.batch_size) == (3, 384, 64, 128)
    assert (course.learning_rate, course.max_iters, course.eval_interval, course.dropout) == (3e-4, 3000, 100, 0.2)
    with pytest.raises(SystemExit):
        parse_config(train_gpt.GPTTrainConfig, ["--norm", "sideways"])


def test_gpt_train_config_takes_the_models_fields_from_gptconfig():
    from models.gpt import GPTConfig
    model_fields = {f.name: f for f in dataclasses.fields(GPTConfig)}
    train_fields = {f.name: f for f in dataclasses.fields(train_gpt.GPTTrainConfig)}
    for name in set(model_fields) - {"vocab_size", "block_size"}:  # the data decides one, the loop the other
        assert train_fields[name].default == model_fields[name].default
        assert train_fields[name].metadata == model_fields[name].metadata and model_fields[name].metadata["help"]
    assert train_fields["block_size"].default == TrainConfig.block_size


@pytest.mark.parametrize("name", sorted(train_gpt.PRESETS))
def test_presets_set_only_fields_of_the_config_and_valid_models(name):
    from models import config_from
    preset = train_gpt.PRESETS[name]
    assert set(preset) <= {f.name for f in dataclasses.fields(train_gpt.GPTTrainConfig)}
    cfg = apply_preset(train_gpt.GPTTrainConfig(), train_gpt.PRESETS, name, given=set())
    cfg.validate()
    config_from("gpt", dataclasses.asdict(cfg))  # the model's own checks (n_embd % n_head, dropout, ...)


def _old_lr_at(cfg, step):
    """The schedule train.loop computed itself before it used tensorlite.optim.lr_scheduler."""
    if cfg.lr_decay:
        warmup, max_iters, min_lr = cfg.warmup_iters, max(cfg.max_iters, cfg.warmup_iters), cfg.learning_rate / 10
        if step < warmup:
            return cfg.learning_rate * step / warmup
        if step >= max_iters:
            return min_lr
        ratio = (step - warmup) / (max_iters - warmup)
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (cfg.learning_rate - min_lr)
    if step < cfg.warmup_iters:
        return cfg.learning_rate * step / cfg.warmup_iters
    return cfg.learning_rate


@pytest.mark.parametrize("lr_decay", [False, True])
@pytest.mark.parametrize("warmup_iters,max_iters", [(0, 50), (10, 50), (7, 3), (0, 0), (100, 4000)])
def test_the_loops_schedule_equals_the_old_one_bit_for_bit(lr_decay, warmup_iters, max_iters):
    from train.loop import lr_schedule
    cfg = TrainConfig(learning_rate=2e-3, warmup_iters=warmup_iters, max_iters=max_iters, lr_decay=lr_decay)
    lr_at = lr_schedule(cfg)
    for step in range(max(max_iters, warmup_iters) + 2):
        assert lr_at(step) == _old_lr_at(cfg, step), step  # exact: the logs must not change


def test_config_validation():
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0).validate()
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig(learning_rate=-1.0).validate()


# ---------------------------------------------------------------- training
def test_bigram_cli_trains_and_writes_checkpoints_and_log(text_file, tmp_path, capsys):
    out = tmp_path / "bigram"
    state = train_bigram.main(["--data", text_file, "--out_dir", str(out), "--max_iters", "60", "--eval_interval",
                               "30", "--eval_iters", "4", "--learning_rate", "0.1", "--sample_tokens", "20"])
    printed = capsys.readouterr().out
    assert "device: cpu" in printed and "parameters" in printed and str(out) in printed and "sample:" in printed
    records = log(out)
    assert [r["step"] for r in records] == [0, 30, 60]
    assert records[-1]["val_loss"] < records[0]["val_loss"] - 0.5
    ckpt = load_checkpoint(str(out / "best.ckpt"), model_type="bigram")
    assert ckpt["step"] == 60 and math.isclose(ckpt["best_val_loss"], state.best_val_loss)
    if importlib.util.find_spec("matplotlib") is not None:  # the plot extra: loss.png beside the log
        with open(out / "loss.png", "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert "loss.png" in printed


def test_the_default_book_trains_with_no_network_and_the_end_says_what_next(tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access is disabled in this test")
    for owner, name in ((socket, "getaddrinfo"), (socket, "create_connection"), (socket.socket, "connect")):
        monkeypatch.setattr(owner, name, refuse)
    out = tmp_path / "first run"  # a space: the printed commands must quote it
    argv = gpt_argv("", out, "--max_iters", "6", "--eval_interval", "3")[2:]  # no --data: the packaged book
    state = train_gpt.main(argv)
    printed = capsys.readouterr().out
    assert "Sherlock Holmes" in printed.splitlines()[2] and state.step == 6
    best = min(log(out), key=lambda r: r["val_loss"])
    end = printed[printed.index("done:"):]
    assert f"best val loss {best['val_loss']:.4f} at step {best['step']}" in end and "tokens/s" in end
    for name in ("last.ckpt", "best.ckpt", "log.jsonl"):
        assert f"  {name} " in end and (out / name).exists()
    best_ckpt = shlex.quote(str(out / "best.ckpt"))
    commands = [line.strip() for line in end.splitlines() if line.strip().startswith("python -m train.")]
    assert [c.split()[2] for c in commands] == ["train.sample", "train.chat", "train.web", "train.plot"]
    assert all(best_ckpt in c for c in commands[:3]) and shlex.quote(str(out)) in commands[3]
    assert '--prompt "Holmes"' in commands[0] and 'pip install -e ".[web]"' in commands[2]
    sample = shlex.split(commands[0])[3:]  # the printed sample command works as printed
    assert cli_main(train_sample.main, sample + ["--max_new_tokens", "20", "--device", "cpu"]) == 0
    assert capsys.readouterr().out.startswith("Holmes")


def test_the_progress_bar_shows_loss_speed_and_time_left():
    from tqdm import tqdm
    from train.loop import BAR_FORMAT
    stream = io.StringIO()
    bar = tqdm(total=100, desc="training", bar_format=BAR_FORMAT, file=stream, mininterval=0, ncols=100)
    bar.update(10)
    bar.set_postfix({"loss": "2.5000", "tokens/s": "12,345", "lr": "1.00e-03"})
    bar.close()
    line = stream.getvalue().replace("\r", "\n").strip().splitlines()[-1]
    assert "10/100" in line and " left" in line and "00:00," in line  # time so far, then the time left
    assert "loss=2.5000" in line and "tokens/s=12,345" in line and "lr=" in line


def test_resume_after_an_interrupt_equals_an_uninterrupted_run(text_file, tmp_path):
    full, split = {}, {}
    train_gpt.main(gpt_argv(text_file, tmp_path / "a"), on_step=recorder(full))
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C between steps 5 and 6 saves a checkpoint at step 5
        train_gpt.main(gpt_argv(text_file, tmp_path / "b"), on_step=recorder(split, stop_at=5))
    assert load_checkpoint(str(tmp_path / "b" / "last.ckpt"))["step"] == 5
    train_gpt.main(gpt_argv(text_file, tmp_path / "b", "--resume"), on_step=recorder(split))
    assert sorted(full) == list(range(1, 11)) and split == full  # dropout on, so the RNG states matter too
    def losses(out_dir):
        return [(r["step"], r["train_loss"], r["val_loss"], r["lr"]) for r in log(out_dir)]
    assert losses(tmp_path / "a") == losses(tmp_path / "b")


def test_a_crash_mid_run_leaves_the_last_checkpoint_usable(text_file, tmp_path):
    full, split = {}, {}
    train_gpt.main(gpt_argv(text_file, tmp_path / "a"), on_step=recorder(full))
    with pytest.raises(RuntimeError, match="stop"):
        train_gpt.main(gpt_argv(text_file, tmp_path / "b"), on_step=recorder(split, stop_at=7, exc=RuntimeError))
    assert load_checkpoint(str(tmp_path / "b" / "last.ckpt"))["step"] == 4  # written at the step-4 evaluation
    train_gpt.main(gpt_argv(text_file, tmp_path / "b", "--resume"), on_step=recorder(split))
    assert split == full
    assert [r["step"] for r in log(tmp_path / "b")] == [0, 4, 8, 10]


def test_nan_loss_stops_with_a_clear_error(text_file, tmp_path, capsys, monkeypatch):
    make = train_run.make_model

    def poisoned(model_type, cfg, vocab_size):  # one NaN weight: the loss is NaN from the first step on
        model, config = make(model_type, cfg, vocab_size)
        model.token_embedding_table.weight.data[0, 0] = float("nan")
        return model, config
    monkeypatch.setattr(train_run, "make_model", poisoned)
    argv = ["--data", text_file, "--out_dir", str(tmp_path), "--max_iters", "20", "--sample_tokens", "0"]
    with pytest.raises(TrainingDiverged, match="--learning_rate"):
        train_bigram.main(argv)
    assert not os.path.exists(tmp_path / "last.ckpt")  # nothing diverged was saved
    assert cli_main(train_bigram.main, argv) == 1
    assert "error:" in capsys.readouterr().err


# ---------------------------------------------------------------- errors at the command line
@pytest.mark.parametrize("extra,match", [
    (["--data", "/no/such/file.txt"], "does not exist"),
    (["--block_size", "500"], "block_size 500"),
    (["--n_embd", "10", "--n_head", "4"], "divisible"),
    (["--batch_size", "0"], "batch_size"),
])
def test_bad_input_gives_one_error_line_and_exit_code_2(text_file, tmp_path, capsys, extra, match):
    rc = cli_main(train_gpt.main, gpt_argv(text_file, tmp_path) + extra)
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and match in err and "Traceback" not in err


@pytest.mark.skipif(backend.cuda_is_available(), reason="a GPU is present")
def test_device_cuda_without_a_gpu(text_file, tmp_path, capsys):
    assert cli_main(train_gpt.main, gpt_argv(text_file, tmp_path) + ["--device", "cuda"]) == 2
    assert "CUDA" in capsys.readouterr().err


def test_resuming_from_another_model_type_or_nothing_fails_clearly(text_file, tmp_path):
    train_bigram.main(["--data", text_file, "--out_dir", str(tmp_path), "--max_iters", "2", "--sample_tokens", "0"])
    with pytest.raises(CheckpointError, match="'bigram' model, not a 'gpt'"):
        train_gpt.main(gpt_argv(text_file, tmp_path, "--resume"))
    with pytest.raises(CheckpointError, match="does not exist"):
        train_gpt.main(gpt_argv(text_file, tmp_path / "empty", "--resume"))


# ---------------------------------------------------------------- sampling and chat
@pytest.fixture
def checkpoint(text_file, tmp_path):
    train_gpt.main(gpt_argv(text_file, tmp_path / "ckpt"))
    return str(tmp_path / "ckpt" / "last.ckpt")


def test_load_checkpoint_model_and_generate_stream(checkpoint):
    model, tokenizer, info = load_checkpoint_model(checkpoint, device="cpu")
    assert info["model_type"] == "gpt" and info["step"] == 10 and info["vocab_size"] == len(set(TEXT))
    assert info["num_params"] == model.num_params() and info["config"]["n_embd"] == 8
    assert math.isfinite(info["best_val_loss"]) and not model.training
    pieces = list(generate_stream(model, tokenizer, "the ", max_new_tokens=12, seed=3))
    assert len(pieces) == 12 and all(len(p) == 1 for p in pieces)
    again = list(generate_stream(model, tokenizer, "the ", max_new_tokens=12, seed=3))
    assert pieces == again
    with pytest.raises(UnknownCharacterError, match="'X', 'Z'"):
        next(generate_stream(model, tokenizer, "XtheZ"))
    assert len(list(generate_stream(model, tokenizer, "XtheZ", 3, unknown="skip"))) == 3


def test_sample_cli(checkpoint, capsys):
    assert cli_main(train_sample.main, ["--checkpoint", checkpoint, "--prompt", "the", "--max_new_tokens", "20",
                                        "--seed", "1", "--top_k", "3", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("the") and len(out) >= 23
    assert cli_main(train_sample.main, ["--checkpoint", checkpoint, "--prompt", "Q?"]) == 2
    captured = capsys.readouterr()
    assert "'?', 'Q'" in captured.err and "--unknown skip" in captured.err and captured.out == ""
    assert cli_main(train_sample.main, ["--checkpoint", checkpoint, "--prompt", "Q?", "--unknown", "skip",
                                        "--max_new_tokens", "5"]) == 0


def test_a_checkpoint_in_the_stored_format_loads(tmp_path):
    # the keys as train.loop has written them since the format's version 1: old checkpoints keep loading
    from models.bigram import BigramLanguageModel
    from train.tokenizers import CharTokenizer
    tokenizer = CharTokenizer.from_text(TEXT)
    model = BigramLanguageModel(tokenizer.vocab_size)
    path = str(tmp_path / "old.ckpt")
    tensorlite.save({"format": "tensorlite-checkpoint", "version": 1, "model_type": "bigram",
                     "model_config": {"vocab_size": tokenizer.vocab_size}, "tokenizer": tokenizer.to_dict(),
                     "train_config": {}, "model": model.state_dict(), "step": 3, "best_val_loss": 2.5}, path)
    loaded, tok, info = load_checkpoint_model(path, device="cpu")
    assert (info["model_type"], info["step"], info["best_val_loss"], tok.vocab_size) == ("bigram", 3, 2.5,
                                                                                       tokenizer.vocab_size)
    assert np.array_equal(loaded.token_embedding_table.weight.detach().numpy(), model.token_embedding_table.weight.detach().numpy())
    tensorlite.save({"format": "tensorlite-checkpoint", "version": 1, "model_type": "lstm", "model_config": {}},
                    path)
    with pytest.raises(CheckpointError, match="unknown model type 'lstm'"):
        load_checkpoint_model(path, device="cpu")


def test_foreign_files_are_not_checkpoints(tmp_path, text_file, capsys):
    npz = tmp_path / "weights.npz"
    np.savez(npz, w=np.zeros(3))
    tensorlite.save({"just": "a dict"}, str(tmp_path / "other.ckpt"))
    for path in (text_file, str(npz), str(tmp_path / "other.ckpt"), str(tmp_path / "missing.ckpt")):
        with pytest.raises(CheckpointError):
            load_checkpoint_model(path, device="cpu")
        assert cli_main(train_sample.main, ["--checkpoint", path]) == 2
    assert capsys.readouterr().err.count("error:") == 4


def test_chat_loop_answers_until_an_empty_line_or_eof(checkpoint, capsys):
    model, tokenizer, _ = load_checkpoint_model(checkpoint, device="cpu")
    cfg, _ = parse_config(train_chat.ChatConfig, ["--max_new_tokens", "5"])
    written = []
    lines = iter(["the", "Q", "cat", ""])
    train_chat.chat(model, tokenizer, cfg, input=lambda _: next(lines), write=written.append)
    text = "".join(written)
    assert text.count("model> ") == 3 and "'Q'" in text
    written.clear()
    def eof(_):
        raise EOFError
    train_chat.chat(model, tokenizer, cfg, input=eof, write=written.append)
    assert written == ["\n"]


def test_entry_points_run_as_modules(text_file, tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    run = subprocess.run([sys.executable, "-m", "train.gpt", *gpt_argv(text_file, tmp_path, "--sample_tokens", "10")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0].startswith("device: cpu   preset: cpu")
    chat = subprocess.run([sys.executable, "-m", "train.chat", "--checkpoint", str(tmp_path / "last.ckpt"),
                           "--max_new_tokens", "5"], cwd=ROOT, env=env, input="the\n\n", capture_output=True,
                          text=True, timeout=120)
    assert chat.returncode == 0 and "model> the" in chat.stdout, chat.stderr


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(text_file, tmp_path):
    import signal
    import time
    env = dict(os.environ, PYTHONPATH=ROOT)
    argv = gpt_argv(text_file, tmp_path) + ["--max_iters", "100000", "--eval_interval", "50000"]
    proc = subprocess.Popen([sys.executable, "-u", "-m", "train.gpt", *argv], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # wait until training has started
        if line.startswith("step 0"):
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "continue with --resume" in out
    assert load_checkpoint(str(tmp_path / "last.ckpt"))["step"] > 0
