"""tensorlite.gradcheck: passes correct Functions, names the worst element of a wrong one, demands float64."""
import numpy as np
import pytest
from hypothesis import given

import tensorlite as tl
from tensorlite import Function, GradcheckError

from strategies import array, seeds, shapes


class Square(Function):
    def forward(self, a):
        self.a = a
        return a * a

    # d a^2 = 2a
    def backward(self, g):
        return 2 * self.a * g


class WrongSquare(Function):
    """A student's slip: the factor 2 is forgotten."""

    def forward(self, a):
        self.a = a
        return a * a

    def backward(self, g):
        return self.a * g


class WrongSecondInput(Function):
    """x * y with the gradient for y wrong in one place only: its last element."""

    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, g):
        gy = g * self.x
        gy.reshape(-1)[-1] += 1.0
        return g * self.y, gy


@given(shapes(max_dims=3, max_side=3), seeds)
def test_correct_function_passes(shape, seed):
    x = tl.tensor(array(seed, shape), dtype=tl.float64, requires_grad=True)
    assert tl.gradcheck(lambda t: Square.apply(t), x) is True


def test_composed_function_with_several_inputs_and_outputs_passes(device):
    x = tl.tensor(array(1, (2, 3)), dtype=tl.float64, device=device, requires_grad=True)
    w = tl.tensor(array(2, (3, 2)), dtype=tl.float64, device=device, requires_grad=True)
    const = tl.tensor(array(3, (2, 2)), dtype=tl.float64, device=device)  # no grad: left alone
    assert tl.gradcheck(lambda a, b, c: ((a @ b).tanh() * c, a.exp().sum()), x, w, const)


def test_wrong_function_names_input_index_and_values():
    x = tl.tensor([[0.5, -1.0], [2.0, 3.0]], dtype=tl.float64, requires_grad=True)
    with pytest.raises(GradcheckError) as info:
        tl.gradcheck(lambda t: WrongSquare.apply(t).sum(), x)
    msg = str(info.value)
    assert "input 0" in msg and "shape (2, 2)" in msg
    # summed output: one cotangent v for all; the worst mismatch |x v| is at the largest |x|, index (1, 1),
    # where the analytic value is x v and the numeric one 2 x v
    assert "index (1, 1)" in msg
    analytic = float(msg.split("analytic ")[1].split(",")[0])
    numeric = float(msg.split("numeric ")[1].split(" ")[0])
    np.testing.assert_allclose(numeric, 2 * analytic, rtol=1e-6)


def test_wrong_second_input_is_named():
    x = tl.tensor(array(4, (3,)), dtype=tl.float64, requires_grad=True)
    y = tl.tensor(array(5, (3,)), dtype=tl.float64, requires_grad=True)
    with pytest.raises(GradcheckError, match=r"input 1 \(shape \(3,\)\) at index \(2,\)"):
        tl.gradcheck(lambda a, b: WrongSecondInput.apply(a, b), x, y)


def test_gradcheck_error_is_an_assertion_error():
    assert issubclass(GradcheckError, AssertionError)


def test_float32_inputs_rejected():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match="input 0 is float32.*float64"):
        tl.gradcheck(lambda t: Square.apply(t), x)


def test_no_input_requiring_grad_rejected():
    with pytest.raises(ValueError, match="no input requires grad"):
        tl.gradcheck(lambda t: t * 2, tl.tensor([1.0], dtype=tl.float64))


def test_output_without_graph_fails():
    x = tl.tensor([1.0], dtype=tl.float64, requires_grad=True)
    with pytest.raises(GradcheckError, match="no tensor that requires grad"):
        tl.gradcheck(lambda t: t.detach() * 2, x)


def test_works_inside_no_grad_and_leaves_grads_alone():
    x = tl.tensor([1.0, 2.0], dtype=tl.float64, requires_grad=True)
    (x * 3).sum().backward()
    before = x.grad
    with tl.no_grad():
        assert tl.gradcheck(lambda t: Square.apply(t), x)
    assert x.grad is before
    np.testing.assert_array_equal(x.grad.detach().numpy(), [3.0, 3.0])
    np.testing.assert_array_equal(x.detach().numpy(), [1.0, 2.0])  # perturbations undone
