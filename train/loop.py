"""The one training loop shared by the bigram model and the GPT: the settings every training program has,
the optimizer, the learning-rate schedule, one training step, evaluation, and `train_loop` itself.

The loop evaluates every eval_interval steps, logs to log.jsonl, writes `last.ckpt` and `best.ckpt`
(train/checkpoint.py), redraws loss.png (train/plot.py), shows a tqdm bar (loss, tokens/s, time left), saves a checkpoint on Ctrl-C and stops clearly when the loss
diverges. Inside a step nothing is read back to the host; the loss is read every `log_interval` steps
for the bar. The whole run around it (data, model, resume) is train/run.py.
"""
import functools
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field

from tqdm import tqdm

import tensorlite
from tensorlite.optim.lr_scheduler import warmup_cosine_lr
from train.checkpoint import save_checkpoint, training_state
from train.cli import check_seed, option
from train.errors import Interrupted, TrainingDiverged
from train.rundir import RunDirError, os_error_line
from train.plot import LossPlot
from train.precision import Precision, check_dtype
from train.distributed import GradientReducer, World, check_replicas, rng_states


@dataclass
class TrainConfig:
    """Fields every training program has. Entry points subclass it and add their model's fields."""
    data: str = option("", "UTF-8 text file or prepared dataset folder (default: the packaged Sherlock Holmes)")
    device: str = option("auto", "auto (CUDA when available), cpu, cuda or cuda:N")
    batch_size: int = option(32, "sequences per training step (in all: split across the ranks under mpiexec and "
                                  "across the --grad_accum micro-steps)")
    grad_accum: int = option(1, "micro-steps per training step: each rank's share of the batch is cut into this "
                                "many parts whose gradients add up to the same step, in less memory")
    block_size: int = option(8, "context length in tokens")
    max_iters: int = option(3000, "training steps")
    learning_rate: float = option(1e-2, "peak learning rate of AdamW")
    eval_interval: int = option(300, "evaluate every this many steps")
    eval_iters: int = option(200, "batches per split averaged in each evaluation")
    seed: int = option(1337, "seed of the model's initialisation, dropout and the batch order (-1: a random one, "
                             "recorded in the checkpoints)")
    out_dir: str = option("out", "folder for last.ckpt, best.ckpt, log.jsonl and loss.png")
    resume: bool = option(False, "continue from out_dir/last.ckpt (flags given now override its settings, except "
                                 "the model's shape)")
    overwrite: bool = option(False, "start over in an out_dir that holds a run: its checkpoints are replaced at "
                                    "the first evaluation, its log and loss.png become log.old.jsonl, loss.old.png")
    val_fraction: float = option(0.2, "share of the text (its end) held out for validation")
    weight_decay: float = option(0.0, "AdamW weight decay of matrices (never of biases or norms)")
    beta2: float = option(0.999, "AdamW beta2")
    grad_clip: float = option(0.0, "clip the gradient norm to this (0: off)")
    warmup_iters: int = option(0, "linear learning-rate warmup steps")
    lr_decay: bool = option(False, "cosine-decay the learning rate to learning_rate/10 at max_iters")
    log_interval: int = option(10, "read the loss for the progress bar every this many steps")
    sample_tokens: int = option(300, "tokens of text generated at the end (0: none)")
    plot: bool = option(True, "redraw out_dir/loss.png at every evaluation (needs matplotlib: the plot extra)")
    dtype: str = option("float32", "float32, or float16: mixed precision (float16 matrix products, float32 weights "
                                   "and loss, dynamic loss scaling), fast on CUDA and slow on the CPU")
    tf32: bool = option(False, "float32 matrix products on CUDA in TF32 (tensor cores, 10-bit mantissa inputs)")

    def validate(self):
        for name in ("batch_size", "grad_accum", "block_size", "eval_interval", "eval_iters", "log_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name} must be positive, got {getattr(self, name)}")
        for name in ("max_iters", "warmup_iters", "sample_tokens"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"--learning_rate must be positive, got {self.learning_rate}")
        check_seed(self.seed)
        check_dtype(self.dtype)
        if self.grad_clip < 0 or self.weight_decay < 0:
            raise ValueError("--grad_clip and --weight_decay must be >= 0")


