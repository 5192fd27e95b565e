"""AdamW: Adam with decoupled weight decay, exactly PyTorch's update rule.

With gradient g, step t (from 1), and the moments m, v (zeros at first):

    p = p * (1 - lr * weight_decay)                  decay the weight itself, not the gradient
    m = beta1 * m + (1 - beta1) * g                  running mean of g
    v = beta2 * v + (1 - beta2) * g * g              running mean of g^2
    p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

The divisions by 1 - beta^t undo the pull of the zero start towards 0; eps sits
outside the square root of the bias-corrected second moment, as in PyTorch.

Every step runs on each parameter in place. On the CPU that is a few NumPy calls
into one reusable scratch buffer; on a GPU (float32/float64) it is one fused
CuPy kernel per parameter (tensorlite.kernels.adamw) that reads g, p, m, v once
and writes p, m, v once. The array-operation path is the kernel's reference.
"""
import math

from .. import autograd, backend
from ..kernels.adamw import adamw_kernel
from ..tensor import Tensor
from .optimizer import Optimizer, hyper


class AdamW(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, fused=None):
        """fused: None picks the fused kernel on CUDA for float32/float64; False always uses array ops."""
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))
        self.fused = fused

    def check_group(self, group):
        betas = group["betas"]
        if len(betas) != 2 or not all(0.0 <= float(b) < 1.0 for b in betas):
            raise ValueError(f"invalid betas: {betas} (need two values in [0, 1))")
        group["betas"] = tuple(float(b) for b in betas)

    @autograd.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, eps, wd = hyper(group, "lr"), hyper(group, "eps"), hyper(group, "weight_decay")
            beta1, beta2 = (float(b) for b in group["betas"])
            for p in self.params_with_grad(group):
                state = self.state.get(p)
                if state is None:
                    with backend.device_context(p.device):
                        state = self.state[p] = {"step": 0,
                                                 "exp_avg": Tensor.wrap(p.xp.zeros_like(p.data), p.device),
                                                 "exp_avg_sq": Tensor.wrap(p.xp.zeros_like(p.data), p.device)}
                state["step"] += 1
                t = state["step"]  # a Python int: the bias corrections never touch the device
                step_size = lr / (1 - beta1 ** t)
                bc2_sqrt = math.sqrt(1 - beta2 ** t)
                decay = 1 - lr * wd
                g, m, v = p.grad.data, state["exp_avg"].data, state["exp_avg_sq"].data
                with backend.device_context(p.device):
                    if self._use_fused(p):
                        adamw_kernel(p.xp)(g, decay, 1 - beta1, beta2, 1 - beta2, step_size, bc2_sqrt, eps,
                                            p.data, m, v)
                    else:
                        self._update(p, g, m, v, wd, decay, beta1, beta2, step_size, bc2_sqrt, eps)

    def _update(self, p, g, m, v, wd, decay, beta1, beta2, step_size, bc2_sqrt, eps):
        """The same update as the fused kernel, as in-place array operations into one scratch buffer."""
        xp, tmp = p.xp, self.scratch(p)
        if wd != 0:
            p.data *= decay
        xp.subtract(g, m, out=tmp)      # m += (1 - beta1) (g - m)
        tmp *= 1 - beta1
        m += tmp
        xp.multiply(g, g, out=tmp)      # v = beta2 v + (1 - beta2) g^2
        tmp *= 1 - beta2
        v *= beta2
        v += tmp
        xp.sqrt(v, out=tmp)             # denominator sqrt(v) / sqrt(bc2) + eps
        tmp /= bc2_sqrt
        tmp += eps
        xp.divide(m, tmp, out=tmp)
        tmp *= step_size
        p.data -= tmp

    def _use_fused(self, p):
        if p.device == "cpu" or self.fused is False:
            return False
        ok = p.dtype.kind == "f" and p.dtype.itemsize in (4, 8)
        if self.fused and not ok:
            raise TypeError(f"fused AdamW supports float32/float64 parameters, got {p.dtype}")
        return ok

