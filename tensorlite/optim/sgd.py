"""Stochastic gradient descent with momentum, exactly PyTorch's rule.

    d = grad + weight_decay * p                       (L2 penalty folded into the gradient)
    b = d                     on the first step
    b = momentum * b + (1 - dampening) * d            afterwards
    d = d + momentum * b      if nesterov, else  d = b
    p = p - lr * d
"""
from .. import autograd, backend
from ..tensor import Tensor
from .optimizer import Optimizer, hyper, required


class SGD(Optimizer):
    def __init__(self, params, lr=required, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def check_group(self, group):
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"nesterov momentum needs momentum > 0 and dampening = 0, got "
                             f"momentum={group['momentum']}, dampening={group['dampening']}")

    @autograd.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, momentum, wd = hyper(group, "lr"), hyper(group, "momentum"), hyper(group, "weight_decay")
            dampening, nesterov = hyper(group, "dampening"), group["nesterov"]
            for p in self.params_with_grad(group):
                with backend.device_context(p.device):
                    self._update(p, lr, momentum, dampening, wd, nesterov)

    def _update(self, p, lr, momentum, dampening, wd, nesterov):
        d = p.grad.data
        if wd != 0:
            d = p.xp.multiply(p.data, wd, out=self.scratch(p))
            d += p.grad.data
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
