"""A whole training run, what every training program does: read the data, make (or resume) the model and
its optimizer, run the loop, print a sample, and say what came of it and what to do next.

    run_training(cfg, "gpt", given)    # cfg: a TrainConfig subclass holding the model's fields too

The model comes from the registry in models/: a fresh one from the config's fields, a resumed one from
the config stored in the checkpoint, so both go through the same constructor.
"""
import contextlib
import dataclasses
import os
import secrets
import shlex
import time

import tensorlite
from tensorlite.backend import physical_memory
from models import build_model, config_from, model_type as model_type_entry
from models.sampling import generate_stream
from train.checkpoint import load_checkpoint, restore_training_state
from train.cli import resolve_device
from train import distributed
from train.data import Batches, load_corpus
from train.distributed import init_world
from train.errors import CheckpointError, ResourceError
from train.loop import RunState, make_optimizer, train_loop
from train.precision import Precision
from train.plot import LOG_NAME, PLOT_NAME, PlotError, best_record, read_log
from train.rundir import RunDir, RunDirError, trim_log
from train.tokenizers import UnknownCharacterError


def make_model(model_type, cfg, vocab_size):
    """(fresh model, its config as a dict) of a registered type: the fields of its config dataclass are
    taken from the training config `cfg`, the vocabulary size from the data."""
    config = config_from(model_type, {**dataclasses.asdict(cfg), "vocab_size": vocab_size})
    return build_model(model_type, config), config.to_dict()


# ---------------------------------------------------------------- --resume: what may change
def resumed_config(cfg, given, ckpt, model_type):
    """The config of a resumed run: the checkpoint's, with the flags given now where they can change (the
    learning rate, dropout, max_iters, evaluation, ...); a flag that would change the model's shape, or
    another preset, is refused by name. Returns (config, model config: the checkpoint's with the new dropout)."""
    defaults = type(cfg)()
    fields = {f.name for f in dataclasses.fields(cfg)}
    for k, v in ckpt["train_config"].items():
        want = type(getattr(defaults, k)) if k in fields else None
        if want is not None and not (type(v) is want or (want is float and type(v) is int)):
            raise CheckpointError(f"{os.path.join(cfg.out_dir, 'last.ckpt')}: train_config.{k} is {v!r}, not a "
                                  f"{want.__name__}; the file is damaged: start over with --overwrite")
    saved = type(cfg)(**{k: v for k, v in ckpt["train_config"].items() if k in fields})
    new = dataclasses.replace(saved, resume=True, overwrite=False,
                              **{k: getattr(cfg, k) for k in given if k not in ("resume", "overwrite")})
    last = os.path.join(cfg.out_dir, "last.ckpt")
    start_over = "start over with --overwrite (or another --out_dir)"
    if "preset" in given and cfg.preset not in ("auto", getattr(saved, "preset", None)):
        raise CheckpointError(f"--preset {cfg.preset}: the run in {last} keeps the preset it started with "
                              f"({getattr(saved, 'preset', None)}); change single settings with their flags, or "
                              f"{start_over}")
    model_config = dict(ckpt["model_config"])
    for f in dataclasses.fields(model_type_entry(model_type).config):
        name = f.name
        if name in ("vocab_size", "dropout", "block_size") or name not in given or name not in model_config:
            continue
        if getattr(new, name) != model_config[name]:
            raise CheckpointError(f"--{name} {getattr(new, name)}: the model in {last} has {name} "
                                  f"{model_config[name]}, and --resume cannot change a model's shape; resume "
                                  f"without --{name}, or {start_over}")
    if "block_size" in model_config and new.block_size > model_config["block_size"]:
        raise CheckpointError(f"--block_size {new.block_size} is longer than the context of the model in {last} "
                              f"({model_config['block_size']}); resume with --block_size "
                              f"{model_config['block_size']} or less, or {start_over}")
    if "dropout" in model_config:
        model_config["dropout"] = new.dropout
    if new.max_iters < int(ckpt["step"]):
        raise CheckpointError(f"--max_iters {new.max_iters} is below the step of {last} ({int(ckpt['step'])}): "
                              "nothing to train; give a larger --max_iters")
    return new, model_config


