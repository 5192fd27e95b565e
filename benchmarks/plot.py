"""Pictures of the benchmarks' results, drawn from the JSON they write (``--json``), so a run can be drawn
again later, or on another machine:

    python -m benchmarks.matmul --quick --plot matmul.png          # measure, then draw
    python -m benchmarks.matmul --json mm.json                      # or measure now ...
    python -m benchmarks.plot mm.json --out matmul.png              # ... and draw later

* matmul: GFLOP/s against matrix size, one line per library, device and dtype (NumPy on the CPU,
  CuPy on a GPU, PyTorch on both where it is installed): the CPU-against-GPU question as one picture;
  square products on the left, batched ones on the right.
* compare_torch: the median time of one training step of each library, by preset and device, with the
  quartiles as error bars and the ratio tensorlite / PyTorch above each pair.

matplotlib is optional (``pip install matplotlib``, or the ``plot`` extra). Everything here takes the
payload dict (``{"benchmark", "args", "machine", "results"}``) and imports matplotlib only when it draws;
it uses matplotlib's object API (no pyplot), so it never changes the backend of a session it runs in.
"""
import argparse
import importlib
import json
import os
import sys
import textwrap

from tensorlite.serialization import atomic_write

NO_MATPLOTLIB = ("--plot needs matplotlib, which is not installed: pip install matplotlib "
                 "(or pip install -e \".[plot]\"), then run again")
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
# colour per library and device; line style and marker per dtype
COLORS = {("NumPy", "CPU"): "#1f77b4", ("PyTorch", "CPU"): "#ff7f0e", ("CuPy", "GPU"): "#2ca02c",
          ("PyTorch", "GPU"): "#d62728"}
DTYPE_STYLE = {"float32": ("-", "o"), "float64": ("--", "s"), "float16": (":", "^")}
LIBRARY_COLORS = {"tensorlite": "#1f77b4", "PyTorch": "#ff7f0e"}


def matplotlib_missing():
    """None when matplotlib can be imported, else the one line that says how to install it."""
    try:
        importlib.import_module("matplotlib")
    except ImportError:
        return NO_MATPLOTLIB
    return None


def check_path(path):
    """The format of `path` from its suffix, or a ValueError that names the ones supported."""
    suffix = os.path.splitext(str(path))[1].lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot tell the picture's format from {str(path)!r}: end it with "
                         f"{', '.join(sorted(FORMATS))}")
    return FORMATS[suffix]


def machine_line(machine):
    """'AMD EPYC 7B13, 2 cores, NumPy 2.4 (scipy-openblas 0.3.31, 2 threads) | GPU: none (why)'."""
    blas = machine.get("blas") or {}
    gpu = machine.get("gpu") or {}
    gpu_text = gpu.get("name") if gpu.get("available") else f"none ({gpu.get('reason', 'unknown')})"
    blas_text = " ".join(str(v) for v in (blas.get("name"), blas.get("version")) if v)
    return (f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, NumPy {machine.get('numpy', '?')} "
            f"({blas_text or 'BLAS ?'}, {machine.get('blas_threads') or '?'} threads) | GPU: {gpu_text}")


# ---------------------------------------------------------------- matmul
def matmul_series(results):
    """{(batched, library, device, dtype): [(n, GFLOP/s), ...]} and {(library, device): why skipped}."""
    series, skipped = {}, {}
    for entry in results.get("matmul", []):
        n, batched = entry["shape"][-1], len(entry["shape"]) > 2
        cells = [("NumPy", "CPU", entry.get("cpu")), ("CuPy", "GPU", entry.get("gpu"))]
        torch = entry.get("torch") or {}
        cells += [("PyTorch", "CPU", torch.get("cpu")), ("PyTorch", "GPU", torch.get("gpu"))]
        for library, device, st in cells:
            if not st:
                continue
            if "median_s" in st:
                series.setdefault((batched, library, device, entry["dtype"]), []).append(
                    (n, entry["flops"] / st["median_s"] / 1e9))
            elif entry["dtype"] != "float16" or device == "GPU":  # float16 on a CPU is skipped by design
                skipped.setdefault((library, device), st.get("skipped", "not measured"))
    for key in skipped.copy():  # measured in some dtype: not a skip of the whole library
        if any(k[1:3] == key for k in series):
            del skipped[key]
    return {k: sorted(v) for k, v in series.items()}, skipped


