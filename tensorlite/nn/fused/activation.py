"""Activations that are not Tensor methods, each one Function (PyTorch's definitions and kink conventions),
and BiasAct: a bias add and ReLU/GELU in one Function (the MLP's).

Python-float constants keep a float32 array float32 (NumPy's scalar rule), so none of these makes a
float64 temporary on a float32 path.
"""
import numpy as np

from ... import backend, kernels
from ...autograd import Function
from ...kernels.bias_act import bias_act_backward, bias_act_backward_reference, bias_act_forward, bias_act_reference
from ...ops.elementwise import relu_values


def _sigmoid(xp, a):
    """1 / (1 + exp(-a)) without overflow: e = exp(-|a|) <= 1."""
    e = xp.exp(-abs(a))
    return xp.where(a >= 0, 1, e) / (1 + e)


class SiLU(Function):
    """x * sigmoid(x)."""
    saves_inputs = True  # backward reads x (and its own sigmoid)

    def forward(self, a):
        self.a, self.s = a, _sigmoid(backend.get_array_module(a), a)
        return a * self.s

    # d = s + x s (1 - s)
    def backward(self, g):
        s = self.s
        return g * (s * (1 + self.a * (1 - s)))


class LeakyReLU(Function):
    """x where x > 0, else negative_slope * x (the gradient at 0 is negative_slope, as in PyTorch)."""
    saves_inputs = False  # backward reads the mask only

    def forward(self, a):
        xp = backend.get_array_module(a)
        self.pos = a > 0
        return xp.where(self.pos, a, a * self.negative_slope)

    def backward(self, g):
        return backend.get_array_module(g).where(self.pos, g, g * self.negative_slope)


class ELU(Function):
    """x where x > 0, else alpha (exp(x) - 1)."""
    saves_inputs = False  # backward reads the mask and exp(min(x, 0))

    def forward(self, a):
        xp = backend.get_array_module(a)
        self.pos = a > 0
        self.e = xp.exp(xp.minimum(a, 0))  # exp of the negative part only: no overflow
        return xp.where(self.pos, a, (self.e - 1) * self.alpha)


    # d = 1 where x > 0, else alpha exp(x)
    def backward(self, g):
        return backend.get_array_module(g).where(self.pos, g, g * (self.e * self.alpha))


class SELU(ELU):
    """scale * elu(x, alpha) with PyTorch's two constants (self-normalising networks); the gradient at 0 is
    scale * alpha, the negative side's, as PyTorch's."""
    saves_inputs = False  # as ELU: backward reads the mask and exp(min(x, 0))
    alpha = 1.6732632423543772848170429916717
    scale = 1.0507009873554804934193349852946

    def forward(self, a):
        return super().forward(a) * self.scale

    def backward(self, g):
        return super().backward(g * self.scale)


class Mish(Function):
    """x * tanh(softplus(x))."""
    saves_inputs = True  # backward reads x (and its own tanh)

    def forward(self, a):
        xp = backend.get_array_module(a)
        self.a = a
        self.t = xp.tanh(xp.maximum(a, 0) + xp.log1p(xp.exp(-abs(a))))  # softplus without overflow
        return a * self.t

    # d = t + x (1 - t^2) sigmoid(x), since d softplus(x) = sigmoid(x)
    def backward(self, g):
        xp = backend.get_array_module(g)
        t = self.t
        return g * (t + self.a * (1 - t * t) * _sigmoid(xp, self.a))


class Softplus(Function):
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (PyTorch's linear region)."""
    saves_inputs = True  # backward reads x

    def forward(self, a):
        xp = backend.get_array_module(a)
        z = a * self.beta
        self.linear, self.a = z > self.threshold, a
        # log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)): finite for any z
        soft = (xp.maximum(z, 0) + xp.log1p(xp.exp(-abs(z)))) / self.beta
        return xp.where(self.linear, a, soft)

    # d = sigmoid(beta x), 1 in the linear region
    def backward(self, g):
        xp = backend.get_array_module(g)
        return xp.where(self.linear, g, g * _sigmoid(xp, self.a * self.beta))


class Hardtanh(Function):
    """x clipped to [min_val, max_val]; the gradient is 1 strictly inside, 0 on and beyond the bounds
    (PyTorch's convention at the two kinks)."""
    saves_inputs = False  # backward reads the mask only

    def forward(self, a):
        xp = backend.get_array_module(a)
        self.inside = (a > self.min_val) & (a < self.max_val)
        return xp.clip(a, self.min_val, self.max_val).astype(a.dtype, copy=False)

    def backward(self, g):
        return backend.get_array_module(g).where(self.inside, g, 0).astype(g.dtype, copy=False)


class LogSigmoid(Function):
    """log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|)): finite for any x."""
    saves_inputs = True  # backward reads x

    def forward(self, a):
        xp = backend.get_array_module(a)
        self.a = a
        return xp.minimum(a, 0) - xp.log1p(xp.exp(-abs(a)))

    # d = 1 - sigmoid(x) = sigmoid(-x)
    def backward(self, g):
        return g * _sigmoid(backend.get_array_module(g), -self.a)


class Softsign(Function):
    """x / (1 + |x|)."""
    saves_inputs = False  # backward reads 1 + |x|

    def forward(self, a):
        self.d = 1 + abs(a)
        return a / self.d


    # d = 1 / (1 + |x|)^2
    def backward(self, g):
        return g / (self.d * self.d)


class BiasAct(Function):
    """act(x + b), b (D,) added along the last dim, act = `kind` ('relu', 'gelu' or 'gelu_tanh'): the MLP's
    bias and activation as one node. On CUDA with TENSORLITE_FUSED=1 forward and backward are one
    ElementwiseKernel each. On the CPU, ReLU in float32/float64 keeps its output y and backward reads y > 0
    (the same mask as x + b > 0): two passes each way instead of three, and db as a BLAS product. Otherwise
    kernels.bias_act's reference (float16 computed in float32)."""
    saves_inputs = True  # the kernel and reference paths recompute x + b from the inputs
    saves_output = True  # the CPU ReLU path reads its output

    def forward(self, x, b):
        xp = backend.get_array_module(x)
        self.kernel = kernels.use_fused(x, b)
        self.x, self.b, self.y = x, b, None
        if self.kernel:
            return bias_act_forward(xp, x, b, self.kind)
        if xp is np and self.kind == "relu" and x.dtype != np.float16:
            h = x + b  # a new array, made y in place
            self.y = relu_values(xp, h, out=h)
            return self.y
        return bias_act_reference(xp, x, b, self.kind)

    # h = x + b:  dx = g act'(h);  db = sum of dx over the rows
    def backward(self, g):
        xp = backend.get_array_module(g)
        if self.kernel:
            return bias_act_backward(xp, g, self.x, self.b, self.kind)
        if self.y is not None:  # relu' = [h > 0] = [y > 0]; a product, as the kernel's (np.where is 15x slower)
            dx = g * (self.y > 0)
            return dx, xp.ones(dx.size // dx.shape[-1], dtype=dx.dtype) @ dx.reshape(-1, dx.shape[-1])
        return bias_act_backward_reference(xp, g, self.x, self.b, self.kind)
