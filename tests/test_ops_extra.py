"""The newer elementwise functions (sin, cos, erf, log1p, ..., rounding), comparisons and logic, arithmetic
with PyTorch's keywords, the functional spellings (tensorlite.f(x) for x.f()) and NumPy ufuncs on tensors.
Forward against NumPy, float64 gradchecks, PyTorch as an oracle for values, dtypes and gradients (skipped
without torch)."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tensorlite as tl
from strategies import array, leaf, push_away, seeds, shapes


def close(t, expected, rtol=1e-10, atol=1e-12):
    assert t.shape == np.shape(expected), (t.shape, np.shape(expected))
    np.testing.assert_allclose(t.detach().numpy(), expected, rtol=rtol, atol=atol)


# name: (NumPy reference, low, high)
UNARY = {
    "sin": (np.sin, -4, 4), "cos": (np.cos, -4, 4), "erf": (np.vectorize(math.erf), -3, 3),
    "log1p": (np.log1p, -0.7, 3), "expm1": (np.expm1, -3, 3), "log2": (np.log2, 0.3, 3), "log10": (np.log10, 0.3, 3),
    "reciprocal": (np.reciprocal, 0.3, 3), "square": (np.square, -2, 2), "neg": (np.negative, -2, 2),
    "rsqrt": (lambda x: 1 / np.sqrt(x), 0.3, 3),
}


@pytest.mark.parametrize("name", UNARY)
@given(shape=shapes(0, 3, 1, 4), seed=seeds)
def test_unary(device, name, shape, seed):
    ref, low, high = UNARY[name]
    x_np = array(seed, shape, low, high)
    x = leaf(x_np, device)
    close(getattr(x, name)(), ref(x_np))
    close(getattr(tl, name)(x), ref(x_np))
    assert tl.gradcheck(lambda t: getattr(tl, name)(t), x)


@pytest.mark.parametrize("name", list(UNARY) + ["exp", "log", "sqrt", "tanh", "sigmoid", "abs", "relu"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_unary_against_torch(device, name, dtype):
    torch = pytest.importorskip("torch")
    x_np = np.array([1.5, 1.0, 2.0, 3.0]).astype(dtype)
    out, ref = getattr(tl, name)(tl.tensor(x_np, device=device)), getattr(torch, name)(torch.tensor(x_np))
    assert out.dtype == str(ref.dtype).replace("torch.", "")  # int input: float32 or int64, as torch
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=1e-6 if dtype != "float64" else 1e-13)
    if dtype == "float64":
        x, xt = leaf(x_np, device), torch.tensor(x_np, requires_grad=True)
        getattr(tl, name)(x).sum().backward()
        getattr(torch, name)(xt).sum().backward()
        np.testing.assert_allclose(x.grad.detach().numpy(), xt.grad.detach().numpy(), rtol=1e-13)


@pytest.mark.parametrize("name", ["floor", "ceil", "round", "trunc", "sign"])
def test_rounding_has_a_zero_gradient_like_torch(device, name):
    torch = pytest.importorskip("torch")
    x_np = np.array([-1.5, -0.5, 0.0, 0.5, 1.5, 2.5, 2.7])
    x, xt = leaf(x_np, device), torch.tensor(x_np, requires_grad=True)
    y, yt = getattr(tl, name)(x), getattr(torch, name)(xt)
    np.testing.assert_array_equal(y.detach().numpy(), yt.detach().numpy())  # round: halves to even in both
    assert y.requires_grad
    y.sum().backward()
    yt.sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), xt.grad.detach().numpy())
    i = getattr(tl, name)(tl.tensor([1, -2], device=device))
    assert i.dtype == tl.int64 and i.tolist() == getattr(torch, name)(torch.tensor([1, -2])).tolist()


def test_round_with_decimals(device):
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(tl.tensor([1.2345, 2.5], device=device).round(decimals=2).detach().numpy(),
                               torch.round(torch.tensor([1.2345, 2.5]), decimals=2).detach().numpy())


# ---------------------------------------------------------------- arithmetic with PyTorch's keywords
def test_add_sub_mul_div_functions_against_torch(device):
    torch = pytest.importorskip("torch")
    for a_v, b_v in (([7.0, -7.0, 5.5], [2.0, 2.0, -2.0]), ([7, -7, 5], [2, 2, -2])):
        a, b, at, bt = tl.tensor(a_v, device=device), tl.tensor(b_v, device=device), torch.tensor(a_v), torch.tensor(b_v)
        for f in (lambda m, x, y: m.add(x, y, alpha=3), lambda m, x, y: m.sub(x, 2, alpha=2),
                  lambda m, x, y: m.mul(x, y), lambda m, x, y: m.div(x, y), lambda m, x, y: m.add(2, y),
                  lambda m, x, y: m.div(x, y, rounding_mode="floor"), lambda m, x, y: m.div(x, y, rounding_mode="trunc"),
                  lambda m, x, y: m.divide(x, 2, rounding_mode="trunc"), lambda m, x, y: m.true_divide(x, y),
                  lambda m, x, y: x.subtract(y), lambda m, x, y: x.multiply(y), lambda m, x, y: m.pow(2, y.abs()),
                  lambda m, x, y: m.maximum(x, y), lambda m, x, y: m.negative(x)):
            out, ref = f(tl, a, b), f(torch, at, bt)
            assert out.dtype == str(ref.dtype).replace("torch.", ""), f
            np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="rounding_mode"):
        tl.div(a, b, rounding_mode="round")


def test_div_with_rounding_has_a_zero_gradient(device):
    x = leaf(np.array([7.0, -7.0]), device)
    tl.div(x, 2, rounding_mode="floor").sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), [0.0, 0.0])


# ---------------------------------------------------------------- comparisons and logic
def test_comparisons_and_logic_against_torch(device):
    torch = pytest.importorskip("torch")
    a_v, b_v = [1.0, 2.0, np.nan, np.inf, 0.0], [1.0, 3.0, np.nan, np.inf, -0.0]
    a, b, at, bt = tl.tensor(a_v, device=device), tl.tensor(b_v, device=device), torch.tensor(a_v), torch.tensor(b_v)
    for name in ("eq", "ne", "lt", "le", "gt", "ge", "greater", "less", "greater_equal", "less_equal", "not_equal",
                 "logical_and", "logical_or", "logical_xor", "isclose"):
        out, ref = getattr(tl, name)(a, b), getattr(torch, name)(at, bt)
        assert out.dtype == tl.bool_ and not out.requires_grad
        np.testing.assert_array_equal(out.detach().numpy(), ref.detach().numpy(), err_msg=name)
        np.testing.assert_array_equal(getattr(a, name)(b).detach().numpy(), ref.detach().numpy(), err_msg=name)
        if not name.startswith("logical") and name != "isclose":  # (those take tensors only in torch)
            np.testing.assert_array_equal(getattr(tl, name)(a, 1.0).detach().numpy(), getattr(torch, name)(at, 1.0).detach().numpy())
    for name in ("isnan", "isinf", "isfinite", "logical_not"):
        np.testing.assert_array_equal(getattr(tl, name)(a).detach().numpy(), getattr(torch, name)(at).detach().numpy())
        ints = tl.tensor([0, 3], device=device)
        np.testing.assert_array_equal(getattr(ints, name)().detach().numpy(), getattr(torch, name)(torch.tensor([0, 3])).detach().numpy())
    assert tl.isclose(a, b, equal_nan=True).tolist() == torch.isclose(at, bt, equal_nan=True).tolist()
    assert tl.equal(a[:2], a[:2]) and not tl.equal(a[:2], b[:2]) and not tl.equal(a[:2], a[:3])
    assert tl.equal(tl.ones(2, device=device), tl.ones(2, dtype=tl.int64, device=device))  # dtypes may differ
    assert tl.allclose(a[:2], a[:2] + 1e-9) is torch.allclose(at[:2], at[:2] + 1e-9) is True
    with pytest.raises(RuntimeError, match="float32.*float64"):
        tl.allclose(tl.ones(2, device=device), tl.ones(2, dtype=tl.float64, device=device))


# ---------------------------------------------------------------- the functional spellings
# The top-level functions PyTorch tutorials call on tensors; each must exist and agree with the method.
FUNCTIONAL = ["abs", "add", "all", "allclose", "amax", "amin", "any", "argmax", "argmin", "argsort", "ceil", "clamp",
              "clip", "cos", "cumsum", "div", "divide", "eq", "equal", "erf", "exp", "expm1", "floor", "gather", "ge",
              "gt", "isclose", "isfinite", "isinf", "isnan", "le", "log", "log10", "log1p", "log2", "logical_and",
              "logical_not", "logical_or", "logsumexp", "lt", "masked_fill", "max", "maximum", "mean", "min",
              "minimum", "mul", "multiply", "ne", "neg", "negative", "pow", "prod", "reciprocal", "relu", "round",
              "rsqrt", "sigmoid", "sign", "sin", "softmax", "sort", "sqrt", "square", "std", "sub", "subtract", "sum",
              "tanh", "topk", "true_divide", "trunc", "var", "where"]


@pytest.mark.parametrize("name", FUNCTIONAL)
def test_functional_names_exist_like_torch(name):
    assert callable(getattr(tl, name))
    torch = pytest.importorskip("torch")
    assert hasattr(torch, name)


# ---------------------------------------------------------------- NumPy ufuncs
UFUNCS = [(np.multiply, 2), (np.add, 2), (np.subtract, 2), (np.true_divide, 2), (np.power, 2), (np.maximum, 2),
          (np.minimum, 2), (np.exp, 1), (np.log, 1), (np.sqrt, 1), (np.tanh, 1), (np.sin, 1), (np.cos, 1),
          (np.negative, 1), (np.absolute, 1), (np.square, 1), (np.log1p, 1), (np.expm1, 1), (np.reciprocal, 1)]


@pytest.mark.parametrize("ufunc, nargs", UFUNCS, ids=lambda u: getattr(u, "__name__", str(u)))
def test_numpy_ufuncs_return_tensors_that_keep_the_graph(device, ufunc, nargs):
    x_np = np.array([0.5, 1.5, 2.0])
    x = leaf(x_np, device)
    out = ufunc(*[x] * nargs)
    assert isinstance(out, tl.Tensor) and out.requires_grad and out.dtype == tl.float64
    close(out, ufunc(*[x_np] * nargs))
    assert tl.gradcheck(lambda t: ufunc(*[t] * nargs), x)


def test_numpy_ufuncs_with_arrays_and_numpy_scalars(device):
    torch = pytest.importorskip("torch")
    t, tt = tl.tensor([1.0, 2.0, 3.0], device=device), torch.tensor([1.0, 2.0, 3.0])
    for f in (lambda u: np.multiply(u, u), lambda u: np.exp(u), lambda u: np.float64(2.0) * u,
              lambda u: np.float32(2.0) + u, lambda u: np.add(u, 1)):
        out, ref = f(t), f(tt)
        assert isinstance(out, tl.Tensor) and out.dtype == str(ref.dtype).replace("torch.", "")
        np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=1e-6)
    # ndarray <op> Tensor still gives a Tensor (PyTorch refuses some of these; the array's dtype takes part)
    for out in (np.array([1.0, 2.0, 3.0]) + t, np.array([1.0, 2.0, 3.0]) * t, np.array([1, 2, 3]) - t):
        assert isinstance(out, tl.Tensor)
    assert (np.array([1, 2, 3]) - t).dtype == tl.float32
    assert np.greater(t, 1.5).dtype == tl.bool_  # (torch gives uint8 here, through NumPy's own wrapping)
    x = leaf(np.array([1.0, 2.0]), device)
    y = np.array([3.0, 4.0]) * x
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), [3.0, 4.0])


def test_unmapped_ufuncs_raise_type_error_not_a_silent_ndarray(device):
    t = tl.tensor([1.0, 2.0], device=device)
    for f in (lambda: np.arctan2(t, t), lambda: np.add.reduce(t), lambda: np.hypot(t, t),
              lambda: np.exp(tl.ones(2, requires_grad=True, device=device), out=np.zeros(2))):
        with pytest.raises(TypeError, match="not supported"):
            f()
    out = np.zeros(2)
    np.exp(t.cpu(), out=out)  # out= into an ndarray, with nothing to differentiate: plain NumPy
    np.testing.assert_allclose(out, np.exp([1.0, 2.0]))


# ---------------------------------------------------------------- norm, all, any
@given(shape=shapes(0, 3, 1, 4), seed=seeds, p=st.sampled_from([2, "fro", 1]), dim_kind=st.sampled_from(["all", "last"]),
       keepdim=st.booleans())
def test_norm(device, shape, seed, p, dim_kind, keepdim):
    x_np = push_away(array(seed, shape), [0.0])  # |x| has a kink at 0 for p=1
    x = leaf(x_np, device)
    dim = -1 if dim_kind == "last" and shape else None
    axis = None if dim is None else -1
    ref = np.sqrt((x_np ** 2).sum(axis=axis, keepdims=keepdim)) if p != 1 else np.abs(x_np).sum(axis=axis, keepdims=keepdim)
    close(x.norm(p, dim, keepdim), ref)
    assert tl.gradcheck(lambda t: tl.norm(t, p, dim, keepdim), x)


@pytest.mark.parametrize("values", [[3.0, 4.0], [0.0, 0.0], [[1.0, 2.0], [0.0, 0.0]], 0.0])
@pytest.mark.parametrize("kwargs", [{}, {"p": 1}, {"dim": -1}, {"dim": -1, "keepdim": True}, {"p": float("inf")}])
def test_norm_against_torch_including_zero_vectors(device, values, kwargs):
    # the 2-norm's gradient at a zero vector is 0 (PyTorch's subgradient), not the nan of sqrt(sum(x^2))
    torch = pytest.importorskip("torch")
    if np.ndim(values) == 0 and "dim" in kwargs:
        return
    x, xt = leaf(np.array(values), device), torch.tensor(values, dtype=torch.float64, requires_grad=True)
    y, yt = tl.norm(x, **kwargs), torch.norm(xt, **kwargs)
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-14)
    y.sum().backward()
    yt.sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), xt.grad.detach().numpy(), rtol=1e-14)


def test_all_any_with_dims_against_torch(device):
    torch = pytest.importorskip("torch")
    x_np = np.array([[True, False, True], [True, True, True]])
    for name in ("all", "any"):
        for kwargs in ({}, {"dim": 1}, {"dim": 0, "keepdim": True}):
            for v in (x_np, x_np.astype(np.float32)):
                out, ref = getattr(tl.tensor(v, device=device), name)(**kwargs), getattr(torch.tensor(v), name)(**kwargs)
                assert out.dtype == tl.bool_ and out.shape == tuple(ref.shape)
                np.testing.assert_array_equal(out.detach().numpy(), ref.detach().numpy())


FLOAT32_FNS = {
    "sin": lambda t: t.sin(), "cos": lambda t: t.cos(), "erf": lambda t: t.erf(), "log1p": lambda t: t.log1p(),
    "expm1": lambda t: t.expm1(), "log2": lambda t: t.log2(), "log10": lambda t: t.log10(),
    "reciprocal": lambda t: t.reciprocal(), "square": lambda t: t.square(), "floor": lambda t: t.floor(),
    "round": lambda t: t.round(), "sign": lambda t: t.sign(), "prod": lambda t: t.prod(1), "cumsum": lambda t: t.cumsum(0),
    "sort": lambda t: t.sort(1).values, "topk": lambda t: t.topk(1).values, "gather": lambda t: t.gather(1, tl.tensor([[0], [1]], device=t.device)),
    "norm": lambda t: t.norm(), "amax": lambda t: t.amax(1), "max": lambda t: t.max(), "std": lambda t: t.std(0),
    "clamp_t": lambda t: t.clamp(tl.zeros(2, device=t.device), tl.ones(1, device=t.device)),
    "masked_fill_t": lambda t: t.masked_fill(t > 1, tl.tensor(0.5, device=t.device)),
    "maximum": lambda t: t.maximum(tl.ones(2, device=t.device)), "ufunc": lambda t: np.exp(t) * np.float64(2.0),
    "div_floor": lambda t: tl.div(t, 2, rounding_mode="floor"),
}


@pytest.mark.parametrize("name", FLOAT32_FNS)
def test_float32_stays_float32_and_so_does_its_grad(device, name):
    x = tl.tensor([[0.5, 1.25], [2.0, 1.0]], device=device, requires_grad=True)
    y = FLOAT32_FNS[name](x)
    assert y.dtype == tl.float32
    y.sum().backward()
    assert x.grad.dtype == tl.float32 and x.grad.shape == x.shape


@pytest.mark.parametrize("name", ["floor", "ceil", "round", "trunc", "sign"])
@given(shape=shapes(0, 3, 1, 4), seed=seeds)
def test_rounding_gradcheck_away_from_the_jumps(device, name, shape, seed):
    # piecewise constant: away from its jumps (integers and halves) the finite difference is 0, as is backward
    x_np = np.floor(array(seed, shape, -3, 3)) + np.where(array(seed + 1, shape) > 0, 0.2, 0.7)
    x = leaf(x_np, device)
    close(getattr(x, name)(), getattr(np, {"round": "round"}.get(name, name))(x_np))
    assert tl.gradcheck(lambda t: getattr(tl, name)(t), x)
