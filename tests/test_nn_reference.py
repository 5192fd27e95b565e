"""tensorlite.nn.reference mirrors nn.functional: the same names and arguments, so each fused
function can be compared with its composed twin (the comparisons are in test_nn_functional.py)."""
import inspect

import pytest

import tensorlite.nn.functional as F
from tensorlite.nn import reference as R


def test_reference_covers_every_fused_function():
    fused = {"softmax", "log_softmax", "cross_entropy", "layer_norm", "embedding", "dropout", "linear",
             "scaled_dot_product_attention", "self_attention"}
    assert fused <= set(R.__all__) <= set(F.__all__)


@pytest.mark.parametrize("name", R.__all__)
def test_reference_has_each_function_with_the_same_arguments(name):
    fused, composed = getattr(F, name), getattr(R, name)
    assert inspect.signature(composed) == inspect.signature(fused)
