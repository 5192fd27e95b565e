"""The loss curve on the web page (train/web.py): reading the log.jsonl beside a checkpoint, which is
untrusted input (missing, damaged, oversized, several runs in one), and the plot the page builds from it.
The page itself, in a browser, is tested in tests/test_web.py.
"""
import json

import pytest

from train import web
from train.tokenizers import CharTokenizer

TOK = CharTokenizer.from_text("hello world\n")


def no_stream(*args, **kwargs):
    return iter(())


# --- log.jsonl beside the checkpoint --------------------------------------------------------------------------

def write_log(folder, lines):
    """A checkpoint file (its content does not matter here) with log.jsonl beside it; returns its path."""
    (folder / "log.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    ckpt = folder / "best.ckpt"
    ckpt.write_bytes(b"not read by load_loss_curve")
    return str(ckpt)


def record(step, train, val):
    return json.dumps({"step": step, "train_loss": train, "val_loss": val, "lr": 1e-3, "tokens": 64 * step,
                       "time": 0.5 * step, "cpu_time": 0.9 * step})


def test_loss_curve_reads_every_evaluation_of_the_run(tmp_path):
    ckpt = write_log(tmp_path, [record(0, 4.5, 4.6), record(250, 2.1, 2.2), record(500, 1.7, 1.8)])
    rows, note = web.load_loss_curve(ckpt)
    assert rows == [(0, 4.5, 4.6), (250, 2.1, 2.2), (500, 1.7, 1.8)]
    assert "3 evaluations" in note and "steps 0 to 500" in note and "1.8000 at step 500" in note
    assert "skipped" not in note


def test_loss_curve_as_the_table_the_plot_draws(tmp_path):
    pytest.importorskip("pandas", reason="pandas comes with the web extra")
    frame = web.loss_frame([(0, 4.5, 4.6), (250, 2.1, 2.2)])
    assert list(frame.columns) == ["step", "loss", "split"]
    assert frame.values.tolist() == [[0, 4.5, "train"], [0, 4.6, "val"], [250, 2.1, "train"], [250, 2.2, "val"]]
    assert len(web.loss_frame([])) == 0 and list(web.loss_frame([]).columns) == ["step", "loss", "split"]


def test_no_log_beside_the_checkpoint(tmp_path):
    ckpt = tmp_path / "best.ckpt"
    ckpt.write_bytes(b"x")
    assert web.load_loss_curve(str(ckpt)) == ([], web.NO_LOG)
    (tmp_path / "log.jsonl").mkdir()                              # not a file: the same answer, no exception
    assert web.load_loss_curve(str(ckpt)) == ([], web.NO_LOG)


@pytest.mark.parametrize("lines, why", [
    ([], "empty"),
    (["\x00\x01garbage", "{not json", "[1, 2, 3]", '"a string"'], "no readable evaluation; skipped 4"),
    ([json.dumps({"step": 1, "train_loss": "low", "val_loss": 2.0}),            # wrong types and missing keys
      json.dumps({"step": True, "train_loss": 1.0, "val_loss": 2.0}),
      json.dumps({"step": -5, "train_loss": 1.0, "val_loss": 2.0}),
      json.dumps({"step": 3, "val_loss": 2.0}),
      '{"step": 4, "train_loss": NaN, "val_loss": Infinity}'], "no readable evaluation; skipped 5"),
    (["[" * 100_000 + "]" * 100_000,                                             # deeper than json can parse
      '{"step": 1' + "0" * 400 + ', "train_loss": 1.0, "val_loss": 2.0}'],       # an int no float can hold
     "no readable evaluation; skipped 2"),
])
def test_damaged_log_hides_the_plot_and_says_why(tmp_path, lines, why):
    rows, note = web.load_loss_curve(write_log(tmp_path, lines))
    assert rows == []
    assert note.startswith(web.NO_LOG) and why in note


def test_partly_damaged_log_keeps_its_whole_lines(tmp_path):
    # a run killed while writing its last line, and a line of bytes that are not UTF-8
    ckpt = write_log(tmp_path, [record(0, 4.5, 4.6), record(250, 2.1, 2.2), record(500, 1.7, 1.8)[:30]])
    with open(tmp_path / "log.jsonl", "ab") as f:
        f.write(b"\xff\xfe\n")
    rows, note = web.load_loss_curve(ckpt)
    assert rows == [(0, 4.5, 4.6), (250, 2.1, 2.2)]
    assert "2 evaluations" in note and "skipped 2 damaged line(s)" in note


def test_a_log_of_two_runs_shows_the_last(tmp_path):
    # train.gpt appends to log.jsonl: a second run into the same folder starts again at step 0
    ckpt = write_log(tmp_path, [record(0, 4.5, 4.6), record(250, 2.1, 2.2), record(0, 4.4, 4.4),
                                record(100, 3.0, 3.1)])
    assert web.load_loss_curve(ckpt)[0] == [(0, 4.4, 4.4), (100, 3.0, 3.1)]


def test_an_oversized_log_is_not_read(tmp_path, monkeypatch):
    ckpt = write_log(tmp_path, [record(0, 4.5, 4.6), record(250, 2.1, 2.2)])
    monkeypatch.setattr(web, "LOG_LIMIT", 100)
    rows, note = web.load_loss_curve(ckpt)
    assert rows == [] and note.startswith(web.NO_LOG) and "too large" in note


def test_a_long_log_is_thinned_for_the_plot_but_keeps_its_ends(tmp_path, monkeypatch):
    monkeypatch.setattr(web, "MAX_POINTS", 10)
    ckpt = write_log(tmp_path, [record(step, 1.0 + 1 / (step + 1), 2.0 - step / 100) for step in range(95)])
    rows, _ = web.load_loss_curve(ckpt)
    assert len(rows) <= 11 and rows[0][0] == 0 and rows[-1][0] == 94
    assert [r[0] for r in rows] == sorted({r[0] for r in rows})


# --- the plot on the page ----------------------------------------------------------------------------------------

def plot_of(app):
    import gradio as gr
    plots = [block for block in app.blocks.values() if isinstance(block, gr.LinePlot)]
    assert len(plots) == 1
    return plots[0]


def test_app_shows_the_loss_plot_only_when_there_is_a_log(tmp_path):
    pytest.importorskip("gradio", reason='the web extra is not installed: pip install -e ".[web]"')
    info = {"model_type": "bigram", "num_params": 144, "vocab_size": TOK.vocab_size}
    with_log = write_log(tmp_path, [record(0, 4.5, 4.6), record(250, 2.1, 2.2)])
    plot = plot_of(web.build_app(None, TOK, info, checkpoint=with_log, stream=no_stream))
    assert plot.visible is True and plot.elem_id == "loss-plot"
    (tmp_path / "log.jsonl").write_text("{damaged", encoding="utf-8")
    assert plot_of(web.build_app(None, TOK, info, checkpoint=with_log, stream=no_stream)).visible is False
    assert plot_of(web.build_app(None, TOK, info, stream=no_stream)).visible is False
