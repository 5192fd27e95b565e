"""tensorlite against PyTorch: shape ops, indexing (read and write) and creation, with their gradients."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from strategies import reshape_target, seeds, shape_and_dim, shapes
from test_torch_parity_helpers import DT, NC, Const, few, rand, raises_same, same

torch = pytest.importorskip("torch")

SHAPE_OPS = [  # (name, case(M, x), minimum ndim)
    ("flatten", lambda M, x: x.flatten(), 0),
    ("flatten_fn", lambda M, x: M.flatten(x, 1), 2),
    ("flatten_0_1", lambda M, x: x.flatten(0, 1), 2),
    ("transpose", lambda M, x: x.transpose(0, -1), 1),
    ("transpose_fn", lambda M, x: M.transpose(x, -2, -1), 2),
    ("T_2d", lambda M, x: x.reshape(x.shape[0], -1).T, 1),
    ("mT", lambda M, x: x.mT, 2),
    ("t", lambda M, x: x.reshape(x.shape[0], -1).t(), 1),
    ("permute_reverse", lambda M, x: x.permute(tuple(reversed(range(x.ndim)))), 0),
    ("permute_fn", lambda M, x: M.permute(x, tuple(range(1, x.ndim)) + (0,)), 1),
    ("squeeze", lambda M, x: x.unsqueeze(0).squeeze(), 0),
    ("squeeze_dim", lambda M, x: M.squeeze(x.unsqueeze(-1), -1), 0),
    ("squeeze_noop", lambda M, x: x.squeeze(0), 1),
    ("unsqueeze", lambda M, x: M.unsqueeze(x, 1), 1),
    ("unsqueeze_neg", lambda M, x: x.unsqueeze(-1), 0),
    ("expand", lambda M, x: x.unsqueeze(0).expand(3, *x.shape), 0),
    ("expand_minus1", lambda M, x: x.unsqueeze(0).expand(2, *([-1] * x.ndim)), 0),
    ("broadcast_to", lambda M, x: x.broadcast_to((2,) + tuple(x.shape)), 0),
    ("contiguous", lambda M, x: x.transpose(0, -1).contiguous().view(-1), 1),
    ("reshape_T", lambda M, x: x.transpose(0, -1).reshape(-1), 1),
    ("view", lambda M, x: x.view(-1), 0),
    ("view_as", lambda M, x: x.view(-1).view_as(x), 0),
    ("chunk", lambda M, x: x.chunk(2, dim=-1), 1),
    ("chunk_fn", lambda M, x: M.chunk(x, 3, 0), 1),
    ("split_int", lambda M, x: x.split(2, dim=0), 1),
    ("split_list", lambda M, x: M.split(x, [1, x.shape[-1] - 1], dim=-1), 1),
    ("cat", lambda M, x: M.cat([x, x * 2], dim=0), 1),
    ("cat_neg", lambda M, x: M.cat((x, -x, x), -1), 1),
    ("stack", lambda M, x: M.stack([x, x + 1], dim=0), 0),
    ("stack_last", lambda M, x: M.stack((x, x), dim=-1), 0),
    ("tril", lambda M, x: M.tril(x), 2),
    ("triu_diag", lambda M, x: x.triu(1), 2),
    ("tril_neg", lambda M, x: M.tril(x, diagonal=-1), 2),
    ("size", lambda M, x: (x.size(), x.size(-1), x.shape[0], x.dim(), x.ndim, x.numel()), 1),
    ("repeat", lambda M, x: x.repeat(2, *([1] * x.ndim)), 0),
    ("flip", lambda M, x: x.flip(0), 1),
    ("roll", lambda M, x: x.roll(1, 0), 1),
]


@pytest.mark.parametrize("name,case,ndim", SHAPE_OPS, ids=[s[0] for s in SHAPE_OPS])
@few
@given(shape=shapes(0, 4, 1, 4), seed=seeds)
def test_shape_ops(name, case, ndim, shape, seed):
    shape = (2,) * max(0, ndim - len(shape)) + shape
    same(case, rand(seed, shape), seed=seed)


@pytest.mark.parametrize("name,case,ndim", SHAPE_OPS, ids=[s[0] for s in SHAPE_OPS])
def test_shape_ops_zero_size(name, case, ndim):
    for shape in [(0,), (2, 0), (0, 3, 1)]:
        if len(shape) >= ndim:
            same(case, rand(0, shape))


@pytest.mark.parametrize("name,case,ndim", [s for s in SHAPE_OPS if s[2] >= 2], ids=[s[0] for s in SHAPE_OPS if s[2] >= 2])
@few
@given(shape=shapes(2, 3, 1, 4), seed=seeds)
def test_shape_ops_non_contiguous(name, case, ndim, shape, seed):
    same(case, NC(rand(seed, shape)), seed=seed)


@few
@given(data=st.data(), seed=seeds)
def test_reshape(data, seed):
    shape = data.draw(shapes(0, 4, 1, 4))
    target = data.draw(reshape_target(shape))
    same(lambda M, x: x.reshape(target), rand(seed, shape), seed=seed)
    same(lambda M, x: M.reshape(x, target), rand(seed, shape), seed=seed)
    same(lambda M, x: x.view(*target) if target else x.view(()), rand(seed, shape), seed=seed)


def test_view_of_non_contiguous_raises():
    raises_same(lambda M, x: x.transpose(0, 1).view(-1), rand(0, (2, 3)))
    raises_same(lambda M, x: x.flatten(2, 1), rand(0, (2, 3, 4)))


# --------------------------------------------------------------------------------------------- indexing
def idx_cases():
    """(name, index builder(M) -> index, shape): PyTorch's rules for lists, tensors and masks."""
    return [
        ("int", lambda M: 1, (3, 4)),
        ("neg_int", lambda M: -1, (3, 4)),
        ("slice", lambda M: slice(1, None), (3, 4)),
        ("slice_step", lambda M: (slice(None), slice(None, None, 2)), (3, 5)),
        ("slice_past_end", lambda M: slice(1, 10), (3,)),
        ("none_ellipsis", lambda M: (None, Ellipsis, 0), (2, 3, 4)),
        ("tuple_mixed", lambda M: (slice(None), 1, slice(0, 2)), (2, 3, 4)),
        ("list", lambda M: [0, 2, 2], (3, 4)),
        ("nested_list", lambda M: [[0, 1], [2, 2]], (3, 4)),
        ("tuple_of_lists", lambda M: ([0, 1], [2, 3]), (3, 4)),
        ("list_and_slice", lambda M: (slice(None), [0, 0, 1]), (3, 4)),
        ("long_tensor", lambda M: M.tensor([[0, 1], [1, 0]]), (2, 3)),
        ("neg_long_tensor", lambda M: M.tensor([-1, 0]), (2, 3)),
        ("bool_tensor", lambda M: M.tensor([True, False, True]), (3, 2)),
        ("uint8_tensor", lambda M: M.tensor([1, 0, 1], dtype=M.uint8), (3, 2)),
        ("bool_full_mask", lambda M: M.arange(6).reshape(2, 3) % 2 == 0, (2, 3)),
        ("bool_list", lambda M: [True, False, True], (3,)),
        ("0d_long_tensor", lambda M: M.tensor(1), (3, 2)),
        ("tensor_pair", lambda M: (M.tensor([0, 1]), M.tensor([2, 0])), (2, 3)),
        ("empty_list", lambda M: [], (3, 2)),
        ("zero_size_slice", lambda M: slice(2, 1), (3, 2)),
    ]