# ---------------------------------------------------------------- memory, before allocating it
def memory_needed(model_type, model_config, cfg):
    """(bytes of the parameters with their gradients and AdamW's two moments, bytes of a batch's
    activations): a rough lower estimate from the config, float32 throughout."""
    c = model_config
    params = config_from(model_type, c).num_params()
    if model_type == "gpt":
        per_token = c["n_layer"] * (16 * c["n_embd"] + 2 * c["n_head"] * cfg.block_size) + 3 * c["vocab_size"]
    else:
        per_token = 3 * c["vocab_size"]
    return 16 * params, 4 * per_token * cfg.batch_size * cfg.block_size


def check_memory(model_type, model_config, cfg, device):
    """Refuse a run whose model or batch surely does not fit the machine's memory, with the flag to lower."""
    available = physical_memory() if device == "cpu" else None
    if not available:
        return
    model_bytes, batch_bytes = memory_needed(model_type, model_config, cfg)
    if model_bytes + batch_bytes > available:
        gib = 2 ** 30
        lower = "--batch_size or --block_size" if batch_bytes > model_bytes else "--n_embd or --n_layer"
        raise ResourceError(f"this run needs at least {(model_bytes + batch_bytes) / gib:,.1f} GiB of memory "
                            f"(model with gradients and AdamW state {model_bytes / gib:,.1f} GiB, activations of a "
                            f"batch {batch_bytes / gib:,.1f} GiB), but this machine has {available / gib:,.1f} "
                            f"GiB; lower {lower}")


