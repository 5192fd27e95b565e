"""A checkpoint is untrusted input: every inconsistent, crafted or foreign file is one error line naming the
file and the entry, through train.sample (generation) and train.gpt --resume alike; good files load anywhere."""
import json
import os
import shutil

import numpy as np
import pytest

import tensorlite
from train import gpt as train_gpt
from train import sample as train_sample
from train.checkpoint import load_checkpoint, load_checkpoint_model
from train.cli import cli_main
from train.errors import CheckpointError

TEXT = "the cat sat on the mat. the dog sat on the log. " * 30


def gpt_argv(data, out_dir, *extra):
    return ["--data", data, "--out_dir", str(out_dir), "--device", "cpu", "--preset", "cpu", "--batch_size", "4",
            "--block_size", "8", "--n_embd", "8", "--n_layer", "1", "--n_head", "2", "--max_iters", "4",
            "--eval_interval", "2", "--eval_iters", "1", "--warmup_iters", "1", "--sample_tokens", "0", "--no-plot",
            *extra]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(text file, out_dir) of a finished tiny run."""
    root = tmp_path_factory.mktemp("run")
    (root / "text.txt").write_text(TEXT, encoding="utf-8")
    assert cli_main(train_gpt.main, gpt_argv(str(root / "text.txt"), root / "out")) == 0
    return str(root / "text.txt"), root / "out"


def rewrite(src, dst, change):
    """dst: src's checkpoint after change(raw dict) (returns nothing or a new dict), saved without any check."""
    raw = tensorlite.load(src)
    raw = change(raw) or raw
    tensorlite.save(raw, dst)
    return str(dst)


def one_error_line(capsys, code=2):
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("error: "), err
    return err


def sample(path, capsys, *extra):
    code = cli_main(train_sample.main, ["--checkpoint", str(path), "--device", "cpu", "--max_new_tokens", "3",
                                        "--prompt", "the", *extra])
    return code


def setitem(key, value):
    def change(raw):
        raw[key] = value
    return change


def config_item(key, value):
    def change(raw):
        raw["model_config"][key] = value
    return change


def delete(*keys):
    def change(raw):
        target = raw
        for k in keys[:-1]:
            target = target[k]
        del target[keys[-1]]
    return change


def nan_weights(raw):
    for t in raw["model"].values():
        t.data[...] = np.nan


