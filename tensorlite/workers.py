"""The threads behind backend.parallel_for: a few workers that each wait for one part of a job.

`Workers(n).run(body, parts)` hands parts 1..n to the n threads and runs part 0 in the calling thread, so a
two-core machine needs one worker. A hand-off and its answer are two SimpleQueue operations, ~20 us here;
the ThreadPoolExecutor used before cost ~60 us a round trip with the caller idle, a third of an attention
softmax at the cpu preset.
"""
import queue
import threading


class Workers:
    def __init__(self, n):
        self.busy = threading.Lock()  # one run at a time: parallel_for runs a nested or concurrent call inline
        self.broken = False  # a run was interrupted: its late answers would confuse the next, so start afresh
        self.done = queue.SimpleQueue()
        self.inboxes = [queue.SimpleQueue() for _ in range(n)]
        for inbox in self.inboxes:
            threading.Thread(target=self._serve, args=(inbox,), name="tensorlite", daemon=True).start()

    def _serve(self, inbox):
        while True:
            body, part = inbox.get()
            try:
                body(part)
            except BaseException as e:  # handed to the caller, which raises it
                self.done.put(e)
            else:
                self.done.put(None)

    def run(self, body, parts):
        """body(part) for every part (at most len(inboxes) + 1), the first here; raises the first error."""
        for inbox, part in zip(self.inboxes, parts[1:]):
            inbox.put((body, part))
        errors = []
        try:
            try:
                body(parts[0])
            except Exception as e:
                errors.append(e)
            errors += [self.done.get() for _ in parts[1:]]
        except BaseException:  # Ctrl-C while a worker still runs
            self.broken = True
            raise
        error = next((e for e in errors if e is not None), None)
        if error is not None:
            raise error
