"""What each precision mode of a timed training step means, in both libraries (compare_torch --dtype,
peak_memory --dtype): the one place that decides it.

* float32, float64: weights, activations and optimizer in that dtype; no flags.
* tf32: float32 weights and data, and float32 matrix products may run on TF32 tensor cores (10-bit
  mantissa inputs, float32 sums). PyTorch: torch.backends.cuda.matmul.allow_tf32 and
  torch.backends.cudnn.allow_tf32; tensorlite: tensorlite.backends.cuda.matmul.allow_tf32. On a CPU
  the flags change nothing.
* float16: mixed precision, the same code in both. Weights and AdamW stay float32; the forward runs
  under autocast(float16); the loss is multiplied by a GradScaler's scale before backward so that
  small float16 gradients do not flush to zero, and scaler.step skips a step whose gradients overflowed:

      with torch.autocast(device_type="cuda", dtype=torch.float16):
          logits, loss = model(x, y)
      scaler.scale(loss).backward(); scaler.step(opt); scaler.update()

  tensorlite spells it tensorlite.autocast and tensorlite.amp.GradScaler.

A mode whose tensorlite API is not there (an older tensorlite) is "unavailable": `tensorlite_missing`
says why, and the benchmarks record that instead of failing.
"""
import contextlib
import importlib

import tensorlite
from tensorlite import backend

from .torch_gpt import torch
from .train_step import train_step

MODES = ("float32", "float64", "tf32", "float16")


def param_dtype(mode):
    """The dtype the weights are built in: only float64 differs from float32 (mixed precision keeps
    float32 master weights)."""
    return "float64" if mode == "float64" else "float32"


def _device_type(device):
    return "cpu" if device == "cpu" else "cuda"


def _tensorlite_amp():
    amp = getattr(tensorlite, "amp", None)
    if amp is None:
        try:
            amp = importlib.import_module("tensorlite.amp")
        except ImportError:
            return None
    return amp


def _tensorlite_matmul_flags():
    """tensorlite.backends.cuda.matmul, the object that holds allow_tf32, or None."""
    flags = getattr(getattr(tensorlite.backends, "cuda", None), "matmul", None)
    return flags if flags is not None and hasattr(flags, "allow_tf32") else None


def tensorlite_missing(mode, device):
    """None if this tensorlite has what `mode` needs on `device`, else a sentence saying what is missing."""
    if mode == "tf32" and _tensorlite_matmul_flags() is None:
        return "this tensorlite has no tensorlite.backends.cuda.matmul.allow_tf32"
    if mode == "float16":
        if not callable(getattr(tensorlite, "autocast", None)):
            return "this tensorlite has no tensorlite.autocast"
        if not hasattr(_tensorlite_amp(), "GradScaler"):
            return "this tensorlite has no tensorlite.amp.GradScaler"
        try:  # an autocast may refuse a device or a dtype as it is entered (PyTorch's CPU autocast once did)
            with tensorlite.autocast(device_type=_device_type(device), dtype=tensorlite.float16):
                pass
        except (RuntimeError, ValueError, TypeError, NotImplementedError) as exc:
            return f"tensorlite.autocast refuses float16 on {_device_type(device)}: {exc}"
    return None


@contextlib.contextmanager
def flags(mode):
    """TF32 on in both libraries for the tf32 mode (each flag put back afterwards); nothing otherwise."""
    if mode != "tf32":
        yield
        return
    tl_flags = _tensorlite_matmul_flags()
    saved = (tl_flags.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    tl_flags.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        tl_flags.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def tensorlite_step(s, mode):
    """A function running one training step of the train_step.Setup `s` in `mode` and waiting for the
    device, so that its time is the step's."""
    if mode != "float16":
        return lambda: train_step(s)
    scaler = _tensorlite_amp().GradScaler()

    def step():
        with tensorlite.autocast(device_type=_device_type(s.device), dtype=tensorlite.float16):
            _, loss = s.model(s.x, s.y)
        s.optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(s.optimizer)  # unscales the gradients first; skips the step if any is inf or nan
        scaler.update()
        backend.synchronize(s.device)
        return loss
    return step


def torch_step(model, optimizer, x, y, device, mode):
    """The same for the PyTorch twin: eager mode, the model's own scaled_dot_product_attention."""
    device_type = _device_type(device)
    scaler = torch.amp.GradScaler(device_type) if mode == "float16" else None

    def step():
        with torch.autocast(device_type=device_type, dtype=torch.float16, enabled=scaler is not None):
            _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        if scaler:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if device != "cpu":
            torch.cuda.synchronize(device)
        return loss
    return step
