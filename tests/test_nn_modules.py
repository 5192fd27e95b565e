"""tensorlite.nn modules: registration, state dicts, modes, devices, printing, and each layer's math."""
import math
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tensorlite as tl
import tensorlite.nn as nn
from strategies import array, leaf, seeds


class Block(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.ln = nn.LayerNorm(n)
        self.fc = nn.Linear(n, n)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(self.fc(self.ln(x)))


class Net(nn.Module):
    def __init__(self, vocab=7, n=4, layers=2):
        super().__init__()
        self.emb = nn.Embedding(vocab, n)
        self.blocks = nn.ModuleList([Block(n) for _ in range(layers)])
        self.head = nn.Linear(n, vocab, bias=False)
        self.scale = nn.Parameter(tl.ones(1))

    def forward(self, idx):
        x = self.emb(idx)
        for b in self.blocks:
            x = b(x)
        return self.head(x) * self.scale


NET_KEYS = ["emb.weight", "blocks.0.ln.weight", "blocks.0.ln.bias", "blocks.0.fc.weight", "blocks.0.fc.bias",
            "blocks.1.ln.weight", "blocks.1.ln.bias", "blocks.1.fc.weight", "blocks.1.fc.bias", "head.weight"]


# ---------------------------------------------------------------- Parameter and registration
def test_parameter_is_a_trainable_tensor_sharing_memory():
    t = tl.zeros(3)
    p = nn.Parameter(t)
    assert isinstance(p, tl.Tensor) and p.requires_grad and p.is_leaf
    p.data[0] = 5
    assert t.detach().numpy()[0] == 5
    assert repr(p).startswith("Parameter containing:\ntensor(")
    assert not nn.Parameter(tl.zeros(2), requires_grad=False).requires_grad
    with pytest.raises(RuntimeError, match="floating-point"):
        nn.Parameter(tl.tensor([1, 2]))


def test_parameters_in_registration_order():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    # `scale` was assigned after `head` but belongs to the root module: the root's own parameters come first
    assert names == ["scale"] + NET_KEYS
    assert [id(p) for p in net.parameters()] == [id(p) for _, p in net.named_parameters()]
    assert [n for n, _ in net.blocks[1].named_parameters("blocks.1")] == NET_KEYS[5:9]
    assert [n for n, _ in net.named_parameters(recurse=False)] == ["scale"]


def test_tied_parameters_are_listed_once_but_saved_under_both_names():
    net = Net(vocab=7, n=4)
    net.head.weight = net.emb.weight  # weight tying, as in GPT (shapes (7, 4) both)
    params = list(net.parameters())
    assert len(params) == len({id(p) for p in params})
    assert net.num_parameters() == sum(p.numel() for p in params)
    sd = net.state_dict()
    assert "emb.weight" in sd and "head.weight" in sd
    np.testing.assert_array_equal(sd["emb.weight"].detach().numpy(), sd["head.weight"].detach().numpy())


def test_modules_and_children():
    net = Net()
    assert [n for n, _ in net.named_children()] == ["emb", "blocks", "head"]
    assert list(net.children())[1] is net.blocks
    names = [n for n, _ in net.named_modules()]
    assert names == ["", "emb", "blocks", "blocks.0", "blocks.0.ln", "blocks.0.fc", "blocks.0.drop", "blocks.1",
                     "blocks.1.ln", "blocks.1.fc", "blocks.1.drop", "head"]
    assert len(list(net.modules())) == len(names)


def test_reassignment_and_deletion():
    net = Net()
    net.head = nn.Linear(4, 3)
    assert net.head.out_features == 3
    with pytest.raises(TypeError, match="cannot assign Tensor to parameter 'scale'"):
        net.scale = tl.ones(1)
    net.scale = None
    assert "scale" not in dict(net.named_parameters())
    del net.head
    assert not hasattr(net, "head")
    assert "head.weight" not in net.state_dict()


def test_forgetting_super_init_is_explained():
    class Bad(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        Bad()


def test_num_parameters():
    assert nn.Linear(3, 5).num_parameters() == 3 * 5 + 5
    assert nn.Linear(3, 5, bias=False).num_params() == 15
    net = Net(vocab=7, n=4, layers=2)
    assert net.num_parameters() == 7 * 4 + 2 * (4 + 4 + 16 + 4) + 7 * 4 + 1


def test_apply_visits_every_module():
    seen = []
    Net().apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen.count("Linear") == 3 and seen.count("LayerNorm") == 2


# ---------------------------------------------------------------- modes, devices, gradients
def test_train_eval_propagates():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    x = tl.randn(2, 4)
    d = net.blocks[0].drop
    np.testing.assert_array_equal(d(x).detach().numpy(), x.detach().numpy())
    net.train()
    assert all(m.training for m in net.modules())
    assert not np.array_equal(d(x).detach().numpy(), x.detach().numpy())


def test_to_moves_in_place_keeping_the_parameter_objects(device):
    net = Net()
    params = list(net.parameters())
    idx = tl.tensor([[1, 2, 3]])
    before = net.eval()(idx).detach().numpy()
    net(idx).sum().backward()
    assert net.to(device) is net
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    for p in params:
        assert p.device == tl.backend.normalize_device(device)
        assert p.grad.device == p.device
    np.testing.assert_allclose(net(idx.to(device)).detach().numpy(), before, rtol=1e-6)
    net.to(tl.float64)
    assert all(p.dtype == tl.float64 for p in params)
    net.to("cpu")
    np.testing.assert_allclose(net(idx).detach().numpy(), before, rtol=1e-5, atol=1e-6)


def test_zero_grad():
    net = Net()
    net(tl.tensor([[0, 1]])).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.detach().numpy().any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


# ---------------------------------------------------------------- state_dict / load_state_dict
def test_state_dict_round_trip(device):
    tl.manual_seed(1)
    a = Net().to(device).eval()
    tl.manual_seed(2)
    b = Net().to(device).eval()
    idx = tl.tensor([[0, 3, 6]], device=device)
    assert not np.allclose(a(idx).detach().numpy(), b(idx).detach().numpy())
    sd = a.state_dict()
    assert isinstance(sd, OrderedDict) and list(sd) == ["scale"] + NET_KEYS
    assert all(isinstance(v, tl.Tensor) and not v.requires_grad for v in sd.values())
    b_params = list(b.parameters())
    result = b.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert [id(p) for p in b.parameters()] == [id(p) for p in b_params]  # loaded in place
    np.testing.assert_array_equal(a(idx).detach().numpy(), b(idx).detach().numpy())
    # plain NumPy arrays (what a checkpoint file gives back) load too
    c = Net().to(device).eval()
    c.load_state_dict({k: v.detach().numpy() for k, v in sd.items()})
    np.testing.assert_array_equal(a(idx).detach().numpy(), c(idx).detach().numpy())


def test_state_dict_shares_memory_and_loading_copies():
    net = Net()
    sd = net.state_dict()
    sd["head.weight"].data[0, 0] = 42.0
    assert net.head.weight.detach().numpy()[0, 0] == 42.0
    other = Net()
    other.load_state_dict(net.state_dict())
    other.head.weight.data[0, 0] = -1.0
    assert net.head.weight.detach().numpy()[0, 0] == 42.0


def test_load_state_dict_reports_every_problem_at_once():
    small, big = Net(n=4), Net(n=6)
    sd = small.state_dict()
    del sd["emb.weight"]
    sd["extra.weight"] = tl.ones(2)
    before = big.state_dict()["head.weight"].detach().numpy()
    with pytest.raises(RuntimeError) as err:
        big.load_state_dict(sd)
    msg = str(err.value)
    assert "for Net" in msg
    assert "missing keys: emb.weight" in msg
    assert "unexpected keys: extra.weight" in msg
    assert "blocks.0.fc.weight: checkpoint has shape (4, 4), the model has (6, 6)" in msg
    assert "head.weight: checkpoint has shape (7, 4), the model has (7, 6)" in msg
    np.testing.assert_array_equal(big.head.weight.detach().numpy(), before)  # nothing was half-loaded


def test_load_state_dict_non_strict():
    a, b = Net(), Net()
    sd = a.state_dict()
    del sd["head.weight"]
    sd["junk"] = tl.zeros(1)
    missing, unexpected = b.load_state_dict(sd, strict=False)
    assert missing == ["head.weight"] and unexpected == ["junk"]
    np.testing.assert_array_equal(b.emb.weight.detach().numpy(), a.emb.weight.detach().numpy())
    sd["emb.weight"] = tl.zeros(3, 3)
    with pytest.raises(RuntimeError, match="emb.weight: checkpoint has shape"):
        b.load_state_dict(sd, strict=False)


def test_buffers_are_saved_and_moved():
    m = nn.Module()
    m.register_buffer("counts", tl.zeros(3))
    m.register_buffer("scratch", tl.zeros(2), persistent=False)
    assert list(m.state_dict()) == ["counts"]
    m.load_state_dict({"counts": np.array([1.0, 2.0, 3.0])})
    np.testing.assert_array_equal(m.counts.detach().numpy(), [1, 2, 3])
    assert list(m.parameters()) == []


# ---------------------------------------------------------------- printing
def test_repr_tree():
    expected = """Net(
  (emb): Embedding(7, 4)
  (blocks): ModuleList(
    (0): Block(
      (ln): LayerNorm((4,), eps=1e-05, elementwise_affine=True)
      (fc): Linear(in_features=4, out_features=4, bias=True)
      (drop): Dropout(p=0.5, inplace=False)
    )
    (1): Block(
      (ln): LayerNorm((4,), eps=1e-05, elementwise_affine=True)
      (fc): Linear(in_features=4, out_features=4, bias=True)
      (drop): Dropout(p=0.5, inplace=False)
    )
  )
  (head): Linear(in_features=4, out_features=7, bias=False)
)"""
    assert repr(Net()) == expected
    assert repr(nn.ReLU()) == "ReLU()"
    assert repr(nn.GELU("tanh")) == "GELU(approximate='tanh')"


# ---------------------------------------------------------------- containers
def test_sequential(device):
    seq = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2)).to(device)
    x = tl.randn(4, 3, device=device)
    manual = seq[2](seq[1](seq[0](x)))
    np.testing.assert_allclose(seq(x).detach().numpy(), manual.detach().numpy())
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear) and len(seq[:2]) == 2
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    named = nn.Sequential(OrderedDict(fc=nn.Linear(3, 3), act=nn.GELU()))
    assert [n for n, _ in named.named_children()] == ["fc", "act"]
    with pytest.raises(TypeError, match="not a Module"):
        nn.Sequential(nn.ReLU(), lambda x: x)


