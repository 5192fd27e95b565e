"""tensorlite against PyTorch: nn.functional, the layers (with the same weights copied across), and the
optimizers and learning-rate schedulers stepped side by side."""
import numpy as np
import pytest
from hypothesis import given

from strategies import seeds, shapes
from test_torch_parity_helpers import Const, few, rand, raises_same, same, to_numpy, assert_close

torch = pytest.importorskip("torch")
import tensorlite as tl  # noqa: E402


def F(M):
    return M.nn.functional


ACTIVATIONS = ["relu", "gelu", "tanh", "sigmoid", "silu", "softplus", "elu", "leaky_relu", "relu6", "hardtanh",
               "logsigmoid", "mish", "softsign", "selu"]


@pytest.mark.parametrize("name", ACTIVATIONS)
@few
@given(shape=shapes(0, 3, 0, 4), seed=seeds)
def test_activations(name, shape, seed):
    x = rand(seed, shape, -3, 3)
    x[np.abs(x) < 0.05] = 0.0  # the kink itself, exactly
    same(lambda M, x: getattr(F(M), name)(x), x, seed=seed)


@pytest.mark.parametrize("layer,args", [("ReLU", ()), ("GELU", ()), ("Tanh", ()), ("Sigmoid", ()), ("SiLU", ()),
                                        ("GELU", ("tanh",)), ("LeakyReLU", (0.1,)), ("Softmax", (-1,)),
                                        ("LogSoftmax", (1,)), ("Identity", ()), ("Flatten", ())])
def test_activation_layers(layer, args):
    same(lambda M, x: getattr(M.nn, layer)(*args)(x), rand(0, (2, 3, 4)))


@few
@given(shape=shapes(1, 3, 1, 5), seed=seeds)
def test_softmax_family(shape, seed):
    x = rand(seed, shape)
    for d in range(-len(shape), len(shape)):
        same(lambda M, x: F(M).softmax(x, dim=d), x, seed=seed)
        same(lambda M, x: F(M).log_softmax(x, d), x, seed=seed)
    x_inf = np.where(np.random.default_rng(seed).random(shape) < 0.3, -np.inf, x)
    x_inf.reshape(-1)[0] = 0.0
    same(lambda M, x: F(M).softmax(x, dim=-1), x_inf, seed=seed)


