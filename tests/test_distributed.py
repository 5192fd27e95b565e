"""Data parallelism without mpiexec (train/distributed.py): the launchers' variables, the BLAS threads of each
rank, every rank's share of a batch, exact gradient accumulation, the flat all-reduce buffer, and what
cli_main does with an error under several ranks. tests/test_distributed_mpi.py runs the real thing."""
import contextlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tensorlite
from tensorlite import backend
from train import distributed
from train import gpt as train_gpt
from train.checkpoint import load_checkpoint
from train.cli import cli_main
from train.data import Batches, corpus_from_text
from train.errors import DataError, DeviceError

TEXT = "the cat sat on the mat. the dog sat on the log. " * 30


def gpt_argv(data, out_dir, *extra):
    return ["--data", data, "--out_dir", str(out_dir), "--device", "cpu", "--preset", "cpu", "--batch_size", "8",
            "--block_size", "8", "--n_embd", "16", "--n_layer", "2", "--n_head", "2", "--max_iters", "8",
            "--eval_interval", "4", "--eval_iters", "3", "--dropout", "0", "--sample_tokens", "0", "--no-plot",
            "--learning_rate", "3e-3", *extra]


def losses(out_dir):
    with open(os.path.join(out_dir, "log.jsonl")) as f:
        return [(r["step"], r["train_loss"], r["val_loss"]) for r in map(json.loads, f)]


def assert_same_losses(a, b, rtol=1e-5):
    assert [s for s, _, _ in a] == [s for s, _, _ in b]
    np.testing.assert_allclose([v for r in a for v in r[1:]], [v for r in b for v in r[1:]], rtol=rtol)


# ---------------------------------------------------------------- the launch
@pytest.mark.parametrize("env, expected", [
    ({}, (1, 0, 0)),
    ({"PMI_SIZE": "4", "PMI_RANK": "3", "MPI_LOCALRANKID": "1"}, (4, 3, 1)),
    ({"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_LOCAL_RANK": "1"}, (2, 1, 1)),
    ({"PMI_SIZE": "2", "PMI_RANK": "1"}, (2, 1, 1)),  # no local rank given: the rank
    ({"PMI_SIZE": "junk"}, (1, 0, 0)),
])
def test_launched_reads_the_launchers_variables(env, expected):
    assert distributed.launched(env) == expected


