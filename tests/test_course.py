"""Course-style programs (written here, in the manner of the freeCodeCamp "LLM from scratch" notebooks), run
with tensorlite imported as torch: `import tensorlite as torch`, `import tensorlite.nn as nn`,
`from tensorlite.nn import functional as F`.

Each program is a function of (torch, nn, F) that prints, as a notebook cell would. Where PyTorch is installed,
the same program also runs with PyTorch and the two are compared: the printed text of deterministic tensors
(with `tensorlite` read as `torch`), and for the models, with tensorlite's initial weights copied into PyTorch's,
the same losses (to 4 decimals, as the course prints them) and shapes and dtypes of what they generate.
"""
import contextlib
import io
import pickle
import re

import numpy as np
import pytest

import tensorlite
import tensorlite.nn
from tensorlite.nn import functional as tl_F

try:
    import torch as real_torch
except ImportError:  # the comparisons skip; the programs still run on tensorlite
    real_torch = None

needs_torch = pytest.mark.skipif(real_torch is None, reason="PyTorch is not installed: nothing to compare with")
TEXT = "Holmes took his bottle from the corner of the mantel-piece. " * 20


def run(program, lib, *args):
    """Run a program with one library, returning (what it printed, what it returned)."""
    mods = (tensorlite, tensorlite.nn, tl_F) if lib == "tensorlite" else (
        real_torch, real_torch.nn, real_torch.nn.functional)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = program(*mods, *args)
    return out.getvalue(), result


def as_torch(text):
    return text.replace("tensorlite", "torch")


# ------------------------------------------------------------------------------------------ tensor basics
def basics(torch, nn, F):
    print(torch.tensor([[0.1, 1.2], [2.5, 9.8], [8.6, 9.1]]))
    print(torch.zeros(2, 3))
    print(torch.ones(3, 2, dtype=torch.int64))
    print(torch.empty((2, 3), dtype=torch.float64).shape)
    print(torch.arange(5))
    print(torch.linspace(3, 10, steps=5))
    print(torch.logspace(start=-10, end=10, steps=5))
    print(torch.eye(3))
    print(torch.cat((torch.tensor([1, 2, 3, 4]), torch.tensor([5])), dim=0))
    print(torch.tril(torch.ones(4, 4)))
    print(torch.triu(torch.ones(4, 4)))
    masked = torch.zeros(4, 4).masked_fill(torch.tril(torch.ones(4, 4)) == 0, float("-inf"))
    print(masked)
    print(torch.exp(masked))
    print(torch.zeros(2, 3, 4).transpose(0, 2).shape)
    print(torch.stack([torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6])]))
    print(F.softmax(torch.tensor([1.0, 2.0, 3.0]), dim=0))
    print(torch.tensor([[1, 2], [3, 4], [5, 6]]) @ torch.tensor([[7, 8, 9], [10, 11, 12]]))
    print(torch.LongTensor([1, 5, 3, 2]), torch.LongTensor([1, 5, 3, 2]).dtype)
    print(torch.tensor([-0.05]).sigmoid(), F.sigmoid(torch.tensor([-0.05])), F.tanh(torch.tensor([10.0])))
    a = torch.zeros(2, 3, 5)
    x, y, z = a.shape
    print(a.view(x * y, z).shape, x, y, z, a.dtype, a.shape[-1])
    print(torch.tensor([0.001, 123456.0]), torch.tensor([1e-10, 1.0]), torch.tensor([1.5, float("nan")]))
    print(torch.tensor(3.14159), torch.tensor([True, False]), torch.tensor([[1.0, -2.5]], dtype=torch.float64))
    print(torch.arange(30).reshape(3, 10) * 1000)
    loss = torch.tensor(2.718281828)
    print(f"loss {loss:.4f} {loss.item():.3f}")
    print(torch.cuda.is_available(), torch.backends.mps.is_available())
    print(torch.ones(2, 2, requires_grad=True) * 2)


def test_basics_runs_on_tensorlite():
    text, _ = run(basics, "tensorlite")
    assert "tensor([0.0900, 0.2447, 0.6652])" in text
    assert "tensorlite.Size([4, 3, 2])" in text
    assert "loss 2.7183 2.718" in text


@needs_torch
def test_basics_prints_as_torch():
    mine, theirs = as_torch(run(basics, "tensorlite")[0]), run(basics, "torch")[0]
    for i, (a, b) in enumerate(zip(mine.splitlines(), theirs.splitlines())):
        assert a == b, f"line {i}: tensorlite printed\n{a}\ntorch printed\n{b}"
    assert len(mine.splitlines()) == len(theirs.splitlines())


