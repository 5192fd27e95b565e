"""A small process pool for preparation: tasks run on N worker processes, results come back in task order.

Why not multiprocessing.Pool or concurrent.futures: their workers wait on a shared queue and outlive a
main process killed with `kill -9`, waiting forever. Here each worker has its own pipe to the main process
and polls it, checking every second that its parent is still there; it ignores Ctrl-C (the main process
handles it and stops the workers), and it reports an exception in a task back to the main process instead
of printing a traceback. With one worker nothing is started: tasks run in the main process, one after
another, through the same functions (and so give the same bytes).
"""
import multiprocessing
import os
import pickle
import signal
import traceback
from multiprocessing.connection import wait

POLL_SECONDS = 1.0


def default_workers():
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


PRELOAD = ["train.corpus.worker_preload"]


def _context():
    """forkserver: workers are forked from a clean server process, never from this one (which may hold
    threads, such as a progress bar's), after it imported PRELOAD; spawn where there is no fork."""
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                                      else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(PRELOAD)
    return ctx


def start_server():
    """Start the fork server now, in the background (a pass that runs before the workers are needed
    overlaps with its imports); nothing to do where workers are spawned."""
    if _context().get_start_method() == "forkserver":
        from multiprocessing import forkserver
        forkserver.ensure_running()


class WorkerDied(RuntimeError):
    """A worker process ended without answering (killed, or out of memory)."""


def _serve(conn, initializer, initargs):
    """A worker's loop: run (function, args) messages until told to stop or the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    if initializer is not None:
        initializer(*initargs)
    while True:
        if not conn.poll(POLL_SECONDS):
            if os.getppid() != parent:
                return  # the main process (or the fork server that started us with it) is gone
            continue
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        fn, args = message
        try:
            reply = ("ok", fn(*args))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the main process
            reply = ("error", exc, traceback.format_exc())
        try:
            conn.send(reply)
        except (pickle.PicklingError, TypeError, AttributeError):
            conn.send(("error", RuntimeError(repr(reply[1])), reply[-1] if len(reply) > 2 else ""))


class Pool:
    """`with Pool(n, initializer, initargs) as pool: for result in pool.imap(fn, tasks): ...`

    `initializer(*initargs)` runs once in each worker (and in the main process when n == 1). imap keeps
    at most `2 n` tasks beyond the oldest unfinished one, so results waiting for their turn stay few.
    An exception raised by a task is raised again in the main process, with the worker's traceback as a note.
    """

    def __init__(self, n, initializer=None, initargs=()):
        self.n = max(1, int(n))
        self.conns, self.procs = [], []
        if self.n == 1:
            if initializer is not None:
                initializer(*initargs)
            return
        ctx = _context()
        for _ in range(self.n):
            here, there = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(there, initializer, initargs), daemon=True)
            proc.start()
            there.close()
            self.conns.append(here)
            self.procs.append(proc)

    def imap(self, fn, tasks):
        """Yield fn(*task) for every task, in order."""
        if self.n == 1:
            for task in tasks:
                yield fn(*task)
            return
        tasks = iter(enumerate(tasks))
        idle, busy, done = list(self.conns), {}, {}
        submitted = next_out = 0
        exhausted = False
        while True:
            while idle and not exhausted and submitted - next_out < 2 * self.n:
                item = next(tasks, None)
                if item is None:
                    exhausted = True
                    break
                conn = idle.pop()
                try:
                    conn.send((fn, item[1]))
                except OSError:  # a broken pipe: the worker is gone
                    raise WorkerDied("a worker process stopped (killed, or out of memory?)") from None
                busy[conn] = item[0]
                submitted += 1
            if next_out in done:
                yield done.pop(next_out)
                next_out += 1
                continue
            if not busy:
                return
            for conn in wait(list(busy)):
                k = busy.pop(conn)
                try:
                    reply = conn.recv()
                except (EOFError, OSError):
                    raise WorkerDied("a worker process stopped without answering (killed, or out of memory?)") \
                        from None
                if reply[0] == "error":
                    exc = reply[1]
                    exc.add_note(f"in a worker process:\n{reply[2]}")
                    raise exc
                done[k] = reply[1]
                idle.append(conn)

    def close(self):
        """Stop the workers: politely (a None message), then for sure."""
        for conn in self.conns:
            try:
                conn.send(None)
            except OSError:
                pass
        for proc in self.procs:
            proc.join(timeout=2)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self.conns:
            conn.close()
        self.conns, self.procs = [], []

    def terminate(self):
        """Stop the workers now (an error or Ctrl-C in the main process): whatever they were doing is dropped."""
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            proc.join()
        for conn in self.conns:
            conn.close()
        self.conns, self.procs = [], []

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.terminate()
