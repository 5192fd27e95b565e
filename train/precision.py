"""--dtype and --tf32: the precision of a training run, and its part of a training step.

--dtype float16 is mixed precision as PyTorch's AMP does it (tensorlite/amp.py): the weights and AdamW's
moments stay float32; the forward runs under autocast (matrix products in float16, layer norm, softmax and
the loss in float32), and a GradScaler scales the loss so that small float16 gradients survive. A step
whose gradients overflow is skipped and the scale halved; the loop reports how many were skipped, and
stops if every step is skipped for a long run (the gradients are not finite at any scale).
--tf32 lets float32 matrix products on CUDA use TF32 tensor cores.
"""
import contextlib

import numpy as np

import tensorlite
from train.errors import TrainingDiverged

DTYPES = ("float32", "float16")
MAX_SKIPPED_IN_A_ROW = 40  # the scale has been halved 40 times (2^16 -> 2^-24): no scale makes them finite


def check_dtype(dtype):
    if dtype == "bfloat16":
        raise ValueError("--dtype bfloat16 is not available: NumPy and CuPy have no bfloat16 (tensorlite runs on "
                         "them); use --dtype float16, which adds loss scaling")
    if dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")


def _overflow_is_expected():
    """float16 overflows to inf now and then: the scaler finds it and skips the step, so NumPy's warnings
    about it (on the CPU) would only alarm."""
    return np.errstate(over="ignore", invalid="ignore")


class Precision:
    """The autocast region and the loss scaler of a run on `device` with --dtype `dtype`."""

    def __init__(self, dtype="float32", device="cpu"):
        check_dtype(dtype)
        self.dtype, self.device_type = dtype, device.split(":")[0]
        self.scaler = tensorlite.amp.GradScaler(self.device_type) if dtype == "float16" else None
        self.skipped_in_a_row = 0

    @property
    def skipped_steps(self):
        return self.scaler.skipped_steps if self.scaler else 0

    def autocast(self):
        """The forward's context: autocast to float16, or nothing."""
        if self.scaler is None:
            return contextlib.nullcontext()
        stack = contextlib.ExitStack()
        stack.enter_context(tensorlite.autocast(self.device_type, dtype=tensorlite.float16))
        stack.enter_context(_overflow_is_expected())
        return stack

    def step(self, model, optimizer, loss, grad_clip=0.0):
        """Backward of `loss`, clipping (on the true, unscaled gradients) and the optimizer's step."""
        self.backward(loss)
        self.update(model, optimizer, grad_clip)

    def backward(self, loss):
        """Add the gradients of `loss` (scaled by the loss scale with float16) to the parameters' .grad."""
        if self.scaler is None:
            loss.backward()
            return
        with _overflow_is_expected():
            self.scaler.scale(loss).backward()

    def update(self, model, optimizer, grad_clip=0.0):
        """Clip the summed gradients (unscaled first) to grad_clip if > 0, and step the optimizer (a float16
        step whose gradients are not finite is skipped, and the scale lowered)."""
        if self.scaler is None:
            if grad_clip > 0:
                tensorlite.optim.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            return
        if grad_clip > 0:
            with _overflow_is_expected():
                self.scaler.unscale_(optimizer)
                tensorlite.optim.clip_grad_norm_(model.parameters(), grad_clip)
        skipped = self.scaler.skipped_steps
        self.scaler.step(optimizer)
        self.scaler.update()
        self.skipped_in_a_row = self.skipped_in_a_row + 1 if self.scaler.skipped_steps > skipped else 0
        if self.skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW:
            raise TrainingDiverged(f"the gradients were inf or NaN in the last {self.skipped_in_a_row} steps at "
                                   f"every loss scale (now {self.scaler.get_scale():.3g}); try a lower "
                                   "--learning_rate, --grad_clip 1.0, or --dtype float32")

    def describe(self):
        """A few words for the run's opening lines and the evaluations: the loss scale and skipped steps."""
        if self.scaler is None:
            return ""
        return f"loss scale {self.scaler.get_scale():g}, {self.skipped_steps} steps skipped (inf/NaN gradients)"

    def state_dict(self):
        if self.scaler is None:
            return {}
        return {**self.scaler.state_dict(), "skipped_steps": self.skipped_steps}

    def load_state_dict(self, state):
        """Restore a checkpoint's scaler (nothing when either run is float32: a new scaler starts over)."""
        if self.scaler is None or not state:
            return
        self.scaler.load_state_dict({k: v for k, v in state.items() if k != "skipped_steps"})
        self.scaler.skipped_steps = int(state.get("skipped_steps", 0))
