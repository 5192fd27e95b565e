"""Reductions: forward against NumPy and gradcheck in float64 for every form of `dim` (None, int, negative,
tuple) with and without keepdim; max/min with (values, indices); dtypes and errors."""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import tensorlite as tl
from strategies import array, distinct, leaf, seeds, shape_and_dim, shape_and_dims


def np_axis(dim):
    return tuple(dim) if isinstance(dim, tuple) else dim


def reduced_count(shape, dim):
    if dim is None or not shape:
        return int(np.prod(shape))
    dims = dim if isinstance(dim, tuple) else (dim,)
    return int(np.prod([shape[d] for d in dims]))


def close(t, expected, rtol=1e-10, atol=1e-12):
    assert t.shape == np.shape(expected), (t.shape, np.shape(expected))
    np.testing.assert_allclose(t.detach().numpy(), expected, rtol=rtol, atol=atol)


# name: (tensorlite method, NumPy reference, data)
REDUCTIONS = {
    "sum": (lambda t, d, k: t.sum(d, keepdim=k), lambda x, d, k: np.sum(x, axis=d, keepdims=k), array),
    "mean": (lambda t, d, k: t.mean(d, keepdim=k), lambda x, d, k: np.mean(x, axis=d, keepdims=k), array),
    "logsumexp": (lambda t, d, k: t.logsumexp(d, keepdim=k),
                  lambda x, d, k: np.log(np.sum(np.exp(x), axis=d, keepdims=k)), array),
    "amax": (lambda t, d, k: t.amax(d, keepdim=k), lambda x, d, k: np.max(x, axis=d, keepdims=k), distinct),
    "amin": (lambda t, d, k: t.amin(d, keepdim=k), lambda x, d, k: np.min(x, axis=d, keepdims=k), distinct),
}


@pytest.mark.parametrize("name", REDUCTIONS)
@given(sd=shape_and_dims(), keepdim=st.booleans(), seed=seeds)
def test_reduction(device, name, sd, keepdim, seed):
    shape, dim = sd
    fn, ref, make = REDUCTIONS[name]
    x_np = make(seed, shape)
    x = leaf(x_np, device)
    close(fn(x, dim, keepdim), ref(x_np, np_axis(dim) if shape else None, keepdim))
    assert tl.gradcheck(lambda t: fn(t, dim, keepdim), x)


@pytest.mark.parametrize("kind", ["var", "std"])
@given(sd=shape_and_dims(), keepdim=st.booleans(), seed=seeds,
       form=st.sampled_from([{}, {"unbiased": False}, {"unbiased": True}, {"correction": 0}, {"correction": 2}]))
def test_var_std(device, kind, sd, keepdim, seed, form):
    shape, dim = sd
    ddof = form.get("correction", 1 if form.get("unbiased", True) else 0)
    assume(reduced_count(shape, dim) > ddof)
    x_np = array(seed, shape)
    x = leaf(x_np, device)
    ref = np.var if kind == "var" else np.std
    fn = lambda t: getattr(t, kind)(dim, keepdim=keepdim, **form)
    close(fn(x), ref(x_np, axis=np_axis(dim) if shape else None, ddof=ddof, keepdims=keepdim))
    assert tl.gradcheck(fn, x)


@pytest.mark.parametrize("kind", ["var", "std"])
@pytest.mark.parametrize("values", [[2.0, 2.0, 2.0], [2.0, 2.0], [[1.0, 1.0], [0.0, 3.0]], [1.5], [1.0, 2.0], [1.0, 2.0, 4.0]])
@pytest.mark.parametrize("correction", [0, 1, 2, 3])
def test_var_std_of_constant_and_tiny_inputs_against_torch(device, kind, values, correction):
    # a constant slice has std 0 and gradient 0 (not 0 * inf = nan). N <= correction has no meaningful answer:
    # values and gradients follow PyTorch's reduction over a dim (its dim=None path differs at N <= correction)
    torch = pytest.importorskip("torch")
    x, xt = leaf(np.array(values), device), torch.tensor(values, dtype=torch.float64, requires_grad=True)
    dim = -1
    with np.errstate(all="ignore"):
        y = getattr(x, kind)(dim, correction=correction)
        y.sum().backward()
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore")
        yt = getattr(xt, kind)(dim, correction=correction)
        yt.sum().backward()
    np.testing.assert_array_equal(y.detach().numpy(), yt.detach().numpy())
    np.testing.assert_allclose(x.grad.detach().numpy(), xt.grad.detach().numpy(), rtol=1e-14)
    assert (np.signbit(x.grad.detach().numpy()) == np.signbit(xt.grad.detach().numpy())).all()


