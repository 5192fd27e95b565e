"""The Tensor API: attributes, host access, conversions, dtype rules, operators, indexing."""
import operator

import numpy as np
import pytest
from hypothesis import given

import tensorlite as tl

from strategies import array, seeds, shapes


# ---------------------------------------------------------------- construction and attributes
def test_attributes(device):
    t = tl.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], device=device)
    np.testing.assert_array_equal(tl.backend.to_numpy(t.data), [[1, 2, 3], [4, 5, 6]])
    assert t.shape == (2, 3) and t.ndim == 2 and t.dim() == 2
    assert t.dtype == tl.float32
    assert t.device == ("cpu" if device == "cpu" else "cuda:0")
    assert t.size() == (2, 3) and t.size(1) == 3 and t.size(-1) == 3
    assert t.numel() == 6 and len(t) == 2
    assert t.grad is None and not t.requires_grad and t.is_leaf and t.grad_fn is None


@pytest.mark.parametrize("data, dtype", [
    (1.5, tl.float32), ([1.0, 2.0], tl.float32), ([1, 2.5], tl.float32), (3, tl.int64), ([[1, 2]], tl.int64),
    (True, tl.bool_), ([True, False], tl.bool_),
])
def test_python_values_get_pytorch_default_dtypes(data, dtype):
    t = tl.tensor(data)
    assert t.dtype == dtype
    np.testing.assert_array_equal(t.detach().numpy(), np.asarray(data))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64, np.int32, np.bool_])
def test_numpy_arrays_keep_their_dtype(dtype):
    a = np.arange(6).reshape(2, 3).astype(dtype)
    assert tl.tensor(a).dtype == dtype
    assert tl.Tensor(a).dtype == dtype


def test_explicit_dtype_converts():
    t = tl.tensor([1, 2], dtype=tl.float64)
    assert t.dtype == tl.float64
    np.testing.assert_array_equal(t.detach().numpy(), [1.0, 2.0])
    assert tl.tensor(np.ones(2), dtype="float32").dtype == tl.float32


def test_tensor_copies_but_constructor_shares():
    a = np.arange(3.0)
    t = tl.tensor(a)
    a[0] = 100
    assert t.detach().numpy()[0] == 0
    assert np.shares_memory(tl.Tensor(a).data, a)  # Tensor(array) wraps without copying, like torch.as_tensor
    assert not np.shares_memory(tl.tensor(tl.Tensor(a)).data, a)


def test_constructor_makes_noncontiguous_input_contiguous():
    a = np.arange(6.0).reshape(2, 3).T
    t = tl.Tensor(a)
    assert t.data.flags.c_contiguous
    np.testing.assert_array_equal(t.detach().numpy(), a)


def test_tensor_from_tensor_and_scalar_numpy():
    assert tl.tensor(tl.tensor([1.0, 2.0])).tolist() == [1.0, 2.0]
    t = tl.tensor(np.float64(2.5))
    assert t.shape == () and t.dtype == tl.float64


def test_bad_data_raises_typeerror():
    with pytest.raises(TypeError, match="cannot make a tensor"):
        tl.tensor(["a", "b"])
    with pytest.raises(TypeError, match="cannot make a tensor"):
        tl.tensor(None)


@pytest.mark.parametrize("dtype", [tl.int64, tl.int32, tl.bool_])
def test_requires_grad_on_non_float_raises(dtype):
    with pytest.raises(RuntimeError, match="only floating-point.*" + np.dtype(dtype).name):
        tl.tensor([1, 0], dtype=dtype, requires_grad=True)
    with pytest.raises(RuntimeError, match="only floating-point"):
        tl.tensor([1, 0], dtype=dtype).requires_grad_()