CASES = {
    "shape": (config_item("block_size", 9), "model['position_embedding.weight'] has shape (8, 8) but model_config"),
    "no-bias": (config_item("bias", False), "that its model_config's model does not have"),
    "missing-tensor": (delete("model", "lm_head.weight"), "lacks the tensor(s) ['lm_head.weight']"),
    "no-config": (delete("model_config"), "has no 'model_config' entry"),
    "config-type": (setitem("model_config", "gpt"), "model_config must be a dict"),
    "unknown-key": (config_item("n_expert", 4), "unknown keys ['n_expert']"),
    "mistyped": (config_item("n_layer", "2"), "model_config.n_layer must be of type int"),
    "invalid": (config_item("n_head", 3), "n_embd (8) must be divisible by n_head (3)"),
    "huge": (config_item("n_embd", 10**6), "GB of memory, more than this machine's"),
    "bigger": (config_item("n_embd", 64), "but the file holds weights for"),
    "no-tokenizer": (delete("tokenizer"), "has no 'tokenizer' entry"),
    "vocab": (setitem("tokenizer", {"kind": "char", "chars": "ab"}), "has 2 tokens but the model's vocab_size is"),
    "pattern": (setitem("tokenizer", {"kind": "bpe", "merges": [], "pattern": "(a|aa)+$|.", "eot": "<|e|>"}),
                "tokenizer is invalid: unknown split pattern"),
    "nan": (nan_weights, "not finite (NaN or infinity) in"),
    "step": (setitem("step", "ten"), "step must be an integer >= 0"),
    "best": (setitem("best_val_loss", None), "best_val_loss must be a number"),
    "train-config": (setitem("train_config", [1]), "train_config must be a dict"),
    "rng": (setitem("rng", {"seed": 0, "devices": {"cpu": {"state": 5}}}), "rng['cpu'] is not a valid random"),
    "rng-device": (setitem("rng", {"seed": 0, "devices": {"tpu": {}}}), "names an unknown device 'tpu'"),
    "batch-rng": (setitem("batch_rng", [1, 2]), "batch_rng is not a valid random generator state"),
    "optimizer": (setitem("optimizer", {"state": 1}), "optimizer must be an optimizer's state_dict"),
    "version": (setitem("version", 99), "has version 99"),
    "model-type": (setitem("model_type", "lstm"), "unknown model type 'lstm'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_inconsistent_checkpoint_is_one_line_naming_the_file_and_the_entry(run, tmp_path, capsys, case):
    change, message = CASES[case]
    path = rewrite(run[1] / "last.ckpt", tmp_path / "bad.ckpt", change)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_model(path, device="cpu")
    assert message in str(info.value) and repr(path) in str(info.value), str(info.value)
    assert sample(path, capsys) == 2
    assert message in one_error_line(capsys)


@pytest.mark.parametrize("case", ["shape", "nan", "rng", "huge", "no-tokenizer", "pattern"])
def test_resume_refuses_the_same_files_with_the_same_line(run, tmp_path, capsys, case):
    change, message = CASES[case]
    out = tmp_path / "out"
    shutil.copytree(run[1], out)
    rewrite(run[1] / "last.ckpt", out / "last.ckpt", change)
    assert cli_main(train_gpt.main, gpt_argv(run[0], out, "--resume", "--max_iters", "6")) == 2
    assert message in one_error_line(capsys)


@pytest.mark.parametrize("key", ["optimizer", "rng", "batch_rng", "last_eval_step", "train_config"])
def test_resume_needs_the_training_state_generation_does_not(run, tmp_path, capsys, key):
    out = tmp_path / "out"
    shutil.copytree(run[1], out)
    rewrite(run[1] / "last.ckpt", out / "last.ckpt", delete(key))
    assert sample(out / "last.ckpt", capsys) == 0
    capsys.readouterr()
    assert cli_main(train_gpt.main, gpt_argv(run[0], out, "--resume", "--max_iters", "6")) == 2
    assert f"has no {key!r} entry" in one_error_line(capsys)


def test_an_optimizer_setting_of_the_wrong_type_is_refused_on_resume(run, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(run[1], out)
    rewrite(run[1] / "last.ckpt", out / "last.ckpt", lambda raw: raw["optimizer"]["param_groups"][0].update(lr="x"))
    assert cli_main(train_gpt.main, gpt_argv(run[0], out, "--resume", "--max_iters", "6")) == 2
    assert "optimizer.param_groups[0].lr has the wrong type" in one_error_line(capsys)


def on_cuda(path):
    """Rewrite a checkpoint's header as if a GPU had written it: every tensor on cuda:0, a CUDA generator."""
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(arrays["__tensorlite__"].tobytes())

    def walk(node):
        if isinstance(node, dict):
            if node.get("$type") == "tensor":
                node["device"] = "cuda:0"
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(header["tree"])
    devices = header["tree"]["rng"]["devices"]
    devices["cuda:0"] = devices.get("cpu") or {"bit_generator": "PCG64", "state": {"state": 1, "inc": 3},
                                                "has_uint32": 0, "uinteger": 0}
    arrays["__tensorlite__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.skipif(tensorlite.cuda.is_available(), reason="checks loading a GPU's checkpoint without a GPU")
def test_a_gpu_checkpoint_samples_and_resumes_on_the_cpu(run, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(run[1], out)
    on_cuda(out / "last.ckpt")
    with pytest.raises(tensorlite.CheckpointError, match="map_location='cpu'"):
        tensorlite.load(out / "last.ckpt")  # the library's own load keeps devices unless told
    assert sample(out / "last.ckpt", capsys) == 0
    assert capsys.readouterr().out.startswith("the")
    assert load_checkpoint(str(out / "last.ckpt"))["model"]["lm_head.weight"].device == "cpu"
    assert cli_main(train_gpt.main, gpt_argv(run[0], out, "--resume", "--max_iters", "6")) == 0
    assert load_checkpoint(str(out / "last.ckpt"))["step"] == 6


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_a_fifo_a_device_a_folder_or_an_empty_file_is_one_line(tmp_path, capsys):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "empty.ckpt").write_bytes(b"")
    for path, message in [(tmp_path / "fifo", "not a regular file"), ("/dev/zero", "not a regular file"),
                          (tmp_path, "is a directory"), (tmp_path / "empty.ckpt", "the file is empty"),
                          (tmp_path / "missing.ckpt", "does not exist")]:
        assert sample(path, capsys) == 2
        err = one_error_line(capsys)
        assert message in err and str(path) in err, err


def test_a_good_checkpoint_loads_exactly_as_saved(run):
    raw = tensorlite.load(run[1] / "last.ckpt")
    ckpt = load_checkpoint(str(run[1] / "last.ckpt"))
    assert set(ckpt) == set(raw) and ckpt["tokenizer"] == raw["tokenizer"] and ckpt["step"] == raw["step"]
    for k, t in raw["model"].items():
        assert ckpt["model"][k].numpy().tobytes() == t.numpy().tobytes()


# ---------------------------------------------------------------- the generation programs' flags and exits
@pytest.mark.parametrize("flags, message", [
    (["--temperature", "nan"], "--temperature must be a finite number >= 0"),
    (["--temperature", "-1"], "--temperature must be a finite number >= 0"),
    (["--max_new_tokens", "-5"], "--max_new_tokens must be between 0 and"),
    (["--max_new_tokens", "10000000000"], "--max_new_tokens must be between 0 and"),
    (["--top_k", "-2"], "--top_k must be >= 0"),
    (["--seed", "-7"], "--seed must be >= 0, or -1"),
])
def test_sample_and_chat_refuse_bad_flags_naming_them(run, capsys, flags, message):
    from train import chat as train_chat
    assert sample(run[1] / "last.ckpt", capsys, *flags) == 2
    assert message in one_error_line(capsys)
    assert cli_main(train_chat.main, ["--checkpoint", str(run[1] / "last.ckpt"), *flags]) == 2
    assert message in one_error_line(capsys)


def test_seed_minus_one_is_random_and_top_k_above_the_vocabulary_means_all(run, capsys):
    assert sample(run[1] / "last.ckpt", capsys, "--seed", "-1", "--top_k", "100000") == 0
    assert capsys.readouterr().out.startswith("the")


def program(module, *args, stdin=None):
    import subprocess
    import sys
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=stdin, env=env)


def test_sample_into_a_closed_pipe_exits_quietly(run):
    proc = program("train.sample", "--checkpoint", str(run[1] / "last.ckpt"), "--device", "cpu",
                   "--max_new_tokens", "2000", "--prompt", "the " * 2000)
    assert len(proc.stdout.read(5)) == 5
    proc.stdout.close()  # what `| head -c 5` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and "Traceback" not in err and "Error" not in err, err


@pytest.mark.parametrize("stdin", ["devnull", "closed"])
def test_chat_at_the_end_of_input_exits_0_quietly(run, stdin):
    import subprocess
    source = subprocess.DEVNULL
    if stdin == "closed":
        r, w = os.pipe()
        os.close(w)
        source = r
    proc = program("train.chat", "--checkpoint", str(run[1] / "last.ckpt"), "--device", "cpu", stdin=source)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and b"Traceback" not in err, err


@pytest.mark.parametrize("key, value", [("learning_rate", "fast"), ("batch_size", 2.5), ("lr_decay", "yes")])
def test_a_train_config_value_of_the_wrong_type_is_refused_on_resume(run, tmp_path, capsys, key, value):
    out = tmp_path / "out"
    shutil.copytree(run[1], out)
    rewrite(run[1] / "last.ckpt", out / "last.ckpt", lambda raw: raw["train_config"].update({key: value}))
    assert cli_main(train_gpt.main, gpt_argv(run[0], out, "--resume", "--max_iters", "6")) == 2
    assert f"train_config.{key} is {value!r}" in one_error_line(capsys)


def test_a_checkpoint_without_newer_optimizer_settings_resumes(run, tmp_path, capsys):
    """A checkpoint written before AdamW had amsgrad/maximize lacks them: they keep the optimizer's defaults."""
    out = tmp_path / "out"
    shutil.copytree(run[1], out)

    def drop_new_settings(raw):
        for group in raw["optimizer"]["param_groups"]:
            group.pop("amsgrad"), group.pop("maximize")
    rewrite(run[1] / "last.ckpt", out / "last.ckpt", drop_new_settings)
    assert cli_main(train_gpt.main, gpt_argv(run[0], out, "--resume", "--max_iters", "6")) == 0


def test_an_unknown_optimizer_setting_is_refused_on_resume(run, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(run[1], out)
    rewrite(run[1] / "last.ckpt", out / "last.ckpt", lambda raw: raw["optimizer"]["param_groups"][0].update(zeta=1))
    assert cli_main(train_gpt.main, gpt_argv(run[0], out, "--resume", "--max_iters", "6")) == 2
    assert "optimizer.param_groups[0] has keys" in one_error_line(capsys)