def test_std_of_a_constant_has_zero_gradient(device):
    x = leaf(np.full((2, 3), 4.0), device)
    x.std().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), np.zeros((2, 3)))


@pytest.mark.parametrize("kind", ["var", "std"])
def test_var_std_positional_overloads_as_torch(device, kind):
    torch = pytest.importorskip("torch")
    x_np = np.arange(12.0).reshape(3, 4) ** 1.5
    x, xt = tl.tensor(x_np, device=device), torch.tensor(x_np)
    for call in (lambda t: getattr(t, kind)(1, False), lambda t: getattr(t, kind)(1, True, True),
                 lambda t: getattr(t, kind)(False), lambda t: getattr(t, kind)(True), lambda t: getattr(t, kind)(),
                 lambda t: getattr(t, kind)(0, keepdim=True, correction=0), lambda t: getattr(t, kind)(dim=(0, 1)),
                 lambda t: getattr(t, kind)(1, unbiased=False, keepdim=True)):
        out, ref = call(x), call(xt)
        assert out.shape == tuple(ref.shape)
        np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=1e-12)
    with pytest.raises(TypeError):
        getattr(x, kind)(1, 0)  # an int where `unbiased` goes: PyTorch refuses it too


def test_var_of_too_few_elements_is_nan_not_a_crash(device):
    # N <= correction: PyTorch gives nan (with a warning); backward must not raise ZeroDivisionError
    x = tl.tensor([1.5], dtype=tl.float64, device=device, requires_grad=True)
    with np.errstate(all="ignore"):
        v = x.var()
        v.backward()
    assert np.isnan(v.item()) and np.isnan(x.grad.detach().numpy()).all()


@pytest.mark.parametrize("op", ["max", "min"])
@given(sd=shape_and_dim(1, 3, 3), keepdim=st.booleans(), seed=seeds)
def test_max_min_with_dim_returns_values_and_indices(device, op, sd, keepdim, seed):
    shape, dim = sd
    x_np = distinct(seed, shape)
    x = leaf(x_np, device)
    values, indices = getattr(x, op)(dim, keepdim=keepdim)
    close(values, getattr(np, op)(x_np, axis=dim, keepdims=keepdim))
    arg = (np.argmax if op == "max" else np.argmin)(x_np, axis=dim)
    expected_idx = np.expand_dims(arg, dim) if keepdim else arg
    assert indices.dtype == tl.int64 and not indices.requires_grad
    np.testing.assert_array_equal(indices.detach().numpy(), expected_idx)
    r = getattr(tl, op)(x, dim, keepdim)  # named fields, like torch.return_types
    np.testing.assert_array_equal(r.indices.detach().numpy(), expected_idx)
    close(r.values, values.detach().numpy())
    assert tl.gradcheck(lambda t: getattr(t, op)(dim, keepdim=keepdim).values, x)


@pytest.mark.parametrize("op", ["max", "min"])
@given(shape=st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple), seed=seeds)
def test_max_min_without_dim_is_a_scalar(device, op, shape, seed):
    x_np = distinct(seed, shape)
    x = leaf(x_np, device)
    out = getattr(x, op)()
    close(out, getattr(np, op)(x_np))
    assert tl.gradcheck(lambda t: getattr(t, op)(), x)


@pytest.mark.parametrize("op", ["max", "min", "amax"])
def test_max_gradient_goes_only_to_the_arg_max(device, op):
    x_np = np.array([[0.5, 3.0, -1.0], [2.0, -4.0, 1.0]])
    x = leaf(x_np, device)
    out = x.amax(1) if op == "amax" else getattr(x, op)(1).values
    out.sum().backward()
    winners = (np.argmin if op == "min" else np.argmax)(x_np, axis=1)
    expected = np.zeros_like(x_np)
    expected[np.arange(2), winners] = 1.0
    np.testing.assert_array_equal(x.grad.detach().numpy(), expected)


