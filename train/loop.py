"""The one training loop shared by the bigram model and the GPT, and what every entry point needs around it.

- a command line generated from a config dataclass (one flag per field, help from field metadata);
- checkpoints (`last.ckpt`, `best.ckpt` in --out_dir) that hold everything needed to resume exactly:
  model, optimizer, tokenizer, configs, step, both random generators, best validation loss;
- the loop: evaluate every eval_interval steps, log to log.jsonl, optional warmup + cosine learning rate
  and gradient clipping, a tqdm bar, Ctrl-C saving a checkpoint, and a clear stop when the loss diverges.

Inside a step nothing is read back to the host; the loss is read every `log_interval` steps for the bar.
"""
import dataclasses
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field

from tqdm import tqdm

import tensorlite
from train.cli import (apply_preset, build_parser, cli_main, option as _arg, parse_config,  # noqa: F401
                       resolve_device)  # (re-exported until the callers import them from train.cli)
from train.data import Batches, load_corpus
from train.data import DataError  # noqa: F401
from train.errors import CheckpointError, DeviceError, TrainingDiverged  # noqa: F401
from train.tokenizers import tokenizer_from_dict

CHECKPOINT_FORMAT = "tensorlite-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass
class TrainConfig:
    """Fields every training program has. Entry points subclass it and add their model's fields."""
    data: str = _arg("", "UTF-8 text file or prepared dataset directory (default: download Sherlock Holmes)")
    device: str = _arg("auto", "auto (CUDA when available), cpu, cuda or cuda:N")
    batch_size: int = _arg(32, "sequences per training step")
    block_size: int = _arg(8, "context length in tokens")
    max_iters: int = _arg(3000, "training steps")
    learning_rate: float = _arg(1e-2, "peak learning rate of AdamW")
    eval_interval: int = _arg(300, "evaluate every this many steps")
    eval_iters: int = _arg(200, "batches per split averaged in each evaluation")
    seed: int = _arg(1337, "seed of the model's initialisation, dropout and the batch order")
    out_dir: str = _arg("out", "folder for last.ckpt, best.ckpt and log.jsonl")
    resume: bool = _arg(False, "continue from out_dir/last.ckpt (flags given now override its settings)")
    val_fraction: float = _arg(0.2, "share of the text (its end) held out for validation")
    weight_decay: float = _arg(0.0, "AdamW weight decay of matrices (never of biases or norms)")
    beta2: float = _arg(0.999, "AdamW beta2")
    grad_clip: float = _arg(0.0, "clip the gradient norm to this (0: off)")
    warmup_iters: int = _arg(0, "linear learning-rate warmup steps")
    lr_decay: bool = _arg(False, "cosine-decay the learning rate to learning_rate/10 at max_iters")
    log_interval: int = _arg(10, "read the loss for the progress bar every this many steps")
    sample_tokens: int = _arg(300, "tokens of text generated at the end (0: none)")

    def validate(self):
        for name in ("batch_size", "block_size", "eval_interval", "eval_iters", "log_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name} must be positive, got {getattr(self, name)}")
        for name in ("max_iters", "warmup_iters", "sample_tokens"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"--learning_rate must be positive, got {self.learning_rate}")
        if self.grad_clip < 0 or self.weight_decay < 0:
            raise ValueError("--grad_clip and --weight_decay must be >= 0")


# ---------------------------------------------------------------- checkpoints
def save_checkpoint(path, state):
    tensorlite.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}, path)


def load_checkpoint(path, map_location=None, model_type=None):
    """The checkpoint dict; clear errors for a missing or foreign file, or one of another model type."""
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    try:
        ckpt = tensorlite.load(path, map_location=map_location)
    except Exception as exc:
        raise CheckpointError(f"{path!r} is not a tensorlite checkpoint ({exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path!r} is not a tensorlite training checkpoint (no '{CHECKPOINT_FORMAT}' "
                              "marker); pass a last.ckpt or best.ckpt written by train.bigram or train.gpt")
    if model_type is not None and ckpt.get("model_type") != model_type:
        raise CheckpointError(f"{path!r} holds a {ckpt.get('model_type')!r} model, not a {model_type!r} one; "
                              "use the matching program or another --out_dir")
    return ckpt


