"""Creation functions: shapes, dtypes, devices, values against NumPy, random streams and seeding."""
import json

import numpy as np
import pytest
from hypothesis import given

import tensorlite as tl

from strategies import array, seeds, shapes


def dev_name(device):
    return "cpu" if device == "cpu" else "cuda:0"


# ---------------------------------------------------------------- deterministic fills
@pytest.mark.parametrize("fn, np_fn", [(tl.zeros, np.zeros), (tl.ones, np.ones)])
def test_zeros_ones(fn, np_fn, device):
    for args in [(2, 3), ((2, 3),), ([4],), ()]:
        t = fn(*args, device=device)
        shape = args[0] if len(args) == 1 else args
        assert t.shape == tuple(shape) and t.dtype == tl.float32 and t.device == dev_name(device)
        np.testing.assert_array_equal(t.detach().numpy(), np_fn(shape))
    assert fn(3, dtype=tl.int64, device=device).dtype == tl.int64
    assert fn(3, dtype=tl.float64, requires_grad=True).requires_grad


def test_empty(device):
    t = tl.empty(2, 5, dtype=tl.float64, device=device)
    assert t.shape == (2, 5) and t.dtype == tl.float64 and t.device == dev_name(device)


@pytest.mark.parametrize("bad, error", [((-1,), RuntimeError), ((2.5,), TypeError), (((2, -3),), RuntimeError),
                                        (("3",), TypeError)])
def test_bad_sizes_raise(bad, error):
    """PyTorch's kinds: a negative size is a RuntimeError, a size that is no integer a TypeError."""
    with pytest.raises(error, match="integers"):
        tl.zeros(*bad)


def test_requires_grad_int_creation_raises():
    with pytest.raises(RuntimeError, match="only floating-point"):
        tl.zeros(2, dtype=tl.int64, requires_grad=True)


@pytest.mark.parametrize("value, dtype", [(2.5, tl.float32), (3, tl.int64), (True, tl.bool_)])
def test_full_dtype_follows_value(value, dtype, device):
    t = tl.full((2, 3), value, device=device)
    assert t.dtype == dtype and t.shape == (2, 3)
    np.testing.assert_array_equal(t.detach().numpy(), np.full((2, 3), value))
    assert tl.full(4, 1, dtype=tl.float64).dtype == tl.float64
    assert tl.full(4, 0.5).shape == (4,)


@pytest.mark.parametrize("fn, expected", [(tl.zeros_like, 0), (tl.ones_like, 1), (tl.empty_like, None)])
def test_like_functions(fn, expected, device):
    ref = tl.tensor(np.arange(6).reshape(2, 3), device=device)
    t = fn(ref)
    assert t.shape == (2, 3) and t.dtype == tl.int64 and t.device == ref.device
    if expected is not None:
        np.testing.assert_array_equal(t.detach().numpy(), np.full((2, 3), expected))
    assert fn(ref, dtype=tl.float64).dtype == tl.float64
    assert fn(tl.zeros(2), requires_grad=True).requires_grad
    assert tl.full_like(ref, 7).tolist() == [[7, 7, 7], [7, 7, 7]]


def test_arange(device):
    t = tl.arange(5, device=device)
    assert t.dtype == tl.int64 and t.tolist() == list(range(5)) and t.device == dev_name(device)
    assert tl.arange(2, 11, 3).tolist() == list(range(2, 11, 3))
    assert tl.arange(5, 0, -2).tolist() == [5, 3, 1]
    f = tl.arange(0, 1, 0.1)
    assert f.dtype == tl.float32
    np.testing.assert_allclose(f.detach().numpy(), np.arange(0, 1, 0.1), rtol=1e-6)
    assert tl.arange(3, dtype=tl.float64).dtype == tl.float64
    with pytest.raises(RuntimeError, match="step"):  # RuntimeError, as PyTorch
        tl.arange(0, 3, 0)