def test_softmax_without_dim():
    """PyTorch warns and picks dim 0 for 0-, 1- and 3-d input, dim 1 otherwise."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for shape in [(3,), (2, 3), (2, 3, 4), (2, 2, 2, 2)]:
            same(lambda M, x: F(M).softmax(x), rand(0, shape))


@few
@given(seed=seeds)
def test_linear_layer_norm_embedding_dropout(seed):
    x, w, b = rand(seed, (2, 3, 4)), rand(seed + 1, (5, 4)), rand(seed + 2, (5,))
    same(lambda M, x, w, b: F(M).linear(x, w, b), x, w, b, seed=seed)
    same(lambda M, x, w: F(M).linear(x, w), x, w, seed=seed)
    g, beta = rand(seed + 3, (4,)), rand(seed + 4, (4,))
    same(lambda M, x, g, b: F(M).layer_norm(x, (4,), g, b, 1e-5), x, g, beta, seed=seed)
    same(lambda M, x: F(M).layer_norm(x, (4,)), x, seed=seed)
    same(lambda M, x: F(M).layer_norm(x, (3, 4), eps=1e-3), x, seed=seed)
    idx = Const(np.random.default_rng(seed).integers(0, 5, (2, 3)))
    same(lambda M, i, w: F(M).embedding(i, w), idx, w, seed=seed)
    same(lambda M, i, w: F(M).embedding(i, w, padding_idx=0), idx, w, seed=seed)
    same(lambda M, x: F(M).dropout(x, p=0.5, training=False), x, seed=seed)
    same(lambda M, x: F(M).dropout(x, p=0.0), x, seed=seed)
    same(lambda M, x: F(M).one_hot(x, 5), Const(np.arange(5) % 3), grad=False)
    same(lambda M, x: F(M).normalize(x, dim=-1), x, seed=seed)
    same(lambda M, x: F(M).pad(x, (1, 2)), x, seed=seed)


def xent_inputs(seed, n=6, c=4, extra=()):
    rng = np.random.default_rng(seed)
    return rand(seed, (n, c) + extra), Const(rng.integers(0, c, (n,) + extra))


@pytest.mark.parametrize("kw", [{}, {"reduction": "sum"}, {"reduction": "none"}, {"ignore_index": 1},
                                {"ignore_index": 1, "reduction": "sum"}, {"label_smoothing": 0.1},
                                {"label_smoothing": 0.2, "reduction": "sum"}, {"label_smoothing": 0.1,
                                                                                "ignore_index": 0}])
@few
@given(seed=seeds)
def test_cross_entropy(kw, seed):
    logits, target = xent_inputs(seed)
    same(lambda M, x, t: F(M).cross_entropy(x, t, **kw), logits, target, seed=seed)
    # (N, C, d) logits: the classes are dim 1, even where C == d
    logits, target = xent_inputs(seed, 3, 4, (4,))
    same(lambda M, x, t: F(M).cross_entropy(x, t, **kw), logits, target, seed=seed)
    same(lambda M, x, t: F(M).cross_entropy(x, t, **kw), rand(seed, (4,)), Const(np.array(2)), seed=seed)


def test_cross_entropy_listed_cases():
    logits = rand(0, (3, 5))
    every_target_ignored = Const(np.array([-100, -100, -100]))
    same(lambda M, x, t: F(M).cross_entropy(x, t), logits, every_target_ignored)  # NaN loss, gradient 0
    same(lambda M, x, t: F(M).cross_entropy(x, t, ignore_index=2), logits, Const(np.array([2, 2, 2])))
    same(lambda M, x, t: F(M).cross_entropy(x, t), logits, rand(1, (3, 5), 0, 1))  # class probabilities
    same(lambda M, x, t: F(M).nll_loss(F(M).log_softmax(x, -1), t), logits, Const(np.array([0, 4, 1])))
    same(lambda M, x, t: F(M).cross_entropy(x, t, reduction="mean"), rand(2, (0, 5)), Const(np.zeros(0, int)))


@pytest.mark.parametrize("loss", ["mse_loss", "l1_loss", "smooth_l1_loss", "binary_cross_entropy_with_logits"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses(loss, reduction):
    same(lambda M, x, y: getattr(F(M), loss)(x, y, reduction=reduction), rand(0, (3, 4)), rand(1, (3, 4), 0, 1))


@pytest.mark.parametrize("case", [
    lambda M, x: F(M).cross_entropy(x, M.tensor([0.0, 1.0, 2.0])),  # float class indices
    lambda M, x: F(M).cross_entropy(x, M.tensor([0, 1, 7])),  # out of range
    lambda M, x: F(M).cross_entropy(x, M.tensor([0, 1])),  # batch size mismatch
    lambda M, x: F(M).softmax(x, dim=2),
    lambda M, x: F(M).linear(x, M.ones(3, 4)),
    lambda M, x: F(M).embedding(M.tensor([5]), x),
    lambda M, x: F(M).cross_entropy(x, M.tensor([0, 1, 2]), reduction="avg"),
    lambda M, x: F(M).dropout(x, p=1.5),
], ids=["float_target", "target_out_of_range", "batch_mismatch", "softmax_dim", "linear_shape",
        "embedding_out_of_range", "bad_reduction", "dropout_p"])
def test_functional_errors(case):
    raises_same(case, rand(0, (3, 5)))


@pytest.mark.parametrize("kw", [{}, {"is_causal": True}, {"attn_mask": "bool"}, {"attn_mask": "float"},
                                {"scale": 0.5}, {"dropout_p": 0.0, "is_causal": True}])
@few
@given(seed=seeds)
def test_scaled_dot_product_attention(kw, seed):
    """Not causal by default, as in PyTorch; a bool mask keeps the True places, a float mask is added."""
    q, k, v = rand(seed, (2, 3, 4, 8)), rand(seed + 1, (2, 3, 4, 8)), rand(seed + 2, (2, 3, 4, 8))
    mask = np.tril(np.ones((4, 4), bool)) if kw.get("attn_mask") == "bool" else \
        rand(seed + 3, (4, 4)) if kw.get("attn_mask") == "float" else None
    kw = {n: a for n, a in kw.items() if n != "attn_mask"}
    if mask is None:
        same(lambda M, q, k, v: F(M).scaled_dot_product_attention(q, k, v, **kw), q, k, v, seed=seed)
    else:
        same(lambda M, q, k, v, m: F(M).scaled_dot_product_attention(q, k, v, attn_mask=m, **kw), q, k, v,
             Const(mask), seed=seed)


# ------------------------------------------------------------------------------------- layers, weights copied
def copy_weights(m_tl, m_pt):
    names_tl = [n for n, _ in m_tl.named_parameters()]
    names_pt = [n for n, _ in m_pt.named_parameters()]
    assert names_tl == names_pt, f"parameter names {names_tl} != torch {names_pt}"
    with torch.no_grad():
        for (_, a), (_, b) in zip(m_tl.named_parameters(), m_pt.named_parameters()):
            assert tuple(a.shape) == tuple(b.shape)
            b.copy_(torch.from_numpy(np.array(to_numpy(a))).to(b.dtype))


def same_module(make, x, train=False):
    """Build the module in both libraries, give torch tensorlite's initial weights, compare forward and grads."""
    m_tl, m_pt = make(tl), make(torch)
    copy_weights(m_tl, m_pt)
    for m in (m_tl, m_pt):
        m.train(train)
    outs = []
    for M, m in ((tl, m_tl), (torch, m_pt)):
        xt = M.tensor(x, requires_grad=x.dtype.kind == "f")
        y = m(xt)
        (y * M.tensor(np.linspace(-1, 1, y.numel()).reshape(tuple(y.shape)).astype(to_numpy(y).dtype))).sum().backward()
        outs.append((xt, y, dict(m.named_parameters())))
    (x_tl, y_tl, p_tl), (x_pt, y_pt, p_pt) = outs
    assert_close(to_numpy(y_tl), to_numpy(y_pt), "output")
    if x_pt.grad is not None:
        assert_close(to_numpy(x_tl.grad), to_numpy(x_pt.grad), "input gradient")
    for n in p_pt:
        assert_close(to_numpy(p_tl[n].grad), to_numpy(p_pt[n].grad), f"gradient of {n}")


