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
