"""The fused kernels of the MLP and the optimizer on the CPU: bias + activation, dropout, flat AdamW.

As test_fused_kernels.py: each kernel's reference against the unfused Functions and nn.reference, and the
Functions' kernel paths run with the kernel swapped for its reference. AdamW's flat path runs the kernel's
own source on NumPy (test_kernels' stand-in for cupy.ElementwiseKernel).
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tensorlite as tl
import tensorlite.kernels.adamw as kernels_adamw
import tensorlite.kernels.rows as kernels_rows
import tensorlite.nn.functional as F
import tensorlite.optim.adamw as optim_adamw
from tensorlite import kernels, nn
from tensorlite.kernels import bias_act as K_act, dropout as K_drop
from tensorlite.nn import reference as R
from tensorlite.nn.activations import bias_act
from tensorlite.nn.fused import linear as fused_linear
from fused_cases import DTYPES, bias_act_cases, bias_act_data, close, run
from test_kernels import NumpyElementwiseKernel


def composed_act(kind):
    """The unfused composition: an Add node, then the ReLU or GELU Function."""
    return lambda x, b: (x + b).relu() if kind == "relu" else (x + b).gelu("tanh" if kind == "gelu_tanh" else "none")


# ---------------------------------------------------------------- bias + activation
@given(bias_act_cases())
def test_bias_act_reference_is_the_unfused_functions_and_the_composition(case):
    (x, b), g = bias_act_data(case)
    dtype, kind = case["dtype"], case["kind"]
    ref_y = K_act.bias_act_reference(np, x.astype(dtype), b.astype(dtype), kind)
    ref_dx, ref_db = K_act.bias_act_backward_reference(np, g.astype(dtype), x.astype(dtype), b.astype(dtype), kind)
    assert ref_y.dtype == ref_dx.dtype == ref_db.dtype == dtype
    y, grads = run(lambda x, b: bias_act(x, b, kind), [x, b], g, "cpu", dtype)
    unfused_y, unfused_grads = run(composed_act(kind), [x, b], g, "cpu", dtype)
    comp_y, comp_grads = run(composed_act(kind), [x, b], g, "cpu", np.float64)
    for a, r, c, what in [(y, ref_y, comp_y, "forward"), (grads[0], ref_dx, comp_grads[0], "dx"),
                          (grads[1], ref_db, comp_grads[1], "db")]:
        close(a, r, dtype, f"{what}: Function vs reference")
        close(r, c, dtype, f"{what}: reference vs float64 composition")
    close(unfused_y, ref_y, dtype, "forward: the unfused Functions vs reference")
    close(unfused_grads[0], ref_dx, dtype, "dx: the unfused Functions vs reference")


def test_bias_act_checks_its_arguments():
    x = tl.zeros(2, 3)
    with pytest.raises(RuntimeError, match="bias"):
        bias_act(x, tl.zeros(2))
    with pytest.raises(ValueError, match="activation"):
        bias_act(x, tl.zeros(3), "tanh")
    with pytest.raises(RuntimeError, match="dtype"):
        bias_act(x, tl.zeros(3, dtype=tl.float64))


@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh"])
@pytest.mark.parametrize("bias", [True, False])
def test_feed_forward_is_its_composition(activation, bias):
    ff = nn.FeedForward(6, activation=activation, bias=bias).double()
    x = tl.tensor(np.random.default_rng(0).standard_normal((2, 3, 6)), requires_grad=True)
    out = ff(x)
    ref = ff.c_proj(composed_act(activation)(F.linear(x, ff.c_fc.weight), ff.c_fc.bias) if bias
                    else ff.act(ff.c_fc(x)))
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    ref.sum().backward()
    expected, x.grad = x.grad.numpy(), None
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_bias_act_kernel_path_on_the_cpu(monkeypatch):
    """BiasAct's kernel path, with the kernels swapped for their references, gives the array path's values."""
    rng = np.random.default_rng(1)
    x, b, g = rng.uniform(-2, 2, (4, 7)), rng.uniform(-1, 1, 7), rng.uniform(-1, 1, (4, 7))
    for kind in sorted(K_act.KINDS):
        y, grads = run(lambda x, b: bias_act(x, b, kind), [x, b], g, "cpu", np.float32)
        monkeypatch.setattr(kernels, "use_fused", lambda *arrays: True)
        import tensorlite.nn.fused.activation as fused_activation
        monkeypatch.setattr(fused_activation, "bias_act_forward", K_act.bias_act_reference)
        monkeypatch.setattr(fused_activation, "bias_act_backward", K_act.bias_act_backward_reference)
        ky, kgrads = run(lambda x, b: bias_act(x, b, kind), [x, b], g, "cpu", np.float32)
        monkeypatch.undo()
        np.testing.assert_array_equal(ky, y)
        np.testing.assert_array_equal(kgrads[0], grads[0])
        # db: the CPU ReLU path sums as a BLAS product (ones @ dx), in another order than the reference's sum
        np.testing.assert_allclose(kgrads[1], grads[1], rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- dropout
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("shape", [(1,), (3, 385), (2, 3, 5)])
def test_dropout_reference_is_the_function_and_the_composition(dtype, p, shape):
    """Same seed, same mask: the reference on the generator's draw, F.dropout and nn.reference.dropout agree
    bit for bit, forward and backward."""
    rng = np.random.default_rng(2)
    x, g = rng.uniform(-2, 2, shape), rng.uniform(-1, 1, shape)
    tl.manual_seed(7)
    u = tl.backend.generator("cpu").random(shape, np.dtype(dtype))
    ref_y, ref_mask = K_drop.dropout_reference(np, x.astype(dtype), u, p)
    results = []
    for fn in (F.dropout, R.dropout):
        tl.manual_seed(7)
        results.append(run(lambda t: fn(t, p), [x], g, "cpu", dtype))
    for y, (dx,) in results:
        np.testing.assert_array_equal(y, ref_y.astype(np.float64))
        np.testing.assert_array_equal(dx, (g.astype(dtype) * ref_mask).astype(np.float64))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_kernel_path_draws_the_same_stream(monkeypatch, dtype):
    """The kernel path draws the uniforms as dropout_mask does: the same seed gives the same mask, and the
    next draw after it is the same too."""
    x, g = np.linspace(-1, 1, 60).reshape(6, 10), np.linspace(1, 2, 60).reshape(6, 10)
    outs = []
    for kernel in (False, True):
        if kernel:
            monkeypatch.setattr(kernels, "use_fused", lambda *arrays: True)
            monkeypatch.setattr(fused_linear, "dropout_forward", K_drop.dropout_reference)
        tl.manual_seed(3)
        y, (dx,) = run(lambda t: F.dropout(t, 0.4), [x], g, "cpu", dtype)
        outs.append((y, dx, tl.rand(3).numpy()))
    monkeypatch.undo()
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def test_dropout_p1_drops_everything_on_every_path(monkeypatch):
    monkeypatch.setattr(kernels, "use_fused", lambda *arrays: True)
    y = F.dropout(tl.ones(4, dtype=tl.float16), 1.0)
    np.testing.assert_array_equal(y.numpy(), 0)


# ---------------------------------------------------------------- AdamW on flat buffers
class FakeCupy:
    ElementwiseKernel = NumpyElementwiseKernel


def flat_on_cpu(monkeypatch, opt):
    """Make `opt` take the fused path on the CPU, the kernel's own source run on NumPy."""
    monkeypatch.setattr(kernels_rows, "_built", {})
    monkeypatch.setattr(optim_adamw, "adamw_kernel", lambda xp: kernels_adamw.adamw_kernel(FakeCupy))
    monkeypatch.setattr(opt, "_use_fused", lambda p: True)


