"""nn's PyTorch-shaped surface: scaled_dot_product_attention's arguments, softmax without dim, one_hot, pad,
normalize, Embedding(padding_idx), init, Module state and pickling, the version-counter flags of the fused
Functions. Values and gradients are checked against PyTorch where it is installed."""
import inspect
import math
import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tensorlite as tl
import tensorlite.nn as nn
import tensorlite.nn.functional as F
from tensorlite.nn import fused, reference as R
from tensorlite.autograd import Function
from strategies import array, leaf, seeds

try:
    import torch
except ImportError:  # PyTorch is an optional oracle
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


# ---------------------------------------------------------------- scaled_dot_product_attention
def test_sdpa_signature_and_defaults_are_torchs():
    params = inspect.signature(F.scaled_dot_product_attention).parameters
    assert list(params)[:3] == ["query", "key", "value"]
    assert {k: v.default for k, v in list(params.items())[3:]} == dict(
        attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False)


@st.composite
def sdpa_case(draw):
    lead = draw(st.sampled_from([(), (2,), (2, 3)]))
    tq, tk = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    e, ev = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    mask_kind = draw(st.sampled_from([None, "bool", "float"]))
    mask_shape = draw(st.sampled_from([(tq, tk), lead + (tq, tk), (1,) * len(lead) + (1, tk)]))
    causal = mask_kind is None and draw(st.booleans())  # PyTorch refuses a mask together with is_causal
    return lead, tq, tk, e, ev, mask_kind, mask_shape, causal, draw(st.sampled_from([None, 0.6])), draw(seeds)


def sdpa_inputs(case):
    lead, tq, tk, e, ev, mask_kind, mask_shape, causal, scale, seed = case
    arrays = [array(seed, lead + (tq, e)), array(seed + 1, lead + (tk, e)), array(seed + 2, lead + (tk, ev))]
    rng = np.random.default_rng(seed)
    mask = None
    if mask_kind == "bool":
        mask = rng.random(mask_shape) < 0.7
    elif mask_kind == "float":
        mask = rng.standard_normal(mask_shape)
    return arrays, mask, causal, scale


@needs_torch
@given(sdpa_case())
def test_sdpa_matches_torch(case):
    """Bool masks (True: may attend, rows with no key give 0), float masks (added), is_causal, scale:
    values and gradients as PyTorch's."""
    arrays, mask, causal, scale = sdpa_inputs(case)
    ours = [tl.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    ya = F.scaled_dot_product_attention(*ours, attn_mask=None if mask is None else tl.tensor(mask),
                                        is_causal=causal, scale=scale)
    yb = torch.nn.functional.scaled_dot_product_attention(*theirs, attn_mask=None if mask is None else
                                                          torch.tensor(mask), is_causal=causal, scale=scale)
    np.testing.assert_allclose(ya.detach().numpy(), yb.detach().numpy(), rtol=1e-9, atol=1e-12)
    g = np.random.default_rng(0).standard_normal(ya.shape)
    ya.backward(tl.tensor(g))
    yb.backward(torch.tensor(g))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.detach().numpy(), b.grad.detach().numpy(), rtol=1e-8, atol=1e-11)


@given(sdpa_case())
def test_sdpa_with_masks_gradcheck_and_reference(device, case):
    arrays, mask, causal, scale = sdpa_inputs(case)
    if mask is not None and mask.dtype == bool:
        mask[..., 0] = True  # the reference (plain softmax) needs a key per row; all-masked rows: test above
    m = None if mask is None else tl.tensor(mask, device=device)
    fn = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=m, is_causal=causal, scale=scale)
    ref = lambda q, k, v: R.scaled_dot_product_attention(q, k, v, attn_mask=m, is_causal=causal, scale=scale)
    a, b = [leaf(x, device) for x in arrays], [leaf(x, device) for x in arrays]
    ya, yb = fn(*a), ref(*b)
    np.testing.assert_allclose(ya.detach().numpy(), yb.detach().numpy(), rtol=1e-9, atol=1e-12)
    assert tl.gradcheck(fn, *[leaf(x, device) for x in arrays])


