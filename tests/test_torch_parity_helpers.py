"""The differential harness of the tests/test_torch_parity_*.py files (it holds no tests itself).

A case is a function `fn(M, *inputs)` written once against the PyTorch-shaped API, where `M` is the module:
`tensorlite` or `torch`. `same(fn, *inputs)` builds the inputs as tensors in both libraries, runs the case in
both and demands:
- both raise an exception of the same kind (IndexError, TypeError, ValueError, RuntimeError...), or neither;
- the same outputs: shape, dtype and values (NaN equal to NaN), for tensors, tuples of tensors and Python values;
- the same gradients: loss = sum over the floating outputs of (output * G).sum(), with the same random G in
  both; every input that requires grad gets the same .grad (or None in both).
Inputs: a NumPy array becomes a tensor (floating ones require grad unless grad=False), `NC(array)` a transposed,
non-contiguous view of a leaf, `Const(array)` a tensor that never requires grad, anything else (a Python
scalar, a dtype name in DT(...)) is passed as it is.
"""
import numpy as np
import pytest
from hypothesis import Phase, settings

torch = pytest.importorskip("torch")
import tensorlite as tl  # noqa: E402

# Many cases: few examples each, and no shrinking (a failing case is reported as drawn: while the library
# still differs from torch in many places, shrinking every failure would take minutes).
few = settings(max_examples=8, phases=[Phase.explicit, Phase.reuse, Phase.generate], database=None)
KINDS = (IndexError, TypeError, ValueError, NotImplementedError, ZeroDivisionError, RuntimeError)
TOL = {"float16": (1e-2, 1e-3), "float32": (1e-4, 1e-5), "float64": (1e-7, 1e-9)}


class NC:
    """A non-contiguous input: the leaf holds the transpose, the case sees `leaf.transpose(-1, -2)`."""
    def __init__(self, array):
        self.array = np.asarray(array)


class Const:
    """A tensor input that does not require grad (an index, a mask, a bound)."""
    def __init__(self, array):
        self.array = np.asarray(array)


class DT:
    """A dtype by name, turned into M.<name> for each library."""
    def __init__(self, name):
        self.name = name


def kind(exc):
    """The PyTorch exception class a tensorlite error has to be an instance of too."""
    return next((k for k in KINDS if isinstance(exc, k)), type(exc))


def dtype_name(t):
    return str(t.dtype).split(".")[-1].replace("bool_", "bool")


def to_numpy(t):
    t = t.detach()
    return t.numpy() if isinstance(t, torch.Tensor) else np.asarray(t.numpy())


def build(M, inputs, grad):
    """Tensors (and the leaves whose .grad is compared) for module M from the case's inputs."""
    args, leaves = [], []
    for x in inputs:
        if isinstance(x, DT):
            args.append(getattr(M, x.name))
        elif isinstance(x, (np.ndarray, np.generic, NC, Const)):
            a = x.array if isinstance(x, (NC, Const)) else np.asarray(x)
            if isinstance(x, NC):
                a = np.ascontiguousarray(np.swapaxes(a, -1, -2))
            rg = grad and not isinstance(x, Const) and a.dtype.kind == "f"
            t = M.tensor(a.copy(), requires_grad=rg)
            if rg:
                leaves.append(t)
            args.append(t.transpose(-1, -2) if isinstance(x, NC) else t)
        else:
            args.append(x)
    return args, leaves


def flat(out):
    if isinstance(out, (tuple, list)):
        return [y for o in out for y in flat(o)]
    return [out]


def run(M, fn, inputs, grad):
    args, leaves = build(M, inputs, grad)
    try:
        out = fn(M, *args)
    except Exception as e:  # noqa: BLE001 (the kind is what is compared)
        return e, None, leaves
    return None, out, leaves


def assert_close(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, f"{what}: shape {a.shape} (tensorlite) != {b.shape} (torch)"
    rtol, atol = TOL.get(b.dtype.name, (0, 0))
    if b.dtype.kind in "fc":
        np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True,
                                   err_msg=what)
    else:
        np.testing.assert_array_equal(a, b, err_msg=what)


