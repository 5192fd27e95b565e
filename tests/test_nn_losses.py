"""Losses of nn.functional: the fused Functions against their composed twins (nn.reference), float64
finite differences over random shapes, and PyTorch (values and gradients) where it is installed."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tensorlite as tl
import tensorlite.nn as nn
import tensorlite.nn.functional as F
from tensorlite.nn import reference as R
from strategies import agree, array, leaf, seeds

try:
    import torch
except ImportError:  # PyTorch is an optional oracle
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


def against_torch(ours, theirs, arrays, rtol=1e-10, atol=1e-12, grads=True):
    """ours(*tensorlite leaves) and theirs(*torch leaves) agree in value and in every input's gradient."""
    a = [tl.tensor(x, requires_grad=True) for x in arrays]
    b = [torch.tensor(x, requires_grad=True) for x in arrays]
    out_a, out_b = ours(*a), theirs(*b)
    np.testing.assert_allclose(out_a.detach().numpy(), out_b.detach().numpy(), rtol=rtol, atol=atol, equal_nan=True)
    if grads:
        v = np.random.default_rng(1).standard_normal(out_a.shape)
        (out_a * tl.tensor(v)).sum().backward()
        (out_b * torch.tensor(v)).sum().backward()
        for i, (x, y) in enumerate(zip(a, b)):
            np.testing.assert_allclose(x.grad.detach().numpy(), y.grad.detach().numpy(), rtol=1e-8, atol=1e-10, err_msg=f"input {i}")
    return out_a


# ---------------------------------------------------------------- cross_entropy on class indices
@st.composite
def ce_case(draw):
    """Logits (C,), (N, C) or (N, C, d1[, d2]) with targets, some ignored; optional weight and smoothing."""
    c = draw(st.integers(1, 5))
    layout = draw(st.sampled_from(["1d", "2d", "3d", "4d"]))
    n = draw(st.integers(1, 4))
    spatial = {"1d": (), "2d": (), "3d": (draw(st.integers(1, 3)),), "4d": (2, draw(st.integers(1, 3)))}[layout]
    shape = (c,) if layout == "1d" else (n, c) + spatial
    tshape = () if layout == "1d" else (n,) + spatial
    seed = draw(seeds)
    rng = np.random.default_rng(seed)
    kept = rng.integers(0, c, tshape)
    ignore = draw(st.sampled_from([-100, 0, 7]))
    targets = np.where(rng.random(tshape) < 0.3, ignore, kept)
    if (targets == ignore).all():  # keep a counted row (all-ignored is tested on its own)
        targets, ignore = kept, -100
    weight = rng.uniform(0.2, 2.0, c) if draw(st.booleans()) else None
    smoothing = draw(st.sampled_from([0.0, 0.0, 0.25]))
    return (array(seed, shape, -3, 3), targets, ignore, draw(st.sampled_from(["mean", "sum", "none"])), weight,
            smoothing)


def np_cross_entropy(x, t, ignore, reduction, w, eps):
    """The definition, in NumPy: classes on dim 1 (dim 0 when 1-D)."""
    c = x.shape[0] if x.ndim == 1 else x.shape[1]
    rows = x.reshape(1, c) if x.ndim == 1 else np.moveaxis(x, 1, -1).reshape(-1, c)
    logp = rows - rows.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    t = t.reshape(-1)
    valid = t != ignore
    tv = np.where(valid, t, 0)
    w = np.ones(c) if w is None else w
    per = -(1 - eps) * w[tv] * logp[np.arange(len(t)), tv] - eps / c * (logp * w).sum(1)
    per = per * valid
    if reduction == "none":
        return per.reshape(() if x.ndim == 1 else (x.shape[0],) + x.shape[2:])
    return per.sum() if reduction == "sum" else per.sum() / (w[tv] * valid).sum()


