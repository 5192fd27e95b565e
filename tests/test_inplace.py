"""In-place ops and version counters: PyTorch's semantics, checked against PyTorch where it is installed.

Every in-place change bumps the tensor's version (shared with its views and detach()); backward refuses
arrays its nodes saved and that changed since. Under grad mode a recorded in-place op makes the tensor
the output of a new node ("rebase"); earlier uses of the old value keep their gradient.
"""
import numpy as np
import pytest
from hypothesis import given

import tensorlite as tl
from tensorlite import autograd

from strategies import array, broadcastable_shapes, seeds, shapes

MODIFIED = "modified by an inplace operation"


def _torch():
    return pytest.importorskip("torch")


# ---------------------------------------------------------------- versions
def test_version_counts_inplace_changes_and_is_shared_with_views_and_detach():
    x = tl.ones(2, 3)
    v, d = x.reshape(6), x.detach()
    assert x._version == 0
    x.add_(1)
    x[0, 0] = 5
    d.mul_(2)
    v.zero_()
    assert x._version == v._version == d._version == 4
    assert x.clone()._version == 0 and (x + 1)._version == 0


def test_mark_dirty_bumps_the_version():
    x = tl.ones(3)
    autograd.mark_dirty(x)
    assert x._version == 1


def test_modified_saved_input_raises_at_backward_like_torch():
    torch = _torch()
    for lib in (tl, torch):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = x * 1
        z = y * y
        y.add_(1)
        with pytest.raises(RuntimeError, match="is at version 1; expected version 0 instead"):
            z.sum().backward()


class Square(tl.Function):
    """y = x^2 with dy/dx = 2 sqrt(y) sign(x): a backward that reads its output."""
    saves_inputs, saves_output = False, True

    def forward(self, a):
        self.sign, self.out = np.sign(a), a * a
        return self.out

    def backward(self, g):
        return 2 * g * self.sign * np.sqrt(self.out)


def test_modified_saved_output_raises():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    y = Square.apply(x)
    y.add_(1)
    with pytest.raises(RuntimeError, match=MODIFIED):
        y.sum().backward()


def test_leaf_changed_under_no_grad_after_forward_raises():
    w = tl.tensor([1.0, 2.0], requires_grad=True)
    y = (w * w).sum()
    with tl.no_grad():
        w.mul_(2)
    with pytest.raises(RuntimeError, match=MODIFIED):
        y.backward()


def test_constant_operand_changed_raises_like_torch():
    torch = _torch()
    for lib in (tl, torch):
        w = lib.ones(3, requires_grad=True)
        x = lib.ones(3)
        y = w * x
        x.add_(1)
        with pytest.raises(RuntimeError, match=MODIFIED):
            y.sum().backward()


def test_mark_dirty_after_optimizer_like_update_raises():
    w = tl.tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()
    w.data -= 0.1  # outside the Tensor API, as optimizers do
    autograd.mark_dirty(w)
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()


def test_no_false_alarm_when_backward_reads_only_shapes():
    w = tl.ones(3, requires_grad=True)
    x = tl.ones(3)
    y = tl.cat([w, x]).sum() + w.reshape(3, 1).sum() + w[1:].sum() + w.permute(0).clone().sum()
    x.add_(1)
    y.backward()
    np.testing.assert_allclose(w.grad.numpy(), [3.0, 4.0, 4.0])


# ---------------------------------------------------------------- refusals
def test_leaf_requiring_grad_refuses_inplace_under_grad_mode():
    torch = _torch()
    for lib in (tl, torch):
        x = lib.ones(3, requires_grad=True)
        for op in (lambda: x.add_(1), lambda: x.zero_(), lambda: x.fill_(2), lambda: x.mul_(2),
                   lambda: x.__setitem__(0, 1.0), lambda: x.copy_(lib.zeros(3)), lambda: x.clamp_(0, 1)):
            with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an "
                                                   "in-place operation"):
                op()
        with pytest.raises(RuntimeError, match="a view of a leaf Variable"):
            x[0:2].zero_()
        with lib.no_grad():
            x.add_(1)
        assert x._version == 1


