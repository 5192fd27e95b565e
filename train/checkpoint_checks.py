"""The checks a training checkpoint passes before anything is built from it: a file is untrusted input.

tensorlite.load has already bounded the file's arrays by the machine's memory. Here each entry is checked
against what the programs write (train.loop's training_state and train.run's model description): the right
kinds, types and ranges, a model_config whose model fits in memory and matches the saved weights, a
tokenizer whose vocabulary is the model's, finite weights, generator states NumPy accepts. Every problem is
one CheckpointError naming the file and the entry.
"""
import dataclasses
import math
import re

import numpy as np

import tensorlite
from models import MODELS
from tensorlite.backend import physical_memory
from tensorlite.npz_reader import gigabytes
from train.errors import CheckpointError
from train.tokenizers import tokenizer_from_dict

SCALARS = (type(None), bool, int, float, str)
DEVICE_NAME = re.compile(r"cpu|cuda:\d{1,3}")


def fail(path, field, what):
    return CheckpointError(f"checkpoint {path!r}: {field} {what}")


def is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_model_config(path, model_type, values):
    """The model's config dataclass from the checkpoint's dict: known keys, the fields' types, its checks."""
    if model_type not in MODELS:
        raise CheckpointError(f"checkpoint {path!r}: unknown model type {model_type!r} in checkpoint: expected one "
                              f"of {tuple(MODELS)}")
    if not isinstance(values, dict):
        raise fail(path, "model_config", f"must be a dict, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(MODELS[model_type].config)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise fail(path, "model_config", f"has unknown keys {unknown[:5]} for a {model_type!r} model "
                   f"(known: {sorted(fields)})")
    for name, value in values.items():
        kind = type(fields[name].default)
        ok = {int: is_int, float: is_number, bool: lambda v: isinstance(v, bool),
              str: lambda v: isinstance(v, str)}.get(kind, lambda v: isinstance(v, SCALARS))(value)
        if not ok:
            raise fail(path, f"model_config.{name}", f"must be of type {kind.__name__}, got {str(value)[:40]!r}")
    try:
        return MODELS[model_type].config(**values)
    except (TypeError, ValueError) as exc:
        raise fail(path, "model_config", f"is invalid: {exc}") from None


def check_model_size(path, config, weights):
    """Refuse, before allocating, a model that would not fit in memory or is far bigger than its weights."""
    params = config.num_params()
    stored = sum(int(np.prod(t.shape)) for t in weights.values())
    itemsize = max([t.data.dtype.itemsize for t in weights.values()] or [4])
    need, memory = params * itemsize, physical_memory()
    if memory and need > memory:
        raise fail(path, "model_config", f"declares a model of {params:,} parameters, which needs {gigabytes(need)} "
                   f"of memory, more than this machine's {gigabytes(memory)}")
    if params > 2 * stored + 4096:
        raise fail(path, "model_config", f"declares a model of {params:,} parameters but the file holds weights for "
                   f"{stored:,}; the checkpoint is inconsistent")


def check_weights(path, field, tensors, diverged_hint=True):
    """A dict of named float Tensors, all finite."""
    if not isinstance(tensors, dict) or not all(isinstance(k, str) for k in tensors):
        raise fail(path, field, "must be a dict of named tensors")
    for name, t in tensors.items():
        if not isinstance(t, tensorlite.Tensor) or t.data.dtype.kind != "f":
            raise fail(path, f"{field}[{name!r}]", f"must be a float tensor, got {type(t).__name__}")
        if not bool(t.xp.isfinite(t.data).all()):
            raise fail(path, field, f"holds weights that are not finite (NaN or infinity) in {name!r}: the run diverged;"
                       " use an earlier checkpoint" if diverged_hint else f"holds non-finite values in {name!r}")


def check_pcg64(path, field, state):
    try:
        np.random.PCG64().state = state
    except (TypeError, ValueError, KeyError, OverflowError):
        raise fail(path, field, "is not a valid random generator state (NumPy PCG64)") from None


def check_rng(path, state):
    if not (isinstance(state, dict) and set(state) == {"seed", "devices"} and is_int(state["seed"])
            and isinstance(state["devices"], dict)):
        raise fail(path, "rng", "must be {'seed': int, 'devices': {device: state}} (tensorlite.get_rng_state())")
    for device, gen_state in state["devices"].items():
        if not DEVICE_NAME.fullmatch(str(device)):
            raise fail(path, "rng", f"names an unknown device {str(device)[:20]!r}")
        check_pcg64(path, f"rng[{device!r}]", gen_state)