def test_requires_grad_on_nonleaf_cannot_be_switched_off():
    y = tl.tensor([1.0], requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad_(False)


# ---------------------------------------------------------------- host access
def test_item_tolist_and_python_conversions(device):
    t = tl.tensor([[1.5]], device=device)
    assert t.item() == 1.5 and isinstance(t.item(), float)
    assert float(t) == 1.5 and int(tl.tensor(7)) == 7 and bool(tl.tensor([True]))
    assert tl.tensor([[1, 2], [3, 4]], device=device).tolist() == [[1, 2], [3, 4]]
    with pytest.raises(RuntimeError, match=r"one element.*\(2,\)"):  # PyTorch's type
        tl.tensor([1.0, 2.0]).item()
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(tl.tensor([1.0, 2.0]))


def test_numpy_returns_a_copy(device):
    t = tl.tensor([1.0, 2.0], device=device)
    a = t.detach().numpy()
    assert isinstance(a, np.ndarray)
    a[0] = 100
    assert t.tolist() == [1.0, 2.0]


def test_np_asarray_of_tensor():
    t = tl.tensor([1.0, 2.0])
    np.testing.assert_array_equal(np.asarray(t), [1.0, 2.0])
    assert np.asarray(t, dtype=np.float64).dtype == np.float64


def test_index_protocol():
    assert [10, 20, 30][tl.tensor(1)] == 20
    with pytest.raises(TypeError):
        [10, 20][tl.tensor(1.0)]


def test_repr_mentions_grad_and_dtype():
    assert "requires_grad=True" in repr(tl.tensor([1.0], requires_grad=True))
    assert "grad_fn=<MulBackward0>" in repr(tl.tensor([1.0], requires_grad=True) * 2)
    assert "float64" in repr(tl.tensor([1.0], dtype=tl.float64))


# ---------------------------------------------------------------- conversions
def test_to_dtype_and_device(device):
    t = tl.tensor([1.5, -2.5], device=device)
    assert t.to(tl.float64).dtype == tl.float64
    assert t.to(dtype=tl.int64).tolist() == [1, -2]
    assert t.double().dtype == tl.float64 and t.float().dtype == tl.float32
    assert t.long().dtype == tl.int64 and t.int().dtype == tl.int32 and t.bool().dtype == tl.bool_
    assert t.to(device) is t  # nothing to do: the same tensor, as in PyTorch
    c = t.to("cpu", tl.float64)
    assert c.device == "cpu" and c.dtype == tl.float64 and c.tolist() == [1.5, -2.5]
    assert t.cpu().device == "cpu"


def test_to_float64_is_differentiable():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    y = x.to(tl.float64)
    assert y.requires_grad
    (y * y).sum().backward()
    assert x.grad.dtype == tl.float32
    np.testing.assert_allclose(x.grad.detach().numpy(), [2.0, 4.0])


@pytest.mark.cuda
def test_to_cuda_and_back_is_differentiable():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    y = x.to("cuda")
    assert y.device == "cuda:0" and y.requires_grad
    (y * y).sum().backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.detach().numpy(), [2.0, 4.0])


def test_detach_and_clone():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and np.shares_memory(d.data, x.data)
    c = x.clone()
    assert c.requires_grad and not np.shares_memory(c.data, x.data)
    c.sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), [1.0, 1.0])
    plain = tl.tensor([1.0]).clone()
    assert not plain.requires_grad


def test_T_and_mT(device):
    a = array(0, (2, 3, 4))
    t = tl.tensor(a, device=device)
    np.testing.assert_array_equal(t.T.detach().numpy(), a.T)
    np.testing.assert_array_equal(t.mT.detach().numpy(), a.swapaxes(-1, -2))
    np.testing.assert_array_equal(tl.tensor(a[0]).t().detach().numpy(), a[0].T)
    with pytest.raises(RuntimeError, match="t\\(\\)"):
        t.t()