def matmul_figure(payload):
    from matplotlib.figure import Figure
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    series, skipped = matmul_series(payload["results"])
    if not series:
        raise ValueError("the matmul results hold no measured matrix product to draw")
    fig = Figure(figsize=(11, 5.8), constrained_layout=True)
    axes = fig.subplots(1, 2, sharey=True)
    gpu = (payload["machine"].get("gpu") or {}).get("name")
    sizes = sorted({n for points in series.values() for n, _ in points})
    for ax, batched, title in ((axes[0], False, "square: (n, n) @ (n, n)"),
                               (axes[1], True, "batched: (8, n, n) @ (8, n, n)")):
        for (b, library, device, dtype), points in sorted(series.items(), key=lambda kv: (kv[0][2], kv[0][1],
                                                                                              kv[0][3])):
            if b != batched:
                continue
            style, marker = DTYPE_STYLE.get(dtype, ("-.", "x"))
            where = f"GPU ({gpu})" if device == "GPU" and gpu else device
            ax.plot([n for n, _ in points], [r for _, r in points], linestyle=style, marker=marker,
                    color=COLORS.get((library, device), "#7f7f7f"), label=f"{library}, {where}, {dtype}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(sizes)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_locator(LogLocator(base=10))
        ax.set_xlabel("matrix size n")
        ax.set_title(title, fontsize=11)
        ax.grid(True, which="major", alpha=0.35)
        ax.grid(True, which="minor", axis="y", alpha=0.12)
        if not ax.get_legend_handles_labels()[0]:
            ax.text(0.5, 0.5, "not measured\n(sizes above --max_batched_n)", ha="center", va="center",
                    transform=ax.transAxes, color="#777777")
    axes[0].set_ylabel("GFLOP/s (2 m n k flops / median time; log scale)")
    labels = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            labels.setdefault(label, handle)
    _legend_below(fig, axes[0], list(labels.values()), list(labels), ncol=min(3, len(labels)))
    notes = [f"{lib} on the {dev}: {why}" for (lib, dev), why in sorted(skipped.items())]
    if payload["results"].get("torch_skipped"):
        notes.append(f"PyTorch: {payload['results']['torch_skipped']}")
    _title(fig, "Matrix products: throughput against size (higher is better)", payload["machine"], notes)
    return fig


def _title(fig, title, machine, notes=()):
    """The title, the machine on a second line, and what was not measured on a third."""
    date = str(machine.get("date", ""))[:10]
    lines = [f"{title}, measured {date}" if date else title, machine_line(machine)]
    if notes:
        lines.append("not measured: " + "; ".join(notes))
    width = int(fig.get_figwidth() * 11.5)  # characters that fit at this font size
    out = []
    for line in lines:  # break at " | " where a line is too long, else between words
        row = ""
        for part in line.split(" | "):
            if row and len(row) + 3 + len(part) > width:
                out.append(row)
                row = part
            else:
                row = f"{row} | {part}" if row else part
        out.append(textwrap.fill(row, width))
    fig.suptitle("\n".join(out), fontsize=10.5)


def _legend_below(fig, ax, handles, labels, ncol):
    """One legend under the panels (matplotlib >= 3.7), else inside the first panel."""
    try:
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=9, frameon=False)
    except ValueError:  # older matplotlib: no 'outside' locations
        ax.legend(handles, labels, loc="best", fontsize=8)


# ---------------------------------------------------------------- compare_torch
def _fmt_ms(ms):
    return f"{ms / 1e3:.3g} s" if ms >= 1e3 else f"{ms:.3g} ms"