@pytest.mark.parametrize("name,index,shape", idx_cases(), ids=[c[0] for c in idx_cases()])
def test_getitem(name, index, shape):
    same(lambda M, x: x[index(M)], rand(0, shape))
    same(lambda M, x: x[index(M)], NC(rand(1, shape[::-1])) if len(shape) >= 2 else rand(1, shape))


def setitem(index, value_kind):
    def case(M, x, v):
        y = x * 1.0  # a non-leaf copy, so that the in-place write is allowed and x still gets a gradient
        y[index(M)] = v if value_kind != "scalar" else 2.5
        return y
    return case


@pytest.mark.parametrize("name,index,shape", idx_cases()[:-2], ids=[c[0] for c in idx_cases()[:-2]])
def test_setitem_value_gets_gradient(name, index, shape):
    """`y[i] = v` with v requiring grad: v's gradient is what the written places received (broadcast back)."""
    x = rand(0, shape)
    v = rand(1, tuple(torch.zeros(shape)[index(torch)].shape))  # the shape torch writes into
    same(setitem(index, "tensor"), x, v)
    same(setitem(index, "scalar"), x, v)
    same(setitem(index, "tensor"), x, np.array(-0.5))  # a 0-d value broadcast


@pytest.mark.parametrize("case", [
    lambda M, x: x[::-1], lambda M, x: x[3], lambda M, x: x[-4], lambda M, x: x[:, 5], lambda M, x: x[[0, 3]],
    lambda M, x: x[M.tensor([True, False])], lambda M, x: x[0, 0, 0], lambda M, x: x[M.tensor([0.0])],
    lambda M, x: x[None, 0, 0, 0],
], ids=["negative_step", "int_out_of_range", "neg_out_of_range", "second_dim", "list_out_of_range",
        "mask_wrong_length", "too_many", "float_index", "too_many_with_none"])
def test_index_errors(case):
    raises_same(case, rand(0, (3, 4)))