def test_max_dim_with_ties_sends_the_whole_gradient_to_its_index(device):
    # max(dim) / min(dim) return indices, and PyTorch sends each slice's gradient to the element the index names
    x = tl.tensor([[1.0, 1.0], [2.0, 2.0]], dtype=tl.float64, device=device, requires_grad=True)
    values, indices = x.max(1)
    values.sum().backward()
    g = x.grad.detach().numpy()
    assert g.sum() == 2 and ((g == 0) | (g == 1)).all()
    np.testing.assert_array_equal(g.argmax(axis=1), indices.detach().numpy())  # it goes where the index points


# Ties: PyTorch's convention, not the finite difference's (which would see a kink and average one-sided slopes
# in a way that depends on the step): amax/amin and max()/min() without a dim share a slice's gradient evenly
# among its tied maxima; max(dim)/min(dim) send it to the returned index. The gradchecks above use distinct
# values, so they never straddle a tie; these compare against PyTorch (or its rule written out) at ties.
TIES = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
TIE_CASES = {
    "max()": lambda t: t.max(), "min()": lambda t: t.min(), "amax()": lambda t: t.amax(),
    "amax(1)": lambda t: t.amax(1), "amin(0)": lambda t: t.amin(0), "amin((0, 1))": lambda t: t.amin((0, 1)),
    "max(1)": lambda t: t.max(1).values, "min(1)": lambda t: t.min(1)[0], "max(0, keepdim)": lambda t: t.max(0, True)[0],
    "amax(-1, keepdim)": lambda t: t.amax(-1, keepdim=True),
}


@pytest.mark.parametrize("name", TIE_CASES)
def test_ties_against_torch(device, name):
    torch = pytest.importorskip("torch")
    fn = TIE_CASES[name]
    for x_np in (TIES, -TIES, np.full((2, 3), 0.5)):
        x, xt = leaf(x_np, device), torch.tensor(x_np, requires_grad=True)
        y, yt = fn(x), fn(xt)
        np.testing.assert_array_equal(y.detach().numpy(), yt.detach().numpy())
        w = np.arange(1.0, 1.0 + y.data.size).reshape(y.shape)  # a different weight per output
        (y * tl.tensor(w, device=device)).sum().backward()
        (yt * torch.tensor(w)).sum().backward()
        np.testing.assert_allclose(x.grad.detach().numpy(), xt.grad.detach().numpy(), rtol=1e-15)


def test_amax_ties_split_evenly(device):
    x = leaf(TIES, device)
    x.amax(1).sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])


def test_amax_with_nan_gives_nan_and_the_nans_share_the_gradient(device):
    x = leaf(np.array([1.0, np.nan, 3.0, np.nan]), device)
    y = x.amax()
    assert np.isnan(y.item())
    y.backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), [0.0, 0.5, 0.0, 0.5])


def test_max_of_a_tensor_is_max_of_two_tensors(device):
    a = tl.tensor([1.0, 5.0], device=device)
    b = tl.tensor([3.0, 2.0], device=device)
    np.testing.assert_array_equal(a.max(b).detach().numpy(), [3.0, 5.0])
    np.testing.assert_array_equal(tl.min(a, b).detach().numpy(), [1.0, 2.0])


@given(sd=shape_and_dims(1, 3, 3), keepdim=st.booleans(), seed=seeds)
def test_logsumexp_is_stable_for_large_inputs(device, sd, keepdim, seed):
    shape, dim = sd
    x_np = array(seed, shape) + 1000.0  # exp would overflow without the max shift
    x = leaf(x_np, device)
    m = np.max(x_np, axis=np_axis(dim), keepdims=True)
    expected = np.log(np.sum(np.exp(x_np - m), axis=np_axis(dim), keepdims=True)) + m
    if not keepdim:
        expected = np.squeeze(expected, axis=np_axis(dim))
    close(x.logsumexp(dim, keepdim), expected)


def test_logsumexp_of_all_minus_infinity_is_minus_infinity(device):
    x = tl.tensor([[-np.inf, -np.inf], [0.0, -np.inf]], device=device)
    np.testing.assert_array_equal(x.logsumexp(1).detach().numpy(), [-np.inf, 0.0])


