"""Hypothesis strategies shared by every op test: shapes, broadcastable pairs, and float64 data."""
import numpy as np
from hypothesis import strategies as st


def shapes(min_dims=0, max_dims=4, min_side=1, max_side=5):
    return st.lists(st.integers(min_side, max_side), min_size=min_dims, max_size=max_dims).map(tuple)


@st.composite
def broadcastable_shapes(draw, min_dims=0, max_dims=4, max_side=5):
    """Two shapes that broadcast together: each axis of one may be 1, and one may have fewer axes."""
    full = draw(shapes(min_dims, max_dims, 1, max_side))
    def variant():
        ones = draw(st.lists(st.booleans(), min_size=len(full), max_size=len(full)))
        shape = tuple(1 if o else n for o, n in zip(ones, full))
        drop = draw(st.integers(0, len(shape)))
        return shape[drop:]
    return variant(), variant()


@st.composite
def shape_and_dim(draw, min_dims=1, max_dims=4, max_side=5):
    """A shape and a valid dimension for it, sometimes negative."""
    shape = draw(shapes(min_dims, max_dims, 1, max_side))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    return shape, dim


seeds = st.integers(0, 2**31 - 1)


def array(seed, shape, low=-2.0, high=2.0, away_from=None, gap=0.1):
    """Float64 data for a shape from a seed; `away_from` keeps values at least `gap` from a point (kinks)."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(low, high, size=shape)
    if away_from is not None:
        close = np.abs(a - away_from) < gap
        a = np.where(close, away_from + np.where(a >= away_from, gap, -gap) * 2, a)
    return a


# ---------------------------------------------------------------- added for the op tests
def push_away(a, points, gap=0.1):
    """Move every value closer than `gap` to one of `points` to 2*gap from it (off kinks such as clamp bounds)."""
    for p in points:
        close = np.abs(a - p) < gap
        a = np.where(close, p + np.where(a >= p, 2 * gap, -2 * gap), a)
    return a


def distinct(seed, shape, scale=0.3):
    """Float64 values that are pairwise at least `scale` apart (no ties for max/min), in random order."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape, dtype=np.int64))
    return (rng.permutation(size) - size / 2).reshape(shape) * scale


def grid_pair(seed_a, seed_b, shape_a, shape_b):
    """Two arrays whose values never tie: a on a 0.1 grid, b on the same grid shifted by 0.05."""
    return (np.round(array(seed_a, shape_a) * 10) / 10,
            np.round(array(seed_b, shape_b) * 10) / 10 + 0.05)


@st.composite
def shape_and_dims(draw, min_dims=0, max_dims=3, max_side=3):
    """A shape and a `dim` argument for a reduction: None, an int, or a tuple of distinct dims (negatives too)."""
    shape = draw(shapes(min_dims, max_dims, 1, max_side))
    n = len(shape)
    if n == 0:
        return shape, draw(st.sampled_from([None, 0, -1]))
    as_int = st.integers(-n, n - 1)
    as_tuple = st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True).flatmap(
        lambda ds: st.tuples(*[st.sampled_from([d, d - n]) for d in ds]))
    return shape, draw(st.one_of(st.none(), as_int, as_tuple))


@st.composite
def reshape_target(draw, shape):
    """A shape with the same number of elements as `shape` (sides regrouped), sometimes with one -1."""
    sides = [n for n in shape if n != 1]
    sides = draw(st.permutations(sides)) if sides else []
    merged = []
    for n in sides:
        if merged and draw(st.booleans()):
            merged[-1] *= n
        else:
            merged.append(n)
    for _ in range(draw(st.integers(0, 2))):  # sprinkle some 1s
        merged.insert(draw(st.integers(0, len(merged))), 1)
    if merged and draw(st.booleans()):
        merged[draw(st.integers(0, len(merged) - 1))] = -1
    return tuple(merged)


@st.composite
def matmul_shapes(draw, max_batch_dims=2, max_side=3):
    """Shapes of two matmul operands: 1-D vectors, matrices, or stacks whose batch dims broadcast."""
    n, k, m = (draw(st.integers(1, max_side)) for _ in range(3))
    batch_a, batch_b = draw(broadcastable_shapes(0, max_batch_dims, max_side))
    a_vec, b_vec = draw(st.booleans()), draw(st.booleans())
    sa = (k,) if a_vec else batch_a + (n, k)
    sb = (k,) if b_vec else batch_b + (k, m)
    return sa, sb


@st.composite
def basic_index(draw, shape):
    """A basic index for `shape`: per axis an int or a slice (positive steps, as PyTorch), plus None / Ellipsis."""
    parts = []
    for n in shape:
        if draw(st.booleans()):
            parts.append(draw(st.integers(-n, n - 1)))
        else:
            start = draw(st.none() | st.integers(-n - 1, n + 1))
            stop = draw(st.none() | st.integers(-n - 1, n + 1))
            step = draw(st.none() | st.sampled_from([1, 2, 3]))  # PyTorch refuses negative steps
            parts.append(slice(start, stop, step))
    if parts and draw(st.booleans()):  # an Ellipsis standing for a run of full axes
        i = draw(st.integers(0, len(parts) - 1))
        j = draw(st.integers(i, len(parts)))
        parts[i:j] = [Ellipsis]
    for _ in range(draw(st.integers(0, 2))):
        parts.insert(draw(st.integers(0, len(parts))), None)
    return tuple(parts)


def leaf(arr, device, dtype=None):
    """A tensor that requires grad, float64 unless told, on `device` (the test's fixture)."""
    import tensorlite as tl
    return tl.tensor(arr, dtype=dtype or tl.float64, device=device, requires_grad=True)


def agree(fused, composed, arrays, device, rtol=1e-7, atol=1e-9, seed=0):
    """fused(*leaves) and composed(*leaves) give the same output and the same input gradients."""
    import tensorlite as tl
    a = [leaf(x, device) for x in arrays]
    b = [leaf(x, device) for x in arrays]
    out_a, out_b = fused(*a), composed(*b)
    np.testing.assert_allclose(out_a.detach().numpy(), out_b.detach().numpy(), rtol=rtol, atol=atol)
    v = np.random.default_rng(seed).standard_normal(out_a.shape)
    (out_a * tl.tensor(v, device=device, dtype=tl.float64)).sum().backward()
    (out_b * tl.tensor(v, device=device, dtype=tl.float64)).sum().backward()
    for i, (x, y) in enumerate(zip(a, b)):
        assert x.grad is not None and y.grad is not None, f"input {i} got no gradient"
        np.testing.assert_allclose(x.grad.detach().numpy(), y.grad.detach().numpy(), rtol=1e-6, atol=1e-9,
                                   err_msg=f"gradient of input {i}")
    return out_a
