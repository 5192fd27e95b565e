"""Generation with a key/value cache gives the same logits and tokens as running the whole context each step."""
import json

import numpy as np
import pytest

import tensorlite
from benchmarks import generate as bench
from models.bigram import BigramLanguageModel
from models.gpt import GPT, GPTConfig
from models.sampling import generate_tokens
from tensorlite.nn import MultiHeadAttention
from tensorlite.nn.attention import KVCache

ARCHS = [dict(norm=n, bias=b) for n in ("post", "pre") for b in (True, False)]


def make_gpt(device="cpu", dtype=tensorlite.float32, seed=0, **kw):
    base = dict(vocab_size=11, block_size=6, n_embd=16, n_layer=2, n_head=2, dropout=0.0)
    base.update(kw)
    tensorlite.manual_seed(seed)
    model = GPT(GPTConfig(**base)).to(device, dtype=dtype)
    # larger weights than the initialisation's 0.02 make the logits, and so the sampled tokens, depend on
    # the context: a model that ignored its cache (or used it wrongly) would not pass
    with tensorlite.no_grad():
        for p in model.parameters():
            if p.ndim >= 2:
                p.copy_(p * 20.0)
    return model.eval()


def random_ids(shape, vocab, device, seed=1):
    ids = np.random.default_rng(seed).integers(0, vocab, shape)
    return tensorlite.tensor(ids, dtype=tensorlite.int64, device=device)


def generated(model, idx, n, use_cache, seed=None, **kw):
    if seed is not None:
        tensorlite.manual_seed(seed)
    return model.generate(idx, n, use_cache=use_cache, **kw).numpy()


# ---------------------------------------------------------------- the same tokens
@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: f"{a['norm']}-bias{a['bias']}")
def test_cached_and_uncached_generation_give_the_same_tokens(device, arch):
    model = make_gpt(device, **arch)
    idx = random_ids((2, 3), 11, device)
    n = 3 * model.config.block_size  # well past the window: it slides and the cache is rebuilt
    greedy = generated(model, idx, n, use_cache=False, top_k=1)
    assert (generated(model, idx, n, use_cache=True, top_k=1) == greedy).all()
    for seed in (0, 1):
        sampled = generated(model, idx, n, use_cache=False, seed=seed)
        assert (generated(model, idx, n, use_cache=True, seed=seed) == sampled).all()
        assert len(np.unique(sampled)) > 2  # sampling really varies, so the comparison means something
    assert (generated(model, idx, n, use_cache=True, seed=0, temperature=0.7, top_k=3)
            == generated(model, idx, n, use_cache=False, seed=0, temperature=0.7, top_k=3)).all()


def test_a_prompt_longer_than_the_window_is_cropped_the_same_way():
    model = make_gpt()
    idx = random_ids((1, 15), 11, "cpu")
    assert (generated(model, idx, 10, True, seed=3) == generated(model, idx, 10, False, seed=3)).all()


# ---------------------------------------------------------------- the same logits, step by step
@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: f"{a['norm']}-bias{a['bias']}")
@pytest.mark.parametrize("dtype, tol", [(tensorlite.float32, 1e-5), (tensorlite.float64, 1e-12)])
def test_cached_logits_match_the_full_forward_step_by_step(device, arch, dtype, tol):
    model = make_gpt(device, dtype=dtype, **arch)
    T = model.config.block_size
    ids = random_ids((2, T), 11, device)
    with tensorlite.no_grad():
        full, _ = model(ids)  # position t's logits see tokens 0..t: what each cached step must reproduce
        for prompt_len in (1, 3):
            cache = model.new_kv_cache()
            logits, _ = model(ids[:, :prompt_len], kv_cache=cache)
            steps = [logits]
            for t in range(prompt_len, T):
                logits, _ = model(ids[:, t:t + 1], kv_cache=cache)
                assert logits.shape == (2, 1, 11)
                steps.append(logits)
            assert cache[0].length == T and cache[0].k.shape == (2, 2, T, 8)
            np.testing.assert_allclose(tensorlite.cat(steps, dim=1).numpy(), full.numpy(), rtol=tol, atol=tol)


def test_attention_with_a_cache_matches_causal_attention(device):
    tensorlite.manual_seed(0)
    attn = MultiHeadAttention(12, 3).to(device, dtype=tensorlite.float64)
    x = tensorlite.randn(2, 5, 12, dtype=tensorlite.float64, device=device)
    with tensorlite.no_grad():
        want = attn(x).numpy()
        cache = KVCache()
        got = [attn(x[:, :2], cache)] + [attn(x[:, t:t + 1], cache) for t in range(2, 5)]
    np.testing.assert_allclose(tensorlite.cat(got, dim=1).numpy(), want, rtol=1e-12, atol=1e-12)
    # the cache holds exactly the keys and values of the full projection, split into heads
    k = (x.detach().numpy() @ attn.c_attn.weight.detach().numpy().T + attn.c_attn.bias.detach().numpy())[..., 12:24]
    np.testing.assert_allclose(cache.k.numpy(), k.reshape(2, 5, 3, 4).transpose(0, 2, 1, 3), rtol=1e-12)


