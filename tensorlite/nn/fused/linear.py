"""x W^T + b and dropout, each one Function, and the dropout mask that dropout and attention share."""
import numpy as np

from ... import backend, kernels
from ...autograd import Function
from ...kernels.dropout import dropout_forward


class Linear(Function):
    """x (..., in) @ weight (out, in)^T + bias: one 2-D product over the flattened leading dims."""
    saves_inputs = True  # dx needs the weight, dW needs x

    def forward(self, x, weight, *bias):
        self.x2 = x.reshape(-1, x.shape[-1])  # leading dims flattened: one 2-D product
        self.weight, self.x_shape = weight, x.shape
        y = self.x2 @ weight.T
        if bias:
            y += bias[0]
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    # y = x W^T + b:  dx = g W,  dW = g^T x,  db = sum of g over rows (ones @ g: a BLAS product, 2-3x
    # faster than g.sum(axis=0))
    def backward(self, g):
        xp = backend.get_array_module(g)
        g2 = g.reshape(-1, g.shape[-1])
        dx = (g2 @ self.weight).reshape(self.x_shape) if self.needs_input_grad[0] else None
        dw = g2.T @ self.x2 if self.needs_input_grad[1] else None
        if len(self.needs_input_grad) == 2:
            return dx, dw
        return dx, dw, (xp.ones(g2.shape[0], dtype=g.dtype) @ g2 if self.needs_input_grad[2] else None)


class Dropout(Function):
    """x times `mask`, a keep-mask already scaled by 1 / (1 - p): given, or (mask=None) drawn here with p from
    the device's generator, as dropout_mask draws it. On CUDA with TENSORLITE_FUSED=1 the drawn uniforms
    become the mask and the product in one kernel (tensorlite.kernels.dropout: the same random stream)."""
    saves_inputs = False  # backward needs the mask only
    mask = None

    def forward(self, x):
        self.kernel = self.mask is None and self.p < 1 and kernels.use_fused(x)
        if self.mask is None:
            device = backend.device_of(x)
            if self.kernel:
                y, self.mask = dropout_forward(backend.get_array_module(x), x, _uniform(x.shape, x.dtype, device),
                                               self.p)
                return y
            self.mask = dropout_mask(x.shape, self.p, x.dtype, device)
        return x * self.mask

    # y = x * mask / (1 - p):  dx = g * mask / (1 - p)   (the same mask)
    def backward(self, g):
        return g * self.mask


def _uniform(shape, dtype, device):
    """Uniforms in [0, 1) of `dtype` from the device's seeded generator: the one draw dropout makes."""
    with backend.device_context(device):
        return backend.generator(device).random(shape, np.dtype(dtype))


def dropout_mask(shape, p, dtype, device):
    """Keep-mask already scaled by 1 / (1 - p), from the device's seeded generator."""
    xp = backend.xp_for(device)
    u = _uniform(shape, dtype, device)
    with backend.device_context(device):
        if p == 1:  # everything dropped (1 / (1 - p) would be inf, and inf * 0 nan)
            return xp.zeros(shape, dtype=dtype)
        return (u >= p).astype(dtype) * xp.asarray(1 / (1 - p), dtype=dtype)