@pytest.mark.parametrize("name,make,x", [
    ("Linear", lambda M: M.nn.Linear(4, 3), rand(0, (2, 4))),
    ("Linear_nobias_3d", lambda M: M.nn.Linear(4, 3, bias=False), rand(0, (2, 5, 4))),
    ("LayerNorm", lambda M: M.nn.LayerNorm(4), rand(0, (2, 3, 4))),
    ("LayerNorm_noaffine", lambda M: M.nn.LayerNorm(4, elementwise_affine=False), rand(0, (3, 4))),
    ("Embedding", lambda M: M.nn.Embedding(6, 3), np.array([[0, 5, 5], [1, 2, 0]])),
    ("Embedding_padding", lambda M: M.nn.Embedding(6, 3, padding_idx=0), np.array([[0, 5, 0], [1, 2, 0]])),
    ("Sequential", lambda M: M.nn.Sequential(M.nn.Linear(4, 8), M.nn.ReLU(), M.nn.Linear(8, 4), M.nn.Dropout(0.2)),
     rand(0, (2, 4))),
])
def test_layers_with_copied_weights(name, make, x):
    same_module(make, x.astype(np.float32) if x.dtype.kind == "f" else x)  # the layers' own dtype


def test_results_of_parameters_are_plain_tensors():
    """Ops on a Parameter, a layer's output and a Parameter's .grad are Tensors (they print no 'Parameter
    containing:'); only the weights are Parameters."""
    def case(M):
        w = M.nn.Parameter(M.ones(2, 3))
        e = M.nn.Embedding(4, 3)
        with M.no_grad():  # the two libraries draw different random weights: give both the same ones
            e.weight.copy_(M.arange(12.0).reshape(4, 3))
        out = (w * 2, w[0], w.T, w.sum(), e(M.tensor([1, 2])), M.nn.functional.embedding(M.tensor([0]), w))
        (out[0].sum() + out[4].sum()).backward()
        return out + (w.grad, e.weight.grad, w.detach(), w)
    same(case, grad=False)


def test_embedding_padding_row_starts_at_zero():
    e = tl.nn.Embedding(5, 3, padding_idx=2)
    assert not to_numpy(e.weight)[2].any()


