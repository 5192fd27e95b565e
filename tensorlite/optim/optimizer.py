"""The Optimizer base class: parameter groups, zero_grad, and state for exact resume.

An optimizer holds the parameters in ``param_groups``: a list of dicts, each
with a ``'params'`` list and its own options (``lr``, ``weight_decay``, ...), so
e.g. biases and LayerNorm weights can get ``weight_decay=0``. Per-parameter
buffers (momentum, Adam moments) live in ``state[param]`` and are created lazily
on the first step. ``step()`` changes ``p.data`` in place, under ``no_grad``, and
then bumps the parameters' version counters (``autograd.mark_dirty``), so a graph built
before the step raises in backward instead of using the changed values, as in PyTorch.
"""
import numbers

from .. import backend
from ..dtypes import is_float
from ..tensor import Tensor


class _Required:
    def __repr__(self):
        return "<required parameter>"


required = _Required()  # marks a default the user must give (SGD's lr), as torch.optim.optimizer.required


def hyper(group, name):
    """A hyperparameter as a Python float: NumPy treats Python floats as "weak", so a
    float32 parameter stays float32 (an np.float64 scalar would promote the math)."""
    return float(group[name])


class Optimizer:
    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}  # Tensor -> dict of buffers (Tensors hash by identity)
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of tensors (e.g. model.parameters()), not a single Tensor")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group):
        if not isinstance(group, dict):
            raise TypeError(f"a parameter group must be a dict, got {type(group).__name__}")
        group = dict(group)
        params = group.get("params")
        if params is None:
            raise ValueError("a parameter group needs a 'params' entry")
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("optimizer can't optimize a non-leaf tensor (one computed from others); "
                                 "pass the leaf parameters, e.g. model.parameters()")
            if not is_float(p.dtype):
                raise TypeError(f"optimizer can only optimize floating-point tensors, got dtype {p.dtype}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or any(id(p) in seen for p in params):
            raise ValueError("some parameters appear more than once (in this group or in an earlier one)")
        group["params"] = params
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required option {name!r}")
            group.setdefault(name, default)
        for name, value in group.items():
            if name != "params" and isinstance(value, numbers.Real) and not isinstance(value, bool) and value < 0:
                raise ValueError(f"invalid {name}: {value} (must be >= 0)")
        self.check_group(group)
        self.param_groups.append(group)

    def check_group(self, group):
        """Subclasses check their options here (raise ValueError naming the bad value)."""

    def zero_grad(self, set_to_none=True):
        """Forget the gradients: drop them (default, frees memory) or fill them with zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.data.fill(0)

    def step(self):
        raise NotImplementedError

    def params_with_grad(self, group):
        return [p for p in group["params"] if p.grad is not None]

    def scratch(self, p):
        """A reusable work array shaped like p (one buffer per device and dtype, sized for the largest
        parameter), so a step allocates nothing. Not part of the state: its contents are garbage."""
        buffers = self.__dict__.setdefault("_scratch", {})
        key = (p.device, p.dtype)
        buf = buffers.get(key)
        if buf is None or buf.size < p.data.size:
            n = max(q.data.size for g in self.param_groups for q in g["params"] if (q.device, q.dtype) == key)
            with backend.device_context(p.device):
                buf = buffers[key] = backend.xp_for(p.device).empty(max(n, p.data.size), p.dtype)
        return buf[:p.data.size].reshape(p.shape)

    # ------------------------------------------------------------ checkpoints
    def state_dict(self):
        """Everything needed to resume exactly, referring to parameters by index.

        Like PyTorch: ``{'state': ..., 'param_groups': [{..., 'params': [0, 1, ...]}]}``,
        numbered across groups in order. ``state`` is a list with one entry per
        parameter (``None`` where it has no state yet), so ``sd['state'][i]`` reads
        as in PyTorch and every key is a string that ``tensorlite.save`` can store.
        The buffers are the live ones (no copy); save them or copy them before
        stepping on.
        """
        groups, state, index = [], [], 0
        for group in self.param_groups:
            packed = {k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items() if k != "params"}
            packed["params"] = list(range(index, index + len(group["params"])))
            index += len(group["params"])
            groups.append(packed)
            for p in group["params"]:
                s = self.state.get(p)
                state.append(None if s is None else dict(s))
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore options and buffers; buffers are copied onto each parameter's device and dtype."""
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            raise ValueError("load_state_dict() expects a dict with 'state' and 'param_groups' "
                             "(what optimizer.state_dict() returns)")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups, "
                             f"this optimizer has {len(self.param_groups)}")
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"parameter group {i}: loaded state dict has {len(saved['params'])} parameters, "
                                 f"this optimizer has {len(group['params'])}")
        saved_state = state_dict["state"]
        if isinstance(saved_state, dict):  # PyTorch-style {index: state}, with int or str keys
            saved_state = {int(k): v for k, v in saved_state.items()}
        self.state = {}
        for saved, group in zip(saved_groups, self.param_groups):
            for index, p in zip(saved["params"], group["params"]):
                if isinstance(saved_state, dict):
                    s = saved_state.get(int(index))
                else:
                    s = saved_state[int(index)] if int(index) < len(saved_state) else None
                if s is not None:
                    self.state[p] = {k: _buffer_like(v, p, k) for k, v in s.items()}
            for k, v in saved.items():
                if k != "params":
                    group[k] = tuple(v) if isinstance(self.defaults.get(k), tuple) else v
            self.check_group(group)  # options a state dict lacks (saved before amsgrad...) keep their values

    def __repr__(self):
        """PyTorch's layout: each group's options, sorted by name, one per line."""
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines += ([""] if i else []) + [f"Parameter Group {i}"]
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines + [")"])


def _buffer_like(value, p, name):
    """A saved buffer (Tensor or array) as a fresh Tensor on p's device and dtype; numbers stay numbers."""
    if name == "step":  # a count (PyTorch keeps it as a 0-d float tensor): a Python int here
        return int(float(value))
    if isinstance(value, Tensor):
        value = value.data
    if not hasattr(value, "shape"):
        return value
    if value.shape != p.shape:
        raise ValueError(f"state {name!r} has shape {tuple(value.shape)}, but its parameter has shape {tuple(p.shape)}")
    array = backend.to_device(value, p.device)
    with backend.device_context(p.device):
        array = array.astype(p.dtype, copy=True)
    return Tensor.wrap(array, p.device)
