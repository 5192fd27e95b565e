"""Cases shared by the fused-kernel tests (test_fused_kernels*.py).

Each case runs one fused Function, or its kernel's NumPy/CuPy reference, on the same data and gives
back the output and the input gradients as float64 NumPy arrays. The CPU tests compare the reference
with the Function's array path and with nn.reference's composition; the CUDA tests compare the kernel
path with the reference on the GPU and with the unfused path. Sizes include the odd ones (D = 1, 3, 385,
T = 1) and the dtypes float32 and float16.
"""
import math

import numpy as np
from hypothesis import strategies as st

import tensorlite as tl
from tensorlite.kernels import bias_act as K_act, cross_entropy as K_ce, layer_norm as K_ln, softmax as K_sm
from tensorlite.nn.fused.norm import LayerNorm

EPS = 1e-5
DTYPES = [np.float32, np.float16]
odd_sizes = st.sampled_from([1, 2, 3, 7, 33, 385]) | st.integers(1, 40)


def tolerance(dtype):
    """(rtol, atol relative to the largest expected value) for comparing results computed in `dtype`."""
    return (2e-2, 1e-2) if np.dtype(dtype) == np.float16 else (2e-4, 2e-5)


def close(actual, expected, dtype, what=""):
    rtol, atol = tolerance(dtype)
    actual, expected = (np.asarray(tl.backend.to_numpy(a), dtype=np.float64) for a in (actual, expected))
    scale = max(1.0, float(np.abs(expected).max())) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, err_msg=what)


def fused(monkeypatch, on):
    """Turn the fused kernels on (TENSORLITE_FUSED=1) or off for the rest of the test."""
    monkeypatch.setenv("TENSORLITE_FUSED", "1" if on else "0")


LAST = {}  # what the last run() saw: "kernel", the output node's choice of the kernel path


def run(fn, arrays, g, device, dtype):
    """fn(*tensors) with tensors of `arrays` in `dtype` on `device`, then backward of sum(out * g):
    (out, [gradient of each array]) as float64 NumPy arrays (None where an input got none)."""
    ts = [tl.tensor(a, dtype=dtype, device=device, requires_grad=True) for a in arrays]
    out = fn(*ts)
    LAST["kernel"] = getattr(out.grad_fn, "kernel", None)  # which path the output's node took
    assert out.dtype == dtype, f"output dtype {out.dtype}, expected {dtype}"
    (out * tl.tensor(g, dtype=out.dtype, device=device)).sum().backward()
    grads = []
    for t in ts:
        assert t.grad is None or t.grad.dtype == dtype
        grads.append(None if t.grad is None else t.grad.numpy().astype(np.float64))
    return out.detach().numpy().astype(np.float64), grads


def as_dtype(rng_arrays, dtype):
    """float64 arrays rounded to `dtype` and back: the values every path starts from."""
    return [a.astype(dtype).astype(np.float64) for a in rng_arrays]


# ---------------------------------------------------------------- layer norm
@st.composite
def layer_norm_cases(draw):
    return dict(seed=draw(st.integers(0, 2**31 - 1)), rows=draw(st.integers(1, 6)), d=draw(odd_sizes),
                dtype=draw(st.sampled_from(DTYPES)), residual=draw(st.booleans()),
                affine=draw(st.sampled_from(["none", "weight", "bias", "both"])))


def layer_norm_data(case):
    rng = np.random.default_rng(case["seed"])
    rows, d = case["rows"], case["d"]
    x, r, g = (rng.uniform(-2, 2, (rows, d)) for _ in range(3))
    w, b = rng.uniform(0.5, 1.5, d), rng.uniform(-1, 1, d)
    has_w, has_b = case["affine"] in ("weight", "both"), case["affine"] in ("bias", "both")
    arrays = as_dtype([x] + ([r] if case["residual"] else []) + ([w] if has_w else []) + ([b] if has_b else []),
                      case["dtype"])
    return arrays, g.astype(case["dtype"]).astype(np.float64), has_w, has_b


def layer_norm_function(case, has_w, has_b):
    """The LayerNorm Function on (x, [r], [w], [b])."""
    return lambda *ts: LayerNorm.apply(*ts, has_residual=case["residual"], k=1, eps=EPS, has_weight=has_w,
                                       has_bias=has_b, w_shape=(case["d"],))


def layer_norm_reference(xp, case, arrays, g, has_w, has_b):
    """The kernels' references on xp: (y, [dx, (dr), (dw), (db)]) in float64 NumPy."""
    dtype = case["dtype"]
    a = [xp.asarray(v.astype(dtype)) for v in arrays]
    x, rest = a[0], a[1:]
    r = rest.pop(0) if case["residual"] else None
    w = rest.pop(0) if has_w else None
    b = rest.pop(0) if has_b else None
    y, s, mean, rstd = K_ln.layer_norm_reference(xp, x, r, w, b, EPS)
    assert y.dtype == dtype and mean.dtype == rstd.dtype == np.float32
    dx, dw, db = K_ln.layer_norm_backward_reference(xp, xp.asarray(g.astype(dtype)), s, mean, rstd, w)
    grads = [dx] + ([dx] if case["residual"] else []) + ([dw] if has_w else []) + ([db] if has_b else [])
    return tl.backend.to_numpy(y).astype(np.float64), [tl.backend.to_numpy(v).astype(np.float64) for v in grads]