def test_linspace_logspace(device):
    t = tl.linspace(-1, 2, 7, device=device)
    assert t.dtype == tl.float32 and t.shape == (7,)
    np.testing.assert_allclose(t.detach().numpy(), np.linspace(-1, 2, 7), rtol=1e-6)
    t = tl.logspace(0, 3, 4, device=device)
    np.testing.assert_allclose(t.detach().numpy(), [1, 10, 100, 1000], rtol=1e-6)
    np.testing.assert_allclose(tl.logspace(0, 3, 4, base=2.0).detach().numpy(), [1, 2, 4, 8])
    assert tl.linspace(0, 1, 0).shape == (0,)
    for fn in (tl.linspace, tl.logspace):
        with pytest.raises(RuntimeError, match="steps"):
            fn(0, 1, -1)
        with pytest.raises(TypeError, match="steps"):
            fn(0, 1, 2.5)


def test_eye(device):
    np.testing.assert_array_equal(tl.eye(3, device=device).detach().numpy(), np.eye(3))
    np.testing.assert_array_equal(tl.eye(2, 4).detach().numpy(), np.eye(2, 4))
    assert tl.eye(2, dtype=tl.int64).dtype == tl.int64
    with pytest.raises(RuntimeError, match="eye"):
        tl.eye(-1)


@given(shapes(min_dims=2, max_dims=4, max_side=5), seeds)
def test_tril_triu_match_numpy(shape, seed):
    a = array(seed, shape)
    t = tl.tensor(a, dtype=tl.float64)
    for k in (-1, 0, 2):
        np.testing.assert_array_equal(tl.tril(t, k).detach().numpy(), np.tril(a, k))
        np.testing.assert_array_equal(tl.triu(t, diagonal=k).detach().numpy(), np.triu(a, k))


def test_tril_triu_are_differentiable_and_on_device(device):
    x = tl.tensor(array(0, (3, 3)), dtype=tl.float64, device=device, requires_grad=True)
    tl.tril(x).sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), np.tril(np.ones((3, 3))))
    assert tl.triu(x).device == x.device
    assert tl.gradcheck(lambda t: tl.triu(t, 1) * t, x)


def test_tril_needs_2d():
    with pytest.raises(RuntimeError, match="at least 2 dimensions"):
        tl.tril(tl.ones(3))


def test_cat_and_stack(device):
    a, b = array(1, (2, 3)), array(2, (2, 3))
    ta, tb = tl.tensor(a, device=device), tl.tensor(b, device=device)
    np.testing.assert_allclose(tl.cat([ta, tb]).detach().numpy(), np.concatenate([a, b]).astype(np.float32))
    np.testing.assert_allclose(tl.cat([ta, tb], dim=-1).detach().numpy(), np.concatenate([a, b], axis=1).astype(np.float32))
    np.testing.assert_allclose(tl.stack([ta, tb], dim=1).detach().numpy(), np.stack([a, b], axis=1).astype(np.float32))
    with pytest.raises(RuntimeError, match="differ outside dimension"):
        tl.cat([ta, tl.ones(2, 4, dtype=tl.float64, device=device)])
    with pytest.raises(RuntimeError, match="same shape"):
        tl.stack([ta, tl.ones(3, 2, device=device)])
    with pytest.raises(ValueError, match="non-empty"):
        tl.cat([])


def test_from_numpy_shares_memory():
    a = np.arange(3.0)
    t = tl.from_numpy(a)
    a[0] = 42
    assert t.tolist()[0] == 42 and t.dtype == tl.float64
    with pytest.raises(TypeError, match="numpy.ndarray"):
        tl.from_numpy([1, 2])


# ---------------------------------------------------------------- random
@pytest.mark.parametrize("fn", [tl.rand, tl.randn])
def test_rand_randn_shape_dtype_device(fn, device):
    t = fn(3, 4, device=device)
    assert t.shape == (3, 4) and t.dtype == tl.float32 and t.device == dev_name(device)
    assert fn((2, 2), dtype=tl.float64).dtype == tl.float64
    assert fn(2, requires_grad=True).requires_grad
    with pytest.raises(TypeError, match="floating-point"):
        fn(2, dtype=tl.int64)


