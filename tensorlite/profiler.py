"""A small profiler: where does the time of a forward/backward go?

    import tensorlite.profiler
    with tensorlite.profiler.profile() as prof:
        loss = model(x, y)[1]
        loss.backward()
    print(prof.table())          # one row per Function type, slowest first
    prof.totals()                # the same numbers as a dict

While the ``with`` block runs, every ``Function.forward`` and ``Function.backward``
goes through a timing hook (``autograd._profile_hook``); outside it the engine
pays one ``if`` per node. Times are *self* times: when a Function's forward
calls another Function, the inner one's time is counted once, under its own
name, and not again under the outer one.

GPU work is asynchronous: a CuPy call returns before the kernel has run, so the
host clock would measure only the launch. ``profile(sync=True)`` waits for the
device before and after each forward/backward, so each one is charged with its
own GPU time (at the price of losing the overlap of host and device).

What is not inside a Function (Python bookkeeping, the graph traversal, the
optimizer's update) shows up as the difference between ``prof.wall_s`` and the
sum of the rows.
"""
import time

from . import autograd, backend

__all__ = ["profile"]


class profile:
    """Context manager that records each Function type's forward and backward time.

    ``sync=True`` synchronises the device around each timed call, so GPU times
    are real; it has no effect on the CPU.
    """

    def __init__(self, sync=False):
        self.sync = bool(sync)
        self.records = {}    # (function name, 'forward' | 'backward') -> [count, seconds]
        self.wall_s = 0.0    # time spent inside the with-block(s)
        self._children = []  # stack: time spent in nested calls, to subtract from their caller
        self._start = None

    # ------------------------------------------------------------ context manager
    def __enter__(self):
        if autograd._profile_hook is not None:
            raise RuntimeError("a tensorlite profiler is already active; profiles cannot be nested")
        autograd._profile_hook = self._hook
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall_s += time.perf_counter() - self._start
        autograd._profile_hook = None
        self._children.clear()
        return False

    # ------------------------------------------------------------ the hook
    def _hook(self, fn, phase, *arrays):
        device = backend.device_of(arrays[0]) if self.sync and arrays else "cpu"
        if device != "cpu":
            backend.synchronize(device)  # don't charge this call with work queued before it
        self._children.append(0.0)
        start = time.perf_counter()
        try:
            out = getattr(fn, phase)(*arrays)
            if device != "cpu":
                backend.synchronize(device)
        finally:
            elapsed = time.perf_counter() - start
            nested = self._children.pop()
            if self._children:
                self._children[-1] += elapsed  # the caller must not count this call again
            rec = self.records.setdefault((type(fn).__name__, phase), [0, 0.0])
            rec[0] += 1
            rec[1] += elapsed - nested
        return out

    # ------------------------------------------------------------ results
    def totals(self):
        """{function name: {forward_count, forward_s, backward_count, backward_s, total_s}}, slowest first."""
        out = {}
        for (name, phase), (count, seconds) in self.records.items():
            row = out.setdefault(name, {"forward_count": 0, "forward_s": 0.0, "backward_count": 0,
                                        "backward_s": 0.0, "total_s": 0.0})
            row[phase + "_count"] += count
            row[phase + "_s"] += seconds
            row["total_s"] += seconds
        return dict(sorted(out.items(), key=lambda kv: -kv[1]["total_s"]))

    def table(self, per=1, limit=None):
        """The totals as a text table in milliseconds, slowest first.

        ``per`` divides counts and times (e.g. the number of training steps
        profiled, to show one step); ``limit`` keeps only the slowest rows.
        """
        if per <= 0:
            raise ValueError(f"per must be positive, got {per}")
        totals = self.totals()
        recorded = sum(r["total_s"] for r in totals.values())
        header = ("function", "fwd calls", "fwd ms", "bwd calls", "bwd ms", "total ms", "%")
        rows = []
        for name, r in list(totals.items())[:limit]:
            rows.append((name, _num(r["forward_count"] / per), f"{1e3 * r['forward_s'] / per:.3f}",
                         _num(r["backward_count"] / per), f"{1e3 * r['backward_s'] / per:.3f}",
                         f"{1e3 * r['total_s'] / per:.3f}", f"{100 * r['total_s'] / recorded if recorded else 0:.1f}"))
        rows.append(("all Functions", "", "", "", "", f"{1e3 * recorded / per:.3f}", "100.0" if recorded else "0.0"))
        if self.wall_s:
            rows.append(("outside Functions", "", "", "", "", f"{1e3 * (self.wall_s - recorded) / per:.3f}", ""))
        widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
        lines = ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                 for row in [header] + rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.insert(len(lines) - (2 if self.wall_s else 1), "-" * len(lines[0]))
        return "\n".join(lines)

    def __repr__(self):
        return f"<tensorlite.profiler.profile: {len(self.records)} entries, {self.wall_s:.3f} s wall>"


def _num(x):
    return str(int(x)) if float(x).is_integer() else f"{x:.1f}"
