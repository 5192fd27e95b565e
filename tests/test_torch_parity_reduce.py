"""tensorlite against PyTorch: reductions, softmax-likes, scans and sorts, with ties, zero-size and 0-d inputs.

Conventions checked here are PyTorch's, not the finite difference's: at a tie, `max()`/`amax`/`amin` over all
elements or a dim split the gradient evenly between the tied elements, while `max(dim)`/`min(dim)` (which
return an index) send it all to the returned index. The finite-difference gradchecks of these ops avoid ties.
"""
import numpy as np
import pytest
from hypothesis import given

from strategies import seeds, shape_and_dims, shapes
from test_torch_parity_helpers import NC, few, rand, raises_same, same

torch = pytest.importorskip("torch")


def tied(seed, shape):
    """Values on a coarse grid: many ties for max/min/sort."""
    return np.round(rand(seed, shape) * 1.5) / 1.5


def as_dim(dim):
    return list(dim) if isinstance(dim, tuple) else dim


# (name, case(M, x, dim), maker): dim is None, an int or a tuple of ints
REDUCE = [
    ("sum", lambda M, x, d: x.sum() if d is None else x.sum(dim=d), rand),
    ("sum_keepdim", lambda M, x, d: x.sum() if d is None else M.sum(x, d, keepdim=True), rand),
    ("sum_list", lambda M, x, d: x.sum() if d is None else x.sum(as_dim(d)), rand),
    ("mean", lambda M, x, d: x.mean() if d is None else x.mean(d), rand),
    ("mean_keepdim", lambda M, x, d: M.mean(x) if d is None else x.mean(dim=d, keepdim=True), rand),
    ("amax", lambda M, x, d: x.amax() if d is None else x.amax(d), tied),
    ("amin", lambda M, x, d: M.amin(x) if d is None else M.amin(x, dim=d, keepdim=True), tied),
    ("logsumexp", lambda M, x, d: x.logsumexp(tuple(range(x.ndim)) if d is None else d), rand),
    ("var", lambda M, x, d: x.var() if d is None else x.var(d), rand),
    ("std", lambda M, x, d: x.std() if d is None else x.std(dim=d), rand),
    ("var_biased", lambda M, x, d: x.var(unbiased=False) if d is None else x.var(d, unbiased=False), rand),
    ("std_correction", lambda M, x, d: x.std(correction=0) if d is None else x.std(d, correction=0, keepdim=True),
     rand),
    ("var_correction2", lambda M, x, d: x.var(dim=d, correction=2), rand),
    ("std_constant", lambda M, x, d: (x * 0 + 1).std() if d is None else (x * 0 + 1).std(d), rand),
    ("prod", lambda M, x, d: x.prod() if not isinstance(d, int) else x.prod(d), rand),
    ("all", lambda M, x, d: (x > 0).all() if not isinstance(d, int) else (x > 0).all(d), rand),
    ("any", lambda M, x, d: (x > 0).any() if not isinstance(d, int) else (x > 0).any(dim=d), rand),
]
ONE_DIM = [  # ops that take one int dim
    ("max_dim", lambda M, x, d: x.max(d), tied),
    ("min_dim_keepdim", lambda M, x, d: M.min(x, dim=d, keepdim=True), tied),
    ("argmax", lambda M, x, d: x.argmax(d), tied),
    ("argmin_keepdim", lambda M, x, d: M.argmin(x, dim=d, keepdim=True), tied),
    ("softmax", lambda M, x, d: x.softmax(d), rand),
    ("log_softmax", lambda M, x, d: M.log_softmax(x, dim=d), rand),
    ("F_softmax", lambda M, x, d: M.nn.functional.softmax(x, dim=d), rand),
    ("cumsum", lambda M, x, d: x.cumsum(d), rand),
    ("cumsum_fn", lambda M, x, d: M.cumsum(x, dim=d), rand),
    ("prod_dim", lambda M, x, d: M.prod(x, d, keepdim=True), rand),
    ("sort", lambda M, x, d: x.sort(dim=d, stable=True), tied),
    ("sort_desc", lambda M, x, d: M.sort(x, dim=d, descending=True, stable=True), tied),
    ("argsort", lambda M, x, d: x.argsort(dim=d, stable=True), tied),
    ("topk", lambda M, x, d: x.topk(1, dim=d), rand),
    ("gather", lambda M, x, d: x.gather(d, x.argsort(dim=d, stable=True)), rand),
]


