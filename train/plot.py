"""Loss curves: the picture of a run's log.jsonl.

    python -m train.plot out/gpt                          # one run  -> out/gpt/loss.png
    python -m train.plot out/a out/b --out compare.png    # several runs on one figure, labelled by folder

The training loop redraws out_dir/loss.png after every evaluation through `LossPlot`: train and
validation loss against the step (the tokens seen on the top axis), the best validation point marked,
the learning rate on the right axis. `draw(runs, path)` is the figure itself; `read_log(path)` reads and
checks a log. matplotlib is optional (`pip install -e ".[plot]"`) and imported only when a figure is
drawn; it draws on its Agg canvas directly, so it never touches pyplot's global state or a display.
"""
import argparse
import json
import math
import os
import sys

from tensorlite.serialization import atomic_write
from train.cli import cli_main
from train.errors import UserError

INSTALL_HINT = 'pip install -e ".[plot]"'
LOG_NAME, PLOT_NAME = "log.jsonl", "loss.png"


class PlotError(UserError, ValueError):
    """A log cannot be drawn: missing, not a training log, or matplotlib is not installed."""


# ---------------------------------------------------------------- the log
def parse_record(line):
    """One log line as a dict, or ValueError saying what is wrong with it (not JSON, not an object, a
    missing, negative or non-finite step or loss). The log is untrusted input: a line nested deeper than the
    parser goes, or an int too large for a float, is a damaged line too. train.rundir's trim_log and the web
    page read lines with it too."""
    try:
        record = json.loads(line)  # a json.JSONDecodeError is a ValueError
    except RecursionError:
        raise ValueError("nested too deeply to be a training-log record") from None
    if not isinstance(record, dict):
        raise ValueError("not a training-log record (a JSON object)")
    for key in ("step", "train_loss", "val_loss", "lr", "tokens"):
        value = record.get(key, 0) if key in ("lr", "tokens") else record.get(key)
        if not _finite_number(value):
            raise ValueError(f"{key!r} should be a finite number, got {str(value)[:40]}")
    if record["step"] < 0:
        raise ValueError(f"'step' should be >= 0, got {record['step']}")
    return record


