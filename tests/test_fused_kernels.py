"""The fused kernels' math on the CPU: each kernel's NumPy reference (tensorlite/kernels/*.py, the kernel's own
algorithm and float32 statistics) against the unfused Function and against nn.reference's composition,
forward and backward, on odd sizes, in float32 and float16 (against float64 with float16's tolerance).

The Functions' kernel paths (reshapes, saved arrays, the gradients they return) also run here: the kernels
are swapped for their references, so all but the CUDA code itself is exercised without a GPU.
The CUDA tests that run the kernels are in test_fused_kernels_cuda.py.
"""
import math

import numpy as np
import pytest
from hypothesis import given

import tensorlite as tl
import tensorlite.nn.functional as F
from tensorlite import kernels
from tensorlite.kernels import cross_entropy as K_ce, layer_norm as K_ln, softmax as K_sm
from tensorlite.nn import LayerNorm as LayerNormLayer, reference as R
from tensorlite.nn.fused import attention as fused_attention, loss as fused_loss, norm as fused_norm
from fused_cases import (EPS, attention_cases, attention_data, attention_reference, close, cross_entropy_cases,
                         cross_entropy_data, cross_entropy_reference, layer_norm_cases, layer_norm_data,
                         layer_norm_function, layer_norm_reference, run)


def test_use_fused_is_the_one_decision(monkeypatch):
    x = np.zeros(3, np.float32)
    monkeypatch.delenv("TENSORLITE_FUSED", raising=False)
    assert not kernels.use_fused(x)
    monkeypatch.setenv("TENSORLITE_FUSED", "1")
    assert not kernels.use_fused(x)  # NumPy arrays never take a CUDA kernel
    assert not kernels.use_fused(None)


def kernel_paths(monkeypatch):
    """Make the Functions take their kernel paths on NumPy arrays, with each kernel replaced by its reference."""
    monkeypatch.setattr(kernels, "use_fused", lambda *arrays: all(
        a.dtype in kernels.FUSED_DTYPES for a in arrays if a is not None))
    monkeypatch.setattr(fused_norm, "layer_norm_forward", K_ln.layer_norm_reference)

    def ln_backward(xp, g, s, mean, rstd, w, need_dx, need_dw, need_db):
        dx, dw, db = K_ln.layer_norm_backward_reference(xp, g, s, mean, rstd, w)
        return dx if need_dx else None, dw if need_dw else None, db if need_db else None
    monkeypatch.setattr(fused_norm, "layer_norm_backward", ln_backward)

    def softmax(xp, s, scale, causal):
        s[...] = K_sm.causal_softmax_reference(xp, s, scale, causal)

    def softmax_backward(xp, dp, p, mask, scale):
        dp[...] = K_sm.causal_softmax_backward_reference(xp, dp, p, mask, scale)
    monkeypatch.setattr(fused_attention, "causal_softmax", softmax)
    monkeypatch.setattr(fused_attention, "causal_softmax_backward", softmax_backward)
    monkeypatch.setattr(fused_loss, "cross_entropy_forward", K_ce.cross_entropy_reference)
    monkeypatch.setattr(fused_loss, "cross_entropy_backward", K_ce.cross_entropy_backward_reference)


# ---------------------------------------------------------------- layer norm
def layer_norm_composed(case, arrays, g, has_w, has_b):
    """nn.reference.layer_norm in float64 on s = x + r rounded to the dtype (what the kernel normalizes)."""
    x = arrays[0]
    if case["residual"]:
        x = (arrays[0] + arrays[1]).astype(case["dtype"]).astype(np.float64)
    rest = arrays[1 + case["residual"]:]
    w = rest.pop(0) if has_w else None
    b = rest.pop(0) if has_b else None
    comp = [x] + [a for a in (w, b) if a is not None]

    def fn(x, *affine):
        affine = list(affine)
        return R.layer_norm(x, case["d"], affine.pop(0) if has_w else None, affine.pop(0) if has_b else None, EPS)
    out, grads = run(fn, comp, g, "cpu", np.float64)
    return out, grads[:1] * (1 + case["residual"]) + grads[1:]