@pytest.mark.parametrize("name,case,make", REDUCE, ids=[r[0] for r in REDUCE])
@few
@given(sd=shape_and_dims(0, 3, 3), seed=seeds)
def test_reductions(name, case, make, sd, seed):
    shape, dim = sd
    same(lambda M, x: case(M, x, dim), make(seed, shape), seed=seed)


@pytest.mark.parametrize("name,case,make", ONE_DIM, ids=[r[0] for r in ONE_DIM])
@few
@given(sd=shape_and_dims(1, 3, 4), seed=seeds)
def test_one_dim_ops(name, case, make, sd, seed):
    shape, dim = sd
    dim = dim[0] if isinstance(dim, tuple) else 0 if dim is None else dim
    same(lambda M, x: case(M, x, dim), make(seed, shape), seed=seed)


@pytest.mark.parametrize("name,case,make", REDUCE[:8] + ONE_DIM[:6], ids=[r[0] for r in REDUCE[:8] + ONE_DIM[:6]])
@few
@given(shape=shapes(2, 3, 2, 4), seed=seeds)
def test_non_contiguous(name, case, make, shape, seed):
    same(lambda M, x: case(M, x, -1), NC(make(seed, shape)), seed=seed)


@pytest.mark.parametrize("name,case,make", REDUCE + ONE_DIM, ids=[r[0] for r in REDUCE + ONE_DIM])
def test_zero_size_and_0d(name, case, make):
    """Over a zero-size dim: sum 0, mean/std NaN, prod 1, logsumexp -inf; max/amax/argmax raise IndexError."""
    if name == "topk":
        pytest.skip("topk(1) of a zero-size dim is an error in both; covered by test_errors")
    for shape, dim in [((2, 0), 1), ((2, 0), 0), ((0,), 0), ((), 0), ((), None), ((0, 3), -1)]:
        if dim is None and case in [c for _, c, _ in ONE_DIM]:
            continue
        same(lambda M, x: case(M, x, dim), make(1, shape))


@pytest.mark.parametrize("values", [[1.0, 3.0, 3.0], [2.0, 2.0, 2.0, 2.0], [[1.0, 5.0], [5.0, 5.0]]])
def test_max_ties_split_evenly(values):
    a = np.array(values)
    same(lambda M, x: x.max(), a)
    same(lambda M, x: M.max(x), a)
    same(lambda M, x: x.min(), -a)
    same(lambda M, x: x.amax(dim=0), a)
    same(lambda M, x: M.amin(x, dim=-1), a)
    same(lambda M, x: x.max(dim=0), a)  # the returned index gets it all


def test_listed_cases():
    """The cases of issue 13, one by one."""
    a = rand(0, (3, 4))
    same(lambda M, x: x.var(1, False), a)  # the second positional is `unbiased`, not keepdim
    same(lambda M, x: x.std(1, False), a)
    same(lambda M, x: x.std(1, True, keepdim=True), a)
    same(lambda M, x: x.std(), np.full((2, 3), 1.5))  # gradient 0, not NaN
    same(lambda M, x: x.argmax(keepdim=True), a)  # shape (1, 1)
    same(lambda M, x: x.argmin(keepdim=True), a)
    same(lambda M, x: x.sum(dim=[]), a)  # everything
    same(lambda M, x: x.mean(dim=()), a)
    same(lambda M, x: x.sum(), np.arange(6, dtype=np.uint8))  # int64, not uint64
    same(lambda M, x: x.sum(0), np.ones((3, 2), dtype=np.int32))  # int64
    same(lambda M, x: x.sum(), np.array([True, True, False]))  # int64
    same(lambda M, x: x.sum(dtype=M.float64), np.ones(3, dtype=np.int32), grad=False)
    same(lambda M, x: x.mean(dtype=M.float64), rand(1, (3,), dtype="float32"))
    same(lambda M, x: x.logsumexp(1), np.array([[-np.inf, -np.inf], [0.0, -np.inf]]))


@pytest.mark.parametrize("case", [
    lambda M, x: x.max(), lambda M, x: x.amax(), lambda M, x: x.argmax(), lambda M, x: x.max(0),
    lambda M, x: x.amin(0), lambda M, x: x.topk(1), lambda M, x: x.min(),
], ids=["max", "amax", "argmax", "max_dim", "amin_dim", "topk", "min"])
def test_errors_on_empty(case):
    raises_same(case, np.zeros((0,)))


def test_mean_of_int_raises():
    raises_same(lambda M, x: x.mean(), np.arange(3))
