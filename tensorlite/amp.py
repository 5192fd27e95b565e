"""Mixed precision, as PyTorch's torch.autocast and torch.amp.GradScaler: float16 matrix products with float32
weights, statistics and loss, and dynamic loss scaling.

    scaler = tensorlite.amp.GradScaler()
    with tensorlite.autocast(device_type="cuda", dtype=tensorlite.float16):
        logits, loss = model(x, y)          # matrix products in float16, the loss in float32
    scaler.scale(loss).backward()           # gradients of loss * scale: small ones do not flush to zero
    scaler.step(optimizer)                  # unscale; skip the step if a gradient is inf or NaN
    scaler.update()                         # halve the scale after a skipped step, double it after 2000 good ones

The weights stay float32 (they are the "master" copy, and AdamW's moments are float32 too). Inside autocast
the functions of nn.functional cast their inputs first, as PyTorch's autocast does:
- `lower` (to the autocast dtype): matmul / @, linear, scaled_dot_product_attention, self_attention, bias_act.
  A cast is a Function, so each weight's float16 gradient flows back into its float32 .grad.
- `float32`: softmax, log_softmax, layer_norm, cross_entropy, nll_loss, mse_loss,
  binary_cross_entropy_with_logits: their sums of many terms (means, variances, logsumexp) need float32's range.
- anything else runs in the dtype it is given; a binary op of float16 and float32 gives float32, so the
  residual stream of a GPT stays float32.
Unlike PyTorch, no cast is cached: a weight used twice in one region is cast twice.

tensorlite has no bfloat16: NumPy has no such dtype and CuPy supports none (CuPy 13 and 14), so float16 is
the one lower precision, with loss scaling. On the CPU float16 works (NumPy has it) but is slow, with no
float16 BLAS: it is there so that the whole mechanism is tested without a GPU.
"""
import functools
import threading
import warnings

import numpy as np

from . import backend
from .dtypes import float16, float32

_local = threading.local()  # autocast is per thread, as in PyTorch


def _active():
    """(device type, dtype) of the innermost enabled autocast region of this thread, or None."""
    return getattr(_local, "state", None)


class autocast:
    """Context manager (and decorator) in which nn.functional casts as the module docstring says, for tensors on
    `device_type` ('cuda' or 'cpu'). dtype: float16 (the default on both: there is no bfloat16).
    enabled=False turns autocast off inside an enabled region."""

    def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=None):
        if device_type not in ("cuda", "cpu"):
            raise RuntimeError(f"User specified an unsupported autocast device_type '{device_type}'; "
                               "tensorlite has 'cuda' and 'cpu'")
        self.device_type, self.fast_dtype = device_type, np.dtype(float16 if dtype is None else dtype)
        self.enabled = bool(enabled)
        if self.enabled and self.fast_dtype != np.float16:
            warnings.warn(f"In {device_type} autocast, but the target dtype {self.fast_dtype} is not supported "
                          "(tensorlite autocasts to float16 only). Disabling autocast.", stacklevel=2)
            self.enabled = False

    def __enter__(self):
        self._previous = _active()
        _local.state = (self.device_type, self.fast_dtype) if self.enabled else None
        return self

    def __exit__(self, *exc):
        _local.state = self._previous
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with autocast(self.device_type, self.fast_dtype, self.enabled):
                return fn(*args, **kwargs)
        return wrapped


def is_autocast_enabled(device_type=None):
    state = _active()
    return state is not None and (device_type is None or state[0] == device_type)


def get_autocast_dtype(device_type):
    state = _active()
    return state[1] if state is not None and state[0] == device_type else float16


def _cast(tensors, dtype):
    state = _active()
    if state is None:
        return tensors
    dtype = state[1] if dtype is None else np.dtype(dtype)
    out = []
    for t in tensors:
        if t is not None and t.dtype.kind == "f" and t.dtype != dtype and t.device.split(":")[0] == state[0]:
            t = t.to(dtype)
        out.append(t)
    return out


def lower(*tensors):
    """The floating tensors (None passes) in the autocast dtype inside autocast; unchanged outside it."""
    return _cast(tensors, None)


def full(*tensors):
    """The floating tensors in float32 inside autocast (for statistics and losses); unchanged outside it."""
    return _cast(tensors, float32)


