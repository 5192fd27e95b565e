"""Numerical gradient check: compare backward() with central finite differences.

For a function f of tensors, pick a random cotangent v of f's output shape and
look at the scalar L = sum(f(x) * v). backward() gives dL/dx; the central
difference (L(x + eps e_i) - L(x - eps e_i)) / (2 eps) approximates each
component with error O(eps^2). Work in float64: with eps = 1e-6 the rounding
error of float64 (~1e-16 / 1e-6) stays far below the tolerance, while float32
would drown the derivative in noise.
"""
import numpy as np

from . import backend
from .autograd import enable_grad, no_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    pass


def _float_outputs(out):
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o for o in outs if isinstance(o, Tensor) and np.dtype(o.dtype).kind == "f"]


def gradcheck(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """True if every input that requires grad gets the gradient finite differences predict.

    Raises GradcheckError naming the input, the element index, and the analytic and
    numeric values of the worst mismatch. Inputs must be float64 tensors.
    """
    wrt = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not wrt:
        raise ValueError("gradcheck: no input requires grad")
    for i in wrt:
        if inputs[i].dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} is {inputs[i].dtype.name}; use float64 tensors "
                            "(finite differences in float32 are too noisy to check anything)")
    for i in wrt:
        if not inputs[i].data.flags.c_contiguous:  # (ascontiguousarray would also turn a 0-d array into 1-d)
            inputs[i].data = backend.xp_for(inputs[i].device).ascontiguousarray(inputs[i].data)
    saved_grads = [t.grad for t in inputs if isinstance(t, Tensor)]
    with enable_grad():  # a check called inside no_grad() still needs the graph
        outputs = _float_outputs(fn(*inputs))
    if not any(o.requires_grad for o in outputs):
        raise GradcheckError("gradcheck: the function returned no tensor that requires grad")
    rng = np.random.default_rng(seed)
    cotangents = [backend.to_device(rng.standard_normal(o.shape), o.device) for o in outputs]

    def objective():
        with no_grad():
            outs = _float_outputs(fn(*inputs))
            return float(sum(float((o.data * v).sum()) for o, v in zip(outs, cotangents)))

    # analytic: d sum(out * v) / dx is backward with gradient v, accumulated over the outputs
    for i in wrt:
        inputs[i].grad = None
    for o, v in zip(outputs, cotangents):
        if o.requires_grad:
            o.backward(gradient=v, retain_graph=True)
    analytic_grads = {}
    for i in wrt:
        g = inputs[i].grad
        analytic_grads[i] = np.zeros(inputs[i].shape) if g is None else backend.to_numpy(g.data)
    for t, g in zip([t for t in inputs if isinstance(t, Tensor)], saved_grads):
        t.grad = g  # leave the caller's .grad as it was

    worst = None
    for i in wrt:
        x = inputs[i]
        analytic = analytic_grads[i]
        numeric = np.zeros(x.shape)
        flat = x.data.reshape(-1)  # a view: perturbing it perturbs x
        for k in range(flat.size):
            orig = flat[k].item()
            flat[k] = orig + eps
            plus = objective()
            flat[k] = orig - eps
            minus = objective()
            flat[k] = orig
            numeric.reshape(-1)[k] = (plus - minus) / (2 * eps)
        err = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        if err.size and err.max() > 0:
            k = int(err.argmax())
            if worst is None or err.reshape(-1)[k] > worst[0]:
                worst = (err.reshape(-1)[k], i, np.unravel_index(k, x.shape), analytic.reshape(-1)[k],
                         numeric.reshape(-1)[k])
    if worst is not None:
        _, i, idx, a, n = worst
        raise GradcheckError(f"gradcheck failed for input {i} (shape {tuple(inputs[i].shape)}) at index {tuple(map(int, idx))}: "
                             f"analytic {a:.10g}, numeric {n:.10g} (atol={atol}, rtol={rtol})")
    return True
