"""Matrix product with NumPy's matmul semantics: batching, broadcasting, 1-D operands."""
from ..autograd import Function, unbroadcast


class MatMul(Function):
    saves_inputs = True  # backward reads both operands
    def forward(self, a, b):
        # 1-D operands become matrices (a row / a column) and the extra axis is dropped after
        self.a_vec, self.b_vec = a.ndim == 1, b.ndim == 1
        self.a_shape, self.b_shape = a.shape, b.shape
        self.a = a[None, :] if self.a_vec else a
        self.b = b[:, None] if self.b_vec else b
        out = self.a @ self.b
        if self.a_vec:
            out = out[..., 0, :]
        if self.b_vec:
            out = out[..., 0]
        return out

    # C = A B:  dA = G B^T,  dB = A^T G  (summed over broadcast batch axes)
    def backward(self, g):
        if self.b_vec:
            g = g[..., None]
        if self.a_vec:
            g = g[..., None, :]
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = unbroadcast(g @ self.b.swapaxes(-1, -2), self.a.shape).reshape(self.a_shape)
        if self.needs_input_grad[1]:
            gb = unbroadcast(self.a.swapaxes(-1, -2) @ g, self.b.shape).reshape(self.b_shape)
        return ga, gb
