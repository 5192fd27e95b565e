"""Stochastic gradient descent with momentum, exactly PyTorch's rule.

    d = -grad if maximize else grad
    d = d + weight_decay * p                          (L2 penalty folded into the gradient)
    b = d                     on the first step
    b = momentum * b + (1 - dampening) * d            afterwards
    d = d + momentum * b      if nesterov, else  d = b
    p = p - lr * d
"""
from .. import autograd, backend
from ..tensor import Tensor
from .optimizer import Optimizer, hyper


class SGD(Optimizer):
    """torch.optim.SGD (lr defaults to 1e-3 as in PyTorch 2.x). ``foreach`` is accepted and ignored."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *,
                 maximize=False, foreach=None):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=bool(nesterov), maximize=bool(maximize)))

    def check_group(self, group):
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"nesterov momentum needs momentum > 0 and dampening = 0, got "
                             f"momentum={group['momentum']}, dampening={group['dampening']}")

    @autograd.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, momentum, wd = hyper(group, "lr"), hyper(group, "momentum"), hyper(group, "weight_decay")
            dampening, nesterov, maximize = hyper(group, "dampening"), group["nesterov"], group["maximize"]
            params = self.params_with_grad(group)
            for p in params:
                with backend.device_context(p.device):
                    self._update(p, lr, momentum, dampening, wd, nesterov, maximize)
            autograd.mark_dirty(*params)  # changed in place: a graph that saved them must not backward

    def _update(self, p, lr, momentum, dampening, wd, nesterov, maximize):
        g = p.grad.data
        d = g
        if wd != 0:                     # d = (-g or g) + wd p, into the scratch buffer
            d = p.xp.multiply(p.data, wd, out=self.scratch(p))
            if maximize:
                d -= g
            else:
                d += g
        elif maximize:
            d = p.xp.negative(g, out=self.scratch(p))
        if momentum != 0:
            state = self.state.setdefault(p, {})
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = Tensor.wrap(d.copy(), p.device)
            else:
                buf.data *= momentum
                buf.data += (1 - dampening) * d
            d = d + momentum * buf.data if nesterov else buf.data
        p.data -= lr * d
