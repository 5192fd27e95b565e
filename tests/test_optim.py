"""Optimizers, schedules and clipping against float64 references written from the published equations."""
import math

import numpy as np
import pytest

import tensorlite as tl
from tensorlite.optim import SGD, AdamW, Optimizer, clip_grad_norm_, clip_grad_value_
from tensorlite.optim.lr_scheduler import Constant, LRScheduler, WarmupCosine, warmup_cosine_lr
from test_kernels import NumpyElementwiseKernel  # the kernel's source run on NumPy

SHAPES = [(3, 4), (5,), ()]


def problem(seed=0, shapes=SHAPES):
    """Initial parameters and the coefficients of loss = sum(a * p^2 + b * p), whose gradient 2 a p + b
    depends on p, so every step of an optimizer feeds the next."""
    rng = np.random.default_rng(seed)
    p0 = [rng.normal(size=s) for s in shapes]
    coef = [(rng.uniform(0.5, 2.0, size=s), rng.normal(size=s)) for s in shapes]
    return p0, coef


def make_params(p0, device, dtype=np.float64):
    return [tl.tensor(p.astype(dtype), device=device, requires_grad=True) for p in p0]


def backward(params, coef):
    loss = None
    for p, (a, b) in zip(params, coef):
        a, b = tl.tensor(a, dtype=p.dtype, device=p.device), tl.tensor(b, dtype=p.dtype, device=p.device)
        term = (a * p * p + b * p).sum()
        loss = term if loss is None else loss + term
    loss.backward()


def run(opt, params, coef, steps):
    for _ in range(steps):
        opt.zero_grad()
        backward(params, coef)
        opt.step()


def grad_ref(p, a, b):
    return 2 * a * p + b


def sgd_ref(p0, coef, steps, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    """SGD with momentum as published in the PyTorch docs (the buffer starts at the first gradient)."""
    out = []
    for p, (a, b) in zip(p0, coef):
        p, buf = p.copy(), None
        for _ in range(steps):
            d = grad_ref(p, a, b) + weight_decay * p
            if momentum:
                buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
                d = d + momentum * buf if nesterov else buf
            p = p - lr * d
        out.append(p)
    return out


def adamw_ref(p0, coef, steps, lr, betas, eps, weight_decay):
    """AdamW (Loshchilov & Hutter) in PyTorch's form: decoupled decay, bias-corrected moments."""
    b1, b2 = betas
    out = []
    for p, (a, b) in zip(p0, coef):
        p, m, v = p.copy(), np.zeros_like(p), np.zeros_like(p)
        for t in range(1, steps + 1):
            g = grad_ref(p, a, b)
            p = p * (1 - lr * weight_decay)
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
            p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(p)
    return out


def assert_close(params, expected, tol=1e-12):
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.detach().numpy(), e, rtol=tol, atol=tol)


# ---------------------------------------------------------------- update rules
SGD_CONFIGS = [dict(lr=0.05),
               dict(lr=0.05, weight_decay=0.1),
               dict(lr=0.03, momentum=0.9, weight_decay=0.1),
               dict(lr=0.03, momentum=0.8, dampening=0.3, weight_decay=0.05),
               dict(lr=0.03, momentum=0.9, nesterov=True, weight_decay=0.1)]


@pytest.mark.parametrize("config", SGD_CONFIGS, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_sgd_matches_reference(device, config):
    p0, coef = problem(1)
    params = make_params(p0, device)
    run(SGD(params, **config), params, coef, 25)
    assert_close(params, sgd_ref(p0, coef, 25, **config))


@pytest.mark.parametrize("fused", [None, True, False])
def test_adamw_matches_reference(device, fused):
    p0, coef = problem(2)
    params = make_params(p0, device)
    config = dict(lr=0.02, betas=(0.85, 0.99), eps=1e-6, weight_decay=0.1)
    run(AdamW(params, fused=fused, **config), params, coef, 25)
    assert_close(params, adamw_ref(p0, coef, 25, **config))


def test_adamw_defaults_are_pytorchs(device):
    p0, coef = problem(3)
    params = make_params(p0, device)
    opt = AdamW(params)
    assert opt.defaults == dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                             maximize=False)
    run(opt, params, coef, 20)
    assert_close(params, adamw_ref(p0, coef, 20, 1e-3, (0.9, 0.999), 1e-8, 1e-2))


def test_param_groups_have_their_own_options(device):
    p0, coef = problem(4)
    params = make_params(p0, device)
    opt = AdamW([{"params": params[:2], "weight_decay": 0.2},
                 {"params": params[2:], "weight_decay": 0.0, "lr": 0.05}], lr=0.01)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.2, 0.0]
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.05]
    run(opt, params, coef, 20)
    expected = (adamw_ref(p0[:2], coef[:2], 20, 0.01, (0.9, 0.999), 1e-8, 0.2)
                + adamw_ref(p0[2:], coef[2:], 20, 0.05, (0.9, 0.999), 1e-8, 0.0))
    assert_close(params, expected)