def test_integer_inplace_with_float_result_raises_like_torch():
    torch = _torch()
    for lib in (tl, torch):
        for op in (lambda b: b.__iadd__(1.5), lambda b: b.__imul__(2.0), lambda b: b.__itruediv__(2),
                   lambda b: b.clamp_(0.5, 1.5)):
            b = lib.tensor([1, 2])
            with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired output type"):
                op(b)
            assert b.tolist() == [1, 2]
        b = lib.tensor([True])
        with pytest.raises(RuntimeError, match="can't be cast to the desired output type Bool"):
            b += 1


def test_truncating_writes_match_torch():
    torch = _torch()
    for lib in (tl, torch):
        assert lib.tensor([1, 2]).fill_(2.7).tolist() == [2, 2]
        assert lib.tensor([1, 2]).copy_(lib.tensor([2.7, 3.9])).tolist() == [2, 3]
        b = lib.tensor([1, 2])
        b[0] = 2.7
        assert b.tolist() == [2, 2]
        b = lib.tensor([1, 2], dtype=lib.int32)
        b += lib.tensor(5)
        assert b.tolist() == [6, 7] and b.dtype == lib.int32
        c = lib.tensor([1.0, 2.0])
        c.add_(lib.tensor([1, 2]), alpha=2)
        assert c.tolist() == [3.0, 6.0]


def test_numpy_of_tensor_requiring_grad_raises_like_torch():
    torch = _torch()
    for lib in (tl, torch):
        x = lib.ones(2, requires_grad=True)
        with pytest.raises(RuntimeError, match="Can't call numpy\\(\\) on Tensor that requires grad"):
            x.numpy()
        assert x.detach().numpy().tolist() == [1.0, 1.0]


# ---------------------------------------------------------------- recorded in-place ops
def _both(build):
    """build(lib) -> (output, inputs); the gradients of output.sum() from tensorlite and torch."""
    torch = _torch()
    out = []
    for lib in (tl, torch):
        y, inputs = build(lib)
        y.sum().backward()
        out.append([None if t.grad is None else np.asarray(t.grad.tolist()) for t in inputs]
                   + [np.asarray(y.tolist())])
    for a, b in zip(*out):
        if a is None or b is None:
            assert a is None and b is None
        else:
            np.testing.assert_allclose(a, b, rtol=1e-6)


def test_rebase_keeps_earlier_uses_and_sends_gradients_like_torch():
    def build(lib):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        w = lib.tensor([3.0, 4.0], requires_grad=True)
        y = x * 1
        z = y.clone() * 3  # uses the old y
        y.mul_(w)       # y is now the output of a new node
        y.sub_(w, alpha=0.5)
        y.div_(lib.tensor([2.0, 4.0]))
        y += x
        return z.sum() + y * y, (x, w)
    _both(build)


def test_setitem_with_value_requiring_grad_like_torch():
    def build(lib):
        x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        v = lib.tensor(5.0, requires_grad=True)
        u = lib.tensor([7.0, 8.0], requires_grad=True)
        y = x * 2
        y[1] = v
        z = lib.zeros(2, 3)
        z[:, 1:] = u
        z[0, 0] = v * 3
        return y * y + z.sum(0), (x, v, u)
    _both(build)


def test_fill_copy_zero_clamp_recorded_like_torch():
    def build(lib):
        x = lib.tensor([1.0, -2.0, 3.0], requires_grad=True)
        v = lib.tensor(3.0, requires_grad=True)
        s = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        a, b, c, d = x * 2, x * 3, x * 4, x * 1
        a.fill_(v)
        b.copy_(s * s)
        c.zero_()
        d.clamp_(-1.0, 2.0)
        return a * x + b + c + d * x, (x, v, s)
    _both(build)


def test_inplace_on_view_in_graph_is_refused_clearly():
    x = tl.ones(3, requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="view"):
        y[1:].mul_(3)


@given(broadcastable_shapes(max_dims=3, max_side=3), seeds)
def test_gradcheck_recorded_inplace_arithmetic(shapes_, seed):
    sa, sb = shapes_
    full = np.broadcast_shapes(sa, sb)
    a = tl.tensor(array(seed, full), dtype=tl.float64, requires_grad=True)
    b = tl.tensor(array(seed + 1, sb, 0.5, 2.0), dtype=tl.float64, requires_grad=True)

    def f(a, b):
        y = a * 1
        y.mul_(b)
        y.add_(b, alpha=2)
        y.div_(b)
        y -= a
        return y
    assert tl.gradcheck(f, a, b)