@given(layer_norm_cases())
def test_layer_norm_reference_is_the_function_and_the_composition(case):
    arrays, g, has_w, has_b = layer_norm_data(case)
    dtype = case["dtype"]
    ref_y, ref_grads = layer_norm_reference(np, case, arrays, g, has_w, has_b)
    y, grads = run(layer_norm_function(case, has_w, has_b), arrays, g, "cpu", dtype)
    comp_y, comp_grads = layer_norm_composed(case, arrays, g, has_w, has_b)
    close(y, ref_y, dtype, "forward: Function vs reference")
    close(ref_y, comp_y, dtype, "forward: reference vs composition")
    for i, (a, r, c) in enumerate(zip(grads, ref_grads, comp_grads)):
        close(a, r, dtype, f"gradient {i}: Function vs reference")
        close(r, c, dtype, f"gradient {i}: reference vs composition")


@given(layer_norm_cases())
def test_layer_norm_kernel_path_on_the_cpu(monkeypatch, case):
    arrays, g, has_w, has_b = layer_norm_data(case)
    fn = layer_norm_function(case, has_w, has_b)
    y, grads = run(fn, arrays, g, "cpu", case["dtype"])
    kernel_paths(monkeypatch)
    ky, kgrads = run(fn, arrays, g, "cpu", case["dtype"])
    monkeypatch.undo()
    close(ky, y, case["dtype"])
    for a, b in zip(kgrads, grads):
        close(a, b, case["dtype"])


@given(layer_norm_cases())
def test_layer_norm_rows_split_over_threads_give_the_same_values(monkeypatch, case):
    """The CPU path splits the rows over the cores from PARALLEL_ELEMENTS on; every row is computed the same
    way, and only the column sums (dw, db) add the parts' sums in another order."""
    arrays, g, has_w, has_b = layer_norm_data(case)
    fn = layer_norm_function(case, has_w, has_b)
    y, grads = run(fn, arrays, g, "cpu", case["dtype"])
    monkeypatch.setattr(tl.backend, "PARALLEL_ELEMENTS", 1)
    monkeypatch.setattr(tl.backend, "host_threads", 3)
    py, pgrads = run(fn, arrays, g, "cpu", case["dtype"])
    np.testing.assert_array_equal(py, y)
    n_dx = 1 + case["residual"]
    for a, b in zip(pgrads[:n_dx], grads[:n_dx]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(pgrads[n_dx:], grads[n_dx:]):
        close(a, b, case["dtype"])


def test_layer_norm_float16_statistics_are_float32():
    """Rows whose sum overflows float16 (385 values near 300: 115500 > 65504) still normalize."""
    x = (300 + np.random.default_rng(0).standard_normal((4, 385))).astype(np.float16)
    t = tl.tensor(x, requires_grad=True)
    y = F.layer_norm(t, 385)
    expected = R.layer_norm(tl.tensor(x.astype(np.float64)), 385)
    assert y.dtype == tl.float16 and np.isfinite(y.detach().numpy()).all()
    close(y.detach().numpy(), expected.numpy(), np.float16)
    y.sum().backward()
    assert np.isfinite(t.grad.numpy()).all()


def test_layer_norm_layer_takes_the_residual():
    rng = np.random.default_rng(1)
    ln = LayerNormLayer(6)
    ln.weight.data[...] = rng.uniform(0.5, 1.5, 6)
    x, r = (tl.tensor(rng.standard_normal((2, 3, 6)), dtype=tl.float32, requires_grad=True) for _ in range(2))
    y = ln(x, r)
    assert type(y.grad_fn).__name__ == "LayerNorm"  # one node for the add and the norm
    expected = ln(x.detach() + r.detach())
    np.testing.assert_allclose(y.detach().numpy(), expected.detach().numpy(), rtol=1e-6, atol=1e-6)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), r.grad.numpy())
    with pytest.raises(RuntimeError, match="residual"):
        ln(x, r[:, :2])
    with pytest.raises(RuntimeError, match="dtype"):
        ln(x, r.to(tl.float64))