# ---------------------------------------------------------------- Ctrl-C, SIGTERM, SIGHUP
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class _Interrupts:
    """Inside it, the first Ctrl-C (or SIGTERM, SIGHUP) only asks the loop to stop at the next step boundary
    (where the state is consistent and can be saved); a second one interrupts at once."""

    def __init__(self, print=tqdm.write):
        self.requested = None  # the number of the signal that asked to stop
        self.print = print

    def _handler(self, signum, frame):
        if self.requested is not None:
            raise Interrupted(signum)
        self.requested = signum
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        self.print(f"\n{name}: stopping after this step and saving a checkpoint (press Ctrl-C to stop now)")

    def __enter__(self):
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handler)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            if handler is not None:
                signal.signal(signum, handler)
        return False


# ---------------------------------------------------------------- the loop
def _quiet(*args, **kw):
    """The print of ranks other than 0: they compute, rank 0 speaks."""


# tqdm's own layout with its words spelled out: the time left is tqdm's estimate from the recent step rate.
# Loss, tokens/s and the time left fit 80 columns; the learning rate comes last, the first thing cut.
BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}, {remaining} left{postfix}]"


def lr_schedule(cfg):
    """The learning rate of each step, a function of the step: tensorlite.optim.lr_scheduler's warmup and
    cosine. A linear warmup over warmup_iters, then with lr_decay a cosine down to learning_rate / 10 at
    max_iters; without it the cosine's floor is learning_rate itself, so the rate stays there."""
    floor = cfg.learning_rate / 10 if cfg.lr_decay else cfg.learning_rate
    return functools.partial(warmup_cosine_lr, base_lr=cfg.learning_rate, warmup_iters=cfg.warmup_iters,
                             max_iters=max(cfg.max_iters, cfg.warmup_iters), min_lr=floor)