def test_ranks_share_the_cores_of_their_machine():
    cores = len(os.sched_getaffinity(0))
    full = cores >= (os.cpu_count() or cores)
    assert backend.ranks_on_this_machine({}) == 1
    assert backend.ranks_on_this_machine({"MPI_LOCALNRANKS": "2"}) == 2
    assert backend.ranks_on_this_machine({"OMPI_COMM_WORLD_LOCAL_SIZE": "3"}) == 3
    assert backend.cores_per_process({"MPI_LOCALNRANKS": "2"}) == (max(1, cores // 2) if full else cores)
    assert backend.cores_per_process({"MPI_LOCALNRANKS": str(10 * cores)}) == (1 if full else cores)


@pytest.mark.parametrize("env, expected", [({"MPI_LOCALNRANKS": "2"}, "split"), ({"MPI_LOCALNRANKS": "2",
                                            "OMP_NUM_THREADS": "7"}, "7"), ({}, None)])
def test_blas_threads_are_set_before_numpy_loads_unless_the_user_set_them(env, expected):
    clean = {k: v for k, v in os.environ.items() if k not in backend.THREAD_VARIABLES + backend.LOCAL_RANK_VARIABLES}
    code = ("import os, tensorlite, numpy; from tensorlite import backend; "
            "print(os.environ.get('OPENBLAS_NUM_THREADS'), os.environ.get('OMP_NUM_THREADS'), backend.host_threads)")
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                         check=True).stdout.split()
    split = str(backend.cores_per_process({"MPI_LOCALNRANKS": "2"}))
    if expected == "split":
        assert out == [split, split, split]
    elif expected is None:
        assert out[:2] == ["None", "None"] and out[2] == str(len(os.sched_getaffinity(0)))
    else:
        assert out[:2] == ["None", "7"]  # the user's setting is kept, and no other is added


# ---------------------------------------------------------------- every rank's share of a batch
@pytest.mark.parametrize("ranks, micro", [(1, 1), (1, 4), (2, 1), (2, 2), (4, 2)])
def test_the_shares_of_all_ranks_make_up_the_global_batch(ranks, micro):
    corpus = corpus_from_text(TEXT, 0.2, "text")
    whole = Batches(corpus, 8, 5, seed=3)
    parts = [Batches(corpus, 8, 5, seed=3, rank=r, ranks=ranks, micro_steps=micro) for r in range(ranks)]
    for _ in range(3):
        x, y = whole.next()
        shares = [p.next_share() for p in parts]
        assert all(len(s) == micro for s in shares)
        np.testing.assert_array_equal(np.concatenate([a.numpy() for s in shares for a, _ in s]), x.numpy())
        np.testing.assert_array_equal(np.concatenate([b.numpy() for s in shares for _, b in s]), y.numpy())
    evals = [list(p.eval_batches("val", 2, share=True)) for p in parts]
    for i, (x, _) in enumerate(whole.eval_batches("val", 2)):
        np.testing.assert_array_equal(np.concatenate([a.numpy() for e in evals for a, _ in e[i]]), x.numpy())


def test_a_batch_that_does_not_split_evenly_is_refused():
    with pytest.raises(DataError, match="multiple of 6"):
        Batches(corpus_from_text(TEXT, 0.2, "text"), 8, 5, ranks=2, micro_steps=3)


def test_grad_accum_that_does_not_divide_the_batch_is_one_line(text_file, tmp_path, capsys):
    assert cli_main(train_gpt.main, gpt_argv(text_file, tmp_path / "run", "--grad_accum", "3")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--grad_accum" in err and "multiple of 3" in err and "Traceback" not in err


# ---------------------------------------------------------------- exact accumulation
def test_grad_accum_gives_the_losses_and_weights_of_one_step(text_file, tmp_path):
    train_gpt.main(gpt_argv(text_file, tmp_path / "one"))
    for k in ("2", "4"):
        train_gpt.main(gpt_argv(text_file, tmp_path / k, "--grad_accum", k))
        assert_same_losses(losses(tmp_path / k), losses(tmp_path / "one"))
        a, b = (load_checkpoint(str(tmp_path / d / "last.ckpt"))["model"] for d in (k, "one"))
        for name in a:
            np.testing.assert_allclose(a[name].numpy(), b[name].numpy(), rtol=1e-4, atol=1e-6, err_msg=name)


def test_grad_accum_clips_once_on_the_whole_gradient(text_file, tmp_path):
    train_gpt.main(gpt_argv(text_file, tmp_path / "one", "--grad_clip", "0.05"))
    train_gpt.main(gpt_argv(text_file, tmp_path / "two", "--grad_clip", "0.05", "--grad_accum", "2"))
    assert_same_losses(losses(tmp_path / "two"), losses(tmp_path / "one"))


# ---------------------------------------------------------------- the flat buffer
class TwinWorld(distributed.World):
    """Two ranks that computed the same gradients: the all-reduce doubles every value."""
    size = 2

    def __init__(self):
        self.calls = 0

    def allreduce_sum_(self, array):
        self.calls += 1
        array *= 2
        return array


def test_one_all_reduce_averages_gradients_loss_and_carries_the_stop_wish():
    tensorlite.manual_seed(0)
    model = tensorlite.nn.Sequential(tensorlite.nn.Linear(3, 4), tensorlite.nn.Linear(4, 2))
    x = tensorlite.randn(5, 3)
    loss = model(x).square().mean()
    loss.backward()
    expected = [p.grad.numpy().copy() for p in model.parameters()]
    world = TwinWorld()
    reducer = distributed.GradientReducer(model.parameters(), world)
    mean = reducer.reduce(loss.detach(), stop=False)
    assert world.calls == 1 and not reducer.stop_requested()
    assert mean.item() == pytest.approx(loss.item())
    for p, g in zip(model.parameters(), expected):
        np.testing.assert_allclose(p.grad.numpy(), g, rtol=1e-6)
        assert np.shares_memory(p.grad.data, reducer.buffer)  # views of the buffer: no copy back
    reducer.reduce(loss.detach(), stop=True)
    assert reducer.stop_requested()


# ---------------------------------------------------------------- errors under several ranks
class FakeWorld(distributed.World):
    size, rank, is_main = 2, 1, False

    def __init__(self):
        self.aborted = None

    def abort(self, code):
        self.aborted = code


@pytest.fixture
def rank1_of_2(monkeypatch):
    world = FakeWorld()
    monkeypatch.setattr(distributed, "_world", world)
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setenv("PMI_RANK", "1")
    return world


def test_an_error_of_one_rank_names_it_and_ends_the_job(rank1_of_2, capsys):
    def fail(argv):
        raise DataError("data file 'x' does not exist")
    assert cli_main(fail) == 2
    assert capsys.readouterr().err == "error: rank 1 of 2: data file 'x' does not exist\n"
    assert rank1_of_2.aborted == 2


def test_an_error_all_ranks_met_is_printed_by_rank_0_alone(rank1_of_2, capsys):
    def fail(argv):
        raise distributed.CollectiveError("rank 0 of 2: nothing to resume", 2)
    assert cli_main(fail) == 2
    assert capsys.readouterr().err == "" and rank1_of_2.aborted is None


def test_a_bug_on_one_rank_keeps_its_traceback_and_ends_the_job(rank1_of_2, capsys):
    def fail(argv):
        raise KeyError("oops")
    assert cli_main(fail) == 1
    assert "Traceback" in capsys.readouterr().err and rank1_of_2.aborted == 1


def test_one_process_never_imports_mpi4py(text_file, tmp_path):
    code = ("import sys; from train import gpt; from train.cli import cli_main; "
            f"rc = cli_main(gpt.main, {gpt_argv(text_file, tmp_path / 'run')!r}); "
            "print(rc, 'mpi4py' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split()[-2:] == ["0", "False"]


# ---------------------------------------------------------------- checkpoints read from bytes
def test_load_reads_a_file_object_and_names_it_in_errors(tmp_path):
    path = tmp_path / "a.ckpt"
    tensorlite.save({"w": tensorlite.ones(2)}, path)
    data = path.read_bytes()
    assert load_checkpoint_bytes(data)["w"].tolist() == [1.0, 1.0]
    broken = io.BytesIO(data[:40])
    broken.name = "rank0:last.ckpt"
    with pytest.raises(tensorlite.CheckpointError, match="rank0:last.ckpt"):
        tensorlite.load(broken)


def load_checkpoint_bytes(data):
    return tensorlite.load(io.BytesIO(data))


def test_a_crafted_rank_rng_entry_is_one_checkpoint_error(text_file, tmp_path):
    train_gpt.main(gpt_argv(text_file, tmp_path / "run"))
    path = str(tmp_path / "run" / "last.ckpt")
    ckpt = dict(load_checkpoint(path))
    tensorlite.save({**ckpt, "rank_rng": [{"seed": "x"}]}, path)
    with pytest.raises(tensorlite.CheckpointError, match="rank_rng"):
        load_checkpoint(path)


# ---------------------------------------------------------------- GPUs: one per rank, NCCL (no GPU needed)
def gpu_world(monkeypatch, gpus, ranks_here=2, local_rank=1):
    world = distributed.MPIWorld.__new__(distributed.MPIWorld)  # its MPI part is not needed here
    world.size, world.rank, world.local_rank, world.host, world.nccl = 2, local_rank, local_rank, "node1", None
    monkeypatch.setattr(backend, "cuda_device_count", lambda: gpus)
    monkeypatch.setattr(backend, "ranks_on_this_machine", lambda environ=None: ranks_here)
    monkeypatch.setattr(backend, "device_context", lambda device: contextlib.nullcontext())
    made = []
    monkeypatch.setattr(backend, "nccl_communicator", lambda size, rank: made.append((size, rank)) or "nccl")
    return world, made


def test_each_rank_takes_the_gpu_of_its_local_rank_and_joins_nccl(monkeypatch):
    world, made = gpu_world(monkeypatch, gpus=2)
    assert world.use_device("cuda:0") == "cuda:1" and made == [(2, 1)] and world.nccl == "nccl"
    assert world.use_device("cpu") == "cpu"


@pytest.mark.parametrize("gpus, device, words", [(1, "cuda:0", "1 are visible; start at most 1 ranks"),
                                                 (2, "cuda:1", "give --device cuda")])
def test_ranks_that_cannot_have_a_gpu_each_are_one_line(monkeypatch, gpus, device, words):
    world, made = gpu_world(monkeypatch, gpus=gpus)
    with pytest.raises(DeviceError, match=words):
        world.use_device(device)
    assert made == []


def test_on_a_gpu_the_all_reduce_is_nccls_on_the_device():
    world = distributed.MPIWorld.__new__(distributed.MPIWorld)
    calls = []

    class FakeNccl:
        def all_reduce(self, a, b, op):
            calls.append(("all_reduce", a, b, op))

        def broadcast(self, a, root):
            calls.append(("broadcast", a, root))

    world.nccl, array = FakeNccl(), object()  # anything that is not a NumPy array stands for a CuPy one
    world.allreduce_sum_(array)
    world.broadcast_(array)
    assert calls == [("all_reduce", array, array, "sum"), ("broadcast", array, 0)]