def test_sgd_param_groups(device):
    p0, coef = problem(5)
    params = make_params(p0, device)
    opt = SGD([{"params": params[:1], "weight_decay": 0.1}, {"params": params[1:]}], lr=0.04, momentum=0.9)
    run(opt, params, coef, 20)
    expected = (sgd_ref(p0[:1], coef[:1], 20, 0.04, 0.9, weight_decay=0.1)
                + sgd_ref(p0[1:], coef[1:], 20, 0.04, 0.9))
    assert_close(params, expected)


def test_params_without_grad_are_skipped(device):
    p0, coef = problem(6)
    params = make_params(p0, device)
    opt = AdamW(params, lr=0.1)
    backward(params[:1], coef[:1])
    opt.step()
    assert params[0] in opt.state and params[1] not in opt.state
    np.testing.assert_array_equal(params[1].detach().numpy(), p0[1])  # no gradient: not even weight decay touches it


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1, nesterov=True),
                                  lambda ps: AdamW(ps, lr=0.1, weight_decay=0.1)], ids=["sgd", "adamw"])
def test_float32_params_stay_float32(device, make):
    p0, coef = problem(7)
    params = make_params(p0, device, np.float32)
    opt = make(params)
    for group in opt.param_groups:
        group["lr"] = np.float64(group["lr"])  # a NumPy float64 hyperparameter must not promote the update
    run(opt, params, coef, 3)
    for p in params:
        assert p.dtype == np.float32 and p.data.dtype == np.float32 and p.grad.dtype == np.float32
        for buf in opt.state[p].values():
            assert not isinstance(buf, tl.Tensor) or buf.dtype == np.float32


class DtypeSpy(np.ndarray):
    """An ndarray that records the dtype of every NumPy operand of every ufunc it takes part in."""
    seen = []

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        plain = lambda x: x.view(np.ndarray) if isinstance(x, DtypeSpy) else x
        for x in inputs + kwargs.get("out", ()):
            if type(x) not in (int, float):  # Python numbers are "weak": they never promote
                DtypeSpy.seen.append(np.asarray(x).dtype)
        if "out" in kwargs:
            kwargs["out"] = tuple(plain(o) for o in kwargs["out"])
        result = getattr(ufunc, method)(*(plain(x) for x in inputs), **kwargs)
        return result.view(DtypeSpy) if isinstance(result, np.ndarray) else result


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.1),
                                  lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1, nesterov=True),
                                  lambda ps: SGD(ps, lr=0.1, weight_decay=0.1, maximize=True),
                                  lambda ps: AdamW(ps, lr=0.1, weight_decay=0.1, fused=False),
                                  lambda ps: AdamW(ps, lr=0.1, weight_decay=0.1, amsgrad=True, maximize=True),
                                  lambda ps: tl.optim.Adam(ps, lr=0.1, weight_decay=0.1, amsgrad=True)],
                         ids=["sgd", "nesterov", "sgd-maximize", "adamw", "adamw-amsgrad", "adam-l2-amsgrad"])
def test_no_float64_arithmetic_on_float32_params(make, monkeypatch):
    """Hyperparameters given as NumPy float64 scalars must not turn the float32 update into float64 math."""
    p0, coef = problem(7)
    params = make_params(p0, "cpu", np.float32)
    opt = make(params)
    for group in opt.param_groups:
        for k, v in group.items():
            if k != "params" and not isinstance(v, bool):
                group[k] = tuple(np.float64(b) for b in v) if isinstance(v, tuple) else np.float64(v)
    original = Optimizer.scratch
    monkeypatch.setattr(Optimizer, "scratch", lambda self, p: original(self, p).view(DtypeSpy))
    for _ in range(3):
        opt.zero_grad()
        backward(params, coef)
        for p in params:
            p.data = p.data.view(DtypeSpy)
            p.grad.data = p.grad.data.view(DtypeSpy)
        DtypeSpy.seen.clear()
        opt.step()
        assert DtypeSpy.seen and set(DtypeSpy.seen) == {np.dtype(np.float32)}
        for p in params:
            p.data = p.data.view(np.ndarray)


def test_float32_adamw_close_to_float64(device):
    p0, coef = problem(8)
    p32, p64 = make_params(p0, device, np.float32), make_params(p0, device)
    run(AdamW(p32, lr=0.01), p32, coef, 10)
    run(AdamW(p64, lr=0.01), p64, coef, 10)
    for a, b in zip(p32, p64):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_step_leaves_grads_alone_and_updates_in_place(device):
    p0, coef = problem(9)
    params = make_params(p0, device)
    arrays = [p.data for p in params]
    opt = SGD(params, lr=0.1, momentum=0.9, weight_decay=0.1)
    backward(params, coef)
    grads = [p.grad.detach().numpy() for p in params]
    opt.step()
    opt.step()
    for p, g, a in zip(params, grads, arrays):
        np.testing.assert_array_equal(p.grad.detach().numpy(), g)
        assert p.data is a  # the very same array: models holding it see the update


