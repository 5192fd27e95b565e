"""Loss functions of ``nn.functional``, with PyTorch's arguments and semantics.

The class dimension is dim 1 for inputs of two or more dimensions, as in PyTorch: logits (N, C) with
targets (N,), or (N, C, d1, ...) with targets (N, d1, ...); an unbatched (C,) takes a 0-d target.
Language models call cross_entropy with (B*T, C) logits and (B*T,) targets: that case runs one fused
Function on the logits as they are (no copy). Other layouts move the class dim last first.
"""
import numpy as np

from .. import amp, backend
from ..ops.softmax import LogSoftmax
from ..tensor import Tensor
from .arguments import check_reduction, check_same_device, check_same_dtype, check_tensor, index_array, reduce_loss
from .fused.loss import BCEWithLogits, CrossEntropy, NLLLoss


def legacy_reduction(size_average, reduce, reduction):
    """PyTorch's deprecated size_average / reduce flags, translated to a reduction (as PyTorch does)."""
    if size_average is None and reduce is None:
        return reduction
    if reduce is False:
        return "none"
    return "sum" if size_average is False else "mean"


def _class_weight(weight, input, c, fname):
    """The per-class weight as an array (or None), after PyTorch's checks."""
    if weight is None:
        return None
    check_tensor(weight, "weight", fname)
    if weight.shape != (c,):
        raise RuntimeError(f"{fname}(): weight tensor should be defined either for all {c} classes or no classes "
                           f"but got weight tensor of shape: {list(weight.shape)}")
    check_same_dtype(fname, input=input, weight=weight)
    check_same_device(fname, input=input, weight=weight)
    return weight.data


