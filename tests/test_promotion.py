"""Dtype promotion as PyTorch's torch.result_type, and the // and % Functions.

Rules: bool < int < float; within a category a tensor with dimensions decides over a 0-d tensor,
which decides over a Python scalar; a lower tier changes the result only with a higher category.
"""
import itertools

import numpy as np
import pytest
from hypothesis import given

import tensorlite as tl
from tensorlite.dtypes import result_type

from strategies import array, broadcastable_shapes, seeds

DTYPES = ["bool", "uint8", "int8", "int32", "int64", "float16", "float32", "float64"]
SCALARS = [True, 3, 2.5]


def _operand(lib, kind, dtype):
    if kind == "scalar":
        return dtype  # a Python value
    shape = (2,) if kind == "dim" else ()
    return lib.ones(shape, dtype=getattr(lib, dtype if dtype != "bool" or lib is not tl else "bool_"))


def _cases():
    kinds = [("dim", d) for d in DTYPES] + [("zero", d) for d in DTYPES] + [("scalar", s) for s in SCALARS]
    for a, b in itertools.product(kinds, repeat=2):
        if a[0] != "scalar" or b[0] != "scalar":
            yield a, b


def test_result_type_matches_torch_for_every_pair():
    torch = pytest.importorskip("torch")
    bad = []
    for a, b in _cases():
        ta, tb = _operand(torch, *a), _operand(torch, *b)
        la, lb = _operand(tl, *a), _operand(tl, *b)
        want = str(torch.result_type(ta, tb)).replace("torch.", "")
        got = np.dtype(result_type(la, lb)).name
        if got != want:
            bad.append((a, b, got, want))
    assert not bad, bad[:5]


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "==", "<", "&"])
def test_operators_promote_like_torch(op):
    torch = pytest.importorskip("torch")
    for a, b in _cases():
        if op == "&" and ("float" in str(a[1]) or "float" in str(b[1]) or 2.5 in (a[1], b[1])):
            continue
        if op == "-" and (a[1] == "bool" or b[1] == "bool" or a[1] is True or b[1] is True):
            continue  # torch refuses to subtract bools
        ta, tb = _operand(torch, *a), _operand(torch, *b)
        la, lb = _operand(tl, *a), _operand(tl, *b)
        want = eval(f"ta {op} tb").dtype
        got = eval(f"la {op} lb").dtype
        assert np.dtype(got).name == str(want).replace("torch.", ""), (op, a, b)


def test_examples_from_the_issue():
    f32 = tl.ones(3)
    assert (f32 * tl.tensor(2.0, dtype=tl.float64)).dtype == tl.float32
    assert (tl.ones(3, dtype=tl.int64) * tl.tensor(2.0, dtype=tl.float64)).dtype == tl.float64
    assert tl.cat([tl.ones(2), tl.ones(2, dtype=tl.int64)]).dtype == tl.float32
    assert tl.stack([tl.ones(2, dtype=tl.int64), tl.ones(2)]).dtype == tl.float32
    assert (tl.tensor([5, -7]) // 2.5).dtype == tl.float32
    assert tl.where(tl.tensor([True, False]), tl.ones(2, dtype=tl.int64), 2.5).dtype == tl.float32


def test_cat_keeps_each_gradient_in_its_dtype():
    a = tl.ones(2, requires_grad=True)
    b = tl.ones(2, dtype=tl.float64, requires_grad=True)
    c = tl.ones(2, dtype=tl.int64)
    out = tl.cat([a, b, c])
    assert out.dtype == tl.float64
    out.sum().backward()
    assert a.grad.dtype == tl.float32 and b.grad.dtype == tl.float64


# ---------------------------------------------------------------- // and %
def test_floor_division_and_remainder_match_torch():
    torch = pytest.importorskip("torch")
    for lib in (tl, torch):
        a = lib.tensor([5, -7])
        assert (a // 2.5).tolist() == [2.0, -3.0]
        assert (a % 2.5).tolist() == [0.0, 0.5]
        assert (a % -3).tolist() == [-1, -1] and (a // -3).tolist() == [-2, 2]
        assert (7 // lib.tensor([2, -2])).tolist() == [3, -4] and (7 % lib.tensor([2, -3])).tolist() == [1, -2]
        for op in (lambda: a // 0, lambda: a % 0, lambda: a // lib.tensor([2, 0])):
            with pytest.raises(RuntimeError, match="ZeroDivisionError"):
                op()
    x = tl.tensor([1.0, -1.0])
    with np.errstate(all="raise"):
        assert (x // 0).tolist() == [np.inf, -np.inf]


def test_floor_divide_has_no_derivative_like_torch():
    torch = pytest.importorskip("torch")
    for lib in (tl, torch):
        x = lib.tensor([1.5, -2.5], requires_grad=True)
        with pytest.raises(RuntimeError, match="derivative for .*floor_divide is not implemented"):
            (x // 0.7).sum().backward()


def test_remainder_gradient_matches_torch():
    torch = pytest.importorskip("torch")
    grads = []
    for lib in (tl, torch):
        x = lib.tensor([1.5, -2.5, 3.0], requires_grad=True)
        c = lib.tensor([0.7, 1.1, -2.0], requires_grad=True)
        r = x % c
        r.sum().backward()
        grads.append((r.tolist(), x.grad.tolist(), c.grad.tolist()))
    np.testing.assert_allclose(np.array(grads[0][0]), np.array(grads[1][0]), rtol=1e-6)
    assert grads[0][1:] == grads[1][1:]


@given(broadcastable_shapes(max_dims=3, max_side=3), seeds)
def test_gradcheck_remainder(shapes_, seed):
    sa, sb = shapes_
    x = array(seed, sa, -3, 3)
    c = array(seed + 1, sb, 0.5, 2.0) * np.where(array(seed + 2, sb) > 0, 1, -1)
    # keep x / c away from integers, where the remainder jumps
    q = x / c
    x = np.where(np.abs(q - np.round(q)) < 0.1, x + 0.3 * c, x) if x.shape == np.broadcast_shapes(sa, sb) else x
    xt = tl.tensor(x, dtype=tl.float64, requires_grad=True)
    ct = tl.tensor(c, dtype=tl.float64, requires_grad=True)
    q = np.broadcast_to(x, np.broadcast_shapes(sa, sb)) / c
    if np.any(np.abs(q - np.round(q)) < 0.05):
        return  # too close to a jump for finite differences
    np.testing.assert_allclose((xt % ct).detach().numpy(), np.remainder(x, c))
    assert tl.gradcheck(lambda a, b: a % b, xt, ct)