def test_step_does_not_synchronize(device, monkeypatch):
    """Nothing in step() or clip_grad_norm_ may pull a value to the host."""
    p0, coef = problem(10)
    params = make_params(p0, device)
    backward(params, coef)
    opts = [AdamW(params), SGD(params, lr=0.1, momentum=0.9, weight_decay=0.1, nesterov=True)]

    def forbidden(*args, **kwargs):
        raise AssertionError("host synchronisation in the optimizer step")
    for name in ("item", "tolist", "numpy", "__float__", "__bool__"):
        monkeypatch.setattr(tl.Tensor, name, forbidden)
    for opt in opts:
        opt.step()
    clip_grad_norm_(params, 0.1)


def test_zero_grad(device):
    p0, coef = problem(11)
    params = make_params(p0, device)
    opt = SGD(params, lr=0.1)
    backward(params, coef)
    grad_arrays = [p.grad.data for p in params]
    opt.zero_grad(set_to_none=False)
    for p, a in zip(params, grad_arrays):
        assert p.grad is not None and p.grad.data is a and not p.grad.detach().numpy().any()
    backward(params, coef)  # accumulates into the zeroed arrays: the same as a fresh gradient
    for p, (a, b), x in zip(params, coef, p0):
        np.testing.assert_allclose(p.grad.detach().numpy(), grad_ref(x, a, b), rtol=1e-12)
    opt.zero_grad()
    assert all(p.grad is None for p in params)


# ---------------------------------------------------------------- state dicts: resume == uninterrupted
@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.1),
                                  lambda ps: AdamW([{"params": ps[:2]}, {"params": ps[2:], "weight_decay": 0}],
                                                   lr=0.05, weight_decay=0.1)], ids=["sgd", "adamw"])
def test_resume_equals_uninterrupted(device, make, tmp_path):
    p0, coef = problem(12)
    straight = make_params(p0, device, np.float32)
    opt = make(straight)
    sched = WarmupCosine(opt, warmup_iters=3, max_iters=15)
    for _ in range(6):
        run(opt, straight, coef, 1)
        sched.step()

    # checkpoint through a file, as a training run would
    tl.save({"params": [p.detach() for p in straight], "optim": opt.state_dict(), "sched": sched.state_dict()},
            tmp_path / "ckpt.tl")
    ckpt = tl.load(tmp_path / "ckpt.tl")
    resumed = make_params([p.detach().numpy() for p in ckpt["params"]], device, np.float32)
    opt2 = make(resumed)
    opt2.load_state_dict(ckpt["optim"])
    sched2 = WarmupCosine(opt2, warmup_iters=3, max_iters=15)
    sched2.load_state_dict(ckpt["sched"])
    assert sched2.get_last_lr() == sched.get_last_lr()
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]

    for o, s, ps in ((opt, sched, straight), (opt2, sched2, resumed)):
        for _ in range(6):
            run(o, ps, coef, 1)
            s.step()
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_state_dict_layout_is_pytorchs():
    p0, coef = problem(13)
    params = make_params(p0, "cpu")
    opt = AdamW([{"params": params[:1]}, {"params": params[1:], "weight_decay": 0.0}])
    backward(params[1:], coef[1:])
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1, 2]]
    assert sd["param_groups"][1]["weight_decay"] == 0.0
    assert sd["state"][0] is None and sd["state"][1]["step"] == 1
    assert set(sd["state"][2]) == {"step", "exp_avg", "exp_avg_sq"}
    # PyTorch-style dict state with integer keys loads too
    opt2 = AdamW([{"params": params[:1]}, {"params": params[1:], "weight_decay": 0.0}])
    opt2.load_state_dict({"param_groups": sd["param_groups"],
                          "state": {i: s for i, s in enumerate(sd["state"]) if s is not None}})
    assert opt2.state[params[2]]["step"] == 1
    np.testing.assert_array_equal(opt2.state[params[2]]["exp_avg"].detach().numpy(), opt.state[params[2]]["exp_avg"].detach().numpy())
    assert opt2.state[params[2]]["exp_avg"].data is not opt.state[params[2]]["exp_avg"].data