def test_sdpa_learned_float_mask_gets_a_gradient():
    arrays = [array(i, (2, 3, 2)) for i in range(3)]
    bias = array(5, (3, 3))
    fn = lambda q, k, v, b: F.scaled_dot_product_attention(q, k, v, attn_mask=b)
    assert tl.gradcheck(fn, *[leaf(x, "cpu") for x in arrays + [bias]])


@needs_torch
def test_sdpa_broadcast_and_gqa_match_torch():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 4, 3, 2))
    k, v = rng.standard_normal((2, 2, 5, 2)), rng.standard_normal((2, 2, 5, 3))
    ours = [tl.tensor(a, requires_grad=True) for a in (q, k, v)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    ya = F.scaled_dot_product_attention(*ours, enable_gqa=True, is_causal=True)
    yb = torch.nn.functional.scaled_dot_product_attention(*theirs, enable_gqa=True, is_causal=True)
    np.testing.assert_allclose(ya.detach().numpy(), yb.detach().numpy(), rtol=1e-10)
    ya.sum().backward()
    yb.sum().backward()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.detach().numpy(), b.grad.detach().numpy(), rtol=1e-9, atol=1e-12)
    # one key/value head broadcast over the query heads, without enable_gqa
    k1, v1 = k[:, :1], v[:, :1]
    np.testing.assert_allclose(
        F.scaled_dot_product_attention(tl.tensor(q), tl.tensor(k1), tl.tensor(v1)).detach().numpy(),
        torch.nn.functional.scaled_dot_product_attention(torch.tensor(q), torch.tensor(k1), torch.tensor(v1)).detach().numpy(),
        rtol=1e-10)


def test_sdpa_dropout_applies_whenever_p_is_positive():
    """PyTorch's sdpa has no training flag: dropout_p > 0 drops, 0.0 does not; p = 1 gives zeros."""
    q = tl.randn(2, 4, 3)
    plain = F.scaled_dot_product_attention(q, q, q)
    assert not np.allclose(F.scaled_dot_product_attention(q, q, q, dropout_p=0.5).detach().numpy(), plain.detach().numpy())
    assert (F.scaled_dot_product_attention(q, q, q, dropout_p=1.0).detach().numpy() == 0).all()


def test_sdpa_mask_errors():
    q = tl.randn(2, 3, 4)
    with pytest.raises(RuntimeError, match="attn_mask dtype"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=tl.zeros(3, 3, dtype=tl.int64))
    with pytest.raises(RuntimeError, match="attn_mask dtype"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=tl.zeros(3, 3, dtype=tl.float64))
    with pytest.raises(RuntimeError, match="is_causal"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=tl.tensor(np.ones((3, 3), bool)), is_causal=True)
    with pytest.raises(RuntimeError, match="multiple"):
        F.scaled_dot_product_attention(tl.randn(1, 3, 2, 4), tl.randn(1, 2, 2, 4), tl.randn(1, 2, 2, 4),
                                       enable_gqa=True)


def test_multi_head_attention_drops_only_in_training():
    tl.manual_seed(0)
    mha = nn.MultiHeadAttention(8, 2, dropout=0.5)
    x = tl.randn(2, 5, 8)
    mha.eval()
    a, b = mha(x).detach().numpy(), mha(x).detach().numpy()
    np.testing.assert_array_equal(a, b)
    mha.train()
    assert not np.allclose(mha(x).detach().numpy(), a)