def two_groups(dtype=tl.float64, seed=0):
    rng = np.random.default_rng(seed)
    ps = [tl.tensor(rng.standard_normal(s), dtype=dtype, requires_grad=True) for s in ((3, 4), (5,), (1,), (2, 2))]
    return ps, [{"params": ps[:2]}, {"params": ps[2:], "lr": 0.02, "weight_decay": 0.0}]


def step_with(opt, ps, grads):
    for gs in grads:
        for p, g in zip(ps, gs):
            p.grad = None if g is None else tl.tensor(g, dtype=p.dtype)
        opt.step()


@pytest.mark.parametrize("config", [{}, dict(maximize=True), dict(betas=(0.5, 0.6), eps=1e-3)])
@pytest.mark.parametrize("name", ["AdamW", "Adam"])
def test_flat_adamw_is_the_array_path(monkeypatch, name, config):
    """Two groups (different lr and weight decay), one launch each, give the per-parameter array path's
    numbers exactly (float64); the parameters and moments become views of the flat buffers."""
    rng = np.random.default_rng(1)
    grads = [[rng.standard_normal(s) for s in ((3, 4), (5,), (1,), (2, 2))] for _ in range(4)]
    results = []
    for fused in (True, False):
        ps, groups = two_groups()
        opt = getattr(tl.optim, name)(groups, lr=0.05, weight_decay=0.1, fused=False, **config)
        if fused:
            flat_on_cpu(monkeypatch, opt)
        step_with(opt, ps, grads)
        results.append([p.detach().numpy() for p in ps] + [opt.state[p][k].detach().numpy() for p in ps
                                                           for k in ("exp_avg", "exp_avg_sq")])
        if fused:
            assert len(opt._flat) == 2 and all(p.data.base is not None for p in ps)
            assert [opt.state[p]["step"] for p in ps] == [4] * 4
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_flat_adamw_state_dict_is_unchanged_and_resumes(monkeypatch):
    rng = np.random.default_rng(2)
    grads = [[rng.standard_normal(s) for s in ((3, 4), (5,), (1,), (2, 2))] for _ in range(6)]
    ps, groups = two_groups()
    straight = tl.optim.AdamW(groups, lr=0.05, fused=False)
    step_with(straight, ps, grads)

    ps2, groups2 = two_groups()
    opt = tl.optim.AdamW(groups2, lr=0.05, fused=False)
    flat_on_cpu(monkeypatch, opt)
    step_with(opt, ps2, grads[:3])
    sd = opt.state_dict()
    assert sorted(sd["state"][0]) == ["exp_avg", "exp_avg_sq", "step"] and sd["state"][0]["step"] == 3
    assert tuple(sd["state"][0]["exp_avg"].shape) == (3, 4)
    saved = {k: [{n: (v.detach().numpy() if hasattr(v, "detach") else v) for n, v in s.items()}
                 for s in sd[k]] if k == "state" else sd[k] for k in sd}
    resumed = tl.optim.AdamW(groups2, lr=0.05, fused=False)
    flat_on_cpu(monkeypatch, resumed)
    resumed.load_state_dict(saved)  # fresh moment arrays: the group is packed again at the next step
    step_with(resumed, ps2, grads[3:])
    for a, b in zip(ps, ps2):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_flat_adamw_falls_back_per_parameter_and_repacks(monkeypatch):
    """A parameter without a gradient keeps its group on the per-parameter path (its step count stays
    behind); a parameter whose data was replaced is packed again. Both still give the array path's numbers."""
    rng = np.random.default_rng(3)
    grads = [[rng.standard_normal(s) for s in ((3, 4), (5,), (1,), (2, 2))] for _ in range(3)]
    grads[1][1] = None
    results = []
    for fused in (True, False):
        ps, groups = two_groups()
        opt = tl.optim.AdamW(groups, lr=0.05, fused=False)
        if fused:
            flat_on_cpu(monkeypatch, opt)
        step_with(opt, ps, grads[:2])
        ps[3].data = ps[3].data.copy()  # e.g. a reload that rebinds .data
        step_with(opt, ps, grads[2:])
        results.append([p.detach().numpy() for p in ps])
        if fused:
            assert opt.state[ps[1]]["step"] == 2 and opt.state[ps[0]]["step"] == 3
            assert ps[3].data.base is opt._flat[1].p
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@given(st.lists(st.integers(1, 9), min_size=1, max_size=5), st.sampled_from([tl.float32, tl.float64]))
def test_flat_buffers_view_every_parameter(sizes, dtype):
    from tensorlite.optim.flat import FlatGroup
    ps = [tl.tensor(np.arange(n, dtype=np.float64) + i, dtype=dtype, requires_grad=True) for i, n in enumerate(sizes)]
    states = [{"exp_avg": tl.zeros(n, dtype=dtype), "exp_avg_sq": tl.ones(n, dtype=dtype)} for n in sizes]
    before = [p.detach().numpy() for p in ps]
    flat = FlatGroup(ps, states)
    assert flat.holds(ps, states) and flat.p.size == sum(sizes)
    for p, b in zip(ps, before):
        np.testing.assert_array_equal(p.detach().numpy(), b)
    np.testing.assert_array_equal(flat.moments[1], 1)
    for p in ps:
        p.grad = tl.full_like(p, 2.0)
    np.testing.assert_array_equal(flat.gather_grads(ps), 2)
    ps[0].data = ps[0].data.copy()
    assert not flat.holds(ps, states)
