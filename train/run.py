"""A whole training run, what every training program does: read the data, make (or resume) the model and
its optimizer, run the loop, print a sample, and say what came of it and what to do next.

    run_training(cfg, "gpt", given)    # cfg: a TrainConfig subclass holding the model's fields too

The model comes from the registry in models/: a fresh one from the config's fields, a resumed one from
the config stored in the checkpoint, so both go through the same constructor.
"""
import dataclasses
import json
import os
import shlex
import time

import tensorlite
from models import build_model, config_from
from models.sampling import generate_stream
from tensorlite.serialization import atomic_write
from train.checkpoint import load_checkpoint, model_from_checkpoint, restore_training_state
from train.cli import resolve_device
from train.data import Batches, load_corpus
from train.errors import CheckpointError
from train.loop import RunState, make_optimizer, train_loop
from train.plot import LOG_NAME, PLOT_NAME, PlotError, best_record, read_log
from train.tokenizers import UnknownCharacterError


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
    out(f"writes: {os.path.join(cfg.out_dir, 'last.ckpt')}, best.ckpt, {LOG_NAME}"
        + (f" and {PLOT_NAME}" if cfg.plot else "")
        + (f"   (resuming at step {state.step})" if ckpt is not None else ""))
    extra = {"model_type": model_type, "model_config": model_config, "tokenizer": corpus.tokenizer.to_dict(),
             "train_config": dataclasses.asdict(cfg)}
    first_step, started = state.step, time.perf_counter()
    state = train_loop(model, optimizer, batches, cfg, cfg.out_dir, extra, state, on_step=on_step)
    seconds = time.perf_counter() - started
    if cfg.sample_tokens:
        out("sample:")
        text = "".join(generate_stream(model, corpus.tokenizer, "\n", max_new_tokens=cfg.sample_tokens,
                                       unknown="skip"))
        out(text)
    tokens = (state.step - first_step) * cfg.batch_size * cfg.block_size
    out(run_summary(cfg.out_dir, state, seconds, tokens, suggest_prompt(corpus.tokenizer)))
    return state


def suggest_prompt(tokenizer):
    """A prompt the model's vocabulary can write, for the sample command printed at the end."""
    for prompt in ("Holmes", "The", "the", "a"):
        try:
            tokenizer.encode(prompt)
            return prompt
        except (UnknownCharacterError, ValueError):
            continue
    return "\n"  # the sample program's default


def prompt_flag(prompt):
    """' --prompt "Holmes"' as a shell reads it (nothing for the default prompt, a newline)."""
    if prompt == "\n":
        return ""
    plain = prompt.isprintable() and not set(prompt) & set('"$`\\!')
    return f' --prompt "{prompt}"' if plain else f" --prompt {shlex.quote(prompt)}"


def run_summary(out_dir, state, seconds, tokens, prompt="Holmes"):
    """The end of a run as text: the best validation loss and its step, time and speed, the files written,
    and the commands that use them (with this run's folder)."""
    try:
        best = best_record(read_log(os.path.join(out_dir, LOG_NAME)))  # the whole log: resumed runs too
        best_text = f"best val loss {best['val_loss']:.4f} at step {best['step']:,}"
    except PlotError:
        best_text = f"best val loss {state.best_val_loss:.4f}"
    minutes = f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"
    lines = [f"done: {state.step:,} steps, {best_text}; this run trained {tokens:,} tokens in {minutes} "
             f"({tokens / max(seconds, 1e-9):,.0f} tokens/s, evaluations included)",
             f"files in {out_dir}:"]
    files = [("last.ckpt", f"everything at step {state.step:,}: continue it with --resume"),
             ("best.ckpt", "the model at its best validation loss"),
             (LOG_NAME, "every evaluation, one JSON line each"),
             (PLOT_NAME, "the loss curves, redrawn at every evaluation")]
    for name, what in files:
        if os.path.exists(os.path.join(out_dir, name)):  # (no loss.png without matplotlib: the loop said so)
            lines.append(f"  {name:<10} {what}")
    best_ckpt = shlex.quote(os.path.join(out_dir, "best.ckpt"))
    lines += ["next:",
              f"  python -m train.sample --checkpoint {best_ckpt}{prompt_flag(prompt)} --max_new_tokens 300",
              f"  python -m train.chat --checkpoint {best_ckpt}",
              f"  python -m train.web --checkpoint {best_ckpt}    # a web page; needs pip install -e \".[web]\"",
              f"  python -m train.plot {shlex.quote(out_dir)} OTHER_OUT_DIR    # compare runs on one figure"]
    return "\n".join(lines)


def trim_log(path, last_step):
    """Drop log lines past the checkpoint we resume from (written by a run that died after them)."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f if line.strip() and json.loads(line)["step"] <= last_step]
    atomic_write(path, lambda f: f.writelines(lines), mode="w")
