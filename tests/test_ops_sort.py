"""gather, sort, argsort, topk: forward against NumPy, float64 gradchecks over random shapes, PyTorch as an
oracle (skipped without torch) for values, indices, dtypes and gradients, with ties, nan, 0-d and empty tensors.

Tie order: sort is stable (equal values keep their order, as torch.sort(stable=True)); topk picks the first of
equal values. PyTorch leaves topk's order of ties unspecified, so against torch ties are compared by values and
by gradient sums only."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tensorlite as tl
from strategies import distinct, leaf, seeds, shape_and_dim


def close(t, expected, rtol=1e-10, atol=1e-12):
    assert t.shape == np.shape(expected), (t.shape, np.shape(expected))
    np.testing.assert_allclose(t.detach().numpy(), expected, rtol=rtol, atol=atol)


# ---------------------------------------------------------------- gather
@st.composite
def gather_case(draw):
    shape, dim = draw(shape_and_dim(1, 3, 4))
    # the index may be shorter than the input outside `dim` and any length along it (values repeat)
    idx_shape = tuple(draw(st.integers(1, n)) if i != dim % len(shape) else draw(st.integers(1, 4))
                      for i, n in enumerate(shape))
    return shape, dim, idx_shape


@given(case=gather_case(), seed=seeds)
def test_gather(device, case, seed):
    shape, dim, idx_shape = case
    rng = np.random.default_rng(seed)
    x_np = rng.standard_normal(shape)
    idx = rng.integers(0, shape[dim], size=idx_shape)
    x = leaf(x_np, device)
    region = tuple(slice(0, n) if i != dim % len(shape) else slice(None) for i, n in enumerate(idx_shape))
    close(x.gather(dim, tl.tensor(idx, device=device)), np.take_along_axis(x_np[region], idx, axis=dim))
    # a repeated index adds its gradients up (a scatter-add)
    assert tl.gradcheck(lambda t: tl.gather(t, dim, tl.tensor(idx, device=device)), x)


def test_gather_against_torch(device):
    torch = pytest.importorskip("torch")
    x_np = np.arange(12.0).reshape(3, 4)
    idx = np.array([[0, 0, 3], [1, 0, 2]])
    x, xt = leaf(x_np, device), torch.tensor(x_np, requires_grad=True)
    y, yt = x.gather(1, tl.tensor(idx, device=device)), torch.gather(xt, 1, torch.tensor(idx))
    (y * y).sum().backward()
    (yt * yt).sum().backward()
    np.testing.assert_array_equal(y.detach().numpy(), yt.detach().numpy())
    np.testing.assert_array_equal(x.grad.detach().numpy(), xt.grad.detach().numpy())
    assert y.dtype == tl.float64
    z = leaf(np.array(5.0), device)  # 0-d input and index
    assert z.gather(0, tl.tensor(0, device=device)).item() == torch.gather(torch.tensor(5.0), 0, torch.tensor(0)).item()


@pytest.mark.parametrize("index, match", [([[0, 2]], "out of bounds"), ([[-1, 0]], "out of bounds"),
                                          ([0, 1], "number of dimensions"), ([[0, 1], [0, 1], [0, 1]], "no larger")])
def test_gather_errors_are_runtime_errors_like_torch(device, index, match):
    x = tl.ones(2, 2, device=device)
    with pytest.raises(RuntimeError, match=match):
        x.gather(1, tl.tensor(index, device=device))
        tl.backend.run_deferred_checks()
    with pytest.raises(RuntimeError, match="int32/int64"):
        x.gather(1, tl.tensor([[0.0, 1.0]], device=device))


# ---------------------------------------------------------------- sort / argsort
@given(sd=shape_and_dim(1, 3, 4), seed=seeds, descending=st.booleans())
def test_sort_distinct(device, sd, seed, descending):
    shape, dim = sd
    x_np = distinct(seed, shape)
    x = leaf(x_np, device)
    values, indices = x.sort(dim, descending=descending)
    order = np.argsort(-x_np if descending else x_np, axis=dim)
    np.testing.assert_array_equal(indices.detach().numpy(), order)
    close(values, np.take_along_axis(x_np, order, axis=dim))
    assert indices.dtype == tl.int64 and not indices.requires_grad
    np.testing.assert_array_equal(tl.argsort(x, dim, descending=descending).detach().numpy(), order)
    assert tl.gradcheck(lambda t: tl.sort(t, dim, descending=descending).values, x)


@given(sd=shape_and_dim(1, 3, 5), seed=seeds, descending=st.booleans())
def test_sort_with_ties_is_stable_and_matches_torch(device, sd, seed, descending):
    torch = pytest.importorskip("torch")
    shape, dim = sd
    x_np = np.random.default_rng(seed).integers(0, 3, size=shape).astype(np.float64)  # many ties
    x_np.reshape(-1)[::4] = np.nan  # nan sorts as the largest value
    ref = torch.sort(torch.tensor(x_np), dim=dim, descending=descending, stable=True)
    out = tl.tensor(x_np, device=device).sort(dim, descending=descending)
    np.testing.assert_array_equal(out.indices.detach().numpy(), ref.indices.detach().numpy())
    np.testing.assert_array_equal(out.values.detach().numpy(), ref.values.detach().numpy())


def test_sort_gradient_against_torch(device):
    torch = pytest.importorskip("torch")
    x_np = np.array([[3.0, 1.0, 3.0], [2.0, 2.0, 5.0]])
    w = np.arange(3.0)
    x, xt = leaf(x_np, device), torch.tensor(x_np, requires_grad=True)
    (x.sort(1, descending=True).values * tl.tensor(w, device=device)).sum().backward()
    (torch.sort(xt, dim=1, descending=True, stable=True).values * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), xt.grad.detach().numpy())


@pytest.mark.parametrize("dtype", ["int64", "bool", "float32"])
def test_sort_keeps_the_dtype(device, dtype):
    torch = pytest.importorskip("torch")
    x_np = np.array([3, 0, 2, 0, 1]).astype(dtype)
    ref = torch.sort(torch.tensor(x_np), stable=True)
    out = tl.tensor(x_np, device=device).sort()
    assert out.values.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out.values.detach().numpy(), ref.values.detach().numpy())
    np.testing.assert_array_equal(out.indices.detach().numpy(), ref.indices.detach().numpy())


def test_sort_of_0d_and_empty(device):
    v, i = tl.tensor(2.5, device=device).sort()
    assert v.shape == i.shape == () and v.item() == 2.5 and i.item() == 0
    v, i = tl.zeros(2, 0, device=device).sort(1)
    assert v.shape == i.shape == (2, 0) and i.dtype == tl.int64


# ---------------------------------------------------------------- topk
@given(sd=shape_and_dim(1, 3, 5), seed=seeds, largest=st.booleans(), data=st.data())
def test_topk(device, sd, seed, largest, data):
    shape, dim = sd
    k = data.draw(st.integers(0, shape[dim]))
    x_np = distinct(seed, shape)
    x = leaf(x_np, device)
    values, indices = x.topk(k, dim, largest=largest)
    order = np.take(np.argsort(-x_np if largest else x_np, axis=dim), np.arange(k), axis=dim)
    np.testing.assert_array_equal(indices.detach().numpy(), order)
    close(values, np.take_along_axis(x_np, order, axis=dim))
    if k:
        assert tl.gradcheck(lambda t: tl.topk(t, k, dim, largest=largest).values, x)


@given(sd=shape_and_dim(1, 3, 5), seed=seeds, largest=st.booleans(), data=st.data())
def test_topk_against_torch(device, sd, seed, largest, data):
    torch = pytest.importorskip("torch")
    shape, dim = sd
    k = data.draw(st.integers(1, shape[dim]))
    x_np = np.random.default_rng(seed).integers(0, 4, size=shape).astype(np.float64)  # ties
    x, xt = leaf(x_np, device), torch.tensor(x_np, requires_grad=True)
    out, ref = x.topk(k, dim, largest=largest), torch.topk(xt, k, dim, largest=largest)
    np.testing.assert_array_equal(out.values.detach().numpy(), ref.values.detach().numpy())
    # indices may differ between tied values (unspecified in PyTorch); each must point at its value
    np.testing.assert_array_equal(np.take_along_axis(x_np, out.indices.detach().numpy(), axis=dim), out.values.detach().numpy())
    out.values.sum().backward()
    ref.values.sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy().sum(axis=dim), xt.grad.detach().numpy().sum(axis=dim))


def test_topk_nan_is_the_largest_and_ties_take_the_first(device):
    x = tl.tensor([1.0, np.nan, 0.0, np.nan, 2.0], device=device)
    np.testing.assert_array_equal(x.topk(2).indices.detach().numpy(), [1, 3])
    np.testing.assert_array_equal(x.topk(2, largest=False).indices.detach().numpy(), [2, 0])
    np.testing.assert_array_equal(tl.tensor([3.0, 1.0, 3.0, 3.0], device=device).topk(2).indices.detach().numpy(), [0, 2])


def test_topk_errors_and_fields(device):
    x = tl.ones(3, device=device)
    with pytest.raises(RuntimeError, match="out of range"):
        x.topk(4)
    r = tl.tensor(1.5, device=device).topk(1)
    assert r.values.item() == 1.5 and r.indices.item() == 0 and r._fields == ("values", "indices")