def _finite_number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def read_log(path):
    """The evaluations of a log.jsonl as a list of dicts (step, train_loss, val_loss, and lr, tokens, time
    where present), checked line by line. A last line without its newline is skipped: the run that writes
    the log may be appending it right now."""
    if not os.path.isfile(path):
        raise PlotError(f"no training log at {path}" + (" (a folder)" if os.path.isdir(path) else ""))
    records = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except OSError as exc:
        raise PlotError(f"cannot read {path}: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(parse_record(line))
        except ValueError as exc:
            if number == len(lines) and not line.endswith("\n"):
                break  # a line being written
            what = "is not JSON" if isinstance(exc, json.JSONDecodeError) else f"is damaged ({exc})"
            raise PlotError(f"{path} line {number} {what}: {line.strip()[:60]!r}; a run resumed with "
                            "--resume drops a damaged tail") from None
    if not records:
        raise PlotError(f"{path} holds no evaluations yet")
    return records


def best_record(records):
    """The evaluation with the lowest validation loss (the first of equals: the one best.ckpt holds)."""
    return min(records, key=lambda r: r["val_loss"])


def tokens_per_step(records):
    """Tokens of one step, from the log (None where no evaluation after step 0 says)."""
    for r in records:
        if r["step"] > 0 and r.get("tokens"):
            return r["tokens"] / r["step"]
    return None


# ---------------------------------------------------------------- the figure
def load_matplotlib():
    """(Figure, FigureCanvasAgg), or PlotError saying how to install matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotError(f"matplotlib is not installed, so no loss curves are drawn: {INSTALL_HINT}") from None
    return Figure, FigureCanvasAgg


def _count(value):
    """1234567 -> '1.2M': a short number for titles and labels."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.0f}"


def _duration(seconds):
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 \
        else f"{seconds / 3600:.1f} h"


def draw(runs, path, lr_at=None):
    """Draw runs = [(label, records), ...] on one figure and write it to `path` as a PNG, atomically.

    One run: train and validation loss, the best validation point, the learning rate (right axis; from
    `lr_at(step)` where given, else the log's values). Several: one colour a run, validation solid and
    train dashed, and a legend of the runs with their best validation loss."""
    Figure, FigureCanvasAgg = load_matplotlib()
    from matplotlib import ticker
    from matplotlib.lines import Line2D
    fig = Figure(figsize=(10, 5.6), dpi=100)
    # fixed margins, not constrained layout: that would double the time of a drawing (the loop draws often)
    fig.subplots_adjust(left=0.075, right=0.915, bottom=0.095, top=0.84)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    lr_ax = ax.twinx()
    ax.set_zorder(lr_ax.get_zorder() + 1)  # the losses above the learning rate
    ax.patch.set_visible(False)
    single = len(runs) == 1
    rates = {tokens_per_step(records) for _, records in runs}
    shared_rate = rates.pop() if len(rates) == 1 else None
    run_handles = []
    for i, (label, records) in enumerate(runs):
        steps = [r["step"] for r in records]
        train_color, val_color = ("C0", "C1") if single else (f"C{i % 10}", f"C{i % 10}")
        ax.plot(steps, [r["train_loss"] for r in records], color=train_color, lw=1.8, marker="o", ms=3,
                ls="-" if single else "--", alpha=1.0 if single else 0.75, label="train")
        val, = ax.plot(steps, [r["val_loss"] for r in records], color=val_color, lw=2.2, marker="o", ms=3.5,
                       label="validation")
        best = best_record(records)
        ax.plot([best["step"]], [best["val_loss"]], ls="none", marker="*", ms=16, color=val_color, mec="black",
                mew=0.8, zorder=5, label="best validation")
        if single:
            ax.annotate(f"best {best['val_loss']:.4f}\nstep {best['step']:,}", (best["step"], best["val_loss"]),
                        xytext=(0, 14), textcoords="offset points", ha="center", va="bottom", fontsize=10,
                        bbox=dict(boxstyle="round,pad=0.3", fc="white", ec="0.7", alpha=0.9))
        if lr_at is not None and single:
            lr_steps = sorted({round(steps[-1] * k / 400) for k in range(401)})
            lr_values = [lr_at(s) for s in lr_steps]
        else:
            lr_steps, lr_values = steps, [r.get("lr") for r in records]
        if all(v is not None for v in lr_values):
            lr_ax.plot(lr_steps, lr_values, color="0.45" if single else train_color, lw=1.2, ls=":",
                       label="learning rate (right axis)")
        rate = tokens_per_step(records)
        run_label = f"{label}: best val {best['val_loss']:.4f} at step {best['step']:,}"
        if rate and shared_rate is None:
            run_label += f" ({_count(rate)} tokens/step)"
        run_handles.append((val, run_label))

    ax.set_xlabel("step")
    ax.set_ylabel("loss (cross-entropy per token)")
    ax.set_xlim(left=0)
    ax.grid(True, alpha=0.35)
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True, steps=[1, 2, 2.5, 5, 10]))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    top_lr = lr_ax.get_ylim()[1] if lr_ax.lines else 1.0
    lr_ax.set_ylim(0, top_lr * 1.1)
    power = math.floor(math.log10(top_lr)) if top_lr > 0 else 0  # the scale in the label, not above the axis
    lr_ax.set_ylabel("learning rate" + (f" (×10$^{{{power}}}$)" if power else ""), color="0.35")
    lr_ax.tick_params(axis="y", colors="0.35")
    lr_ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v / 10 ** power:g}"))
    if not shared_rate:
        fig.subplots_adjust(top=0.91)  # no tokens axis above: the title moves down into its room
    if shared_rate:
        top = ax.secondary_xaxis("top", functions=(lambda s: s * shared_rate, lambda t: t / shared_rate))
        top.set_xlabel("tokens seen")
        top.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: _count(v)))
    if single:
        label, records = runs[0]
        last = records[-1]
        facts = [f"step {last['step']:,}"]
        if last.get("tokens"):
            facts.append(f"{_count(last['tokens'])} tokens")
        if last.get("time"):
            facts.append(_duration(last["time"]))
        ax.set_title(f"{label}: loss curves   ({', '.join(facts)})", fontsize=13, loc="left")
        handles = ax.get_legend_handles_labels()[0][:3] + lr_ax.get_legend_handles_labels()[0][:1]
        ax.legend(handles=handles, loc="upper right", framealpha=0.9)
    else:
        ax.set_title("loss curves: " + ", ".join(label for label, _ in runs), fontsize=13, loc="left")
        runs_legend = ax.legend([h for h, _ in run_handles], [t for _, t in run_handles], loc="upper right",
                                framealpha=0.9, title="runs")
        ax.add_artist(runs_legend)
        styles = [Line2D([], [], color="0.2", lw=2.2, label="validation"),
                  Line2D([], [], color="0.2", lw=1.8, ls="--", label="train"),
                  Line2D([], [], color="0.2", lw=1.2, ls=":", label="learning rate (right axis)"),
                  Line2D([], [], color="0.6", ls="none", marker="*", ms=14, mec="black", label="best validation")]
        ax.legend(handles=styles, loc="center right", framealpha=0.9, fontsize=9)
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    return path


