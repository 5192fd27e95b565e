"""tensorlite.kernels: each CuPy kernel against its NumPy reference path.

On a GPU the optimizer tests run the real kernels (test_optim.py, device fixture). Here the
kernel's own source is also checked on the CPU: a stand-in for cupy.ElementwiseKernel runs the
kernel body with NumPy arrays, so a change to the kernel that drifts from the array path fails
without a GPU.
"""
import ast
from pathlib import Path

import numpy as np
import pytest

import tensorlite as tl
import tensorlite.kernels.adamw as kernels_adamw
import tensorlite.kernels.rows as kernels_rows
import tensorlite.optim.adamw as optim_adamw
from tensorlite.optim import AdamW

KERNELS = Path(kernels_adamw.__file__).resolve().parent


class NumpyElementwiseKernel:
    """cupy.ElementwiseKernel's calling convention, with the body run statement by statement on NumPy arrays
    (our own kernel source: assignments of arithmetic and sqrt, which read the same in C and Python)."""

    def __init__(self, in_params, out_params, body, name):
        self.ins = [p.split()[1] for p in in_params.split(",")]
        self.outs = [p.split()[1] for p in out_params.split(",")]
        self.statements = [s.strip() for s in body.split(";") if s.strip()]
        self.name = name

    def __call__(self, *args):
        assert len(args) == len(self.ins) + len(self.outs)
        dtype = args[-1].dtype  # T: every parameter has the outputs' type
        env = {"sqrt": np.sqrt}
        env.update({n: np.asarray(a, dtype) for n, a in zip(self.ins, args)})
        env.update(zip(self.outs, args[len(self.ins):]))
        for statement in self.statements:
            target, expr = (s.strip() for s in statement.split("=", 1))
            env[target] = eval(expr, {"__builtins__": {}}, env)
        for n, out in zip(self.outs, args[len(self.ins):]):
            out[...] = env[n]


class FakeCupy:
    ElementwiseKernel = NumpyElementwiseKernel


def test_kernels_never_import_cupy():
    for path in KERNELS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "cupy" for n in names), f"{path.name} imports cupy"


@pytest.mark.parametrize("dtype, exact", [(tl.float64, True), (tl.float32, False)])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adamw_kernel_computes_the_array_path(monkeypatch, dtype, exact, weight_decay):
    monkeypatch.setattr(kernels_rows, "_built", {})  # build the stand-in, and forget it afterwards
    monkeypatch.setattr(optim_adamw, "adamw_kernel", lambda xp: kernels_adamw.adamw_kernel(FakeCupy))
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal((3, 5))
    grads = [rng.standard_normal((3, 5)) for _ in range(4)]
    results = []
    for fused in (True, False):
        p = tl.tensor(p0, dtype=dtype, requires_grad=True)
        opt = AdamW([p], lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=weight_decay, fused=False)
        if fused:
            monkeypatch.setattr(opt, "_use_fused", lambda p: True)
        for g in grads:
            p.grad = tl.tensor(g, dtype=dtype)
            opt.step()
        state = opt.state[p]
        results.append([p.detach().numpy(), state["exp_avg"].detach().numpy(), state["exp_avg_sq"].detach().numpy()])
    assert kernels_rows._built["tensorlite_adamw"].name == "tensorlite_adamw"  # the kernel was built and used
    for a, b in zip(*results):
        assert a.dtype == dtype
        if exact:
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("env, fused, used", [(None, None, False), ("1", None, True), ("0", None, False),
                                               (None, True, True), ("1", False, False)])
def test_fused_kernels_are_off_by_default_until_measured_on_a_gpu(monkeypatch, env, fused, used):
    """TENSORLITE_FUSED=1 (or fused=True) turns the unverified CUDA kernel on; the CPU never uses it."""
    from types import SimpleNamespace
    if env is None:
        monkeypatch.delenv("TENSORLITE_FUSED", raising=False)
    else:
        monkeypatch.setenv("TENSORLITE_FUSED", env)
    opt = AdamW([tl.zeros(2, requires_grad=True)], fused=fused)
    on_gpu = SimpleNamespace(device="cuda", dtype=np.dtype(np.float32))
    assert opt._use_fused(on_gpu) is used
    assert opt._use_fused(SimpleNamespace(device="cpu", dtype=np.dtype(np.float32))) is False
