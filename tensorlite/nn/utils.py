"""``nn.utils``, as in PyTorch: gradient clipping (kept in ``tensorlite.optim.clip``, also exported there)."""
from ..optim.clip import clip_grad_norm_, clip_grad_value_

__all__ = ["clip_grad_norm_", "clip_grad_value_"]
