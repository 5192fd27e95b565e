"""Printing: repr/str of tensors, Size, dtypes and grad_fn, character for character as PyTorch.

The differential tests build the same array in both libraries and compare the text, with "torch" read
as "tensorlite"; they skip when torch is not installed. The hard-coded strings below were printed by
PyTorch 2.13 and keep the rules tested without it.
"""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tensorlite as tl
from tensorlite.printing import get_printoptions, printoptions, tensor_repr

inf, nan = math.inf, math.nan


@pytest.fixture(autouse=True)
def default_printoptions():
    """Every test starts and ends with the default options, in both libraries."""
    tl.set_printoptions(profile="default")
    yield
    tl.set_printoptions(profile="default")
    try:
        import torch
        torch.set_printoptions(profile="default", sci_mode=None)
    except ImportError:
        pass


# ---------------------------------------------------------------- fixed cases (no torch needed)
FIXED = [
    ([0.09003057, 1.0], None, "tensor([0.0900, 1.0000])"),
    ([1e-10, 1.0], None, "tensor([1.0000e-10, 1.0000e+00])"),
    ([-inf, 1.0, nan, 2.0], None, "tensor([-inf, 1., nan, 2.])"),
    ([-inf, 1.5, inf], None, "tensor([  -inf, 1.5000,    inf])"),
    ([-0.0, 1.0], None, "tensor([-0., 1.])"),
    ([[1, 2], [3, 4]], None, "tensor([[1, 2],\n        [3, 4]])"),
    ([True, False], None, "tensor([ True, False])"),
    ([1.0, 2.0], tl.float64, "tensor([1., 2.], dtype=tensorlite.float64)"),
    ([1.0, 2.0], tl.float16, "tensor([1., 2.], dtype=tensorlite.float16)"),
    ([1, 200], tl.uint8, "tensor([  1, 200], dtype=tensorlite.uint8)"),
    (3.5, None, "tensor(3.5000)"),
    (7, None, "tensor(7)"),
    ([], None, "tensor([])"),
    ([0.0, 0.0], None, "tensor([0., 0.])"),
    ([nan, nan], None, "tensor([nan, nan])"),
    ([1e12, 1.0], None, "tensor([1.0000e+12, 1.0000e+00])"),
    ([123456789.0], None, "tensor([1.2346e+08])"),
]


@pytest.mark.parametrize("data, dtype, text", FIXED, ids=[t for _, _, t in FIXED])
def test_fixed_cases_print_as_pytorch(data, dtype, text):
    t = tl.tensor(data, dtype=dtype)
    assert repr(t) == text
    assert str(t) == text


def test_fixed_layouts():
    assert repr(tl.zeros(0, 3)) == "tensor([], size=(0, 3))"
    assert repr(tl.zeros(0, dtype=tl.int64)) == "tensor([], dtype=tensorlite.int64)"
    assert repr(tl.arange(2000)) == "tensor([   0,    1,    2,  ..., 1997, 1998, 1999])"
    assert repr(tl.arange(30.0)) == (
        "tensor([ 0.,  1.,  2.,  3.,  4.,  5.,  6.,  7.,  8.,  9., 10., 11., 12., 13.,\n"
        "        14., 15., 16., 17., 18., 19., 20., 21., 22., 23., 24., 25., 26., 27.,\n"
        "        28., 29.])")
    assert repr(tl.arange(8.0).reshape(2, 2, 2)) == (
        "tensor([[[0., 1.],\n         [2., 3.]],\n\n        [[4., 5.],\n         [6., 7.]]])")
    assert repr(tl.arange(4.0).reshape(2, 2).requires_grad_()) == (
        "tensor([[0., 1.],\n        [2., 3.]], requires_grad=True)")
    assert repr(tl.arange(50.0).reshape(5, 10).double().requires_grad_()) == (
        "tensor([[ 0.,  1.,  2.,  3.,  4.,  5.,  6.,  7.,  8.,  9.],\n"
        "        [10., 11., 12., 13., 14., 15., 16., 17., 18., 19.],\n"
        "        [20., 21., 22., 23., 24., 25., 26., 27., 28., 29.],\n"
        "        [30., 31., 32., 33., 34., 35., 36., 37., 38., 39.],\n"
        "        [40., 41., 42., 43., 44., 45., 46., 47., 48., 49.]],\n"
        "       dtype=tensorlite.float64, requires_grad=True)")
    # PyTorch's line breaks, decided as for "torch.float64": here the line passes 80 characters
    assert repr(tl.arange(6.0, dtype=tl.float64) * 1.5) == (
        "tensor([0.0000, 1.5000, 3.0000, 4.5000, 6.0000, 7.5000], dtype=tensorlite.float64)")


