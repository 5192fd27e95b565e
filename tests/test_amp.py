"""Mixed precision (tensorlite/amp.py, train/precision.py): autocast's dtype rules, gradients into float32
weights, GradScaler against PyTorch's, TF32 flags, and --dtype float16 training with exact resume.

NumPy has float16, so all of it runs on the CPU (slowly): the same code path as on CUDA."""
import json
import warnings

import numpy as np
import pytest

import tensorlite as tl
import tensorlite.nn.functional as F
from models.gpt import GPT, GPTConfig
from train import gpt as train_gpt
from train.checkpoint import load_checkpoint
from train.cli import cli_main
from train.errors import TrainingDiverged
from train.precision import MAX_SKIPPED_IN_A_ROW, Precision

F16, F32 = tl.float16, tl.float32


def randn(*shape, requires_grad=False):
    return tl.randn(*shape, requires_grad=requires_grad)


# ---------------------------------------------------------------- autocast
def test_autocast_lowers_products_and_keeps_statistics_in_float32():
    x, w, b = randn(4, 6), randn(5, 6), randn(5)
    with tl.autocast("cpu", dtype=F16):
        y = F.linear(x, w, b)
        assert y.dtype == F16 and (x @ w.T).dtype == F16 and tl.matmul(x, w.T).dtype == F16
        q = randn(2, 3, 4)
        assert F.scaled_dot_product_attention(q, q, q, is_causal=True).dtype == F16
        assert F.self_attention(randn(2, 3, 12), n_head=2).dtype == F16
        assert F.layer_norm(y, (5,)).dtype == F32
        assert F.softmax(y, dim=-1).dtype == F32 and F.log_softmax(y, dim=-1).dtype == F32
        assert F.cross_entropy(y, tl.tensor([0, 1, 2, 3])).dtype == F32
        assert F.mse_loss(y, y.detach()).dtype == F32
        assert (x[:, :5] + y).dtype == F32  # a float32 residual plus a float16 branch stays float32
        assert F.relu(y).dtype == F16  # the rest runs in the dtype it is given
    assert F.linear(x, w, b).dtype == F32  # outside: unchanged


def test_autocast_matches_pytorchs_dtype_rules():
    """tensorlite follows PyTorch's CUDA lists on both devices; PyTorch's CPU autocast (the one this test can
    run) agrees except that it keeps layer_norm and softmax in float16, so those two are checked above only."""
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle (pip install torch)")
    x, w = np.random.default_rng(0).standard_normal((2, 4, 6)).astype(np.float32), np.ones((6, 6), np.float32)
    ours, theirs = {}, {}
    for mod, out, dt in ((tl, ours, tl.float16), (torch, theirs, torch.float16)):
        a, m = mod.tensor(x), mod.tensor(w)
        f = F if mod is tl else torch.nn.functional
        with mod.autocast("cpu", dtype=dt):
            h = f.linear(a, m)
            out["linear"], out["matmul"] = h.dtype, (a @ m).dtype
            out["sdpa"] = f.scaled_dot_product_attention(a, a, a).dtype
            out["add"] = (a + h).dtype
            out["loss"] = f.cross_entropy(h.reshape(8, 6), mod.tensor([0, 1, 2, 3, 4, 5, 0, 1])).dtype
    assert {k: str(v).split(".")[-1] for k, v in ours.items()} == {k: str(v).split(".")[-1] for k, v in theirs.items()}


def test_autocast_nests_decorates_and_leaves_other_devices_alone():
    x, w = randn(3, 4), randn(2, 4)
    with tl.autocast("cpu"):
        assert tl.is_autocast_enabled("cpu") and not tl.is_autocast_enabled("cuda")
        with tl.autocast("cpu", enabled=False):
            assert F.linear(x, w).dtype == F32 and not tl.is_autocast_enabled()
        assert F.linear(x, w).dtype == F16
    with tl.autocast("cuda"):  # CPU tensors are not touched by a CUDA region
        assert F.linear(x, w).dtype == F32

    @tl.autocast("cpu")
    def forward(a):
        return F.linear(a, w)
    assert forward(x).dtype == F16 and not tl.is_autocast_enabled()


def test_autocast_refuses_what_it_cannot_do():
    with pytest.raises(RuntimeError, match="unsupported autocast device_type 'mps'"):
        tl.autocast("mps")
    with pytest.warns(UserWarning, match="not supported"):
        region = tl.autocast("cpu", dtype=tl.float64)
    with region:
        assert not tl.is_autocast_enabled()
    assert not hasattr(tl, "bfloat16")  # NumPy has none: see tensorlite/amp.py


