"""The learning-rate scheduler protocol, PyTorch's: what a scheduler does on construction and on step().

- Constructing one records each group's ``initial_lr`` (once) in ``base_lrs`` and already sets the
  learning rate of epoch 0 (``last_epoch`` goes from -1 to 0).
- ``step()`` (after ``optimizer.step()``) adds 1 to ``last_epoch`` and writes ``get_lr()`` into every
  group's ``'lr'``. Most schedules compute it from the group's *current* lr ("chainable", e.g. StepLR
  multiplies by gamma at a boundary), so several schedules can act on one optimizer, as in PyTorch.
- ``step(epoch)`` (deprecated in PyTorch too) jumps to an epoch with the closed form of the schedule.
- ``state_dict()`` is every attribute except the optimizer (numbers, strings and lists:
  ``tensorlite.save`` stores it); ``load_state_dict()`` restores them and the groups' learning rates.
"""
import warnings

from .optimizer import Optimizer


def check_optimizer(optimizer):
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{type(optimizer).__name__} is not an Optimizer: pass the optimizer whose lr to schedule")


def per_group(name, optimizer, value):
    """A value per parameter group: a list/tuple of one per group, or one value for all of them."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(f"expected {len(optimizer.param_groups)} values for {name} (one per parameter group), "
                             f"got {len(value)}")
        return list(value)
    return [value] * len(optimizer.param_groups)


def group_lrs(optimizer):
    return [group["lr"] for group in optimizer.param_groups]


class LRScheduler:
    """Base class: subclasses define ``get_lr()`` (and, where there is one, ``_get_closed_form_lr()``)."""

    def __init__(self, optimizer, last_epoch=-1):
        check_optimizer(optimizer)
        self.optimizer = optimizer
        for i, group in enumerate(optimizer.param_groups):  # remember each group's own lr, as PyTorch does
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] when resuming a schedule "
                               "(last_epoch != -1); load the optimizer's state dict first")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self):
        """The step made by the constructor: it sets the lr of epoch last_epoch + 1 (0 for a new schedule)."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self):
        """The next learning rate of every group (called by step(); read get_last_lr() instead)."""
        raise NotImplementedError(f"{type(self).__name__} must define get_lr()")

    def step(self, epoch=None):
        self._step_count += 1
        if epoch is not None:
            warnings.warn("passing an epoch to scheduler.step() is deprecated (as in PyTorch); call step() "
                          "once per epoch or iteration", UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch=None):
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed_form = getattr(self, "_get_closed_form_lr", None)
            values = closed_form() if closed_form is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = group_lrs(self.optimizer)

    def get_last_lr(self):
        """The learning rates (one per group) set by the last step()."""
        return list(self._last_lr)

    def state_dict(self):
        """Everything but the optimizer: plain numbers and lists, storable by tensorlite.save."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict):
        self.__dict__.update(state_dict)
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr
