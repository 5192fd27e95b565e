"""Shape primitives (reshape/view, transpose, permute, (un)squeeze, flatten, indexing, cat, stack, split,
chunk, expand): forward against NumPy, gradcheck in float64, dtypes and errors."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tensorlite as tl
from strategies import (array, basic_index, broadcastable_shapes, leaf, reshape_target, seeds, shape_and_dim,
                        shapes)

small = shapes(0, 3, 1, 3)


def close(t, expected):
    assert t.shape == np.shape(expected), (t.shape, np.shape(expected))
    np.testing.assert_array_equal(t.detach().numpy(), expected)  # shape ops move values: exact equality


# ---------------------------------------------------------------- reshape family
@given(data=st.data(), shape=small, seed=seeds)
def test_reshape_and_view(device, data, shape, seed):
    target = data.draw(reshape_target(shape))
    x_np = array(seed, shape)
    x = leaf(x_np, device)
    close(x.reshape(target), x_np.reshape(target))
    close(x.view(*target), x_np.reshape(target))
    close(tl.reshape(x, target), x_np.reshape(target))
    assert tl.gradcheck(lambda t: t.reshape(target) * 2, x)


@given(data=st.data(), shape=shapes(1, 3, 1, 3), seed=seeds)
def test_transpose(device, data, shape, seed):
    n = len(shape)
    d0, d1 = data.draw(st.integers(-n, n - 1)), data.draw(st.integers(-n, n - 1))
    x_np = array(seed, shape)
    x = leaf(x_np, device)
    close(x.transpose(d0, d1), np.swapaxes(x_np, d0, d1))
    assert tl.gradcheck(lambda t: t.transpose(d0, d1), x)


@given(data=st.data(), shape=shapes(0, 3, 1, 3), seed=seeds)
def test_permute(device, data, shape, seed):
    perm = data.draw(st.permutations(range(len(shape))))
    perm = [p - len(shape) if data.draw(st.booleans()) else p for p in perm]  # negatives too
    x_np = array(seed, shape)
    x = leaf(x_np, device)
    close(x.permute(*perm), np.transpose(x_np, perm))
    close(x.permute(tuple(perm)), np.transpose(x_np, perm))
    assert tl.gradcheck(lambda t: t.permute(*perm), x)


@given(shape=shapes(2, 3, 1, 3), seed=seeds)
def test_T_and_mT(device, shape, seed):
    x_np = array(seed, shape)
    x = leaf(x_np, device)
    close(x.T, x_np.transpose(*reversed(range(len(shape)))))
    close(x.mT, np.swapaxes(x_np, -1, -2))
    assert tl.gradcheck(lambda t: t.mT, x)


@given(data=st.data(), shape=small, seed=seeds)
def test_unsqueeze_squeeze(device, data, shape, seed):
    n = len(shape)
    dim = data.draw(st.integers(-n - 1, n))
    x_np = array(seed, shape)
    x = leaf(x_np, device)
    close(x.unsqueeze(dim), np.expand_dims(x_np, dim))
    close(x.unsqueeze(dim).squeeze(dim), x_np)
    close(x.squeeze(), np.squeeze(x_np))
    if n:
        d = data.draw(st.integers(-n, n - 1))
        close(x.squeeze(d), np.squeeze(x_np, d) if shape[d] == 1 else x_np)  # a non-1 dim is left alone
    assert tl.gradcheck(lambda t: t.unsqueeze(dim).squeeze(), x)


@given(data=st.data(), shape=shapes(1, 3, 1, 3), seed=seeds)
def test_flatten(device, data, shape, seed):
    n = len(shape)
    start = data.draw(st.integers(0, n - 1))
    end = data.draw(st.integers(start, n - 1))
    x_np = array(seed, shape)
    x = leaf(x_np, device)
    expected = x_np.reshape(shape[:start] + (-1,) + shape[end + 1:])
    close(x.flatten(start, end), expected)
    close(x.flatten(start - n, end - n), expected)  # negative spellings
    close(x.flatten(), x_np.reshape(-1))
    assert tl.gradcheck(lambda t: t.flatten(start, end), x)


def test_flatten_of_0d_is_1d(device):
    assert tl.tensor(2.0, device=device).flatten().shape == (1,)


# ---------------------------------------------------------------- expand / broadcast_to
@given(pair=broadcastable_shapes(0, 3, 3), seed=seeds)
def test_expand_and_broadcast_to(device, pair, seed):
    shape = pair[0]
    target = np.broadcast_shapes(*pair)
    x_np = array(seed, shape)
    x = leaf(x_np, device)
    close(x.broadcast_to(target), np.broadcast_to(x_np, target))
    close(x.expand(*target), np.broadcast_to(x_np, target))
    # -1 keeps x's size of that axis (so only on axes x has, where it is not stretched)
    lead = len(target) - len(shape)
    keep = tuple(-1 if i >= lead and shape[i - lead] == n else n for i, n in enumerate(target))
    close(x.expand(keep), np.broadcast_to(x_np, target))
    assert tl.gradcheck(lambda t: t.expand(*target), x)
    assert tl.gradcheck(lambda t: t.broadcast_to(target) * t.broadcast_to(target), x)


# ---------------------------------------------------------------- indexing
@given(data=st.data(), shape=shapes(1, 3, 1, 4), seed=seeds)
def test_getitem_basic(device, data, shape, seed):
    index = data.draw(basic_index(shape))
    x_np = array(seed, shape)
    x = leaf(x_np, device)
    close(x[index], x_np[index])
    assert tl.gradcheck(lambda t: t[index], x)


@given(shape=shapes(1, 3, 1, 4), seed=seeds, k=st.integers(1, 6), axis_slice=st.booleans())
def test_getitem_integer_array_with_duplicates(device, shape, seed, k, axis_slice):
    rng = np.random.default_rng(seed)
    idx = rng.integers(-shape[0], shape[0], size=k)
    idx[-1] = idx[0]  # at least one duplicate when k > 1: its gradient must count twice
    x_np = array(seed, shape)
    x = leaf(x_np, device)
    index = (idx, slice(None, None, 2)) if axis_slice and len(shape) > 1 else idx
    t_index = (tl.tensor(idx, device=device),) + index[1:] if isinstance(index, tuple) else tl.tensor(idx, device=device)
    close(x[t_index], x_np[index])
    close(x[index], x_np[index])  # NumPy arrays work as indices too
    close(x[idx.tolist()], x_np[idx.tolist()])  # and Python lists
    assert tl.gradcheck(lambda t: t[t_index], x)


def test_getitem_duplicate_index_gradient_adds_up(device):
    x = leaf(np.array([1.0, 2.0, 3.0]), device)
    x[tl.tensor([0, 2, 0, 0], device=device)].sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), [3.0, 0.0, 1.0])


@given(shape=shapes(1, 3, 1, 4), seed=seeds, leading=st.integers(1, 3))
def test_getitem_boolean_mask(device, shape, seed, leading):
    leading = min(leading, len(shape))  # the mask covers the first `leading` axes
    mask_np = np.random.default_rng(seed).random(shape[:leading]) < 0.5
    x_np = array(seed, shape)
    x = leaf(x_np, device)
    mask = tl.tensor(mask_np, device=device)
    close(x[mask], x_np[mask_np])
    close(x[x > 0.5], x_np[x_np > 0.5])
    assert tl.gradcheck(lambda t: t[mask], x)


@given(shape=shapes(2, 3, 1, 4), seed=seeds)
def test_getitem_mixed_none_ellipsis_and_arrays(device, shape, seed):
    idx = np.random.default_rng(seed).integers(0, shape[-1], size=3)
    x_np = array(seed, shape)
    x = leaf(x_np, device)
    for index in [(Ellipsis, idx), (None, Ellipsis, idx, None), (slice(None, None, 2), Ellipsis, idx),
                  (np.zeros(1, dtype=np.int64), Ellipsis, idx), (Ellipsis, None)]:
        close(x[index], x_np[index])
        assert tl.gradcheck(lambda t: t[index], x)


def test_getitem_with_int_tensor_scalar_and_python_ints(device):
    x_np = np.arange(12.0).reshape(3, 4)
    x = leaf(x_np, device)
    close(x[tl.tensor(1, device=device)], x_np[1])
    close(x[-1, 2], x_np[-1, 2])
    close(x[1:, ::2], x_np[1:, ::2])


def test_iterating_a_tensor_yields_rows(device):
    x_np = np.arange(6.0).reshape(3, 2)
    rows = list(leaf(x_np, device))
    assert len(rows) == 3
    for r, e in zip(rows, x_np):
        close(r, e)


# ---------------------------------------------------------------- cat / stack / split / chunk
@given(data=st.data(), sd=shape_and_dim(1, 3, 3), seed=seeds, count=st.integers(1, 3))
def test_cat(device, data, sd, seed, count):
    shape, dim = sd
    parts_np = []
    for i in range(count):  # sizes along `dim` differ (0 too: an empty part is allowed)
        s = list(shape)
        s[dim] = data.draw(st.integers(0, 3))
        parts_np.append(array(seed + i, tuple(s)))
    parts = [leaf(p, device) for p in parts_np]
    close(tl.cat(parts, dim), np.concatenate(parts_np, axis=dim))
    assert tl.gradcheck(lambda *ts: tl.cat(list(ts), dim=dim), *parts)


@given(shape=small, seed=seeds, count=st.integers(1, 3))
def test_stack(device, shape, seed, count):
    parts_np = [array(seed + i, shape) for i in range(count)]
    for dim in range(-len(shape) - 1, len(shape) + 1):
        parts = [leaf(p, device) for p in parts_np]
        close(tl.stack(parts, dim), np.stack(parts_np, axis=dim))
        assert tl.gradcheck(lambda *ts: tl.stack(ts, dim=dim), *parts)


@given(sd=shape_and_dim(1, 3, 5), seed=seeds, size=st.integers(1, 5))
def test_split_by_size(device, sd, seed, size):
    shape, dim = sd
    x_np = array(seed, shape)
    x = leaf(x_np, device)
    pieces = x.split(size, dim)
    cuts = list(range(size, shape[dim], size))  # torch.split: chunks of `size`, the last one smaller
    expected = np.split(x_np, cuts, axis=dim)
    assert len(pieces) == len(expected)
    for p, e in zip(pieces, expected):
        close(p, e)
    assert tl.gradcheck(lambda t: t.split(size, dim), x)
    assert tl.gradcheck(lambda t: tl.split(t, size, dim)[0] * 3, x)  # unused pieces get zero gradient


@given(data=st.data(), sd=shape_and_dim(1, 3, 5), seed=seeds)
def test_split_by_sections(device, data, sd, seed):
    shape, dim = sd
    n = shape[dim]
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=3)))
    sections = [b - a for a, b in zip([0] + cuts, cuts + [n])]
    x_np = array(seed, shape)
    x = leaf(x_np, device)
    pieces = x.split(sections, dim)
    for p, e in zip(pieces, np.split(x_np, cuts, axis=dim)):
        close(p, e)
    assert tl.gradcheck(lambda t: t.split(sections, dim), x)


@given(sd=shape_and_dim(1, 3, 5), seed=seeds, chunks=st.integers(1, 6))
def test_chunk(device, sd, seed, chunks):
    shape, dim = sd
    x_np = array(seed, shape)
    x = leaf(x_np, device)
    pieces = x.chunk(chunks, dim)
    size = -(-shape[dim] // chunks)  # torch.chunk: ceil(n / chunks) per piece, so maybe fewer pieces
    expected = np.split(x_np, list(range(size, shape[dim], size)), axis=dim)
    assert len(pieces) == len(expected) <= chunks
    for p, e in zip(pieces, expected):
        close(p, e)
    assert tl.gradcheck(lambda t: tl.chunk(t, chunks, dim), x)


# ---------------------------------------------------------------- dtypes
SHAPE_OPS = {
    "reshape": lambda t: t.reshape(-1), "transpose": lambda t: t.transpose(0, 1), "permute": lambda t: t.permute(1, 0),
    "unsqueeze": lambda t: t.unsqueeze(0), "flatten": lambda t: t.flatten(), "expand": lambda t: t.expand(4, 2, 3),
    "getitem": lambda t: t[::2, 1], "getitem_int": lambda t: t[tl.tensor([0, 0, 1])],
    "getitem_bool": lambda t: t[t > 0], "cat": lambda t: tl.cat([t, t * 2], 1), "stack": lambda t: tl.stack([t, t]),
    "split": lambda t: t.split(2, 1)[1], "chunk": lambda t: t.chunk(2)[0],
}


@pytest.mark.parametrize("name", SHAPE_OPS)
def test_shape_ops_keep_float32_and_grad_dtype(device, name):
    x = tl.tensor(np.arange(6.0).reshape(2, 3) - 2, dtype=tl.float32, device=device, requires_grad=True)
    out = SHAPE_OPS[name](x)
    assert out.dtype == tl.float32
    out.sum().backward()
    assert x.grad.dtype == tl.float32 and x.grad.shape == x.shape


@pytest.mark.parametrize("fn", [tl.cat, tl.stack])
def test_cat_stack_of_mixed_float_dtypes_keep_each_grad_dtype(device, fn):
    a = tl.tensor([1.0, 2.0], dtype=tl.float32, device=device, requires_grad=True)
    b = tl.tensor([3.0, 4.0], dtype=tl.float64, device=device, requires_grad=True)
    out = fn([a, b])
    assert out.dtype == tl.float64
    (out * out).sum().backward()
    assert (a.grad.dtype, b.grad.dtype) == (tl.float32, tl.float64)
    np.testing.assert_array_equal(a.grad.detach().numpy(), [2.0, 4.0])


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("target", [(4, 2), (5,), (-1, 4), (-1, -1), (2, -2, 3)])
def test_reshape_to_an_incompatible_shape(device, target):
    with pytest.raises(RuntimeError, match=r"invalid for a tensor of shape \(2, 3\)"):
        tl.ones(2, 3, device=device).reshape(target)


def test_cat_of_mismatched_shapes_names_both(device):
    with pytest.raises(RuntimeError, match=r"\(2, 3\).*\(3, 4\)"):
        tl.cat([tl.ones(2, 3, device=device), tl.ones(3, 4, device=device)], dim=0)
    with pytest.raises(RuntimeError, match=r"\(2, 3\).*\(2, 3, 1\)"):
        tl.cat([tl.ones(2, 3, device=device), tl.ones(2, 3, 1, device=device)], dim=1)


def test_cat_and_stack_reject_bad_input(device):
    with pytest.raises(ValueError, match="non-empty"):
        tl.cat([])
    with pytest.raises(RuntimeError, match="zero-dimensional"):
        tl.cat([tl.tensor(1.0, device=device)])
    with pytest.raises(RuntimeError, match=r"\(2,\).*\(3,\)"):
        tl.stack([tl.ones(2, device=device), tl.ones(3, device=device)])
    with pytest.raises(IndexError, match="dimension 2 is out of range"):
        tl.cat([tl.ones(2, 3, device=device)] * 2, dim=2)
    with pytest.raises(IndexError, match="dimension 3 is out of range"):
        tl.stack([tl.ones(2, 3, device=device)] * 2, dim=3)
    with pytest.raises(TypeError):
        tl.cat([tl.ones(2, device=device), [1.0, 2.0]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float_tensor_as_index_names_its_dtype(device, dtype):
    x = tl.ones(4, 3, device=device)
    with pytest.raises(IndexError, match=dtype):
        x[tl.tensor([0.0, 1.0], dtype=dtype, device=device)]
    with pytest.raises(IndexError, match=dtype):
        x[1:, tl.tensor([2.0], dtype=dtype, device=device)]
    with pytest.raises(IndexError, match=dtype):
        x[tl.tensor(1.0, dtype=dtype, device=device)]


def test_float_list_as_index_names_its_dtype(device):
    with pytest.raises(IndexError, match="float64"):
        tl.ones(4, device=device)[[0.5, 1.0]]


def test_out_of_range_dims_are_errors_not_wrapped(device):
    x = tl.ones(2, 3, device=device)
    with pytest.raises(IndexError, match="out of range"):
        x.permute(2, 0)
    with pytest.raises(IndexError, match="out of range"):
        x.unsqueeze(3)
    with pytest.raises(IndexError, match="out of range"):
        x.squeeze(-3)
    with pytest.raises(RuntimeError, match="duplicate"):
        x.permute(0, 0)
    with pytest.raises(RuntimeError, match="needs 2 dims"):
        x.permute(1)


def test_expand_to_an_incompatible_shape(device):
    with pytest.raises(RuntimeError, match=r"\(2, 3\).*\(2, 4\)"):
        tl.ones(2, 3, device=device).expand(2, 4)
    with pytest.raises(RuntimeError, match=r"\(2, 3\).*\(3,\)"):
        tl.ones(2, 3, device=device).broadcast_to((3,))
    with pytest.raises(RuntimeError, match="leading"):
        tl.ones(3, device=device).expand(-1, 3)


def test_split_sections_must_add_up(device):
    with pytest.raises(RuntimeError, match=r"\[1, 1\].*size 3"):
        tl.ones(3, 2, device=device).split([1, 1])
    with pytest.raises(RuntimeError, match="positive"):
        tl.ones(3, device=device).split(0)


@pytest.mark.parametrize("chunks", [0, -2])
def test_chunk_count_must_be_positive(device, chunks):
    with pytest.raises(RuntimeError, match=f"got {chunks}"):
        tl.ones(4, device=device).chunk(chunks)


# ---------------------------------------------------------------- repeat, flip, roll, triu: copies that move elements
@given(data=st.data(), shape=shapes(0, 3, 1, 3), seed=seeds)
def test_repeat(device, data, shape, seed):
    reps = tuple(data.draw(st.lists(st.integers(0, 3), min_size=len(shape), max_size=len(shape) + 2)))
    x_np = array(seed, shape)
    x = leaf(x_np, device)
    close(x.repeat(*reps), np.tile(x_np, reps))  # NumPy's tile is PyTorch's repeat (extra leading reps too)
    close(x.repeat(reps), np.tile(x_np, reps))
    assert tl.gradcheck(lambda t: t.repeat(reps), x)  # each copy's gradient adds up in the original


@given(data=st.data(), shape=shapes(1, 3, 1, 4), seed=seeds)
def test_flip_and_roll(device, data, shape, seed):
    n = len(shape)
    dims = tuple(data.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=n, unique_by=lambda d: d % n)))
    shifts = tuple(data.draw(st.lists(st.integers(-5, 5), min_size=len(dims), max_size=len(dims))))
    x_np = array(seed, shape)
    x = leaf(x_np, device)
    close(x.flip(dims), np.flip(x_np, dims))
    close(tl.flip(x, dims), np.flip(x_np, dims))
    assert x.flip(dims).is_contiguous()  # a copy, as in PyTorch (NumPy's flip is a negative-stride view)
    close(x.roll(shifts, dims), np.roll(x_np, shifts, dims))
    close(x.roll(shifts[0], dims[0]), np.roll(x_np, shifts[0], dims[0]))
    close(tl.roll(x, shifts[0]), np.roll(x_np, shifts[0]))  # no dims: over the flattened tensor
    assert tl.gradcheck(lambda t: t.flip(dims) * t, x)
    assert tl.gradcheck(lambda t: t.roll(shifts, dims) * t, x)
    assert tl.gradcheck(lambda t: t.roll(shifts[0]) * t, x)


@given(shape=shapes(2, 4, 1, 4), seed=seeds, diagonal=st.integers(-3, 3))
def test_tril_triu_methods(device, shape, seed, diagonal):
    x_np = array(seed, shape)
    x = leaf(x_np, device)
    close(x.triu(diagonal), np.triu(x_np, diagonal))
    close(x.tril(diagonal), np.tril(x_np, diagonal))
    assert tl.gradcheck(lambda t: t.triu(diagonal) * t, x)


def test_copies_that_move_elements_reject_bad_args(device):
    x = tl.ones(2, 3, device=device)
    for bad in (lambda: x.repeat(2), lambda: x.repeat(-1, 1), lambda: x.flip(0, 0), lambda: x.roll((1, 2), 0),
                lambda: x.roll((1, 2)), lambda: tl.ones(3, device=device).triu()):
        with pytest.raises(RuntimeError):  # PyTorch's kind for each
            bad()
    with pytest.raises(IndexError, match="out of range"):
        x.flip(2)


@pytest.mark.parametrize("shape", [(0,), (2, 0), (0, 3, 1)])
def test_zero_size_split_chunk_flatten(device, shape):
    x = leaf(np.zeros(shape), device)
    assert x.flatten().shape == (0,)
    if len(shape) > 1:
        assert x.flatten(1).shape == (shape[0], int(np.prod(shape[1:])))  # not (0, -1): ambiguous
    if shape[0] == 0:  # PyTorch: split gives one empty piece (split(0) too), chunk gives `chunks` of them
        assert [p.shape for p in x.split(2)] == [shape] and len(x.split(0)) == 1
        assert [p.shape for p in x.chunk(3)] == [shape] * 3
    assert x.repeat((2,) * len(shape)).shape == tuple(2 * n for n in shape)