# ---------------------------------------------------------------- what runs at each step
def record_lengths(model):
    """Wrap model.forward to record the length of every input it gets."""
    lengths, forward = [], model.forward

    def spy(idx, *args, **kw):
        lengths.append((idx.shape[1], kw.get("kv_cache") is not None))
        return forward(idx, *args, **kw)
    model.forward = spy
    return lengths


def test_each_cached_step_runs_one_token_until_the_window_slides():
    model = make_gpt(block_size=4)
    lengths = record_lengths(model)
    list(generate_tokens(model, random_ids((1, 2), 11, "cpu"), 6, context=4))
    # prompt of 2 into the cache, then one token at a time up to 4 tokens; then the window slides:
    # a full window each step, and no cache (it would be stale at the next step)
    assert lengths == [(2, True), (1, True), (1, True), (4, False), (4, False), (4, False)]
    lengths.clear()
    list(generate_tokens(model, random_ids((1, 2), 11, "cpu"), 4, context=4, use_cache=False))
    assert lengths == [(2, False), (3, False), (4, False), (4, False)]
    lengths.clear()
    list(generate_tokens(model, random_ids((1, 9), 11, "cpu"), 2, context=4))  # a long prompt: cropped
    assert lengths == [(4, False), (4, False)]


def test_the_bigram_model_only_sees_the_last_token():
    tensorlite.manual_seed(0)
    model = BigramLanguageModel(7)
    lengths = record_lengths(model)
    out = model.generate(random_ids((2, 5), 7, "cpu"), 6)
    assert out.shape == (2, 11) and lengths == [(1, False)] * 6


def test_generation_runs_in_eval_mode_and_restores_train_mode():
    model = make_gpt(dropout=0.5).train()  # dropout would make the two paths differ if it were left on
    idx = random_ids((1, 2), 11, "cpu")
    assert (generated(model, idx, 9, True, seed=0) == generated(model, idx, 9, False, seed=0)).all()
    assert model.training


# ---------------------------------------------------------------- bad inputs
def test_bad_cache_use_is_an_error():
    model = make_gpt(block_size=6)
    ids = random_ids((1, 6), 11, "cpu")
    cache = model.new_kv_cache()
    with tensorlite.no_grad():
        model(ids[:, :3], kv_cache=cache)
        with pytest.raises(ValueError, match="one new position at a time, got 2"):
            model(ids[:, :2], kv_cache=cache)
        for t in range(3, 6):
            model(ids[:, t:t + 1], kv_cache=cache)
        with pytest.raises(ValueError, match="block_size 6.*6 positions are cached"):
            model(ids[:, :1], kv_cache=cache)
        with pytest.raises(ValueError, match="kv_cache has 1 layers, the model 2"):
            model(ids, kv_cache=[KVCache()])
    attn = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"\(B, T, 8\)"):
        attn(tensorlite.zeros(1, 2, 6), KVCache())


def test_an_empty_cache_has_length_zero_and_appends_along_time():
    cache = KVCache()
    assert cache.length == 0
    k = tensorlite.randn(1, 2, 3, 4)
    cache.append(k, k)
    k2, v2 = cache.append(k[:, :, :1], k[:, :, :1])
    assert cache.length == 4 and k2.shape == v2.shape == (1, 2, 4, 4)
    np.testing.assert_array_equal(k2.numpy()[:, :, 3], k.numpy()[:, :, 0])


# ---------------------------------------------------------------- the benchmark
def test_generate_benchmark_runs_at_a_tiny_size(tmp_path, capsys):
    path = tmp_path / "gen.json"
    results = bench.main(["--presets", "cpu", "--tokens", "12", "--repeats", "1", "--block_size", "8",
                          "--n_embd", "16", "--n_layer", "1", "--n_head", "2", "--vocab_size", "9",
                          "--prompt_len", "2", "--json", str(path)])
    out = capsys.readouterr().out
    assert "tok/s inside window" in out and "cache" in out
    payload = json.loads(path.read_text())
    assert payload["benchmark"] == "generate" and "cpu" in payload["machine"]
    (r,) = payload["results"]
    assert r == json.loads(json.dumps(results[0]))
    assert r["same_tokens"] is True and r["tokens_inside_window"] == 7  # 2 + 7 - 1 = 8 tokens still fit
    for mode in ("no cache", "cache"):
        for part in ("inside", "past", "overall"):
            assert r["modes"][mode][part]["median_tokens_per_s"] > 0


def test_rates_split_the_run_at_the_window():
    assert bench.tokens_inside_window(8, 2, 12) == 7 and bench.tokens_inside_window(8, 2, 3) == 3
    r = bench.rates([0.5, 0.5, 1.0], inside=2)
    assert r == {"inside": 2.0, "past": 1.0, "overall": 1.5}
    assert bench.rates([0.5], inside=1)["past"] is None


def test_generate_benchmark_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        bench.parse_args(["--tokens", "0"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--presets", "cpu", "--prompt_len", "65"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--presets", "cpu", "--n_head", "3"])


@pytest.mark.parametrize("temperature", [float("nan"), float("inf"), -0.5, "1"])
def test_sample_next_refuses_a_temperature_that_is_not_a_finite_number_at_least_0(temperature):
    from models.sampling import sample_next
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
        sample_next(tensorlite.zeros(1, 5), temperature)
