"""Parallel preparation (--workers): the same bytes as one worker, and workers that never outlive the run.

The worker pool (train/corpus/pool.py) is checked on its own: results in task order whatever the order
they finish in, a task's exception raised again in the main process, a dead worker reported. Then the
whole preparation: --workers 2 gives train.bin, val.bin and meta.json byte for byte equal to --workers 1
on a corpus with every archive case, and Ctrl-C or kill -9 leave neither a dataset nor a process behind.
"""
import lzma
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from train.corpus.pool import Pool, WorkerDied
from train.prepare import load_prepared, prepare
from tests.test_prepare import make_owt, v7_tar, xz_of_tar

ROOT = Path(__file__).resolve().parent.parent


def _slow_square(x):
    time.sleep(0.05 * (x % 3))  # later tasks often finish first
    return x * x


def _fail(x):
    if x == 3:
        raise ValueError(f"task {x} failed")
    return x


def _die(x):
    os._exit(1)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_pool_gives_results_in_task_order(n):
    with Pool(n) as pool:
        assert list(pool.imap(_slow_square, [(i,) for i in range(12)])) == [i * i for i in range(12)]


def test_pool_raises_a_tasks_exception_in_the_main_process_with_the_workers_traceback():
    with pytest.raises(ValueError, match="task 3 failed") as info:
        with Pool(2) as pool:
            list(pool.imap(_fail, [(i,) for i in range(6)]))
    assert any("in a worker process" in note and "_fail" in note for note in info.value.__notes__)


def test_pool_reports_a_worker_that_died():
    with pytest.raises(WorkerDied, match="stopped without answering"):
        with Pool(2) as pool:
            list(pool.imap(_die, [(1,)]))


def every_case(root):
    """make_owt's shapes (outer tar, xz of tar, plain xz, truncated xz, a non-UTF-8 document) plus a V7 tar,
    an empty tar and a second outer subset, so that there are more units than workers."""
    docs, _ = make_owt(root, n_subset=5)
    (root / "v7.xz").write_bytes(lzma.compress(v7_tar(["old layout one", "old layout two"]), preset=0))
    (root / "empty.xz").write_bytes(lzma.compress(b"\0" * 10240, preset=0))
    for k in range(4):
        (root / f"more-{k}.xz").write_bytes(xz_of_tar([f"more document {k}.{j} " * (20 + j) for j in range(9)]))
    return docs


@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_two_workers_write_the_same_bytes_as_one(tmp_path, tokenizer, capsys):
    every_case(tmp_path / "src")
    outputs, warnings = [], []
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        prepare("openwebtext", tmp_path / "src", out, tokenizer=tokenizer, vocab_size=300, val_fraction=0.3,
                seed=4, workers=workers)
        outputs.append({name: (out / name).read_bytes() for name in ("train.bin", "val.bin", "meta.json")})
        err = capsys.readouterr().err
        warnings.append([line for line in err.splitlines() if line.startswith("warning:")])
    assert outputs[0] == outputs[1]
    assert warnings[0] == warnings[1] and len(warnings[0]) == 2  # the truncated file, the empty tar
    meta = load_prepared(tmp_path / "out2")[3]
    assert [s["name"] for s in meta["skipped"]] == ["zz_truncated.xz"] and meta["skipped"][0]["bytes"] > 0