def test_rand_randn_distribution(device):
    u = tl.rand(20_000, device=device).detach().numpy()
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005
    z = tl.randn(20_000, dtype=tl.float64, device=device).detach().numpy()
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03


def test_randint(device):
    t = tl.randint(3, 7, (1000,), device=device)
    assert t.dtype == tl.int64 and t.shape == (1000,) and t.device == dev_name(device)
    v = t.detach().numpy()
    assert v.min() == 3 and v.max() == 6  # 1000 draws from 4 values: all show up
    assert tl.randint(5, (2, 3)).shape == (2, 3)
    assert tl.randint(5, (4,), dtype=tl.float32).dtype == tl.float32
    with pytest.raises(RuntimeError, match="high"):
        tl.randint(5, 5, (2,))
    with pytest.raises(TypeError, match="size"):
        tl.randint(10)


def test_randperm(device):
    p = tl.randperm(50, device=device)
    assert p.dtype == tl.int64 and sorted(p.tolist()) == list(range(50))
    assert p.tolist() != list(range(50))


def test_multinomial_with_replacement_frequencies(device):
    probs = np.array([0.1, 0.0, 0.6, 0.3])
    draws = tl.multinomial(tl.tensor(probs, device=device), 20_000, replacement=True)
    assert draws.shape == (20_000,) and draws.dtype == tl.int64 and draws.device == dev_name(device)
    freq = np.bincount(draws.detach().numpy(), minlength=4) / 20_000
    np.testing.assert_allclose(freq, probs, atol=0.015)
    assert freq[1] == 0


def test_multinomial_unnormalized_weights_and_rows():
    w = tl.tensor([[1.0, 3.0], [5.0, 0.0]])
    draws = tl.multinomial(w, 4000, replacement=True).detach().numpy()
    assert draws.shape == (2, 4000)
    assert abs(draws[0].mean() - 0.75) < 0.03
    assert (draws[1] == 0).all()


def test_multinomial_without_replacement_has_no_repeats():
    w = tl.tensor([[0.2, 0.2, 0.3, 0.3, 0.0]] * 200)
    draws = tl.multinomial(w, 4).detach().numpy()
    assert draws.shape == (200, 4)
    for row in draws:
        assert len(set(row.tolist())) == 4 and 4 not in row


def test_multinomial_without_replacement_first_draw_frequencies():
    probs = np.array([0.5, 0.25, 0.125, 0.125])
    first = tl.multinomial(tl.tensor(np.tile(probs, (10_000, 1))), 2).detach().numpy()[:, 0]
    np.testing.assert_allclose(np.bincount(first, minlength=4) / 10_000, probs, atol=0.02)


@pytest.mark.parametrize("probs, n, replacement, match", [
    ([0.5, -0.1, 0.6], 1, True, "non-negative"),
    ([0.5, float("nan")], 1, True, "finite"),
    ([0.0, 0.0], 1, True, "positive total"),
    ([[[0.5]]], 1, True, "1-D or 2-D"),
    ([0.5, 0.5], 3, False, "without replacement"),
    ([0.5, 0.5], 0, True, "positive"),
])
def test_multinomial_errors(probs, n, replacement, match):
    """RuntimeError for each, as in PyTorch."""
    with pytest.raises(RuntimeError, match=match):
        tl.multinomial(tl.tensor(probs), n, replacement=replacement)
    with pytest.raises(TypeError, match="integer"):
        tl.multinomial(tl.tensor([0.5, 0.5]), 1.5)
    with pytest.raises(RuntimeError, match="floating point"):
        tl.multinomial(tl.tensor([1, 2]), 1)


def test_multinomial_without_replacement_draws_zero_weights_last():
    """As in PyTorch: more samples than nonzero weights is allowed; the zero-weight categories come last."""
    for _ in range(20):
        assert tl.multinomial(tl.tensor([0.5, 0.0, 0.5]), 3)[2].item() == 1


