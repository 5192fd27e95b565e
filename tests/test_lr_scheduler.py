"""PyTorch's learning-rate schedules: stepped beside torch's (optional oracle) and checked by formula.

Every schedule's step() uses PyTorch's recursive formulas, so the learning rates are compared exactly
(the same float operations in the same order), after construction and after every step.
"""
import math
import warnings

import numpy as np
import pytest

import tensorlite as tl
from tensorlite.optim import SGD, Adam, AdamW
from tensorlite.optim import lr_scheduler as ours

LRS = (0.1, 0.02)  # two parameter groups with their own lr


def make_opt(lib, kind="sgd"):
    """An optimizer with two parameter groups, from tensorlite (lib=tl) or torch."""
    if lib is tl:
        params = [tl.zeros(3, requires_grad=True), tl.zeros(2, requires_grad=True)]
        optim = tl.optim
    else:
        params = [lib.zeros(3, requires_grad=True), lib.zeros(2, requires_grad=True)]
        optim = lib.optim
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, LRS)]
    if kind == "sgd":
        return optim.SGD(groups, momentum=0.9)
    return getattr(optim, kind)(groups, betas=(0.9, 0.99))


def snapshot(opt):
    """What a schedule may change in each group: lr, and the momentum or beta1 (OneCycleLR)."""
    return [(g["lr"], g.get("momentum"), tuple(g["betas"]) if "betas" in g else None) for g in opt.param_groups]


def optimizer_step(opt, lib):
    for g in opt.param_groups:
        for p in g["params"]:
            p.grad = lib.zeros(p.shape)
    opt.step()


SCHEDULES = {
    "LambdaLR": lambda m, o: m.LambdaLR(o, lambda e: 0.95 ** e),
    "LambdaLR-per-group": lambda m, o: m.LambdaLR(o, [lambda e: 1 / (e + 1), lambda e: 0.5 + (e % 3)]),
    "MultiplicativeLR": lambda m, o: m.MultiplicativeLR(o, lambda e: 0.9 if e % 2 else 0.97),
    "StepLR": lambda m, o: m.StepLR(o, 7, gamma=0.5),
    "StepLR-default-gamma": lambda m, o: m.StepLR(o, step_size=3),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, [5, 12, 12, 20], gamma=0.3),
    "ConstantLR": lambda m, o: m.ConstantLR(o),
    "ConstantLR-args": lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=4),
    "LinearLR": lambda m, o: m.LinearLR(o),
    "LinearLR-args": lambda m, o: m.LinearLR(o, start_factor=0.1, end_factor=0.9, total_iters=10),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.9),
    "PolynomialLR": lambda m, o: m.PolynomialLR(o, total_iters=20, power=2.0),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=10, eta_min=0.001),
    "CosineAnnealingLR-odd": lambda m, o: m.CosineAnnealingLR(o, 7),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=[0.5, 0.1], total_steps=40),
    "OneCycleLR-linear": lambda m, o: m.OneCycleLR(o, max_lr=0.3, total_steps=36, anneal_strategy="linear",
                                                   pct_start=0.25),
    "OneCycleLR-three-phase": lambda m, o: m.OneCycleLR(o, max_lr=0.3, epochs=4, steps_per_epoch=9,
                                                        three_phase=True, div_factor=10.0),
    "OneCycleLR-no-momentum": lambda m, o: m.OneCycleLR(o, max_lr=0.2, total_steps=35, cycle_momentum=False),
    "SequentialLR": lambda m, o: m.SequentialLR(o, [m.LinearLR(o, start_factor=0.1, total_iters=5),
                                                   m.CosineAnnealingLR(o, T_max=20)], milestones=[5]),
    "SequentialLR-three": lambda m, o: m.SequentialLR(o, [m.ConstantLR(o, factor=0.5, total_iters=3),
                                                         m.ExponentialLR(o, gamma=0.8),
                                                         m.StepLR(o, step_size=4, gamma=0.5)], milestones=[6, 15]),
    "SequentialLR-lambda": lambda m, o: m.SequentialLR(o, [m.LambdaLR(o, lambda e: (e + 1) / 4),
                                                          m.MultiStepLR(o, [3, 8])], milestones=[4]),
    "ChainedScheduler": lambda m, o: m.ChainedScheduler([m.ConstantLR(o, factor=0.1, total_iters=3),
                                                        m.ExponentialLR(o, gamma=0.9)]),
    "ChainedScheduler-optimizer": lambda m, o: m.ChainedScheduler([m.StepLR(o, 4, 0.5), m.LinearLR(o)], optimizer=o),
}
KINDS = {"OneCycleLR": ["sgd", "Adam", "AdamW"], "OneCycleLR-three-phase": ["sgd", "Adam"]}
CASES = [(name, kind) for name in SCHEDULES for kind in KINDS.get(name, ["sgd"])]
STEPS = 34


