"""The benchmarks run end to end at tiny sizes on the CPU and write well-formed tables and JSON."""
import json
import os
import statistics

import numpy as np
import pytest

from benchmarks import common, compare_torch, matmul, train_step
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
