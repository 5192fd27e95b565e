"""The bigram model and the GPT: they learn, their gradients are right, and bad configs fail clearly."""
import math

import numpy as np
import pytest

import tensorlite
from models.bigram import BigramLanguageModel
from models.gpt import GPT, GPTConfig
from models.sampling import sample_next
from train.loop import train_step


def repetitive_batches(device, vocab=6, B=8, T=8, seed=0):
    """Windows of a periodic sequence 0 1 2 ... vocab-1 0 1 ...: the next token is fully predictable."""
    rng = np.random.default_rng(seed)
    seq = np.arange(400) % vocab
    while True:
        starts = rng.integers(0, len(seq) - T - 1, B)
        w = seq[starts[:, None] + np.arange(T + 1)]
        yield (tensorlite.tensor(w[:, :-1], device=device), tensorlite.tensor(w[:, 1:], device=device))


def fit(model, device, steps, lr, vocab=6, T=8):
    model.to(device)
    opt = tensorlite.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    batches = repetitive_batches(device, vocab, T=T)
    x, y = next(batches)
    first = model(x, y)[1].item()
    for _ in range(steps):
        x, y = next(batches)
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return first, model(*next(batches))[1].item()


def tiny_config(**kw):
    base = dict(vocab_size=6, block_size=8, n_embd=16, n_layer=2, n_head=2, dropout=0.0)
    base.update(kw)
    return GPTConfig(**base)


def test_bigram_learns_a_repetitive_text(device):
    first, last = fit(BigramLanguageModel(6), device, steps=150, lr=0.1)
    assert first > 1.0 and last < 0.1 * math.log(6)


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_tiny_gpt_learns_a_repetitive_text(device, norm):
    first, last = fit(GPT(tiny_config(norm=norm)), device, steps=80, lr=1e-2)
    assert abs(first - math.log(6)) < 0.3  # small initial weights: near-uniform predictions
    assert last < 0.1 * math.log(6)


@pytest.mark.parametrize("norm,activation,bias", [("post", "relu", True), ("pre", "gelu", False)])
def test_gpt_gradient_matches_finite_differences(norm, activation, bias):
    model = GPT(GPTConfig(vocab_size=5, block_size=4, n_embd=4, n_layer=1, n_head=2, dropout=0.0,
                          norm=norm, activation=activation, bias=bias)).double()
    rng = np.random.default_rng(0)
    idx = tensorlite.tensor(rng.integers(0, 5, (2, 3)))
    targets = tensorlite.tensor(rng.integers(0, 5, (2, 3)))
    params = list(model.parameters())
    for p in params:  # larger than the 0.02 init so every path carries a visible gradient
        p.data[...] = rng.normal(0, 0.5, p.shape)
    assert tensorlite.gradcheck(lambda *ps: model(idx, targets)[1], *params)


def test_gpt_init_follows_the_course():
    model = GPT(tiny_config(n_embd=64, vocab_size=50))
    for name, p in model.named_parameters():
        values = p.detach().numpy()
        if p.ndim >= 2:
            assert abs(values.std() - 0.02) < 0.004, name
        elif name.endswith("bias"):
            assert (values == 0).all(), name
        else:  # layer-norm gains
            assert (values == 1).all(), name


def test_gpt_shapes_and_parameter_count():
    cfg = tiny_config()
    model = GPT(cfg)
    logits, loss = model(tensorlite.zeros(3, 5, dtype=tensorlite.int64))
    assert logits.shape == (3, 5, cfg.vocab_size) and loss is None
    C, V, L = cfg.n_embd, cfg.vocab_size, cfg.n_layer
    per_block = (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C) + 4 * C
    expected = V * C + cfg.block_size * C + L * per_block + 2 * C + C * V + V
    assert model.num_params() == expected


@pytest.mark.parametrize("kw,match", [
    (dict(n_embd=10, n_head=3), "divisible"),
    (dict(n_layer=0), "n_layer"),
    (dict(vocab_size=-1), "vocab_size"),
    (dict(block_size=2.5), "block_size"),
    (dict(dropout=1.0), "dropout"),
    (dict(norm="middle"), "norm"),
    (dict(activation="tanh"), "activation"),
])
def test_gpt_config_rejects_bad_values(kw, match):
    with pytest.raises(ValueError, match=match):
        tiny_config(**kw)


def test_forward_longer_than_block_size_is_an_error():
    model = GPT(tiny_config(block_size=4))
    with pytest.raises(ValueError, match="block_size 4"):
        model(tensorlite.zeros(1, 5, dtype=tensorlite.int64))


def test_bad_inputs_to_forward():
    model = GPT(tiny_config())
    with pytest.raises(ValueError, match="batch, time"):
        model(tensorlite.zeros(5, dtype=tensorlite.int64))
    with pytest.raises(ValueError, match="targets shape"):
        model(tensorlite.zeros(2, 3, dtype=tensorlite.int64), tensorlite.zeros(2, 4, dtype=tensorlite.int64))
    with pytest.raises(ValueError, match="vocab_size"):
        BigramLanguageModel(0)


@pytest.mark.parametrize("make", [lambda: GPT(tiny_config(block_size=4)), lambda: BigramLanguageModel(6)])
def test_generate_extends_past_the_context_and_restores_train_mode(device, make):
    model = make().to(device)
    model.train()
    idx = tensorlite.zeros(2, 3, dtype=tensorlite.int64, device=device)
    out = model.generate(idx, 7, top_k=2)
    assert out.shape == (2, 10) and out.device == idx.device
    assert (out[:, :3].detach().numpy() == 0).all() and out.detach().numpy().max() < 6
    assert model.training