def run_beside_torch(make, kind, steps, check_state_at=None, tmp_path=None):
    torch = pytest.importorskip("torch")
    opt, ref_opt = make_opt(tl, kind), make_opt(torch, kind)
    sched, ref = make(ours, opt), make(torch.optim.lr_scheduler, ref_opt)
    assert snapshot(opt) == snapshot(ref_opt) and sched.get_last_lr() == ref.get_last_lr()
    for step in range(1, steps + 1):
        optimizer_step(opt, tl)
        optimizer_step(ref_opt, torch)
        sched.step()
        ref.step()
        assert sched.get_last_lr() == ref.get_last_lr(), f"step {step}"
        assert snapshot(opt) == snapshot(ref_opt), f"step {step}"
        assert getattr(sched, "last_epoch", None) == getattr(ref, "last_epoch", None)  # ChainedScheduler: none
        if step == check_state_at:  # resume through a file into a fresh optimizer and schedule
            tl.save({"optim": opt.state_dict(), "sched": sched.state_dict()}, tmp_path / "ckpt.tl")
            ckpt = tl.load(tmp_path / "ckpt.tl")
            opt = make_opt(tl, kind)
            sched = make(ours, opt)
            opt.load_state_dict(ckpt["optim"])
            sched.load_state_dict(ckpt["sched"])
            assert sched.get_last_lr() == ref.get_last_lr() and snapshot(opt) == snapshot(ref_opt)