def test_module_list():
    ml = nn.ModuleList([nn.Linear(2, 2)])
    ml.append(nn.Linear(2, 3)).extend([nn.ReLU()])
    assert len(ml) == 3 and ml[-1] is list(ml)[2]
    assert [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    with pytest.raises(IndexError, match="index 3 is out of range for 3 modules"):
        ml[3]
    with pytest.raises(TypeError, match="expected a Module"):
        ml.append(3)


# ---------------------------------------------------------------- layers
def test_linear_layer(device):
    tl.manual_seed(0)
    lin = nn.Linear(50, 40).to(device)
    bound = 1 / math.sqrt(50)
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    assert w.shape == (40, 50) and b.shape == (40,) and w.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.1 * bound  # U(-a, a) has std a / sqrt(3)
    x = tl.randn(2, 3, 50, device=device)
    np.testing.assert_allclose(lin(x).detach().numpy(), x.detach().numpy() @ w.T + b, rtol=1e-5, atol=1e-5)
    tl.manual_seed(0)
    np.testing.assert_array_equal(nn.Linear(50, 40).weight.detach().numpy(), w)  # reproducible under manual_seed
    assert nn.Linear(3, 2, bias=False).bias is None
    assert nn.Linear(3, 2, dtype=tl.float64).weight.dtype == tl.float64
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(-1, 2)


def test_embedding_layer(device):
    emb = nn.Embedding(300, 64).to(device)
    w = emb.weight.detach().numpy()
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02
    idx = np.array([[3, 299, 3]])
    np.testing.assert_array_equal(emb(tl.tensor(idx, device=device)).detach().numpy(), w[idx])
    with pytest.raises(IndexError, match="index 300 .* size 300"):
        emb(tl.tensor([300], device=device))


def test_layer_norm_layer(device):
    ln = nn.LayerNorm(6).to(device)
    np.testing.assert_array_equal(ln.weight.detach().numpy(), np.ones(6))
    np.testing.assert_array_equal(ln.bias.detach().numpy(), np.zeros(6))
    y = ln(tl.randn(3, 6, device=device) * 5 + 2).detach().numpy()
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(-1), 1, atol=1e-3)
    assert [n for n, _ in nn.LayerNorm(4, elementwise_affine=False).named_parameters()] == []