@given(ce_case())
def test_cross_entropy(device, case):
    x, targets, ignore, reduction, w, eps = case
    t = tl.tensor(targets, device=device)
    weight = None if w is None else tl.tensor(w, device=device)
    fused = lambda z: F.cross_entropy(z, t, weight=weight, ignore_index=ignore, reduction=reduction,
                                      label_smoothing=eps)
    out = agree(fused, lambda z: R.cross_entropy(z, t, weight=weight, ignore_index=ignore, reduction=reduction,
                                                  label_smoothing=eps), [x], device)
    np.testing.assert_allclose(out.detach().numpy(), np_cross_entropy(x, targets, ignore, reduction, w, eps), rtol=1e-10,
                               atol=1e-12)
    assert tl.gradcheck(fused, leaf(x, device))


@needs_torch
@given(ce_case())
def test_cross_entropy_matches_torch(case):
    x, targets, ignore, reduction, w, eps = case
    kw = dict(ignore_index=ignore, reduction=reduction, label_smoothing=eps)
    against_torch(lambda z: F.cross_entropy(z, tl.tensor(targets), None if w is None else tl.tensor(w), **kw),
                  lambda z: torch.nn.functional.cross_entropy(z, torch.tensor(targets),
                                                              None if w is None else torch.tensor(w), **kw), [x])


@needs_torch
@given(st.sampled_from([(4,), (3, 4), (2, 4, 3), (2, 3, 2, 2)]), st.booleans(), st.sampled_from([0.0, 0.3]),
       st.sampled_from(["mean", "sum", "none"]), seeds)
def test_cross_entropy_probability_targets(shape, weighted, eps, reduction, seed):
    """Float targets of the input's shape are class probabilities; they get a gradient too."""
    dim = 0 if len(shape) == 1 else 1
    x = array(seed, shape)
    p = np.exp(array(seed + 1, shape))
    p = p / p.sum(dim, keepdims=True)
    w = np.random.default_rng(seed).uniform(0.5, 2, shape[dim]) if weighted else None
    kw = dict(reduction=reduction, label_smoothing=eps)
    against_torch(lambda z, q: F.cross_entropy(z, q, None if w is None else tl.tensor(w), **kw),
                  lambda z, q: torch.nn.functional.cross_entropy(z, q, None if w is None else torch.tensor(w), **kw),
                  [x, p])
    assert tl.gradcheck(lambda z, q: F.cross_entropy(z, q, **kw), leaf(x, "cpu"), leaf(p, "cpu"))


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_all_ignored_is_nan_with_zero_grad(device, eps, weighted):
    """As in PyTorch: the mean over no rows is nan, but the gradient is 0, so an all-padding batch does not
    turn every parameter into nan."""
    x = tl.randn(3, 4, device=device, requires_grad=True)
    t = tl.tensor([-100, -100, -100], device=device)
    w = tl.ones(4, device=device) if weighted else None
    loss = F.cross_entropy(x, t, weight=w, label_smoothing=eps)
    assert math.isnan(loss.item())
    loss.backward()
    assert (x.grad.detach().numpy() == 0).all()
    x.grad = None
    F.cross_entropy(x, t, weight=w, reduction="sum").backward()
    assert (x.grad.detach().numpy() == 0).all()


def test_cross_entropy_class_dim_is_1(device):
    """(N, C, d) logits with (N, d) targets: classes on dim 1 even when C == d (PyTorch's rule)."""
    x = tl.randn(2, 3, 3, device=device)
    t = tl.tensor([[0, 1, 2], [2, 2, 0]], device=device)
    moved = x.permute(0, 2, 1).reshape(6, 3)
    np.testing.assert_allclose(F.cross_entropy(x, t).detach().numpy(), F.cross_entropy(moved, t.reshape(-1)).detach().numpy(),
                               rtol=1e-6)
    assert F.cross_entropy(x, t, reduction="none").shape == (2, 3)
    assert F.cross_entropy(tl.randn(5, device=device), tl.tensor(2, device=device)).shape == ()


