"""tensorlite against PyTorch: invalid calls. For each, PyTorch raises, and tensorlite must raise an exception
of the same kind (IndexError, TypeError, ValueError, RuntimeError...), with its own one-line message.

And the reverse: calls PyTorch accepts (printed by `test_valid_in_torch`) must not raise in tensorlite.
The other test_torch_parity_* files hold the errors that belong with their ops; this file is the rest.
"""
import numpy as np
import pytest

from test_torch_parity_helpers import rand, raises_same, same

torch = pytest.importorskip("torch")

X = rand(0, (2, 3))
INVALID = [
    # shapes
    ("add_broadcast", lambda M, x: x + M.ones(4)),
    ("matmul_shapes", lambda M, x: x @ x),
    ("matmul_0d", lambda M, x: M.tensor(2.0) @ x),
    ("view_wrong_size", lambda M, x: x.view(4, 2)),
    ("view_two_minus_one", lambda M, x: x.view(-1, -1)),
    ("reshape_wrong", lambda M, x: x.reshape(5)),
    ("flatten_start_after_end", lambda M, x: x.flatten(1, 0)),
    ("transpose_dim", lambda M, x: x.transpose(0, 2)),
    ("permute_too_few", lambda M, x: x.permute(1)),
    ("squeeze_dim", lambda M, x: x.squeeze(-3)),
    ("split_bad_sizes", lambda M, x: x.split([1, 1], dim=1)),
    ("chunk_zero", lambda M, x: x.chunk(0)),
    ("cat_0d", lambda M, x: M.cat([M.tensor(1.0), M.tensor(2.0)])),
    ("cat_dim", lambda M, x: M.cat([x, x], dim=2)),
    ("stack_dim", lambda M, x: M.stack([x, x], dim=4)),
    ("expand_smaller", lambda M, x: x.expand(3)),
    ("tril_1d", lambda M, x: M.tril(M.ones(3))),
    ("where_shapes", lambda M, x: M.where(M.ones(4) > 0, x, x)),
    ("masked_fill_shape", lambda M, x: x.masked_fill(M.ones(4) > 0, 0.0)),
    ("masked_fill_float_mask", lambda M, x: x.masked_fill(M.ones(2, 3), 0.0)),
    ("masked_fill_tensor_value_1d", lambda M, x: x.masked_fill(x > 0, M.ones(3))),
    # reductions and dims
    ("sum_dim", lambda M, x: x.sum(2)),
    ("sum_dim_repeated", lambda M, x: x.sum((0, 0))),
    ("mean_dim", lambda M, x: x.mean(-3)),
    ("max_dim", lambda M, x: x.max(dim=5)),
    ("argmax_dim", lambda M, x: x.argmax(2)),
    ("softmax_dim", lambda M, x: x.softmax(3)),
    ("cumsum_dim", lambda M, x: x.cumsum(2)),
    ("std_dim", lambda M, x: x.std(4)),
    ("topk_too_many", lambda M, x: x.topk(4)),
    ("gather_dtype", lambda M, x: x.gather(1, M.zeros(2, 3))),
    ("gather_out_of_range", lambda M, x: x.gather(1, M.full((2, 1), 7))),
    # dtypes and values
    ("float_minus_bool", lambda M, x: x - M.tensor([True])),
    ("mixed_dtype_linear", lambda M, x: M.nn.Linear(3, 2)(x)),
    ("bitwise_float", lambda M, x: x & x),
    ("invert_float", lambda M, x: ~x),
    ("int_pow_negative", lambda M, x: M.tensor([2, 3]) ** -1),
    ("int_div_zero", lambda M, x: M.tensor([2, 3]) // M.tensor([0, 1])),
    ("int_mod_zero", lambda M, x: M.tensor([2, 3]) % M.tensor([0, 1])),
    ("float_to_bool_item", lambda M, x: bool(x)),
    ("float_of_many", lambda M, x: float(x)),
    ("int_of_many", lambda M, x: int(x)),
    ("index_with_float_tensor", lambda M, x: x[M.tensor([0.5])]),
    ("len_0d", lambda M, x: len(M.tensor(1.0))),
    ("iter_0d", lambda M, x: list(M.tensor(1.0))),
    ("tensor_from_string", lambda M, x: M.tensor("abc")),
    ("multinomial_negative", lambda M, x: M.multinomial(M.tensor([-0.1, 1.1]), 1)),
    ("multinomial_zero_sum", lambda M, x: M.multinomial(M.tensor([0.0, 0.0]), 1)),
    ("multinomial_3d", lambda M, x: M.multinomial(M.ones(1, 2, 2), 1)),
    ("randint_no_size", lambda M, x: M.randint(5)),
    ("embedding_float_index", lambda M, x: M.nn.Embedding(3, 2)(M.tensor([0.0]))),
    ("linear_wrong_in_features", lambda M, x: M.nn.Linear(4, 2)(x.float())),
    ("layer_norm_shape", lambda M, x: M.nn.LayerNorm(4)(x.float())),
    ("module_call_missing_arg", lambda M, x: M.nn.Linear(3, 2)()),
    ("parameter_of_int", lambda M, x: M.nn.Parameter(M.tensor([1, 2]))),
    ("optimizer_no_params", lambda M, x: M.optim.SGD([], lr=0.1)),
    ("optimizer_negative_lr", lambda M, x: M.optim.AdamW([M.nn.Parameter(M.ones(2))], lr=-1.0)),
    ("optimizer_bad_betas", lambda M, x: M.optim.AdamW([M.nn.Parameter(M.ones(2))], betas=(1.5, 0.9))),
    ("to_bad_device", lambda M, x: x.to("tpu")),
    ("clip_grad_norm_bad_type", lambda M, x: M.nn.utils.clip_grad_norm_([M.nn.Parameter(M.ones(2))], "big")),
]


@pytest.mark.parametrize("name,case", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_call_raises_the_same_kind(name, case):
    raises_same(case, X)


VALID = [  # accepted by PyTorch (at times surprisingly): tensorlite must accept them too, with the same result
    ("sum_negative_dim_tuple", lambda M, x: x.sum((-1, 0))),
    ("view_0d_to_1", lambda M, x: M.tensor(2.0).view(1)),
    ("reshape_0d", lambda M, x: M.tensor(2.0).reshape(())),
    ("squeeze_0d", lambda M, x: M.tensor(2.0).squeeze(0)),
    ("sum_0d_dim0", lambda M, x: M.tensor(2.0).sum(0)),
    ("softmax_0d", lambda M, x: M.tensor(2.0).softmax(0)),
    ("index_0d_ellipsis", lambda M, x: M.tensor(2.0)[...]),
    ("index_0d_none", lambda M, x: M.tensor(2.0)[None]),
    ("slice_beyond", lambda M, x: x[5:]),
    ("float_of_one_element", lambda M, x: float(x[0, :1])),
    ("bool_of_one_element", lambda M, x: bool(x[0, 0] > 0)),
    ("len", lambda M, x: len(x)),
    ("iter_rows", lambda M, x: [r.shape[0] for r in x]),
    ("in_operator", lambda M, x: 0.0 in x),
    ("int_pow_positive", lambda M, x: M.tensor([2, 3]) ** 2),
    ("float_div_zero", lambda M, x: x / 0),
    ("float_floordiv_zero", lambda M, x: (x // 0).detach()),  # torch has no derivative for floor_divide
    ("empty_cat_with_1d_empty", lambda M, x: M.cat([x, M.tensor([])])),
    ("transpose_same_dim", lambda M, x: x.transpose(1, 1)),
    ("masked_fill_0d_mask", lambda M, x: x.masked_fill(M.tensor(True), 0.0)),
    ("masked_fill_int_value_on_float", lambda M, x: x.masked_fill(x > 0, 1)),
    ("where_python_scalars", lambda M, x: M.where(x > 0, 1.0, 0.0)),
    ("clamp_min_greater_than_max", lambda M, x: x.clamp(1.0, -1.0)),
    ("max_of_0d", lambda M, x: M.tensor(3.0).max()),
    ("maximum_with_0d", lambda M, x: M.maximum(x, M.tensor(0.0))),
    ("tolist_0d", lambda M, x: M.tensor(2).tolist()),
    ("arange_float_steps", lambda M, x: M.arange(0.0, 1.0, 0.1)),
    ("full_with_tensor_size", lambda M, x: M.full(x.shape, 2.0)),
    ("zeros_with_size", lambda M, x: M.zeros(x.size())),
    ("ones_empty_list", lambda M, x: M.ones([])),
    ("tensor_of_tensors_list", lambda M, x: M.tensor([M.tensor(1.0).item(), 2.0])),
    ("stack_of_rows", lambda M, x: M.stack([r for r in x])),
    ("tensor_of_numpy_scalar", lambda M, x: M.tensor(np.float32(1.5))),
    ("numpy_scalar_times_tensor", lambda M, x: np.float64(2.0) * M.tensor([1.0], dtype=M.float32)),
]


@pytest.mark.parametrize("name,case", VALID, ids=[c[0] for c in VALID])
def test_valid_in_torch(name, case):
    same(case, X)