# ---------------------------------------------------------------- attention softmax
def attention_function(case):
    scale = 1 / math.sqrt(case["hs"])
    return lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=case["causal"], scale=scale)


def attention_composed(case, arrays, g):
    scale = 1 / math.sqrt(case["hs"])
    return run(lambda q, k, v: R.scaled_dot_product_attention(q, k, v, is_causal=case["causal"], scale=scale),
               arrays, g, "cpu", np.float64)


@given(attention_cases())
def test_causal_softmax_reference_is_the_function_and_the_composition(case):
    arrays, g = attention_data(case)
    dtype = case["dtype"]
    ref_out, ref_grads = attention_reference(np, case, arrays, g)
    out, grads = run(attention_function(case), arrays, g, "cpu", dtype)
    comp_out, comp_grads = attention_composed(case, arrays, g)
    close(out, ref_out, dtype, "forward: Function vs reference")
    close(ref_out, comp_out, dtype, "forward: reference vs composition")
    for name, a, r, c in zip("qkv", grads, ref_grads, comp_grads):
        close(a, r, dtype, f"d{name}: Function vs reference")
        close(r, c, dtype, f"d{name}: reference vs composition")


@given(attention_cases())
def test_attention_kernel_path_on_the_cpu(monkeypatch, case):
    arrays, g = attention_data(case)
    out, grads = run(attention_function(case), arrays, g, "cpu", case["dtype"])
    kernel_paths(monkeypatch)
    kout, kgrads = run(attention_function(case), arrays, g, "cpu", case["dtype"])
    monkeypatch.undo()
    close(kout, out, case["dtype"])
    for a, b in zip(kgrads, grads):
        close(a, b, case["dtype"])


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("causal", [True, False])
def test_attention_scores_far_above_the_diagonal(dtype, causal):
    """The CPU softmax shifts each row by its diagonal score; a score 200 above it overflows exp, and the
    rows are computed again, shifted by their max: the values of the float64 composition."""
    rng = np.random.default_rng(4)
    q, k, v, g = (rng.uniform(-1, 1, (2, 6, 4)) for _ in range(4))
    q[:, :, 0], k[:, 0, 0], k[:, 1:, 0] = 20.0, 20.0, 0.0  # every query scores 200 with key 0, ~1 elsewhere
    case = {"hs": 2, "causal": causal}  # scale 1 / sqrt(2)
    out, grads = run(attention_function(case), [q, k, v], g, "cpu", dtype)
    comp_out, comp_grads = attention_composed(case, [q, k, v], g)
    assert np.isfinite(out).all()
    close(out, comp_out, dtype, "forward")
    for name, a, c in zip("qkv", grads, comp_grads):
        close(a, c, dtype, f"d{name}")


def test_attention_kernel_path_with_dropout_and_packed_heads(monkeypatch):
    """SelfAttention (packed q | k | v) with a dropout mask: the kernel path's backward applies the mask."""
    rng = np.random.default_rng(2)
    qkv, g = rng.uniform(-1, 1, (2, 5, 12)), rng.uniform(-1, 1, (2, 5, 4))
    for dtype in (np.float32, np.float16):
        tl.manual_seed(3)
        out, grads = run(lambda t: F.self_attention(t, 2, dropout_p=0.3), [qkv], g, "cpu", dtype)
        kernel_paths(monkeypatch)
        tl.manual_seed(3)
        kout, kgrads = run(lambda t: F.self_attention(t, 2, dropout_p=0.3), [qkv], g, "cpu", dtype)
        monkeypatch.undo()
        close(kout, out, dtype)
        close(kgrads[0], grads[0], dtype)


