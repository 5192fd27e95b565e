"""The benchmarks run end to end at tiny sizes on the CPU and write well-formed tables and JSON."""
import json
import os
import statistics
import sys

import numpy as np
import pytest

from benchmarks import common, compare_torch, matmul, plot, train_step
from tensorlite import autograd, backend

TINY_SIZE = ["--batch_size", "2", "--block_size", "8", "--n_embd", "16", "--n_layer", "1", "--n_head", "2",
             "--vocab_size", "11"]


def _load(path):
    with open(path) as f:
        payload = json.load(f)
    for key in ("benchmark", "args", "machine", "results"):
        assert key in payload
    for key in ("cpu", "cores", "numpy", "blas", "gpu", "date"):
        assert key in payload["machine"]
    return payload


def _well_ordered(st):
    assert 0 < st["min_s"] <= st["q1_s"] <= st["median_s"] <= st["q3_s"] <= st["max_s"]


# ---------------------------------------------------------------- common
def test_summarize_matches_the_statistics_module():
    rng = np.random.default_rng(0)
    samples = list(rng.random(9) + 0.1)
    st = common.summarize(samples)
    assert st["median_s"] == statistics.median(samples)
    assert st["q1_s"] == pytest.approx(np.percentile(samples, 25))
    assert st["q3_s"] == pytest.approx(np.percentile(samples, 75))
    assert (st["min_s"], st["max_s"], st["n"]) == (min(samples), max(samples), 9)
    one = common.summarize([0.5])
    assert one["q1_s"] == one["median_s"] == one["q3_s"] == 0.5


def test_measure_repeats_short_calls_and_reports_per_call_time():
    calls = []
    samples, number = common.measure(lambda: calls.append(1), repeats=4, warmup=1, min_sample_s=1e-4)
    assert len(samples) == 4 and all(s > 0 for s in samples)
    assert number > 1  # a list append is far shorter than 0.1 ms
    assert len(calls) >= 1 + 4 * number
    with pytest.raises(ValueError, match="repeats"):
        common.measure(lambda: None, repeats=0)


def test_format_table_aligns_columns():
    text = common.format_table(["name", "value"], [["a", 1.5], ["longer", "skipped: why"]], title="T")
    lines = text.splitlines()
    assert lines[0] == "T"
    assert len({len(line) for line in lines[1:]}) == 1  # header, rule and rows have one width
    assert lines[3].startswith("a ") and lines[3].endswith("1.5")
    short = common.format_table(["a", "b", "c"], [["x", 1, 2], ["cuda", "skipped: a long reason why"]])
    assert len(short.splitlines()[0]) == len("a  b  c")  # the short row does not widen the columns
    assert short.splitlines()[-1] == "cuda  skipped: a long reason why"


def test_machine_info_and_json_round_trip(tmp_path):
    info = common.machine_info()
    assert info["cores"] >= 1 and info["numpy"] == np.__version__
    assert info["gpu"]["available"] == backend.cuda_is_available()
    assert "CPU:" in common.describe_machine(info)
    path = tmp_path / "sub" / "x.json"
    import argparse
    common.write_json(str(path), "demo", argparse.Namespace(a=1), {"v": np.float32(2.5)}, info)
    payload = _load(path)
    assert payload["results"] == {"v": 2.5} and payload["args"] == {"a": 1}


def test_run_benchmark_frames_every_main(tmp_path, capsys):
    import argparse
    path = tmp_path / "r.json"
    seen = []

    def run(args, machine):
        seen.append(machine)
        print("the tables")
        return {"v": 1}
    assert common.run_benchmark("demo", argparse.Namespace(json=str(path)), run) == {"v": 1}
    out = capsys.readouterr().out.splitlines()
    assert "CPU:" in out[0] and "the tables" in out and out[-1] == f"wrote {path}"
    assert _load(path)["benchmark"] == "demo" and _load(path)["machine"] == seen[0]
    assert not [p for p in os.listdir(tmp_path) if p != "r.json"]  # no temporary file left behind


# ---------------------------------------------------------------- matmul
def test_matmul_flops():
    assert matmul.matmul_flops((4, 5), (5, 6)) == 2 * 4 * 5 * 6
    assert matmul.matmul_flops((3, 4, 5), (3, 5, 6)) == 3 * 2 * 4 * 5 * 6