@pytest.mark.parametrize("name,kind", CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_schedule_matches_torch(name, kind):
    run_beside_torch(SCHEDULES[name], kind, SCHEDULE_TOTAL.get(name, STEPS))


SCHEDULE_TOTAL = {"OneCycleLR": 40, "OneCycleLR-linear": 36, "OneCycleLR-three-phase": 36,
                  "OneCycleLR-no-momentum": 35}


@pytest.mark.parametrize("name", [n for n in SCHEDULES if n != "OneCycleLR-three-phase"])
def test_state_dict_round_trip_mid_run_matches_torch(name, tmp_path):
    steps = SCHEDULE_TOTAL.get(name, STEPS)
    run_beside_torch(SCHEDULES[name], "Adam" if name.startswith("OneCycleLR") else "sgd", steps,
                     check_state_at=15, tmp_path=tmp_path)


def test_one_cycle_raises_past_total_steps_like_torch():
    torch = pytest.importorskip("torch")
    for lib, m in ((tl, ours), (torch, torch.optim.lr_scheduler)):
        opt = make_opt(lib)
        sched = m.OneCycleLR(opt, max_lr=0.1, total_steps=3)
        for _ in range(3):
            optimizer_step(opt, lib)
            sched.step()
        with pytest.raises(ValueError, match="Tried to step 4 times"):
            sched.step()


@pytest.mark.parametrize("args", [dict(), dict(mode="max", factor=0.5, patience=2, threshold_mode="abs",
                                               threshold=0.05, cooldown=2, min_lr=[0.01, 0.005]),
                                  dict(patience=0, threshold=0.1, min_lr=0.015, eps=1e-3)], ids=["default", "max",
                                                                                                 "eps"])
def test_reduce_on_plateau_matches_torch(args):
    torch = pytest.importorskip("torch")
    opt, ref_opt = make_opt(tl), make_opt(torch)
    sched = ours.ReduceLROnPlateau(opt, **args)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(ref_opt, **args)
    rng = np.random.default_rng(0)
    metrics = list(np.cumsum(rng.normal(0.0, 1.0, 60)))
    for step, metric in enumerate(metrics):
        sched.step(metric)
        ref.step(metric)
        assert sched.get_last_lr() == ref.get_last_lr(), f"step {step}"
        assert (sched.best, sched.num_bad_epochs, sched.cooldown_counter, sched.last_epoch) == \
            (ref.best, ref.num_bad_epochs, ref.cooldown_counter, ref.last_epoch)
    assert sched.get_last_lr() != list(LRS)  # the lr did come down somewhere


def test_deprecated_step_with_an_epoch_uses_the_closed_form_like_torch():
    torch = pytest.importorskip("torch")
    for make in (SCHEDULES["StepLR"], SCHEDULES["CosineAnnealingLR"], SCHEDULES["LinearLR-args"],
                 SCHEDULES["MultiStepLR"], SCHEDULES["LambdaLR"]):
        opt, ref_opt = make_opt(tl), make_opt(torch)
        sched, ref = make(ours, opt), make(torch.optim.lr_scheduler, ref_opt)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for epoch in (3, 14, 7, 21):
                optimizer_step(ref_opt, torch)
                sched.step(epoch)
                ref.step(epoch)
                assert sched.get_last_lr() == ref.get_last_lr() and sched.last_epoch == epoch


def test_bad_arguments_raise_torchs_error_types():
    torch = pytest.importorskip("torch")
    bad = [lambda m, o: m.ConstantLR(o, factor=1.5), lambda m, o: m.LinearLR(o, start_factor=0),
           lambda m, o: m.LinearLR(o, end_factor=2), lambda m, o: m.LambdaLR(o, [lambda e: 1.0]),
           lambda m, o: m.OneCycleLR(o, max_lr=0.1), lambda m, o: m.OneCycleLR(o, max_lr=0.1, total_steps=0),
           lambda m, o: m.OneCycleLR(o, max_lr=0.1, total_steps=5, pct_start=1),
           lambda m, o: m.OneCycleLR(o, max_lr=0.1, total_steps=5, anneal_strategy="exp"),
           lambda m, o: m.OneCycleLR(o, max_lr=[0.1], total_steps=5),
           lambda m, o: m.SequentialLR(o, [m.StepLR(o, 2)], milestones=[3]),
           lambda m, o: m.SequentialLR(o, [], milestones=[]),
           lambda m, o: m.ChainedScheduler([m.ReduceLROnPlateau(o)]),
           lambda m, o: m.ReduceLROnPlateau(o, factor=1.0), lambda m, o: m.ReduceLROnPlateau(o, mode="up"),
           lambda m, o: m.StepLR([1, 2], 3), lambda m, o: m.StepLR(o, 2, last_epoch=4)]
    for i, make in enumerate(bad):
        with pytest.raises(Exception) as theirs:
            make(torch.optim.lr_scheduler, make_opt(torch))
        with pytest.raises(theirs.type):
            make(ours, make_opt(tl))


def test_one_cycle_momentum_needs_momentum_or_betas():
    class NoMomentum(tl.optim.Optimizer):
        pass
    opt = NoMomentum([tl.zeros(1, requires_grad=True)], {"lr": 0.1})
    with pytest.raises(ValueError, match="momentum or beta1"):
        ours.OneCycleLR(opt, max_lr=0.1, total_steps=10)
    ours.OneCycleLR(opt, max_lr=0.1, total_steps=10, cycle_momentum=False)


# ---------------------------------------------------------------- torch-free: the formulas
def lrs_of(make, steps, kind="sgd"):
    opt = make_opt(tl, kind)
    sched = make(ours, opt)
    seen = [sched.get_last_lr()]
    for _ in range(steps):
        sched.step()
        seen.append(sched.get_last_lr())
    return np.array(seen), opt, sched


def test_recursive_forms_equal_the_closed_forms():
    base = np.array(LRS)
    e = np.arange(31)[:, None]
    expected = {
        "StepLR": base * 0.5 ** (e // 7),
        "ExponentialLR": base * 0.9 ** e,
        "MultiStepLR": base * 0.3 ** ((e >= 5) + 2 * (e >= 12) + (e >= 20)),
        "ConstantLR-args": base * np.where(e < 4, 0.5, 1.0),
        "LinearLR-args": base * (0.1 + 0.8 * np.minimum(e, 10) / 10),
        "PolynomialLR": base * (1 - np.minimum(e, 20) / 20) ** 2,
        "CosineAnnealingLR": 0.001 + (base - 0.001) * (1 + np.cos(np.pi * e / 10)) / 2,  # rises again after 10
        "LambdaLR": base * 0.95 ** e,
    }
    for name, want in expected.items():
        got, _, _ = lrs_of(SCHEDULES[name], 30)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15, err_msg=name)


def test_one_cycle_key_points():
    got, opt, sched = lrs_of(lambda m, o: m.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=20, pct_start=0.25), 19)
    np.testing.assert_allclose(got[0], [1.0 / 25, 0.5 / 25])                    # starts at max_lr / div_factor
    np.testing.assert_allclose(got[4], [1.0, 0.5])                              # peak at pct_start * total - 1
    np.testing.assert_allclose(got[-1], [1.0 / 25 / 1e4, 0.5 / 25 / 1e4])       # ends at initial / final_div
    assert np.all(np.diff(got[:5, 0]) > 0) and np.all(np.diff(got[4:, 0]) < 0)
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.95)               # momentum back at its top
    got, opt, _ = lrs_of(lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=20, pct_start=0.25), 4, kind="Adam")
    assert opt.param_groups[0]["betas"] == pytest.approx((0.85, 0.99))          # beta1 at its bottom at the peak
    got, _, _ = lrs_of(lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=21, three_phase=True, div_factor=10.0,
                                                 anneal_strategy="linear", pct_start=0.25), 20)
    # phases end at steps 0.25 * 21 - 1 = 4.25 (up to max_lr), 2 * 5.25 - 2 = 8.5 (back down) and 20
    np.testing.assert_allclose(got[[0, 4, 8, 20], 0], [0.1, 0.1 + 0.9 * 4 / 4.25,
                                                       1.0 - 0.9 * (8 - 4.25) / (8.5 - 4.25), 0.1 / 1e4], rtol=1e-12)


