"""Cross-entropy of logits against class indices, as one Function."""
import numpy as np

from ... import backend
from ...autograd import Function


class CrossEntropy(Function):
    """Mean (or sum, or per-row) of -log softmax(logits)[target] over rows whose target is not ignored.

    Takes logits (N, C), `targets` (N,) int64 already in range, `valid` (N,) = targets != ignore_index.
    """

    def forward(self, logits):
        xp = backend.get_array_module(logits)
        t, valid = self.targets, self.valid
        shifted = logits - logits.max(axis=1, keepdims=True)
        lse = xp.log(xp.exp(shifted).sum(axis=1))
        picked = xp.take_along_axis(shifted, xp.where(valid, t, 0)[:, None], axis=1)[:, 0]
        losses = xp.where(valid, lse - picked, 0).astype(logits.dtype, copy=False)
        self.shifted, self.lse = shifted, lse
        if self.reduction == "none":
            return losses.reshape(self.out_shape)
        if self.reduction == "sum":
            return losses.sum()
        self.count = valid.sum().astype(logits.dtype)  # stays on the device: no host sync
        with np.errstate(invalid="ignore", divide="ignore"):  # all ignored -> nan, as in PyTorch
            return losses.sum() / self.count

    # d loss_i / d logits_i = softmax(logits_i) - onehot(target_i)   (0 for ignored rows), times g (/ count)
    def backward(self, g):
        xp = backend.get_array_module(g)
        t, valid = self.targets, self.valid
        grad = xp.exp(self.shifted - self.lse[:, None])
        rows = xp.arange(grad.shape[0])
        grad[rows, xp.where(valid, t, 0)] -= 1
        if self.reduction == "none":
            scale = g.reshape(-1) * valid
        else:
            scale = valid * (g if self.reduction == "sum" else g / self.count)
        grad *= scale.astype(grad.dtype, copy=False)[:, None]  # in place: logits can be (B*T, 50304)
        return grad
