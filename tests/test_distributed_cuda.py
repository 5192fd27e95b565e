"""The GPU side of data parallelism on one GPU (marked cuda: skipped without one): NCCL with one rank (NCCL
refuses two ranks on one GPU), reached the way train/distributed.py reaches it, so a session with a GPU runs
the NCCL calls for real (benchmarks.device_check runs this file with the others)."""
import socket

import numpy as np
import pytest

import tensorlite
from train import distributed

pytestmark = pytest.mark.cuda
cupy = pytest.importorskip("cupy", reason="CuPy is not installed")


@pytest.fixture
def one_rank_nccl():
    from cupy.cuda import nccl
    if not nccl.available:
        pytest.skip("CuPy cannot load NCCL: pip install nvidia-nccl-cu12")
    from cupyx.distributed import NCCLBackend
    with socket.socket() as s:  # a free port for NCCLBackend's own store (one rank: no MPI needed)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    world = distributed.MPIWorld.__new__(distributed.MPIWorld)
    world.size, world.rank, world.local_rank, world.is_main, world.host = 1, 0, 0, True, "gpu"
    world.nccl = NCCLBackend(1, 0, port=port)
    return world


def test_the_flat_all_reduce_runs_on_the_gpu_through_nccl(one_rank_nccl):
    tensorlite.manual_seed(0)
    model = tensorlite.nn.Sequential(tensorlite.nn.Linear(5, 7), tensorlite.nn.Linear(7, 3)).to("cuda")
    loss = model(tensorlite.randn(4, 5, device="cuda")).square().mean()
    loss.backward()
    expected = [p.grad.numpy().copy() for p in model.parameters()]
    reducer = distributed.GradientReducer(model.parameters(), one_rank_nccl)
    assert isinstance(reducer.buffer, cupy.ndarray) and reducer.buffer.dtype == np.float32
    mean = reducer.reduce(loss.detach(), stop=True)
    assert mean.device.startswith("cuda") and mean.item() == pytest.approx(loss.item(), rel=1e-6)
    assert reducer.stop_requested()
    for p, g in zip(model.parameters(), expected):
        np.testing.assert_allclose(p.grad.numpy(), g, rtol=1e-6)


def test_the_weights_are_broadcast_through_nccl(one_rank_nccl):
    model = tensorlite.nn.Linear(3, 2).to("cuda")
    before = [p.detach().numpy().copy() for p in model.parameters()]
    distributed.broadcast_model(type("Two", (), {"size": 2, "broadcast_": one_rank_nccl.broadcast_})(), model)
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.detach().numpy(), b)
