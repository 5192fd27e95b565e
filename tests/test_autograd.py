"""Graph semantics of the engine: accumulation, freeing, grad mode, deep graphs, custom Functions."""
import re
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given

import tensorlite as tl
from tensorlite.autograd import Function, unbroadcast

from strategies import array, broadcastable_shapes, seeds


def leaf(values, device="cpu", dtype=tl.float64):
    return tl.tensor(values, dtype=dtype, device=device, requires_grad=True)


# ---------------------------------------------------------------- accumulation inside one graph
def test_tensor_used_twice_in_mul_gets_both_contributions(device):
    x = leaf([1.0, -2.0, 3.0], device)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), 2 * x.detach().numpy())


def test_tensor_used_twice_in_add_gets_both_contributions(device):
    x = leaf([1.0, -2.0, 3.0], device)
    (x + x).sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), [2.0, 2.0, 2.0])


def test_diamond_graph(device):
    # x feeds two branches that meet again: y = sum(exp(x) x^2 + exp(x)), so every path must add up
    x = leaf([0.5, -1.0], device)
    a = x.exp()
    b = x * x
    y = (a * b + a).sum()
    y.backward()
    xv = x.detach().numpy()
    expected = np.exp(xv) * xv ** 2 + np.exp(xv) * 2 * xv + np.exp(xv)
    np.testing.assert_allclose(x.grad.detach().numpy(), expected, rtol=1e-12)


def test_grad_accumulates_across_backward_calls(device):
    x = leaf([1.0, 2.0], device)
    (3 * x).sum().backward()
    (5 * x).sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), [8.0, 8.0])


def test_grad_from_broadcast_reduction_is_writable_and_accumulates():
    # sum()'s backward broadcasts its gradient; the leaf's .grad must still own a writable array
    x = leaf([1.0, 2.0, 3.0])
    x.sum().backward()
    x.sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), [2.0, 2.0, 2.0])
    x.grad.zero_()
    np.testing.assert_allclose(x.grad.detach().numpy(), [0.0, 0.0, 0.0])


def test_leaf_grads_are_never_aliased():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (a + b).sum().backward()
    assert not np.shares_memory(a.grad.data, b.grad.data)
    a.grad.data *= 10
    np.testing.assert_allclose(b.grad.detach().numpy(), [1.0, 1.0])


def test_leaf_grads_not_aliased_through_views():
    # reshape's backward returns a view of the incoming gradient
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (a.reshape(2, 1) + b.reshape(2, 1)).sum().backward()
    assert not np.shares_memory(a.grad.data, b.grad.data)


def test_retained_nonleaf_grad_not_aliased_with_leaf_grad():
    x = leaf([1.0, 2.0])
    y = x + 0.0
    y.retain_grad()
    (y * 1.0).sum().backward(gradient=None)
    assert not np.shares_memory(y.grad.data, x.grad.data)


def test_explicit_gradient_is_copied():
    x = leaf([1.0, 2.0])
    g = tl.tensor([0.5, -1.0], dtype=tl.float64)
    y = x + 0.0
    y.backward(gradient=g)
    np.testing.assert_allclose(x.grad.detach().numpy(), [0.5, -1.0])
    x.grad.data *= 2
    np.testing.assert_allclose(g.detach().numpy(), [0.5, -1.0])


@given(broadcastable_shapes(max_dims=3, max_side=3), seeds)
def test_broadcast_add_grads_have_input_shapes(shapes, seed):
    sa, sb = shapes
    a, b = leaf(array(seed, sa)), leaf(array(seed + 1, sb))
    out = a * b
    g = array(seed + 2, out.shape)
    out.backward(gradient=g)
    assert a.grad.shape == sa and b.grad.shape == sb
    np.testing.assert_allclose(a.grad.detach().numpy(), unbroadcast(g * b.detach().numpy(), sa), rtol=1e-12)
    np.testing.assert_allclose(b.grad.detach().numpy(), unbroadcast(g * a.detach().numpy(), sb), rtol=1e-12)


