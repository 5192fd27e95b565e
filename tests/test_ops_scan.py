"""prod and cumsum: forward against NumPy, float64 gradchecks (prod with zeros, where out / x would fail),
dtypes (integer results are int64 unless dtype=), and PyTorch as an oracle (skipped without torch)."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tensorlite as tl
from strategies import array, leaf, seeds, shape_and_dim, shapes


def close(t, expected, rtol=1e-10, atol=1e-12):
    assert t.shape == np.shape(expected), (t.shape, np.shape(expected))
    np.testing.assert_allclose(t.detach().numpy(), expected, rtol=rtol, atol=atol)


@st.composite
def with_zeros(draw, shape):
    """Data for `shape` with some exact zeros (none, one or several per slice)."""
    a = array(draw(seeds), shape, 0.5, 2.0) * np.where(np.random.default_rng(draw(seeds)).random(shape) < 0.5, 1, -1)
    zero = np.random.default_rng(draw(seeds)).random(shape) < draw(st.sampled_from([0.0, 0.2, 0.5]))
    return np.where(zero, 0.0, a)


@given(sd=shape_and_dim(1, 3, 4), keepdim=st.booleans(), data=st.data())
def test_prod_over_a_dim(device, sd, keepdim, data):
    shape, dim = sd
    x_np = data.draw(with_zeros(shape))
    x = leaf(x_np, device)
    close(x.prod(dim, keepdim=keepdim), np.prod(x_np, axis=dim, keepdims=keepdim))
    # the product is multilinear: central differences are exact at zeros too, so no point needs avoiding
    assert tl.gradcheck(lambda t: t.prod(dim, keepdim=keepdim), x)


@given(shape=shapes(0, 3, 1, 3), data=st.data())
def test_prod_of_everything(device, shape, data):
    x_np = data.draw(with_zeros(shape))
    x = leaf(x_np, device)
    close(tl.prod(x), np.prod(x_np))
    assert tl.gradcheck(lambda t: t.prod(), x)


@pytest.mark.parametrize("values", [[2.0, 3.0, 4.0], [2.0, 0.0, 4.0], [0.0, 0.0, 4.0], [0.0], [[2.0, 0.0], [0.0, 1.0]]])
def test_prod_gradient_with_zeros_against_torch(device, values):
    torch = pytest.importorskip("torch")
    x, xt = leaf(np.array(values), device), torch.tensor(values, dtype=torch.float64, requires_grad=True)
    x.prod().backward()
    xt.prod().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), xt.grad.detach().numpy())
    if x.ndim == 2:
        x.grad = xt.grad = None
        x.prod(1).sum().backward()
        xt.prod(1).sum().backward()
        np.testing.assert_array_equal(x.grad.detach().numpy(), xt.grad.detach().numpy())


@given(sd=shape_and_dim(1, 3, 4), seed=seeds)
def test_cumsum(device, sd, seed):
    shape, dim = sd
    x_np = array(seed, shape)
    x = leaf(x_np, device)
    close(x.cumsum(dim), np.cumsum(x_np, axis=dim))
    assert tl.gradcheck(lambda t: tl.cumsum(t, dim), x)


def test_cumsum_gradient_against_torch(device):
    torch = pytest.importorskip("torch")
    x_np, w = np.array([[1.0, 2.0, 3.0]]), np.array([1.0, 10.0, 100.0])
    x, xt = leaf(x_np, device), torch.tensor(x_np, requires_grad=True)
    (x.cumsum(1) * tl.tensor(w, device=device)).sum().backward()
    (xt.cumsum(1) * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), xt.grad.detach().numpy())


@pytest.mark.parametrize("dtype", ["uint8", "bool", "int32", "int8", "int64", "float16", "float32"])
@pytest.mark.parametrize("op", ["sum", "prod", "cumsum"])
def test_integer_results_are_int64_as_in_torch(device, dtype, op):
    torch = pytest.importorskip("torch")
    x_np = np.array([1, 2, 3]).astype(dtype)
    call = (lambda t: t.cumsum(0)) if op == "cumsum" else (lambda t: getattr(t, op)())
    out, ref = call(tl.tensor(x_np, device=device)), call(torch.tensor(x_np))
    assert out.dtype == str(ref.dtype).replace("torch.", "").replace("bool", "bool")
    np.testing.assert_array_equal(out.detach().numpy(), ref.detach().numpy())


def test_dtype_argument(device):
    x = tl.tensor([1, 2, 3], dtype=tl.int32, device=device)
    assert x.sum(dtype=tl.int32).dtype == tl.int32
    assert x.prod(dtype=tl.float64).dtype == tl.float64
    assert x.cumsum(0, dtype=tl.float32).dtype == tl.float32


def test_0d_and_empty(device):
    x = leaf(np.array(3.0), device)
    assert x.prod(0).item() == 3.0 and x.prod().item() == 3.0 and x.cumsum(0).item() == 3.0
    assert tl.gradcheck(lambda t: t.prod(0) * t.cumsum(0), x)
    e = leaf(np.zeros((2, 0)), device)
    np.testing.assert_array_equal(e.prod(1).detach().numpy(), [1.0, 1.0])  # the empty product, as in PyTorch
    e.prod(1).sum().backward()
    assert e.grad.shape == (2, 0)
    assert tl.ones(2, 3, device=device).prod(1, keepdim=True).shape == (2, 1)


def test_cumsum_needs_a_dim(device):
    with pytest.raises(TypeError):
        tl.ones(3, device=device).cumsum()
    with pytest.raises(IndexError):
        tl.ones(3, device=device).cumsum(1)
