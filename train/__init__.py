"""Training programs: data, the shared loop, entry points for the bigram and the GPT, sampling and chat."""
import os
import signal
import sys

if sys.argv[:1] == ["-m"]:  # `python -m train.X` is starting: Ctrl-C while it imports is one line, exit 130
    def _interrupted_at_start(signum, frame):
        # under mpiexec every rank gets the signal: rank 0 alone says so (MPICH's, Open MPI's rank variable)
        if os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0")) == "0":
            os.write(2, b"interrupted while starting; nothing was written\n")
        os._exit(128 + signum)
    for _name in ("SIGINT", "SIGTERM", "SIGHUP"):  # cli_main puts its own handlers in their place
        if hasattr(signal, _name):
            signal.signal(getattr(signal, _name), _interrupted_at_start)

import tensorlite  # noqa: F401,E402 (first, so that NumPy loads OpenBLAS with tensorlite's settings: see backend)