def test_load_state_dict_moves_state_to_the_params_device(device):
    p0, coef = problem(14)
    src = make_params(p0, "cpu")
    opt = AdamW(src)
    backward(src, coef)
    opt.step()
    dst = make_params(p0, device, np.float32)
    opt2 = AdamW(dst)
    opt2.load_state_dict(opt.state_dict())
    for p in dst:
        for name in ("exp_avg", "exp_avg_sq"):
            buf = opt2.state[p][name]
            assert buf.device == p.device and buf.dtype == np.float32


def test_load_state_dict_mismatches():
    p0, _ = problem(15)
    params = make_params(p0, "cpu")
    sd = AdamW(params).state_dict()
    with pytest.raises(ValueError, match="param_groups"):
        AdamW(params).load_state_dict({"state": []})
    with pytest.raises(ValueError, match="parameter groups"):
        AdamW([{"params": params[:1]}, {"params": params[1:]}]).load_state_dict(sd)
    with pytest.raises(ValueError, match="3 parameters"):
        AdamW(params[:2]).load_state_dict(sd)
    bad = {"param_groups": sd["param_groups"], "state": [{"step": 1, "exp_avg": np.zeros(2), "exp_avg_sq": np.zeros(2)}]}
    with pytest.raises(ValueError, match="shape"):
        AdamW(params).load_state_dict(bad)


# ---------------------------------------------------------------- bad arguments
def test_bad_optimizer_arguments():
    p = tl.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match="empty"):
        AdamW([])
    with pytest.raises(TypeError, match="single Tensor"):
        AdamW(p)
    with pytest.raises(TypeError, match="int"):
        AdamW([3])
    with pytest.raises(ValueError, match="lr"):
        AdamW([p], lr=-1.0)
    with pytest.raises(ValueError, match="lr"):
        SGD([p], lr=-0.1)
    assert SGD([p]).defaults["lr"] == 1e-3  # PyTorch 2.x: lr is no longer required
    with pytest.raises(ValueError, match="betas"):
        AdamW([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="betas"):
        AdamW([p], betas=(0.9,))
    with pytest.raises(ValueError, match="weight_decay"):
        AdamW([p], weight_decay=-0.1)
    with pytest.raises(ValueError, match="nesterov"):
        SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="more than once"):
        SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        SGD([p * 2], lr=0.1)
    with pytest.raises(TypeError, match="floating-point"):
        SGD([tl.tensor([1, 2])], lr=0.1)
    with pytest.raises(ValueError, match="'params'"):
        SGD([{"lr": 0.1}], lr=0.1)
    with pytest.raises(TypeError, match="dict"):
        SGD([{"params": [p]}, [p]], lr=0.1)
    with pytest.raises(NotImplementedError):
        Optimizer([p], {}).step()


def test_fused_rejects_half_on_cuda(device):
    if device == "cpu":
        pytest.skip("the fused kernel is a CUDA path")
    p = tl.tensor([1.0, 2.0], dtype=tl.float16, device=device, requires_grad=True)
    p.grad = tl.ones(2, dtype=tl.float16, device=device)
    with pytest.raises(TypeError, match="float16"):
        AdamW([p], fused=True).step()


