"""Data-parallel training: `mpiexec -n N python -m train.gpt` starts N copies of the program (ranks); each
computes the gradient of its share of every batch, and one all-reduce per step averages them, so every rank
takes the step that one process would take with the whole batch.

    world = init_world()               # outside mpiexec a one-process World: mpi4py is never imported
    world.use_device(device)           # on CUDA: NCCL between the ranks' GPUs (its id passed over MPI)
    reducer = GradientReducer(params, world)
    ...                                # each rank: forward and backward of its micro-batches
    loss = reducer.reduce(loss, stop)  # one all-reduce of [gradients..., loss, stop]: the means of all ranks

How N processes stay one run:
* The same start. Every rank seeds the same and builds the same model; rank 0's weights are broadcast anyway.
* The same batches. Every rank draws the same global batch from the seeded generator and takes its slice
  (train/data.py), so the batches do not depend on the number of ranks, and a run resumes with any number.
* The same step. The gradients are copied into one flat buffer, summed over the ranks by one Allreduce (MPI
  on the CPU, NCCL on GPUs, on the device) and divided by the number of ranks. Every rank then makes the same
  AdamW update of the same weights, so they stay identical (`check_replicas` compares them at evaluations).
* One decision. A stop asked for on any rank (Ctrl-C, SIGTERM) travels in the same buffer, so all ranks stop
  after the same step. An error that one rank meets is passed to all at the points where they meet
  (`agree`), so all exit with the same line; anywhere else the job is aborted (MPI_Abort) rather than left
  waiting, and a rank that waits longer than TENSORLITE_MPI_TIMEOUT seconds (300) in one call aborts it too.
* One writer. Rank 0 alone writes the checkpoints, the log and the plot, and prints.

Messages between ranks are raw bytes and NumPy buffers (never pickles): a checkpoint is read by rank 0 and
its bytes broadcast, so the other machines of a job need no copy of out_dir.
"""
import contextlib
import hashlib
import json
import os
import select
import signal
import sys
import threading
import time

import numpy as np

import tensorlite
from tensorlite import backend
from train.errors import DeviceError, Interrupted, UserError

# (size, rank, local rank) as the launchers put them in each process's environment: MPICH and Intel MPI
# (Hydra, and Slurm's srun with PMI), Open MPI, MVAPICH.
LAUNCHERS = (("PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID"),
             ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"),
             ("MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_LOCAL_RANK"))
TIMEOUT_VARIABLE = "TENSORLITE_MPI_TIMEOUT"


def launched(environ=os.environ):
    """(size, rank, local rank) that mpiexec gave this process; (1, 0, 0) outside mpiexec."""
    for size, rank, local in LAUNCHERS:
        try:
            n, r = int(environ[size]), int(environ.get(rank, 0))
        except (KeyError, ValueError):
            continue
        local_rank = environ.get(local, "")
        return n, r, int(local_rank) if local_rank.isdigit() else r
    return 1, 0, 0


class CollectiveError(UserError):
    """An error that every rank raises at the same point: rank 0 prints it, the others exit quietly."""
    collective = True

    def __init__(self, message, exit_code=2):
        super().__init__(message)
        self.exit_code = exit_code


# ---------------------------------------------------------------- one process
class World:
    """The ranks of a run. This one is a single process, where every operation is the identity."""
    size, rank, local_rank, is_main = 1, 0, 0, True

    def use_device(self, device):
        """The device of this rank (`cuda` is cuda:<local rank> under mpiexec)."""
        return device

    def allreduce_sum_(self, array):
        """Sum `array` over the ranks, in place."""
        return array

    def broadcast_(self, array):
        """Rank 0's values of `array` on every rank, in place."""
        return array

    def broadcast_bytes(self, data):
        return data

    def sum_floats(self, values):
        """The sums over the ranks of a few numbers (float64)."""
        return [float(v) for v in values]

    def gather_bytes(self, data):
        """On rank 0 the list of every rank's `data` (rank order); elsewhere None."""
        return [data]

    def agree(self, error=None):
        """Meet the other ranks: if any of them brings an error, every rank raises it (CollectiveError on all
        but the rank that had it, which raises its own; an Interrupted when it was a Ctrl-C)."""
        if error is not None:
            raise error

    def abort(self, code):
        """End the job now, every rank (after an error that the other ranks do not know of)."""
        sys.exit(code)

    def describe(self):
        return ""