@given(broadcastable_shapes(max_dims=3, max_side=3), seeds)
def test_unbroadcast_matches_summing_by_hand(shapes, seed):
    sa, sb = shapes
    full = np.broadcast_shapes(sa, sb)
    g = array(seed, full)
    reduced = unbroadcast(g, sa)
    assert reduced.shape == sa
    # sum over the broadcast axes is the adjoint of broadcasting: <unbroadcast(g), v> == <g, broadcast(v)>
    v = array(seed + 1, sa)
    np.testing.assert_allclose((reduced * v).sum(), (g * np.broadcast_to(v, full)).sum(), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- non-leaf grads
def test_retain_grad_on_nonleaf(device):
    x = leaf([1.0, 2.0], device)
    y = x * 3
    y.retain_grad()
    z = (y * y).sum()
    z.backward()
    np.testing.assert_allclose(y.grad.detach().numpy(), 2 * y.detach().numpy())
    np.testing.assert_allclose(x.grad.detach().numpy(), 2 * y.detach().numpy() * 3)


def test_nonleaf_without_retain_grad_has_no_grad():
    x = leaf([1.0, 2.0])
    y = x * 3
    y.sum().backward()
    assert y.grad is None
    assert not y.is_leaf and x.is_leaf


def test_retain_grad_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tl.tensor([1.0]).retain_grad()


# ---------------------------------------------------------------- grad mode
def test_no_grad_context_records_nothing():
    x = leaf([1.0, 2.0])
    with tl.no_grad():
        y = x * 2 + 1
    assert not y.requires_grad and y.grad_fn is None
    assert tl.is_grad_enabled()


def test_no_grad_decorator_records_nothing_and_restores():
    x = leaf([1.0, 2.0])

    @tl.no_grad()
    def f(t):
        assert not tl.is_grad_enabled()
        return t * 2

    y = f(x)
    assert not y.requires_grad and y.grad_fn is None
    assert tl.is_grad_enabled()


def test_no_grad_restores_after_exception():
    with pytest.raises(KeyError):
        with tl.no_grad():
            raise KeyError("boom")
    assert tl.is_grad_enabled()


def test_enable_grad_inside_no_grad_records():
    x = leaf([1.0, 2.0])
    with tl.no_grad():
        with tl.enable_grad():
            y = x * 2
        z = x * 2
    assert y.requires_grad and y.grad_fn is not None
    assert not z.requires_grad
    y.sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), [2.0, 2.0])


def test_set_grad_enabled_as_call_and_context():
    with tl.set_grad_enabled(False):
        assert not tl.is_grad_enabled()
    assert tl.is_grad_enabled()
    tl.set_grad_enabled(False)  # as a plain call, like torch.set_grad_enabled(False)
    try:
        assert not tl.is_grad_enabled()
    finally:
        tl.set_grad_enabled(True)
    assert tl.is_grad_enabled()


def test_detach_cuts_the_graph_and_shares_memory():
    x = leaf([1.0, 2.0])
    d = (x * 2).detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    y = x.detach()
    assert np.shares_memory(y.data, x.data)
    (x * d).sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), d.detach().numpy())  # d is a constant: no gradient through it


# ---------------------------------------------------------------- freeing and errors
def test_backward_twice_through_freed_graph_raises():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()


def test_backward_twice_with_retain_graph():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), 2 * 2 * x.detach().numpy())


def test_saved_arrays_are_released_after_backward():
    x = leaf([1.0, 2.0, 3.0])
    a = x * x
    b = a.exp()
    c = (b * x).sum()
    nodes = [a.grad_fn, b.grad_fn, c.grad_fn, c.grad_fn]
    c.backward()
    for node in nodes:
        assert vars(node) == {"released": True}, node


def test_saved_arrays_kept_with_retain_graph():
    x = leaf([1.0, 2.0])
    a = x * x
    a.sum().backward(retain_graph=True)
    assert a.grad_fn.inputs[0] is x


def test_backward_on_nonscalar_without_gradient_raises():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"only for scalar outputs.*\(2,\)"):
        (x * 2).backward()


def test_backward_with_explicit_gradient(device):
    x = leaf([1.0, 2.0, 3.0], device)
    y = x * x
    y.backward(gradient=tl.tensor([1.0, 0.0, -1.0], dtype=tl.float64, device=device))
    np.testing.assert_allclose(x.grad.detach().numpy(), [2.0, 0.0, -6.0])


