"""Activations of nn.functional (and their modules): float64 finite differences over random shapes, the
kink conventions, float32 stays float32, and PyTorch's values and gradients where it is installed."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tensorlite as tl
import tensorlite.nn as nn
import tensorlite.nn.functional as F
from strategies import array, leaf, push_away, seeds, shapes

try:
    import torch
except ImportError:  # PyTorch is an optional oracle
    torch = None

# name -> (keyword arguments, kinks the finite difference must stay away from)
ACTIVATIONS = {
    "tanh": ({}, ()), "sigmoid": ({}, ()), "relu": ({}, (0.0,)), "gelu": ({}, ()),
    "silu": ({}, ()), "leaky_relu": ({"negative_slope": 0.2}, (0.0,)), "elu": ({"alpha": 0.7}, (0.0,)),
    "softplus": ({"beta": 2.0, "threshold": 3.0}, (1.5,)), "softsign": ({}, (0.0,)),
    "hardtanh": ({"min_val": -0.5, "max_val": 1.0}, (-0.5, 1.0)), "relu6": ({}, (0.0, 6.0)),
    "logsigmoid": ({}, ()), "mish": ({}, ()), "selu": ({}, (0.0,)),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@given(shapes(0, 3, 1, 4), seeds)
def test_activation_gradcheck_and_torch(name, shape, seed):
    kw, kinks = ACTIVATIONS[name]
    x = push_away(array(seed, shape, -4, 8 if name == "relu6" else 4), kinks)
    fn = getattr(F, name)
    assert tl.gradcheck(lambda t: fn(t, **kw), leaf(x, "cpu"))
    if torch is not None:
        a, b = tl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ya, yb = fn(a, **kw), getattr(torch.nn.functional, name)(b, **kw)
        np.testing.assert_allclose(ya.detach().numpy(), yb.detach().numpy(), rtol=1e-12, atol=1e-14)
        ya.sum().backward()
        yb.sum().backward()
        np.testing.assert_allclose(a.grad.detach().numpy(), b.grad.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_kinks_follow_torch(name):
    """At the kinks the gradient is PyTorch's choice (relu'(0) = 0, leaky_relu'(0) = slope, hardtanh' = 0 on
    its bounds, ...): a one-sided derivative, which the finite-difference checks above stay away from."""
    torch_ = pytest.importorskip("torch")
    kw, kinks = ACTIVATIONS[name]
    x = np.array(sorted(set(kinks) | {-20.0, -1.0, 0.0, 1.0, 25.0}))
    a, b = tl.tensor(x, requires_grad=True), torch_.tensor(x, requires_grad=True)
    getattr(F, name)(a, **kw).sum().backward()
    getattr(torch_.nn.functional, name)(b, **kw).sum().backward()
    np.testing.assert_allclose(a.grad.detach().numpy(), b.grad.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_keeps_float32(name):
    x = tl.randn(3, 4, requires_grad=True)
    y = getattr(F, name)(x, **ACTIVATIONS[name][0])
    y.sum().backward()
    assert y.dtype == tl.float32 and x.grad.dtype == tl.float32


def test_activations_are_finite_far_out():
    x = tl.tensor([-1e4, -100.0, 100.0, 1e4], requires_grad=True)
    for name in ("softplus", "logsigmoid", "silu", "elu", "sigmoid"):
        x.grad = None
        y = getattr(F, name)(x)
        y.sum().backward()
        assert np.isfinite(y.detach().numpy()).all() and np.isfinite(x.grad.detach().numpy()).all(), name


@given(st.sampled_from([(4,), (2, 6), (4, 2, 4)]), st.integers(-1, 0), seeds)
def test_glu(shape, dim, seed):
    x = array(seed, shape)
    assert tl.gradcheck(lambda t: F.glu(t, dim), leaf(x, "cpu"))
    if torch is not None:
        np.testing.assert_allclose(F.glu(tl.tensor(x), dim).detach().numpy(),
                                   torch.nn.functional.glu(torch.tensor(x), dim).detach().numpy(), rtol=1e-12)
    with pytest.raises(RuntimeError, match="even"):
        F.glu(tl.ones(3))


def test_inplace_is_accepted():
    x = tl.tensor([-1.0, 2.0])
    for fn in (F.relu, F.silu, F.relu6, F.leaky_relu, F.elu, F.hardtanh):
        y = fn(x, inplace=True)
        assert y.shape == x.shape


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
def test_activation_modules_match_torch():
    x = np.linspace(-3, 8, 24).reshape(2, 3, 4)
    modules = [("Tanh", (), {}), ("Sigmoid", (), {}), ("SiLU", (), {}), ("ReLU", (), {}), ("ReLU6", (), {}),
               ("GELU", (), {"approximate": "tanh"}), ("LeakyReLU", (0.2,), {}), ("ELU", (), {"alpha": 0.5}),
               ("Softplus", (), {"beta": 2}), ("Hardtanh", (-2.0, 2.0), {}), ("Softsign", (), {}),
               ("LogSigmoid", (), {}), ("Mish", (), {}), ("SELU", (), {}), ("GLU", (), {"dim": 2}), ("Softmax", (), {"dim": 1}),
               ("LogSoftmax", (2,), {}), ("Softmin", (), {"dim": -1}), ("Identity", (3,), {"x": 1}),
               ("Flatten", (), {}), ("Flatten", (0, 1), {}), ("Unflatten", (2, (2, 2)), {})]
    for name, args, kw in modules:
        ours, theirs = getattr(nn, name)(*args, **kw), getattr(torch.nn, name)(*args, **kw)
        assert repr(ours) == repr(theirs)
        np.testing.assert_allclose(ours(tl.tensor(x)).detach().numpy(), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-12,
                                   err_msg=name)