def tiny_gpt():
    tl.manual_seed(0)
    return GPT(GPTConfig(vocab_size=11, block_size=8, n_embd=16, n_layer=2, n_head=2, dropout=0.0))


def grads_of(model, x, y, autocast):
    model.zero_grad(set_to_none=True)
    with tl.autocast("cpu", enabled=autocast):
        _, loss = model(x, y)
    (loss * 1024).backward()  # scaled, as GradScaler would: float16 gradients of ~1e-5 would be subnormal
    return loss.item(), {n: p.grad.numpy() / 1024 for n, p in model.named_parameters()}


def test_float16_gradients_reach_the_float32_weights_close_to_float32_training():
    model = tiny_gpt()
    x, y = tl.randint(0, 11, (4, 8)), tl.randint(0, 11, (4, 8))
    loss32, g32 = grads_of(model, x, y, autocast=False)
    loss16, g16 = grads_of(model, x, y, autocast=True)
    assert abs(loss16 - loss32) < 1e-2 * loss32
    for name, g in g32.items():
        assert g16[name].dtype == np.float32, name  # the master weights get float32 gradients
        assert np.linalg.norm(g16[name] - g) <= 3e-2 * np.linalg.norm(g) + 1e-6, name


# ---------------------------------------------------------------- GradScaler
def scaled_steps(mod, scaler, inf_at, steps=8):
    """SGD on one parameter with gradient 1 (inf at the steps in inf_at); the scale and weight after each."""
    p = mod.tensor([1.0, 2.0], requires_grad=True)
    opt = mod.optim.SGD([p], lr=0.1)
    out = []
    for step in range(steps):
        opt.zero_grad()
        scaler.scale((p * (float("inf") if step in inf_at else 1.0)).sum()).backward()
        scaler.step(opt)
        scaler.update()
        out.append((scaler.get_scale(), p.detach().numpy().tolist()))
    return out


def test_the_scaler_skips_overflowing_steps_and_adapts_the_scale_as_pytorchs():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle (pip install torch)")
    kw = dict(init_scale=2.0 ** 10, growth_interval=3)
    ours = tl.amp.GradScaler("cpu", **kw)
    assert scaled_steps(tl, ours, {1, 2}) == scaled_steps(torch, torch.amp.GradScaler("cpu", **kw), {1, 2})
    assert ours.skipped_steps == 2


def test_the_scaler_without_pytorch():
    scaler = tl.amp.GradScaler("cpu", init_scale=8.0, growth_interval=2)
    history = scaled_steps(tl, scaler, {0})
    assert [s for s, _ in history] == [4.0, 4.0, 8.0, 8.0, 16.0, 16.0, 32.0, 32.0]
    assert history[0][1] == [1.0, 2.0] and history[1][1] == pytest.approx([0.9, 1.9])  # step 0 skipped
    state = scaler.state_dict()
    again = tl.amp.GradScaler("cpu")
    again.load_state_dict(state)
    assert again.state_dict() == state and again.get_scale() == 32.0


def test_unscale_gives_true_gradients_for_clipping_and_misuse_raises_as_in_pytorch():
    p = tl.tensor([3.0, 4.0], requires_grad=True)
    opt = tl.optim.SGD([p], lr=1.0)
    scaler = tl.amp.GradScaler("cpu", init_scale=4.0)
    scaler.scale((p * p).sum() / 2).backward()
    assert p.grad.tolist() == [12.0, 16.0]
    scaler.unscale_(opt)
    assert p.grad.tolist() == [3.0, 4.0]
    with pytest.raises(RuntimeError, match="already been called"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match="already been called"):
        scaler.step(opt)
    scaler.update()
    with pytest.raises(AssertionError, match="No inf checks"):
        scaler.update()


def test_a_disabled_scaler_passes_through_and_one_for_a_missing_gpu_disables_itself():
    off = tl.amp.GradScaler("cpu", enabled=False)
    loss = tl.tensor(2.0)
    assert off.scale(loss) is loss and off.get_scale() == 1.0 and off.state_dict() == {}
    if not tl.cuda.is_available():
        with pytest.warns(UserWarning, match="CUDA is not available"):
            assert not tl.amp.GradScaler().is_enabled()