def test_greedy_and_top_k_1_agree_and_temperature_is_checked():
    model = GPT(tiny_config())
    idx = tensorlite.zeros(1, 2, dtype=tensorlite.int64)
    a = model.generate(idx, 5, temperature=0).detach().numpy()
    tensorlite.manual_seed(3)
    b = model.generate(idx, 5, top_k=1).detach().numpy()
    assert (a == b).all()
    with pytest.raises(ValueError, match="temperature"):
        model.generate(idx, 1, temperature=-1)
    with pytest.raises(ValueError, match="top_k"):
        model.generate(idx, 1, top_k=0)


def test_top_k_only_samples_the_k_most_likely():
    logits = tensorlite.tensor([[0.0, 5.0, 1.0, 4.9, -2.0]] * 200)
    picks = set(sample_next(logits, temperature=5.0, top_k=2).detach().numpy().ravel().tolist())
    assert picks == {1, 3}


@pytest.mark.parametrize("norm,activation", [("post", "relu"), ("pre", "gelu")])
def test_a_float32_step_makes_no_float64_array(device, norm, activation, monkeypatch):
    """No float64 temporaries: every Function output, every array it saves for backward, every
    gradient it returns and every optimizer state stays float32 (a NumPy float64 scalar, or a
    Python-side float64 array, in the math would promote them and halve the speed)."""
    from tensorlite import autograd
    seen = []

    def hook(fn, phase, *arrays):
        out = getattr(fn, phase)(*arrays)
        saved = [v for v in vars(fn).values() if hasattr(v, "dtype") and hasattr(v, "shape")]
        for a in (out if isinstance(out, tuple) else (out,)) + tuple(saved):
            if a is not None and a.dtype.kind == "f":
                seen.append((type(fn).__name__, phase, str(a.dtype)))
        return out

    model = GPT(tiny_config(norm=norm, activation=activation, dropout=0.2)).to(device)
    opt = tensorlite.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = next(repetitive_batches(device))
    monkeypatch.setattr(autograd, "_profile_hook", hook)
    for _ in range(2):
        loss = train_step(model, opt, x, y, grad_clip=1.0)
    names = {name for name, _, _ in seen}
    assert {"Linear", "LayerNorm", "SelfAttention", "Embedding", "CrossEntropy", "Dropout"} <= names
    assert [s for s in seen if s[2] != "float32"] == []
    assert loss.dtype == tensorlite.float32
    for p in model.parameters():
        assert p.dtype == p.grad.dtype == tensorlite.float32
        assert all(v.dtype == tensorlite.float32 for v in opt.state[p].values() if hasattr(v, "dtype")), p.shape


# ---------------------------------------------------------------- the registry
@pytest.mark.parametrize("name,values", [("bigram", dict(vocab_size=7)),
                                         ("gpt", dict(vocab_size=7, block_size=4, n_embd=8, n_layer=1, n_head=2,
                                                      norm="pre", activation="gelu", bias=False))])
def test_registry_round_trip(name, values):
    import models
    config = models.config_from(name, dict(values, batch_size=3, learning_rate=0.1))  # other keys: ignored
    assert isinstance(config, models.MODELS[name].config)
    assert {k: getattr(config, k) for k in values} == values
    tensorlite.manual_seed(0)
    model = models.build_model(name, config)
    assert isinstance(model, models.MODELS[name].model) and model.config == config
    tensorlite.manual_seed(0)
    again = models.build_model(name, config.to_dict())  # what a checkpoint stores
    assert again.config == config
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert np.array_equal(a.detach().numpy(), b.detach().numpy()), k


def test_registry_refuses_unknown_types_and_foreign_configs():
    import models
    with pytest.raises(KeyError, match="'bigram', 'gpt'"):
        models.build_model("lstm", {})
    with pytest.raises(TypeError, match="GPTConfig"):
        models.build_model("gpt", models.BigramConfig(5))
    assert models.config_from("gpt", {}) == GPTConfig()


def test_bigram_config_and_a_bare_vocab_size_agree():
    from models.bigram import BigramConfig
    assert BigramLanguageModel(5).config == BigramConfig(5) and BigramConfig(5.0).vocab_size == 5
    with pytest.raises(ValueError, match="vocab_size"):
        BigramConfig(2.5)


def test_context_size_is_what_generation_feeds_the_model():
    assert BigramLanguageModel(5).context_size == 1 and GPT(tiny_config(block_size=4)).context_size == 4


@pytest.mark.parametrize("name, values", [
    ("gpt", dict(vocab_size=65, block_size=16, n_embd=32, n_layer=2, n_head=4)),
    ("gpt", dict(vocab_size=7, block_size=5, n_embd=12, n_layer=3, n_head=3, bias=False, norm="pre",
                 activation="gelu")),
    ("bigram", dict(vocab_size=11)),
])
def test_a_config_counts_its_parameters_without_building_the_model(name, values):
    from models import build_model, config_from
    config = config_from(name, values)
    assert config.num_params() == build_model(name, config).num_params()


def test_pickled_gpt_keeps_its_weights_and_drops_its_gradients():
    """pickle.dump(model, f), as the course's scripts save a model: the weights and config, not the .grad
    of every parameter (tensorlite.tensor_pickle)."""
    import pickle
    tensorlite.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_embd=16, n_layer=1, n_head=2, dropout=0.0))
    idx = tensorlite.randint(0, 11, (2, 8))
    model(idx, idx)[1].backward()
    before = len(pickle.dumps(model))
    loaded = pickle.loads(pickle.dumps(model))
    assert all(p.grad is None for p in loaded.parameters())
    np.testing.assert_array_equal(loaded(idx)[0].detach().numpy(), model(idx)[0].detach().numpy())
    model.zero_grad()
    assert len(pickle.dumps(model)) == before  # the gradients were never in the file