def test_cat_skips_1d_empty_tensors_like_torch():
    torch = pytest.importorskip("torch")
    for lib in (tl, torch):
        x = lib.ones(2, 3, dtype=lib.float64, requires_grad=True)
        e = lib.tensor([], requires_grad=True)
        y = lib.cat([e, x, e], dim=1)  # (0,) is skipped, whatever the other shapes; it still joins the dtype
        assert tuple(y.shape) == (2, 3) and y.dtype == lib.float64
        y.sum().backward()
        assert tuple(e.grad.shape) == (0,) and e.grad.dtype == lib.float32 and x.grad.tolist() == [[1.0] * 3] * 2
        assert tuple(lib.cat([lib.tensor([]), lib.tensor([])], dim=0).shape) == (0,)
        with pytest.raises(RuntimeError):
            lib.cat([x, lib.ones(3)])  # a 1-D tensor that is not empty is not skipped


def test_to_an_unknown_device_is_a_runtime_error():
    with pytest.raises(RuntimeError, match="invalid device"):
        tl.ones(2).to("tpu")


# ---------------------------------------------------------------- seeding
def _draw(device="cpu"):
    return [tl.rand(5, device=device).detach().numpy(), tl.randn(5, device=device).detach().numpy(),
            tl.randint(0, 100, (5,), device=device).detach().numpy(), tl.randperm(8, device=device).detach().numpy(),
            tl.multinomial(tl.tensor([0.3, 0.7], device=device), 5, replacement=True).detach().numpy()]


def test_manual_seed_reproducible(device):
    tl.manual_seed(123)
    first = _draw(device)
    tl.manual_seed(123)
    second = _draw(device)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    tl.manual_seed(124)
    third = _draw(device)
    assert not np.array_equal(first[0], third[0]) and not np.array_equal(first[1], third[1])


def test_successive_draws_differ():
    assert not np.array_equal(tl.rand(5).detach().numpy(), tl.rand(5).detach().numpy())


def test_rng_state_round_trip_through_json(device):
    tl.manual_seed(7)
    tl.rand(3, device=device)
    state = json.loads(json.dumps(tl.get_rng_state()))
    expected = _draw(device)
    tl.manual_seed(99)  # scramble
    tl.rand(10, device=device)
    tl.set_rng_state(state)
    for a, b in zip(expected, _draw(device)):
        np.testing.assert_array_equal(a, b)


def test_rng_state_of_a_fresh_seed_round_trips():
    tl.manual_seed(5)
    state = tl.get_rng_state()
    a = tl.rand(4).detach().numpy()
    tl.set_rng_state(state)
    np.testing.assert_array_equal(tl.rand(4).detach().numpy(), a)


def test_arange_length_and_dtype_match_torch():
    torch = pytest.importorskip("torch")
    cases = [((0, 3.5), {"dtype": "int64"}), ((0.5, 3.5), {"dtype": "int64"}), ((0.5, 3.6, 1.5), {"dtype": "int64"}),
             ((-1.5, 2, 1), {"dtype": "int64"}), ((0, -3.5, -1), {"dtype": "int64"}), ((0, 5, 1.5), {"dtype": "int64"}),
             ((0, 3.5), {}), ((1, 0, -0.3), {}), ((0, 1, 0.1), {}), ((5,), {}), ((2.5,), {}), ((0, 0), {}),
             ((0, 10, 3), {"dtype": "float32"}), ((0, 3), {"dtype": "float64"}), ((np.float32(2.0),), {})]
    for args, kw in cases:
        want = torch.arange(*args, **{k: getattr(torch, v) for k, v in kw.items()})
        got = tl.arange(*args, **{k: getattr(tl, v) for k, v in kw.items()})
        assert got.dtype == np.dtype(str(want.dtype).replace("torch.", "")), (args, kw)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, err_msg=str((args, kw)))


def test_arange_errors_match_torch():
    torch = pytest.importorskip("torch")
    for lib in (tl, torch):
        with pytest.raises(RuntimeError, match="upper bound and lower bound inconsistent with step sign"):
            lib.arange(5, 0)
        with pytest.raises(RuntimeError, match="step must be nonzero"):
            lib.arange(0, 5, 0)
        with pytest.raises(ValueError, match="step must be nonzero"):
            lib.arange(0, 5, 0.5, dtype=lib.int64)  # the step truncates to 0
