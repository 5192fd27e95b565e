"""How the tests start programs under mpiexec: which mpiexec (the one beside this Python first: the mpi
extra's MPICH), its flags as root (Open MPI refuses root without --allow-run-as-root; MPICH needs nothing),
and a skip with the reason when there is no MPI."""
import functools
import os
import subprocess
import sys

import pytest

from train.distributed import mpiexec_command


@functools.lru_cache(maxsize=None)
def mpiexec():
    """[mpiexec, its flags] (train.distributed.mpiexec_command), or None when mpiexec or mpi4py is missing."""
    return mpiexec_command()[0]


def why_not():
    return mpiexec_command()[1]


requires_mpi = pytest.mark.skipif(mpiexec() is None, reason=f"no MPI to start ranks with: {why_not()}")


def mpi_env(**extra):
    """The environment of a launched run: the repository on the path, no inherited thread settings."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                            "MKL_NUM_THREADS")}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_mpi(n, args, timeout=120, **kw):
    """`mpiexec -n n python ARGS...`: the CompletedProcess (text)."""
    return subprocess.run([*mpiexec(), "-n", str(n), sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, env=kw.pop("env", None) or mpi_env(), **kw)


def run_mpmd(first, second, timeout=100, env=None):
    """Rank 0 runs the command `first`, rank 1 the command `second` (mpiexec's `-n 1 A : -n 1 B`)."""
    return subprocess.run([*mpiexec(), "-n", "1", *first, ":", "-n", "1", *second], capture_output=True, text=True,
                          timeout=timeout, env=env or mpi_env())