def compare_outputs(o_tl, o_pt):
    o_tl, o_pt = flat(o_tl), flat(o_pt)
    assert len(o_tl) == len(o_pt), f"{len(o_tl)} outputs (tensorlite) != {len(o_pt)} (torch)"
    for i, (a, b) in enumerate(zip(o_tl, o_pt)):
        if isinstance(b, torch.Tensor):
            assert type(a).__name__ == type(b).__name__, f"output {i}: a {type(a).__name__}, torch gives a {type(b).__name__}"
            assert tuple(a.shape) == tuple(b.shape), f"output {i}: shape {tuple(a.shape)} != torch {tuple(b.shape)}"
            assert dtype_name(a) == dtype_name(b), f"output {i}: dtype {dtype_name(a)} != torch {dtype_name(b)}"
            assert_close(to_numpy(a), to_numpy(b), f"output {i} values")
        elif isinstance(b, torch.Size):
            assert tuple(a) == tuple(b), f"output {i}: {a} != {b}"
        elif isinstance(b, float):
            assert isinstance(a, float) and (a == b or abs(a - b) <= 1e-5 * max(1, abs(b)) or (a != a and b != b)), \
                f"output {i}: {a!r} != torch {b!r}"
        else:
            assert type(a) is type(b) and a == b, f"output {i}: {a!r} != torch {b!r}"


def upstream(outs, seed):
    """One random output-gradient array per floating tensor output (the same for both libraries)."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, tuple(o.shape)).astype(to_numpy(o).dtype) for o in outs]


def backward(M, outs, gs):
    loss = None
    for o, g in zip(outs, gs):
        term = (o * M.tensor(g)).sum()
        loss = term if loss is None else loss + term
    loss.backward()


def same(fn, *inputs, grad=True, seed=0):
    """Run `fn(M, *inputs)` in tensorlite and torch; assert the same error kind, outputs and gradients."""
    e_pt, o_pt, l_pt = run(torch, fn, inputs, grad)
    e_tl, o_tl, l_tl = run(tl, fn, inputs, grad)
    if e_pt is not None or e_tl is not None:
        assert e_pt is not None, f"tensorlite raised {type(e_tl).__name__}: {e_tl}; torch gives a result"
        assert e_tl is not None, f"torch raises {type(e_pt).__name__} ({e_pt}); tensorlite gives a result"
        assert isinstance(e_tl, kind(e_pt)), \
            f"tensorlite raised {type(e_tl).__name__}: {e_tl}; torch raises {kind(e_pt).__name__}: {e_pt}"
        return
    compare_outputs(o_tl, o_pt)
    if not grad:
        return
    outs_pt = [o for o in flat(o_pt) if isinstance(o, torch.Tensor) and o.requires_grad]
    if not outs_pt:
        return
    outs_tl = [a for a, b in zip(flat(o_tl), flat(o_pt)) if isinstance(b, torch.Tensor) and b.requires_grad]
    gs = upstream(outs_pt, seed)
    # An output that does not require grad in tensorlite (sign, floor, ...) is fine only where torch's gradient
    # through it is zero everywhere (a piecewise-constant op); anywhere else the gradient was dropped.
    dropped = [i for i, o in enumerate(outs_tl) if not o.requires_grad]
    if dropped:
        g = torch.autograd.grad([outs_pt[i] for i in dropped], l_pt, [torch.tensor(gs[i]) for i in dropped],
                                retain_graph=True, allow_unused=True)
        assert all(x is None or not x.any() for x in g), "tensorlite's output does not require grad: gradient dropped"
        keep = [i for i in range(len(outs_tl)) if i not in dropped]
        outs_pt, outs_tl, gs = [outs_pt[i] for i in keep], [outs_tl[i] for i in keep], [gs[i] for i in keep]
        if not keep:
            return
    try:
        backward(torch, outs_pt, gs)
    except Exception as e:  # noqa: BLE001 (e.g. a saved tensor modified in place: backward must raise in both)
        with pytest.raises(kind(e)):
            backward(tl, outs_tl, gs)
        return
    backward(tl, outs_tl, gs)
    for i, (a, b) in enumerate(zip(l_tl, l_pt)):
        if b.grad is None or (a.grad is None and dropped and not b.grad.any()):
            assert a.grad is None or not to_numpy(a.grad).any(), f"input {i}: tensorlite has a gradient, torch None"
        else:
            assert a.grad is not None, f"input {i}: no gradient in tensorlite (torch has one)"
            assert_close(to_numpy(a.grad), to_numpy(b.grad), f"gradient of input {i}")


def raises_same(fn, *inputs, grad=False):
    """Both libraries raise, and tensorlite's error is of torch's kind. grad=True: floating inputs require grad."""
    e_pt, _, _ = run(torch, fn, inputs, grad)
    assert e_pt is not None, "torch does not raise here: the case is wrong"
    same(fn, *inputs, grad=grad)


def rand(seed, shape, low=-2.0, high=2.0, dtype="float64"):
    return np.asarray(np.random.default_rng(seed).uniform(low, high, shape)).astype(dtype)
