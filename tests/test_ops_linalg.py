"""matmul with NumPy's semantics (1-D operands, batching, broadcast batch dims): forward against
np.matmul, gradcheck in float64, dtypes and the shape errors."""
import numpy as np
import pytest
from hypothesis import given

import tensorlite as tl
from strategies import array, leaf, matmul_shapes, seeds


@given(pair=matmul_shapes(), seed_a=seeds, seed_b=seeds)
def test_matmul(device, pair, seed_a, seed_b):
    sa, sb = pair
    a_np, b_np = array(seed_a, sa), array(seed_b, sb)
    a, b = leaf(a_np, device), leaf(b_np, device)
    expected = np.matmul(a_np, b_np)
    for out in (a @ b, tl.matmul(a, b), a.matmul(b)):
        assert out.shape == expected.shape
        np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-12, atol=1e-12)
    assert tl.gradcheck(lambda x, y: x @ y, a, b)


@given(pair=matmul_shapes(), seed_a=seeds, seed_b=seeds)
def test_matmul_with_one_constant_side(device, pair, seed_a, seed_b):
    # only one operand requires grad: the other gets none (and backward skips computing it)
    sa, sb = pair
    a_np, b_np = array(seed_a, sa), array(seed_b, sb)
    a_const, b_const = (tl.tensor(v, dtype=tl.float64, device=device) for v in (a_np, b_np))
    assert tl.gradcheck(lambda x: x @ b_const, leaf(a_np, device))
    assert tl.gradcheck(lambda y: a_const @ y, leaf(b_np, device))
    assert a_const.grad is None and b_const.grad is None


def test_vector_dot_vector_is_a_scalar(device):
    a_np, b_np = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 2.0])
    a, b = leaf(a_np, device), leaf(b_np, device)
    out = a @ b
    assert out.shape == () and out.item() == pytest.approx(a_np @ b_np)
    out.backward()
    np.testing.assert_array_equal(a.grad.detach().numpy(), b_np)  # d(a.b)/da = b
    np.testing.assert_array_equal(b.grad.detach().numpy(), a_np)


def test_matmul_with_numpy_array_operand(device):
    a_np, b_np = np.arange(6.0).reshape(2, 3), np.arange(3.0)
    a = leaf(a_np, device)
    np.testing.assert_allclose((a @ b_np).detach().numpy(), a_np @ b_np)
    np.testing.assert_allclose((a_np.T @ a).detach().numpy(), a_np.T @ a_np)


# ---------------------------------------------------------------- dtypes
@pytest.mark.parametrize("sa, sb", [((2, 3), (3, 4)), ((3,), (3, 2)), ((2, 2, 3), (3,)), ((3,), (3,))])
def test_float32_stays_float32(device, sa, sb):
    a = tl.tensor(np.ones(sa), dtype=tl.float32, device=device, requires_grad=True)
    b = tl.tensor(np.ones(sb), dtype=tl.float32, device=device, requires_grad=True)
    out = a @ b
    assert out.dtype == tl.float32
    (out * 2.5).sum().backward()
    assert a.grad.dtype == b.grad.dtype == tl.float32
    assert a.grad.shape == sa and b.grad.shape == sb


def test_mixed_dtypes_raise(device):
    """PyTorch's matmul does not promote: operands of two dtypes are a RuntimeError (convert one with .to)."""
    a = tl.tensor(np.ones((2, 3)), dtype=tl.float32, device=device)
    for b in (tl.tensor(np.ones((3, 2)), dtype=tl.float64, device=device), tl.ones(3, 1, dtype=tl.int64, device=device)):
        with pytest.raises(RuntimeError, match="same dtype"):
            a @ b
    ints = tl.tensor([[1, 2, 3]], device=device)
    assert (ints @ tl.tensor([[1], [1], [1]], device=device)).dtype == tl.int64


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("sa, sb", [((2, 3), (4, 2)), ((3,), (4,)), ((2, 3), (2,)), ((4,), (3, 2)),
                                    ((5, 2, 3), (5, 2, 3))])
def test_mismatched_inner_dims_name_both_shapes(device, sa, sb):
    a, b = tl.ones(*sa, device=device), tl.ones(*sb, device=device)
    with pytest.raises(RuntimeError, match=f"{tuple(sa)}".replace("(", r"\(").replace(")", r"\)") + ".*" +
                       f"{tuple(sb)}".replace("(", r"\(").replace(")", r"\)")):
        a @ b


def test_batch_dims_that_do_not_broadcast(device):
    with pytest.raises(RuntimeError, match=r"\(2, 2, 3\).*\(3, 3, 2\).*broadcast"):
        tl.ones(2, 2, 3, device=device) @ tl.ones(3, 3, 2, device=device)


def test_matmul_of_a_0d_tensor(device):
    with pytest.raises(RuntimeError, match=r"\(\).*\(3,\)"):
        tl.matmul(tl.tensor(2.0, device=device), tl.ones(3, device=device))


def test_matmul_needs_tensors(device):
    with pytest.raises(TypeError, match="tensors"):
        tl.matmul(tl.ones(2, 2, device=device), [[1.0, 0.0], [0.0, 1.0]])
