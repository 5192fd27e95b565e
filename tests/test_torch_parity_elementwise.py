"""tensorlite against PyTorch: elementwise ops (unary, binary, comparisons, where/masked_fill) and dtype promotion.

Each table row is (name, case, input maker); `same` (test_torch_parity_helpers) runs the case in both libraries
and compares outputs, dtypes and gradients. Shapes are drawn by hypothesis, zero-size and 0-d ones included;
inputs hit the kinks on purpose (relu and abs at 0, clamp at its bounds, maximum with equal inputs).
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from strategies import broadcastable_shapes, seeds, shapes
from test_torch_parity_helpers import NC, Const, few, rand, raises_same, same

torch = pytest.importorskip("torch")


def kinky(seed, shape, points=(0.0,)):
    """Random float64 data with about a third of the values exactly on the kink points."""
    a = rand(seed, shape)
    rng = np.random.default_rng(seed + 1)
    hit = rng.random(shape) < 0.35
    return np.where(hit, rng.choice(np.asarray(points, dtype=np.float64), size=shape), a)


pos = lambda s, sh: rand(s, sh, 0.2, 3.0)  # noqa: E731
UNARY = [
    ("neg", lambda M, x: -x, rand),
    ("abs", lambda M, x: x.abs(), kinky),
    ("abs_fn", lambda M, x: M.abs(x), kinky),
    ("exp", lambda M, x: M.exp(x), rand),
    ("log", lambda M, x: x.log(), pos),
    ("sqrt", lambda M, x: M.sqrt(x), pos),
    ("rsqrt", lambda M, x: x.rsqrt(), pos),
    ("tanh", lambda M, x: M.tanh(x), rand),
    ("sigmoid", lambda M, x: M.sigmoid(x), rand),
    ("relu", lambda M, x: M.relu(x), kinky),
    ("relu_method", lambda M, x: x.relu(), kinky),
    ("sign", lambda M, x: M.sign(x), kinky),
    ("square", lambda M, x: x ** 2, rand),
    ("cube", lambda M, x: x.pow(3), rand),
    ("pow_half", lambda M, x: x ** 0.5, pos),
    ("pow_neg", lambda M, x: M.pow(x, -1.5), pos),
    ("rpow", lambda M, x: 2 ** x, rand),
    ("pow_zero", lambda M, x: x ** 0, rand),
    ("clamp", lambda M, x: x.clamp(-0.5, 0.5), lambda s, sh: kinky(s, sh, (-0.5, 0.5))),
    ("clamp_min", lambda M, x: M.clamp(x, min=0.0), kinky),
    ("clamp_max", lambda M, x: x.clamp(max=0.25), lambda s, sh: kinky(s, sh, (0.25,))),
    ("clip", lambda M, x: x.clip(-1, 1), lambda s, sh: kinky(s, sh, (-1.0, 1.0))),
    ("sin", lambda M, x: M.sin(x), rand),
    ("cos", lambda M, x: x.cos(), rand),
    ("log1p", lambda M, x: M.log1p(x), pos),
    ("expm1", lambda M, x: M.expm1(x), rand),
    ("erf", lambda M, x: M.erf(x), rand),
    ("floor", lambda M, x: M.floor(x), rand),
    ("ceil", lambda M, x: x.ceil(), rand),
    ("round", lambda M, x: M.round(x), rand),
    ("trunc", lambda M, x: x.trunc(), rand),
    ("reciprocal", lambda M, x: x.reciprocal(), pos),
    ("gelu", lambda M, x: M.nn.functional.gelu(x), rand),
    ("gelu_tanh", lambda M, x: M.nn.functional.gelu(x, approximate="tanh"), rand),
    ("float_cast", lambda M, x: x.float(), rand),
    ("half_cast", lambda M, x: x.half().double(), rand),
    ("long_cast", lambda M, x: x.long(), rand),
    ("int_cast", lambda M, x: x.int(), rand),
    ("bool_cast", lambda M, x: x.bool(), kinky),
    ("to_dtype", lambda M, x: x.to(M.float32), rand),
    ("isnan", lambda M, x: M.isnan(x / x), kinky),
    ("nan_to_num_like", lambda M, x: M.where(x > 0, x, M.zeros_like(x)), kinky),
]


@pytest.mark.parametrize("name,case,make", UNARY, ids=[u[0] for u in UNARY])
@few
@given(shape=shapes(0, 3, 0, 4), seed=seeds)
def test_unary(name, case, make, shape, seed):
    same(case, make(seed, shape), seed=seed)


@pytest.mark.parametrize("name,case,make", UNARY[:12], ids=[u[0] for u in UNARY[:12]])
@few
@given(shape=shapes(2, 3, 1, 4), seed=seeds)
def test_unary_non_contiguous(name, case, make, shape, seed):
    same(case, NC(make(seed, shape)), seed=seed)


def tie(seed, a_shape, b_shape):
    """A pair where about half of b equals a (after broadcasting): maximum/minimum ties."""
    a, b = rand(seed, a_shape), rand(seed + 7, b_shape)
    full = np.broadcast_shapes(np.shape(a), np.shape(b))
    if full == np.shape(b):
        b = np.where(np.random.default_rng(seed).random(full) < 0.5, np.broadcast_to(a, full), b)
    return a, b


plain = lambda s, sa, sb: (rand(s, sa), rand(s + 1, sb))  # noqa: E731
pos2 = lambda s, sa, sb: (rand(s, sa, 0.2, 2), rand(s + 1, sb, -2, 2))  # noqa: E731
away = lambda s, sa, sb: (rand(s, sa), np.where(np.abs(b := rand(s + 1, sb)) < 0.2, 0.7, b))  # noqa: E731
BINARY = [
    ("add", lambda M, x, y: x + y, plain),
    ("sub", lambda M, x, y: x - y, plain),
    ("mul", lambda M, x, y: x * y, plain),
    ("div", lambda M, x, y: x / y, away),
    ("pow", lambda M, x, y: x ** y, pos2),
    ("maximum", lambda M, x, y: M.maximum(x, y), tie),
    ("minimum", lambda M, x, y: M.minimum(x, y), tie),
    ("maximum_method", lambda M, x, y: x.maximum(y), tie),
    ("remainder", lambda M, x, y: x % y, away),
    ("add_fn", lambda M, x, y: M.add(x, y), plain),
    ("mul_fn", lambda M, x, y: M.mul(x, y), plain),
    ("div_fn", lambda M, x, y: M.div(x, y), away),
    ("sub_fn", lambda M, x, y: M.sub(x, y), plain),
    ("where", lambda M, x, y: M.where(x > y, x, y), plain),
    ("where_method_scalar", lambda M, x, y: M.where(x > 0, x, 0.0) + y, plain),
]
COMPARE = ["eq", "ne", "lt", "le", "gt", "ge"]
OPERATORS = {"eq": "__eq__", "ne": "__ne__", "lt": "__lt__", "le": "__le__", "gt": "__gt__", "ge": "__ge__"}


@pytest.mark.parametrize("name,case,make", BINARY, ids=[b[0] for b in BINARY])
@few
@given(pair=broadcastable_shapes(0, 3, 4), seed=seeds)
def test_binary_broadcasting(name, case, make, pair, seed):
    same(case, *make(seed, *pair), seed=seed)


@pytest.mark.parametrize("name,case,make", BINARY[:9], ids=[b[0] for b in BINARY[:9]])
@few
@given(shape=shapes(2, 3, 1, 4), seed=seeds)
def test_binary_non_contiguous(name, case, make, shape, seed):
    a, b = make(seed, shape, shape)
    same(case, NC(a), b, seed=seed)
    same(case, a, NC(b), seed=seed)


@pytest.mark.parametrize("name,case,make", BINARY[:9], ids=[b[0] for b in BINARY[:9]])
def test_binary_zero_size_and_0d(name, case, make):
    for sa, sb in [((0,), (0,)), ((2, 0), (1, 0)), ((0, 3), (3,)), ((), ()), ((), (2, 3)), ((3, 1), ())]:
        same(case, *make(1, sa, sb))


@pytest.mark.parametrize("op", COMPARE)
@few
@given(pair=broadcastable_shapes(0, 3, 4), seed=seeds)
def test_comparisons(op, pair, seed):
    a = np.round(rand(seed, pair[0]))  # a small grid: many equal pairs
    b = np.round(rand(seed + 1, pair[1]))
    same(lambda M, x, y: getattr(M, op)(x, y), a, b)
    same(lambda M, x, y: getattr(x, OPERATORS[op])(y), a, b)
    same(lambda M, x: getattr(x, OPERATORS[op])(0.0), a)


@few
@given(shape=shapes(0, 3, 0, 4), seed=seeds)
def test_masked_fill(shape, seed):
    a = rand(seed, shape)
    mask = Const(np.random.default_rng(seed).random(shape) < 0.5)
    same(lambda M, x, m: x.masked_fill(m, float("-inf")).exp(), a, mask)
    same(lambda M, x, m: M.masked_fill(x, m, 3.0), a, mask)
    # a 0-d tensor value that requires grad: its gradient is the sum over the filled places
    same(lambda M, x, m, v: x.masked_fill(m, v), a, mask, np.array(0.5))


def test_course_mask_pattern():
    """The course's `masked_fill(tril == 0, float('-inf'))` then softmax: upper triangle exactly 0."""
    same(lambda M, x: M.nn.functional.softmax(x.masked_fill(M.tril(M.ones(4, 4)) == 0, float("-inf")), dim=-1),
         rand(3, (2, 4, 4)))


