"""A whole training run, what every training program does: read the data, make (or resume) the model and
its optimizer, run the loop, print a sample.

    run_training(cfg, "gpt", given)    # cfg: a TrainConfig subclass holding the model's fields too

The model comes from the registry in models/: a fresh one from the config's fields, a resumed one from
the config stored in the checkpoint, so both go through the same constructor.
"""
import dataclasses
import json
import os

import tensorlite
from models import build_model, config_from
from models.sampling import generate_stream
from tensorlite.serialization import atomic_write
from train.checkpoint import load_checkpoint, model_from_checkpoint, restore_training_state
from train.cli import resolve_device
from train.data import Batches, load_corpus
from train.errors import CheckpointError
from train.loop import RunState, make_optimizer, train_loop


def make_model(model_type, cfg, vocab_size):
    """(fresh model, its config as a dict) of a registered type: the fields of its config dataclass are
    taken from the training config `cfg`, the vocabulary size from the data."""
    config = config_from(model_type, {**dataclasses.asdict(cfg), "vocab_size": vocab_size})
    return build_model(model_type, config), config.to_dict()


def run_training(cfg, model_type, given=(), on_step=None, out=print):
    """Everything an entry point does: data, model, optimizer, resume, the loop, a final sample.

    `given` names the flags set on the command line: on --resume they override the checkpoint's settings.
    `on_step(step, loss)` is passed to the loop (tests use it to interrupt a run). Returns the RunState.
    """
    ckpt = None
    if cfg.resume:
        ckpt = load_checkpoint(os.path.join(cfg.out_dir, "last.ckpt"), model_type=model_type)
        saved = type(cfg)(**{k: v for k, v in ckpt["train_config"].items()
                             if k in {f.name for f in dataclasses.fields(cfg)}})
        cfg = dataclasses.replace(saved, resume=True, **{k: getattr(cfg, k) for k in given if k != "resume"})
    cfg.validate()
    device = resolve_device(cfg.device)
    corpus = load_corpus(cfg.data or None, cfg.val_fraction)
    if ckpt is not None and corpus.tokenizer.to_dict() != ckpt["tokenizer"]:
        raise CheckpointError(f"{cfg.out_dir}/last.ckpt was trained on data with another vocabulary than "
                              f"{corpus.source}; resume with the same --data")
    tensorlite.manual_seed(cfg.seed)
    if ckpt is None:
        model, model_config = make_model(model_type, cfg, corpus.tokenizer.vocab_size)
    else:
        model, model_config = model_from_checkpoint(ckpt), ckpt["model_config"]
    model.to(device)
    batches = Batches(corpus, cfg.batch_size, cfg.block_size, device=device, seed=cfg.seed)
    optimizer = make_optimizer(model, cfg)
    state = RunState()
    if ckpt is not None:
        state = RunState(**restore_training_state(ckpt, model, optimizer, batches))
        trim_log(os.path.join(cfg.out_dir, "log.jsonl"), state.last_eval_step)

    preset = getattr(cfg, "preset", None)
    out(f"device: {device}" + (f"   preset: {preset}" if preset else ""))
    out(f"model: {model_type}, {model.num_params():,} parameters, config {model_config}")
    out(f"data: {corpus.source}: {len(corpus.train):,} training and {len(corpus.val):,} validation tokens, "
        f"vocabulary {corpus.tokenizer.vocab_size}")
    out(f"checkpoints: {os.path.join(cfg.out_dir, 'last.ckpt')} and best.ckpt, log in log.jsonl"
        + (f"   (resuming at step {state.step})" if ckpt is not None else ""))
    extra = {"model_type": model_type, "model_config": model_config, "tokenizer": corpus.tokenizer.to_dict(),
             "train_config": dataclasses.asdict(cfg)}
    state = train_loop(model, optimizer, batches, cfg, cfg.out_dir, extra, state, on_step=on_step)
    out(f"done: {state.step} steps, best val loss {state.best_val_loss:.4f}")
    if cfg.sample_tokens:
        out("sample:")
        text = "".join(generate_stream(model, corpus.tokenizer, "\n", max_new_tokens=cfg.sample_tokens,
                                       unknown="skip"))
        out(text)
    return state


def trim_log(path, last_step):
    """Drop log lines past the checkpoint we resume from (written by a run that died after them)."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f if line.strip() and json.loads(line)["step"] <= last_step]
    atomic_write(path, lambda f: f.writelines(lines), mode="w")
