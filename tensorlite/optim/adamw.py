"""Adam and AdamW (Adam with decoupled weight decay, Loshchilov & Hutter): exactly PyTorch's update rules.

With gradient g, step t (from 1), and the moments m, v (zeros at first):

    g = -g                                           if maximize (climb the objective instead)
    g = g + weight_decay * p                         Adam: an L2 penalty folded into the gradient
    p = p * (1 - lr * weight_decay)                  AdamW: decay the weight itself, not the gradient
    m = beta1 * m + (1 - beta1) * g                  running mean of g
    v = beta2 * v + (1 - beta2) * g * g              running mean of g^2
    v_max = max(v_max, v)                            if amsgrad: the denominator never shrinks
    p = p - lr / (1 - beta1^t) * m / (sqrt(v or v_max) / sqrt(1 - beta2^t) + eps)

The divisions by 1 - beta^t undo the pull of the zero start towards 0; eps sits
outside the square root of the bias-corrected second moment, as in PyTorch.

Every step runs on each parameter in place. On the CPU that is a few NumPy calls
into one reusable scratch buffer; on a GPU (float32/float64), with TENSORLITE_FUSED=1
or fused=True, it is one fused CuPy kernel (tensorlite.kernels.adamw) that reads g, p, m, v
once and writes p, m, v once, launched ONCE PER PARAMETER GROUP: the group's parameters and
moments become views of flat buffers (optim/flat.py; state_dict unchanged) and its gradients
are packed into one at each step. One launch per group, not a per-element group index: the
hyperparameters stay scalar kernel arguments computed on the host (a per-element index would
need each group's lr on the device, uploaded at every step of a schedule). A group whose
parameters do not step together (some without a gradient, different step counts) takes one
launch per parameter; amsgrad takes the array path. The kernel is off by default until it has
been measured on a GPU. The array-operation path is the kernel's reference. AdamW's default
(no amsgrad, no maximize), the training step, reads the gradient as it is, with no extra array.
"""
import math

from .. import autograd, backend
from ..kernels import fused_by_default
from ..kernels.adamw import adamw_kernel
from ..tensor import Tensor
from .flat import FlatGroup
from .optimizer import Optimizer, hyper