def descendants(pid):
    """PIDs of every process below `pid` (the fork server and its workers), from /proc."""
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return found


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start_slow_prepare(tmp_path):
    """A preparation with 2 workers that runs for a while: many units of text, BPE."""
    src = tmp_path / "src"
    src.mkdir()
    unit = lzma.compress(" ".join(f"w{(i * 7919) % 5000}" for i in range(150_000)).encode(), preset=0)
    for k in range(160):  # ~130 MB of text: several seconds of work, so the signal comes in the middle
        (src / f"{k:03d}.xz").write_bytes(unit)
    return subprocess.Popen([sys.executable, "-m", "train.prepare", "openwebtext", "--src", str(src), "--out",
                             str(tmp_path / "out"), "--workers", "2", "--tokenizer", "bpe", "--vocab_size", "400"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for_workers(proc, n=2, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        kids = descendants(proc.pid)
        if len(kids) >= n + 1:  # the fork server and the workers
            return kids
        time.sleep(0.1)
    pytest.fail(f"the workers did not start: {proc.communicate()}")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the worker processes")
def test_ctrl_c_stops_the_workers_and_leaves_nothing(tmp_path):
    proc = start_slow_prepare(tmp_path)
    kids = wait_for_workers(proc)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group gets it
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err and "nothing was written to --out" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    deadline = time.time() + 10
    while any(map(alive, kids)) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(map(alive, kids))


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the worker processes")
def test_kill_9_leaves_no_worker_behind_and_the_next_run_cleans_up(tmp_path):
    proc = start_slow_prepare(tmp_path)
    kids = wait_for_workers(proc)
    time.sleep(0.5)
    proc.kill()
    proc.communicate(timeout=30)
    deadline = time.time() + 15
    while any(map(alive, kids)) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(map(alive, kids)), "a worker outlived its killed main process"
    assert not (tmp_path / "out").exists()
    (tmp_path / "t.txt").write_text("next run " * 20)
    prepare("text", tmp_path / "t.txt", tmp_path / "out", quiet=True)  # removes the dead run's staging folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src", "t.txt"]


PEAK_OF_A_RUN = """
import json, sys
from train.corpus import readers, sinks
readers.CHUNK_BYTES, sinks.BATCH_CHARS = 1 << 18, 1 << 19  # small pieces, so the test's document can be small
from train.corpus import prepare
prepare("text", sys.argv[1], sys.argv[2], tokenizer="bpe", vocab_size=300, bpe_sample_bytes=1 << 20, quiet=True,
        workers=1)
print(json.load(open(sys.argv[2] + "/timings.json"))["peak_rss_MB"]["main"])
"""


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the peak memory from /proc")
def test_memory_stays_bounded_on_a_long_single_line_document(tmp_path):
    """A 24 MB document without a newline (words, then a long run without spaces) is read in pieces and
    encoded in batches: the run's peak memory is about that of a small document, where holding the
    document whole (as text, bytes and code points) would add well over 100 MB."""
    peaks = {}
    for name, size in (("small", 1 << 20), ("long", 24 << 20)):
        words = ("lorem ipsum dolor sit amet " * (size // 54 + 1))[:size // 2]
        run = ("ACGT" * (size // 8 + 1))[:size // 2]
        (tmp_path / f"{name}.txt").write_text(words + run)
        done = subprocess.run([sys.executable, "-c", PEAK_OF_A_RUN, str(tmp_path / f"{name}.txt"),
                               str(tmp_path / f"out_{name}")], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        peaks[name] = float(done.stdout.split()[-1])
    assert peaks["long"] - peaks["small"] < 40, peaks


def test_workers_must_be_positive(tmp_path, capsys):
    from train.cli import cli_main
    from train.prepare import main
    (tmp_path / "t.txt").write_text("some text")
    for bad in ("0", "-2"):
        code = cli_main(main, ["text", "--src", str(tmp_path / "t.txt"), "--out", str(tmp_path / "o"), "--workers", bad])
        err = capsys.readouterr().err
        assert code == 2 and "--workers must be a positive integer" in err and "Traceback" not in err


def test_running_out_of_memory_is_one_line_with_the_flag_to_lower(tmp_path, capsys, monkeypatch):
    from train.cli import cli_main
    from train.corpus import work
    from train.prepare import main
    (tmp_path / "t.txt").write_text("some text " * 50)

    def no_memory(unit, part):
        raise MemoryError
    monkeypatch.setattr(work, "encode_unit", no_memory)
    code = cli_main(main, ["text", "--src", str(tmp_path / "t.txt"), "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "fewer --workers" in err and "Traceback" not in err and not (tmp_path / "o").exists()