# ---------------------------------------------------------------- attention (the softmax kernel inside it)
@st.composite
def attention_cases(draw):
    return dict(seed=draw(st.integers(0, 2**31 - 1)), lead=draw(st.sampled_from([(1,), (2,), (2, 3)])),
                tq=draw(st.sampled_from([1, 2, 5, 33])), hs=draw(st.sampled_from([1, 3, 8])),
                causal=draw(st.booleans()), dtype=draw(st.sampled_from(DTYPES)), cross=draw(st.booleans()))


def attention_data(case):
    """q, k, v and the output gradient; with `cross`, Tk = Tq + 2 (the causal diagonal is top-left)."""
    rng = np.random.default_rng(case["seed"])
    tq = case["tq"]
    tk = tq + 2 if case["cross"] else tq
    lead, hs = case["lead"], case["hs"]
    q, k, v = (rng.uniform(-1.5, 1.5, lead + (n, hs)) for n in (tq, tk, tk))
    return as_dtype([q, k, v], case["dtype"]), rng.uniform(-1, 1, lead + (tq, hs)).astype(case["dtype"]).astype(
        np.float64)


def attention_reference(xp, case, arrays, g, mask=None):
    """Attention with the softmax kernel's references: out = (P M) V; dV = (P M)^T G,
    dS = causal_softmax_backward(G V^T, P, M), dQ = dS K, dK = dS^T Q. Float64 NumPy results."""
    dtype = case["dtype"]
    q, k, v = (xp.asarray(a.astype(dtype)) for a in arrays)
    g = xp.asarray(g.astype(dtype))
    scale = 1 / math.sqrt(case["hs"])
    p = K_sm.causal_softmax_reference(xp, q @ k.swapaxes(-1, -2), scale, case["causal"])
    pm = p if mask is None else p * mask
    out = pm @ v
    ds = K_sm.causal_softmax_backward_reference(xp, g @ v.swapaxes(-1, -2), p, mask, scale)
    grads = [ds @ k, ds.swapaxes(-1, -2) @ q, pm.swapaxes(-1, -2) @ g]
    return tl.backend.to_numpy(out).astype(np.float64), [tl.backend.to_numpy(a).astype(np.float64) for a in grads]


# ---------------------------------------------------------------- cross-entropy
@st.composite
def cross_entropy_cases(draw):
    return dict(seed=draw(st.integers(0, 2**31 - 1)), n=draw(st.integers(1, 12)), c=draw(odd_sizes),
                dtype=draw(st.sampled_from(DTYPES)), reduction=draw(st.sampled_from(["mean", "sum", "none"])),
                ignored=draw(st.sampled_from([0.0, 0.3, 1.0])))


def cross_entropy_data(case):
    rng = np.random.default_rng(case["seed"])
    n, c = case["n"], case["c"]
    logits = rng.uniform(-4, 4, (n, c))
    targets = rng.integers(0, c, n)
    targets[rng.random(n) < case["ignored"]] = -100
    return as_dtype([logits], case["dtype"]), targets


def cross_entropy_reference(xp, case, logits, targets, g):
    """Loss and gradient from the kernels' references, reduced as the Function does (float64 NumPy)."""
    x = xp.asarray(logits.astype(case["dtype"]))
    t = xp.asarray(targets)
    valid = t != -100
    tv = xp.where(valid, t, 0)
    losses, lse = K_ce.cross_entropy_reference(xp, x, tv, valid)
    count = valid.sum().astype(np.float32)
    g = xp.asarray(np.asarray(g, np.float32))
    if case["reduction"] == "none":
        out, scale = losses, g.reshape(-1) * valid
    elif case["reduction"] == "sum":
        out, scale = losses.sum(), valid * g
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            out = losses.sum() / count
        scale = valid * (g / xp.where(count == 0, 1, count))
    grad = K_ce.cross_entropy_backward_reference(xp, x, lse, tv, scale.astype(np.float32))
    return (tl.backend.to_numpy(out.astype(case["dtype"])).astype(np.float64),
            tl.backend.to_numpy(grad).astype(np.float64))


# ---------------------------------------------------------------- bias + activation
@st.composite
def bias_act_cases(draw):
    return dict(seed=draw(st.integers(0, 2**31 - 1)), lead=draw(st.sampled_from([(1,), (3,), (2, 5)])),
                d=draw(odd_sizes), dtype=draw(st.sampled_from(DTYPES)),
                kind=draw(st.sampled_from(sorted(K_act.KINDS))))


def bias_act_data(case):
    rng = np.random.default_rng(case["seed"])
    shape = case["lead"] + (case["d"],)
    x, b = rng.uniform(-3, 3, shape), rng.uniform(-1, 1, case["d"])
    if case["kind"] == "relu":  # keep x + b off the kink at 0 (after rounding to the dtype)
        b = np.round(b, 1) + 0.05
        x = np.round(x, 1)
    return as_dtype([x, b], case["dtype"]), rng.uniform(-1, 1, shape).astype(case["dtype"]).astype(np.float64)
