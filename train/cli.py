"""What every program of train/ shares around its work: a command line generated from a config
dataclass (fields of its own, or taken from a model's config with `fields_from`), presets, device
resolution, and `cli_main`, the one error boundary.

    @dataclass
    class MyConfig:
        steps: int = option(10, "how many steps")

    def main(argv=None):
        cfg, given = parse_config(MyConfig, argv)    # --steps N, --help with the defaults
        ...

    if __name__ == "__main__":
        sys.exit(cli_main(main))
"""
import argparse
import dataclasses
import errno
import signal
import sys
import threading
from dataclasses import field

from tensorlite import backend
from tensorlite.serialization import CheckpointError as FileError
from train import distributed
from train.errors import DeviceError, Interrupted, UserError


def option(default, help, **kw):
    """A config field with its --help text (and argparse `choices=` if given)."""
    return field(default=default, metadata={"help": help, **kw})


def fields_from(config_cls, exclude=()):
    """The fields of another config dataclass (defaults and help texts), as `dataclasses.make_dataclass`
    takes them: how a training config takes a model's hyperparameters from the model's config instead of
    repeating them."""
    return [(f.name, f.type, field(default=f.default, metadata=f.metadata))
            for f in dataclasses.fields(config_cls) if f.name not in exclude]


def check_seed(seed):
    """--seed: a seed >= 0, or -1 for a random one (the same meaning in every program); UserError otherwise."""
    if seed < -1:
        raise UserError(f"--seed must be >= 0, or -1 for a random one, got {seed}")


def build_parser(config_cls, description=None, presets=None):
    """An argparse parser with one --flag per dataclass field; bools get --flag / --no-flag."""
    parser = argparse.ArgumentParser(description=description or config_cls.__doc__,
                                     argument_default=argparse.SUPPRESS)
    defaults = config_cls()
    for f in dataclasses.fields(config_cls):
        kw = {"help": f"{f.metadata.get('help', '')} (default: {getattr(defaults, f.name)!r})"}
        if f.name == "preset" and presets:
            kw["choices"] = ["auto", *presets]
        elif "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        kind = type(getattr(defaults, f.name))
        if kind is bool:
            parser.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction, **kw)
        else:
            parser.add_argument(f"--{f.name}", type=kind, metavar=f.name.upper(), **kw)
    return parser


def parse_config(config_cls, argv=None, presets=None, description=None):
    """(config, given): defaults, then the preset's values, then the flags given; `given` names those flags."""
    parser = build_parser(config_cls, description, presets)
    given = vars(parser.parse_args(argv))
    return config_cls(**given), set(given)


def apply_preset(cfg, presets, name, given):
    """The config with a preset's values, except for the fields set explicitly on the command line."""
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}: expected one of {sorted(presets)}")
    values = {k: v for k, v in presets[name].items() if k not in given}
    return dataclasses.replace(cfg, preset=name, **values)


def resolve_device(name):
    """'auto' -> 'cuda:0' when CuPy sees a GPU, else 'cpu'; otherwise the backend's normalized name."""
    if name == "auto":
        return "cuda:0" if backend.cuda_is_available() else "cpu"
    try:
        return backend.normalize_device(name)
    except (RuntimeError, ValueError) as exc:
        raise DeviceError(str(exc)) from None


# OSErrors a user causes (a path in the way, permissions, a full or read-only disk), not a bug of ours
USER_ERRNOS = {errno.ENOENT, errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EROFS,
               errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG, errno.ELOOP, errno.EMFILE, errno.EFBIG, errno.EIO}
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def os_error_line(exc, what="write", where="--out_dir"):
    """One line for an OSError the user can fix: the file, what went wrong, what to do."""
    name = exc.filename if exc.filename is not None else "a file"
    advice = {errno.ENOSPC: f"free some disk space or choose another {where}",
              errno.EDQUOT: f"free some disk space (quota) or choose another {where}",
              errno.EACCES: f"fix its permissions or choose another {where}",
              errno.EPERM: f"fix its permissions or choose another {where}",
              errno.EROFS: f"the file system is read-only: choose another {where}",
              errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
              errno.EEXIST: "a file is in the way: move it or choose another path",
              errno.EISDIR: "a folder is in the way: move it or choose another path"}.get(exc.errno, "")
    return f"cannot {what} {name}: {exc.strerror or exc}" + (f"; {advice}" if advice else "")


def _stop(signum, frame):
    raise Interrupted(signum)


def cli_main(fn, argv=None):
    """Run an entry point: an error the user can act on -> one 'error:' line on stderr and its exit code
    (2, or 1 for a diverged run); a file-system error -> one line naming the file; too little memory -> one
    line with the flag to lower; Ctrl-C -> exit 130, SIGTERM 143, SIGHUP 129 (the training loop first saves
    a checkpoint). Anything else is a bug and keeps its traceback.

    Under mpiexec (train/distributed.py) an error that every rank met together (`collective`) is printed by
    rank 0 alone; one that only this rank met is printed with its rank, and ends the whole job (MPI_Abort),
    since the other ranks would wait for this one forever."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)  # (train/__init__)
        for signum in STOP_SIGNALS:
            previous[signum] = signal.signal(signum, _stop)
    try:
        fn(argv)
    except BaseException as exc:
        code = _report(exc)
        world = distributed.current()
        if world is not None and world.size > 1 and not getattr(exc, "collective", False):
            world.abort(code if isinstance(code, int) else 1)
        if code is None:
            raise
        return code
    finally:
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)
    return 0


def _report(exc):
    """Print the line of an error a user can act on and return its exit code; None for a bug (which the
    caller re-raises, keeping its traceback) or SystemExit."""
    size, rank, _ = distributed.launched()
    if size > 1 and getattr(exc, "collective", False) and rank != 0:
        say = _silent  # every rank has it: rank 0 says it
    elif size > 1 and not getattr(exc, "collective", False):
        def say(line):
            print(line.replace("error: ", f"error: rank {rank} of {size}: ", 1), file=sys.stderr, flush=True)
    else:
        def say(line):
            print(line, file=sys.stderr)
    if isinstance(exc, (UserError, FileError, ValueError)):
        say(f"error: {exc}")
        return getattr(exc, "exit_code", 2)
    if isinstance(exc, OSError) and exc.errno in USER_ERRNOS:
        say(f"error: {os_error_line(exc, 'use', 'path')}")
        return 2
    if isinstance(exc, MemoryError):
        say(f"error: out of memory{f' ({exc})' if str(exc) else ''}; lower --batch_size or --block_size "
            "(a batch's activations), or the model's size (--n_embd, --n_layer)")
        return 2
    if isinstance(exc, KeyboardInterrupt):
        if not getattr(exc, "reported", False) and rank == 0:  # (mpiexec passes a Ctrl-C to every rank)
            name = signal.Signals(getattr(exc, "signum", signal.SIGINT)).name
            say(f"interrupted ({name})")
        return getattr(exc, "exit_code", 130)
    if size > 1 and not isinstance(exc, SystemExit):
        import traceback
        traceback.print_exception(exc)  # a bug on one rank: its traceback, then the job ends
        return 1
    return None


def _silent(line):
    pass