def test_cross_entropy_errors():
    x = tl.randn(4, 3)
    with pytest.raises(ValueError, match=r"batch_size \(4\) to match target batch_size \(3\)"):
        F.cross_entropy(x, tl.tensor([0, 1, 2]))
    with pytest.raises(RuntimeError, match=r"Expected target size \[2, 5\]"):
        F.cross_entropy(tl.randn(2, 3, 5), tl.zeros(2, 4, dtype=tl.int64))
    with pytest.raises(RuntimeError, match="input's shape"):
        F.cross_entropy(x, tl.tensor([0.0, 1.0, 2.0, 0.0]))
    with pytest.raises(IndexError, match="target 3 is out of range for 3 classes"):
        F.cross_entropy(x, tl.tensor([0, 1, 3, 0]))
    with pytest.raises(IndexError, match="target -1"):
        F.cross_entropy(x, tl.tensor([0, -1, 2, 0]))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(x, tl.tensor([0, 1, 2, 0]), reduction="avg")
    with pytest.raises(RuntimeError, match="label_smoothing"):
        F.cross_entropy(x, tl.tensor([0, 1, 2, 0]), label_smoothing=1.5)
    with pytest.raises(RuntimeError, match="weight tensor should be defined"):
        F.cross_entropy(x, tl.tensor([0, 1, 2, 0]), weight=tl.ones(2))
    with pytest.raises(TypeError, match="floating-point"):
        F.cross_entropy(tl.tensor([[1, 2]]), tl.tensor([0]))
    with pytest.raises(RuntimeError, match="0-d"):
        F.cross_entropy(tl.tensor(1.0), tl.tensor(0))


def test_cross_entropy_keeps_float32(device):
    x = tl.randn(6, 5, device=device, requires_grad=True)
    w = tl.rand(5, device=device)
    loss = F.cross_entropy(x, tl.tensor([0, 1, 2, 3, 4, -100], device=device), weight=w, label_smoothing=0.1)
    loss.backward()
    assert loss.dtype == tl.float32 and x.grad.dtype == tl.float32


# ---------------------------------------------------------------- nll_loss
@st.composite
def nll_case(draw):
    x, targets, ignore, reduction, w, _ = draw(ce_case())
    return x, targets, ignore, reduction, w


@given(nll_case())
def test_nll_loss(device, case):
    x, targets, ignore, reduction, w = case
    t = tl.tensor(targets, device=device)
    weight = None if w is None else tl.tensor(w, device=device)
    dim = 0 if x.ndim == 1 else 1
    fn = lambda z: F.nll_loss(F.log_softmax(z, dim), t, weight, ignore_index=ignore, reduction=reduction)
    ce = lambda z: F.cross_entropy(z, t, weight, ignore_index=ignore, reduction=reduction)
    agree(fn, ce, [x], device)  # cross_entropy(x) == nll_loss(log_softmax(x))
    assert tl.gradcheck(lambda z: F.nll_loss(z, t, weight, ignore_index=ignore, reduction=reduction), leaf(x, device))
    if torch is not None:
        kw = dict(ignore_index=ignore, reduction=reduction)
        against_torch(lambda z: F.nll_loss(z, tl.tensor(targets), None if w is None else tl.tensor(w), **kw),
                      lambda z: torch.nn.functional.nll_loss(z, torch.tensor(targets),
                                                             None if w is None else torch.tensor(w), **kw), [x])


def test_nll_loss_all_ignored_has_zero_grad():
    x = tl.randn(2, 3, requires_grad=True)
    loss = F.nll_loss(x, tl.tensor([-100, -100]))
    assert math.isnan(loss.item())
    loss.backward()
    assert (x.grad.detach().numpy() == 0).all()


# ---------------------------------------------------------------- pointwise losses
POINTWISE = {
    "mse_loss": {}, "l1_loss": {}, "smooth_l1_loss": {"beta": 0.5},
    "binary_cross_entropy": {}, "binary_cross_entropy_with_logits": {},
}