def test_device_suffix_comes_first():
    text = tensor_repr(np.array([1.0, 2.0]), tl.float64, "cuda:0", requires_grad=True)
    assert text == "tensor([1., 2.], device='cuda:0', dtype=tensorlite.float64, requires_grad=True)"


def test_grad_fn_is_named_like_pytorch():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    y = x * x
    assert repr(y) == "tensor([1., 4.], grad_fn=<MulBackward0>)"
    assert y.grad_fn.name() == "MulBackward0"
    assert repr(y.grad_fn).startswith("<MulBackward0 object at 0x")
    lin = tl.nn.Linear(2, 1)
    assert type(lin(x).grad_fn).__name__ + "Backward0" == lin(x).grad_fn.name()
    assert lin(x).grad_fn.name().endswith("Backward0")


def test_next_functions_walk_the_graph():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    c = tl.tensor([3.0, 4.0])
    y = (x * c).sum()
    (mul, _), = y.grad_fn.next_functions
    assert mul.name() == "MulBackward0"
    (leaf, _), (none, _) = mul.next_functions
    assert leaf.variable is x and none is None
    assert repr(leaf).startswith("<AccumulateGrad object at 0x")


def test_set_printoptions():
    t = tl.tensor([1.12345, 2.5])
    tl.set_printoptions(precision=2)
    assert repr(t) == "tensor([1.12, 2.50])"
    tl.set_printoptions(threshold=5)
    assert repr(tl.arange(10)) == "tensor([0, 1, 2,  ..., 7, 8, 9])"
    tl.set_printoptions(profile="default")
    assert repr(t) == "tensor([1.1235, 2.5000])"
    tl.set_printoptions(sci_mode=True)
    assert repr(t) == "tensor([1.1235e+00, 2.5000e+00])"
    tl.set_printoptions()  # sci_mode back to automatic, as in PyTorch
    assert repr(t) == "tensor([1.1235, 2.5000])"
    with printoptions(precision=1):  # (these two are tensorlite.printing's: torch has no top-level ones)
        assert repr(t) == "tensor([1.1, 2.5])"
    assert get_printoptions()["precision"] == 4
    with pytest.raises(ValueError, match="profile"):
        tl.set_printoptions(profile="long")


def test_format():
    loss = tl.tensor(1.23456)
    assert f"{loss:.4f}" == "1.2346"
    assert f"{loss}" == "1.2345600128173828"  # a 0-d tensor formats as its number (the float32, in full)
    assert f"{tl.tensor(3):>3d}" == "  3"
    x = tl.tensor([1.5], requires_grad=True)
    assert f"{(x * 2).sum():.2f}" == "3.00"
    assert f"{x}" == str(x)
    assert f"{tl.nn.Parameter(tl.tensor(2.0)):.1f}" == "2.0"  # also a 0-d subclass (a loss may be one)
    with pytest.raises(TypeError, match="unsupported format string"):
        f"{x:.4f}"  # as PyTorch: only 0-d tensors take a format spec


