"""PyTorch's conventions where elementwise functions have a kink or a tie: maximum/minimum split ties evenly,
clamp with tensor bounds gives each element's gradient to the input whose value it took (the input itself at a
bound), masked_fill with a 0-d tensor value is differentiable in the value. Gradchecks (float64, hypothesis,
broadcasting) stay off the kinks; PyTorch (skipped without torch) decides at them."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tensorlite as tl
from strategies import array, broadcastable_shapes, leaf, seeds, shapes


def close(t, expected, rtol=1e-10, atol=1e-12):
    assert t.shape == np.shape(expected)
    np.testing.assert_allclose(t.detach().numpy(), expected, rtol=rtol, atol=atol)


def test_maximum_minimum_ties_split_the_gradient(device):
    # at a == b PyTorch gives half the gradient to each input (a finite difference would straddle the kink,
    # so the gradchecks above use grids that never tie)
    a = leaf(np.array([1.0, 2.0, 0.5]), device)
    b = leaf(np.array([1.0, 1.0, 0.5]), device)
    (a.maximum(b) * tl.tensor([1.0, 2.0, 4.0], dtype=tl.float64, device=device)).sum().backward()
    np.testing.assert_array_equal(a.grad.detach().numpy(), [0.5, 2.0, 2.0])
    np.testing.assert_array_equal(b.grad.detach().numpy(), [0.5, 0.0, 2.0])


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_ties_against_torch(device, name):
    torch = pytest.importorskip("torch")
    a_np, b_np = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 5.0]]), np.array([1.0, 3.0, 3.0])  # broadcast, with ties
    a, b = leaf(a_np, device), leaf(b_np, device)
    at, bt = torch.tensor(a_np, requires_grad=True), torch.tensor(b_np, requires_grad=True)
    w = np.arange(6.0).reshape(2, 3)
    (getattr(tl, name)(a, b) * tl.tensor(w, device=device)).sum().backward()
    (getattr(torch, name)(at, bt) * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(a.grad.detach().numpy(), at.grad.detach().numpy())
    np.testing.assert_array_equal(b.grad.detach().numpy(), bt.grad.detach().numpy())


@given(pair=broadcastable_shapes(0, 3, 3), seed=seeds)
def test_masked_fill_with_a_0d_tensor_value_is_differentiable_in_both(device, pair, seed):
    sx, sm = pair
    x_np = array(seed, sx)
    mask = tl.tensor(np.random.default_rng(seed).random(sm) < 0.5, device=device)
    x, v = leaf(x_np, device), leaf(np.array(0.7), device)
    close(x.masked_fill(mask, v), np.where(mask.detach().numpy(), 0.7, x_np))
    assert tl.gradcheck(lambda t, val: tl.masked_fill(t, mask, val), x, v)


def test_masked_fill_tensor_value_against_torch(device):
    torch = pytest.importorskip("torch")
    m = np.array([[True, False, True], [False, False, True]])
    x, v = leaf(np.arange(6.0).reshape(2, 3), device), leaf(np.array(5.0), device)
    xt, vt = torch.arange(6.0, dtype=torch.float64).reshape(2, 3).requires_grad_(), torch.tensor(5.0, dtype=torch.float64, requires_grad=True)
    y, yt = x.masked_fill(tl.tensor(m, device=device), v), xt.masked_fill(torch.tensor(m), vt)
    (y * y).sum().backward()
    (yt * yt).sum().backward()
    np.testing.assert_array_equal(y.detach().numpy(), yt.detach().numpy())
    np.testing.assert_array_equal(x.grad.detach().numpy(), xt.grad.detach().numpy())
    assert v.grad.shape == () and v.grad.item() == vt.grad.item()
    # the result keeps the input's dtype whatever the value's, as in PyTorch
    assert tl.zeros(3, device=device).masked_fill(tl.tensor([True, False, True], device=device),
                                                  tl.tensor(2, device=device)).dtype == tl.float32
    with pytest.raises(RuntimeError, match="0-dimensional"):
        x.masked_fill(tl.tensor(m, device=device), tl.ones(3, device=device))


@given(shapes3=st.tuples(*[shapes(0, 3, 1, 3)] * 3).filter(
    lambda s: _broadcasts(*s)), seed=seeds, which=st.sampled_from(["both", "min", "max"]))
def test_clamp_with_tensor_bounds(device, shapes3, seed, which):
    sx, slo, shi = shapes3
    rng = np.random.default_rng(seed)
    # a 0.1 grid for x, lo shifted by 0.05 and hi by 0.04: no element is ever at a bound (the kinks), and lo
    # and hi are 0.01 apart or more, so no tie between them either
    x_np = np.round(rng.uniform(-2, 2, sx) * 10) / 10
    lo_np = np.round(rng.uniform(-1.5, 0, slo) * 10) / 10 + 0.05
    hi_np = np.round(rng.uniform(-0.5, 1.5, shi) * 10) / 10 + 0.04  # sometimes below lo: then hi wins
    x, lo, hi = leaf(x_np, device), leaf(lo_np, device), leaf(hi_np, device)
    if which == "both":
        close(x.clamp(lo, hi), np.minimum(np.maximum(x_np, lo_np), hi_np))
        assert tl.gradcheck(lambda a, b, c: a.clamp(b, c), x, lo, hi)
    elif which == "min":
        close(tl.clamp(x, min=lo), np.maximum(x_np, lo_np))
        assert tl.gradcheck(lambda a, b: a.clamp(min=b), x, lo)
    else:
        close(x.clip(max=hi), np.minimum(x_np, hi_np))
        assert tl.gradcheck(lambda a, c: a.clamp(max=c), x, hi)


def _broadcasts(*shapes_):
    try:
        np.broadcast_shapes(*shapes_)
        return True
    except ValueError:
        return False


CLAMP_CASES = [  # x, lo, hi: values at the bounds and lo > hi, where the convention decides
    ([0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0], [2.0]),
    ([0.0, 1.0, 2.0, 3.0], [2.5], [1.5]),
    ([1.0, 1.0, 2.0], [1.0], [1.0]),
    ([[0.5, 1.5], [2.5, -1.0]], [[1.0], [0.0]], [2.0, 1.5]),
]


@pytest.mark.parametrize("x_v, lo_v, hi_v", CLAMP_CASES)
@pytest.mark.parametrize("which", ["both", "min", "max"])
def test_clamp_tensor_bounds_against_torch(device, x_v, lo_v, hi_v, which):
    torch = pytest.importorskip("torch")
    ts = [leaf(np.array(v), device) for v in (x_v, lo_v, hi_v)]
    tt = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (x_v, lo_v, hi_v)]
    call = {"both": lambda m, a, b, c: m.clamp(a, b, c), "min": lambda m, a, b, c: m.clamp(a, min=b),
            "max": lambda m, a, b, c: m.clamp(a, max=c)}
    y, yt = call[which](tl, *ts), call[which](torch, *tt)
    np.testing.assert_array_equal(y.detach().numpy(), yt.detach().numpy())
    w = np.arange(1.0, 1.0 + y.data.size).reshape(y.shape)
    (y * tl.tensor(w, device=device)).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    for t, r in zip(ts, tt):
        if r.grad is None:
            assert t.grad is None
        else:
            np.testing.assert_array_equal(t.grad.detach().numpy(), r.grad.detach().numpy())


def test_clamp_with_a_number_and_a_tensor_bound(device):
    # (torch.clamp accepts a number beside a 0-d tensor only; tensorlite beside any tensor)
    x = leaf(np.array([0.0, 1.0, 2.0, 3.0]), device)
    hi = leaf(np.array([2.5, 0.2, 2.5, 2.5]), device)
    close(x.clamp(0.5, hi), np.minimum(np.maximum(x.detach().numpy(), 0.5), hi.detach().numpy()))
    x.clamp(0.5, hi).sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), [0.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(hi.grad.detach().numpy(), [0.0, 1.0, 0.0, 1.0])


def test_clamp_tensor_bound_dtypes(device):
    x = tl.tensor([1, 2, 3], device=device)
    assert x.clamp(min=tl.tensor([1.5, 1.5, 1.5], device=device)).dtype == tl.float32  # int meets float: float
    f = tl.zeros(3, device=device)
    assert f.clamp(min=tl.zeros(3, dtype=tl.float64, device=device)).dtype == tl.float64
    with pytest.raises(ValueError, match="broadcast"):
        tl.zeros(4, device=device).clamp(min=tl.zeros(3, device=device))