# ---------------------------------------------------------------- during training
class LossPlot:
    """Redraws out_dir/loss.png from out_dir/log.jsonl after each evaluation, and never stops the run:
    without matplotlib it says once how to get plots; if drawing fails it warns once and goes on."""

    def __init__(self, out_dir, lr_at=None, print=print):
        self.log_path = os.path.join(out_dir, LOG_NAME)
        self.path = os.path.join(out_dir, PLOT_NAME)
        self.label = os.path.basename(os.path.normpath(os.path.abspath(out_dir)))
        self.lr_at, self.print = lr_at, print
        self.said = False      # the one line about a missing matplotlib or a failed drawing
        self.available = True  # False once matplotlib turned out to be missing: no more tries

    def update(self):
        """Draw the figure; True if loss.png was written."""
        if not self.available:
            return False
        try:
            load_matplotlib()
        except PlotError:
            self.available = False
            self.print(f"no loss curves (matplotlib is not installed); to get {self.path}: {INSTALL_HINT}")
            return False
        try:
            draw([(self.label, read_log(self.log_path))], self.path, lr_at=self.lr_at)
            return True
        except Exception as exc:  # a picture is never worth a run
            if not self.said:
                self.said = True
                self.print(f"warning: could not draw {self.path} ({type(exc).__name__}: {exc}); "
                           "training goes on")
            return False


# ---------------------------------------------------------------- the command line
def labels_for(folders):
    """Folder names as labels; the whole paths where two names are the same."""
    names = [os.path.basename(os.path.normpath(os.path.abspath(d))) for d in folders]
    return names if len(set(names)) == len(names) else [os.path.normpath(d) for d in folders]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m train.plot", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dirs", nargs="+", metavar="OUT_DIR", help="folders of runs (each with a log.jsonl)")
    parser.add_argument("--out", default=None, help="the PNG to write (default: OUT_DIR/loss.png for one run, "
                                                    "loss_comparison.png here for several)")
    args = parser.parse_args(argv)
    for d in args.out_dirs:
        if not os.path.isdir(d):
            raise PlotError(f"{d} is not a folder of a run (expected a folder holding {LOG_NAME})")
    runs = [(label, read_log(os.path.join(d, LOG_NAME))) for label, d in zip(labels_for(args.out_dirs),
                                                                             args.out_dirs)]
    out = args.out or (os.path.join(args.out_dirs[0], PLOT_NAME) if len(runs) == 1 else "loss_comparison.png")
    if os.path.isdir(out):
        raise PlotError(f"--out {out} is a folder; name the PNG file to write")
    if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise PlotError(f"--out {out}: the folder {os.path.dirname(os.path.abspath(out))} does not exist")
    load_matplotlib()
    draw(runs, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(cli_main(main))
