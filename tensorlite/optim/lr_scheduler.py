"""Learning-rate schedules: they set ``group['lr']`` of an optimizer, one call of step() per iteration.

PyTorch's schedules, with its names, arguments, step() protocol and numbers (scheduler_base.py,
schedulers.py, schedulers_composite.py): LambdaLR, MultiplicativeLR, StepLR, MultiStepLR, ConstantLR,
LinearLR, ExponentialLR, PolynomialLR, CosineAnnealingLR, OneCycleLR, SequentialLR, ChainedScheduler,
ReduceLROnPlateau. Here also tensorlite's own WarmupCosine (and warmup_cosine_lr), which our training
loop uses, and Constant (a factor for the first total_iters steps; ConstantLR with other defaults).

As in PyTorch, making a scheduler already sets the learning rate of iteration 0,
and ``scheduler.step()`` goes after ``optimizer.step()``:

    sched = WarmupCosine(opt, warmup_iters=100, max_iters=5000, min_lr=6e-5)
    for it in range(max_iters):
        loss.backward(); opt.step(); opt.zero_grad(); sched.step()

``warmup_cosine_lr`` is the same schedule as a plain function of the step, for
loops that set the learning rate themselves.
"""
import math
import numbers

from .scheduler_base import LRScheduler
from .schedulers import (ConstantLR, CosineAnnealingLR, ExponentialLR, LambdaLR, LinearLR, MultiplicativeLR,
                         MultiStepLR, PolynomialLR, StepLR)
from .schedulers_composite import ChainedScheduler, OneCycleLR, ReduceLROnPlateau, SequentialLR

__all__ = ["LRScheduler", "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR",
           "ExponentialLR", "PolynomialLR", "CosineAnnealingLR", "OneCycleLR", "SequentialLR", "ChainedScheduler",
           "ReduceLROnPlateau", "WarmupCosine", "Constant", "ClosedFormLR", "warmup_cosine_lr"]


def warmup_cosine_lr(step, base_lr, warmup_iters, max_iters, min_lr=0.0):
    """Linear warmup from 0 to base_lr over warmup_iters steps, then a half cosine down to
    min_lr at max_iters, and min_lr after that.

        step < warmup_iters:               base_lr * step / warmup_iters
        warmup_iters <= step < max_iters:  min_lr + (base_lr - min_lr) * (1 + cos(pi * r)) / 2,
                                           r = (step - warmup_iters) / (max_iters - warmup_iters)
        step >= max_iters:                 min_lr
    """
    if warmup_iters < 0 or max_iters < warmup_iters:
        raise ValueError(f"need 0 <= warmup_iters <= max_iters, got warmup_iters={warmup_iters}, max_iters={max_iters}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step < warmup_iters:
        return base_lr * step / warmup_iters
    if step >= max_iters:
        return min_lr
    ratio = (step - warmup_iters) / (max_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (base_lr - min_lr)


class ClosedFormLR(LRScheduler):
    """A schedule given as a formula of the step: subclasses define ``lr_at(step, base_lr)``."""

    def lr_at(self, step, base_lr):
        raise NotImplementedError

    def get_lr(self):
        return [self.lr_at(self.last_epoch, base) for base in self.base_lrs]

    def _get_closed_form_lr(self):
        return self.get_lr()


class Constant(ClosedFormLR):
    """lr = base_lr * factor for the first total_iters steps, then base_lr (PyTorch's ConstantLR).

    With the defaults (factor=1, total_iters=0) the learning rate simply stays at base_lr.
    """

    def __init__(self, optimizer, factor=1.0, total_iters=0, last_epoch=-1):
        if not isinstance(factor, numbers.Real) or factor < 0:
            raise ValueError(f"factor must be a number >= 0, got {factor!r}")
        if not isinstance(total_iters, numbers.Integral) or total_iters < 0:
            raise ValueError(f"total_iters must be an integer >= 0, got {total_iters!r}")
        self.factor, self.total_iters = float(factor), int(total_iters)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step, base_lr):
        return base_lr * self.factor if step < self.total_iters else base_lr


class WarmupCosine(ClosedFormLR):
    """Linear warmup then cosine decay to min_lr at max_iters (see warmup_cosine_lr); flat after."""

    def __init__(self, optimizer, warmup_iters, max_iters, min_lr=0.0, last_epoch=-1):
        for name, value in (("warmup_iters", warmup_iters), ("max_iters", max_iters)):
            if not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if max_iters < warmup_iters:
            raise ValueError(f"max_iters ({max_iters}) must be >= warmup_iters ({warmup_iters})")
        if not isinstance(min_lr, numbers.Real) or min_lr < 0:
            raise ValueError(f"min_lr must be a number >= 0, got {min_lr!r}")
        self.warmup_iters, self.max_iters, self.min_lr = int(warmup_iters), int(max_iters), float(min_lr)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step, base_lr):
        return warmup_cosine_lr(step, base_lr, self.warmup_iters, self.max_iters, self.min_lr)
