"""Training checkpoints: one file format, written by the training programs and read by every program.

A checkpoint is a dict saved with tensorlite.save (an atomic write) holding a format marker and version,
the model type and config (enough to rebuild the model through the registry in models/), the tokenizer,
the training config, and the state that makes a resumed run continue exactly: weights, optimizer state,
step, best validation loss, both random generators. Every problem reading one is a CheckpointError.
"""
import os

import tensorlite
from models import MODELS, build_model
from train.cli import resolve_device
from train.errors import CheckpointError
from train.tokenizers import tokenizer_from_dict

CHECKPOINT_FORMAT = "tensorlite-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(path, state):
    """Write `state` (a dict) with the format marker, replacing `path` atomically."""
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


def model_from_checkpoint(ckpt):
    """A fresh model of the checkpoint's type and config (its weights are not loaded yet)."""
    model_type = ckpt.get("model_type")
    if model_type not in MODELS:
        raise CheckpointError(f"unknown model type {model_type!r} in checkpoint: expected one of {tuple(MODELS)}")
    return build_model(model_type, ckpt["model_config"])


# ---------------------------------------------------------------- the state of a run
def training_state(model, optimizer, batches, step, best_val_loss, last_eval_step):
    """What a checkpoint holds beyond the model's description, for a run to resume exactly."""
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
            "best_val_loss": best_val_loss, "last_eval_step": last_eval_step, "rng": tensorlite.get_rng_state(),
            "batch_rng": batches.get_state()}


def restore_training_state(ckpt, model, optimizer, batches):
    """Load a checkpoint's weights, optimizer state and random generators; returns the loop's counters
    (step, best_val_loss, last_eval_step) as a dict."""
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    tensorlite.set_rng_state(ckpt["rng"])
    batches.set_state(ckpt["batch_rng"])
    return {"step": int(ckpt["step"]), "best_val_loss": float(ckpt["best_val_loss"]),
            "last_eval_step": int(ckpt["last_eval_step"])}


# ---------------------------------------------------------------- a model to generate with
def load_checkpoint_model(path, device="auto"):
    """(model in eval mode on `device`, tokenizer, info dict) from a checkpoint written by train.bigram/gpt."""
    device = resolve_device(device)
    ckpt = load_checkpoint(path, map_location=device)
    model_type = ckpt.get("model_type")
    model = model_from_checkpoint(ckpt)
    model.load_state_dict(ckpt["model"])
    model.to(device)
    model.eval()
    tokenizer = tokenizer_from_dict(ckpt["tokenizer"])
    info = {"model_type": model_type, "config": dict(ckpt["model_config"]), "num_params": model.num_params(),
            "step": int(ckpt.get("step", 0)), "vocab_size": tokenizer.vocab_size,
            "best_val_loss": float(ckpt.get("best_val_loss", float("nan"))), "device": device, "path": str(path)}
    return model, tokenizer, info
