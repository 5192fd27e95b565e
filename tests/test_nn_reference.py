"""tensorlite.nn.reference mirrors nn.functional: the same names and arguments, so each fused
function can be compared with its composed twin (the comparisons are in test_nn_functional.py)."""
import inspect

import pytest

import tensorlite.nn.functional as F
from tensorlite.nn import reference as R


@pytest.mark.parametrize("name", F.__all__)
def test_reference_has_each_function_with_the_same_arguments(name):
    fused, composed = getattr(F, name), getattr(R, name)
    assert inspect.signature(composed) == inspect.signature(fused)