# ------------------------------------------------------------------------------------------ a bigram model
def bigram(torch, nn, F, steps=6, init=None):
    """The course's bigram cells, with fixed batches so that both libraries see the same data."""
    chars = sorted(set(TEXT))
    stoi = {c: i for i, c in enumerate(chars)}
    itos = {i: c for i, c in enumerate(chars)}
    encode = lambda s: [stoi[c] for c in s]  # noqa: E731
    decode = lambda l: "".join(itos[i] for i in l)  # noqa: E731
    data = torch.tensor(encode(TEXT), dtype=torch.long)
    n = int(0.8 * len(data))
    train_data, val_data = data[:n], data[n:]
    block_size, batch_size, eval_iters = 8, 4, 3
    offsets = iter(np.random.default_rng(0).integers(0, len(val_data) - block_size, 10_000).tolist())

    def get_batch(split):
        d = train_data if split == "train" else val_data
        ix = [next(offsets) for _ in range(batch_size)]
        x = torch.stack([d[i:i + block_size] for i in ix])
        y = torch.stack([d[i + 1:i + block_size + 1] for i in ix])
        return x, y

    class BigramLanguageModel(nn.Module):
        def __init__(self, vocab_size):
            super().__init__()
            self.token_embedding_table = nn.Embedding(vocab_size, vocab_size)

        def forward(self, index, targets=None):
            logits = self.token_embedding_table(index)
            if targets is None:
                return logits, None
            B, T, C = logits.shape
            logits = logits.view(B * T, C)
            return logits, F.cross_entropy(logits, targets.view(B * T))

        def generate(self, index, max_new_tokens):
            for _ in range(max_new_tokens):
                logits, _ = self.forward(index)
                probs = F.softmax(logits[:, -1, :], dim=-1)
                index = torch.cat((index, torch.multinomial(probs, num_samples=1)), dim=1)
            return index

    model = BigramLanguageModel(len(chars))
    if init is not None:
        init(model)

    @torch.no_grad()
    def estimate_loss():
        out = {}
        model.eval()
        for split in ["train", "val"]:
            losses = torch.zeros(eval_iters)
            for k in range(eval_iters):
                X, Y = get_batch(split)
                _, loss = model(X, Y)
                losses[k] = loss.item()
            out[split] = losses.mean()
        model.train()
        return out

    @torch.no_grad
    def estimate_val_loss():
        return model(*get_batch("val"))[1]

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for it in range(steps):
        if it % 3 == 0:
            losses = estimate_loss()
            print(f"step: {it}, train loss: {losses['train']:.4f}, val loss: {losses['val']:.4f}")
        xb, yb = get_batch("train")
        logits, loss = model.forward(xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    print(f"{loss.item():.4f}", f"{estimate_val_loss():.4f}", estimate_val_loss().requires_grad)
    context = torch.zeros((1, 1), dtype=torch.long)
    generated = model.generate(context, max_new_tokens=20)
    print(generated.shape, generated.dtype, len(decode(generated[0].tolist())))
    return model


def test_bigram_trains_and_samples_on_tensorlite():
    text, model = run(bigram, "tensorlite")
    lines = text.splitlines()
    assert lines[0].startswith("step: 0, train loss: ") and len(lines) == 4
    assert lines[-1] == "tensorlite.Size([1, 21]) tensorlite.int64 21"
    assert lines[-2].endswith(" False")


def snapshot(store):
    """An init for the tensorlite model: remember its initial weights (names and copies of the arrays)."""
    def init(model):
        store.extend((n, np.array(p.detach().numpy())) for n, p in model.named_parameters())
    return init


def copier(weights):
    """An init for the torch model: those weights, parameter by parameter, names checked."""
    def init(model):
        theirs = list(model.named_parameters())
        assert [n for n, _ in weights] == [n for n, _ in theirs]
        with real_torch.no_grad():
            for (_, a), (_, b) in zip(weights, theirs):
                b.copy_(real_torch.from_numpy(a))
    return init


def numbers(text):
    return [float(x) for x in re.findall(r"\d+\.\d{4}\b", text)]


@needs_torch
def test_bigram_same_losses_as_torch_with_the_same_weights():
    weights = []
    tensorlite.manual_seed(0)
    mine, _ = run(bigram, "tensorlite", 6, snapshot(weights))
    theirs, _ = run(bigram, "torch", 6, copier(weights))
    np.testing.assert_allclose(numbers(mine), numbers(theirs), atol=2e-4)
    assert re.sub(r"\d+\.\d{4}", "N", as_torch(mine)) == re.sub(r"\d+\.\d{4}", "N", theirs)


# ------------------------------------------------------------------------------------------ a small GPT
def gpt(torch, nn, F, init=None, dropout=0.0, steps=3):
    """The course's GPT cells at a tiny size: Head with a tril buffer, MultiHeadAttention, FeedForward, Block."""
    vocab_size, n_embd, n_head, n_layer, block_size = 11, 16, 2, 2, 8

    class Head(nn.Module):
        def __init__(self, head_size):
            super().__init__()
            self.key = nn.Linear(n_embd, head_size, bias=False)
            self.query = nn.Linear(n_embd, head_size, bias=False)
            self.value = nn.Linear(n_embd, head_size, bias=False)
            self.register_buffer("tril", torch.tril(torch.ones(block_size, block_size)))
            self.dropout = nn.Dropout(dropout)

        def forward(self, x):
            B, T, C = x.shape
            k, q = self.key(x), self.query(x)
            wei = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5
            wei = wei.masked_fill(self.tril[:T, :T] == 0, float("-inf"))
            wei = self.dropout(F.softmax(wei, dim=-1))
            return wei @ self.value(x)

    class MultiHeadAttention(nn.Module):
        def __init__(self, num_heads, head_size):
            super().__init__()
            self.heads = nn.ModuleList([Head(head_size) for _ in range(num_heads)])
            self.proj = nn.Linear(head_size * num_heads, n_embd)
            self.dropout = nn.Dropout(dropout)

        def forward(self, x):
            return self.dropout(self.proj(torch.cat([h(x) for h in self.heads], dim=-1)))

    class FeedForward(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(n, 4 * n), nn.ReLU(), nn.Linear(4 * n, n), nn.Dropout(dropout))

        def forward(self, x):
            return self.net(x)

    class Block(nn.Module):
        def __init__(self, n, n_head):
            super().__init__()
            self.sa = MultiHeadAttention(n_head, n // n_head)
            self.ffwd = FeedForward(n)
            self.ln1, self.ln2 = nn.LayerNorm(n), nn.LayerNorm(n)

        def forward(self, x):
            x = self.ln1(x + self.sa(x))
            return self.ln2(x + self.ffwd(x))

    class GPTLanguageModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.token_embedding_table = nn.Embedding(vocab_size, n_embd)
            self.position_embedding_table = nn.Embedding(block_size, n_embd)
            self.blocks = nn.Sequential(*[Block(n_embd, n_head=n_head) for _ in range(n_layer)])
            self.ln_f = nn.LayerNorm(n_embd)
            self.lm_head = nn.Linear(n_embd, vocab_size)
            self.apply(self._init_weights)

        def _init_weights(self, module):
            if isinstance(module, nn.Linear):
                torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    torch.nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

        def forward(self, index, targets=None):
            B, T = index.shape
            x = self.token_embedding_table(index) + self.position_embedding_table(torch.arange(T))
            logits = self.lm_head(self.ln_f(self.blocks(x)))
            if targets is None:
                return logits, None
            B, T, C = logits.shape
            return logits, F.cross_entropy(logits.view(B * T, C), targets.view(B * T))

        def generate(self, index, max_new_tokens):
            for _ in range(max_new_tokens):
                logits, _ = self.forward(index[:, -block_size:])
                probs = F.softmax(logits[:, -1, :], dim=-1)
                index = torch.cat((index, torch.multinomial(probs, num_samples=1)), dim=1)
            return index

    # pickle finds a class by its module and name; the course defines these at the top of its script, so here
    # they are published under this module's names, one set per library
    for cls in (Head, MultiHeadAttention, FeedForward, Block, GPTLanguageModel):
        cls.__qualname__ = cls.__name__ = f"{cls.__name__}_{torch.__name__}"
        globals()[cls.__name__] = cls
    model = GPTLanguageModel()
    if init is not None:
        init(model)
    rng = np.random.default_rng(1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(steps):
        xb = torch.tensor(rng.integers(0, vocab_size, (4, block_size)).tolist())
        yb = torch.tensor(rng.integers(0, vocab_size, (4, block_size)).tolist())
        logits, loss = model(xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        print(f"step {step}: loss {loss:.4f}")
    print(len(model.state_dict()), sorted(k for k in model.state_dict() if k.endswith("tril"))[:1])
    blob = pickle.dumps(model)
    loaded = pickle.loads(blob)
    x = torch.tensor([[1, 2, 3]])
    model.eval()
    loaded.eval()
    same = (model(x)[0] - loaded(x)[0]).abs().max().item()
    print("pickle round trip", same == 0.0, all(p.grad is None for p in loaded.parameters()))
    out = loaded.generate(torch.zeros((1, 1), dtype=torch.long), max_new_tokens=10)
    print(out.shape, out.dtype, bool((out >= 0).all()) and bool((out < vocab_size).all()))
    return model, len(blob)


def test_gpt_trains_pickles_and_samples_on_tensorlite():
    text, _ = run(gpt, "tensorlite", None, 0.2)
    lines = text.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["step 0", "step 1", "step 2"]
    assert "pickle round trip True True" in text
    assert lines[-1] == "tensorlite.Size([1, 11]) tensorlite.int64 True"


@needs_torch
def test_gpt_same_losses_and_pickle_size_as_torch():
    weights = []
    tensorlite.manual_seed(0)
    mine, (_, size_tl) = run(gpt, "tensorlite", snapshot(weights))
    theirs, (_, size_pt) = run(gpt, "torch", copier(weights))
    np.testing.assert_allclose(numbers(mine), numbers(theirs), atol=2e-4)
    assert re.sub(r"\d+\.\d{4}", "N", as_torch(mine)) == re.sub(r"\d+\.\d{4}", "N", theirs)
    assert size_tl < 1.25 * size_pt, f"tensorlite's pickle is {size_tl} bytes, torch's {size_pt}"
