"""Elementwise primitives: forward against plain NumPy, backward against finite differences (float64),
dtypes with Python scalars, and the errors for bad input."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tensorlite as tl
from strategies import array, broadcastable_shapes, grid_pair, leaf, push_away, seeds, shapes

small = shapes(0, 3, 1, 3)  # gradcheck runs the function twice per element: keep tensors tiny


def close(t, expected, rtol=1e-10, atol=1e-12):
    assert t.shape == np.shape(expected)
    np.testing.assert_allclose(t.detach().numpy(), expected, rtol=rtol, atol=atol)


# ---------------------------------------------------------------- binary ops, with broadcasting
def positive(seed, shape):
    return array(seed, shape, 0.5, 2.0)


def nonzero(seed, shape):
    return array(seed, shape, away_from=0.0, gap=0.5)  # |b| >= 0.5


# name: (tensorlite function, NumPy reference, data for a, data for b)
BINARY = {
    "add": (lambda a, b: a + b, np.add, array, array),
    "sub": (lambda a, b: a - b, np.subtract, array, array),
    "mul": (lambda a, b: a * b, np.multiply, array, array),
    "div": (lambda a, b: a / b, np.divide, array, nonzero),
    "pow": (lambda a, b: a ** b, np.power, positive, array),
}


@pytest.mark.parametrize("name", BINARY)
@given(pair=broadcastable_shapes(0, 3, 3), seed_a=seeds, seed_b=seeds)
def test_binary_broadcasting(device, name, pair, seed_a, seed_b):
    fn, ref, make_a, make_b = BINARY[name]
    a_np, b_np = make_a(seed_a, pair[0]), make_b(seed_b, pair[1])
    a, b = leaf(a_np, device), leaf(b_np, device)
    close(fn(a, b), ref(a_np, b_np))
    assert tl.gradcheck(fn, a, b)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
@given(pair=broadcastable_shapes(0, 3, 3), seed_a=seeds, seed_b=seeds)
def test_maximum_minimum(device, name, pair, seed_a, seed_b):
    a_np, b_np = grid_pair(seed_a, seed_b, *pair)  # never equal: no ties for finite differences to straddle
    a, b = leaf(a_np, device), leaf(b_np, device)
    close(getattr(a, name)(b), getattr(np, name)(a_np, b_np))
    close(getattr(tl, name)(b, a), getattr(np, name)(b_np, a_np))
    assert tl.gradcheck(lambda x, y: getattr(x, name)(y), a, b)


@given(pair=broadcastable_shapes(0, 3, 3), seed_a=seeds, seed_b=seeds)
def test_tensor_op_constant_tensor(device, pair, seed_a, seed_b):
    # only one side requires grad: the other gets no gradient and is left alone
    a = leaf(array(seed_a, pair[0]), device)
    b = tl.tensor(array(seed_b, pair[1]), dtype=tl.float64, device=device)
    assert tl.gradcheck(lambda x: x * b - b / (1 + x * x), a)
    assert b.grad is None


@given(shape=small, seed=seeds, scalar=st.sampled_from([-2.5, -1, 0.5, 3]))
def test_ops_with_python_scalars(device, shape, seed, scalar):
    x_np = nonzero(seed, shape)
    x = leaf(x_np, device)
    cases = [(lambda t: t + scalar, x_np + scalar), (lambda t: scalar + t, scalar + x_np),
             (lambda t: t - scalar, x_np - scalar), (lambda t: scalar - t, scalar - x_np),
             (lambda t: t * scalar, x_np * scalar), (lambda t: scalar * t, scalar * x_np),
             (lambda t: t / scalar, x_np / scalar), (lambda t: scalar / t, scalar / x_np)]
    for fn, expected in cases:
        close(fn(x), expected)
        assert tl.gradcheck(fn, x)


# ---------------------------------------------------------------- pow in its three forms
@given(shape=small, seed=seeds, exponent=st.sampled_from([2, 3, 0.5, -1.5, 2.5, 1]))
def test_pow_tensor_scalar(device, shape, seed, exponent):
    x_np = positive(seed, shape)
    x = leaf(x_np, device)
    close(x ** exponent, x_np ** exponent)
    close(x.pow(exponent), x_np ** exponent)
    assert tl.gradcheck(lambda t: t ** exponent, x)


@given(shape=small, seed=seeds, exponent=st.sampled_from([2, 3, -1]))
def test_pow_negative_base_integer_exponent(device, shape, seed, exponent):
    x_np = nonzero(seed, shape)  # negative bases are fine with whole exponents
    x = leaf(x_np, device)
    close(x ** exponent, x_np ** float(exponent))
    assert tl.gradcheck(lambda t: t ** exponent, x)


@given(shape=small, seed=seeds, base=st.sampled_from([0.5, 2, 2.5, math.e]))
def test_pow_scalar_tensor(device, shape, seed, base):
    x_np = array(seed, shape)
    x = leaf(x_np, device)
    close(base ** x, base ** x_np)
    assert tl.gradcheck(lambda t: base ** t, x)


def test_pow_zero_exponent_has_zero_gradient_at_zero(device):
    # d(x^0)/dx = 0 everywhere, including x = 0 where the formula b x^(b-1) would give 0 * inf
    x = tl.tensor([0.0, 2.0], dtype=tl.float64, device=device, requires_grad=True)
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), [0.0, 0.0])
    e = tl.tensor([0.0, 1.0], dtype=tl.float64, device=device, requires_grad=True)
    (tl.tensor([0.0, 0.0], dtype=tl.float64, device=device) ** e).sum().backward()
    assert np.isfinite(e.grad.detach().numpy()).all()


# ---------------------------------------------------------------- unary ops
def _erf_ref(x):
    return np.vectorize(math.erf)(x)


# name: (tensorlite function, NumPy reference, low, high, kinks to stay away from)
UNARY = {
    "neg": (lambda t: -t, np.negative, -2, 2, ()),
    "exp": (lambda t: t.exp(), np.exp, -3, 3, ()),
    "log": (lambda t: t.log(), np.log, 0.3, 3, ()),
    "sqrt": (lambda t: t.sqrt(), np.sqrt, 0.3, 3, ()),
    "abs": (lambda t: t.abs(), np.abs, -2, 2, (0.0,)),
    "tanh": (lambda t: t.tanh(), np.tanh, -3, 3, ()),
    "sigmoid": (lambda t: t.sigmoid(), lambda x: 1 / (1 + np.exp(-x)), -6, 6, ()),
    "relu": (lambda t: t.relu(), lambda x: np.maximum(x, 0), -2, 2, (0.0,)),
    "gelu_exact": (lambda t: t.gelu(), lambda x: x * 0.5 * (1 + _erf_ref(x / math.sqrt(2))), -3, 3, ()),
    "gelu_tanh": (lambda t: tl.gelu(t, approximate="tanh"),
                  lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))), -3, 3, ()),
    "clamp_both": (lambda t: t.clamp(-0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7), -2, 2, (-0.5, 0.7)),
    "clamp_min": (lambda t: t.clamp(min=-0.5), lambda x: np.maximum(x, -0.5), -2, 2, (-0.5,)),
    "clamp_max": (lambda t: t.clip(max=0.7), lambda x: np.minimum(x, 0.7), -2, 2, (0.7,)),
    "rsqrt": (lambda t: t.rsqrt(), lambda x: 1 / np.sqrt(x), 0.3, 3, ()),
}


@pytest.mark.parametrize("name", UNARY)
@given(shape=shapes(0, 3, 1, 4), seed=seeds)
def test_unary(device, name, shape, seed):
    fn, ref, low, high, kinks = UNARY[name]
    x_np = push_away(array(seed, shape, low, high), kinks)
    x = leaf(x_np, device)
    close(fn(x), ref(x_np))
    assert tl.gradcheck(fn, x)


def test_functional_spellings(device):
    x_np = np.array([0.3, 1.2, 2.5])
    x = leaf(x_np, device)
    for name in ("exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu"):
        close(getattr(tl, name)(x), getattr(x, name)())
    close(tl.clamp(x, 0.5, 2.0), np.clip(x_np, 0.5, 2.0))
    close(tl.pow(x, 2), x_np ** 2)


def test_relu_of_minus_infinity_is_zero(device):
    x = tl.tensor([-np.inf, -1.0, 0.0, 2.0, np.inf], device=device)
    np.testing.assert_array_equal(x.relu().detach().numpy(), [0.0, 0.0, 0.0, 2.0, np.inf])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_keeps_relative_precision_in_the_tails(device, dtype):
    x_np = np.array([-80.0, -40.0, -20.0, 0.0, 20.0, 40.0, 80.0], dtype=dtype)
    expected = 1 / (1 + np.exp(-x_np.astype(np.float64)))  # no overflow at these magnitudes in float64
    out = tl.tensor(x_np, device=device).sigmoid()
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-6 if dtype == "float32" else 1e-14)


def test_sigmoid_does_not_overflow(device):
    x = tl.tensor([-1000.0, 1000.0], device=device, requires_grad=True)
    with np.errstate(over="raise"):
        y = x.sigmoid()
        y.sum().backward()
    np.testing.assert_array_equal(y.detach().numpy(), [0.0, 1.0])
    np.testing.assert_array_equal(x.grad.detach().numpy(), [0.0, 0.0])


def test_gelu_exact_matches_math_erf_pointwise(device):
    xs = [-3.0, -1.0, -0.1, 0.0, 0.5, 2.0]
    out = tl.tensor(xs, dtype=tl.float64, device=device).gelu().tolist()
    for x, y in zip(xs, out):
        assert y == pytest.approx(x * 0.5 * (1 + math.erf(x / math.sqrt(2))), rel=1e-12, abs=1e-15)


def test_clamp_gradient_at_the_bounds_flows(device):
    # at exactly min or max the input is kept, and so is its gradient (PyTorch's convention)
    x = tl.tensor([-1.0, -0.5, 0.0, 0.7, 1.0], dtype=tl.float64, device=device, requires_grad=True)
    x.clamp(-0.5, 0.7).sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), [0.0, 1.0, 1.0, 1.0, 0.0])


# ---------------------------------------------------------------- where and masked_fill
@given(pair=broadcastable_shapes(0, 3, 3), seed=seeds, cond_from=st.sampled_from(["a", "b", "both"]))
def test_where(device, pair, seed, cond_from):
    sa, sb = pair
    cond_shape = {"a": sa, "b": sb, "both": np.broadcast_shapes(sa, sb)}[cond_from]
    cond_np = np.random.default_rng(seed).random(cond_shape) < 0.5
    a_np, b_np = array(seed + 1, sa), array(seed + 2, sb)
    a, b = leaf(a_np, device), leaf(b_np, device)
    cond = tl.tensor(cond_np, device=device)
    close(tl.where(cond, a, b), np.where(cond_np, a_np, b_np))
    assert tl.gradcheck(lambda x, y: tl.where(cond, x, y), a, b)


@given(shape=small, seed=seeds)
def test_where_with_a_scalar_side(device, shape, seed):
    x_np = array(seed, shape)
    x = leaf(x_np, device)
    cond = x > 0
    close(tl.where(cond, x, 0.0), np.where(x_np > 0, x_np, 0.0))
    close(tl.where(cond, -1.0, x), np.where(x_np > 0, -1.0, x_np))
    assert tl.gradcheck(lambda t: tl.where(cond, 2.0, t), x)


@given(pair=broadcastable_shapes(0, 3, 3), seed=seeds, value=st.sampled_from([0.0, -1e9, 3.5, float("-inf")]))
def test_masked_fill(device, pair, seed, value):
    # the mask and the tensor broadcast together, in either direction (as torch.Tensor.masked_fill does)
    sx, sm = pair
    x_np = array(seed, sx)
    mask_np = np.random.default_rng(seed).random(sm) < 0.5
    x = leaf(x_np, device)
    mask = tl.tensor(mask_np, device=device)
    close(x.masked_fill(mask, value), np.where(mask_np, value, x_np))
    if abs(value) < 100:
        assert tl.gradcheck(lambda t: t.masked_fill(mask, value), x)
    else:  # -inf (or -1e9) would swamp the finite differences; the gradient must not depend on the
        # value, so compare with the (gradient-checked) gradient of a small fill
        x.masked_fill(mask, value).sum().backward()
        x2 = leaf(x_np, device)
        x2.masked_fill(mask, 0.0).sum().backward()
        close(x.grad, x2.grad.detach().numpy())


# ---------------------------------------------------------------- dtypes
SCALAR_OPS = {
    "x+2": lambda x: x + 2, "2.5+x": lambda x: 2.5 + x, "x-2.5": lambda x: x - 2.5, "1-x": lambda x: 1 - x,
    "x*2.5": lambda x: x * 2.5, "3*x": lambda x: 3 * x, "x/3": lambda x: x / 3, "3/x": lambda x: 3 / x,
    "x/2.5": lambda x: x / 2.5, "x**2": lambda x: x ** 2, "x**2.5": lambda x: x ** 2.5, "x**-1": lambda x: x ** -1,
    "2**x": lambda x: 2 ** x, "2.5**x": lambda x: 2.5 ** x, "-x": lambda x: -x,
    "maximum(0.5)": lambda x: x.maximum(tl.tensor(0.5)), "exp": lambda x: x.exp(), "log": lambda x: x.log(),
    "sqrt": lambda x: x.sqrt(), "abs": lambda x: x.abs(), "tanh": lambda x: x.tanh(),
    "sigmoid": lambda x: x.sigmoid(), "relu": lambda x: x.relu(), "gelu": lambda x: x.gelu(),
    "gelu_tanh": lambda x: x.gelu("tanh"), "clamp": lambda x: x.clamp(0.5, 1.5),
    "where": lambda x: tl.where(x > 1, x, 0.0), "masked_fill": lambda x: x.masked_fill(x > 1, 2.5),
}


@pytest.mark.parametrize("name", SCALAR_OPS)
def test_float32_stays_float32_and_grad_matches(device, name):
    x = tl.tensor([0.5, 1.25, 2.0], device=device, requires_grad=True)
    y = SCALAR_OPS[name](x)
    assert y.dtype == tl.float32
    y.sum().backward()
    assert x.grad.dtype == tl.float32


@pytest.mark.parametrize("name", ["x*2.5", "2.5+x", "x-2.5", "x/3", "3/x", "x/2.5", "x**2.5", "2.5**x",
                                  "2**x", "x**2", "x+2"])
def test_float64_stays_float64(device, name):
    x = tl.tensor([0.5, 1.25, 2.0], dtype=tl.float64, device=device)
    assert SCALAR_OPS[name](x).dtype == tl.float64


INT_WITH_FLOAT = [(lambda x: x * 2.5, lambda x: x * 2.5), (lambda x: 2.5 * x, lambda x: 2.5 * x),
                  (lambda x: x + 0.5, lambda x: x + 0.5), (lambda x: 0.5 - x, lambda x: 0.5 - x),
                  (lambda x: x / 2, lambda x: x / 2), (lambda x: 3 / x, lambda x: 3 / x),
                  (lambda x: x ** 0.5, np.sqrt), (lambda x: 0.5 ** x, lambda x: 0.5 ** x),
                  (lambda x: x.clamp(0.5, 2.5), lambda x: np.clip(x, 0.5, 2.5))]


@pytest.mark.parametrize("fn, ref", INT_WITH_FLOAT)
def test_int_tensor_with_float_scalar_is_float32(device, fn, ref):
    x_np = np.array([1, 2, 3])
    out = fn(tl.tensor(x_np, device=device))
    assert out.dtype == tl.float32
    close(out, ref(x_np.astype(np.float64)), rtol=1e-6)


def test_int_tensor_with_int_scalar_stays_int(device):
    x = tl.tensor([1, 2, 3], device=device)
    for y in (x + 2, 2 * x, x - 1, x ** 2, 2 ** x, x.maximum(tl.tensor(2, device=device))):
        assert y.dtype == tl.int64


@pytest.mark.parametrize("op", ["add", "mul", "div", "pow", "maximum"])
def test_mixed_float_dtypes_give_each_grad_its_own_dtype(device, op):
    a = tl.tensor([0.5, 1.5], dtype=tl.float32, device=device, requires_grad=True)
    b = tl.tensor([1.25, 0.75], dtype=tl.float64, device=device, requires_grad=True)
    fn = {"add": lambda x, y: x + y, "mul": lambda x, y: x * y, "div": lambda x, y: x / y,
          "pow": lambda x, y: x ** y, "maximum": lambda x, y: x.maximum(y)}[op]
    out = fn(a, b)
    assert out.dtype == tl.float64  # the wider type wins, as in NumPy and PyTorch
    out.sum().backward()
    assert (a.grad.dtype, b.grad.dtype) == (tl.float32, tl.float64)


def test_where_mixed_dtypes_keeps_grad_dtypes(device):
    a = tl.tensor([0.5, 1.5], dtype=tl.float32, device=device, requires_grad=True)
    b = tl.tensor([1.25, 0.75], dtype=tl.float64, device=device, requires_grad=True)
    tl.where(tl.tensor([True, False], device=device), a, b).sum().backward()
    assert (a.grad.dtype, b.grad.dtype) == (tl.float32, tl.float64)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("fn", [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / b,
                                lambda a, b: a ** b, lambda a, b: a.maximum(b), lambda a, b: a.minimum(b)])
def test_broadcast_failure_names_both_shapes(device, fn):
    a, b = tl.ones(2, 3, device=device), tl.ones(4, device=device)
    with pytest.raises(RuntimeError, match=r"\(2, 3\).*\(4,\)"):
        fn(a, b)
    with pytest.raises(RuntimeError, match=r"\(4,\).*\(2, 3\)"):
        fn(b, a)


def test_where_broadcast_failure_names_the_shapes(device):
    with pytest.raises(RuntimeError, match=r"\(4,\).*\(2, 3\).*\(3,\)"):
        tl.where(tl.ones(4, device=device) > 0, tl.ones(2, 3, device=device), tl.ones(3, device=device))


def test_where_rejects_a_non_bool_condition(device):
    with pytest.raises(TypeError, match="float32"):
        tl.where(tl.ones(3, device=device), tl.ones(3, device=device), 0.0)


def test_masked_fill_rejects_bad_masks(device):
    x = tl.ones(2, 3, device=device)
    with pytest.raises(RuntimeError, match="int64"):
        x.masked_fill(tl.tensor([1, 0, 1], device=device), 0.0)
    with pytest.raises(RuntimeError, match=r"\(4,\).*\(2, 3\)"):
        x.masked_fill(tl.tensor([True, False, True, False], device=device), 0.0)


def test_gelu_rejects_an_unknown_approximation(device):
    with pytest.raises(ValueError, match="'sigmoid'"):
        tl.gelu(tl.ones(2, device=device), approximate="sigmoid")


def test_clamp_needs_a_bound(device):
    with pytest.raises(RuntimeError, match="min.*max"):
        tl.ones(2, device=device).clamp()


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "gelu"])
def test_float_functions_of_int_tensors_are_float32(device, name):
    x_np = np.array([1, 2, 3])
    out = getattr(tl.tensor(x_np, device=device), name)()
    assert out.dtype == tl.float32  # PyTorch's default float, not NumPy's float64
    expected = getattr(tl.tensor(x_np, dtype=tl.float64, device=device), name)().detach().numpy()
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("fn", [lambda t: t.relu(), lambda t: t.clamp(0.0, 1.0), lambda t: t.maximum(
    tl.tensor(0.0, dtype=tl.float64, device=t.device))])
def test_an_inf_gradient_does_not_leak_nan_through_a_cut_branch(device, fn):
    # where the input was cut off the gradient is exactly 0, whatever arrives from above (as in PyTorch)
    x = tl.tensor([-2.0, 0.5], dtype=tl.float64, device=device, requires_grad=True)
    fn(x).backward(tl.tensor([np.inf, 1.0], dtype=tl.float64, device=device))
    np.testing.assert_array_equal(x.grad.detach().numpy(), [0.0, 1.0])

