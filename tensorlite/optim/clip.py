"""Gradient clipping, computed on the device: no value comes back to the host."""
import math

from .. import autograd, backend
from ..tensor import Tensor


def _grads(parameters, fname):
    """The parameters as a list, and the gradients that exist (all on one device)."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    params = list(parameters)
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"{fname}: expected tensors (e.g. model.parameters()), got {type(p).__name__}")
    grads = [p.grad.data for p in params if p.grad is not None]
    devices = {backend.device_of(g) for g in grads}
    if len(devices) > 1:
        raise RuntimeError(f"{fname}: gradients are on several devices {sorted(devices)}; "
                           "clip each device's parameters separately")
    return params, grads


@autograd.no_grad()
def clip_grad_norm_(parameters, max_norm, norm_type=2.0):
    """Scale all gradients together so that their joint norm is at most max_norm.

    The norm is taken over all gradients as if they were one long vector
    (norm_type 2 by default, or any p >= 1, or inf); every gradient is multiplied
    by min(1, max_norm / (norm + 1e-6)). Returns the norm before clipping as a
    0-d Tensor on the gradients' device (call .item() only when you log it).
    """
    max_norm, norm_type = float(max_norm), float(norm_type)
    if max_norm < 0 or math.isnan(max_norm):
        raise ValueError(f"max_norm must be >= 0, got {max_norm}")
    if not (norm_type >= 1 or norm_type == math.inf):
        raise ValueError(f"norm_type must be >= 1 or inf, got {norm_type}")
    params, grads = _grads(parameters, "clip_grad_norm_")
    if not grads:
        device = params[0].device if params else "cpu"
        with backend.device_context(device):
            return Tensor.wrap(backend.xp_for(device).zeros((), "float32"), device)
    xp = backend.get_array_module(grads[0])
    device = backend.device_of(grads[0])
    dtype = grads[0].dtype
    with backend.device_context(device):
        if norm_type == math.inf:
            total = xp.max(xp.stack([xp.abs(g).max() if g.size else xp.zeros((), dtype) for g in grads]))
        elif norm_type == 2.0:
            # vdot: sum of squares without a temporary the size of the gradient
            total = xp.sqrt(xp.sum(xp.stack([xp.asarray(xp.vdot(g.ravel(), g.ravel())).astype(dtype) for g in grads])))
        else:
            parts = [xp.sum(xp.abs(g) ** norm_type) for g in grads]
            total = xp.sum(xp.stack([xp.asarray(s).astype(dtype) for s in parts])) ** (1.0 / norm_type)
        total = xp.asarray(total, dtype=dtype)
        coef = xp.minimum(max_norm / (total + 1e-6), 1.0)
        for g in grads:
            g *= coef.astype(g.dtype, copy=False)
    return Tensor.wrap(total, device)


@autograd.no_grad()
def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient element into [-clip_value, clip_value], in place."""
    clip_value = float(clip_value)
    if clip_value < 0:
        raise ValueError(f"clip_value must be >= 0, got {clip_value}")
    for g in _grads(parameters, "clip_grad_value_")[1]:
        backend.get_array_module(g).clip(g, -clip_value, clip_value, out=g)