def make_optimizer(model, cfg):
    """AdamW; weight decay only on matrices (weights of linear and embedding layers)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    return tensorlite.optim.AdamW(groups, lr=cfg.learning_rate, betas=(0.9, cfg.beta2))


def estimate_loss(model, batches, eval_iters, precision=None, world=None):
    """Mean loss over the same `eval_iters` batches of each split, in eval mode without a graph (under the
    run's autocast with --dtype float16). With ranks or micro-steps (batches.ranks, batches.micro_steps)
    each rank scores its micro-batches of every batch, and the sums of all ranks are added up."""
    world = world or World()
    split_up = batches.ranks * batches.micro_steps > 1
    model.eval()
    totals = []
    with tensorlite.no_grad(), (precision or Precision()).autocast():
        for split in ("train", "val"):
            total = None
            for batch in batches.eval_batches(split, eval_iters, share=split_up):
                for x, y in (batch if split_up else [batch]):
                    _, loss = model(x, y)
                    total = loss if total is None else total + loss
            totals.append(total.item() / (batches.ranks * batches.micro_steps if split_up else 1))
    model.train()
    train, val = world.sum_floats(totals)
    return {"train": train / eval_iters, "val": val / eval_iters}


@dataclass
class RunState:
    """What the loop carries between steps and what a checkpoint restores."""
    step: int = 0
    best_val_loss: float = math.inf
    last_eval_step: int = -1
    history: list = field(default_factory=list)


def train_step(model, optimizer, x, y, grad_clip=0.0, precision=None):
    """One step: loss of the batch, gradients, clipping to norm grad_clip (if > 0), update. Returns the loss.
    precision (train/precision.py) adds autocast and loss scaling for --dtype float16."""
    return accumulated_step(model, optimizer, [(x, y)], grad_clip, precision)


def accumulated_step(model, optimizer, micro_batches, grad_clip=0.0, precision=None, reducer=None, stop=False):
    """One step over this rank's micro-batches [(x, y), ...] (--grad_accum K of them). Each micro-batch's
    loss is scaled by its share 1/K before its backward, so the gradients add up to the gradient of the
    mean loss over them; a reducer (train/distributed.py) then averages them over the ranks, in one
    all-reduce that also carries the loss and this rank's wish to `stop`. Clipping and the update happen
    once, on the gradient of the whole batch. Returns the mean loss of the whole batch (0-d, not read)."""
    precision = precision or Precision()
    optimizer.zero_grad(set_to_none=True)
    share = 1.0 / len(micro_batches)
    total = None
    for x, y in micro_batches:
        with precision.autocast():
            _, loss = model(x, y)
        precision.backward(loss if share == 1 else loss * share)
        total = loss.detach() if total is None else total + loss.detach()
    if share != 1:
        total = total * share
    if reducer is not None:
        total = reducer.reduce(total, stop)
    precision.update(model, optimizer, grad_clip)
    return total


def train_loop(model, optimizer, batches, cfg, out_dir, extra, state=None, on_step=None, print=tqdm.write,
               precision=None, world=None):
    """Train until cfg.max_iters. `extra` (model type, configs, tokenizer) goes into every checkpoint;
    precision: the run's --dtype (train/precision.py; float32 when None); world: the ranks under mpiexec
    (train/distributed.py; one process when None). Rank 0 alone writes files and prints.

    `on_step(step, loss)` is called after each completed update (tests use it to interrupt a run).
    Returns the RunState; state.history holds the evaluations.
    """
    state = state or RunState()
    precision = precision or Precision()
    world = world or World()
    if not world.is_main:
        print = _quiet
    last_path, best_path = os.path.join(out_dir, "last.ckpt"), os.path.join(out_dir, "best.ckpt")
    log_path = os.path.join(out_dir, "log.jsonl")
    tokens_per_step = cfg.batch_size * cfg.block_size
    lr_at = lr_schedule(cfg)
    plot = LossPlot(out_dir, lr_at=lr_at, print=print) if cfg.plot and world.is_main else None
    reducer = GradientReducer(model.parameters(), world) if world.size > 1 else None
    on_cpu = next(iter(model.parameters())).device == "cpu"

    def write_checkpoint(path, ranks_rng):
        try:
            save_checkpoint(path, {**extra, **training_state(model, optimizer, batches, state.step,
                                                             state.best_val_loss, state.last_eval_step, precision),
                                   **({"rank_rng": ranks_rng} if ranks_rng else {})})
        except OSError as exc:  # atomic_write removed its temporary file: the previous checkpoint is intact
            need = sum(p.numel() for p in model.parameters()) * 4 * 3  # weights and AdamW's two moments
            exc.filename = exc.filename or path
            raise RunDirError(f"{os_error_line(exc)} (a checkpoint needs about {need / 2**20:,.1f} MiB; "
                              f"the previous {os.path.basename(path)} is kept)") from None

    def on_main(write):
        """Rank 0 writes; every rank learns whether that failed (and then stops with the same error)."""
        ranks_rng = rng_states(world) if world.size > 1 else None
        error = None
        if world.is_main:
            try:
                write(ranks_rng)
            except RunDirError as exc:
                error = exc
        world.agree(error)

    def write_evaluation(record, improved, ranks_rng):
        # last.ckpt is the commit point, written last: a crash before it loses no best model and no log
        # line for good (--resume trims the log to last.ckpt's evaluations and redoes the ones after it)
        if improved:
            write_checkpoint(best_path, ranks_rng)
        try:
            with open(log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            exc.filename = exc.filename or log_path
            raise RunDirError(os_error_line(exc)) from None
        write_checkpoint(last_path, ranks_rng)

    def evaluate():
        losses = estimate_loss(model, batches, cfg.eval_iters, precision, world)
        if not all(math.isfinite(v) for v in losses.values()):
            raise TrainingDiverged(f"the loss became {losses} at step {state.step}; the last good checkpoint is "
                                   f"{last_path}. Try a lower --learning_rate or --grad_clip 1.0.")
        check_replicas(world, model, state.step)
        record = {"step": state.step, "train_loss": losses["train"], "val_loss": losses["val"],
                  "lr": lr_at(state.step), "tokens": state.step * tokens_per_step,
                  "time": round(time.time() - started, 2), "cpu_time": round(time.process_time() - cpu_started, 2)}
        if precision.scaler is not None:
            record.update(loss_scale=precision.scaler.get_scale(), skipped_steps=precision.skipped_steps)
        state.history.append(record)
        state.last_eval_step = state.step
        improved = losses["val"] < state.best_val_loss
        if improved:
            state.best_val_loss = losses["val"]
        on_main(lambda ranks_rng: write_evaluation(record, improved, ranks_rng))
        if plot is not None:
            plot.update()
        print(f"step {state.step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
              f"   [{(time.time() - started) / 60:.1f} min]" + (" (best)" if improved else "")
              + (f"   ({precision.describe()})" if precision.skipped_steps else ""))

    if world.is_main:
        os.makedirs(out_dir, exist_ok=True)
    started, cpu_started = time.time(), time.process_time()
    model.train()
    bar = tqdm(total=cfg.max_iters, initial=state.step, desc="training", unit="step", dynamic_ncols=True,
               mininterval=1.0, disable=None if world.is_main else True, bar_format=BAR_FORMAT)
    in_update = False
    mark_step, mark_time = state.step, time.perf_counter()
    try:
        with _Interrupts(print) as interrupts:
            while True:
                if (state.step % cfg.eval_interval == 0 or state.step == cfg.max_iters) \
                        and state.last_eval_step != state.step:
                    evaluate()
                if state.step >= cfg.max_iters:
                    break
                if reducer is None and interrupts.requested is not None:
                    raise Interrupted(interrupts.requested)
                in_update = True
                lr = lr_at(state.step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                loss = accumulated_step(model, optimizer, batches.next_share(), cfg.grad_clip, precision, reducer,
                                        stop=interrupts.requested is not None)
                state.step += 1
                in_update = False
                bar.update(1)
                logging = state.step % cfg.log_interval == 0
                if logging:
                    value = loss.item()
                    if not math.isfinite(value):
                        raise TrainingDiverged(f"the loss became {value} at step {state.step}; the last good "
                                               f"checkpoint is {last_path}. Try a lower --learning_rate or "
                                               "--grad_clip 1.0.")
                    now = time.perf_counter()
                    rate = (state.step - mark_step) * tokens_per_step / max(now - mark_time, 1e-9)
                    mark_step, mark_time = state.step, now
                    speed = f"{rate / 1000:.1f}k" if rate >= 1000 else f"{rate:.0f}"
                    bar.set_postfix({"loss": f"{value:.4f}", "tokens/s": speed, "lr": f"{lr:.1e}"}, refresh=False)
                if on_step is not None:
                    on_step(state.step, loss)
                # every rank's wish to stop came with the step's all-reduce: all stop after the same step (on a
                # GPU it is read with the loss, so as not to wait for the device at every step)
                if reducer is not None and (on_cpu or logging) and reducer.stop_requested():
                    stop = Interrupted(interrupts.requested or signal.SIGTERM)
                    stop.collective = True
                    raise stop
    except KeyboardInterrupt as exc:
        bar.close()
        if in_update or (world.size > 1 and not getattr(exc, "collective", False)):
            print(f"interrupted in the middle of a step; the last checkpoint ({last_path}) is kept")
        else:
            on_main(lambda ranks_rng: write_checkpoint(last_path, ranks_rng))
            print(f"interrupted at step {state.step}; saved {last_path}; continue with --resume")
        exc.reported = True  # cli_main says nothing more
        raise
    finally:
        bar.close()
    return state