class Adam(Optimizer):
    """torch.optim.Adam: weight_decay is an L2 penalty added to the gradient (decoupled_weight_decay=True
    makes it AdamW). ``foreach`` is accepted for PyTorch's signature and ignored (one loop over parameters)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 foreach=None, maximize=False, fused=None, decoupled_weight_decay=False):
        """fused: True uses the fused kernel on CUDA (float32/float64); None uses it only with TENSORLITE_FUSED=1
        (it has not run on a GPU yet); False always uses array ops."""
        self.decoupled = bool(decoupled_weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=bool(amsgrad), maximize=bool(maximize)))
        self.fused = fused

    def check_group(self, group):
        betas = group["betas"]
        if len(betas) != 2 or not all(0.0 <= float(b) < 1.0 for b in betas):
            raise ValueError(f"invalid betas: {betas} (need two values in [0, 1))")
        group["betas"] = tuple(float(b) for b in betas)

    def new_state(self, p, amsgrad):
        with backend.device_context(p.device):
            zeros = lambda: Tensor.wrap(p.xp.zeros_like(p.data), p.device)
            state = {"step": 0, "exp_avg": zeros(), "exp_avg_sq": zeros()}
            if amsgrad:
                state["max_exp_avg_sq"] = zeros()
        return state

    @autograd.no_grad()
    def step(self):
        for index, group in enumerate(self.param_groups):
            lr, eps, wd = hyper(group, "lr"), hyper(group, "eps"), hyper(group, "weight_decay")
            beta1, beta2 = (float(b) for b in group["betas"])
            amsgrad, maximize = group["amsgrad"], group["maximize"]
            l2 = 0.0 if self.decoupled else wd    # added to the gradient (Adam)
            wd = wd if self.decoupled else 0.0    # applied to the weight (AdamW)
            params = self.params_with_grad(group)
            if not amsgrad and self._flat_ok(group, params):  # the whole group in one launch
                self._flat_step(index, params, lr, wd, l2, beta1, beta2, eps, maximize)
                autograd.mark_dirty(*params)
                continue
            for p in params:
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = self.new_state(p, amsgrad)
                elif amsgrad and "max_exp_avg_sq" not in state:  # amsgrad switched on mid-run: track from now
                    with backend.device_context(p.device):
                        state["max_exp_avg_sq"] = Tensor.wrap(p.xp.zeros_like(p.data), p.device)
                state["step"] += 1
                t = state["step"]  # a Python int: the bias corrections never touch the device
                step_size = lr / (1 - beta1 ** t)
                bc2_sqrt = math.sqrt(1 - beta2 ** t)
                decay = 1 - lr * wd
                g, m, v = p.grad.data, state["exp_avg"].data, state["exp_avg_sq"].data
                vmax = state["max_exp_avg_sq"].data if amsgrad else None
                with backend.device_context(p.device):
                    if maximize or l2 != 0:
                        g = self._effective_grad(p, g, maximize, l2)
                    if vmax is None and self._use_fused(p):
                        adamw_kernel(p.xp)(g, decay, 1 - beta1, beta2, 1 - beta2, step_size, bc2_sqrt, eps,
                                            p.data, m, v)
                    else:
                        self._update(p, g, m, v, wd, decay, beta1, beta2, step_size, bc2_sqrt, eps, vmax)
            autograd.mark_dirty(*params)  # changed in place: a graph that saved them must not backward

    @staticmethod
    def _effective_grad(p, g, maximize, l2):
        """-g if maximize, plus l2 * p (Adam's weight decay): a new array, p.grad stays as it is."""
        xp = p.xp
        if l2 == 0:
            return xp.negative(g)
        d = xp.multiply(p.data, l2)
        if maximize:
            d -= g
        else:
            d += g
        return d

    def _update(self, p, g, m, v, wd, decay, beta1, beta2, step_size, bc2_sqrt, eps, vmax=None):
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
        if vmax is not None:            # amsgrad: the largest v so far
            xp.maximum(vmax, v, out=vmax)
            v = vmax
        xp.sqrt(v, out=tmp)             # denominator sqrt(v) / sqrt(bc2) + eps
        tmp /= bc2_sqrt
        tmp += eps
        xp.divide(m, tmp, out=tmp)
        tmp *= step_size
        p.data -= tmp

    def _flat_ok(self, group, params):
        """The flat path applies when the fused kernel does and the group steps as one: every parameter has
        a gradient, one device, one dtype, one step count (the usual training step)."""
        if not params or len(params) != len(group["params"]) or not all(self._use_fused(p) for p in params):
            return False
        steps = {self.state[p]["step"] if p in self.state else 0 for p in params}
        return len(steps) == 1 and len({(p.device, p.dtype) for p in params}) == 1

    def _flat_step(self, index, params, lr, wd, l2, beta1, beta2, eps, maximize):
        """Group `index`'s update as one kernel launch on flat buffers (FlatGroup): the parameters and moments
        are views of them, the gradients are packed into one. A group that changed is packed again."""
        states = []
        for p in params:
            if self.state.get(p) is None:
                self.state[p] = self.new_state(p, False)
            states.append(self.state[p])
        flats = self.__dict__.setdefault("_flat", {})  # not state: rebuilt from the parameters when missing
        flat = flats.get(index)
        if flat is None or not flat.holds(params, states):
            flat = flats[index] = FlatGroup(params, states)
        for state in states:
            state["step"] += 1
        t = states[0]["step"]
        xp, m, v = params[0].xp, flat.moments[0], flat.moments[1]
        with backend.device_context(params[0].device):
            g = flat.gather_grads(params)
            if maximize:
                xp.negative(g, out=g)
            if l2 != 0:
                g += xp.multiply(flat.p, l2)
            adamw_kernel(xp)(g, 1 - lr * wd, 1 - beta1, beta2, 1 - beta2, lr / (1 - beta1 ** t),
                             math.sqrt(1 - beta2 ** t), eps, flat.p, m, v)

    def _use_fused(self, p):
        if p.device == "cpu" or self.fused is False or (self.fused is None and not fused_by_default()):
            return False
        ok = p.dtype.kind == "f" and p.dtype.itemsize in (4, 8)
        if self.fused and not ok:
            raise TypeError(f"fused {type(self).__name__} supports float32/float64 parameters, got {p.dtype}")
        return ok


class AdamW(Adam):
    """torch.optim.AdamW: Adam with p = p * (1 - lr * weight_decay) before the step (weight_decay 1e-2)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, fused=None):
        """fused: True uses the fused kernel on CUDA (float32/float64); None uses it only with TENSORLITE_FUSED=1
        (it has not run on a GPU yet); False always uses array ops."""
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         foreach=foreach, maximize=maximize, fused=fused, decoupled_weight_decay=True)