def test_backward_with_wrong_gradient_shape_raises():
    y = leaf([1.0, 2.0]) * 2
    with pytest.raises(RuntimeError, match=r"gradient has shape \(3,\).*\(2,\)"):
        y.backward(gradient=np.ones(3))


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tl.tensor([1.0]).sum().backward()


def test_backward_on_leaf_scalar():
    x = leaf(3.0)
    x.backward()
    assert x.grad.item() == 1.0


def test_long_chain_has_no_recursion_error_and_is_fast():
    x = leaf([1.0])
    y = x
    start = time.perf_counter()
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    elapsed = time.perf_counter() - start
    np.testing.assert_allclose(x.grad.detach().numpy(), [1.0001 ** 10_000], rtol=1e-9)
    assert elapsed < 5.0, f"10,000-node chain took {elapsed:.1f} s"


def test_wide_graph_accumulates_every_branch():
    x = leaf([2.0])
    total = sum((x * float(i) for i in range(200)), tl.zeros(1, dtype=tl.float64))
    total.sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), [sum(range(200))])


# ---------------------------------------------------------------- custom Functions
class Cube(Function):
    def forward(self, a):
        self.a = a
        return a ** 3

    # d a^3 = 3 a^2
    def backward(self, g):
        return g * 3 * self.a ** 2


class ScaleBy(Function):
    """Keyword parameters of apply become attributes before forward."""

    def forward(self, a):
        return a * self.factor

    def backward(self, g):
        return g * self.factor


def test_custom_function_backward(device):
    x = leaf([1.0, -2.0], device)
    Cube.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), 3 * x.detach().numpy() ** 2)


def test_apply_params_become_attributes():
    x = leaf([1.0, 2.0])
    y = ScaleBy.apply(x, factor=4.0)
    np.testing.assert_allclose(y.detach().numpy(), [4.0, 8.0])
    y.sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), [4.0, 4.0])


def test_needs_input_grad_is_set():
    seen = {}

    class Spy(Function):
        def forward(self, a, b):
            seen["needs"] = self.needs_input_grad
            return a * b

        def backward(self, g):
            return g, None

    Spy.apply(leaf([1.0]), tl.tensor([2.0], dtype=tl.float64)).sum().backward()
    assert seen["needs"] == (True, False)


def test_apply_without_grad_records_no_node():
    y = Cube.apply(tl.tensor([1.0, 2.0]))
    assert not y.requires_grad and y.grad_fn is None


def test_apply_rejects_non_tensor_inputs():
    with pytest.raises(TypeError, match="Cube.apply.*argument 0.*ndarray"):
        Cube.apply(np.ones(2))


def test_backward_returning_wrong_shape_names_the_function():
    class BadShape(Function):
        def forward(self, a):
            return a * 2

        def backward(self, g):
            return g.sum()

    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"BadShape.backward.*shape \(\).*\(2,\)"):
        BadShape.apply(x).sum().backward()


def test_backward_returning_wrong_count_names_the_function():
    class TooMany(Function):
        def forward(self, a):
            return a * 2

        def backward(self, g):
            return g, g

    with pytest.raises(RuntimeError, match="TooMany.backward returned 2 gradients for 1 input"):
        TooMany.apply(leaf([1.0])).sum().backward()


def test_mixed_devices_fail_in_apply_with_a_clear_message():
    a = tl.ones(2)
    b = tl.ones(2)
    b.device = "cuda:0"  # fake: only the device string is checked before any computation
    with pytest.raises(RuntimeError, match=r"same device.*cpu.*cuda:0"):
        a + b


# ---------------------------------------------------------------- the student doc stays true
DOC = Path(__file__).resolve().parents[1] / "docs" / "autograd.md"


def test_doc_code_blocks_run(capsys):
    """Run docs/autograd.md's python blocks in order, in one namespace; their asserts check the claims."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 6
    namespace = {"__name__": "autograd_doc"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{DOC.name}[block {i}]", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"python block {i} of {DOC} failed:\n{code}") from exc
    assert "tensor([2., 4., 6.])" in capsys.readouterr().out