# ---------------------------------------------------------------- softmax without dim, dtype
@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (2, 3, 4), (2, 3, 4, 5)])
@pytest.mark.parametrize("fname", ["softmax", "log_softmax", "softmin"])
def test_softmax_implicit_dim_warns_as_torch(shape, fname):
    torch_ = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal(shape)
    with pytest.warns(UserWarning, match="Implicit dimension choice for " + fname):
        ours = getattr(F, fname)(tl.tensor(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = getattr(torch_.nn.functional, fname)(torch_.tensor(x))
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-12)


def test_softmax_dtype_casts_first():
    x = tl.randn(2, 3)
    for fn in (F.softmax, F.log_softmax):
        y = fn(x, 1, dtype=tl.float64)
        assert y.dtype == tl.float64
        np.testing.assert_allclose(y.detach().numpy(), fn(x.double(), 1).detach().numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.softmax(x, dim=1)  # an explicit dim never warns


# ---------------------------------------------------------------- one_hot, pad, normalize
def test_one_hot():
    t = tl.tensor([[0, 2], [1, 1]])
    out = F.one_hot(t)
    assert out.dtype == tl.int64 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out.detach().numpy(), np.eye(3, dtype=np.int64)[t.detach().numpy()])
    assert F.one_hot(t, 5).shape == (2, 2, 5)
    with pytest.raises(RuntimeError, match="smaller than num_classes"):
        F.one_hot(t, 2)
    with pytest.raises(RuntimeError, match="non-negative"):
        F.one_hot(tl.tensor([-1]))


@given(st.sampled_from([(3,), (2, 3), (2, 3, 2)]),
       st.lists(st.integers(-1, 2), min_size=2, max_size=4).filter(lambda p: len(p) % 2 == 0),
       st.sampled_from([None, 1.5]), seeds)
def test_pad_matches_torch_and_gradchecks(shape, pad, value, seed):
    if len(pad) // 2 > len(shape):
        pad = pad[:2]
    x = array(seed, shape)
    if any(x.shape[len(shape) - 1 - i] + pad[2 * i] + pad[2 * i + 1] <= 0 for i in range(len(pad) // 2)):
        return  # padded to nothing
    assert tl.gradcheck(lambda t: F.pad(t, pad, value=value), leaf(x, "cpu"))
    if torch is not None:
        np.testing.assert_array_equal(F.pad(tl.tensor(x), pad, value=value).detach().numpy(),
                                      torch.nn.functional.pad(torch.tensor(x), pad, value=value).detach().numpy())


@given(st.sampled_from([(3,), (2, 3), (2, 3, 4)]), st.sampled_from([1, 2, 3]), seeds)
def test_normalize(shape, p, seed):
    x = array(seed, shape, 0.5, 2.0) * np.sign(array(seed + 1, shape))
    dim = 0 if len(shape) == 1 else 1
    assert tl.gradcheck(lambda t: F.normalize(t, p, dim), leaf(x, "cpu"))
    if torch is not None:
        np.testing.assert_allclose(F.normalize(tl.tensor(x), p, dim).detach().numpy(),
                                   torch.nn.functional.normalize(torch.tensor(x), p, dim).detach().numpy(), rtol=1e-12)


# ---------------------------------------------------------------- Embedding(padding_idx)
@pytest.mark.parametrize("padding_idx", [0, 3, -1])
def test_embedding_padding_idx(device, padding_idx):
    emb = nn.Embedding(5, 3, padding_idx=padding_idx, device=device)
    row = padding_idx % 5
    assert (emb.weight.detach().numpy()[row] == 0).all()
    idx = tl.tensor([[row, 1, row], [2, row, 4]], device=device)
    emb(idx).sum().backward()
    g = emb.weight.grad.detach().numpy()
    assert (g[row] == 0).all() and (g[1] == 1).all()
    assert repr(emb) == f"Embedding(5, 3, padding_idx={row})"
    with pytest.raises(AssertionError, match="padding_idx"):
        nn.Embedding(5, 3, padding_idx=5)


def test_embedding_from_pretrained():
    table = tl.randn(4, 3)
    emb = nn.Embedding.from_pretrained(table)
    assert not emb.weight.requires_grad
    np.testing.assert_array_equal(emb(tl.tensor([2])).detach().numpy(), table.detach().numpy()[[2]])
    assert nn.Embedding.from_pretrained(table, freeze=False).weight.requires_grad


def test_functional_embedding_padding_idx_matches_reference():
    w = array(0, (6, 2))
    idx = tl.tensor([0, 2, 2, 5])
    a, b = leaf(w, "cpu"), leaf(w, "cpu")
    F.embedding(idx, a, padding_idx=2).sum().backward()
    R.embedding(idx, b, padding_idx=2).sum().backward()
    np.testing.assert_array_equal(a.grad.detach().numpy(), b.grad.detach().numpy())


# ---------------------------------------------------------------- modules: names, state, modes
def test_module_state_and_modes():
    model = nn.Sequential(nn.Linear(3, 4, bias=False), nn.LayerNorm(4, elementwise_affine=True, bias=False),
                          nn.Dropout(0.1))
    assert model.train() is model and model.eval() is model
    keys = list(model.state_dict())
    assert keys == ["0.weight", "1.weight"]
    if torch is not None:
        tm = torch.nn.Sequential(torch.nn.Linear(3, 4, bias=False), torch.nn.LayerNorm(4, bias=False),
                                 torch.nn.Dropout(0.1))
        assert keys == list(tm.state_dict())
        assert [n for n, _ in model.named_parameters()] == [n for n, _ in tm.named_parameters()]
    m64 = model.to(tl.float64)
    assert m64 is model and all(p.dtype == tl.float64 for p in model.parameters())
    out = model(tl.randn(2, 3, dtype=tl.float64))
    out.sum().backward()
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())  # set_to_none=True by default, as in PyTorch


def test_register_buffer_persistent():
    m = nn.Module()
    m.register_buffer("kept", tl.ones(2))
    m.register_buffer("scratch", tl.zeros(2), persistent=False)
    assert list(m.state_dict()) == ["kept"]
    assert {n for n, _ in m.named_buffers()} == {"kept", "scratch"}
    m.register_buffer("scratch", tl.zeros(2), persistent=True)  # registered again: now saved
    assert list(m.state_dict()) == ["kept", "scratch"]


# ---------------------------------------------------------------- pickling a model
def _trained_small():
    tl.manual_seed(0)
    m = nn.Sequential(nn.Embedding(64, 32), nn.LayerNorm(32), nn.Linear(32, 64))
    idx = tl.randint(0, 64, (4, 8))
    F.cross_entropy(m(idx).reshape(32, 64), idx.reshape(32)).backward()
    return m


def test_pickled_model_round_trips_without_grads():
    m = _trained_small()
    assert all(p.grad is not None for p in m.parameters())
    m2 = pickle.loads(pickle.dumps(m))
    for (n1, p1), (n2, p2) in zip(m.named_parameters(), m2.named_parameters()):
        assert n1 == n2 and type(p2) is nn.Parameter and p2.requires_grad and p2.grad is None
        np.testing.assert_array_equal(p1.detach().numpy(), p2.detach().numpy())
        assert p2.dtype == p1.dtype and p2.device == p1.device
    idx = tl.randint(0, 64, (2, 8))
    np.testing.assert_array_equal(m(idx).detach().numpy(), m2(idx).detach().numpy())
    m2(idx).sum().backward()  # still trainable
    assert all(p.grad is not None for p in m2.parameters())


def test_deepcopy_keeps_grads_as_torch():
    import copy
    m = _trained_small()
    m2 = copy.deepcopy(m)
    for p1, p2 in zip(m.parameters(), m2.parameters()):
        assert type(p2) is nn.Parameter and p2 is not p1 and p2.data is not p1.data
        np.testing.assert_array_equal(p2.grad.detach().numpy(), p1.grad.detach().numpy())
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(_non_leaf_parameter(nn.Parameter(tl.ones(2))))


def test_pickle_refuses_a_non_leaf_that_requires_grad():
    p = nn.Parameter(tl.ones(2))
    pickle.dumps(p)  # a leaf: fine
    with pytest.raises(RuntimeError, match="non-leaf"):
        pickle.dumps(_non_leaf_parameter(p))


def _non_leaf_parameter(p):
    y = p * 2
    q = nn.Parameter.wrap(y.data, y.device, True)
    q._ctx = y._ctx  # a Parameter that is the output of a graph node
    return q


@needs_torch
def test_pickled_model_is_no_larger_than_torchs():
    """The file holds the weights and the module tree, as PyTorch's does: within 1.1x of pickling the same
    torch module (after a backward in both, so gradients would show)."""
    ours = _trained_small()
    tm = torch.nn.Sequential(torch.nn.Embedding(64, 32), torch.nn.LayerNorm(32), torch.nn.Linear(32, 64))
    with torch.no_grad():
        for (n, p), (_, q) in zip(ours.named_parameters(), tm.named_parameters()):
            q.copy_(torch.tensor(p.detach().numpy()))
    idx = torch.randint(0, 64, (4, 8))
    torch.nn.functional.cross_entropy(tm(idx).reshape(32, 64), idx.reshape(32)).backward()
    size_ours, size_torch = len(pickle.dumps(ours)), len(pickle.dumps(tm))
    assert size_ours <= 1.1 * size_torch, (size_ours, size_torch)


# ---------------------------------------------------------------- nn.init
@needs_torch
@pytest.mark.parametrize("name, kw, expected_std", [
    ("xavier_uniform_", {}, math.sqrt(2 / (300 + 200))), ("xavier_normal_", {"gain": 2.0}, 2 * math.sqrt(2 / 500)),
    ("kaiming_uniform_", {"a": math.sqrt(5)}, math.sqrt(1 / 3) / math.sqrt(200)),
    ("kaiming_normal_", {"mode": "fan_out", "nonlinearity": "relu"}, math.sqrt(2 / 300)),
    ("trunc_normal_", {"std": 0.02}, 0.02), ("normal_", {"std": 0.5}, 0.5), ("uniform_", {"a": -1, "b": 1}, 1 / 3 ** .5)])
def test_init_spread_matches_torch(name, kw, expected_std):
    w, tw = tl.zeros(300, 200), torch.zeros(300, 200)
    getattr(nn.init, name)(w, **kw)
    getattr(torch.nn.init, name)(tw, **kw)
    assert abs(w.detach().numpy().std() - expected_std) < 0.03 * expected_std
    assert abs(tw.detach().numpy().std() - expected_std) < 0.03 * expected_std


@needs_torch
def test_init_gain_and_deterministic_fills():
    for args in [("linear",), ("tanh",), ("relu",), ("leaky_relu", 0.2), ("selu",), ("sigmoid",)]:
        assert nn.init.calculate_gain(*args) == pytest.approx(torch.nn.init.calculate_gain(*args))
    w = tl.randn(3, 4)
    np.testing.assert_array_equal(nn.init.eye_(w).detach().numpy(), np.eye(3, 4, dtype=np.float32))
    assert (nn.init.zeros_(w).detach().numpy() == 0).all() and (nn.init.ones_(w).detach().numpy() == 1).all()
    assert (nn.init.constant_(w, 0.5).detach().numpy() == 0.5).all()
    assert abs(nn.init.trunc_normal_(tl.zeros(1000), a=-0.5, b=0.5).detach().numpy()).max() <= 0.5


# ---------------------------------------------------------------- version-counter flags (the contract)
def _functions():
    for module in (fused.activation, fused.attention, fused.embedding, fused.linear, fused.loss, fused.norm):
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Function) and obj.__module__ == module.__name__:
                yield obj


def test_fused_functions_declare_their_flags():
    """Every fused Function says, in its own class body, whether backward reads its inputs or its output."""
    found = list(_functions())
    assert len(found) >= 15
    for cls in found:
        assert "saves_inputs" in vars(cls), cls.__name__
    assert fused.attention.ScaledDotProductAttention.saves_output
    assert not fused.loss.CrossEntropy.saves_inputs and fused.linear.Linear.saves_inputs