def check_training_fields(path, ckpt):
    """The training entries that are present have the types training_state writes (resume needs them all)."""
    for name in ("step", "last_eval_step"):
        if name in ckpt and not (is_int(ckpt[name]) and ckpt[name] >= 0):
            raise fail(path, name, f"must be an integer >= 0, got {str(ckpt[name])[:40]!r}")
    if "best_val_loss" in ckpt and not (is_number(ckpt["best_val_loss"]) and not math.isnan(ckpt["best_val_loss"])):
        raise fail(path, "best_val_loss", f"must be a number, got {str(ckpt['best_val_loss'])[:40]!r}")
    if "train_config" in ckpt:
        config = ckpt["train_config"]
        if not isinstance(config, dict) or not all(isinstance(v, SCALARS) for v in config.values()):
            raise fail(path, "train_config", "must be a dict of numbers, strings, booleans and None")
    if "optimizer" in ckpt:
        opt = ckpt["optimizer"]
        if not (isinstance(opt, dict) and isinstance(opt.get("param_groups"), list)
                and isinstance(opt.get("state"), (list, dict))):
            raise fail(path, "optimizer", "must be an optimizer's state_dict ({'state': ..., 'param_groups': [...]})")
        states = opt["state"].values() if isinstance(opt["state"], dict) else opt["state"]
        for s in states:
            if s is not None and not isinstance(s, dict):
                raise fail(path, "optimizer", "has a parameter state that is not a dict")
            check_weights(path, "optimizer", {k: v for k, v in (s or {}).items()
                                              if isinstance(v, tensorlite.Tensor)}, diverged_hint=True)
    if "rng" in ckpt:
        check_rng(path, ckpt["rng"])
    if "batch_rng" in ckpt:
        check_pcg64(path, "batch_rng", ckpt["batch_rng"])
    if "rank_rng" in ckpt:  # an MPI run's: every rank's generators (rank 0's is "rng")
        if not isinstance(ckpt["rank_rng"], list) or len(ckpt["rank_rng"]) > 1 << 16:
            raise fail(path, "rank_rng", "must be a list of tensorlite.get_rng_state() dicts, one per rank")
        for state in ckpt["rank_rng"]:
            check_rng(path, state)


AMP_KEYS = {"scale": is_number, "growth_factor": is_number, "backoff_factor": is_number,
            "growth_interval": is_int, "_growth_tracker": is_int, "skipped_steps": is_int}


def check_amp(path, amp):
    """The loss scaler's state of a --dtype float16 run: the keys train/precision.py writes, positive and finite
    numbers (a zero or inf scale would turn every gradient into 0 or inf)."""
    if not isinstance(amp, dict) or set(amp) != set(AMP_KEYS):
        raise fail(path, "amp", f"must be a loss scaler's state with keys {sorted(AMP_KEYS)}")
    for key, ok in AMP_KEYS.items():
        value = amp[key]
        if not ok(value) or not math.isfinite(value) or value < (1 if key == "growth_interval" else 0) \
                or (key == "scale" and value <= 0):
            raise fail(path, f"amp.{key}", f"must be a finite number >= 0 of the right kind, got {str(value)[:40]!r}")


def check_tokenizer(path, description, vocab_size):
    """The tokenizer a checkpoint describes, whose vocabulary must be the model's."""
    try:
        tokenizer = tokenizer_from_dict(description)
    except ValueError as exc:
        raise fail(path, "tokenizer", f"is invalid: {exc}") from None
    if vocab_size is not None and tokenizer.vocab_size != vocab_size:
        raise fail(path, "tokenizer", f"has {tokenizer.vocab_size} tokens but the model's vocab_size is {vocab_size}; "
                   "the checkpoint is inconsistent")
    return tokenizer


def check_state_shapes(path, model, weights):
    """The saved weights are exactly the model's: no tensor missing or extra, every shape the same."""
    expected = {k: tuple(t.shape) for k, t in model.state_dict().items()}
    missing = [k for k in expected if k not in weights]
    if missing:
        raise fail(path, "model", f"lacks the tensor(s) {missing[:5]} that its model_config's model has")
    extra = [k for k in weights if k not in expected]
    if extra:
        raise fail(path, "model", f"holds tensor(s) {extra[:5]} that its model_config's model does not have")
    for k, shape in expected.items():
        if tuple(weights[k].shape) != shape:
            raise fail(path, f"model[{k!r}]", f"has shape {tuple(weights[k].shape)} but model_config gives {shape}")


def check_param_groups(path, saved, optimizer):
    """The saved optimizer settings are the ones this optimizer has, of the same types."""
    if len(saved) != len(optimizer.param_groups):
        raise fail(path, "optimizer", f"has {len(saved)} parameter groups, the optimizer {len(optimizer.param_groups)}")
    for i, (group, mine) in enumerate(zip(saved, optimizer.param_groups)):
        # a checkpoint from an older tensorlite may lack settings added since (amsgrad, maximize): those keep
        # this optimizer's values; a key this optimizer does not know, or a missing "params", is damage
        if not isinstance(group, dict) or not set(group) <= set(mine) or "params" not in group:
            raise fail(path, f"optimizer.param_groups[{i}]", f"has keys {sorted(group)[:8] if isinstance(group, dict) else group!r}, "
                       f"expected {sorted(mine)}")
        for key, value in group.items():
            ok = (isinstance(value, list) and all(is_int(x) for x in value) if key == "params"
                  else _same_kind(value, mine[key]))
            if not ok:
                raise fail(path, f"optimizer.param_groups[{i}].{key}", f"has the wrong type: {str(value)[:40]!r}")


def _same_kind(value, reference):
    if isinstance(reference, bool) or reference is None or isinstance(reference, str):
        return type(value) is type(reference)
    if is_number(reference):
        return is_number(value) and math.isfinite(value)
    if isinstance(reference, (list, tuple)):
        return isinstance(value, (list, tuple)) and len(value) == len(reference) and \
            all(_same_kind(v, r) for v, r in zip(value, reference))
    return True