class GradScaler:
    """Dynamic loss scaling, PyTorch's algorithm and API: scale(loss), unscale_(optimizer), step(optimizer),
    update(), get_scale(), state_dict() / load_state_dict().

    The loss is multiplied by the scale (2**16 at first), so that float16 gradients too small for float16
    survive; before the step the gradients are divided by it again. A step whose gradients hold an inf or a
    NaN is skipped (the scale was too large: it is halved); after growth_interval good steps in a row the
    scale doubles. skipped_steps counts the skipped steps (a tensorlite addition). Checking the gradients
    reads one flag back from the device per step, as PyTorch's does."""

    def __init__(self, device="cuda", init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        if enabled and str(device).startswith("cuda") and not backend.cuda_is_available():
            warnings.warn("GradScaler is enabled, but CUDA is not available. Disabling.", stacklevel=2)
            enabled = False
        if not growth_factor > 1.0 or not 0.0 < backoff_factor < 1.0 or int(growth_interval) < 1:
            raise ValueError("GradScaler needs growth_factor > 1, 0 < backoff_factor < 1 and growth_interval >= 1")
        self._enabled = bool(enabled)
        self._scale, self._growth_tracker = float(init_scale), 0
        self._growth_factor, self._backoff_factor = float(growth_factor), float(backoff_factor)
        self._growth_interval = int(growth_interval)
        self._per_optimizer = {}  # id(optimizer) -> {"stage": "unscaled" | "stepped", "found_inf": bool}
        self.skipped_steps = 0

    def is_enabled(self):
        return self._enabled

    def get_scale(self):
        return self._scale if self._enabled else 1.0

    def get_growth_factor(self):
        return self._growth_factor

    def get_backoff_factor(self):
        return self._backoff_factor

    def get_growth_interval(self):
        return self._growth_interval

    def scale(self, outputs):
        """outputs (a Tensor, or lists/tuples of them) times the scale; unchanged when disabled."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        return outputs * self._scale

    def unscale_(self, optimizer):
        """Divide the gradients of `optimizer`'s parameters by the scale, in place, and note whether any is
        inf or NaN (once per optimizer between updates: call it before clip_grad_norm_)."""
        if not self._enabled:
            return
        state = self._per_optimizer.setdefault(id(optimizer), {"stage": None, "found_inf": False})
        if state["stage"] == "unscaled":
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if state["stage"] == "stepped":
            raise RuntimeError("unscale_() is being called after step().")
        inv, flags = 1.0 / self._scale, []
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.data
                xp = backend.get_array_module(g)
                g *= g.dtype.type(inv)
                flags.append(xp.isfinite(g).all())  # stays on the device: one read below, not one per grad
        state["found_inf"] = bool(flags) and not bool(backend.get_array_module(flags[0]).stack(flags).all())
        state["stage"] = "unscaled"

    def step(self, optimizer, *args, **kwargs):
        """optimizer.step() unless the gradients hold inf or NaN (then the step is skipped, returning None)."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        state = self._per_optimizer.get(id(optimizer), {})
        if state.get("stage") == "stepped":
            raise RuntimeError("step() has already been called since the last update().")
        if state.get("stage") != "unscaled":
            self.unscale_(optimizer)
        state = self._per_optimizer[id(optimizer)]
        state["stage"] = "stepped"
        if state["found_inf"]:
            self.skipped_steps += 1
            return None
        return optimizer.step(*args, **kwargs)

    def update(self, new_scale=None):
        """Adjust the scale after a step: new_scale if given, else backoff after an inf/NaN, growth after
        growth_interval good steps in a row."""
        if not self._enabled:
            return
        if new_scale is not None:
            self._scale = float(new_scale.item() if hasattr(new_scale, "item") else new_scale)
        else:
            if not self._per_optimizer:
                raise AssertionError("No inf checks were recorded prior to update.")
            if any(s["found_inf"] for s in self._per_optimizer.values()):
                self._scale *= self._backoff_factor
                self._growth_tracker = 0
            else:
                self._growth_tracker += 1
                if self._growth_tracker == self._growth_interval:
                    self._scale *= self._growth_factor
                    self._growth_tracker = 0
        self._per_optimizer = {}

    def state_dict(self):
        if not self._enabled:
            return {}
        return {"scale": self._scale, "growth_factor": self._growth_factor, "backoff_factor": self._backoff_factor,
                "growth_interval": self._growth_interval, "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state_dict):
        if not self._enabled:
            return
        if not state_dict:
            raise RuntimeError("The source state dict is empty, possibly because it was saved "
                               "from a disabled instance of GradScaler.")
        self._scale = float(state_dict["scale"])
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])
