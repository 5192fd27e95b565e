"""Losses as one Function each: cross-entropy and NLL on class indices, binary cross-entropy on logits."""
import numpy as np

from ... import backend, kernels
from ...autograd import Function
from ...kernels.cross_entropy import cross_entropy_backward, cross_entropy_forward
from ...kernels.rows import compute_dtype


def _reduce(fn, losses, denom, dtype):
    """losses (N,) -> 'none': reshaped to fn.out_shape, 'sum', or 'mean' = sum / denom (nan when denom is 0,
    as in PyTorch), computed in the losses' dtype (float32 for float16 logits) and returned in `dtype`.
    Keeps the denominator on the device (no host sync)."""
    if fn.reduction == "none":
        return losses.reshape(fn.out_shape).astype(dtype, copy=False)
    if fn.reduction == "sum":
        return losses.sum().astype(dtype, copy=False)
    fn.denom = denom.astype(losses.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (losses.sum() / fn.denom).astype(dtype, copy=False)


def _row_scale(fn, g, valid, xp):
    """The gradient factor of each row: g (per row for 'none'), / denom for 'mean'; 0 on ignored rows.

    With reduction='mean' and every row ignored the loss is nan (0 / 0) but the gradient is 0, as in
    PyTorch: the zero denominator is replaced by 1 here, so one all-padding batch does not turn every
    parameter into nan."""
    if fn.reduction == "none":
        return g.reshape(-1) * valid
    if fn.reduction == "sum":
        return valid * g
    return valid * (g / xp.where(fn.denom == 0, xp.ones((), fn.denom.dtype), fn.denom))


class CrossEntropy(Function):
    """Cross-entropy of logits (N, C) against class indices, optionally weighted and label-smoothed.

    Takes `targets` (N,) int64 already in range, `valid` (N,) = targets != ignore_index, `weight` (C,) array
    or None, `smoothing` in [0, 1]. Row loss, with logp = log_softmax(logits), w = weight (ones if None):
        l_i = (1 - eps) * w[t_i] * -logp[i, t_i]  +  eps / C * sum_c w_c * -logp[i, c]     (0 if ignored)
    'mean' divides the sum by sum of w[t_i] over counted rows (the row count without weights).
    float16 logits are computed in float32 (logsumexp, losses and their sum); the results are rounded back.
    On CUDA with TENSORLITE_FUSED=1 and neither weights nor smoothing (a language model's case), forward and
    backward are the kernels of tensorlite.kernels.cross_entropy, which keep the logits and lse per row.
    """
    saves_inputs = False  # backward reads its own exp(shifted logits) and row sums, not the input

    def forward(self, logits):
        xp = backend.get_array_module(logits)
        t, valid, w, eps = self.targets, self.valid, self.weight, self.smoothing
        tv = xp.where(valid, t, 0)
        self.kernel = w is None and not eps and kernels.use_fused(logits)
        if self.kernel:
            self.saves_inputs = True  # backward recomputes the softmax from the logits
            self.logits, self.tv = xp.ascontiguousarray(logits), tv
            losses, self.lse = cross_entropy_forward(xp, self.logits, tv, valid)
            return _reduce(self, losses, valid.sum(), logits.dtype)
        dtype, logits = logits.dtype, logits.astype(compute_dtype(logits.dtype), copy=False)
        w = None if w is None else w.astype(logits.dtype, copy=False)
        shifted = logits - logits.max(axis=1, keepdims=True)
        # e = exp(shifted) is kept: backward's softmax is e / its row sum, one pass (not a subtraction and exp)
        self.e = e = xp.exp(shifted)
        self.total = e @ xp.ones(e.shape[1], dtype=e.dtype)  # row sums as a BLAS product
        lse = xp.log(self.total)
        picked = xp.take_along_axis(shifted, tv[:, None], axis=1)[:, 0]
        nll = lse - picked  # -logp[i, t_i]
        self.lse, self.tv = lse, tv
        if w is None:
            if eps:  # sum_c -logp[i, c] = C lse - sum_c shifted
                nll = (1 - eps) * nll + eps / logits.shape[1] * (logits.shape[1] * lse - shifted.sum(axis=1))
            denom = valid.sum()
        else:
            wt = w[tv] * valid
            nll = nll * wt
            if eps:
                smooth = w.sum() * lse - shifted @ w
                nll = (1 - eps) * nll + eps / logits.shape[1] * smooth
            denom = wt.sum()
        losses = xp.where(valid, nll, 0).astype(logits.dtype, copy=False)
        return _reduce(self, losses, denom, dtype)

    # d l_i / d logits_ij = ((1 - eps) w[t_i] + eps W / C) softmax_ij - (1 - eps) w[t_i] [j = t_i] - eps w_j / C
    # (W = sum of w; without weights w = 1), times the row's scale (g, / denom, 0 for ignored rows)
    def backward(self, g):
        xp = backend.get_array_module(g)
        w, eps, tv = self.weight, self.smoothing, self.tv
        if self.kernel:
            scale = _row_scale(self, g, self.valid, xp).astype(np.float32, copy=False)
            return cross_entropy_backward(xp, self.logits, self.lse, tv, scale)
        n, c = self.e.shape
        grad = self.e * (1 / self.total)[:, None]  # softmax
        rows = xp.arange(n)
        if w is None:
            grad[rows, tv] -= 1 - eps
            if eps:
                grad -= eps / c
            scale = _row_scale(self, g, self.valid, xp)
        else:
            wt = w[tv]
            if eps:
                grad *= ((1 - eps) * wt + eps * w.sum() / c)[:, None]
                grad -= (eps / c) * w
            else:
                grad *= wt[:, None]
            grad[rows, tv] -= (1 - eps) * wt
            scale = _row_scale(self, g, self.valid, xp)
        grad *= scale.astype(grad.dtype, copy=False)[:, None]  # in place: logits can be (B*T, 50304)
        return grad.astype(g.dtype, copy=False)


class NLLLoss(Function):
    """-w[t_i] * logp[i, t_i] on log-probabilities (N, C); `targets`, `valid`, `weight` as for CrossEntropy."""
    saves_inputs = False  # backward needs only the targets and the shape

    def forward(self, logp):
        xp = backend.get_array_module(logp)
        self.tv, self.shape = xp.where(self.valid, self.targets, 0), logp.shape
        wt = self.valid.astype(logp.dtype) if self.weight is None else self.weight[self.tv] * self.valid
        self.wt = wt
        losses = -xp.take_along_axis(logp, self.tv[:, None], axis=1)[:, 0] * wt
        return _reduce(self, losses.astype(logp.dtype, copy=False), wt.sum(), logp.dtype)

    # d l_i / d logp_ij = -w[t_i] where j = t_i, else 0
    def backward(self, g):
        xp = backend.get_array_module(g)
        grad = xp.zeros(self.shape, dtype=g.dtype)
        scale = _row_scale(self, g, xp.ones((), g.dtype), xp) * self.wt
        grad[xp.arange(self.shape[0]), self.tv] = -scale
        return grad


class BCEWithLogits(Function):
    """Binary cross-entropy of logits x against targets y of the same shape, elementwise, stable for any x:
        l = (1 - y) x + (1 + (pw - 1) y) softplus(-x),    softplus(-x) = max(-x, 0) + log1p(exp(-|x|))
    times `weight` (array or None); `pos_weight` pw (array or None) weighs the positive term."""
    saves_inputs = True

    def forward(self, x, y):
        xp = backend.get_array_module(x)
        sp = xp.maximum(-x, 0) + xp.log1p(xp.exp(-xp.abs(x)))  # softplus(-x) = -log sigmoid(x)
        coef = 1 if self.pos_weight is None else 1 + (self.pos_weight - 1) * y
        out = (1 - y) * x + coef * sp
        if self.weight is not None:
            out = out * self.weight
        self.sp = sp
        return out.astype(x.dtype, copy=False)

    # dl/dx = (1 - y) - coef * sigmoid(-x);  dl/dy = -x + (pw - 1) softplus(-x)   (times weight)
    def backward(self, g):
        xp = backend.get_array_module(g)
        x, y = self.inputs[0].data, self.inputs[1].data
        if self.weight is not None:
            g = g * self.weight
        pw = self.pos_weight
        dx = dy = None
        if self.needs_input_grad[0]:
            coef = 1 if pw is None else 1 + (pw - 1) * y
            dx = (g * ((1 - y) - coef * xp.exp(-self.sp - x))).astype(x.dtype, copy=False)  # sigmoid(-x)
        if self.needs_input_grad[1]:
            dy = g * (-x if pw is None else -x + (pw - 1) * self.sp)
            dy = dy.astype(y.dtype, copy=False)
        return dx, dy