def test_sequential_restarts_each_schedule_at_its_milestone():
    got, _, sched = lrs_of(lambda m, o: m.SequentialLR(o, [m.ConstantLR(o, factor=0.5, total_iters=10),
                                                          m.ExponentialLR(o, gamma=0.5)], milestones=[3]), 6)
    np.testing.assert_allclose(got[:, 0], [0.05, 0.05, 0.05, 0.1, 0.05, 0.025, 0.0125])
    assert sched.last_epoch == 6


def test_chained_multiplies_the_changes():
    got, _, _ = lrs_of(SCHEDULES["ChainedScheduler"], 5)
    np.testing.assert_allclose(got[:, 0], 0.1 * 0.9 ** np.arange(6) * np.where(np.arange(6) < 3, 0.1, 1.0))


def test_reduce_on_plateau_formula():
    opt = make_opt(tl)
    sched = ours.ReduceLROnPlateau(opt, factor=0.5, patience=1, min_lr=0.03)
    for metric in (1.0, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6):
        sched.step(metric)
    # the lr halves after two steps without improvement, never below min_lr (and the 0.02 group is already below)
    assert sched.get_last_lr() == [0.03, 0.02]


def test_warmup_cosine_and_constant_still_work_with_the_protocol():
    opt = make_opt(tl)
    sched = ours.WarmupCosine(opt, warmup_iters=2, max_iters=10, min_lr=0.001)
    assert sched.get_last_lr() == [0.0, 0.0]
    with pytest.warns(UserWarning, match="deprecated"):
        sched.step(5)  # the deprecated epoch argument: the closed form
    assert sched.get_last_lr()[0] == ours.warmup_cosine_lr(5, 0.1, 2, 10, 0.001)
    assert isinstance(sched, ours.LRScheduler)


def test_schedules_work_with_adam_and_adamw():
    for cls in (Adam, AdamW, SGD):
        opt = cls([tl.zeros(1, requires_grad=True)], lr=0.1)
        sched = ours.CosineAnnealingLR(opt, 4)
        for _ in range(4):
            sched.step()
        assert math.isclose(opt.param_groups[0]["lr"], 0.0, abs_tol=1e-15)


@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "CosineAnnealingLR", "OneCycleLR", "SequentialLR",
                                  "LinearLR-args", "LambdaLR"])
def test_torch_state_dict_loads_and_continues(name):
    """A torch scheduler's state dict (same attribute names) loads into ours mid-run; both go on alike."""
    torch = pytest.importorskip("torch")
    make = SCHEDULES[name]
    ref_opt = make_opt(torch)
    ref = make(torch.optim.lr_scheduler, ref_opt)
    for _ in range(12):
        optimizer_step(ref_opt, torch)
        ref.step()
    opt = make_opt(tl)
    sched = make(ours, opt)
    for group, theirs in zip(opt.param_groups, ref_opt.param_groups):  # what loading the optimizer does
        group.update({k: v for k, v in theirs.items() if k != "params" and k in group})
    sched.load_state_dict(ref.state_dict())
    for step in range(SCHEDULE_TOTAL.get(name, STEPS) - 12):
        optimizer_step(ref_opt, torch)
        sched.step()
        ref.step()
        assert sched.get_last_lr() == ref.get_last_lr() and snapshot(opt) == snapshot(ref_opt), f"step {step}"