def test_size():
    t = tl.zeros(4, 3, 2)
    s = t.shape
    assert isinstance(s, tuple) and isinstance(s, tl.Size) and s == (4, 3, 2)
    assert repr(s) == str(s) == "tensorlite.Size([4, 3, 2])" and f"{s}" == "tensorlite.Size([4, 3, 2])"
    assert t.size() == s and t.size(1) == 3 and t.size(-1) == 2 and type(t.size(0)) is int
    assert s.numel() == 24 and tl.Size([]).numel() == 1 and repr(tl.Size([])) == "tensorlite.Size([])"
    assert type(s[1:]) is tl.Size and repr(s[1:]) == "tensorlite.Size([3, 2])" and type(s[0]) is int
    assert repr(s + (1,)) == "tensorlite.Size([4, 3, 2, 1])" and type((1,) + s) is tl.Size
    b, c, d = s
    assert (b, c, d) == (4, 3, 2) and hash(s) == hash((4, 3, 2))
    assert tl.zeros(s).shape == s  # a Size is accepted wherever a tuple of sizes is


# ---------------------------------------------------------------- against PyTorch
DTYPES = ["float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"]


@st.composite
def arrays(draw):
    """Arrays of a random shape (some summarized), magnitude, kind, and special values."""
    dtype = draw(st.sampled_from(DTYPES))
    if draw(st.integers(0, 9)) == 0:
        shape = draw(st.sampled_from([(2000,), (40, 30), (3, 20, 20), (1001,), (7, 200), (2, 3, 200)]))
    else:
        shape = tuple(draw(st.lists(st.integers(0, 6), max_size=4)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = math.prod(shape)
    if dtype == "bool":
        return np.asarray(rng.random(n).reshape(shape) < 0.5)
    if dtype[0] in "iu":
        info = np.iinfo(dtype)
        high = min(draw(st.sampled_from([10, 1000, int(info.max)])), int(info.max))
        low = 0 if dtype[0] == "u" else max(-high, int(info.min))
        return rng.integers(low, high, n, dtype=dtype, endpoint=True).reshape(shape)
    lo, hi = sorted(draw(st.integers(-12, 12)) for _ in range(2))
    values = rng.standard_normal(n) * 10.0 ** rng.uniform(lo, hi, n)
    if draw(st.booleans()):
        values = np.round(values)  # int mode
    special = draw(st.lists(st.sampled_from([inf, -inf, nan, 0.0, -0.0]), max_size=3))
    if n:
        values[rng.integers(0, n, len(special))] = special
    with np.errstate(over="ignore"):
        return values.astype(dtype).reshape(shape)


def _torch_text(torch, a, requires_grad=False):
    t = torch.from_numpy(a.copy())
    if requires_grad:
        t.requires_grad_()
    return repr(t).replace("torch.", "tensorlite.")


@given(arrays())
def test_repr_matches_pytorch(a):
    torch = pytest.importorskip("torch")
    assert repr(tl.tensor(a)) == _torch_text(torch, a)
    if a.dtype.kind == "f" and a.ndim:
        assert repr(tl.tensor(a, requires_grad=True)) == _torch_text(torch, a, requires_grad=True)


@given(arrays(), st.integers(0, 8), st.sampled_from([1, 5, 20, 1000]), st.integers(0, 4),
       st.sampled_from([20, 40, 80, 120]), st.sampled_from([None, True, False]))
def test_repr_with_printoptions_matches_pytorch(a, precision, threshold, edgeitems, linewidth, sci_mode):
    torch = pytest.importorskip("torch")
    options = dict(precision=precision, threshold=threshold, edgeitems=edgeitems, linewidth=linewidth,
                   sci_mode=sci_mode)
    torch.set_printoptions(**options)
    tl.set_printoptions(**options)
    assert repr(tl.tensor(a)) == _torch_text(torch, a)


@pytest.mark.parametrize("profile", ["default", "short", "full"])
def test_profiles_match_pytorch(profile):
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(0).standard_normal((30, 40)).astype(np.float32)
    torch.set_printoptions(profile=profile)
    tl.set_printoptions(profile=profile)
    assert repr(tl.tensor(a)) == _torch_text(torch, a)


def test_grad_fn_and_dtype_suffix_wrap_as_pytorch():
    torch = pytest.importorskip("torch")
    for shape in [(3,), (10,), (2, 7), (3, 13), (17,)]:
        a = np.random.default_rng(1).standard_normal(shape)
        tt = torch.from_numpy(a).requires_grad_() * 2
        assert repr(tl.tensor(a, requires_grad=True) * 2) == repr(tt).replace("torch.", "tensorlite.")
