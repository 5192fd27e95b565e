"""Indexing and views as PyTorch: list-of-lists indices, uint8/bool masks, slice steps, contiguity."""
import warnings

import numpy as np
import pytest
from hypothesis import given

import tensorlite as tl

from strategies import array, seeds, shapes


def _pair():
    torch = pytest.importorskip("torch")
    return torch, np.arange(12.0).reshape(3, 4)


@pytest.mark.parametrize("index", [
    [[0, 1], [2, 2]], [[0, 1]], [0, 1], [True, False, True], [[0, 2], slice(1, 3)], [[1], [0, 3]]])
def test_list_indices_match_torch(index):
    torch, a = _pair()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = torch.tensor(a)[index].tolist()
    assert tl.tensor(a)[index].tolist() == want


def test_uint8_and_bool_tensor_indices_are_masks_like_torch():
    torch, a = _pair()
    for dtype in ("uint8", "bool"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = torch.tensor(a)[torch.tensor([1, 0, 1], dtype=getattr(torch, dtype))].tolist()
            got = tl.tensor(a)[tl.tensor([1, 0, 1], dtype=getattr(tl, dtype if dtype != "bool" else "bool_"))]
        assert got.tolist() == want
    assert tl.tensor(a)[tl.tensor(True)].shape == tuple(torch.tensor(a)[torch.tensor(True)].shape)
    assert tl.tensor(a)[tl.tensor([1, 2], dtype=tl.int32)].tolist() == a[[1, 2]].tolist()


def test_uint8_index_warns():
    with pytest.warns(UserWarning, match="uint8"):
        tl.ones(3)[tl.tensor([1, 0, 1], dtype=tl.uint8)]


def test_slice_steps_like_torch():
    torch, a = _pair()
    for lib in (tl, torch):
        x = lib.tensor(a)
        with pytest.raises(ValueError, match="step must be greater than zero"):
            x[::-1]
        with pytest.raises(ValueError, match="slice step cannot be zero"):
            x[::0]
        assert x[::2, 1::2].tolist() == a[::2, 1::2].tolist()


def test_view_of_non_contiguous_raises_and_reshape_copies_like_torch():
    torch, a = _pair()
    for lib in (tl, torch):
        t = lib.tensor(a).t()
        assert not t.is_contiguous()
        with pytest.raises(RuntimeError, match="view size is not compatible with input tensor's size and stride"):
            t.view(-1)
        assert t.view(4, 3).tolist() == a.T.tolist()  # the same shape needs no copy
        assert t.view(2, 2, 3).tolist() == a.T.reshape(2, 2, 3).tolist()
        assert t.reshape(-1).tolist() == a.T.reshape(-1).tolist()
        c = t.contiguous()
        assert c.is_contiguous() and c.view(-1).tolist() == a.T.reshape(-1).tolist()
        assert lib.ones(3, 1).t().view(3).tolist() == [1.0, 1.0, 1.0]


def test_view_shares_memory_and_version():
    x = tl.zeros(2, 3)
    v = x.view(6)
    v[0] = 1.0
    assert x[0, 0].item() == 1.0 and x._version == 1
    r = x.t().reshape(6)  # a copy: its own memory
    r[1] = 5.0
    assert x.tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]


def test_view_dtype_of_same_size():
    x = tl.ones(3)
    assert x.view(tl.float32) is x
    assert x.view(tl.int32).tolist() == np.ones(3, np.float32).view(np.int32).tolist()
    with pytest.raises(RuntimeError):
        x.view(tl.float64)


def test_flatten_with_start_after_end_raises_like_torch():
    torch = pytest.importorskip("torch")
    for lib in (tl, torch):
        with pytest.raises(RuntimeError, match="start_dim cannot come after end_dim"):
            lib.ones(2, 3, 4).flatten(2, 1)
        assert tuple(lib.ones(2, 3, 4).flatten(1, 2).shape) == (2, 12)


@given(shapes(min_dims=2, max_dims=4, max_side=3), seeds)
def test_gradcheck_contiguous_and_clone(shape, seed):
    x = tl.tensor(array(seed, shape), dtype=tl.float64, requires_grad=True)

    def f(x):
        t = x.transpose(0, -1).contiguous()
        return t.view(-1) * t.clone().reshape(-1)
    assert tl.gradcheck(f, x)


def test_empty_list_index_picks_no_rows_like_torch():
    torch = pytest.importorskip("torch")
    for lib in (tl, torch):
        y = lib.ones(3, 2)[[]]  # NumPy would read [] as a float array and refuse it
        assert tuple(y.shape) == (0, 2) and y.dtype == lib.float32


def test_uint8_mask_cannot_write_one_value_like_torch():
    """PyTorch writes one value through a lone mask with masked_fill_, which refuses uint8 masks; a tensor of
    values (or a second index) takes another path that accepts them (with a deprecation warning)."""
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lib in (tl, torch):
            mask = lib.tensor([1, 0, 1], dtype=lib.uint8)
            for value in (2.5, lib.tensor(2.5), lib.ones(1), lib.ones(1, 1)):
                with pytest.raises(RuntimeError):
                    lib.zeros(3, 2)[mask] = value
                with pytest.raises(RuntimeError):
                    lib.zeros(3, 2)[mask, 0] = value
            x = lib.zeros(3, 2)
            x[mask] = lib.ones(2, 2)
            x[mask, lib.tensor([0, 1])] = 3.0
            np.testing.assert_array_equal(np.asarray(x.tolist()), [[3, 1], [0, 0], [1, 3]])
