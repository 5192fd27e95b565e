"""Index range checks without a host sync (backend.check_values).

On a GPU the checks of embedding and cross_entropy are queued on the device and
read at the next read of a value. The CPU checks at once; these tests switch on
`backend.defer_checks_on_cpu` to run the GPU's deferred path on NumPy too.
"""
import numpy as np
import pytest

import tensorlite as tl
from models.gpt import GPT, GPTConfig
from tensorlite import backend
from tensorlite.nn import functional as F
from train.loop import train_step


@pytest.fixture
def deferred(device, monkeypatch):
    monkeypatch.setattr(backend, "defer_checks_on_cpu", True)
    backend._deferred.clear()
    yield device
    backend._deferred.clear()


def test_cpu_checks_at_once_by_default():
    assert not backend.defer_checks_on_cpu
    with pytest.raises(IndexError, match="index 7 is out of range") as info:
        F.embedding(tl.tensor([1, 7]), tl.randn(5, 2))
    assert "reported at the first read" not in str(info.value)
    assert backend._deferred == []


def test_embedding_error_comes_at_the_next_read(deferred):
    w = tl.randn(5, 3, device=deferred, requires_grad=True)
    out = F.embedding(tl.tensor([[0, 4, 9, 2]], device=deferred), w)  # no error yet: nothing was read
    assert out.shape == (1, 4, 3) and len(backend._deferred) == 1
    with pytest.raises(IndexError, match=r"embedding\(\): index 9 is out of range for an embedding table of "
                                         r"size 5 .* reported at the first read of a value after it"):
        out.sum().item()
    assert backend._deferred == []  # reported once; the next read works
    np.testing.assert_array_equal(out.detach().numpy()[0, 1], w.detach().numpy()[4])


@pytest.mark.parametrize("read", ["item", "numpy", "tolist", "synchronize"])
def test_every_read_runs_the_queued_checks(deferred, read):
    logits = tl.randn(4, 3, device=deferred, requires_grad=True)
    loss = F.cross_entropy(logits, tl.tensor([0, -100, 5, 1], device=deferred))  # -100: ignored, not an error
    reads = {"item": loss.item, "numpy": loss.detach().numpy, "tolist": loss.tolist,
             "synchronize": lambda: backend.synchronize(deferred)}
    with pytest.raises(IndexError, match="target 5 is out of range for 3 classes"):
        reads[read]()
    assert np.isfinite(loss.item())  # the kernels stayed in bounds meanwhile


def test_valid_indices_pass_and_the_queue_is_bounded(deferred, monkeypatch):
    monkeypatch.setattr(backend, "MAX_DEFERRED", 4)
    w = tl.randn(6, 2, device=deferred)
    for n in range(1, 4):
        F.embedding(tl.tensor([0, 5], device=deferred), w)
        assert len(backend._deferred) == n
    F.embedding(tl.tensor([1], device=deferred), w)  # the fourth fills the queue, which is then read
    assert backend._deferred == []
    F.embedding(tl.tensor([1, 2], device=deferred), w)
    F.embedding(tl.tensor([3, 6], device=deferred), w)
    F.embedding(tl.tensor([4], device=deferred), w)
    with pytest.raises(IndexError, match="index 6"):
        F.embedding(tl.tensor([0], device=deferred), w)  # the bad call two calls back, found when the queue fills


def _tiny_gpt(device):
    """A small GPT with dropout, its AdamW and one random batch on `device`."""
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_embd=16, n_layer=2, n_head=2, dropout=0.1)).to(device)
    x, y = (tl.randint(0, 11, (3, 8), device=device) for _ in range(2))
    return model, tl.optim.AdamW(model.parameters(), lr=1e-3), x, y


def test_a_training_step_reads_nothing_back(deferred):
    """Every check of a GPT step (two embeddings and the loss) is queued; none is read inside the step."""
    model, opt, x, y = _tiny_gpt(deferred)
    for step in range(2):
        loss = train_step(model, opt, x, y, grad_clip=1.0)
        assert len(backend._deferred) == 3 * (step + 1)
    assert np.isfinite(loss.item()) and backend._deferred == []


@pytest.mark.cuda
def test_a_copy_to_the_cpu_runs_the_queued_checks():
    w = tl.randn(5, 3, device="cuda")
    out = F.embedding(tl.tensor([2, 5], device="cuda"), w)
    with pytest.raises(IndexError, match="index 5 is out of range"):
        out.to("cpu")


@pytest.mark.cuda
def test_cuda_step_does_not_synchronize():
    cupyx = pytest.importorskip("cupyx")
    if not hasattr(cupyx, "allow_synchronize"):
        pytest.skip("this CuPy has no cupyx.allow_synchronize to detect a synchronisation")
    model, opt, x, y = _tiny_gpt("cuda")
    with cupyx.allow_synchronize(False):
        for _ in range(2):
            loss = train_step(model, opt, x, y, grad_clip=1.0)
    assert np.isfinite(loss.item())
