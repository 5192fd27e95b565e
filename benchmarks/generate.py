"""Text generation speed of the GPT: tokens/s without and with the key/value cache.

    python -m benchmarks.generate                          # cpu and course presets, batch 1, 300 tokens, CPU
    python -m benchmarks.generate --presets cpu --tokens 200 --json out/generate.json

Each run starts from a short prompt and samples `--tokens` tokens (temperature 1, a fixed seed), timing every
token. The two paths must give the same tokens; the table says whether they did.

Two regimes, reported apart:
* inside the window (the text still fits in block_size): with the cache each token runs one position
  through the network and attends over the cached keys, O(T); without it the whole text runs again, O(T^2).
* past the window: the window slides by one token per step and every position changes, so cached keys
  and values are stale (see models/gpt.py): both paths run a full forward of the window per token.
"""
import time

import numpy as np

import models
import tensorlite
from models.sampling import generate_tokens
from tensorlite import backend

from . import common
from .train_step import PRESETS

MODES = (("no cache", False), ("cache", True))


def build_model(size, device, seed=0):
    """The GPT of a size (no dropout: generation runs in eval mode anyway), in eval mode on `device`."""
    tensorlite.manual_seed(seed)
    return models.build_model("gpt", models.config_from("gpt", dict(size, dropout=0.0))).to(device).eval()


def timed_generation(model, prompt, tokens, use_cache, seed):
    """(new token ids (B, tokens) as NumPy, seconds spent on each token)."""
    tensorlite.manual_seed(seed)
    device = prompt.device
    ids, times = [], []
    backend.synchronize(device)
    t0 = time.perf_counter()
    for nxt in generate_tokens(model, prompt, tokens, context=model.config.block_size, use_cache=use_cache):
        backend.synchronize(device)
        t1 = time.perf_counter()
        ids.append(nxt.numpy())
        times.append(t1 - t0)
        t0 = time.perf_counter()
    return np.concatenate(ids, axis=1), times


def tokens_inside_window(block_size, prompt_len, tokens):
    """How many of the new tokens are sampled while the text still fits in the window."""
    return max(0, min(tokens, block_size - prompt_len + 1))


def rates(times, inside):
    """tokens/s inside the window, past it, and over the whole run (None where a part is empty)."""
    def rate(ts):
        return len(ts) / sum(ts) if ts else None
    return {"inside": rate(times[:inside]), "past": rate(times[inside:]), "overall": rate(times)}


def bench_preset(name, size, args, device):
    model = build_model(size, device, args.seed)
    rng = np.random.default_rng(args.seed)
    prompt = tensorlite.tensor(rng.integers(0, size["vocab_size"], (args.batch_size, args.prompt_len)),
                               dtype=tensorlite.int64, device=device)
    for _, use_cache in MODES:  # warm-up: allocation, BLAS threads
        timed_generation(model, prompt, min(args.tokens, 4), use_cache, args.seed)
    inside = tokens_inside_window(size["block_size"], args.prompt_len, args.tokens)
    samples = {label: [] for label, _ in MODES}
    tokens = {}
    for _ in range(args.repeats):  # the modes alternate, so a slow spell of the machine hits both
        for label, use_cache in MODES:
            ids, times = timed_generation(model, prompt, args.tokens, use_cache, args.seed)
            samples[label].append(rates(times, inside))
            tokens.setdefault(label, ids)
            if not np.array_equal(ids, tokens[label]):
                raise RuntimeError(f"{name}: two {label} runs with the same seed gave different tokens")
    result = {"preset": name, "size": size, "device": device, "parameters": model.num_params(),
              "batch_size": args.batch_size, "prompt_len": args.prompt_len, "tokens": args.tokens,
              "tokens_inside_window": inside,
              "same_tokens": bool(np.array_equal(tokens["no cache"], tokens["cache"])), "modes": {}}
    for label, _ in MODES:
        result["modes"][label] = {
            part: {"median_tokens_per_s": _median([s[part] for s in samples[label]]),
                   "samples": [s[part] for s in samples[label]]}
            for part in ("inside", "past", "overall")}
    return result


def _median(values):
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def format_results(results):
    headers = ["preset", "params", "mode", "tok/s inside window", "tok/s past window", "tok/s overall",
               "speed-up inside", "same tokens"]
    rows = []
    for r in results:
        base = r["modes"]["no cache"]["inside"]["median_tokens_per_s"]
        for label, _ in MODES:
            m = r["modes"][label]
            inside = m["inside"]["median_tokens_per_s"]
            rows.append([r["preset"], f"{r['parameters']:,}", label, _fmt_rate(inside),
                         _fmt_rate(m["past"]["median_tokens_per_s"]), _fmt_rate(m["overall"]["median_tokens_per_s"]),
                         f"{inside / base:.2f}x" if inside and base else "-", "yes" if r["same_tokens"] else "NO"])
    r0 = results[0] if results else None
    title = "Generation, batch {}, prompt {} token(s), {} new tokens ({} inside the window)".format(
        r0["batch_size"], r0["prompt_len"], r0["tokens"], r0["tokens_inside_window"]) if r0 else "Generation"
    return common.format_table(headers, rows, title=title)


def _fmt_rate(rate):
    return "-" if rate is None else f"{rate:,.1f}"


def parse_args(argv):
    p = common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", choices=sorted(PRESETS), default=["cpu", "course"])
    p.add_argument("--tokens", type=int, default=None, help="new tokens per run (default 300; --quick 80)")
    p.add_argument("--prompt_len", type=int, default=1, help="prompt tokens (random ids)")
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--seed", type=int, default=0)
    for field in ("block_size", "n_embd", "n_layer", "n_head", "vocab_size"):
        p.add_argument(f"--{field}", type=int, default=None, help="overrides the presets")
    args = p.parse_args(argv)
    args.tokens = (80 if args.quick else 300) if args.tokens is None else args.tokens
    args.repeats = (1 if args.quick else 3) if args.repeats is None else args.repeats
    if min(args.tokens, args.prompt_len, args.batch_size, args.repeats) < 1:
        p.error(f"tokens, prompt_len, batch_size and repeats must be positive, got {args.tokens}, "
                f"{args.prompt_len}, {args.batch_size}, {args.repeats}")
    args.sizes = {}
    for name in args.presets:
        size = {k: PRESETS[name][k] for k in ("block_size", "n_embd", "n_layer", "n_head", "vocab_size")}
        size.update({f: getattr(args, f) for f in ("block_size", "n_embd", "n_layer", "n_head", "vocab_size")
                     if getattr(args, f) is not None})
        try:
            models.config_from("gpt", size)  # the model's own checks (n_embd % n_head, positive sizes)
        except ValueError as e:
            p.error(str(e))
        if args.prompt_len > size["block_size"]:
            p.error(f"prompt_len={args.prompt_len} is longer than block_size={size['block_size']}")
        args.sizes[name] = size
    try:
        args.device = backend.normalize_device(args.device)
    except (RuntimeError, ValueError) as e:
        p.error(str(e))
    return args


def run(args, machine):
    print(f"device {args.device} | median of {args.repeats} run(s) per mode, alternated\n")
    results = [bench_preset(name, args.sizes[name], args, args.device) for name in args.presets]
    print(format_results(results))
    return results


def main(argv=None):
    return common.run_benchmark("generate", parse_args(argv), run)


if __name__ == "__main__":
    main()