def test_module_api_names():
    """state_dict keys, buffers, parameter counts and train/eval flags as in PyTorch."""
    def make(M):
        m = M.nn.Sequential(M.nn.Linear(3, 4), M.nn.LayerNorm(4), M.nn.Embedding(2, 2))
        m[0].register_buffer("mask", M.tril(M.ones(2, 2)))
        return m
    m_tl, m_pt = make(tl), make(torch)
    assert list(m_tl.state_dict()) == list(m_pt.state_dict())
    assert [n for n, _ in m_tl.named_buffers()] == [n for n, _ in m_pt.named_buffers()]
    assert sum(p.numel() for p in m_tl.parameters()) == sum(p.numel() for p in m_pt.parameters())
    assert m_tl.training and not m_tl.eval().training and not m_tl[1].training


# ----------------------------------------------------------------------------- optimizers and schedulers
def grads(step, shapes_):
    rng = np.random.default_rng(step)
    return [rng.standard_normal(s) for s in shapes_]


OPTIMIZERS = [
    ("SGD", {"lr": 0.1}), ("SGD", {"lr": 0.1, "momentum": 0.9}), ("SGD", {"lr": 0.1, "momentum": 0.9,
                                                                         "nesterov": True, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "dampening": 0.1}), ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}), ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True, "betas": (0.8, 0.9)}),
    ("Adam", {"lr": 0.01, "maximize": True}),
]


@pytest.mark.parametrize("name,kw", OPTIMIZERS, ids=[f"{n}-{'-'.join(k)}" for n, k in OPTIMIZERS])
def test_optimizers_side_by_side(name, kw):
    """25 steps with the same gradients (float64): the parameters stay equal to PyTorch's."""
    shapes_ = [(3, 2), (2,)]
    init = [rand(i, s) for i, s in enumerate(shapes_)]
    p_tl = [tl.tensor(a, requires_grad=True) for a in init]
    p_pt = [torch.tensor(a, requires_grad=True) for a in init]
    o_tl, o_pt = getattr(tl.optim, name)(p_tl, **kw), getattr(torch.optim, name)(p_pt, **kw)
    for step in range(25):
        for M, ps, o in ((tl, p_tl, o_tl), (torch, p_pt, o_pt)):
            o.zero_grad()
            for p, g in zip(ps, grads(step, shapes_)):
                p.grad = M.tensor(g)
            o.step()
    for a, b in zip(p_tl, p_pt):
        assert_close(to_numpy(a), to_numpy(b), f"{name} parameters after 25 steps")


SCHEDULERS = [
    ("StepLR", {"step_size": 3, "gamma": 0.5}), ("MultiStepLR", {"milestones": [2, 5, 9], "gamma": 0.3}),
    ("ExponentialLR", {"gamma": 0.9}), ("CosineAnnealingLR", {"T_max": 10, "eta_min": 0.01}),
    ("LinearLR", {"start_factor": 0.25, "total_iters": 6}), ("LambdaLR", {"lr_lambda": lambda e: 1 / (1 + e)}),
    ("OneCycleLR", {"max_lr": 1.0, "total_steps": 30}), ("ConstantLR", {"factor": 0.5, "total_iters": 4}),
]


@pytest.mark.parametrize("name,kw", SCHEDULERS, ids=[s[0] for s in SCHEDULERS])
def test_schedulers_side_by_side(name, kw):
    lrs = []
    for M in (tl, torch):
        p = M.tensor([1.0], requires_grad=True)
        opt = M.optim.SGD([p], lr=0.1, momentum=0.9)
        sched = getattr(M.optim.lr_scheduler, name)(opt, **kw)
        seen = []
        for _ in range(25):
            opt.step()
            sched.step()
            seen.append((sched.get_last_lr()[0], opt.param_groups[0]["lr"]))
        lrs.append(seen)
    np.testing.assert_allclose(np.array(lrs[0]), np.array(lrs[1]), rtol=1e-12, atol=1e-15)


def test_sequential_lr():
    lrs = []
    for M in (tl, torch):
        opt = M.optim.SGD([M.tensor([1.0], requires_grad=True)], lr=0.1)
        S = M.optim.lr_scheduler
        sched = S.SequentialLR(opt, [S.LinearLR(opt, 0.1, total_iters=3), S.ExponentialLR(opt, 0.9)], milestones=[3])
        seen = []
        for _ in range(20):
            opt.step()
            sched.step()
            seen.append(sched.get_last_lr()[0])
        lrs.append(seen)
    np.testing.assert_allclose(lrs[0], lrs[1], rtol=1e-12)