# ---------------------------------------------------------------- Ctrl-C
class _Interrupts:
    """Inside it, the first Ctrl-C only asks the loop to stop at the next step boundary (where the
    state is consistent and can be saved); a second one interrupts at once."""

    def __init__(self):
        self.requested = False

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        tqdm.write("\nCtrl-C: stopping after this step and saving a checkpoint (press again to stop now)")

    def __enter__(self):
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


# ---------------------------------------------------------------- the loop
def lr_at(cfg, step):
    if cfg.lr_decay:
        return tensorlite.optim.lr_scheduler.warmup_cosine_lr(step, cfg.learning_rate, cfg.warmup_iters,
                                                              max(cfg.max_iters, cfg.warmup_iters),
                                                              cfg.learning_rate / 10)
    if step < cfg.warmup_iters:
        return cfg.learning_rate * step / cfg.warmup_iters
    return cfg.learning_rate


def make_optimizer(model, cfg):
    """AdamW; weight decay only on matrices (weights of linear and embedding layers)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    return tensorlite.optim.AdamW(groups, lr=cfg.learning_rate, betas=(0.9, cfg.beta2))


def estimate_loss(model, batches, eval_iters):
    """Mean loss over the same `eval_iters` batches of each split, in eval mode without a graph."""
    model.eval()
    out = {}
    with tensorlite.no_grad():
        for split in ("train", "val"):
            total = None
            for x, y in batches.eval_batches(split, eval_iters):
                _, loss = model(x, y)
                total = loss if total is None else total + loss
            out[split] = total.item() / eval_iters
    model.train()
    return out


@dataclass
class RunState:
    """What the loop carries between steps and what a checkpoint restores."""
    step: int = 0
    best_val_loss: float = math.inf
    last_eval_step: int = -1
    history: list = field(default_factory=list)


def train_step(model, optimizer, x, y, grad_clip=0.0):
    """One step: loss of the batch, gradients, clipping to norm grad_clip (if > 0), update. Returns the loss."""
    _, loss = model(x, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        tensorlite.optim.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss


def train_loop(model, optimizer, batches, cfg, out_dir, extra, state=None, on_step=None, print=tqdm.write):
    """Train until cfg.max_iters. `extra` (model type, configs, tokenizer) goes into every checkpoint.

    `on_step(step, loss)` is called after each completed update (tests use it to interrupt a run).
    Returns the RunState; state.history holds the evaluations.
    """
    state = state or RunState()
    last_path, best_path = os.path.join(out_dir, "last.ckpt"), os.path.join(out_dir, "best.ckpt")
    log_path = os.path.join(out_dir, "log.jsonl")
    tokens_per_step = cfg.batch_size * cfg.block_size

    def checkpoint(path):
        save_checkpoint(path, {**extra, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "step": state.step, "best_val_loss": state.best_val_loss,
                               "last_eval_step": state.last_eval_step, "rng": tensorlite.get_rng_state(),
                               "batch_rng": batches.get_state()})

    def evaluate():
        losses = estimate_loss(model, batches, cfg.eval_iters)
        if not all(math.isfinite(v) for v in losses.values()):
            raise TrainingDiverged(f"the loss became {losses} at step {state.step}; the last good checkpoint is "
                                   f"{last_path}. Try a lower --learning_rate or --grad_clip 1.0.")
        record = {"step": state.step, "train_loss": losses["train"], "val_loss": losses["val"],
                  "lr": lr_at(cfg, state.step), "tokens": state.step * tokens_per_step,
                  "time": round(time.time() - started, 2), "cpu_time": round(time.process_time() - cpu_started, 2)}
        state.history.append(record)
        state.last_eval_step = state.step
        improved = losses["val"] < state.best_val_loss
        if improved:
            state.best_val_loss = losses["val"]
        checkpoint(last_path)
        if improved:
            checkpoint(best_path)
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        print(f"step {state.step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
              f"   [{(time.time() - started) / 60:.1f} min]" + (" (best)" if improved else ""))

    os.makedirs(out_dir, exist_ok=True)
    started, cpu_started = time.time(), time.process_time()
    model.train()
    bar = tqdm(total=cfg.max_iters, initial=state.step, desc="training", unit="step", dynamic_ncols=True,
               mininterval=1.0, disable=None)
    in_update = False
    mark_step, mark_time = state.step, time.perf_counter()
    try:
        with _Interrupts() as interrupts:
            while True:
                if (state.step % cfg.eval_interval == 0 or state.step == cfg.max_iters) \
                        and state.last_eval_step != state.step:
                    evaluate()
                if state.step >= cfg.max_iters:
                    break
                if interrupts.requested:
                    raise KeyboardInterrupt
                in_update = True
                lr = lr_at(cfg, state.step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                loss = train_step(model, optimizer, *batches.next(), cfg.grad_clip)
                state.step += 1
                in_update = False
                bar.update(1)
                if state.step % cfg.log_interval == 0:
                    value = loss.item()
                    if not math.isfinite(value):
                        raise TrainingDiverged(f"the loss became {value} at step {state.step}; the last good "
                                               f"checkpoint is {last_path}. Try a lower --learning_rate or "
                                               "--grad_clip 1.0.")
                    now = time.perf_counter()
                    rate = (state.step - mark_step) * tokens_per_step / max(now - mark_time, 1e-9)
                    mark_step, mark_time = state.step, now
                    bar.set_postfix(loss=f"{value:.4f}", tok_s=f"{rate:,.0f}", lr=f"{lr:.2e}", refresh=False)
                if on_step is not None:
                    on_step(state.step, loss)
    except KeyboardInterrupt:
        bar.close()
        if in_update:
            print(f"interrupted in the middle of a step; the last checkpoint ({last_path}) is kept")
        else:
            checkpoint(last_path)
            print(f"interrupted at step {state.step}; saved {last_path}; continue with --resume")
        raise
    finally:
        bar.close()
    return state


# ---------------------------------------------------------------- a whole run
def run_training(cfg, model_type, make_model, given=(), on_step=None, out=print):
    """Everything an entry point does: data, model, optimizer, resume, the loop, a final sample.

    make_model(cfg, vocab_size) -> (model, model_config_dict) builds a fresh model;
    on --resume the model is rebuilt from the checkpoint's config through the same function.
    """
    from train.sample import build_model  # the registry of model types lives beside the sampler

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
        model, model_config = make_model(cfg, corpus.tokenizer.vocab_size)
    else:
        model_config = ckpt["model_config"]
        model = build_model(model_type, model_config)
    model.to(device)
    batches = Batches(corpus, cfg.batch_size, cfg.block_size, device=device, seed=cfg.seed)
    optimizer = make_optimizer(model, cfg)
    state = RunState()
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        tensorlite.set_rng_state(ckpt["rng"])
        batches.set_state(ckpt["batch_rng"])
        state = RunState(step=int(ckpt["step"]), best_val_loss=float(ckpt["best_val_loss"]),
                         last_eval_step=int(ckpt["last_eval_step"]))
        _trim_log(os.path.join(cfg.out_dir, "log.jsonl"), state.last_eval_step)

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
        from train.sample import generate_stream
        out("sample:")
        text = "".join(generate_stream(model, corpus.tokenizer, "\n", max_new_tokens=cfg.sample_tokens,
                                       unknown="skip"))
        out(text)
    return state


def _trim_log(path, last_step):
    """Drop log lines past the checkpoint we resume from (written by a run that died after them)."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f if line.strip() and json.loads(line)["step"] <= last_step]
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines)
