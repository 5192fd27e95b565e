"""tensorlite.nn.functional: every fused function against finite differences, against the same
computation composed from primitives (tensorlite.nn.reference: forward and gradients), and against plain NumPy."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tensorlite as tl
import tensorlite.nn.functional as F
from tensorlite.nn import reference as R
from strategies import agree, array, leaf, seeds, shape_and_dim, shapes


def np_log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


# ---------------------------------------------------------------- softmax / log_softmax
@given(shape_and_dim(max_dims=3, max_side=4), seeds)
def test_softmax(device, sd, seed):
    shape, dim = sd
    x = array(seed, shape)
    out = agree(lambda t: F.softmax(t, dim), lambda t: R.softmax(t, dim), [x], device)
    np.testing.assert_allclose(out.detach().numpy(), np.exp(np_log_softmax(x, dim)), rtol=1e-10)
    assert tl.gradcheck(lambda t: F.softmax(t, dim), leaf(x, device))


@given(shape_and_dim(max_dims=3, max_side=4), seeds)
def test_log_softmax(device, sd, seed):
    shape, dim = sd
    x = array(seed, shape)
    out = agree(lambda t: F.log_softmax(t, dim), lambda t: R.log_softmax(t, dim), [x], device)
    np.testing.assert_allclose(out.detach().numpy(), np_log_softmax(x, dim), rtol=1e-10, atol=1e-12)
    assert tl.gradcheck(lambda t: F.log_softmax(t, dim), leaf(x, device))


def test_tensor_methods_use_the_fused_functions(device):
    x = tl.tensor([[1.0, 2.0, 3.0]], device=device)
    np.testing.assert_allclose(x.softmax(-1).detach().numpy(), F.softmax(x, -1).detach().numpy())
    np.testing.assert_allclose(x.log_softmax(1).detach().numpy(), F.log_softmax(x, 1).detach().numpy())


@pytest.mark.parametrize("dtype", [tl.float32, tl.float64])
def test_softmax_family_is_finite_for_huge_logits(device, dtype):
    x64 = np.array([[1e4, -1e4, 0.0, 1e4 - 1], [-1e4, -1e4, -1e4, -1e4 + 2]])
    x = tl.tensor(x64, dtype=dtype, device=device, requires_grad=True)
    ls = F.log_softmax(x, -1)
    sm = F.softmax(x, -1)
    loss = F.cross_entropy(x, tl.tensor([1, 3], device=device))
    for t in (ls, sm, loss):
        assert np.isfinite(t.detach().numpy()).all()
    np.testing.assert_allclose(ls.detach().numpy(), np_log_softmax(x64, -1), rtol=1e-6)
    np.testing.assert_allclose(sm.detach().numpy(), np.exp(np_log_softmax(x64, -1)), rtol=1e-6, atol=1e-30)
    expected = -(np_log_softmax(x64, -1)[0, 1] + np_log_softmax(x64, -1)[1, 3]) / 2
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-6)
    (ls.sum() + sm.sum() + loss).backward()
    assert np.isfinite(x.grad.detach().numpy()).all()


def test_softmax_bad_dim():
    with pytest.raises(IndexError, match=r"softmax\(\): dimension 2 is out of range"):
        F.softmax(tl.ones(2, 3), 2)
    with pytest.raises(TypeError, match="floating-point"):
        F.log_softmax(tl.tensor([1, 2]), 0)


# cross_entropy and the other losses: tests/test_nn_losses.py


# ---------------------------------------------------------------- layer_norm
@st.composite
def ln_case(draw):
    shape = draw(shapes(1, 3, 1, 4))
    k = draw(st.integers(1, len(shape)))
    if np.prod(shape[len(shape) - k:]) == 1:  # one element normalizes to 0: the gradient is degenerate
        shape = shape[:len(shape) - k] + (2,) + shape[len(shape) - k + 1:]
    return shape, k, draw(st.booleans()), draw(st.booleans()), draw(seeds)


@given(ln_case())
def test_layer_norm(device, case):
    shape, k, has_w, has_b, seed = case
    norm = shape[len(shape) - k:]
    arrays = [array(seed, shape)] + ([array(seed + 1, norm)] if has_w else []) + ([array(seed + 2, norm)] if has_b else [])

    def split(args):
        x, rest = args[0], list(args[1:])
        w = rest.pop(0) if has_w else None
        b = rest.pop(0) if has_b else None
        return x, w, b

    fused = lambda *a: F.layer_norm(split(a)[0], norm, *split(a)[1:])
    out = agree(fused, lambda *a: R.layer_norm(split(a)[0], norm, *split(a)[1:]), arrays, device)
    x = arrays[0]
    axes = tuple(range(len(shape) - k, len(shape)))
    ref = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + 1e-5)
    if has_w:
        ref = ref * arrays[1]
    if has_b:
        ref = ref + arrays[-1]
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-9, atol=1e-12)
    assert tl.gradcheck(fused, *[leaf(a, device) for a in arrays])


def test_layer_norm_errors():
    x = tl.randn(2, 3, 4)
    with pytest.raises(RuntimeError, match=r"normalized_shape \(3,\) does not match .* \(2, 3, 4\)"):
        F.layer_norm(x, 3)
    with pytest.raises(RuntimeError, match="does not match"):
        F.layer_norm(x, (2, 3, 4, 1))
    with pytest.raises(RuntimeError, match=r"weight has shape \(3,\)"):
        F.layer_norm(x, 4, weight=tl.ones(3))
    with pytest.raises(RuntimeError, match="one dtype"):
        F.layer_norm(x, 4, weight=tl.ones(4, dtype=tl.float64))


# ---------------------------------------------------------------- embedding
@given(st.integers(1, 6), st.integers(1, 3), shapes(0, 2, 1, 4), seeds)
def test_embedding(device, vocab, dim, idx_shape, seed):
    w = array(seed, (vocab, dim))
    idx = np.random.default_rng(seed).integers(0, vocab, idx_shape)  # duplicates are likely: they must add up
    t = tl.tensor(idx, device=device)
    out = agree(lambda a: F.embedding(t, a), lambda a: R.embedding(t, a), [w], device)
    np.testing.assert_allclose(out.detach().numpy(), w[idx])
    assert tl.gradcheck(lambda a: F.embedding(t, a), leaf(w, device))


@pytest.mark.parametrize("one_hot", [True, False])  # the one-hot product, or the sorted sums
@pytest.mark.parametrize("vocab", [1, 5, 128, 129, 1000])  # both sides of the reduceat / add.at switch
def test_embedding_backward_large_and_small_tables(device, vocab, one_hot, monkeypatch):
    from tensorlite.nn.fused import embedding
    if not one_hot:
        monkeypatch.setattr(embedding, "ONE_HOT_ELEMENTS", 0)
    rng = np.random.default_rng(vocab)
    w = rng.standard_normal((vocab, 3))
    idx = rng.integers(0, vocab, (4, 50))
    idx[0, :10] = vocab - 1  # a row hit many times
    t = tl.tensor(idx, device=device)
    agree(lambda a: F.embedding(t, a), lambda a: R.embedding(t, a), [w], device)
    g = rng.standard_normal((200, 3))
    expected = np.zeros((vocab, 3))
    np.add.at(expected, idx.reshape(-1), g)
    np.testing.assert_allclose(F.scatter_add_rows(idx.reshape(-1), g, vocab), expected, rtol=1e-12, atol=1e-12)


def test_embedding_float32_gradient_dtype(device):
    w = tl.randn(200, 4, device=device, requires_grad=True)
    F.embedding(tl.tensor([[1, 2, 1]], device=device), w).sum().backward()
    assert w.grad.dtype == tl.float32
    np.testing.assert_allclose(w.grad.detach().numpy()[1], 2 * np.ones(4))
    assert (w.grad.detach().numpy()[3:] == 0).all()


def test_embedding_errors():
    w = tl.randn(10, 3)
    with pytest.raises(IndexError, match="index 10 is out of range for an embedding table of size 10"):
        F.embedding(tl.tensor([[1, 10]]), w)
    with pytest.raises(IndexError, match="index -1 is out of range .* size 10"):
        F.embedding(tl.tensor([-1, 2]), w)
    with pytest.raises(RuntimeError, match="integer"):
        F.embedding(tl.tensor([1.0, 2.0]), w)
    with pytest.raises(ValueError, match="2-D"):
        F.embedding(tl.tensor([1]), tl.randn(10))


# ---------------------------------------------------------------- dropout
def test_dropout_gradcheck_with_a_fixed_mask(device):
    def fn(x):
        tl.manual_seed(123)  # the same mask at every evaluation
        return F.dropout(x, 0.4)
    assert tl.gradcheck(fn, leaf(array(0, (4, 5)), device))


def test_dropout_matches_composed_with_the_same_mask(device):
    def seeded(fn):
        def run(x):
            tl.manual_seed(11)  # one draw of x's shape in both: the same mask
            return fn(x, 0.4)
        return run
    agree(seeded(F.dropout), seeded(R.dropout), [array(1, (3, 6))], device)


def test_dropout_backward_uses_the_forward_mask(device):
    x = tl.ones(50, 40, dtype=tl.float64, device=device, requires_grad=True)
    y = F.dropout(x, 0.3)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), y.detach().numpy())  # x = 1, so y is the scaled mask itself
    assert set(np.unique(y.detach().numpy()).round(12)) <= {0.0, round(1 / 0.7, 12)}


def test_dropout_keeps_the_expected_value(device):
    x = tl.ones(200_000, device=device)
    for p in (0.1, 0.5, 0.8):
        y = F.dropout(x, p).detach().numpy()
        assert abs(y.mean() - 1) < 0.02
        assert abs((y == 0).mean() - p) < 0.01


def test_dropout_eval_and_p0_are_identity(device):
    x = tl.randn(3, 4, device=device)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x


def test_dropout_is_reproducible(device):
    x = tl.ones(100, device=device)
    tl.manual_seed(7)
    a = F.dropout(x, 0.5).detach().numpy()
    b = F.dropout(x, 0.5).detach().numpy()
    tl.manual_seed(7)
    np.testing.assert_array_equal(F.dropout(x, 0.5).detach().numpy(), a)
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("p", [-0.1, 1.5, "0.5"])
def test_dropout_bad_p(p):
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(tl.ones(3), p)


def test_dropout_p1_drops_everything(device):
    """As in PyTorch: p = 1 gives zeros (and zero gradients), not an error."""
    x = tl.ones(4, 5, device=device, requires_grad=True)
    y = F.dropout(x, 1.0)
    y.sum().backward()
    assert (y.detach().numpy() == 0).all() and (x.grad.detach().numpy() == 0).all()


# ---------------------------------------------------------------- linear
@given(shapes(0, 2, 1, 3), st.integers(1, 4), st.integers(1, 4), st.booleans(), seeds)
def test_linear(device, lead, n_in, n_out, has_bias, seed):
    arrays = [array(seed, lead + (n_in,)), array(seed + 1, (n_out, n_in))] + ([array(seed + 2, (n_out,))] if has_bias else [])
    fused = lambda x, w, *b: F.linear(x, w, *b)
    composed = lambda x, w, *b: R.linear(x, w, *b)
    out = agree(fused, composed, arrays, device)
    ref = arrays[0] @ arrays[1].T + (arrays[2] if has_bias else 0)
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-12)
    assert out.grad_fn is not None and type(out.grad_fn).__name__ == "Linear"  # one node, not matmul + add
    assert tl.gradcheck(fused, *[leaf(a, device) for a in arrays])


def test_linear_errors():
    with pytest.raises(RuntimeError, match=r"input of shape \(2, 3\) does not match weight of shape \(4, 5\)"):
        F.linear(tl.ones(2, 3), tl.ones(4, 5))
    with pytest.raises(RuntimeError, match=r"bias has shape \(5,\), expected \(4,\)"):
        F.linear(tl.ones(2, 3), tl.ones(4, 3), tl.ones(5))
    with pytest.raises(RuntimeError, match="one dtype"):
        F.linear(tl.ones(2, 3), tl.ones(4, 3, dtype=tl.float64))
    with pytest.raises(ValueError, match="2-D"):
        F.linear(tl.ones(2, 3), tl.ones(3))


def test_relu_gelu_reexported(device):
    x = tl.tensor([-1.0, 0.5, 2.0], device=device)
    np.testing.assert_allclose(F.relu(x).detach().numpy(), np.maximum(x.detach().numpy(), 0))
    np.testing.assert_allclose(F.gelu(x).detach().numpy(), x.gelu().detach().numpy())
    np.testing.assert_allclose(F.gelu(x, approximate="tanh").detach().numpy(), x.gelu("tanh").detach().numpy())


# ---------------------------------------------------------------- attention
def np_attention(q, k, v, causal, scale):
    s = q @ np.swapaxes(k, -1, -2) * scale
    if causal:
        s = np.where(np.triu(np.ones(s.shape[-2:], dtype=bool), 1), -np.inf, s)
    return np.exp(np_log_softmax(s, -1)) @ v


@st.composite
def attn_case(draw):
    lead = draw(shapes(0, 2, 1, 2))
    tq = draw(st.integers(1, 4))
    tk = draw(st.integers(1, 4))
    causal = draw(st.booleans())
    if causal:
        tk = tq  # causal attention is self-attention
    hs, hv = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    scale = draw(st.sampled_from([None, 0.7]))
    return lead, tq, tk, hs, hv, causal, scale, draw(seeds)


@given(attn_case())
def test_scaled_dot_product_attention(device, case):
    lead, tq, tk, hs, hv, causal, scale, seed = case
    arrays = [array(seed, lead + (tq, hs)), array(seed + 1, lead + (tk, hs)), array(seed + 2, lead + (tk, hv))]
    fused = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)
    s = 1 / math.sqrt(hs) if scale is None else scale
    out = agree(fused, lambda q, k, v: R.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=s), arrays,
                device)
    np.testing.assert_allclose(out.detach().numpy(), np_attention(*arrays, causal, s), rtol=1e-9, atol=1e-12)
    assert tl.gradcheck(fused, *[leaf(a, device) for a in arrays])


def test_attention_dropout_matches_composed_with_the_same_mask(device):
    arrays = [array(i, (2, 5, 3)) for i in range(3)]

    def fused(q, k, v):
        tl.manual_seed(5)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=0.3, is_causal=True)

    def composed(q, k, v):
        tl.manual_seed(5)  # the same single draw of shape (2, 5, 5) gives the same mask
        return R.scaled_dot_product_attention(q, k, v, None, 0.3, True, scale=1 / math.sqrt(3))

    out = agree(fused, composed, arrays, device)
    no_drop = F.scaled_dot_product_attention(*[tl.tensor(a, device=device) for a in arrays], is_causal=True)
    assert not np.allclose(out.detach().numpy(), no_drop.detach().numpy())
    assert tl.gradcheck(fused, *[leaf(a, device) for a in arrays])


def test_attention_is_causal(device):
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 6, 4)) for _ in range(3))
    base = F.scaled_dot_product_attention(*[tl.tensor(a, device=device) for a in (q, k, v)], is_causal=True).detach().numpy()
    t = 2
    changed = [a.copy() for a in (q, k, v)]
    for a in changed:
        a[:, t + 1:] += rng.standard_normal(a[:, t + 1:].shape) * 10
    out = F.scaled_dot_product_attention(*[tl.tensor(a, device=device) for a in changed], is_causal=True).detach().numpy()
    np.testing.assert_allclose(out[:, :t + 1], base[:, :t + 1], rtol=1e-12)
    assert not np.allclose(out[:, t + 1:], base[:, t + 1:])
    # and no gradient flows from the output at t to keys/values after t
    leaves = [leaf(a, device) for a in (q, k, v)]
    F.scaled_dot_product_attention(*leaves, is_causal=True)[:, t].sum().backward()
    for x in leaves[1:]:
        assert (x.grad.detach().numpy()[:, t + 1:] == 0).all()


def test_attention_errors():
    q = tl.ones(2, 4, 3)
    with pytest.raises(ValueError, match="shape mismatch|broadcast"):
        F.scaled_dot_product_attention(q, tl.ones(3, 4, 3), tl.ones(3, 4, 3))
    with pytest.raises(RuntimeError, match="embedding size"):
        F.scaled_dot_product_attention(q, tl.ones(2, 4, 2), tl.ones(2, 4, 3))
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.scaled_dot_product_attention(q, q, q, dropout_p=1.5)
    with pytest.raises(RuntimeError, match="at least 2 dimensional"):
        F.scaled_dot_product_attention(tl.ones(3), tl.ones(3), tl.ones(3))


def split_heads_attention(qkv, n_head, dropout_p=0.0):
    """self_attention spelled out: split q | k | v and the heads, attend, put the heads side by side."""
    B, T, C3 = qkv.shape
    hs = C3 // (3 * n_head)
    heads = qkv.reshape(B, T, 3, n_head, hs).permute(2, 0, 3, 1, 4)
    y = F.scaled_dot_product_attention(heads[0], heads[1], heads[2], dropout_p=dropout_p, is_causal=True)
    return y.transpose(1, 2).reshape(B, T, C3 // 3)


@given(b=st.integers(1, 2), t=st.integers(1, 4), n_head=st.integers(1, 3), hs=st.integers(1, 3),
       dropout_p=st.sampled_from([0.0, 0.4]), seed=seeds)
def test_self_attention_on_packed_qkv(device, b, t, n_head, hs, dropout_p, seed):
    qkv = array(seed, (b, t, 3 * n_head * hs))

    def seeded(fn):
        def run(x):
            tl.manual_seed(seed)  # one draw of shape (B, n_head, T, T) in both: the same dropout mask
            return fn(x)
        return run

    fused = seeded(lambda x: F.self_attention(x, n_head, dropout_p=dropout_p))
    agree(fused, seeded(lambda x: split_heads_attention(x, n_head, dropout_p)), [qkv], device)
    agree(fused, seeded(lambda x: R.self_attention(x, n_head, dropout_p=dropout_p)), [qkv], device)
    assert tl.gradcheck(fused, leaf(qkv, device))


def test_self_attention_errors():
    with pytest.raises(ValueError, match="divisible by n_head"):
        F.self_attention(tl.ones(2, 3, 12), 3)
    with pytest.raises(ValueError, match=r"\(B, T, 3 \* C\)"):
        F.self_attention(tl.ones(3, 12), 2)


def test_attention_split_over_threads_gives_the_same_result(monkeypatch):
    """Attention splits its batch rows over the CPU cores: any split gives identical numbers."""
    from tensorlite import backend
    from tensorlite.nn.fused import attention
    monkeypatch.setattr(attention, "PARALLEL_SCORES", 1)  # split these small arrays too
    cases = [(lambda x: F.self_attention(x, 2), [array(3, (5, 6, 3 * 2 * 4))]),
             (lambda q, k, v: F.scaled_dot_product_attention(q, k, v), [array(i, (3, 2, 4, 2)) for i in range(3)])]
    for fn, arrays in cases:
        results = []
        for threads in (1, 2, 3):
            monkeypatch.setattr(backend, "host_threads", threads)
            leaves = [leaf(a, "cpu") for a in arrays]
            y = fn(*leaves)
            y.backward(tl.tensor(array(4, y.shape), dtype=tl.float64))
            results.append([y.detach().numpy()] + [x.grad.detach().numpy() for x in leaves])
        for other in results[1:]:
            for a, b in zip(other, results[0]):
                np.testing.assert_array_equal(a, b)