# ---------------------------------------------------------------- dtype rules of operators
@pytest.mark.parametrize("op", [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow])
@pytest.mark.parametrize("scalar", [2, 2.5, True])
def test_python_scalars_never_promote_float32(op, scalar):
    t = tl.tensor([1.0, 2.0])
    if op is operator.sub and scalar is True:  # PyTorch refuses `-` with a bool
        with pytest.raises(RuntimeError, match="bool"):
            t - scalar
        return
    assert op(t, scalar).dtype == tl.float32
    assert op(scalar, t).dtype == tl.float32
    assert op(t, np.float64(2.0)).dtype == tl.float32


def test_float_scalar_with_int_tensor_gives_float32():
    t = tl.tensor([1, 2])
    assert (t * 2.5).dtype == tl.float32
    np.testing.assert_allclose((t * 2.5).detach().numpy(), [2.5, 5.0])
    assert (t + 1).dtype == tl.int64
    assert (tl.tensor([1, 2], dtype=tl.int32) + 1).dtype == tl.int32
    assert (tl.tensor([True]) + 1).dtype == tl.int64
    assert (tl.tensor([True]) & True).dtype == tl.bool_


def test_int_division_gives_float32():
    a, b = tl.tensor([1, 2, 3]), tl.tensor([2, 2, 2])
    for out, expected in [(a / b, [0.5, 1, 1.5]), (a / 2, [0.5, 1, 1.5]), (3 / a, [3, 1.5, 1])]:
        assert out.dtype == tl.float32
        np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-6)
    assert (a // 2).dtype == tl.int64 and (a // 2).tolist() == [0, 1, 1]
    assert (a % 2).tolist() == [1, 0, 1]


def test_float64_is_kept_and_mixed_floats_widen():
    d = tl.tensor([1.0], dtype=tl.float64)
    assert (d * 2).dtype == tl.float64 and (d + 0.5).dtype == tl.float64
    assert (d + tl.tensor([1.0])).dtype == tl.float64
    assert (tl.tensor([1, 2]) + d).dtype == tl.float64


def test_complex_scalar_rejected():
    with pytest.raises(TypeError, match="complex"):
        tl.tensor([1.0]) * 1j


# ---------------------------------------------------------------- operators against NumPy
@given(shapes(max_dims=3, max_side=4), seeds)
def test_arithmetic_operators_match_numpy(shape, seed):
    a = array(seed, shape)
    b = array(seed + 1, shape, low=0.5, high=2.0)
    ta, tb = tl.tensor(a, dtype=tl.float64), tl.tensor(b, dtype=tl.float64)
    for op in (operator.add, operator.sub, operator.mul, operator.truediv):
        np.testing.assert_allclose(op(ta, tb).detach().numpy(), op(a, b), rtol=1e-12)
        np.testing.assert_allclose(op(ta, 1.5).detach().numpy(), op(a, 1.5), rtol=1e-12)
        np.testing.assert_allclose(op(1.5, tb).detach().numpy(), op(1.5, b), rtol=1e-12)
    np.testing.assert_allclose((tb ** 2.5).detach().numpy(), b ** 2.5, rtol=1e-12)
    np.testing.assert_allclose((2.0 ** ta).detach().numpy(), 2.0 ** a, rtol=1e-12)
    np.testing.assert_allclose((-ta).detach().numpy(), -a)
    assert (+ta) is ta
    np.testing.assert_allclose(abs(ta).detach().numpy(), np.abs(a))


def test_matmul_operator(device):
    a, b = array(1, (2, 3)), array(2, (3, 4))
    ta, tb = tl.tensor(a, device=device), tl.tensor(b, device=device)
    np.testing.assert_allclose((ta @ tb).detach().numpy(), (a @ b).astype(np.float32), rtol=1e-5)
    np.testing.assert_allclose((a @ tb).detach().numpy(), (a @ b), rtol=1e-5)  # ndarray @ tensor, one dtype


@pytest.mark.parametrize("op", [operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge])
def test_comparisons_are_bool_and_not_differentiable(op, device):
    a = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    x = tl.tensor(a, device=device, requires_grad=True)
    for other in (2.0, tl.tensor([3.0, 2.0, 1.0], device=device)):
        out = op(x, other)
        expected = op(a, other.detach().numpy() if isinstance(other, tl.Tensor) else other)
        assert out.dtype == tl.bool_ and not out.requires_grad and out.grad_fn is None
        np.testing.assert_array_equal(out.detach().numpy(), expected)


def test_logical_operators():
    a, b = tl.tensor([True, True, False]), tl.tensor([True, False, False])
    assert (a & b).tolist() == [True, False, False]
    assert (a | b).tolist() == [True, True, False]
    assert (~a).tolist() == [False, False, True]


def test_tensors_are_hashable_by_identity():
    a, b = tl.tensor([1.0]), tl.tensor([1.0])
    assert len({a, b}) == 2


def test_comparison_across_devices_raises():
    a, b = tl.ones(2), tl.ones(2)
    b.device = "cuda:0"  # fake: the check runs before any data is touched
    with pytest.raises(RuntimeError, match="same device.*cpu.*cuda:0"):
        a < b


# ---------------------------------------------------------------- in-place
def test_inplace_ops_outside_graph():
    t = tl.tensor([1.0, 2.0])
    t += 1
    t *= 2
    t -= tl.tensor([1.0, 1.0])
    t /= 2
    np.testing.assert_allclose(t.detach().numpy(), [1.5, 2.5])
    assert t.dtype == tl.float32
    t.fill_(3.0)
    assert t.tolist() == [3.0, 3.0]
    t.zero_()
    assert t.tolist() == [0.0, 0.0]
    t.copy_(tl.tensor([4.0, 5.0]))
    assert t.tolist() == [4.0, 5.0]


def test_inplace_on_requires_grad_raises_unless_no_grad():
    w = tl.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        w += 1
    with tl.no_grad():
        w -= 0.5
    np.testing.assert_allclose(w.detach().numpy(), [0.5, 1.5])


# ---------------------------------------------------------------- indexing
@pytest.mark.parametrize("index", [
    0, -1, slice(1, 3), (1, 2), (slice(None), 0), (Ellipsis, 1), (None, 0), [0, 2, 2],
    np.array([True, False, True, False]),
])
def test_getitem_matches_numpy(index, device):
    a = array(3, (4, 3))
    t = tl.tensor(a, dtype=tl.float64, device=device)
    np.testing.assert_array_equal(t[index].detach().numpy(), a[index])


def test_getitem_with_tensor_index_and_gradient(device):
    a = array(4, (5,))
    x = tl.tensor(a, dtype=tl.float64, device=device, requires_grad=True)
    idx = tl.tensor([0, 3, 3], device=device)
    x[idx].sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), [1, 0, 0, 2, 0])  # index 3 picked twice: both count


def test_getitem_with_float_index_tensor_raises():
    with pytest.raises(IndexError, match="must be long, int, byte or bool"):
        tl.ones(3)[tl.tensor([0.0])]


def test_setitem(device):
    a = np.zeros((3, 4), dtype=np.float32)
    t = tl.tensor(a, device=device)
    t[0] = 1.0
    t[1, 2:] = tl.tensor([5.0, 6.0], device=device)
    t[t > 5] = -1.0
    a[0] = 1.0
    a[1, 2:] = [5.0, 6.0]
    a[a > 5] = -1.0
    np.testing.assert_array_equal(t.detach().numpy(), a)


def test_setitem_on_requires_grad_raises_unless_no_grad():
    w = tl.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        w[0] = 1.0
    with tl.no_grad():
        w[0] = 1.0
    assert w.tolist() == [1.0, 0.0, 0.0]


def test_iteration_and_len():
    t = tl.tensor([[1, 2], [3, 4]])
    assert [row.tolist() for row in t] == [[1, 2], [3, 4]]
    with pytest.raises(TypeError, match="0-d"):
        len(tl.tensor(1.0))