# ----------------------------------------------------------------------------------------- dtype promotion
DTYPES = ["bool", "uint8", "int8", "int32", "int64", "float16", "float32", "float64"]
PROMOTE_OPS = {
    "add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y, "div": lambda x, y: x / y,
    "floordiv": lambda x, y: x // y, "mod": lambda x, y: x % y, "maximum": None, "eq": lambda x, y: x == y,
    "where": None, "cat": None,
}


def values(dtype, shape, seed=0):
    v = np.random.default_rng(seed).integers(1, 4, shape)
    return v.astype(dtype) if dtype != "bool" else v > 1


@pytest.mark.parametrize("op", list(PROMOTE_OPS))
@pytest.mark.parametrize("da", DTYPES)
@pytest.mark.parametrize("db", DTYPES)
def test_promotion_tensor_tensor(op, da, db):
    """Result dtypes (and values) for every dtype pair, dimensioned and 0-d: a dimensioned tensor wins within a
    category (float32 (3,) with float64 () gives float32), a higher category wins across."""
    def case(M, x, y):
        if op == "maximum":
            return M.maximum(x, y)
        if op == "where":
            return M.where(x > 1, x, y)
        if op == "cat":
            return M.cat([x.reshape(-1), y.reshape(-1)])
        return PROMOTE_OPS[op](x, y)
    for sa, sb in [((3,), (3,)), ((3,), ()), ((), (3,)), ((), ())]:
        try:
            same(case, values(da, sa), values(db, sb, 1), grad=False)
        except AssertionError as e:
            raise AssertionError(f"{da}{list(sa)} {op} {db}{list(sb)}: {e}") from None