def test_reduction_over_dim_zero_of_a_0d_tensor(device):
    # PyTorch accepts dim 0 / -1 on a 0-d tensor and reduces nothing
    x = leaf(np.array(1.5), device)
    for fn in (lambda t: t.sum(0), lambda t: t.mean(-1), lambda t: t.amax(0), lambda t: t.logsumexp(0)):
        out = fn(x)
        assert out.shape == () and out.item() == pytest.approx(1.5)
        assert tl.gradcheck(fn, x)


@pytest.mark.parametrize("name", ["sum", "mean"])
def test_reduction_gradient_accumulates_over_two_backwards(device, name):
    # the gradient of a reduction is a broadcast; it must come back writable so .grad can accumulate
    x = leaf(np.ones((2, 3)), device)
    for _ in range(2):
        getattr(x, name)().backward()
    expected = 2.0 if name == "sum" else 2.0 / 6
    np.testing.assert_allclose(x.grad.detach().numpy(), np.full((2, 3), expected))
    x.grad.zero_()  # in-place on the grad (what optimizers do) works too
    assert (x.grad.detach().numpy() == 0).all()


# ---------------------------------------------------------------- dtypes
REDUCE_OPS = {
    "sum": lambda t: t.sum(), "sum_dim": lambda t: t.sum(1, keepdim=True), "mean": lambda t: t.mean(0),
    "var": lambda t: t.var(1), "std": lambda t: t.std(), "max": lambda t: t.max(), "max_dim": lambda t: t.max(1)[0],
    "min_dim": lambda t: t.min(-1).values, "amax": lambda t: t.amax((0, 1)), "amin": lambda t: t.amin(0),
    "logsumexp": lambda t: t.logsumexp(-1), "mean_scaled": lambda t: t.mean() * 2.5,
}


