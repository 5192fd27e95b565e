"""tensorlite against PyTorch: grad mode, in-place methods, version counters and the autograd errors.

Each case is a small program written once against the PyTorch-shaped API; `same` runs it in both libraries
and checks the result, or that both raise the same kind of error (here mostly PyTorch's "one of the variables
needed for gradient computation has been modified by an inplace operation" RuntimeError).
"""
import numpy as np
import pytest

from test_torch_parity_helpers import rand, raises_same, same

torch = pytest.importorskip("torch")
import tensorlite as tl  # noqa: E402


def backward_grad(fn):
    """A case that runs fn(M, x) -> loss, backpropagates, and returns x's gradient (or raises)."""
    def case(M, x):
        loss = fn(M, x)
        loss.backward()
        return x.grad
    return case


def saved_then(op, change):
    """x -> y = 2x (a non-leaf); z = op(y) saves y (or its output); `change(M, y or z)`; backward."""
    def fn(M, x):
        y = x * 2
        z = op(y)
        change(M, y, z)
        return z.sum()
    return backward_grad(fn)


def nograd(f):
    def g(M, y, z):
        with M.no_grad():
            f(M, y, z)
    return g


MODIFIED = [  # (name, saved_then case): all must raise RuntimeError in both
    ("mul_nograd_input_of_mul", saved_then(lambda y: y * y, nograd(lambda M, y, z: y.mul_(2)))),
    ("add_input_of_sin", saved_then(lambda y: y.sin(), lambda M, y, z: y.add_(1))),
    ("setitem_input_of_mul", saved_then(lambda y: y * y, lambda M, y, z: y.__setitem__(0, 5.0))),
    ("fill_input_of_pow", saved_then(lambda y: y ** 3, nograd(lambda M, y, z: y.fill_(1.0)))),
    ("zero_output_of_exp", saved_then(lambda y: y.exp(), lambda M, y, z: z.zero_())),
    ("mul_output_of_tanh", saved_then(lambda y: y.tanh(), lambda M, y, z: z.mul_(2))),
    ("copy_output_of_sigmoid", saved_then(lambda y: y.sigmoid(), lambda M, y, z: z.copy_(M.ones_like(z)))),
    ("clamp_input_of_matmul", saved_then(lambda y: y @ y.T, lambda M, y, z: y.clamp_(-1, 1))),
    ("view_of_saved", saved_then(lambda y: y * y, lambda M, y, z: y.view(-1).sub_(1))),
    ("detached_of_saved", saved_then(lambda y: y * y, lambda M, y, z: y.detach().div_(2))),
    ("data_of_saved", saved_then(lambda y: y.sqrt(), lambda M, y, z: z.detach().add_(1))),
]
FINE = [  # the same changes where backward does not need the changed values: no error, same gradient
    ("add_input_of_add", saved_then(lambda y: y + 1, lambda M, y, z: y.add_(1))),
    ("mul_input_of_sum", saved_then(lambda y: y.sum() * 1, nograd(lambda M, y, z: y.mul_(3)))),
    ("mul_input_of_exp", saved_then(lambda y: y.exp(), nograd(lambda M, y, z: y.mul_(2)))),
    ("setitem_input_of_reshape", saved_then(lambda y: y.reshape(-1), lambda M, y, z: y.__setitem__(0, 5.0))),
    ("mul_output_of_mul", saved_then(lambda y: y * y, lambda M, y, z: z.mul_(2))),
]


@pytest.mark.parametrize("name,case", MODIFIED, ids=[m[0] for m in MODIFIED])
def test_modified_saved_tensor_raises(name, case):
    raises_same(case, rand(0, (2, 2), 0.1, 1.0), grad=True)


@pytest.mark.parametrize("name,case", FINE, ids=[m[0] for m in FINE])
def test_inplace_not_needed_by_backward(name, case):
    same(case, rand(0, (2, 2), 0.1, 1.0))


def test_optimizer_step_between_forward_and_backward_raises():
    def case(M, x):
        w = M.nn.Parameter(M.ones(2, 2, dtype=x.dtype))
        opt = M.optim.SGD([w], lr=0.1)
        loss = (x @ w @ w).sum()
        w.grad = M.ones(2, 2, dtype=x.dtype)
        opt.step()  # changes w, which the matmul saved
        loss.backward()
    raises_same(case, rand(0, (2, 2)), grad=True)


