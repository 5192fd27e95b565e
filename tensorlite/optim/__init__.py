"""Optimizers, learning-rate schedules and gradient clipping, shaped like torch.optim."""
from . import lr_scheduler
from .adamw import Adam, AdamW
from .clip import clip_grad_norm_, clip_grad_value_
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "clip_grad_norm_", "clip_grad_value_", "lr_scheduler"]