def compare_torch_figure(payload):
    """One panel per (preset, device), each with its own linear scale from 0 (presets differ 50x)."""
    from matplotlib.figure import Figure

    timings = payload["results"].get("timings", [])
    measured = [t for t in timings if "stats" in t]
    if not measured:
        why = "; ".join(f"{t.get('device')}: {t.get('skipped') or t['unavailable']}" for t in timings
                        if "skipped" in t or "unavailable" in t)
        raise ValueError("the compare_torch results hold no timed step to draw" + (f" ({why})" if why else ""))
    fig = Figure(figsize=(max(7.5, 3.4 * len(measured) + 1), 5.4), constrained_layout=True)
    axes = fig.subplots(1, len(measured), squeeze=False)[0]
    libraries = (("tensorlite", "tensorlite"), ("torch", "PyTorch"))
    for ax, t in zip(axes, measured):
        for j, (key, library) in enumerate(libraries):
            st = t["stats"][key]
            med, q1, q3 = (st[k] * 1e3 for k in ("median_s", "q1_s", "q3_s"))
            ax.bar(j, med, 0.65, color=LIBRARY_COLORS[library], label=library,
                   yerr=[[med - q1], [q3 - med]], capsize=5, ecolor="#333333")
            ax.annotate(_fmt_ms(med), (j, q3), xytext=(0, 4), textcoords="offset points", ha="center",
                        va="bottom", fontsize=9)
        top = max(t["stats"][k]["q3_s"] for k, _ in libraries) * 1e3
        ax.set_ylim(0, top * 1.18)
        ax.set_xticks([0, 1])
        ax.set_xticklabels([library for _, library in libraries])
        ax.set_xlim(-0.7, 1.7)
        ax.set_title(f"{t.get('preset', '?')} preset on {t['device']} ({t.get('parameters', 0):,} parameters)\n"
                     f"tensorlite / PyTorch = {t['ratio']:.2f}", fontsize=10)
        ax.grid(True, axis="y", alpha=0.35)
        ax.set_axisbelow(True)
    axes[0].set_ylabel("time of one training step, ms\n(median; error bars: first and third quartiles)")
    args = payload.get("args") or {}
    machine = payload["machine"]
    threads = f", PyTorch on {machine['torch_threads']} threads" if "torch_threads" in machine else ""
    _title(fig, f"One training step (forward + backward + AdamW) in tensorlite and PyTorch: "
                f"{args.get('dtype', 'float32')}, {args.get('steps', '?')} alternated steps each{threads} "
                f"(lower is better)", machine,
           [f"{t.get('device')}: {t['skipped']}" for t in timings if "skipped" in t])
    return fig


FIGURES = {"matmul": matmul_figure, "compare_torch": compare_torch_figure}


def draw(payload, path):
    """Draw a benchmark's payload (what --json wrote, as a dict) to `path` (.png, .svg or .pdf), atomically."""
    fmt = check_path(path)
    name = payload.get("benchmark") if isinstance(payload, dict) else None
    if name not in FIGURES or not isinstance(payload.get("results"), dict) or "machine" not in payload:
        raise ValueError(f"cannot draw {name!r} results: plots exist for {', '.join(sorted(FIGURES))} "
                         "(the JSON their --json writes)")
    fig = FIGURES[name](payload)
    atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=110))
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description="Draw a benchmark's JSON results (matmul, compare_torch) as a "
                                            "picture.")
    p.add_argument("result", help="the JSON file a benchmark's --json wrote")
    p.add_argument("--out", default=None, help="the picture to write (.png, .svg, .pdf; default: RESULT.png)")
    args = p.parse_args(argv)
    out = args.out or os.path.splitext(args.result)[0] + ".png"
    try:
        check_path(out)
        with open(args.result, encoding="utf-8") as f:
            payload = json.load(f)
    except (OSError, ValueError) as exc:
        p.error(f"{args.result}: {exc}")
    missing = matplotlib_missing()
    if missing:
        sys.exit(missing)
    try:
        draw(payload, out)
    except KeyError as exc:
        p.error(f"{args.result}: not a complete {payload.get('benchmark')} result (no field {exc})")
    except (ValueError, TypeError, AttributeError) as exc:
        p.error(f"{args.result}: {exc}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