# ---------------------------------------------------------------- TF32
def test_tf32_flags_as_in_pytorch():
    try:
        tl.backends.cuda.matmul.allow_tf32 = True
        assert tl.get_float32_matmul_precision() == "high"
        tl.set_float32_matmul_precision("highest")
        assert tl.backends.cuda.matmul.allow_tf32 is False
        with pytest.raises(RuntimeError, match="Invalid precision"):
            tl.set_float32_matmul_precision("low")
    finally:
        tl.set_float32_matmul_precision("highest")


# ---------------------------------------------------------------- --dtype float16 training
def argv(data, out_dir, *extra):
    return ["--data", data, "--out_dir", str(out_dir), "--device", "cpu", "--preset", "cpu", "--batch_size", "4",
            "--block_size", "8", "--n_embd", "8", "--n_layer", "1", "--n_head", "2", "--max_iters", "8",
            "--eval_interval", "4", "--eval_iters", "2", "--dropout", "0.1", "--sample_tokens", "0", "--no-plot",
            "--dtype", "float16", *extra]


def log(out_dir):
    return [json.loads(line) for line in (out_dir / "log.jsonl").read_text().splitlines()]


def test_float16_training_resumes_exactly_with_its_loss_scale(text_file, tmp_path):
    full, split = {}, {}

    def record(into, stop_at=None):
        def on_step(step, loss):
            into[step] = loss.item()
            if step == stop_at:
                raise KeyboardInterrupt
        return on_step
    train_gpt.main(argv(text_file, tmp_path / "a"), on_step=record(full))
    with pytest.raises(KeyboardInterrupt):
        train_gpt.main(argv(text_file, tmp_path / "b"), on_step=record(split, stop_at=3))
    ckpt = load_checkpoint(str(tmp_path / "b" / "last.ckpt"))
    assert ckpt["amp"]["_growth_tracker"] == 3 and ckpt["model"]["lm_head.weight"].dtype == F32
    train_gpt.main(argv(text_file, tmp_path / "b", "--resume"), on_step=record(split))
    assert split == full and all(np.isfinite(list(full.values())))
    assert [(r["step"], r["val_loss"], r["loss_scale"]) for r in log(tmp_path / "a")] == \
        [(r["step"], r["val_loss"], r["loss_scale"]) for r in log(tmp_path / "b")]


def test_bfloat16_and_unknown_dtypes_are_one_line(text_file, tmp_path, capsys):
    for dtype, words in (("bfloat16", "no bfloat16"), ("int8", "must be one of float32, float16")):
        assert cli_main(train_gpt.main, argv(text_file, tmp_path / dtype, "--dtype", dtype)) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err and err.count("\n") == 1, err


def test_a_damaged_loss_scale_in_a_checkpoint_is_refused(text_file, tmp_path, capsys):
    out = tmp_path / "run"
    train_gpt.main(argv(text_file, out))
    ckpt = load_checkpoint(str(out / "last.ckpt"))
    tl.save({**ckpt, "amp": {**ckpt["amp"], "scale": 0.0}}, str(out / "last.ckpt"))
    assert cli_main(train_gpt.main, argv(text_file, out, "--resume", "--max_iters", "12")) == 2
    err = capsys.readouterr().err
    assert "amp.scale" in err and "Traceback" not in err


def test_steps_with_inf_gradients_are_skipped_reported_and_stop_the_run_when_endless():
    model = tiny_gpt()
    opt = tl.optim.AdamW(model.parameters(), lr=1e-3)
    precision = Precision("float16", "cpu")
    x, y = tl.randint(0, 11, (2, 8)), tl.randint(0, 11, (2, 8))
    before = model.lm_head.weight.detach().numpy().copy()
    with precision.autocast():
        _, loss = model(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the overflow is expected: no NumPy warning reaches the user
        precision.step(model, opt, loss * float("inf"))
    assert precision.skipped_steps == 1 and precision.scaler.get_scale() == 2.0 ** 15
    assert np.array_equal(model.lm_head.weight.detach().numpy(), before)  # the step was skipped
    assert "1 steps skipped" in precision.describe()
    with pytest.raises(TrainingDiverged, match="inf or NaN"):
        for _ in range(MAX_SKIPPED_IN_A_ROW):
            with precision.autocast():
                _, loss = model(x, y)
            precision.step(model, opt, loss * float("nan"))