# ---------------------------------------------------------------- clipping
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_numpy(device, norm_type, max_norm):
    rng = np.random.default_rng(int(norm_type * 10) if norm_type != math.inf else 99)
    grads = [rng.normal(size=s) for s in [(4, 3), (7,), ()]]
    params = [tl.zeros(g.shape, dtype=tl.float64, device=device, requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = tl.tensor(g, device=device)
    flat = np.concatenate([g.ravel() for g in grads])
    expected = np.abs(flat).max() if norm_type == math.inf else (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
    extra = tl.zeros(2, dtype=tl.float64, device=device, requires_grad=True)  # no grad: ignored
    total = clip_grad_norm_(params + [extra], max_norm, norm_type)
    assert isinstance(total, tl.Tensor) and total.shape == () and total.device == params[0].device
    np.testing.assert_allclose(total.item(), expected, rtol=1e-12)
    coef = min(1.0, max_norm / (expected + 1e-6))
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad.detach().numpy(), g * coef, rtol=1e-12)
    assert extra.grad is None


def test_clip_grad_norm_float32_and_single_tensor(device):
    g = np.array([3.0, 4.0], np.float32)
    p = tl.zeros(2, device=device, requires_grad=True)
    p.grad = tl.tensor(g, device=device)
    total = clip_grad_norm_(p, 1.0)
    assert total.dtype == np.float32 and p.grad.dtype == np.float32
    np.testing.assert_allclose(total.item(), 5.0, rtol=1e-6)
    np.testing.assert_allclose(p.grad.detach().numpy(), g / (5.0 + 1e-6), rtol=1e-6)


def test_clip_grad_norm_no_grads_and_bad_args():
    p = tl.zeros(2, requires_grad=True)
    assert clip_grad_norm_([p], 1.0).item() == 0.0
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_([p], -1.0)
    with pytest.raises(ValueError, match="norm_type"):
        clip_grad_norm_([p], 1.0, norm_type=0.5)
    with pytest.raises(TypeError, match="list"):
        clip_grad_norm_([[p]], 1.0)


def test_clip_grad_value(device):
    g = np.array([-3.0, 0.2, 5.0])
    p = tl.zeros(3, dtype=tl.float64, device=device, requires_grad=True)
    p.grad = tl.tensor(g, device=device)
    clip_grad_value_([p], 1.0)
    np.testing.assert_array_equal(p.grad.detach().numpy(), np.clip(g, -1.0, 1.0))
    with pytest.raises(ValueError, match="clip_value"):
        clip_grad_value_([p], -1.0)


# ---------------------------------------------------------------- schedules
def test_warmup_cosine_lr_key_points():
    base, lo, w, m = 6e-4, 6e-5, 10, 110
    f = lambda s: warmup_cosine_lr(s, base, w, m, lo)
    assert f(0) == 0.0
    assert math.isclose(f(5), base / 2) and math.isclose(f(1), base / 10)
    assert math.isclose(f(w), base)
    assert math.isclose(f((w + m) // 2), (base + lo) / 2)               # half way down the cosine
    assert math.isclose(f(w + 25), lo + (base - lo) * (1 + math.cos(math.pi / 4)) / 2)
    assert math.isclose(f(m), lo) and f(m + 1) == lo and f(10 * m) == lo
    lrs = [f(s) for s in range(m + 5)]
    assert all(a <= b for a, b in zip(lrs[:w], lrs[1:w + 1]))            # rises during warmup
    assert all(a >= b for a, b in zip(lrs[w:], lrs[w + 1:]))             # falls after it
    assert warmup_cosine_lr(0, 1.0, 0, 10) == 1.0                        # no warmup: starts at base
    with pytest.raises(ValueError, match="warmup_iters"):
        warmup_cosine_lr(0, 1.0, 10, 5)
    with pytest.raises(ValueError, match="step"):
        warmup_cosine_lr(-1, 1.0, 1, 5)


def test_warmup_cosine_scheduler_drives_the_optimizer():
    p = tl.zeros(2, requires_grad=True)
    opt = AdamW([{"params": [p]}, {"params": [tl.zeros(1, requires_grad=True)], "lr": 1e-2}], lr=1e-3)
    sched = WarmupCosine(opt, warmup_iters=4, max_iters=20, min_lr=1e-5)
    seen = []
    for step in range(25):
        seen.append(sched.get_last_lr())
        assert [g["lr"] for g in opt.param_groups] == seen[-1]
        sched.step()
    for step, lrs in enumerate(seen):
        assert lrs == [warmup_cosine_lr(step, b, 4, 20, 1e-5) for b in (1e-3, 1e-2)]
    assert [g["initial_lr"] for g in opt.param_groups] == [1e-3, 1e-2]


def test_constant_schedule():
    opt = SGD([tl.zeros(1, requires_grad=True)], lr=0.3)
    sched = Constant(opt)
    for _ in range(3):
        assert opt.param_groups[0]["lr"] == 0.3
        sched.step()
    opt = SGD([tl.zeros(1, requires_grad=True)], lr=0.3)
    sched = Constant(opt, factor=0.5, total_iters=2)
    lrs = []
    for _ in range(4):
        lrs.append(sched.get_last_lr()[0])
        sched.step()
    assert lrs == [0.15, 0.15, 0.3, 0.3]


def test_scheduler_state_dict_round_trip():
    opt = SGD([tl.zeros(1, requires_grad=True)], lr=1.0)
    sched = WarmupCosine(opt, 2, 10)
    for _ in range(5):
        sched.step()
    sd = sched.state_dict()
    assert "optimizer" not in sd and sd["last_epoch"] == 5
    opt2 = SGD([tl.zeros(1, requires_grad=True)], lr=1.0)
    sched2 = WarmupCosine(opt2, 2, 10)
    sched2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == warmup_cosine_lr(5, 1.0, 2, 10)
    sched.step(), sched2.step()
    assert sched.get_last_lr() == sched2.get_last_lr()


def test_bad_schedule_arguments():
    opt = SGD([tl.zeros(1, requires_grad=True)], lr=1.0)
    with pytest.raises(ValueError, match="max_iters"):
        WarmupCosine(opt, 10, 5)
    with pytest.raises(ValueError, match="warmup_iters"):
        WarmupCosine(opt, -1, 5)
    with pytest.raises(ValueError, match="min_lr"):
        WarmupCosine(opt, 1, 5, min_lr=-1)
    with pytest.raises(ValueError, match="factor"):
        Constant(opt, factor=-2)
    with pytest.raises(ValueError, match="total_iters"):
        Constant(opt, total_iters=1.5)
    with pytest.raises(TypeError, match="Optimizer"):
        Constant([tl.zeros(1)])
    with pytest.raises(KeyError, match="initial_lr"):
        Constant(SGD([tl.zeros(1, requires_grad=True)], lr=1.0), last_epoch=3)
    with pytest.raises(NotImplementedError):
        LRScheduler(opt)


def test_clip_grad_norm_rejects_mixed_devices(device):
    if device == "cpu":
        pytest.skip("needs a second device")
    a, b = tl.zeros(2, requires_grad=True), tl.zeros(2, device=device, requires_grad=True)
    a.grad, b.grad = tl.ones(2), tl.ones(2, device=device)
    with pytest.raises(RuntimeError, match="several devices"):
        clip_grad_norm_([a, b], 1.0)


def test_adamw_trains_a_linear_model(device):
    """End to end: model.parameters() (a generator), decay groups, clipping, schedule, loss goes down."""
    nn = pytest.importorskip("tensorlite.nn")
    tl.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    y = x @ rng.normal(size=(5, 2)).astype(np.float32) + 0.5
    x, y = tl.tensor(x, device=device), tl.tensor(y, device=device)
    model = nn.Linear(5, 2).to(device)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    opt = AdamW([{"params": decay}, {"params": [p for p in model.parameters() if p.ndim < 2], "weight_decay": 0}],
                lr=0.1)
    sched = WarmupCosine(opt, warmup_iters=5, max_iters=150, min_lr=1e-3)
    losses = []
    for _ in range(150):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    assert losses[-1] < 1e-2 * losses[0]
    assert all(p.dtype == np.float32 for p in model.parameters())


# ---------------------------------------------------------------- side by side with PyTorch
SHAPES_T = [(4, 3), (6,), (), (2, 2, 2)]


def torch_pair(make_tl, make_torch, seed, groups=(slice(0, 2), slice(2, 4)), group_opts=({}, {})):
    """The same float32 parameters as tensorlite and torch tensors, split into the same param groups."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    p0 = [rng.normal(size=s).astype(np.float32) for s in SHAPES_T]
    ours = [tl.tensor(p, requires_grad=True) for p in p0]
    theirs = [torch.tensor(p, requires_grad=True) for p in p0]
    opt = make_tl([{"params": ours[g], **o} for g, o in zip(groups, group_opts)])
    ref = make_torch([{"params": theirs[g], **o} for g, o in zip(groups, group_opts)])
    return rng, ours, theirs, opt, ref


def step_both(rng, ours, theirs, opt, ref, steps, tol=(2e-5, 2e-6)):
    """Random gradients (the same for both), one step each, parameters compared after every step."""
    torch = pytest.importorskip("torch")
    for step in range(steps):
        for a, b in zip(ours, theirs):
            g = rng.normal(size=a.shape).astype(np.float32)
            a.grad = tl.tensor(g)
            b.grad = torch.tensor(g)
        opt.step()
        ref.step()
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=tol[0], atol=tol[1],
                                       err_msg=f"step {step + 1}")
            assert a.dtype == np.float32


def compare_state(opt, ref):
    """Our state dict reads like torch's: the same buffer names per parameter index, close values."""
    ours, theirs = opt.state_dict(), ref.state_dict()
    for i, s in theirs["state"].items():
        assert set(ours["state"][i]) == set(s), (i, set(ours["state"][i]), set(s))
        for k, v in s.items():
            got = ours["state"][i][k]
            if k == "step":
                assert got == int(v)
            else:
                np.testing.assert_allclose(got.detach().numpy(), v.detach().numpy(), rtol=1e-4, atol=1e-6)
    for g_ours, g_theirs in zip(ours["param_groups"], theirs["param_groups"]):
        assert g_ours["params"] == g_theirs["params"]
        for k in g_ours:
            assert k in g_theirs, k
            value = g_ours[k]
            assert (list(value) if isinstance(value, tuple) else value) == \
                (list(g_theirs[k]) if isinstance(g_theirs[k], tuple) else g_theirs[k]), k


SGD_TORCH = [dict(lr=0.05), dict(lr=0.05, weight_decay=0.1), dict(lr=0.03, momentum=0.9),
             dict(lr=0.03, momentum=0.8, dampening=0.3, weight_decay=0.05),
             dict(lr=0.03, momentum=0.9, nesterov=True, weight_decay=0.1),
             dict(lr=0.03, momentum=0.9, maximize=True, weight_decay=0.1), dict(lr=0.02, maximize=True)]
ADAM_TORCH = [dict(), dict(lr=0.01, weight_decay=0.1), dict(lr=0.01, amsgrad=True),
              dict(lr=0.01, amsgrad=True, weight_decay=0.05, betas=(0.8, 0.95), eps=1e-6),
              dict(lr=0.01, maximize=True, weight_decay=0.1), dict(lr=0.01, amsgrad=True, maximize=True)]
cfg_id = lambda c: "-".join(f"{k}{v}" for k, v in c.items()) or "defaults"


@pytest.mark.parametrize("config", SGD_TORCH, ids=cfg_id)
def test_sgd_matches_torch(config):
    torch = pytest.importorskip("torch")
    pair = torch_pair(lambda g: SGD(g, **config), lambda g: torch.optim.SGD(g, **config), 20,
                      group_opts=({}, {"lr": 0.01, "weight_decay": 0.02}))
    step_both(*pair, 30)
    compare_state(pair[3], pair[4])


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
@pytest.mark.parametrize("config", ADAM_TORCH, ids=cfg_id)
def test_adam_matches_torch(name, config):
    torch = pytest.importorskip("torch")
    ours, theirs = getattr(tl.optim, name), getattr(torch.optim, name)
    pair = torch_pair(lambda g: ours(g, **config), lambda g: theirs(g, **config), 21,
                      group_opts=({}, {"lr": 0.003, "weight_decay": 0.0, "betas": (0.7, 0.9)}))
    step_both(*pair, 30)
    compare_state(pair[3], pair[4])


def test_adam_decoupled_weight_decay_is_adamw():
    torch = pytest.importorskip("torch")
    config = dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)
    pair = torch_pair(lambda g: tl.optim.Adam(g, **config), lambda g: torch.optim.Adam(g, **config), 22)
    step_both(*pair, 25)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_state_dict_round_trip_mid_run_matches_torch(name, tmp_path):
    """Save at step 12 (through a file), load into a fresh optimizer, go on: still step for step torch's."""
    torch = pytest.importorskip("torch")
    config = dict(lr=0.02, momentum=0.9, nesterov=True) if name == "SGD" else dict(lr=0.02, amsgrad=True)
    rng, ours, theirs, opt, ref = torch_pair(lambda g: getattr(tl.optim, name)(g, **config),
                                             lambda g: getattr(torch.optim, name)(g, **config), 23)
    step_both(rng, ours, theirs, opt, ref, 12)
    tl.save({"optim": opt.state_dict()}, tmp_path / "o.tl")
    fresh = getattr(tl.optim, name)([{"params": ours[:2]}, {"params": ours[2:]}], **config)
    fresh.load_state_dict(tl.load(tmp_path / "o.tl")["optim"])
    step_both(rng, ours, theirs, fresh, ref, 15)
    compare_state(fresh, ref)


def test_zero_grad_default_sets_none_as_torch():
    torch = pytest.importorskip("torch")
    import inspect
    assert inspect.signature(Optimizer.zero_grad).parameters["set_to_none"].default is \
        inspect.signature(torch.optim.Optimizer.zero_grad).parameters["set_to_none"].default is True


def test_amsgrad_keeps_the_largest_second_moment():
    """Torch-free: after a large gradient and then small ones, amsgrad divides by the old, larger v."""
    p = tl.tensor([1.0], dtype=tl.float64, requires_grad=True)
    opt = tl.optim.Adam([p], lr=0.1, betas=(0.0, 0.5), eps=0.0, amsgrad=True)
    for g in (10.0, 1.0):
        p.grad = tl.tensor([g], dtype=tl.float64)
        opt.step()
    v1, v2 = 0.5 * 100.0, 0.25 * 100.0 + 0.5 * 1.0   # v after each step (beta2 = 0.5)
    assert opt.state[p]["max_exp_avg_sq"].item() == max(v1, v2) == v1
    expected = 1.0 - 0.1 * 10.0 / math.sqrt(v1 / 0.5) - 0.1 * 1.0 / math.sqrt(v1 / 0.75)
    assert math.isclose(p.item(), expected, rel_tol=1e-12)


def test_adam_l2_weight_decay_goes_into_the_gradient():
    """Torch-free: Adam's weight decay is g + wd p (then normalised), AdamW's shrinks p directly."""
    p = tl.tensor([2.0], dtype=tl.float64, requires_grad=True)
    q = tl.tensor([2.0], dtype=tl.float64, requires_grad=True)
    adam, adamw = tl.optim.Adam([p], lr=0.1, weight_decay=0.5), tl.optim.AdamW([q], lr=0.1, weight_decay=0.5)
    p.grad, q.grad = tl.tensor([0.0], dtype=tl.float64), tl.tensor([0.0], dtype=tl.float64)
    adam.step(), adamw.step()
    assert math.isclose(p.item(), 2.0 - 0.1 * 1.0 / (1.0 + 1e-8), rel_tol=1e-12)  # m/sqrt(v) = sign(g + wd p)
    assert math.isclose(q.item(), 2.0 * (1 - 0.1 * 0.5), rel_tol=1e-12)          # zero gradient: no Adam step
    np.testing.assert_array_equal(p.grad.detach().numpy(), [0.0])                          # the gradient itself untouched


def test_step_between_forward_and_backward_raises_like_torch():
    """Version counters: backward after an optimizer step uses the changed weight, so it must raise."""
    for make in (lambda ps: SGD(ps, lr=0.1), lambda ps: tl.optim.Adam(ps), lambda ps: AdamW(ps, amsgrad=True)):
        w = tl.tensor([1.0, 2.0], requires_grad=True)
        w.grad = tl.ones(2)
        loss = (w * w).sum()
        make([w]).step()
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            loss.backward()


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_torch_state_dict_loads_and_continues(name):
    """torch's state dict (tensors as arrays, step a 0-d tensor) loads mid-run; both go on step for step."""
    torch = pytest.importorskip("torch")
    config = dict(lr=0.02, momentum=0.9) if name == "SGD" else dict(lr=0.02, amsgrad=True, weight_decay=0.1)
    rng, ours, theirs, opt, ref = torch_pair(lambda g: getattr(tl.optim, name)(g, **config),
                                             lambda g: getattr(torch.optim, name)(g, **config), 24)
    step_both(rng, ours, theirs, opt, ref, 10)
    sd = ref.state_dict()
    sd = {"param_groups": sd["param_groups"],
          "state": {i: {k: v.detach().numpy() for k, v in s.items()} for i, s in sd["state"].items()}}
    fresh = getattr(tl.optim, name)([{"params": ours[:2]}, {"params": ours[2:]}], **config)
    fresh.load_state_dict(sd)
    assert all(isinstance(s.get("step", 0), int) for s in fresh.state.values())
    step_both(rng, ours, theirs, fresh, ref, 15)


def test_repr_is_torchs_layout():
    torch = pytest.importorskip("torch")
    ours = repr(AdamW([{"params": [tl.zeros(1, requires_grad=True)]},
                       {"params": [tl.zeros(1, requires_grad=True)], "lr": 0.1}]))
    theirs = repr(torch.optim.AdamW([{"params": [torch.zeros(1, requires_grad=True)]},
                                     {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.1}]))
    # the same lines, less the options tensorlite does not have (foreach, fused, capturable, ...)
    assert [line for line in theirs.splitlines() if line in ours.splitlines()] == ours.splitlines()


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_adam_options_per_group_match_torch(name):
    """amsgrad, maximize and weight decay set per parameter group, each group following its own."""
    torch = pytest.importorskip("torch")
    opts = ({"amsgrad": True, "weight_decay": 0.2}, {"maximize": True, "lr": 0.004, "eps": 1e-5})
    pair = torch_pair(lambda g: getattr(tl.optim, name)(g, lr=0.01), lambda g: getattr(torch.optim, name)(g, lr=0.01),
                      25, group_opts=opts)
    step_both(*pair, 30)
    compare_state(pair[3], pair[4])


@pytest.mark.parametrize("config", [dict(weight_decay=0.1), dict(weight_decay=0.1, maximize=True),
                                    dict(maximize=True), dict(weight_decay=0.1, amsgrad=True)], ids=cfg_id)
@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_fused_kernel_path_equals_the_array_path(monkeypatch, name, config):
    """The CUDA kernel's path for Adam's L2 decay and maximize (the gradient prepared first), run through
    the kernel's own source on NumPy, gives the array path's numbers exactly (float64)."""
    import tensorlite.kernels.adamw as kernels_adamw
    import tensorlite.kernels.rows as kernels_rows
    import tensorlite.optim.adamw as optim_adamw

    class FakeCupy:
        ElementwiseKernel = NumpyElementwiseKernel
    monkeypatch.setattr(kernels_rows, "_built", {})
    monkeypatch.setattr(optim_adamw, "adamw_kernel", lambda xp: kernels_adamw.adamw_kernel(FakeCupy))
    rng = np.random.default_rng(1)
    p0, grads = rng.standard_normal((3, 5)), [rng.standard_normal((3, 5)) for _ in range(5)]
    results = []
    for fused in (True, False):
        p = tl.tensor(p0, dtype=tl.float64, requires_grad=True)
        opt = getattr(tl.optim, name)([p], lr=0.05, betas=(0.8, 0.95), eps=1e-6, fused=False, **config)
        if fused:
            monkeypatch.setattr(opt, "_use_fused", lambda p: True)
        for g in grads:
            p.grad = tl.tensor(g, dtype=tl.float64)
            opt.step()
        results.append([p.detach().numpy()] + [b.detach().numpy() for k, b in sorted(opt.state[p].items()) if k != "step"])
        np.testing.assert_array_equal(p.grad.detach().numpy(), grads[-1])  # the gradient itself untouched
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