def test_dropout_layer(device):
    d = nn.Dropout(0.25)
    x = tl.ones(100_000, device=device)
    y = d(x).detach().numpy()
    assert abs(y.mean() - 1) < 0.02 and abs((y == 0).mean() - 0.25) < 0.01
    d.eval()
    np.testing.assert_array_equal(d(x).detach().numpy(), x.detach().numpy())
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


def test_activation_layers(device):
    x = tl.tensor([-2.0, -0.1, 0.0, 0.3, 3.0], device=device)
    np.testing.assert_array_equal(nn.ReLU()(x).detach().numpy(), np.maximum(x.detach().numpy(), 0))
    xs = x.detach().numpy().astype(np.float64)
    exact = xs * 0.5 * (1 + np.vectorize(math.erf)(xs / math.sqrt(2)))
    np.testing.assert_allclose(nn.GELU()(x).detach().numpy(), exact, rtol=1e-5, atol=1e-6)
    tanh = 0.5 * xs * (1 + np.tanh(math.sqrt(2 / math.pi) * (xs + 0.044715 * xs ** 3)))
    np.testing.assert_allclose(nn.GELU("tanh")(x).detach().numpy(), tanh, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("fast")


@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh"])
def test_feed_forward(device, activation):
    ff = nn.FeedForward(4, activation=activation).to(device).to(tl.float64)
    assert ff.c_fc.out_features == 16 and ff.c_proj.in_features == 16
    x = leaf(array(0, (2, 3, 4)), device)
    act = {"relu": lambda h: h.relu(), "gelu": lambda h: h.gelu(), "gelu_tanh": lambda h: h.gelu("tanh")}[activation]
    ref = act(x @ ff.c_fc.weight.T + ff.c_fc.bias) @ ff.c_proj.weight.T + ff.c_proj.bias
    np.testing.assert_allclose(ff(x).detach().numpy(), ref.detach().numpy(), rtol=1e-10)
    assert tl.gradcheck(ff, x)
    with pytest.raises(ValueError, match="activation"):
        nn.FeedForward(4, activation="swish")


# ---------------------------------------------------------------- init
def test_init_functions(device):
    t = tl.zeros(200, 200, device=device)
    tl.manual_seed(3)
    nn.init.normal_(t, mean=1.0, std=0.5)
    a = t.detach().numpy()
    assert abs(a.mean() - 1) < 0.01 and abs(a.std() - 0.5) < 0.01
    tl.manual_seed(3)
    np.testing.assert_array_equal(nn.init.normal_(tl.zeros(200, 200, device=device), 1.0, 0.5).detach().numpy(), a)
    u = nn.init.uniform_(t, -2.0, 3.0).detach().numpy()
    assert u.min() >= -2 and u.max() <= 3 and abs(u.mean() - 0.5) < 0.05
    assert not nn.init.zeros_(t).detach().numpy().any()
    assert (nn.init.ones_(t).detach().numpy() == 1).all()
    p = nn.Parameter(tl.zeros(3, device=device))
    nn.init.normal_(p)  # works on parameters that require grad
    assert p.is_leaf and p.requires_grad and p.detach().numpy().any()


# ---------------------------------------------------------------- attention
def per_head_reference(m, x):
    """Causal self-attention written head by head with primitives, using m's weights."""
    B, T, C = x.shape
    H, hs = m.n_head, C // m.n_head
    W, b = m.c_attn.weight, m.c_attn.bias
    future = np.triu(np.ones((T, T), dtype=bool), 1)
    heads = []
    for h in range(H):
        rows = [slice(part * C + h * hs, part * C + (h + 1) * hs) for part in range(3)]
        q, k, v = (x @ W[r].T + b[r] for r in rows)
        att = (q @ k.transpose(-2, -1)) * (1 / math.sqrt(hs))
        att = att.masked_fill(future, -np.inf)
        att = (att - att.amax(-1, keepdim=True)).exp()
        att = att / att.sum(-1, keepdim=True)
        heads.append(att @ v)
    y = tl.cat(heads, dim=-1)
    return y @ m.c_proj.weight.T + m.c_proj.bias


@given(st.integers(1, 2), st.integers(1, 5), st.sampled_from([(4, 1), (4, 2), (6, 3), (8, 4)]), seeds)
def test_multi_head_attention_equals_per_head_loop(device, B, T, sizes, seed):
    n_embd, n_head = sizes
    tl.manual_seed(seed)
    m = nn.MultiHeadAttention(n_embd, n_head).to(device).to(tl.float64)
    x1, x2 = leaf(array(seed, (B, T, n_embd)), device), leaf(array(seed, (B, T, n_embd)), device)
    y1, y2 = m(x1), per_head_reference(m, x2)
    np.testing.assert_allclose(y1.detach().numpy(), y2.detach().numpy(), rtol=1e-9, atol=1e-12)
    v = tl.tensor(np.random.default_rng(seed).standard_normal(y1.shape), device=device, dtype=tl.float64)
    (y1 * v).sum().backward()
    fused_grads = [p.grad.detach().numpy() for p in m.parameters()]
    m.zero_grad()
    (y2 * v).sum().backward()
    np.testing.assert_allclose(x1.grad.detach().numpy(), x2.grad.detach().numpy(), rtol=1e-8, atol=1e-12)
    for g1, p in zip(fused_grads, m.parameters()):
        np.testing.assert_allclose(g1, p.grad.detach().numpy(), rtol=1e-8, atol=1e-12)


def test_multi_head_attention_gradcheck_and_causality(device):
    tl.manual_seed(0)
    m = nn.MultiHeadAttention(4, 2).to(device).to(tl.float64)
    x = array(1, (2, 5, 4))
    assert tl.gradcheck(m, leaf(x, device))
    base = m(tl.tensor(x, device=device)).detach().numpy()
    for t in range(5):
        changed = x.copy()
        changed[:, t + 1:] = array(2 + t, changed[:, t + 1:].shape) * 5
        out = m(tl.tensor(changed, device=device)).detach().numpy()
        np.testing.assert_allclose(out[:, :t + 1], base[:, :t + 1], rtol=1e-12, atol=1e-14)


def test_multi_head_attention_dropout_and_modes(device):
    m = nn.MultiHeadAttention(8, 2, dropout=0.5).to(device)
    x = tl.randn(2, 4, 8, device=device)
    a, b = m(x).detach().numpy(), m(x).detach().numpy()
    assert not np.allclose(a, b)  # train(): attention and residual dropout are active
    m.eval()
    np.testing.assert_array_equal(m(x).detach().numpy(), m(x).detach().numpy())
    assert [n for n, _ in m.named_parameters()] == ["c_attn.weight", "c_attn.bias", "c_proj.weight", "c_proj.bias"]
    assert m.c_attn.weight.shape == (24, 8)


def test_multi_head_attention_errors():
    with pytest.raises(ValueError, match=r"n_embd \(10\) must be divisible by n_head \(3\)"):
        nn.MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="positive"):
        nn.MultiHeadAttention(8, 0)
    with pytest.raises(ValueError, match=r"expected input of shape \(B, T, 8\)"):
        nn.MultiHeadAttention(8, 2)(tl.ones(2, 3, 4))
    assert nn.MultiHeadAttention(8, 2, bias=False).c_attn.bias is None
