"""Floor division and remainder, with PyTorch's semantics.

``a // b`` rounds the quotient towards minus infinity; ``a % b`` is ``a - (a // b) * b``, so its sign
follows the divisor (Python's and ``torch.remainder``'s rule, which NumPy's ``remainder`` shares).
An integer division by zero is an error (PyTorch raises "ZeroDivisionError" as a RuntimeError);
a float one gives inf / nan.
"""
import numpy as np

from ..autograd import unbroadcast
from ..backend import get_array_module
from .elementwise import Binary


def _check_divisor(a, b):
    if a.dtype.kind in "iub" and b.dtype.kind in "iub" and bool((b == 0).any()):
        raise RuntimeError("ZeroDivisionError: integer division (// or %) by zero; make the divisor nonzero "
                           "or use floats (x.float() // 0 is inf)")


class FloorDivide(Binary):
    saves_inputs = False

    def forward(self, a, b):
        _check_divisor(a, b)
        with np.errstate(divide="ignore", invalid="ignore"):
            return get_array_module(a).floor_divide(a, b)

    # floor(a / b) is piecewise constant; PyTorch defines no derivative for it and refuses
    def backward(self, g):
        raise RuntimeError("the derivative for floor_divide is not implemented (as in PyTorch); "
                           "detach() the operands of // if no gradient is needed through it")


class Remainder(Binary):
    def forward(self, a, b):
        _check_divisor(a, b)
        self.shapes = a.shape, b.shape
        with np.errstate(divide="ignore", invalid="ignore"):
            return get_array_module(a).remainder(a, b)

    # r = a - floor(a / b) b:  dr/da = 1,  dr/db = -floor(a / b)
    def backward(self, g):
        a, b = self.inputs[0].data, self.inputs[1].data
        sa, sb = self.shapes
        gb = None
        if self.needs_input_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                gb = unbroadcast(-g * get_array_module(g).floor_divide(a, b), sb)
        return (unbroadcast(g, sa) if self.needs_input_grad[0] else None), gb