class _Watchdog(threading.Thread):
    """Aborts the job when this rank has waited too long for the others in one call: a rank died, or hangs,
    and the launcher did not end the job."""

    def __init__(self, world, seconds):
        super().__init__(name="tensorlite-mpi-watchdog", daemon=True)
        self.world, self.seconds, self.waiting = world, seconds, None

    def run(self):
        while True:
            time.sleep(1.0)
            waiting = self.waiting
            if waiting is not None and time.monotonic() - waiting[0] > self.seconds:
                os.write(2, (f"error: rank {self.world.rank} waited {self.seconds:g} s for the other ranks in "
                             f"{waiting[1]}: a rank died or hangs; ending the job (a longer wait: "
                             f"{TIMEOUT_VARIABLE}=SECONDS)\n").encode())
                self.world.abort(3)


def timeout_seconds():
    """TENSORLITE_MPI_TIMEOUT: how long a rank waits for the others (300 s)."""
    try:
        return float(os.environ.get(TIMEOUT_VARIABLE, 300))
    except ValueError:
        raise UserError(f"{TIMEOUT_VARIABLE} must be a number of seconds, got {os.environ[TIMEOUT_VARIABLE]!r}") \
            from None


@contextlib.contextmanager
def _starting_within(seconds, rank):
    """MPI_Init (importing mpi4py.MPI) waits for every rank holding Python's lock, so no thread of ours, and
    no Python signal handler, can run meanwhile: when a rank dies while starting (a Ctrl-C at that moment)
    the others would wait forever. A forked process watches instead, deaf to the signals meant for the
    rank: if MPI has not started within `seconds` it says so and kills this rank. It ends when this
    process closes the pipe (MPI started) or dies."""
    read, write = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the watcher: nothing but a wait on the pipe
        try:
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, signal.SIG_IGN)
            os.close(write)
            started, _, _ = select.select([read], [], [], seconds)
            if not started:
                os.write(2, f"error: rank {rank}: MPI did not start within {seconds:g} s (did another rank fail "
                            f"while starting?); ending this rank ({TIMEOUT_VARIABLE}=SECONDS for longer)\n".encode())
                os.kill(parent, signal.SIGKILL)  # (alive: its death would have closed the pipe)
        finally:
            os._exit(0)
    os.close(read)
    try:
        yield
    finally:
        os.close(write)
        os.waitpid(pid, 0)


