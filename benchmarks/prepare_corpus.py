"""Benchmark corpus preparation (train.corpus, run through `python -m train.prepare`) and the BPE tokenizer
on a synthetic OpenWebText.

    python -m benchmarks.prepare_corpus [--size_mb 256] [--bpe_vocab 8192] [--workers 1,N] [--workdir DIR]
                                        [--keep] [--words TEXT_FILE] [--train_mb 100] [--out FILE.json]

1. Generates an OpenWebText-shaped corpus of --size_mb MB of uncompressed text under --workdir (default:
   a new temporary directory): outer `.tar` subsets holding `.xz` files (each an xz-compressed tar of `.txt`
   documents), a few top-level such `.xz` files and a few plain `.xz` text files. The text is words drawn
   from a Zipf distribution over the vocabulary of --words (default: the default training corpus, if it is
   in the download cache; else a generated word list), so it compresses roughly like real text. xz preset 0
   keeps generation quick.
2. Runs `python -m train.prepare openwebtext --tokenizer char` on it as a child process, once per count of
   --workers, and reports the throughput in MB/s of uncompressed text, the peak memory (VmHWM, peak RSS)
   of the main process and of the busiest worker.
3. Trains a BPE tokenizer on --bpe_sample_mb of the text (time) and measures its encode speed in one
   process in MB/s (cold and warm piece cache); runs the preparation with --tokenizer bpe on a
   --bpe_prepare_mb corpus at each count of --workers.
4. Trains BPE (--bpe_vocab) on --train_mb of text of which 5% are long runs without whitespace (base64,
   DNA, hex), the input that used to stall training, and reports the time.
"""
import argparse
import base64
import io
import json
import lzma
import re
import shutil
import string
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from train.corpus import load_prepared  # noqa: E402
from train.data import default_corpus_text  # noqa: E402
from train.corpus.pool import default_workers  # noqa: E402
from train.tokenizers import BPETokenizer  # noqa: E402

POOL_CHARS = 48 << 20  # the text documents are cut from: large enough that documents rarely repeat


def word_list(rng, words_file):
    """Words ranked by frequency: from `words_file` if it exists, from the packaged book if words_file is
    empty, else made up."""
    text = default_corpus_text() if not words_file else None
    if words_file and Path(words_file).is_file():
        text = Path(words_file).read_text(encoding="utf-8")
    if text is not None:
        words, counts = np.unique(re.findall(r"\w+|[^\w\s]", text), return_counts=True)
        return list(words[np.argsort(-counts, kind="stable")])
    letters = np.array(list(string.ascii_lowercase))
    return ["".join(rng.choice(letters, size=rng.integers(1, 10))) for _ in range(20000)]


def text_pool(rng, n_chars, words_file):
    """About n_chars of Zipf-distributed words with paragraph breaks."""
    words = np.array(word_list(rng, words_file), dtype=object)
    ranks = np.arange(1, len(words) + 1)
    p = 1.0 / (ranks + 2.7)  # Zipf-Mandelbrot
    p /= p.sum()
    n_words = n_chars // 5
    idx = rng.choice(len(words), size=n_words, p=p)
    toks = words[idx]
    breaks = rng.random(n_words) < 1 / 80
    toks = np.where(breaks, toks + "\n\n", toks + " ")
    return "".join(toks.tolist())


def xz_tar(docs, preset):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for i, d in enumerate(docs):
            ti = tarfile.TarInfo(f"{i:07d}-{zlib.crc32(d[:20]):08x}.txt")  # the same names every run
            ti.size = len(d)
            t.addfile(ti, io.BytesIO(d))
    return lzma.compress(buf.getvalue(), preset=preset)


