"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter), exactly PyTorch's update rule.

    p = p * (1 - lr * weight_decay)                  decay the weight itself, not the gradient

then Adam's step (see tensorlite/optim/adam.py for the whole rule, amsgrad and maximize).
The default path (amsgrad and maximize off) is AdamW's training step: on the CPU a few
NumPy calls into one scratch buffer, on a GPU one fused kernel per parameter.
"""
from .adam import Adam


class AdamW(Adam):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, fused=None):
        """fused: None picks the fused kernel on CUDA for float32/float64; False always uses array ops."""
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         foreach=foreach, maximize=maximize, fused=fused, decoupled_weight_decay=True)