class MPIWorld(World):
    """The ranks that mpiexec started, over mpi4py's COMM_WORLD."""

    def __init__(self, size, rank, local_rank):
        seconds = timeout_seconds()
        try:  # (starting takes a second or two; a rank waits at most 2 minutes for it unless told otherwise)
            with _starting_within(seconds if TIMEOUT_VARIABLE in os.environ else min(seconds, 120), rank):
                from mpi4py import MPI
        except ImportError as exc:
            raise UserError(f"mpiexec started {size} processes, but mpi4py cannot be imported ({exc}); install the "
                            "mpi extra (pip install -e \".[mpi]\"), or run without mpiexec") from None
        self.MPI, self.comm = MPI, MPI.COMM_WORLD
        if self.comm.Get_size() != size:
            library = MPI.Get_library_version().strip().splitlines()[0]
            raise UserError(f"mpiexec started {size} processes, but mpi4py's MPI ({library}) sees "
                            f"{self.comm.Get_size()}: that mpiexec belongs to another MPI. Use the mpiexec of the "
                            f"MPI that mpi4py uses ({os.path.join(os.path.dirname(sys.executable), 'mpiexec')} "
                            "with the mpi extra)")
        self.size, self.rank, self.local_rank = size, self.comm.Get_rank(), local_rank
        self.is_main = self.rank == 0
        self.host = MPI.Get_processor_name()
        self.nccl = None
        self.watchdog = _Watchdog(self, seconds)
        self.watchdog.start()

    def _wait(self, what, call, *args, **kw):
        self.watchdog.waiting = (time.monotonic(), what)
        try:
            return call(*args, **kw)
        except self.MPI.Exception as exc:  # mpi4py's errors return; MPICH aborts by itself on most peer losses
            first = exc.Get_error_string().strip().splitlines()[0]
            raise UserError(f"{what} with the other ranks failed: a rank died or lost its connection "
                            f"(MPI: {first[:200]}); the last checkpoint is kept, continue with --resume") from None
        finally:
            self.watchdog.waiting = None

    def use_device(self, device):
        if device == "cpu":
            return device
        count = backend.cuda_device_count()
        ranks_here = backend.ranks_on_this_machine()
        if device != "cuda:0" or ranks_here > count:
            raise DeviceError(f"{ranks_here} ranks on {self.host} need one GPU each, but " + (
                f"{count} are visible; start at most {count} ranks per machine" if ranks_here > count else
                f"--device {device} puts them all on one; give --device cuda (rank i uses GPU i of its machine)"))
        device = f"cuda:{self.local_rank}"
        with backend.device_context(device):
            try:
                self.nccl = backend.nccl_communicator(self.size, self.rank)
            except RuntimeError as exc:
                raise DeviceError(str(exc)) from None
        return device

    def allreduce_sum_(self, array):
        if isinstance(array, np.ndarray):
            self._wait("an all-reduce", self.comm.Allreduce, self.MPI.IN_PLACE, array, op=self.MPI.SUM)
        else:  # on the GPU, on the current stream: no copy to the host and no wait for the device
            self.nccl.all_reduce(array, array, "sum")
        return array

    def broadcast_(self, array):
        if isinstance(array, np.ndarray):
            self._wait("a broadcast", self.comm.Bcast, array, root=0)
        else:
            self.nccl.broadcast(array, root=0)
        return array

    def broadcast_bytes(self, data, root=0):
        n = np.array([len(data) if self.rank == root else 0], dtype=np.int64)
        self._wait("a broadcast", self.comm.Bcast, n, root=root)
        buf = np.frombuffer(data, dtype=np.uint8).copy() if self.rank == root else np.empty(int(n[0]), np.uint8)
        self._wait("a broadcast", self.comm.Bcast, buf, root=root)
        return buf.tobytes()

    def sum_floats(self, values):
        buf = np.array([float(v) for v in values], dtype=np.float64)
        return [float(v) for v in self.allreduce_sum_(buf)]

    def gather_bytes(self, data):
        lengths = np.zeros(self.size, dtype=np.int64)
        self._wait("a gather", self.comm.Allgather, np.array([len(data)], dtype=np.int64), lengths)
        send = np.frombuffer(data, dtype=np.uint8)
        if not self.is_main:
            self._wait("a gather", self.comm.Gatherv, send, None, root=0)
            return None
        received = np.empty(int(lengths.sum()), dtype=np.uint8)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self._wait("a gather", self.comm.Gatherv, send, [received, lengths.tolist(), offsets.tolist(),
                                                         self.MPI.BYTE], root=0)
        return [received[a:a + n].tobytes() for a, n in zip(offsets, lengths)]

    def agree(self, error=None):
        first = np.array([self.rank if error is not None else self.size], dtype=np.int64)
        self._wait("a check of every rank", self.comm.Allreduce, self.MPI.IN_PLACE, first, op=self.MPI.MIN)
        failed = int(first[0])
        if failed == self.size:
            return
        text = ""
        if self.rank == failed:  # what the others need: an interruption (Ctrl-C) or an error, its code and line
            stopped = isinstance(error, KeyboardInterrupt)
            code = getattr(error, "exit_code", 128 + signal.SIGINT if stopped else 2)
            text = f"{'stop' if stopped else 'error'} {int(code)} {error}"
        kind, code, message = self.broadcast_bytes(text.encode("utf-8"), root=failed).decode("utf-8").split(" ", 2)
        if self.rank == failed:
            error.collective = True
            raise error
        if kind == "stop":
            stop = Interrupted(int(code) - 128)
            stop.collective = True
            raise stop
        raise CollectiveError(f"rank {failed} of {self.size}: {message}", int(code))

    def abort(self, code):
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(0.5)  # for mpiexec to pass on what this rank printed before the job is torn down
        self.comm.Abort(code)

    def describe(self):
        hosts = "" if backend.ranks_on_this_machine() == self.size else " on several machines"
        threads = os.environ.get("OPENBLAS_NUM_THREADS", "?")
        return f"{self.size} ranks{hosts}, {threads} BLAS thread{'' if threads == '1' else 's'} each"


def mpiexec_command():
    """(the mpiexec command line that starts ranks, None), or (None, why there is none): for the benchmarks and
    the tests. The mpiexec beside this Python comes first (the mpi extra's: the MPI that mpi4py uses), then
    the PATH's. Open MPI needs --oversubscribe for more ranks than cores, and --allow-run-as-root as root;
    MPICH needs neither."""
    import importlib.util
    import shutil
    import subprocess
    if importlib.util.find_spec("mpi4py") is None:
        return None, "mpi4py is not installed (pip install -e \".[mpi]\")"
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    exe = beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")
    if exe is None:
        return None, "no mpiexec beside this Python or on the PATH (pip install -e \".[mpi]\")"
    try:
        version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{exe} --version failed: {exc}"
    if "Open MPI" not in version and "OpenRTE" not in version:
        return [exe], None
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    return [exe, "--oversubscribe"] + (["--allow-run-as-root"] if root else []), None