@given(shapes(min_dims=1, max_dims=3, max_side=4), seeds)
def test_gradcheck_setitem_and_copy(shape, seed):
    a = tl.tensor(array(seed, shape), dtype=tl.float64, requires_grad=True)
    v = tl.tensor(array(seed + 1, shape[1:]), dtype=tl.float64, requires_grad=True)

    def f(a, v):
        y = a * a
        y[0] = v * 2
        if shape[0] > 1:  # (distinct places: a repeated index in an assignment has no defined gradient)
            y[[0, -1]] = y[[0, -1]] * v  # an advanced index on both sides
        z = tl.zeros(shape, dtype=tl.float64)
        z.copy_(y.exp())
        return z
    assert tl.gradcheck(f, a, v)


# ---------------------------------------------------------------- grad mode decorators
def test_no_grad_and_friends_work_with_and_without_parentheses():
    x = tl.ones(2, requires_grad=True)

    @tl.no_grad
    def f():
        return x * 2

    @tl.no_grad()
    def g():
        return x * 2

    @tl.inference_mode
    def h():
        return x * 2

    @tl.inference_mode()
    def i():
        return x * 2

    assert not f().requires_grad and not g().requires_grad and not h().requires_grad and not i().requires_grad
    assert f.__name__ == "f"
    with tl.no_grad():
        @tl.enable_grad
        def e():
            return x * 2
        assert e().requires_grad
        with tl.inference_mode(False):
            assert not (x * 2).requires_grad
    with tl.inference_mode():
        assert not (x * 2).requires_grad
    assert tl.is_grad_enabled()


@given(shapes(min_dims=1, max_dims=3, max_side=4), seeds)
def test_gradcheck_setitem_with_a_mask_and_a_broadcast_value(shape, seed):
    a = tl.tensor(array(seed, shape), dtype=tl.float64, requires_grad=True)
    v = tl.tensor(array(seed + 1, (1,)), dtype=tl.float64, requires_grad=True)
    mask = tl.tensor(array(seed + 2, shape) > 0)

    def f(a, v):
        y = a.sin()  # (not tanh: its backward reads its output, so writing into it must raise, as in PyTorch)
        y[mask] = v * v  # one value broadcast to every selected place: its gradient sums over them
        return y * a
    assert tl.gradcheck(f, a, v)


def test_setitem_with_a_mask_matches_torch():
    def build(lib):
        a = lib.tensor([[1.0, -2.0], [3.0, -4.0]], requires_grad=True)
        v = lib.tensor([2.0], requires_grad=True)
        y = a * 1
        y[y < 0] = v * 3
        return y * a, (a, v)
    _both(build)


@given(shape=shapes(2, 3, 2, 4), seed=seeds)
def test_gradcheck_view_of_a_base_changed_in_place(shape, seed):
    """A view taken before its base changed in place shows the new values, so its gradient goes through the
    change (PyTorch regenerates the view's grad_fn): here row 0 of the base is overwritten after the view."""
    a = tl.tensor(array(seed, shape), dtype=tl.float64, requires_grad=True)
    v = tl.tensor(array(seed + 1, shape[1:]), dtype=tl.float64, requires_grad=True)

    def f(a, v):
        y = a * 2
        z = y.transpose(0, 1)[1:]  # a view of a view of y
        y[0] = v * v
        return z * a.transpose(0, 1)[1:]
    assert tl.gradcheck(f, a, v)


def test_view_of_a_base_changed_in_place_matches_torch():
    def build(lib):
        a = lib.tensor([[1.0, -2.0, 0.5], [3.0, -4.0, 1.5]], dtype=lib.float64, requires_grad=True)
        v = lib.tensor(2.0, dtype=lib.float64, requires_grad=True)
        y = a * 3
        z = y.reshape(-1)
        w = z + 1  # made before the change: its gradient reaches a everywhere
        y[0, 1:] = v * v
        return z * 2 + w, (a, v)
    _both(build)
