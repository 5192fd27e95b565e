"""Training checkpoints: one file format, written by the training programs and read by every program.

A checkpoint is a dict saved with tensorlite.save (an atomic write) holding a format marker and version,
the model type and config (enough to rebuild the model through the registry in models/), the tokenizer,
the training config, and the state that makes a resumed run continue exactly: weights, optimizer state,
step, best validation loss, both random generators. Every problem reading one is a CheckpointError.
"""
import io
import os

import tensorlite
from models import build_model
from tensorlite.serialization import CheckpointError as FileError
from train import checkpoint_checks as checks
from train.cli import resolve_device
from train.distributed import seed_rank
from train.errors import CheckpointError

CHECKPOINT_FORMAT = "tensorlite-checkpoint"
CHECKPOINT_VERSION = 1


class Checkpoint(dict):
    """A checkpoint's entries, with `path` (the file, for messages) and `tokenizer` (rebuilt and checked).
    An entry the file lacks is a CheckpointError naming it, not a KeyError."""
    path = None
    tokenizer = None

    def __missing__(self, key):
        raise CheckpointError(f"checkpoint {self.path!r} has no {key!r} entry, which train.bigram and train.gpt "
                              "always write; the file is damaged or was written by something else")


def save_checkpoint(path, state):
    """Write `state` (a dict) with the format marker, replacing `path` atomically."""
    tensorlite.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **dict(state)}, path)


def load_checkpoint(path, map_location=None, model_type=None, data=None):
    """The checkpoint, checked entry by entry (train.checkpoint_checks), its tensors on `map_location`
    (default: the CPU, whatever device wrote it; load_state_dict copies them onto the model's device).
    One CheckpointError for a missing, foreign or inconsistent file, or one of another model type.
    data: the file's bytes, already read (the ranks of an MPI run get rank 0's), instead of reading `path`."""
    path = os.fspath(path)
    if data is None and not os.path.lexists(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    source = path
    if data is not None:
        source = io.BytesIO(data)
        source.name = path
    try:
        raw = tensorlite.load(source, map_location=map_location or "cpu")
    except FileError as exc:
        raise CheckpointError(str(exc)) from None
    except (ValueError, RuntimeError) as exc:  # the device asked for
        raise CheckpointError(f"cannot load {path!r}: {exc}") from None
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path!r} is not a tensorlite training checkpoint (no '{CHECKPOINT_FORMAT}' "
                              "marker); pass a last.ckpt or best.ckpt written by train.bigram or train.gpt")
    version = raw.get("version")
    if not checks.is_int(version) or not 1 <= version <= CHECKPOINT_VERSION:
        raise CheckpointError(f"checkpoint {path!r} has version {version!r}; this tensorlite reads version "
                              f"{CHECKPOINT_VERSION}")
    if model_type is not None and raw.get("model_type") != model_type:
        raise CheckpointError(f"{path!r} holds a {raw.get('model_type')!r} model, not a {model_type!r} one; "
                              "use the matching program or another --out_dir")
    ckpt = Checkpoint(raw)
    ckpt.path = path
    config = checks.check_model_config(path, ckpt.get("model_type"), ckpt["model_config"])
    for key in ("tokenizer", "model"):
        ckpt[key]  # noqa: B018 (a missing entry raises, naming it)
    checks.check_weights(path, "model", ckpt["model"])
    checks.check_model_size(path, config, ckpt["model"])
    ckpt.tokenizer = checks.check_tokenizer(path, ckpt["tokenizer"], getattr(config, "vocab_size", None))
    ckpt["tokenizer"] = ckpt.tokenizer.to_dict()  # canonical: an old file's pattern text becomes its name
    checks.check_training_fields(path, ckpt)
    return ckpt


def model_from_checkpoint(ckpt):
    """A fresh model of the checkpoint's type and config, whose tensors' names and shapes are checked
    against the checkpoint's weights (which are not loaded yet)."""
    path = getattr(ckpt, "path", None)
    config = checks.check_model_config(path, ckpt.get("model_type"), ckpt["model_config"])
    model = build_model(ckpt["model_type"], config)
    if "model" in ckpt:
        checks.check_state_shapes(path, model, ckpt["model"])
    return model


# ---------------------------------------------------------------- the state of a run
def training_state(model, optimizer, batches, step, best_val_loss, last_eval_step, precision=None):
    """What a checkpoint holds beyond the model's description, for a run to resume exactly (with --dtype
    float16 also the loss scaler's state, under "amp")."""
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
             "best_val_loss": best_val_loss, "last_eval_step": last_eval_step, "rng": tensorlite.get_rng_state(),
             "batch_rng": batches.get_state()}
    amp = precision.state_dict() if precision is not None else {}
    if amp:
        state["amp"] = amp
    return state


def restore_training_state(ckpt, model, optimizer, batches, precision=None, rank=0, ranks=1):
    """Load a checkpoint's weights, optimizer state, random generators (and loss scaler, into `precision`);
    returns the loop's counters (step, best_val_loss, last_eval_step) as a dict. Rank `rank` of `ranks`
    takes its own generator when the checkpoint has one per rank for as many ranks (else rank 0 takes the
    checkpoint's, and the others start streams of their own: train/distributed.seed_rank)."""
    path = getattr(ckpt, "path", None)
    for key in ("optimizer", "rng", "batch_rng", "step", "best_val_loss", "last_eval_step"):
        ckpt[key]  # noqa: B018 (a missing entry raises, naming it)
    checks.check_state_shapes(path, model, ckpt["model"])
    checks.check_param_groups(path, ckpt["optimizer"]["param_groups"], optimizer)
    model.load_state_dict(ckpt["model"])
    try:
        optimizer.load_state_dict(ckpt["optimizer"])
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise checks.fail(path, "optimizer", f"does not fit the model: {exc}") from None
    tensorlite.set_rng_state(ckpt["rng"])  # a CUDA generator's state is dropped where there is no GPU
    ranks_rng = ckpt.get("rank_rng")
    if ranks > 1 and isinstance(ranks_rng, list) and len(ranks_rng) == ranks:
        tensorlite.set_rng_state(ranks_rng[rank])
    elif rank > 0:
        seed_rank(rank, int(ckpt["train_config"].get("seed", 0)), int(ckpt["step"]))
    batches.set_state(ckpt["batch_rng"])
    if precision is not None and "amp" in ckpt:
        checks.check_amp(path, ckpt["amp"])
        precision.load_state_dict(ckpt["amp"])
    return {"step": int(ckpt["step"]), "best_val_loss": float(ckpt["best_val_loss"]),
            "last_eval_step": int(ckpt["last_eval_step"])}


# ---------------------------------------------------------------- a model to generate with
def load_checkpoint_model(path, device="auto"):
    """(model in eval mode on `device`, tokenizer, info dict) from a checkpoint written by train.bigram/gpt."""
    device = resolve_device(device)
    ckpt = load_checkpoint(path, map_location=device)
    model_type = ckpt["model_type"]
    model = model_from_checkpoint(ckpt)
    model.load_state_dict(ckpt["model"])
    model.to(device)
    model.eval()
    tokenizer = ckpt.tokenizer
    info = {"model_type": model_type, "config": dict(ckpt["model_config"]), "num_params": model.num_params(),
            "step": int(ckpt.get("step", 0)), "vocab_size": tokenizer.vocab_size,
            "best_val_loss": float(ckpt.get("best_val_loss", float("nan"))), "device": device, "path": str(path)}
    return model, tokenizer, info