_world = None


def init_world():
    """The World of this process: MPIWorld under mpiexec with more than one process, else World (and
    mpi4py is never imported). Made once; `current()` returns it."""
    global _world
    if _world is None:
        size, rank, local_rank = launched()
        _world = MPIWorld(size, rank, local_rank) if size > 1 else World()
    return _world


def current():
    """The World made by init_world, or None before (cli_main asks, to know whether it may print)."""
    return _world


# ---------------------------------------------------------------- the gradients of a step
class GradientReducer:
    """One flat buffer [every gradient..., loss, stop] of the parameters' dtype (float32) on their device,
    summed over the ranks once per step and divided by their number."""

    def __init__(self, params, world):
        self.params = [p for p in params if p.requires_grad]
        self.world = world
        self.device = self.params[0].device
        sizes = [p.numel() for p in self.params]
        self.ends = np.cumsum(sizes).tolist()
        xp = backend.xp_for(self.device)
        dtype = np.result_type(*[p.data.dtype for p in self.params])
        with backend.device_context(self.device):
            self.buffer = xp.zeros(self.ends[-1] + 2, dtype=dtype)

    def reduce(self, loss, stop=False):
        """Average the gradients (and `loss`, a 0-d tensor) over the ranks; `stop` is this rank's wish to stop.
        The parameters' gradients become views of the buffer; returns the mean loss as a new 0-d tensor."""
        buf, start = self.buffer, 0
        with backend.device_context(self.device):
            for p, end in zip(self.params, self.ends):
                if p.grad is None:
                    buf[start:end] = 0
                else:
                    buf[start:end] = p.grad.data.reshape(-1)
                start = end
            buf[-2] = loss.data
            buf[-1] = 1.0 if stop else 0.0
            self.world.allreduce_sum_(buf)
            buf *= 1.0 / self.world.size
            start = 0
            for p, end in zip(self.params, self.ends):
                p.grad = tensorlite.Tensor.wrap(buf[start:end].reshape(p.shape), self.device)
                start = end
            return tensorlite.Tensor.wrap(buf[-2:-1].reshape(()).copy(), self.device)  # 0-d, not the buffer

    def stop_requested(self):
        """Whether a rank asked to stop in the last step (on a GPU this waits for the step to finish)."""
        return float(self.buffer[-1]) > 0


def weights_digest(model):
    """A hash of every parameter's bytes: equal on all ranks while they are one run."""
    h = hashlib.blake2b(digest_size=8)
    for p in model.parameters():
        h.update(np.ascontiguousarray(backend.to_numpy(p.data)).tobytes())
    return h.digest()


def check_replicas(world, model, step):
    """Raise on every rank if the ranks' weights are not bit for bit the same (a bug, never expected)."""
    if world.size == 1:
        return
    digests = world.gather_bytes(weights_digest(model))
    error = None
    if world.is_main:
        differ = [r for r, d in enumerate(digests) if d != digests[0]]
        if differ:
            error = RuntimeError(f"at step {step} the weights of rank(s) {differ} differ from rank 0's: the ranks "
                                 "no longer train one model (a bug of tensorlite: please report it)")
    world.agree(error)


def broadcast_model(world, model):
    """Rank 0's weights on every rank (they are the same already when all seeded alike: this makes sure)."""
    if world.size == 1:
        return
    for p in model.parameters():
        with backend.device_context(p.device):  # (NCCL works on the current device's stream)
            world.broadcast_(p.data)


def seed_rank(rank, seed, step=0):
    """Give rank `rank` (> 0) its own random stream (its dropout masks), from (seed, rank, step); rank 0 keeps
    the stream that a one-process run has."""
    if rank > 0:
        tensorlite.manual_seed(int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0]))


def rng_states(world):
    """On rank 0 the random-generator state of every rank (JSON-able), for the checkpoint; elsewhere None."""
    blobs = world.gather_bytes(json.dumps(tensorlite.get_rng_state()).encode("utf-8"))
    return None if blobs is None else [json.loads(b) for b in blobs]
