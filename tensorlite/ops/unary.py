"""More elementwise Functions of one input: sin, cos, erf, log1p, expm1 (the others are in elementwise.py).

Each saves what its backward formula reads: the input for sin/cos/erf/log1p, the output for expm1.
"""
import math

from ..autograd import Function
from ..backend import erf, get_array_module


class Sin(Function):
    def forward(self, a):
        self.a = a
        return get_array_module(a).sin(a)

    # d sin(a) = cos(a)
    def backward(self, g):
        return g * get_array_module(g).cos(self.a)


class Cos(Function):
    def forward(self, a):
        self.a = a
        return get_array_module(a).cos(a)

    # d cos(a) = -sin(a)
    def backward(self, g):
        return -g * get_array_module(g).sin(self.a)


class Erf(Function):
    def forward(self, a):
        self.a = a
        return erf(a)

    # d erf(a) = 2 / sqrt(pi) exp(-a^2)
    def backward(self, g):
        xp = get_array_module(g)
        return g * (2 / math.sqrt(math.pi)) * xp.exp(-self.a * self.a)


class Log1p(Function):
    def forward(self, a):
        self.a = a
        return get_array_module(a).log1p(a)

    # d log(1 + a) = 1 / (1 + a)
    def backward(self, g):
        return g / (1 + self.a)


class Expm1(Function):
    saves_inputs, saves_output = False, True

    def forward(self, a):
        self.out = get_array_module(a).expm1(a)
        return self.out

    # d (exp(a) - 1) = exp(a) = out + 1
    def backward(self, g):
        return g * (self.out + 1)
