"""The fused CUDA kernels on a GPU (marked cuda: conftest skips them without one).

Each kernel path (TENSORLITE_FUSED=1) against its reference run with CuPy and against the unfused path
on the same GPU, forward and backward, on random and odd shapes (rows longer than a block's 256 threads
too), in float32 and float16; then the kernels called directly against their references (the row
statistics they keep); then a GPT's loss and gradients and AdamW's flat update, fused against unfused.
None of this has run yet: no GPU was available when it was written.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings

import tensorlite as tl
import tensorlite.nn.functional as F
from tensorlite.kernels import cross_entropy as K_ce, layer_norm as K_ln, softmax as K_sm
from tensorlite.kernels import bias_act as K_act, dropout as K_drop
from tensorlite.nn.activations import bias_act
from fused_cases import (DTYPES, EPS, LAST, attention_cases, attention_data, attention_reference, bias_act_cases,
                         bias_act_data, close, cross_entropy_cases, cross_entropy_data, cross_entropy_reference,
                         fused, layer_norm_cases, layer_norm_data, layer_norm_function, layer_norm_reference, run)

pytestmark = pytest.mark.cuda
cupy = pytest.importorskip("cupy", reason="CuPy is not installed")
GPU = "cuda"
few = settings(max_examples=15)


def both_paths(monkeypatch, fn, arrays, g, dtype):
    """(kernel path, unfused path) results of run() on the GPU; asserts the kernel path was taken."""
    fused(monkeypatch, True)
    kernel = run(fn, arrays, g, GPU, dtype)
    assert LAST["kernel"] is True, "the kernel path was not taken"
    fused(monkeypatch, False)
    unfused = run(fn, arrays, g, GPU, dtype)
    assert not LAST["kernel"]
    return kernel, unfused


def agree_all(kernel, unfused, reference, dtype):
    (out, grads), (u_out, u_grads), (r_out, r_grads) = kernel, unfused, reference
    close(out, r_out, dtype, "forward: kernel vs reference")
    close(out, u_out, dtype, "forward: kernel vs unfused")
    for i, (a, u, r) in enumerate(zip(grads, u_grads, r_grads)):
        close(a, r, dtype, f"gradient {i}: kernel vs reference")
        close(a, u, dtype, f"gradient {i}: kernel vs unfused")


# ---------------------------------------------------------------- through the Functions
@few
@given(layer_norm_cases())
def test_layer_norm_kernel(monkeypatch, case):
    arrays, g, has_w, has_b = layer_norm_data(case)
    kernel, unfused = both_paths(monkeypatch, layer_norm_function(case, has_w, has_b), arrays, g, case["dtype"])
    agree_all(kernel, unfused, layer_norm_reference(cupy, case, arrays, g, has_w, has_b), case["dtype"])


@few
@given(attention_cases())
def test_causal_softmax_kernel(monkeypatch, case):
    arrays, g = attention_data(case)
    scale = 1 / math.sqrt(case["hs"])
    fn = (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=case["causal"], scale=scale))
    kernel, unfused = both_paths(monkeypatch, fn, arrays, g, case["dtype"])
    agree_all(kernel, unfused, attention_reference(cupy, case, arrays, g), case["dtype"])


@pytest.mark.parametrize("dtype", DTYPES)
def test_self_attention_kernel_with_dropout(monkeypatch, dtype):
    """Packed q | k | v, T = 300 (rows longer than a block), the same dropout mask on both paths."""
    rng = np.random.default_rng(0)
    qkv, g = rng.uniform(-1, 1, (2, 300, 24)), rng.uniform(-1, 1, (2, 300, 8))
    results = []
    for on in (True, False):
        fused(monkeypatch, on)
        tl.manual_seed(5)
        results.append(run(lambda t: F.self_attention(t, 2, dropout_p=0.2), [qkv], g, GPU, dtype))
    (out, (grad,)), (u_out, (u_grad,)) = results
    close(out, u_out, dtype)
    close(grad, u_grad, dtype)


@few
@given(cross_entropy_cases())
def test_cross_entropy_kernel(monkeypatch, case):
    (logits,), targets = cross_entropy_data(case)
    g = np.random.default_rng(case["seed"] + 1).uniform(0.5, 2, case["n"] if case["reduction"] == "none" else ())
    t = tl.tensor(targets, device=GPU)
    fn = (lambda x: F.cross_entropy(x, t, reduction=case["reduction"]))
    (out, (grad,)), (u_out, (u_grad,)) = both_paths(monkeypatch, fn, [logits], g, case["dtype"])
    r_out, r_grad = cross_entropy_reference(cupy, case, logits, targets, g)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(r_out))
    for a, b in ((out, r_out), (out, u_out)):
        close(np.nan_to_num(a), np.nan_to_num(b), case["dtype"])
    close(grad, r_grad, case["dtype"])
    close(grad, u_grad, case["dtype"])


@few
@given(bias_act_cases())
def test_bias_act_kernel(monkeypatch, case):
    (x, b), g = bias_act_data(case)
    dtype, kind = case["dtype"], case["kind"]
    kernel, unfused = both_paths(monkeypatch, lambda x, b: bias_act(x, b, kind), [x, b], g, dtype)
    xc, bc, gc = (cupy.asarray(a.astype(dtype)) for a in (x, b, g))
    r_dx, r_db = K_act.bias_act_backward_reference(cupy, gc, xc, bc, kind)
    reference = (cupy.asnumpy(K_act.bias_act_reference(cupy, xc, bc, kind)), [cupy.asnumpy(r_dx), cupy.asnumpy(r_db)])
    agree_all(kernel, unfused, reference, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_kernel_is_the_array_path_bit_for_bit(monkeypatch, dtype, p):
    rng = np.random.default_rng(1)
    x, g = rng.uniform(-2, 2, (7, 385)), rng.uniform(-1, 1, (7, 385))
    results = []
    for on in (True, False):
        fused(monkeypatch, on)
        tl.manual_seed(9)
        y, (dx,) = run(lambda t: F.dropout(t, p), [x], g, GPU, dtype)
        assert LAST["kernel"] is on
        results.append((y, dx, tl.rand(4, device=GPU).numpy()))  # the stream after the draw is the same too
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    xc = cupy.asarray(x.astype(dtype))
    u = cupy.random.random_sample(x.shape, dtype=np.float32).astype(dtype)
    for a, b in zip(K_drop.dropout_forward(cupy, xc, u, p), K_drop.dropout_reference(cupy, xc, u, p)):
        np.testing.assert_array_equal(cupy.asnumpy(a), cupy.asnumpy(b))


# ---------------------------------------------------------------- the kernels called directly
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows, d", [(1, 1), (3, 3), (5, 385), (2, 4096), (1000, 64)])
def test_layer_norm_kernel_statistics(dtype, rows, d):
    rng = np.random.default_rng(d)
    x, r, g = (cupy.asarray(rng.uniform(-2, 2, (rows, d)).astype(dtype)) for _ in range(3))
    w, b = (cupy.asarray(rng.uniform(0.5, 1.5, d).astype(dtype)) for _ in range(2))
    for res in (None, r):
        out = K_ln.layer_norm_forward(cupy, x, res, w, b, EPS)
        ref = K_ln.layer_norm_reference(cupy, x, res, w, b, EPS)
        for name, a, e in zip(("y", "s", "mean", "rstd"), out, ref):
            assert a.dtype == e.dtype, name
            close(a, e, dtype if name in ("y", "s") else np.float32, name)
        grads = K_ln.layer_norm_backward(cupy, g, out[1], out[2], out[3], w)
        ref_grads = K_ln.layer_norm_backward_reference(cupy, g, ref[1], ref[2], ref[3], w)
        for name, a, e in zip(("dx", "dw", "db"), grads, ref_grads):
            assert a.dtype == e.dtype == dtype, name
            close(a, e, dtype, name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 3, 3), (1, 300, 300), (4, 7, 530), (2, 530, 7)])
@pytest.mark.parametrize("causal", [True, False])
def test_causal_softmax_kernel_directly(dtype, shape, causal):
    rng = np.random.default_rng(shape[-1])
    s = cupy.asarray(rng.uniform(-5, 5, shape).astype(dtype))
    p = K_sm.causal_softmax(cupy, s.copy(), 0.3, causal)
    ref = K_sm.causal_softmax_reference(cupy, s, 0.3, causal)
    close(p, ref, dtype, "P")
    dp = cupy.asarray(rng.uniform(-1, 1, shape).astype(dtype))
    mask = cupy.asarray((rng.random(shape) > 0.3).astype(dtype) * dtype(1 / 0.7))
    for m in (None, mask):
        ds = K_sm.causal_softmax_backward(cupy, dp.copy(), p, m, 0.3)
        close(ds, K_sm.causal_softmax_backward_reference(cupy, dp, p, m, 0.3), dtype, "dS")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, c", [(1, 1), (3, 3), (5, 385), (64, 50304)])
def test_cross_entropy_kernel_directly(dtype, n, c):
    rng = np.random.default_rng(c)
    x = cupy.asarray(rng.uniform(-6, 6, (n, c)).astype(dtype))
    t = cupy.asarray(rng.integers(0, c, n))
    valid = cupy.asarray(rng.random(n) > 0.2)
    loss, lse = K_ce.cross_entropy_forward(cupy, x, t, valid)
    r_loss, r_lse = K_ce.cross_entropy_reference(cupy, x, t, valid)
    close(loss, r_loss, np.float32, "loss")
    close(lse, r_lse, np.float32, "lse")
    scale = cupy.asarray(rng.uniform(0, 1, n).astype(np.float32))
    close(K_ce.cross_entropy_backward(cupy, x, lse, t, scale),
          K_ce.cross_entropy_backward_reference(cupy, x, r_lse, t, scale), dtype, "gradient")


# ---------------------------------------------------------------- a model and the optimizer
@pytest.mark.parametrize("norm, activation", [("post", "relu"), ("pre", "gelu")])
def test_gpt_step_fused_is_unfused(monkeypatch, norm, activation):
    from models.gpt import GPT, GPTConfig
    config = GPTConfig(vocab_size=67, block_size=33, n_embd=48, n_layer=2, n_head=3, dropout=0.1, norm=norm,
                       activation=activation)
    idx = np.random.default_rng(2).integers(0, 67, (3, 33))
    results = []
    for on in (True, False):
        fused(monkeypatch, on)
        tl.manual_seed(0)
        model = GPT(config).to(GPU)
        tl.manual_seed(1)
        _, loss = model(tl.tensor(idx, device=GPU), tl.tensor(np.roll(idx, -1, 1), device=GPU))
        loss.backward()
        results.append([loss.item()] + [p.grad.numpy() for p in model.parameters()])
    for a, b in zip(*results):
        close(a, b, np.float32)


@pytest.mark.parametrize("dtype", [tl.float32, tl.float64])
def test_flat_adamw_on_the_gpu(dtype):
    """Two groups, one launch each on flat buffers (fused=True), against the per-parameter array path."""
    rng = np.random.default_rng(3)
    shapes = [(30, 17), (17,), (1,), (5, 5, 5)]
    start = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(5)]
    results = []
    for fused_opt in (True, False):
        ps = [tl.tensor(a, dtype=dtype, device=GPU, requires_grad=True) for a in start]
        opt = tl.optim.AdamW([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.01, "weight_decay": 0.0}], lr=0.05,
                             fused=fused_opt)
        for gs in grads:
            for p, g in zip(ps, gs):
                p.grad = tl.tensor(g, dtype=dtype, device=GPU)
            opt.step()
        assert len(getattr(opt, "_flat", {})) == (2 if fused_opt else 0)
        results.append([p.detach().numpy() for p in ps]
                       + [opt.state[p][k].numpy() for p in ps for k in ("exp_avg", "exp_avg_sq")])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-6 if dtype == tl.float32 else 1e-12, atol=1e-7)
