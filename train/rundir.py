"""A training run's folder (out_dir) and what keeps its work safe: one run at a time (a lock file), no run
that silently replaces another's checkpoints (--resume or --overwrite), a log that holds only the
evaluations of the checkpoint it belongs to, and file-system errors as one line naming the file.

    with RunDir(cfg.out_dir) as run_dir:         # creates the folder, takes the lock (released at the end)
        run_dir.check_fresh(overwrite)           # refuses a folder that holds a checkpoint without --overwrite
        ...
        run_dir.start_fresh()                    # a new run's log is its own: the old one is rotated away

The write order of an evaluation (train/loop.py) makes last.ckpt the commit point: best.ckpt and the log
line are written before it, so a crash at any instant leaves at most evaluations past last.ckpt's step,
which `trim_log` drops on --resume and the resumed run redoes.
"""
import os
import socket

from tensorlite.serialization import atomic_write
from train.cli import os_error_line
from train.errors import CheckpointError, UserError
from train.plot import LOG_NAME, PLOT_NAME, parse_record

LOCK_NAME = "train.lock"
CHECKPOINTS = ("last.ckpt", "best.ckpt")


class RunDirError(UserError, RuntimeError):
    """The out_dir cannot be used: another run holds it, it holds a run that would be replaced, or the
    file system refuses (a file in the way, no permission, read-only, full)."""


def _pid_alive(pid):
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


class RunDir:
    """The out_dir of one run, locked for as long as the `with` block lasts."""

    def __init__(self, out_dir, print=print):
        self.out_dir, self.print = out_dir, print
        self.lock_path = os.path.join(out_dir, LOCK_NAME)
        self.created = False
        self.locked = False

    def path(self, name):
        return os.path.join(self.out_dir, name)

    # ------------------------------------------------------------ the folder and its lock
    def __enter__(self):
        if os.path.exists(self.out_dir) and not os.path.isdir(self.out_dir):
            raise RunDirError(f"--out_dir {self.out_dir} is a file, not a folder; choose another --out_dir")
        try:
            if not os.path.isdir(self.out_dir):
                os.makedirs(self.out_dir)
                self.created = True
            self._lock()
        except OSError as exc:
            raise RunDirError(os_error_line(exc, "create")) from None
        for name in (*CHECKPOINTS, LOG_NAME):
            if os.path.isdir(self.path(name)):
                self.__exit__()
                raise RunDirError(f"{self.path(name)} is a folder, not a file; move it away or choose another "
                                  "--out_dir")
        self._remove_stale_temps()
        return self

    def _lock(self):
        owner = f"{os.getpid()} {socket.gethostname()}\n"
        for _ in range(2):
            try:
                fd = os.open(self.lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._take_over_stale_lock()
                continue
            with os.fdopen(fd, "w") as f:
                f.write(owner)
            self.locked = True
            return
        raise RunDirError(f"another run took the lock {self.lock_path} at the same moment; run again")

    def _take_over_stale_lock(self):
        try:
            with open(self.lock_path, encoding="utf-8", errors="replace") as f:
                words = f.read().split()
        except FileNotFoundError:
            return  # released meanwhile: try again
        pid = int(words[0]) if words and words[0].isdigit() else None
        host = words[1] if len(words) > 1 else None
        if pid is not None and host not in (None, socket.gethostname()):
            raise RunDirError(f"{self.out_dir} is in use by process {pid} on {host} (lock {self.lock_path}); "
                              "wait for it, or delete the lock file if that run is gone")
        if pid is not None and _pid_alive(pid):
            raise RunDirError(f"{self.out_dir} is in use by another training run (process {pid}, lock "
                              f"{self.lock_path}); wait for it to finish or choose another --out_dir")
        self.print(f"warning: taking over the lock {self.lock_path} of a run that is gone"
                   + (f" (process {pid})" if pid is not None else ""))
        try:
            os.unlink(self.lock_path)
        except FileNotFoundError:
            pass

    def _remove_stale_temps(self):
        """Temporary files of atomic writes a killed run left behind (we hold the lock: none is being written)."""
        for name in os.listdir(self.out_dir):
            if name.startswith(".") and name.endswith(".tmp"):
                try:
                    os.unlink(self.path(name))
                except OSError:
                    pass

    def __exit__(self, *exc):
        if self.locked:
            self.locked = False
            try:
                os.unlink(self.lock_path)
            except OSError:
                pass
        if self.created and exc and exc[0] is not None:  # a run that failed before writing anything
            try:
                os.rmdir(self.out_dir)  # only if still empty
            except OSError:
                pass
        return False

    # ------------------------------------------------------------ a new run or a resumed one
    def checkpoints(self):
        return [name for name in CHECKPOINTS if os.path.exists(self.path(name))]

    def check_fresh(self, overwrite):
        """A new run (no --resume) may not replace a run's checkpoints unless told to with --overwrite."""
        found = self.checkpoints()
        if found and not overwrite:
            resume = "continue it with --resume, " if "last.ckpt" in found else ""
            raise RunDirError(f"{self.out_dir} already holds a run ({', '.join(found)}); {resume}start over with "
                              "--overwrite (replaces it), or choose another --out_dir")

    def check_resumable(self):
        if not os.path.exists(self.path("last.ckpt")):
            held = self.checkpoints()
            raise CheckpointError(f"nothing to resume: {self.path('last.ckpt')} does not exist"
                              + (f" (the folder holds {', '.join(held)} of a run stopped before its first "
                                 "checkpoint)" if held else "")
                              + "; start the run without --resume" + (" and with --overwrite" if held else ""))

    def start_fresh(self):
        """The old log and loss curves become log.old.jsonl and loss.old.png: the new log is the new run's.
        The checkpoints stay until the new run replaces them (atomically) at its first evaluation."""
        for name, old in ((LOG_NAME, "log.old.jsonl"), (PLOT_NAME, "loss.old.png")):
            if os.path.exists(self.path(name)):
                try:
                    os.replace(self.path(name), self.path(old))
                except OSError as exc:
                    raise RunDirError(os_error_line(exc, "move")) from None


# ---------------------------------------------------------------- the log of a resumed run
def trim_log(path, last_step, warn=print):
    """Keep the log lines up to the checkpoint we resume from: drop those past it (written by a run that
    died before its last.ckpt) and a damaged tail (a half-written line, junk), with a warning."""
    if not os.path.exists(path):
        return
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise RunDirError(os_error_line(exc, "read")) from None
    kept, lines = [], raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = parse_record(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            warn(f"warning: {path} line {number} is damaged ({exc}); dropped it and the {len(lines) - number} "
                 "line(s) after it")
            break
        if record["step"] <= last_step:
            kept.append(line.decode("utf-8") + "\n")
    try:
        atomic_write(path, lambda f: f.writelines(kept), mode="w")
    except OSError as exc:
        raise RunDirError(os_error_line(exc)) from None