def pointwise_inputs(name, seed, shape):
    rng = np.random.default_rng(seed)
    if name == "binary_cross_entropy":
        return rng.uniform(0.05, 0.95, shape), rng.uniform(0, 1, shape)
    x, y = rng.uniform(-2, 2, shape), (rng.uniform(0, 1, shape) if "logits" in name else rng.uniform(-2, 2, shape))
    if name in ("l1_loss", "smooth_l1_loss"):  # keep |x - y| away from the kinks at 0 and beta
        d = x - y
        for kink in (0.0, 0.5, -0.5):
            close = np.abs(d - kink) < 0.05
            x = np.where(close, x + 0.2, x)
            d = x - y
    return x, y


@pytest.mark.parametrize("name", sorted(POINTWISE))
@given(st.sampled_from([(), (3,), (2, 3), (2, 1, 3)]), st.sampled_from(["mean", "sum", "none"]), seeds)
def test_pointwise_losses(name, shape, reduction, seed):
    x, y = pointwise_inputs(name, seed, shape)
    fn = getattr(F, name)
    kw = dict(POINTWISE[name], reduction=reduction)
    assert tl.gradcheck(lambda a, b: fn(a, b, **kw), leaf(x, "cpu"), leaf(y, "cpu"))
    if torch is not None:
        against_torch(lambda a, b: fn(a, b, **kw), lambda a, b: getattr(torch.nn.functional, name)(a, b, **kw),
                      [x, y])


@needs_torch
@given(st.sampled_from([(3,), (2, 3), (4, 2, 3)]), seeds)
def test_bce_with_logits_weights_match_torch(shape, seed):
    x, y = pointwise_inputs("binary_cross_entropy_with_logits", seed, shape)
    x = x * 20  # large logits: the stable form stays finite
    rng = np.random.default_rng(seed)
    w, pw = rng.uniform(0.5, 2, shape[-1:]), rng.uniform(0.5, 3, shape[-1:])
    against_torch(lambda a, b: F.binary_cross_entropy_with_logits(a, b, tl.tensor(w), pos_weight=tl.tensor(pw)),
                  lambda a, b: torch.nn.functional.binary_cross_entropy_with_logits(a, b, torch.tensor(w),
                                                                                    pos_weight=torch.tensor(pw)),
                  [x, y])
    assert tl.gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b, tl.tensor(w), pos_weight=tl.tensor(pw)),
                        leaf(x / 20, "cpu"), leaf(y, "cpu"))


def test_pointwise_loss_errors():
    with pytest.raises(ValueError, match="same as input size"):
        F.binary_cross_entropy(tl.rand(3), tl.rand(2, 3))
    with pytest.raises(ValueError, match="same as input size"):
        F.binary_cross_entropy_with_logits(tl.rand(3), tl.rand(2, 3))
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(tl.rand(3), tl.rand(3), reduction="avg")


# ---------------------------------------------------------------- loss modules
@needs_torch
def test_loss_modules_match_torch():
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((5, 4)), rng.integers(0, 4, 5)
    w = rng.uniform(0.5, 2, 4)
    cases = [("CrossEntropyLoss", dict(label_smoothing=0.1), (x, t)), ("CrossEntropyLoss", dict(weight=w), (x, t)),
             ("NLLLoss", dict(reduction="sum"), (x, t)), ("MSELoss", {}, (x, x[::-1].copy())),
             ("L1Loss", dict(reduction="none"), (x, x[::-1].copy())), ("SmoothL1Loss", dict(beta=0.3), (x, 0 * x)),
             ("BCEWithLogitsLoss", dict(pos_weight=w), (x, rng.uniform(0, 1, x.shape))),
             ("BCELoss", {}, (rng.uniform(0.1, 0.9, x.shape), rng.uniform(0, 1, x.shape)))]
    for name, kw, (a, b) in cases:
        ours = getattr(nn, name)(**{k: tl.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()})
        theirs = getattr(torch.nn, name)(**{k: torch.tensor(v) if isinstance(v, np.ndarray) else v
                                            for k, v in kw.items()})
        np.testing.assert_allclose(ours(tl.tensor(a), tl.tensor(b)).detach().numpy(),
                                   theirs(torch.tensor(a), torch.tensor(b)).detach().numpy(), rtol=1e-10, err_msg=name)
        assert repr(ours) == repr(theirs)