def test_versions():
    def case(M, x):
        a = x.detach().clone()
        v = [a._version]
        a.add_(1)
        v.append(a._version)
        a[0] = 2.0
        v.append(a._version)
        b = a.detach()
        b.mul_(2)
        v += [a._version, b._version]
        c = a.view(-1)
        c.zero_()
        v += [a._version, c._version]
        with M.no_grad():
            a.fill_(3.0)
        v.append(a._version)
        d = a.reshape(-1) * 1  # a new tensor: its own counter
        v.append(d._version)
        return tuple(v)
    same(case, rand(0, (2, 2)))


INPLACE = [  # in-place methods on a non-leaf: values, dtype and the gradient through them
    ("add_", lambda M, y: y.add_(2.0)), ("add_alpha", lambda M, y: y.add_(M.ones_like(y), alpha=3)),
    ("sub_", lambda M, y: y.sub_(y.detach() * 0.5)), ("mul_", lambda M, y: y.mul_(3)),
    ("mul_tensor", lambda M, y: y.mul_(y.detach())), ("div_", lambda M, y: y.div_(4)),
    ("fill_", lambda M, y: y.fill_(1.5)), ("zero_", lambda M, y: y.zero_()),
    ("copy_", lambda M, y: y.copy_(M.arange(y.numel()).reshape(y.shape))),
    ("clamp_", lambda M, y: y.clamp_(-0.5, 0.5)), ("clamp_min_", lambda M, y: y.clamp_(min=0.0)),
    ("masked_fill_", lambda M, y: y.masked_fill_(y > 0, 0.0)), ("pow_", lambda M, y: y.pow_(2)),
    ("exp_", lambda M, y: y.exp_()), ("neg_", lambda M, y: y.neg_()), ("iadd", lambda M, y: y.__iadd__(1.0)),
    ("imul", lambda M, y: y.__imul__(y.detach())), ("isub_scalar", lambda M, y: y.__isub__(2)),
    ("itruediv", lambda M, y: y.__itruediv__(2)),
]


@pytest.mark.parametrize("name,op", INPLACE, ids=[i[0] for i in INPLACE])
def test_inplace_methods(name, op):
    def case(M, x):
        y = x * 1.0
        r = op(M, y)
        return r, y, r is y
    same(case, rand(0, (2, 3)))


@pytest.mark.parametrize("name,op", INPLACE, ids=[i[0] for i in INPLACE])
def test_inplace_on_leaf_requiring_grad_raises(name, op):
    raises_same(lambda M, x: op(M, x), rand(0, (2, 3)), grad=True)


@pytest.mark.parametrize("name,op", INPLACE, ids=[i[0] for i in INPLACE])
def test_inplace_on_leaf_under_no_grad(name, op):
    def case(M, x):
        with M.no_grad():
            op(M, x)
        return x.detach() * 1, x.requires_grad, x.is_leaf
    same(case, rand(0, (2, 3)))
    same(lambda M, x: (op(M, x.detach().clone()),), rand(0, (2, 3)))


@pytest.mark.parametrize("case", [
    lambda M, x: x.__iadd__(1.5), lambda M, x: x.__imul__(2.5), lambda M, x: x.add_(0.5),
    lambda M, x: x.__itruediv__(2), lambda M, x: x.mul_(M.tensor([1.5, 1.5, 1.5])),
    lambda M, x: x.copy_(M.tensor([1.5, 2.5, 3.5])),
], ids=["iadd_float", "imul_float", "add__float", "itruediv", "mul__float_tensor", "copy__float_truncates"])
def test_int_inplace_with_float(case):
    """An int tensor cannot hold a float result in place (RuntimeError), but copy_ truncates as a cast."""
    same(case, np.arange(3), grad=False)


def test_listed_gradient_cases():
    x = rand(0, (3, 4))
    same(lambda M, x, v: (lambda y: (y.__setitem__(1, v), y)[1])(x * 1.0), x, rand(1, (4,)))  # y[i] = v
    same(lambda M, x, v: x.masked_fill(x > 0, v), x, np.array(0.25))  # a 0-d tensor value
    same(lambda M, x: x % 0.7, x)  # float remainder: gradient 1
    same(lambda M, x: M.maximum(x, x), x)  # half each
    same(lambda M, x: x.std(), np.ones((2, 2)))
    same(lambda M, x: F_xent(M, x), x)


def F_xent(M, x):
    return M.nn.functional.cross_entropy(x, M.tensor([-100, -100, -100]))


