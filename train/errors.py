"""The errors a user can act on. ``cli_main`` prints any of them as one line and exits non-zero;
anything else that escapes a program is a bug and keeps its traceback.

Each also derives from the built-in class of its kind (ValueError, RuntimeError), so code that
catches those catches these too. train.tokenizers.UnknownCharacterError (a prompt or text with
characters outside the vocabulary) is one of them as well; it lives beside the tokenizers that raise it.
"""
from tensorlite.serialization import CheckpointError as _FileError


class UserError(Exception):
    """Base of every error caused by input (flags, files, devices, data), never by a bug."""
    exit_code = 2


class DataError(UserError, ValueError):
    """A corpus or dataset cannot be read or used (missing, empty, too short for --block_size, ...)."""


class CheckpointError(UserError, _FileError):
    """A file is not a usable tensorlite checkpoint (missing, foreign, corrupt, or of another model).
    It is the same error tensorlite.load raises, so one `except tensorlite.CheckpointError` catches both."""


class DeviceError(UserError, RuntimeError):
    """The device asked for cannot be used (e.g. --device cuda without a GPU)."""


class TrainingDiverged(UserError, RuntimeError):
    """The loss became NaN or infinite. Under mpiexec every rank sees the same (all-reduced) loss and stops
    at the same step, so this is `collective`: rank 0 alone reports it (train/cli.py)."""
    exit_code = 1
    collective = True


class Interrupted(KeyboardInterrupt):
    """A stop asked for by a signal (Ctrl-C's SIGINT, SIGTERM, SIGHUP): cli_main exits 128 + its number."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum


class ResourceError(UserError, MemoryError):
    """The run needs more memory than the machine has; the message says which flag to lower."""