def _class_rows(input, target, ignore_index, fname):
    """input with classes on dim 1 (or dim 0 when 1-D) as (rows, C), and the targets as one int64 array per
    row: (rows2d, targets, valid, out_shape, C). (N, C) is returned as it is; other layouts are copied."""
    if input.ndim == 0:
        raise RuntimeError(f"{fname}(): input must have a class dimension, got a 0-d tensor")
    c = input.shape[0] if input.ndim == 1 else input.shape[1]
    t = index_array(target, input, fname, "target", "input")
    expected = () if input.ndim == 1 else (input.shape[0],) + input.shape[2:]
    if tuple(t.shape) != expected:
        if input.ndim >= 2 and t.ndim >= 1 and t.shape[0] != input.shape[0]:
            raise ValueError(f"{fname}(): Expected input batch_size ({input.shape[0]}) to match target batch_size "
                             f"({t.shape[0]}); targets hold one class index per row")
        raise RuntimeError(f"{fname}(): Expected target size {list(expected)}, got {list(t.shape)} "
                           f"(the class dimension of input {list(input.shape)} is dim {min(1, input.ndim - 1)})")
    if input.ndim == 2:
        rows = input
    elif input.ndim == 1:
        rows = input.reshape(1, c)
    else:  # (N, C, d1, ...) -> (N, d1, ..., C) -> (N * d1 * ..., C)
        rows = input.permute(0, *range(2, input.ndim), 1).reshape(-1, c)
    t = t.reshape(-1).astype(np.int64, copy=False)
    valid = t != ignore_index
    # a wrong class index must not turn into a silent wrong loss (checked without a host sync on a GPU)
    if backend.check_values(valid & ((t < 0) | (t >= c)), t, lambda first: IndexError(
            f"{fname}(): target {first} is out of range for {c} classes (valid class indices: 0..{c - 1}, "
            f"or ignore_index={ignore_index})")):
        t = t.clip(0, c - 1)  # the error comes at the next read; until then keep the kernels in bounds
    return rows, t, valid, expected, c


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """Cross-entropy between logits `input` and `target`: class indices (int64, ignore_index skipped) or class
    probabilities (a float tensor of the input's shape). Classes on dim 1 (dim 0 for a 1-D input).

    With reduction='mean' and every target ignored the loss is nan, as in PyTorch, and its gradient is 0.
    """
    check_tensor(input, "input", "cross_entropy")
    input, = amp.full(input)  # inside autocast: the loss in float32
    if isinstance(target, Tensor) and target.data.dtype.kind == "f":
        target, = amp.full(target)
    reduction = legacy_reduction(size_average, reduce, reduction)
    check_reduction(reduction, "cross_entropy")
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise RuntimeError(f"cross_entropy(): label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    if isinstance(target, Tensor) and target.data.dtype.kind == "f":
        return _cross_entropy_probs(input, target, weight, reduction, eps)
    rows, t, valid, out_shape, c = _class_rows(input, target, ignore_index, "cross_entropy")
    w = _class_weight(weight, input, c, "cross_entropy")
    return CrossEntropy.apply(rows, targets=t, valid=valid, weight=w, smoothing=eps, reduction=reduction,
                              out_shape=out_shape)


def _cross_entropy_probs(input, target, weight, reduction, eps):
    """-sum_c w_c p_c log_softmax(input)_c with p = target (label-smoothed: p (1 - eps) + eps / C), composed
    from primitives so the target gets a gradient too; 'mean' averages over the rows (not the weights)."""
    if target.shape != input.shape or input.ndim == 0:
        raise RuntimeError(f"cross_entropy(): class-probability targets must have the input's shape "
                           f"{list(input.shape)}, got {list(target.shape)}")
    check_same_dtype("cross_entropy", input=input, target=target)
    check_same_device("cross_entropy", input=input, target=target)
    dim = 0 if input.ndim == 1 else 1
    c = input.shape[dim]
    logp = LogSoftmax.apply(input, dim=dim)
    p = target * (1 - eps) + eps / c if eps else target
    terms = p * logp
    w = _class_weight(weight, input, c, "cross_entropy")
    if w is not None:
        terms = terms * Tensor.wrap(w.reshape((c,) + (1,) * (input.ndim - dim - 1)), input.device)
    return reduce_loss(-terms.sum(dim), reduction)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """Negative log-likelihood of log-probabilities `input` (classes on dim 1) at the target class indices:
    cross_entropy(x, t) == nll_loss(log_softmax(x, 1), t)."""
    check_tensor(input, "input", "nll_loss")
    input, = amp.full(input)
    reduction = legacy_reduction(size_average, reduce, reduction)
    check_reduction(reduction, "nll_loss")
    rows, t, valid, out_shape, c = _class_rows(input, target, ignore_index, "nll_loss")
    w = _class_weight(weight, input, c, "nll_loss")
    return NLLLoss.apply(rows, targets=t, valid=valid, weight=w, reduction=reduction, out_shape=out_shape)


def _pointwise_args(input, target, fname, reduction, same_shape=False):
    check_tensor(input, "input", fname)
    check_tensor(target, "target", fname)
    check_reduction(reduction, fname)
    if same_shape and target.shape != input.shape:
        raise ValueError(f"{fname}(): Target size ({list(target.shape)}) must be the same as input size "
                         f"({list(input.shape)})")
    check_same_device(fname, input=input, target=target)


def _weighted(losses, weight):
    return losses if weight is None else losses * weight


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """(input - target)^2, reduced (target broadcast against input, as PyTorch does with a warning)."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _pointwise_args(input, target, "mse_loss", reduction)
    input, target = amp.full(input, target)
    return reduce_loss(_weighted((input - target) ** 2, weight), reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """|input - target|, reduced (gradient 0 where they are equal, as PyTorch's sign)."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _pointwise_args(input, target, "l1_loss", reduction)
    return reduce_loss(_weighted((input - target).abs(), weight), reduction)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta, with d = input - target (beta = 0: L1)."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _pointwise_args(input, target, "smooth_l1_loss", reduction)
    d = (input - target).abs()
    if beta == 0:
        return reduce_loss(d, reduction)
    quadratic = d.clamp(max=beta)  # |d| below beta, else beta: 0.5 q^2 / beta + (|d| - q) covers both pieces
    return reduce_loss(quadratic ** 2 * (0.5 / beta) + (d - quadratic), reduction)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """-(y log x + (1 - y) log(1 - x)) for probabilities x, each log clamped at -100 as in PyTorch."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _pointwise_args(input, target, "binary_cross_entropy", reduction, same_shape=True)
    losses = -(target * input.log().clamp(min=-100) + (1 - target) * (1 - input).log().clamp(min=-100))
    return reduce_loss(_weighted(losses, weight), reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None):
    """binary_cross_entropy(sigmoid(input), target), computed stably from the logits in one Function;
    pos_weight (broadcast along the last dim) weighs the positive term."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _pointwise_args(input, target, "binary_cross_entropy_with_logits", reduction, same_shape=True)
    input, target = amp.full(input, target)
    check_same_dtype("binary_cross_entropy_with_logits", input=input, target=target)
    consts = {}
    for name, t in (("weight", weight), ("pos_weight", pos_weight)):
        if t is not None:
            check_tensor(t, name, "binary_cross_entropy_with_logits")
            check_same_device("binary_cross_entropy_with_logits", input=input, **{name: t})
            t = t.data
        consts[name] = t
    losses = BCEWithLogits.apply(input, target, **consts)
    return reduce_loss(losses, reduction)