def test_attention_float16_matches_float64():
    rng = np.random.default_rng(4)
    q, k, v = (rng.uniform(-3, 3, (2, 40, 8)) for _ in range(3))
    ts = [tl.tensor(a, dtype=tl.float16) for a in (q, k, v)]
    out = F.scaled_dot_product_attention(*ts, is_causal=True)
    expected = R.scaled_dot_product_attention(*(tl.tensor(t.numpy().astype(np.float64)) for t in ts), is_causal=True)
    assert out.dtype == tl.float16
    close(out.numpy(), expected.numpy(), np.float16)


# ---------------------------------------------------------------- cross-entropy
def cross_entropy_run(case, logits, targets, g, device, dtype, composed=False):
    fn = R.cross_entropy if composed else F.cross_entropy
    t = tl.tensor(targets, device=device)
    out, grads = run(lambda x: fn(x, t, reduction=case["reduction"]), logits, g, device, dtype)
    return out, grads[0]


def cross_entropy_g(case):
    n = case["n"]
    return np.random.default_rng(case["seed"] + 1).uniform(0.5, 2, n if case["reduction"] == "none" else ())


@given(cross_entropy_cases())
def test_cross_entropy_reference_is_the_function_and_the_composition(case):
    (logits,), targets = cross_entropy_data(case)
    g, dtype = cross_entropy_g(case), case["dtype"]
    ref_out, ref_grad = cross_entropy_reference(np, case, logits, targets, g)
    out, grad = cross_entropy_run(case, [logits], targets, g, "cpu", dtype)
    if case["reduction"] == "mean" and (targets == -100).all():  # nothing counted: nan, and no gradient
        assert np.isnan(out) and np.isnan(ref_out)
        np.testing.assert_array_equal(grad, 0)
        np.testing.assert_array_equal(ref_grad, 0)
        return
    comp_out, comp_grad = cross_entropy_run(case, [logits], targets, g, "cpu", np.float64, composed=True)
    close(out, ref_out, dtype, "loss: Function vs reference")
    close(ref_out, comp_out, dtype, "loss: reference vs composition")
    close(grad, ref_grad, dtype, "gradient: Function vs reference")
    close(ref_grad, comp_grad, dtype, "gradient: reference vs composition")


@given(cross_entropy_cases())
def test_cross_entropy_kernel_path_on_the_cpu(monkeypatch, case):
    (logits,), targets = cross_entropy_data(case)
    g = cross_entropy_g(case)
    out, grad = cross_entropy_run(case, [logits], targets, g, "cpu", case["dtype"])
    kernel_paths(monkeypatch)
    kout, kgrad = cross_entropy_run(case, [logits], targets, g, "cpu", case["dtype"])
    monkeypatch.undo()
    np.testing.assert_array_equal(np.isnan(kout), np.isnan(out))
    close(np.nan_to_num(kout), np.nan_to_num(out), case["dtype"])
    close(kgrad, grad, case["dtype"])


def test_cross_entropy_kernel_path_is_only_for_plain_targets(monkeypatch):
    """Class weights or label smoothing keep the array path (the kernel has neither)."""
    kernel_paths(monkeypatch)
    x = tl.tensor(np.random.default_rng(5).standard_normal((4, 6)), dtype=tl.float32, requires_grad=True)
    t = tl.tensor([0, 1, 2, 3])
    assert F.cross_entropy(x, t).grad_fn.kernel
    assert not F.cross_entropy(x, t, label_smoothing=0.1).grad_fn.kernel
    assert not F.cross_entropy(x, t, weight=tl.ones(6)).grad_fn.kernel


def test_cross_entropy_float16_matches_float64():
    rng = np.random.default_rng(6)
    logits = rng.uniform(-8, 8, (3000, 65)).astype(np.float16)
    targets = rng.integers(0, 65, 3000)
    x = tl.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(x, tl.tensor(targets))
    expected = R.cross_entropy(tl.tensor(logits.astype(np.float64)), tl.tensor(targets))
    assert loss.dtype == tl.float16
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-3)
    loss.backward()
    assert x.grad.dtype == tl.float16 and np.isfinite(x.grad.numpy()).all()