@pytest.mark.parametrize("name", REDUCE_OPS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_reductions_keep_dtype_and_grad_dtype(device, name, dtype):
    x = tl.tensor(distinct(0, (2, 3)), dtype=dtype, device=device, requires_grad=True)
    out = REDUCE_OPS[name](x)
    assert out.dtype == np.dtype(dtype)
    out.sum().backward()
    assert x.grad.dtype == np.dtype(dtype) and x.grad.shape == x.shape


def test_sum_of_ints_and_bools(device):
    x = tl.tensor([[1, 2], [3, 4]], device=device)
    assert x.sum().dtype == tl.int64 and x.sum().item() == 10
    np.testing.assert_array_equal(x.sum(0).detach().numpy(), [4, 6])
    b = tl.tensor([True, False, True], device=device)
    assert b.sum().dtype == tl.int64 and b.sum().item() == 2


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("fn", [lambda t: t.sum(2), lambda t: t.mean(-3), lambda t: t.amax((0, 5)),
                                lambda t: t.var(3), lambda t: t.max(2), lambda t: t.logsumexp(-3)])
def test_dim_out_of_range(device, fn):
    with pytest.raises(IndexError, match="out of range"):
        fn(tl.ones(2, 3, device=device))


@pytest.mark.parametrize("dim", [(0, 0), (1, -1)])
def test_repeated_dim(device, dim):
    with pytest.raises(RuntimeError, match="repeated"):
        tl.ones(2, 3, device=device).sum(dim)


def test_max_of_empty_tensor(device):
    with pytest.raises(RuntimeError, match="empty"):
        tl.zeros(0, device=device).max()


ZERO_SIZE = {
    "max()": lambda t: t.max(), "amax()": lambda t: t.amax(), "amin()": lambda t: t.amin(), "min()": lambda t: t.min(),
    "amax(1)": lambda t: t.amax(1), "amax(0)": lambda t: t.amax(0), "max(1)": lambda t: t.max(1).values,
    "max(0)": lambda t: t.max(0).values, "amin(1)": lambda t: t.amin(1), "min(1)": lambda t: t.min(1).values,
    "argmax(1)": lambda t: t.argmax(1), "argmax()": lambda t: t.argmax(), "argmin(0)": lambda t: t.argmin(0),
    "logsumexp(1)": lambda t: t.logsumexp(1), "logsumexp(0)": lambda t: t.logsumexp(0),
    "logsumexp((0, 1))": lambda t: t.logsumexp((0, 1)), "logsumexp(1, keepdim)": lambda t: t.logsumexp(1, True),
    "sum(1)": lambda t: t.sum(1), "mean(1)": lambda t: t.mean(1), "std(1)": lambda t: t.std(1),
}


@pytest.mark.parametrize("name", ZERO_SIZE)
def test_zero_size_dims_like_torch(device, name):
    # PyTorch's answer where it has one (logsumexp of nothing is -inf, a reduction over a non-empty dim of an
    # empty tensor is empty) and its exception type where it has none (IndexError / RuntimeError)
    torch = pytest.importorskip("torch")
    fn = ZERO_SIZE[name]
    try:
        ref = fn(torch.zeros(2, 0, dtype=torch.float64, requires_grad=True))
    except (IndexError, RuntimeError) as e:
        with pytest.raises(type(e)):
            fn(leaf(np.zeros((2, 0)), device))
        return
    x = leaf(np.zeros((2, 0)), device)
    with np.errstate(all="ignore"):
        out = fn(x)
    assert out.shape == tuple(ref.shape)
    np.testing.assert_array_equal(out.detach().numpy(), ref.detach().numpy())
    if out.requires_grad:
        with np.errstate(all="ignore"):
            out.sum().backward()
        assert x.grad.shape == (2, 0)


def test_mean_of_ints_asks_for_a_float(device):
    with pytest.raises(RuntimeError, match="int64"):
        tl.tensor([1, 2], device=device).mean()
    out = tl.tensor([1, 2], device=device).mean(dtype=tl.float64)  # unless a dtype is given, as in PyTorch
    assert out.dtype == tl.float64 and out.item() == 1.5


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("shape", [(3, 4), (5,), (), (2, 1, 3)])
def test_argmax_keepdim_without_dim_like_torch(device, name, shape):
    torch = pytest.importorskip("torch")
    x_np = np.random.default_rng(0).standard_normal(shape)
    for kwargs in ({"keepdim": True}, {}, {"dim": 0, "keepdim": True}, {"dim": -1}):
        if not shape and "dim" in kwargs:
            continue
        out, ref = getattr(tl.tensor(x_np, device=device), name)(**kwargs), getattr(torch.tensor(x_np), name)(**kwargs)
        assert out.shape == tuple(ref.shape) and out.dtype == tl.int64
        np.testing.assert_array_equal(out.detach().numpy(), ref.detach().numpy())


@pytest.mark.parametrize("dim", [[], ()])
@pytest.mark.parametrize("keepdim", [False, True])
def test_sum_over_an_empty_dim_list_reduces_everything(device, dim, keepdim):
    x_np = np.arange(6.0).reshape(2, 3)
    x = leaf(x_np, device)
    close(x.sum(dim=dim, keepdim=keepdim), np.sum(x_np, keepdims=keepdim))
    close(x.mean(dim, keepdim), np.mean(x_np, keepdims=keepdim))
    close(x.amax(dim, keepdim), np.max(x_np, keepdims=keepdim))
    assert tl.gradcheck(lambda t: t.sum(dim=dim, keepdim=keepdim), x)


@pytest.mark.parametrize("keepdim", [False, True])
def test_max_dim_of_a_0d_tensor(device, keepdim):
    x = leaf(np.array(1.5), device)
    values, indices = x.max(0, keepdim=keepdim)
    assert values.shape == indices.shape == ()
    assert values.item() == 1.5 and indices.item() == 0


def test_logsumexp_of_ints_is_float32(device):
    out = tl.tensor([[1, 2], [3, 4]], device=device).logsumexp(1)
    assert out.dtype == tl.float32
    np.testing.assert_allclose(out.detach().numpy(), np.log(np.exp([[1.0, 2.0], [3.0, 4.0]]).sum(1)), rtol=1e-6)


def test_var_std_of_ints_ask_for_a_float(device):
    for fn in (lambda t: t.var(), lambda t: t.std(0)):
        with pytest.raises(RuntimeError, match="int64"):
            fn(tl.tensor([1, 2, 4], device=device))


def test_numpy_integer_dims(device):
    x_np = np.arange(6.0).reshape(2, 3)
    x = leaf(x_np, device)
    close(x.sum(np.int64(1)), x_np.sum(1))
    close(x.mean((np.int32(0), -1)), x_np.mean((0, 1)))
