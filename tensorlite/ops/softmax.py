"""Softmax and log-softmax along one axis, each one Function with its backward derived by hand.

They sit here, with the other primitives, because Tensor.softmax needs them; ``nn.functional``
re-exports them with its argument checks.
"""
from ..backend import get_array_module
from ..autograd import Function


class Softmax(Function):
    saves_inputs, saves_output = False, True  # backward reads only y

    def forward(self, x):
        xp = get_array_module(x)
        if x.size == 0:  # nothing to normalise (max() of an empty axis would raise): an empty result
            self.y = x.copy()
            return self.y
        e = xp.exp(x - x.max(axis=self.dim, keepdims=True))  # shifting by the max keeps exp() <= 1
        self.y = e / e.sum(axis=self.dim, keepdims=True)
        return self.y

    # y = softmax(x):  dx = y * (g - sum(g * y))
    def backward(self, g):
        y = self.y
        return y * (g - (g * y).sum(axis=self.dim, keepdims=True))


class LogSoftmax(Function):
    saves_inputs, saves_output = False, True

    def forward(self, x):
        xp = get_array_module(x)
        if x.size == 0:  # as in Softmax: an empty result
            self.out = x.copy()
            return self.out
        shifted = x - x.max(axis=self.dim, keepdims=True)
        self.out = shifted - xp.log(xp.exp(shifted).sum(axis=self.dim, keepdims=True))
        return self.out

    # y = x - logsumexp(x):  dx = g - softmax(x) * sum(g)
    def backward(self, g):
        xp = get_array_module(g)
        return g - xp.exp(self.out) * g.sum(axis=self.dim, keepdims=True)