# --------------------------------------------------------------------------------------------- creation
CREATION = [
    ("tensor_int_list", lambda M: M.tensor([1, 2])),
    ("tensor_float_list", lambda M: M.tensor([1.0, 2])),
    ("tensor_bool", lambda M: M.tensor([True, False])),
    ("tensor_scalar", lambda M: M.tensor(3.5)),
    ("tensor_mixed_bool_int", lambda M: M.tensor([True, 2])),
    ("tensor_nested", lambda M: M.tensor([[1, 2], [3, 4]], dtype=M.float64)),
    ("tensor_empty", lambda M: M.tensor([])),
    ("Tensor_ctor", lambda M: M.Tensor([1, 2])),
    ("LongTensor", lambda M: M.LongTensor([1, 5, 3])),
    ("FloatTensor", lambda M: M.FloatTensor([1, 2])),
    ("zeros", lambda M: M.zeros(2, 3)),
    ("zeros_tuple_dtype", lambda M: M.zeros((2, 3), dtype=M.int64)),
    ("ones", lambda M: M.ones(4)),
    ("full_int", lambda M: M.full((2,), 7)),
    ("full_float", lambda M: M.full((2, 2), 1.5)),
    ("full_bool", lambda M: M.full((2,), True)),
    ("arange_int", lambda M: M.arange(5)),
    ("arange_float", lambda M: M.arange(0, 1, 0.25)),
    ("arange_float_int_dtype", lambda M: M.arange(0, 3.5, dtype=M.int64)),
    ("arange_neg_step", lambda M: M.arange(5, 0, -2)),
    ("arange_float_end", lambda M: M.arange(3.0)),
    ("linspace", lambda M: M.linspace(3, 10, steps=5)),
    ("linspace_one", lambda M: M.linspace(0, 1, 1)),
    ("logspace", lambda M: M.logspace(start=-10, end=10, steps=5)),
    ("eye", lambda M: M.eye(3)),
    ("eye_rect", lambda M: M.eye(2, 3)),
    ("tril_ones", lambda M: M.tril(M.ones(3, 3))),
    ("zeros_like", lambda M: M.zeros_like(M.ones(2, dtype=M.int32))),
    ("ones_like_dtype", lambda M: M.ones_like(M.ones(2), dtype=M.float64)),
    ("full_like", lambda M: M.full_like(M.ones(2, 2), 3)),
    ("empty_shape", lambda M: M.empty(2, 3).shape),
    ("empty_like_dtype", lambda M: M.empty_like(M.ones(2, dtype=M.int64)).dtype == M.int64),
    ("rand_meta", lambda M: (M.rand(2, 3).shape, M.rand(2).dtype == M.float32, M.randn(3, 1).shape)),
    ("randint_meta", lambda M: (M.randint(0, 5, (3,)).dtype == M.int64, M.randint(5, (2, 2)).shape)),
    ("randperm", lambda M: M.randperm(5).sort().values),
    ("multinomial_meta", lambda M: (M.multinomial(M.tensor([0.1, 0.9]), 10, replacement=True).shape,
                                    M.multinomial(M.tensor([[0.0, 1.0]]), num_samples=1))),
    ("from_numpy", lambda M: M.from_numpy(np.arange(3, dtype=np.int32))),
]


@pytest.mark.parametrize("name,case", CREATION, ids=[c[0] for c in CREATION])
def test_creation(name, case):
    same(case, grad=False)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int32", "int64", "uint8", "bool"])
def test_creation_dtypes(dtype):
    same(lambda M, d: (M.zeros(2, dtype=d), M.ones((1, 2), dtype=d), M.tensor([1, 0], dtype=d),
                       M.arange(3, dtype=d) if dtype != "bool" else M.ones(1, dtype=d)), DT(dtype), grad=False)


@pytest.mark.parametrize("case", [
    lambda M: M.arange(0, 5, 0), lambda M: M.zeros(-1), lambda M: M.randint(5, 1, (2,)),
    lambda M: M.multinomial(M.tensor([0.5, 0.5]), 3), lambda M: M.tensor([[1, 2], [3]]),
    lambda M: M.ones(2, 3).reshape(4), lambda M: M.cat([M.ones(2, 3), M.ones(3, 2)]),
    lambda M: M.stack([M.ones(2), M.ones(3)]), lambda M: M.ones(2, 3).squeeze(2),
    lambda M: M.ones(2, 3).transpose(0, 2), lambda M: M.ones(2, 3).permute(0, 0),
    lambda M: M.ones(2, 3).expand(3, 3), lambda M: M.ones(2).unsqueeze(3), lambda M: M.cat([]),
], ids=["arange_zero_step", "negative_size", "randint_empty_range", "multinomial_without_replacement",
        "ragged_list", "reshape_wrong_size", "cat_mismatch", "stack_mismatch", "squeeze_out_of_range",
        "transpose_out_of_range", "permute_repeated", "expand_wrong", "unsqueeze_out_of_range", "cat_empty"])
def test_creation_and_shape_errors(case):
    raises_same(case)


@few
@given(sd=shape_and_dim(1, 3, 4), seed=seeds)
def test_gather_and_index_select(sd, seed):
    shape, dim = sd
    rng = np.random.default_rng(seed)
    idx = Const(rng.integers(0, shape[dim], shape))
    same(lambda M, x, i: x.gather(dim, i), rand(seed, shape), idx, seed=seed)
    same(lambda M, x, i: M.gather(x, dim, i), rand(seed, shape), idx, seed=seed)