def make_corpus(root, size_mb, words_file, seed=0, preset=0, docs_per_xz=200, xz_per_subset=100):
    """Write the corpus under root; returns (uncompressed bytes, compressed bytes, seconds)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    pool = text_pool(rng, POOL_CHARS, words_file).encode("utf-8")
    root.mkdir(parents=True, exist_ok=True)
    total, target = 0, size_mb << 20
    def doc():
        n = int(min(max(rng.lognormal(8.3, 0.8), 200), 200_000))
        start = int(rng.integers(0, len(pool) - n))
        start = pool.find(b" ", start) + 1
        return pool[start:start + n]
    subset = 0
    while total < target:
        outer = root / f"urlsf_subset{subset:02d}.tar"
        with tarfile.open(outer, "w") as t:
            for k in range(xz_per_subset):
                if total >= target:
                    break
                docs = [doc() for _ in range(docs_per_xz)]
                total += sum(map(len, docs))
                data = xz_tar(docs, preset)
                ti = tarfile.TarInfo(f"openwebtext/urlsf_subset{subset:02d}-{k}_data.xz")
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
        subset += 1
    for k in range(3):  # top-level xz-of-tar files and plain xz text files, as other copies have them
        docs = [doc() for _ in range(docs_per_xz)]
        total += sum(map(len, docs))
        (root / f"extra-{k}_data.xz").write_bytes(xz_tar(docs, preset))
        d = doc()
        total += len(d)
        (root / f"plain-{k}.xz").write_bytes(lzma.compress(d, preset=preset))
    compressed = sum(p.stat().st_size for p in root.iterdir())
    return total, compressed, time.perf_counter() - t0


def run_prepare(src, out, *extra):
    """Run the preparation as a child process; (seconds, the child's peak RSS in MB, meta)."""
    # VmHWM (peak RSS of this process image) rather than ru_maxrss: Linux carries ru_maxrss across exec, so
    # the child would report the memory of the benchmark process it was forked from.
    code = ("import resource, sys; from train.cli import cli_main; from train.prepare import main; "
            "rc = cli_main(main, sys.argv[1:]); "
            "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')]; "
            "print('MAXRSS', hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); "
            "sys.exit(rc)")
    cmd = [sys.executable, "-c", code, "openwebtext", "--src", str(src), "--out", str(out), "--quiet", "--force",
           *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    rss_kib = int(proc.stdout.split("MAXRSS")[-1])  # both are in KiB on Linux
    load_prepared(out)  # checks that the dataset is whole
    timings = json.loads((Path(out) / "timings.json").read_text())
    return seconds, {"main": rss_kib / 1024, "worker": timings["peak_rss_MB"]["worker"]}, timings


def long_run_text(n_chars, seed=0, long_share=0.05, words_file=""):
    """About n_chars of Zipf words with long_share of it in runs of 1-100 KB without whitespace (base64 of
    random bytes, DNA, hex), one run per line."""
    rng = np.random.default_rng(seed)
    parts, size, long_size = [], 0, 0
    pool = text_pool(rng, min(n_chars, 16 << 20), words_file)
    while size < n_chars:
        if long_size < long_share * size:
            n = int(rng.integers(1000, 100_000))
            kind = int(rng.integers(3))
            run = (base64.b64encode(rng.bytes(n * 3 // 4)).decode() if kind == 0 else
                   "".join(rng.choice(list("ACGT"), n)) if kind == 1 else rng.bytes(n // 2).hex())
            parts.append(run + "\n")
            long_size += len(run)
            size += len(run) + 1
        else:
            n = min(1 << 20, len(pool) // 2)
            start = int(rng.integers(0, len(pool) - n))
            parts.append(pool[start:start + n])
            size += n
    return "".join(parts)[:n_chars]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size_mb", type=int, default=256, help="the corpus for the char preparation")
    ap.add_argument("--bpe_vocab", type=int, default=8192)
    ap.add_argument("--bpe_sample_mb", type=int, default=10)
    ap.add_argument("--encode_mb", type=int, default=32)
    ap.add_argument("--bpe_prepare_mb", type=int, default=64)
    ap.add_argument("--train_mb", type=int, default=100, help="BPE training on text with long runs (0: skip)")
    ap.add_argument("--workers", default=f"1,{default_workers()}", help="worker counts to run, comma-separated")
    ap.add_argument("--workdir", default=None, help="where the corpus and outputs go (default: a new temporary "
                                                    "directory)")
    ap.add_argument("--words", default="",
                    help="a text file whose words (ranked by frequency) make up the corpus; made-up words if it "
                         "does not exist (default: the default training corpus, the book in the package)")
    ap.add_argument("--keep", action="store_true", help="keep the generated corpus and outputs")
    ap.add_argument("--skip_char", action="store_true")
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    worker_counts = sorted({int(w) for w in args.workers.split(",")})
    work = Path(args.workdir or tempfile.mkdtemp(prefix="prepare_bench_"))
    results = {"cores": default_workers()}

    def prepare_runs(kind, src, raw, *extra):
        rows = {}
        for w in worker_counts:
            secs, rss, timings = run_prepare(src, work / f"out_{kind}", "--workers", str(w), *extra)
            shutil.rmtree(work / f"out_{kind}", ignore_errors=True)
            rows[w] = {"text_MB": raw / 1e6, "seconds": secs, "MB_per_s": raw / 1e6 / secs,
                       "encode_pass_MB_per_s": timings["encode_MB_per_s"], "peak_rss_MB": rss,
                       **({"bpe_train_seconds": timings["bpe_train_seconds"]} if "bpe_train_seconds" in timings
                          else {})}
            print(f"{kind} prepare, {w} worker(s): {raw / 1e6:.0f} MB in {secs:.1f} s = {raw / 1e6 / secs:.1f} MB/s "
                  f"overall, encoding pass {timings['encode_MB_per_s']:.1f} MB/s; peak RSS main {rss['main']:.0f} MB, "
                  f"worker {rss['worker']:.0f} MB", flush=True)
        base = rows[worker_counts[0]]["encode_pass_MB_per_s"]
        for w, row in rows.items():
            row["encode_speedup"] = row["encode_pass_MB_per_s"] / base
        return rows

    try:
        if not args.skip_char:
            raw, comp, gen_s = make_corpus(work / "owt", args.size_mb, args.words)
            print(f"corpus: {raw / 1e6:.0f} MB text, {comp / 1e6:.0f} MB compressed, generated in {gen_s:.0f} s",
                  flush=True)
            results["char"] = prepare_runs("char", work / "owt", raw, "--min_char_count", "1000")
            shutil.rmtree(work / "owt", ignore_errors=True)

        rng = np.random.default_rng(1)
        text = text_pool(rng, (args.bpe_sample_mb + args.encode_mb) << 20, args.words)
        cut = text.index(" ", args.bpe_sample_mb << 20)
        sample, rest = text[:cut], text[cut:]
        docs = [sample[i:i + 5000] for i in range(0, len(sample), 5000)]
        t0 = time.perf_counter()
        tok = BPETokenizer.train(docs, args.bpe_vocab)
        train_s = time.perf_counter() - t0
        pieces = [(rest[i:i + 5000], True) for i in range(0, len(rest), 5000)]
        nbytes = len(rest.encode("utf-8"))
        speeds = []
        for _ in range(2):  # first run fills the piece cache, second reuses it
            t0 = time.perf_counter()
            ids = tok.encode_stream(pieces)
            speeds.append(nbytes / 1e6 / (time.perf_counter() - t0))
        results["bpe"] = {"vocab_size": tok.vocab_size, "sample_MB": len(sample) / 1e6, "train_seconds": train_s,
                          "encode_MB_per_s_cold": speeds[0], "encode_MB_per_s_warm": speeds[1],
                          "bytes_per_token": nbytes / len(ids)}
        print(f"BPE: trained {tok.vocab_size} tokens on {len(sample) / 1e6:.1f} MB in {train_s:.1f} s; "
              f"encode {speeds[0]:.1f} MB/s (cold cache), {speeds[1]:.1f} MB/s (warm), "
              f"{nbytes / len(ids):.2f} bytes/token, one process", flush=True)
        del text, sample, rest, docs, pieces, ids

        if args.bpe_prepare_mb:
            raw, comp, _ = make_corpus(work / "owt_small", args.bpe_prepare_mb, args.words, seed=2)
            results["bpe_prepare"] = prepare_runs("bpe", work / "owt_small", raw, "--tokenizer", "bpe",
                                                  "--vocab_size", str(args.bpe_vocab),
                                                  "--bpe_sample_bytes", str(args.bpe_sample_mb << 20))
            shutil.rmtree(work / "owt_small", ignore_errors=True)

        if args.train_mb:
            text = long_run_text(args.train_mb << 20, words_file=args.words)
            t0 = time.perf_counter()
            tok = BPETokenizer.train([text[i:i + 5000] for i in range(0, len(text), 5000)], args.bpe_vocab)
            secs = time.perf_counter() - t0
            results["bpe_train_long_runs"] = {"text_MB": len(text) / 1e6, "long_run_share": 0.05,
                                              "vocab_size": tok.vocab_size, "seconds": secs}
            print(f"BPE training with long runs: {tok.vocab_size} tokens on {len(text) / 1e6:.0f} MB (5% in runs "
                  f"without whitespace) in {secs:.1f} s, one process", flush=True)
        print(json.dumps(results, indent=1))
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