@pytest.mark.parametrize("da", DTYPES)
@pytest.mark.parametrize("scalar", [True, 2, 2.5, -3])
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "floordiv", "mod", "pow"])
def test_promotion_python_scalar_either_side(da, scalar, op):
    """A Python scalar never raises a tensor's dtype within its category (int64 + 1.5 is float32, the default)."""
    ops = dict(PROMOTE_OPS, pow=lambda x, y: x ** y)
    f = ops[op]
    for shape in [(3,), ()]:
        for side, case in (("tensor op scalar", lambda M, x: f(x, scalar)), ("scalar op tensor", lambda M, x: f(scalar, x))):
            try:
                same(case, values(da, shape), grad=False)
            except AssertionError as e:
                raise AssertionError(f"{side}: {da}{list(shape)} {op} {scalar!r}: {e}") from None


@pytest.mark.parametrize("da", ["float32", "float64", "int64"])
@pytest.mark.parametrize("db", ["float32", "float64", "int64", "bool"])
def test_stack_and_matmul_promotion(da, db):
    same(lambda M, x, y: M.stack([x, y]), values(da, (2, 3)), values(db, (2, 3)), grad=False)
    if "bool" not in (da, db):
        same(lambda M, x, y: x @ y, values(da, (2, 3)), values(db, (3, 2)), grad=False)


def test_float32_grad_stays_float32_with_float64_scalar_tensor():
    same(lambda M, x, y: x * y, rand(0, (3,), dtype="float32"), np.array(2.0))


@pytest.mark.parametrize("case", [
    lambda M, x: x // 0, lambda M, x: x % 0, lambda M, x: M.tensor([True]) - M.tensor([True]),
], ids=["int_floordiv_zero", "int_mod_zero", "bool_sub"])
def test_integer_errors(case):
    raises_same(case, np.array([1, 2, 3]))


@few
@given(shape=shapes(0, 3, 0, 4), seed=seeds, lo=st.floats(-1, 0), hi=st.floats(0, 1))
def test_clamp_with_tensor_bounds(shape, seed, lo, hi):
    x = kinky(seed, shape, (lo, hi))
    same(lambda M, x, a, b: x.clamp(a, b), x, np.full(shape, lo), np.full(shape, hi))
    same(lambda M, x, a: M.clamp(x, min=a), x, Const(np.full(shape, lo)))