# ---------------------------------------------------------------------------------------------- grad mode
def test_no_grad_both_decorator_forms_and_context():
    def case(M, x):
        @M.no_grad
        def f1(t):
            return t * 2

        @M.no_grad()
        def f2(t):
            return t * 2

        with M.no_grad():
            a = x * 2
            with M.enable_grad():
                b = x * 2
        with M.set_grad_enabled(False):
            c = x * 2
        M.set_grad_enabled(False)
        d = x * 2
        M.set_grad_enabled(True)
        return (f1(x).requires_grad, f2(x).requires_grad, a.requires_grad, b.requires_grad, c.requires_grad,
                d.requires_grad, M.is_grad_enabled(), f1.__name__)
    same(case, rand(0, (2,)))


def test_no_grad_decorated_method_and_generator_result():
    def case(M, x):
        class Model:
            @M.no_grad()
            def estimate(self, t):
                return (t * t).mean()

            @M.no_grad
            def estimate2(self, t):
                return {"train": (t * 3).mean()}
        m = Model()
        return m.estimate(x).requires_grad, m.estimate2(x)["train"].requires_grad, float(m.estimate(x))
    same(case, rand(0, (3,)))


LEAF_CASES = [
    ("requires_grad_", lambda M, x: (x.detach().requires_grad_(), x.detach().requires_grad_().is_leaf)),
    ("requires_grad_false", lambda M, x: x.detach().requires_grad_(False).requires_grad),
    ("is_leaf", lambda M, x: (x.is_leaf, (x * 2).is_leaf, x.detach().is_leaf, (x * 2).detach().requires_grad)),
    ("grad_fn_none", lambda M, x: (x.grad_fn is None, (x * 2).grad_fn is not None)),
    ("retain_grad", lambda M, x: (lambda y: (y.retain_grad(), y.sum().backward(), y.grad)[2])(x * 2)),
    ("clone_grad", lambda M, x: (lambda y: (y.sum().backward(), x.grad)[1])(x.clone() * 3)),
    ("item", lambda M, x: (x.sum().item(), x[0].item(), x.detach().tolist())),
    ("float_int_bool", lambda M, x: (float(x[0]), int(x[1] * 10), bool(x[0] > 0))),
    ("backward_gradient", lambda M, x: (lambda y: (y.backward(M.ones_like(y)), x.grad)[1])(x * 3)),
    ("accumulate", lambda M, x: (lambda: ((x * 2).sum().backward(), (x * 3).sum().backward(), x.grad)[2])()),
]


@pytest.mark.parametrize("name,case", LEAF_CASES, ids=[c[0] for c in LEAF_CASES])
def test_leaf_and_grad_api(name, case):
    same(case, rand(0, (3,)))


ERRORS = [
    ("numpy_requires_grad", lambda M, x: x.numpy()),
    ("zero_leaf", lambda M, x: x.zero_()),
    ("backward_non_scalar", lambda M, x: (x * 2).backward()),
    ("backward_no_grad_tensor", lambda M, x: x.detach().sum().backward()),
    ("backward_twice", lambda M, x: (lambda y: (y.backward(), y.backward()))((x * x).sum())),
    ("requires_grad_int", lambda M, x: M.tensor([1, 2]).requires_grad_()),
    ("int_tensor_requires_grad", lambda M, x: M.tensor([1, 2], requires_grad=True)),
    ("item_of_many", lambda M, x: x.item()),
    ("retain_grad_no_grad", lambda M, x: x.detach().retain_grad()),
    ("requires_grad_false_non_leaf", lambda M, x: (x * 2).requires_grad_(False)),
    ("backward_gradient_shape", lambda M, x: (x * 2).backward(M.ones(2))),
]


@pytest.mark.parametrize("name,case", ERRORS, ids=[e[0] for e in ERRORS])
def test_autograd_errors(name, case):
    raises_same(case, rand(0, (3,)), grad=True)


def test_module_pickle_carries_no_gradients():
    """pickle.dumps of a trained model: no .grad, no graph (PyTorch's file size, within a few percent)."""
    import pickle
    sizes = []
    for M in (tl, torch):
        M.manual_seed(0)
        m = M.nn.Sequential(M.nn.Embedding(20, 16), M.nn.Linear(16, 20))
        loss = m(M.tensor([[1, 2, 3]])).sum()
        loss.backward()
        blob = pickle.dumps(m)
        back = pickle.loads(blob)
        assert all(p.grad is None for p in back.parameters()), f"{M.__name__}: the unpickled model has gradients"
        sizes.append(len(blob))
    assert sizes[0] < 1.25 * sizes[1], f"tensorlite's pickle {sizes[0]} bytes, torch's {sizes[1]}"