# ---------------------------------------------------------------- the run
def run_training(cfg, model_type, given=(), on_step=None, out=print):
    """Everything an entry point does: data, model, optimizer, resume, the loop, a final sample.

    `given` names the flags set on the command line: on --resume they override the checkpoint's settings
    where a resumed run can change them. `on_step(step, loss)` is passed to the loop (tests use it to
    interrupt a run). Returns the RunState. The out_dir is locked for the whole run (train/rundir.py).
    Under mpiexec every rank runs this (train/distributed.py): rank 0 takes the folder, reads the checkpoint
    and prints; a problem that any rank meets while setting up stops every rank with its one line.
    """
    world = init_world()
    if not world.is_main:
        out = _quiet
    with contextlib.ExitStack() as stack:
        run_dir, data, error = None, None, None
        try:
            if cfg.resume and cfg.overwrite:
                raise RunDirError("--resume continues the run in --out_dir and --overwrite replaces it: give one "
                                  "of them")
            if world.is_main:
                run_dir = stack.enter_context(RunDir(cfg.out_dir, print=out))
                if cfg.resume:
                    run_dir.check_resumable()
                    data = read_checkpoint_bytes(run_dir.path("last.ckpt")) if world.size > 1 else None
                else:
                    run_dir.check_fresh(cfg.overwrite)
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 (every rank learns of it; the rank
            # that had it raises it)
            error = exc
        world.agree(error)
        if cfg.resume and world.size > 1:
            data = world.broadcast_bytes(data if world.is_main else b"")
        return _run(cfg, model_type, given, on_step, out, run_dir, world, data)


def read_checkpoint_bytes(path):
    """The bytes of a checkpoint file, for rank 0 to pass to the other ranks (which may be on machines
    without this folder)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise CheckpointError(f"cannot read {path!r}: {exc.strerror or exc}") from None


def _quiet(*args, **kw):
    """The `out` of ranks other than 0."""


def _set_up(cfg, model_type, given, out, run_dir, world, data):
    """Read the checkpoint (its bytes: `data`, under mpiexec) and the data, make the model, the optimizer and
    the batches: on every rank."""
    ckpt = None
    if cfg.resume:
        ckpt = load_checkpoint(os.path.join(cfg.out_dir, "last.ckpt"), model_type=model_type, data=data)
        cfg, model_config = resumed_config(cfg, given, ckpt, model_type)
    cfg.validate()
    random_seed = cfg.seed == -1 and ckpt is None
    if cfg.seed == -1:  # as in train.sample: a random seed, recorded in the checkpoints' config
        seed = secrets.randbelow(2 ** 31) if ckpt is None else int(ckpt["train_config"].get("seed", 1337))
        seed = int(world.sum_floats([seed if world.is_main else 0])[0])  # rank 0's, on every rank
        cfg = dataclasses.replace(cfg, seed=seed)  # (a resumed run keeps its seed: its evaluation windows)
    device = world.use_device(resolve_device(cfg.device))
    corpus = load_corpus(cfg.data or None, cfg.val_fraction)
    if ckpt is not None and corpus.tokenizer.to_dict() != ckpt["tokenizer"]:
        raise CheckpointError(f"{cfg.out_dir}/last.ckpt was trained on data with another vocabulary than "
                              f"{corpus.source}; resume with the same --data")
    if ckpt is None:
        model_config = config_from(model_type, {**dataclasses.asdict(cfg),
                                                "vocab_size": corpus.tokenizer.vocab_size}).to_dict()
    check_memory(model_type, model_config, cfg, device)
    tensorlite.manual_seed(cfg.seed)
    if ckpt is None:
        model, model_config = make_model(model_type, cfg, corpus.tokenizer.vocab_size)
    else:
        model = build_model(model_type, model_config)
    model.to(device)
    batches = Batches(corpus, cfg.batch_size, cfg.block_size, device=device, seed=cfg.seed, rank=world.rank,
                      ranks=world.size, micro_steps=cfg.grad_accum)
    distributed.seed_rank(world.rank, cfg.seed)  # each rank its own dropout masks (rank 0: a one-process run's)
    optimizer = make_optimizer(model, cfg)
    precision = Precision(cfg.dtype, device)
    tensorlite.backends.cuda.matmul.allow_tf32 = cfg.tf32
    state = RunState()
    if ckpt is not None:
        state = RunState(**restore_training_state(ckpt, model, optimizer, batches, precision, world.rank,
                                                  world.size))
        if world.is_main:
            trim_log(run_dir.path(LOG_NAME), state.last_eval_step, warn=out)
    elif world.is_main:
        run_dir.start_fresh()
    return cfg, model_config, (model, optimizer, batches, precision, state, corpus, ckpt, device, random_seed)



def _run(cfg, model_type, given, on_step, out, run_dir, world, data):
    error = None
    try:
        cfg, model_config, setup = _set_up(cfg, model_type, given, out, run_dir, world, data)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 (as above: every rank stops, with the
        # first failing rank's line)
        error = exc
    world.agree(error)
    model, optimizer, batches, precision, state, corpus, ckpt, device, random_seed = setup
    distributed.broadcast_model(world, model)

    preset = getattr(cfg, "preset", None)
    out(f"device: {device}" + (f"   mpi: {world.describe()}" if world.size > 1 else "")
        + (f"   preset: {preset}" if preset else "")
        + (f"   seed: {cfg.seed} (random)" if random_seed else "")
        + (f"   dtype: float16 (mixed precision, loss scale {precision.scaler.get_scale():g})"
           if precision.scaler else "")
        + ("   tf32" if cfg.tf32 and device != "cpu" else ""))
    if device == "cpu" and (precision.scaler or cfg.tf32):
        out("note: " + ("--dtype float16 is slow on the CPU (NumPy has no float16 matrix product); it is meant for "
                        "CUDA" if precision.scaler else "--tf32 has no effect on the CPU"))
    out(f"model: {model_type}, {model.num_params():,} parameters, config {model_config}")
    out(f"data: {corpus.source}: {len(corpus.train):,} training and {len(corpus.val):,} validation tokens, "
        f"vocabulary {corpus.tokenizer.vocab_size}")
    out(f"writes: {os.path.join(cfg.out_dir, 'last.ckpt')}, best.ckpt, {LOG_NAME}"
        + (f" and {PLOT_NAME}" if cfg.plot else "")
        + (f"   (resuming at step {state.step})" if ckpt is not None else ""))
    extra = {"model_type": model_type, "model_config": model_config, "tokenizer": corpus.tokenizer.to_dict(),
             "train_config": dataclasses.asdict(cfg)}
    first_step, started = state.step, time.perf_counter()
    state = train_loop(model, optimizer, batches, cfg, cfg.out_dir, extra, state, on_step=on_step,
                       precision=precision, world=world)
    seconds = time.perf_counter() - started
    if cfg.sample_tokens and world.is_main:
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