def test_matmul_gpt_shapes_follow_the_presets():
    shapes = matmul.model_shapes({"p": dict(batch_size=3, block_size=5, n_embd=12, n_head=4)})
    (lin_name, lin_a, lin_b), (att_name, att_a, att_b) = shapes
    assert (lin_a, lin_b) == ((15, 12), (12, 48))  # B*T rows through the MLP's first Linear
    assert (att_a, att_b) == ((12, 5, 3), (12, 3, 5))  # B*H products of (T, hs) @ (hs, T)
    assert "B*T=15" in lin_name and "B*H=12, T=5, hs=3" in att_name
    # the course preset: B=128, T=64, n_embd=384, 8 heads
    assert ("course preset: Linear 384->1536 on B*T=8192 rows", (8192, 384), (384, 1536)) in matmul.MODEL_SHAPES
    assert ("course preset: scores q@k^T, B*H=1024, T=64, hs=48", (1024, 64, 48), (1024, 48, 64)) \
        in matmul.MODEL_SHAPES


def test_matmul_benchmark_tiny(tmp_path, capsys):
    path = tmp_path / "mm.json"
    assert matmul.main(["--quick", "--sizes", "8", "16", "--repeats", "2", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Matrix products" in out and "Elementwise and reductions" in out and "GFLOP/s" in out
    res = _load(path)["results"]
    gpu = backend.cuda_is_available()
    # 2 sizes x (square, batched) x (float32, float64 [, float16 on a GPU])
    assert len(res["matmul"]) == 2 * 2 * (3 if gpu else 2)
    assert len(res["elementwise"]) == 2 * len(matmul.ELEMENTWISE)
    for entry in res["matmul"] + res["elementwise"]:
        if entry["dtype"] != "float16":
            _well_ordered(entry["cpu"])
        if gpu:
            _well_ordered(entry["gpu"])
        else:
            assert "skipped" in entry["gpu"]
            assert "skipped: " in out
    assert res["matmul"][0]["flops"] == 2 * 8 ** 3


def test_matmul_rejects_bad_sizes():
    with pytest.raises(SystemExit):
        matmul.main(["--sizes", "0"])


# ---------------------------------------------------------------- train_step
def test_train_step_tiny(tmp_path, capsys):
    path = tmp_path / "ts.json"
    argv = ["--model", "bigram", "gpt", "--device", "cpu", *TINY_SIZE, "--steps", "2", "--warmup", "1",
            "--profile_steps", "2", "--json", str(path)]
    assert train_step.main(argv) == 0
    out = capsys.readouterr().out
    assert "One training step" in out and "Per-Function time of one step: gpt on cpu" in out
    results = _load(path)["results"]
    assert [r["model"] for r in results] == ["bigram", "gpt"]
    for r in results:
        _well_ordered(r["step"])
        assert r["tokens_per_step"] == 16
        assert r["tokens_per_s"] == pytest.approx(16 / r["step"]["median_s"])
        assert r["peak_host_rss_bytes"] > 0
        assert set(r["phases_s"]) == {"forward", "backward", "optimizer"}
        assert "_table" not in r
    funcs = results[1]["functions_per_step"]
    # one block: c_attn, attn c_proj, c_fc, mlp c_proj, plus lm_head = 5 Linear per step, each with a backward
    assert funcs["Linear"]["forward_count"] == 5 and funcs["Linear"]["backward_count"] == 5
    # the attention Function's name is the implementation's choice (fused self-attention or SDPA on split heads)
    (attention,) = [name for name in funcs if name.endswith("Attention")]
    for name in (attention, "LayerNorm", "Embedding", "CrossEntropy"):
        assert funcs[name]["forward_count"] >= 1 and funcs[name]["backward_count"] >= 1
    assert autograd._profile_hook is None


@pytest.mark.skipif(backend.cuda_is_available(), reason="checks the message shown without a GPU")
def test_train_step_skips_cuda_without_a_gpu(tmp_path, capsys):
    path = tmp_path / "ts.json"
    assert train_step.main(["--model", "bigram", "--device", "cuda", *TINY_SIZE, "--json", str(path)]) == 0
    assert "skipped: " in capsys.readouterr().out
    (r,) = _load(path)["results"]
    assert r["skipped"]


@pytest.mark.parametrize("bad", [["--n_embd", "10", "--n_head", "3"], ["--batch_size", "0"],
                                 ["--dropout", "1.5"], ["--steps", "0"]])
def test_train_step_rejects_bad_sizes(bad):
    with pytest.raises(SystemExit):
        train_step.parse_args(bad)


def test_train_step_preset_and_overrides():
    args = train_step.parse_args(["--preset", "course", "--n_layer", "2"])
    assert args.size == dict(train_step.PRESETS["course"], n_layer=2)
    assert train_step.parse_args([]).size == train_step.PRESETS["cpu"]


def test_presets_are_train_gpts_presets():
    from train.presets import PRESETS as TRAIN_PRESETS
    assert set(train_step.PRESETS) == set(TRAIN_PRESETS)
    for name, size in train_step.PRESETS.items():
        assert {k: v for k, v in size.items() if k != "vocab_size"} == \
            {k: TRAIN_PRESETS[name][k] for k in train_step.MODEL_FIELDS}


def test_presets_are_the_course_and_cpu_gpts():
    # the course GPT, and the CPU-sized GPT the speed targets are measured at
    shape = ("batch_size", "block_size", "n_embd", "n_layer", "n_head")
    course, cpu = train_step.PRESETS["course"], train_step.PRESETS["cpu"]
    assert tuple(course[k] for k in shape) == (128, 64, 384, 8, 8) and course["dropout"] == 0.2
    assert tuple(cpu[k] for k in shape) == (32, 64, 128, 4, 4)


# ---------------------------------------------------------------- compare_torch
def test_compare_torch_without_torch_exits_cleanly(monkeypatch, capsys):
    monkeypatch.setattr(compare_torch, "torch", None)
    assert compare_torch.main(["--quick"]) == 0
    assert "PyTorch is not importable" in capsys.readouterr().out
    assert compare_torch.main(["--quick", "--plot", "never.png"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("No plot was drawn.") and not os.path.exists("never.png")


def test_relative_error():
    assert compare_torch.relative_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert compare_torch.relative_error([1.0, 3.0], [1.0, 2.0]) == pytest.approx(0.5)
    assert compare_torch.relative_error([1e-3], [0.0]) == pytest.approx(1e-3)


needs_torch = pytest.mark.skipif(compare_torch.torch is None, reason="PyTorch is not installed")


@needs_torch
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_gradients_agree_with_torch_float64(device, activation):
    size = dict(compare_torch.TINY, n_layer=2)
    c = compare_torch.check_gradients(size, backend.normalize_device(device), "float64", seed=1,
                                      activation=activation)
    assert c["loss_rel_error"] <= 1e-9
    assert len(c["grad_rel_errors"]) == 2 + 12 * 2 + 2 + 2  # embeddings, 12 per block, ln_f, lm_head
    assert max(c["grad_rel_errors"].values()) <= 1e-9, c["grad_rel_errors"]
    assert c["ok"]


@needs_torch
def test_gradients_agree_with_torch_float32():
    c = compare_torch.check_gradients(compare_torch.TINY, "cpu", "float32", seed=2, activation="gelu")
    assert c["worst_grad_rel_error"] <= 1e-4 and c["ok"]


@needs_torch
def test_torch_twin_refuses_different_parameter_names():
    import tensorlite
    s = train_step.build("gpt", compare_torch.TINY, "cpu", "float64")
    s.model.extra = tensorlite.nn.Parameter(tensorlite.zeros(3))
    with pytest.raises(RuntimeError, match="parameter names differ.*extra"):
        compare_torch.torch_twin(s.model, "cpu")


@needs_torch
def test_torch_twin_refuses_different_shapes():
    import tensorlite
    s = train_step.build("gpt", compare_torch.TINY, "cpu", "float64")
    s.model.lm_head.weight = tensorlite.nn.Parameter(tensorlite.zeros(3, 4, dtype=tensorlite.float64))
    with pytest.raises(RuntimeError, match="lm_head.weight: tensorlite shape"):
        compare_torch.torch_twin(s.model, "cpu")


def _compare_tiny(tmp_path, capsys, *options):
    """compare_torch on a tiny GPT on the CPU: (printed text, JSON payload)."""
    path = tmp_path / "ct.json"
    assert compare_torch.main(["--device", "cpu", *TINY_SIZE, "--warmup", "1", *options, "--json", str(path)]) == 0
    return capsys.readouterr().out, _load(path)


@needs_torch
def test_compare_torch_tiny(tmp_path, capsys):
    out, payload = _compare_tiny(tmp_path, capsys, "--steps", "3", "--check_size", "tiny")
    assert "Gradient agreement" in out and "ratio tl/torch" in out and " ok" in out
    assert payload["machine"]["torch_threads"] >= 1
    assert all(c["ok"] for c in payload["results"]["checks"])
    (t,) = payload["results"]["timings"]
    assert len(t["samples_s"]["tensorlite"]) == len(t["samples_s"]["torch"]) == 3
    _well_ordered(t["stats"]["tensorlite"])
    _well_ordered(t["stats"]["torch"])
    assert t["ratio"] == pytest.approx(t["stats"]["tensorlite"]["median_s"] / t["stats"]["torch"]["median_s"])


@needs_torch
def test_compare_torch_breakdown_tiny(tmp_path, capsys):
    out, payload = _compare_tiny(tmp_path, capsys, "--steps", "2", "--no_check", "--breakdown")
    assert "Where the time goes, per step" in out
    (t,) = payload["results"]["timings"]
    rows = t["breakdown_s"]
    assert list(rows)[:3] == ["matrix products (Linear)", "attention", "layer norm"]
    for label, (tl_s, torch_s) in rows.items():
        if label != "everything else":
            assert tl_s >= 0 and torch_s >= 0, label
    tl_step, torch_step = rows["whole step (profiled)"]
    assert tl_step > 0 and torch_step > 0
    assert rows["matrix products (Linear)"][0] > 0 and rows["matrix products (Linear)"][1] > 0
    parts = [v for k, v in rows.items() if k != "whole step (profiled)"]
    assert sum(p[0] for p in parts) == pytest.approx(tl_step) and sum(p[1] for p in parts) == pytest.approx(torch_step)


# ---------------------------------------------------------------- plots (benchmarks/plot.py)
needs_matplotlib = pytest.mark.skipif(plot.matplotlib_missing() is not None, reason="matplotlib is not installed")
PNG = b"\x89PNG\r\n\x1a\n"


def _stats(median, q1, q3):
    return {"median_s": median, "q1_s": q1, "q3_s": q3, "min_s": q1, "max_s": q3, "n": 5}


def _compare_torch_payload():
    """What compare_torch --json writes (see compare() and time_alternating()), with made-up times."""
    def timing(preset, params, tl_s, torch_s):
        return {"device": "cpu", "preset": preset, "size": dict(train_step.PRESETS[preset]), "dtype": "float32",
                "tokens_per_step": 2048, "parameters": params,
                "samples_s": {"tensorlite": [tl_s] * 3, "torch": [torch_s] * 3},
                "stats": {"tensorlite": _stats(tl_s, 0.97 * tl_s, 1.05 * tl_s),
                          "torch": _stats(torch_s, 0.96 * torch_s, 1.04 * torch_s)},
                "ratio": tl_s / torch_s, "pair_ratio": _stats(1.1, 1.0, 1.2)}
    machine = dict(common.machine_info(), torch="2.13.0+cpu", torch_threads=2)
    timings = [timing("cpu", 818_241, 0.100, 0.090), timing("course", 14_271_041, 5.5, 5.64),
               {"device": "cuda", "skipped": "CuPy is not installed"}]
    return {"benchmark": "compare_torch", "args": {"dtype": "float32", "steps": 3}, "machine": machine,
            "results": {"checks": [], "timings": timings}}


def test_matmul_series_one_line_per_library_device_and_dtype():
    def entry(n, dtype, cpu, gpu, torch=None):
        extra = {"torch": torch} if torch else {}
        return dict(shape=[n, n], dtype=dtype, flops=2 * n ** 3, cpu=cpu, gpu=gpu, **extra)
    t = _stats(1e-3, 1e-3, 1e-3)
    results = {"matmul": [entry(64, "float32", t, {"skipped": "no GPU"}, {"cpu": t, "gpu": {"skipped": "no GPU"}}),
                          entry(32, "float32", t, {"skipped": "no GPU"}, {"cpu": t, "gpu": {"skipped": "no GPU"}}),
                          entry(32, "float16", {"skipped": matmul.CPU_HALF_REASON}, t)]}
    series, skipped = plot.matmul_series(results)
    rate = lambda n: 2 * n ** 3 / 1e-3 / 1e9  # noqa: E731  GFLOP/s of an (n, n) product in 1 ms
    assert series[(False, "NumPy", "CPU", "float32")] == [(32, rate(32)), (64, rate(64))]
    assert set(series) == {(False, "NumPy", "CPU", "float32"), (False, "PyTorch", "CPU", "float32"),
                           (False, "CuPy", "GPU", "float16")}
    assert skipped == {("PyTorch", "GPU"): "no GPU"}  # CuPy ran (float16): not skipped; float16 on a CPU is no skip


@needs_matplotlib
def test_matmul_plot_from_its_json_and_from_plot_flag(tmp_path, capsys):
    path, png = tmp_path / "mm.json", tmp_path / "mm.png"
    assert matmul.main(["--quick", "--sizes", "8", "16", "--repeats", "1", "--json", str(path), "--plot",
                        str(png)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {png}"
    assert png.read_bytes().startswith(PNG) and png.stat().st_size > 10_000
    payload = _load(path)
    series, _ = plot.matmul_series(payload["results"])
    assert {(b, lib, dev) for b, lib, dev, _ in series} >= {(False, "NumPy", "CPU"), (True, "NumPy", "CPU")}
    again = tmp_path / "again.svg"
    assert plot.main([str(path), "--out", str(again)]) == 0  # drawn again, later, from the JSON
    assert "GFLOP/s" in again.read_text() and "NumPy, CPU, float32" in again.read_text()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


@needs_matplotlib
def test_compare_torch_plot_from_a_json_dict(tmp_path):
    payload = _compare_torch_payload()
    png = tmp_path / "ct.png"
    assert plot.draw(payload, png) == png and png.read_bytes().startswith(PNG)
    svg = tmp_path / "ct.svg"
    plot.draw(payload, svg)
    text = svg.read_text()
    for words in ("tensorlite / PyTorch = 1.11", "tensorlite / PyTorch = 0.98", "5.5 s", "100 ms",
                  "cuda: CuPy is not installed", "training step"):
        assert words in text, words
    path = tmp_path / "ct.json"
    path.write_text(json.dumps(payload))
    assert plot.main([str(path)]) == 0 and (tmp_path / "ct.png").exists()  # default: beside the JSON
    with pytest.raises(ValueError, match="no timed step.*CuPy is not installed"):
        plot.draw(dict(payload, results={"checks": [], "timings": payload["results"]["timings"][2:]}), png)


def test_plot_refuses_what_it_cannot_draw(tmp_path, capsys):
    with pytest.raises(ValueError, match="plots exist for compare_torch, matmul"):
        plot.draw({"benchmark": "train_step", "results": {}, "machine": {}}, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"\.pdf, \.png, \.svg"):
        plot.check_path("out.jpeg")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SystemExit):
        plot.main([str(bad)])
    assert f"{bad}: Expecting property name" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        matmul.main(["--quick", "--plot", str(tmp_path / "m.jpeg")])
    assert "--plot: cannot tell the picture's format" in str(exc.value.code)


def test_plot_without_matplotlib_says_how_to_install_before_measuring(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert plot.matplotlib_missing() == plot.NO_MATPLOTLIB
    with pytest.raises(SystemExit) as exc:
        matmul.main(["--quick", "--sizes", "8", "--plot", str(tmp_path / "m.png")])
    assert exc.value.code == plot.NO_MATPLOTLIB and "pip install matplotlib" in exc.value.code
    assert capsys.readouterr().out == ""  # nothing was measured first
    path = tmp_path / "ct.json"
    path.write_text(json.dumps(_compare_torch_payload()))
    with pytest.raises(SystemExit) as exc:
        plot.main([str(path)])
    assert exc.value.code == plot.NO_MATPLOTLIB and not (tmp_path / "ct.png").exists()


def test_measure_calls_sync_at_the_end_of_each_sample():
    events = []
    common.measure(lambda: events.append("f"), repeats=2, warmup=1, min_sample_s=0, sync=lambda: events.append("s"))
    assert events == ["f", "s", "f", "s", "f", "s", "f", "s"]  # warm-up, calibration, two samples


# ---------------------------------------------------------------- prepare_corpus
def test_prepare_corpus_tiny(tmp_path, monkeypatch, capsys):
    from benchmarks import prepare_corpus
    monkeypatch.setattr(prepare_corpus, "POOL_CHARS", 1 << 21)
    out = tmp_path / "prepare.json"
    prepare_corpus.main(["--size_mb", "1", "--bpe_vocab", "300", "--bpe_sample_mb", "1", "--encode_mb", "1",
                         "--bpe_prepare_mb", "1", "--train_mb", "1", "--workers", "1,2", "--workdir",
                         str(tmp_path / "work"), "--out", str(out)])
    results = json.loads(out.read_text())
    for kind in ("char", "bpe_prepare"):
        assert set(results[kind]) == {"1", "2"}
        for row in results[kind].values():
            assert row["MB_per_s"] > 0 and row["peak_rss_MB"]["main"] > 0 and row["encode_speedup"] > 0
        assert results[kind]["2"]["peak_rss_MB"]["worker"] > 0  # measured in the workers
    assert results["bpe"]["encode_MB_per_s_warm"] > 0 and results["bpe_train_long_runs"]["seconds"] > 0
    assert not (tmp_path / "work").exists()  # removed without --keep
    assert "char prepare, 2 worker(s)" in capsys.readouterr().out
