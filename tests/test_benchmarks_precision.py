"""compare_torch --dtype tf32 / float16 drive tensorlite through the API PyTorch users know
(tensorlite.backends.cuda.matmul.allow_tf32, tensorlite.autocast, tensorlite.amp.GradScaler); where
this tensorlite lacks it, the mode is recorded as unavailable, not a crash. Fakes stand in for the API
here, so these tests say what the benchmark calls, not what the real API computes."""
import contextlib
import json
from types import SimpleNamespace

import pytest

import tensorlite
from benchmarks import compare_torch, precision

TINY_ARGS = ["--batch_size", "2", "--block_size", "8", "--n_embd", "16", "--n_layer", "1", "--n_head", "2",
             "--vocab_size", "11"]

needs_torch = pytest.mark.skipif(compare_torch.torch is None, reason="PyTorch is not installed")


def _run(tmp_path, *options):
    path = tmp_path / "ct.json"
    assert compare_torch.main(["--device", "cpu", *TINY_ARGS, "--steps", "2", "--warmup", "1", "--no_check",
                               *options, "--json", str(path)]) == 0
    return json.loads(path.read_text())["results"]["timings"]


def _without(monkeypatch, *names):
    for obj, name in names:
        monkeypatch.delattr(obj, name, raising=False)
    monkeypatch.setattr(precision, "_tensorlite_amp", lambda: getattr(tensorlite, "amp", None))


@needs_torch
@pytest.mark.parametrize("mode, missing", [("tf32", "tensorlite.backends.cuda.matmul.allow_tf32"),
                                           ("float16", "tensorlite.autocast")])
def test_a_mode_tensorlite_lacks_is_recorded_as_unavailable(tmp_path, monkeypatch, capsys, mode, missing):
    _without(monkeypatch, (tensorlite.backends, "cuda"), (tensorlite, "autocast"), (tensorlite, "amp"))
    (t,) = _run(tmp_path, "--dtype", mode)
    assert t == {"device": "cpu", "preset": "cpu", "dtype": mode, "unavailable": f"this tensorlite has no {missing}"}
    assert f"unavailable: this tensorlite has no {missing}" in capsys.readouterr().out


@needs_torch
def test_tf32_turns_both_libraries_flags_on_for_the_timed_steps_only(tmp_path, monkeypatch):
    flags = SimpleNamespace(allow_tf32=False)
    monkeypatch.setattr(tensorlite.backends, "cuda", SimpleNamespace(matmul=flags), raising=False)
    torch = compare_torch.torch
    seen = []
    real_step = precision.train_step

    def step(s):
        seen.append((flags.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
        return real_step(s)
    monkeypatch.setattr(precision, "train_step", step)
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    (t,) = _run(tmp_path, "--dtype", "tf32")
    assert t["dtype"] == "tf32" and t["ratio"] > 0
    assert seen == [(True, True, True)] * 3  # one warm-up and two timed steps
    assert not flags.allow_tf32 and (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


class FakeScaler:
    """Records what the benchmark asks of tensorlite.amp.GradScaler; scales by 1."""
    calls = []

    def scale(self, loss):
        self.calls.append("scale")
        return loss

    def step(self, optimizer):
        self.calls.append("step")
        optimizer.step()

    def update(self):
        self.calls.append("update")


@needs_torch
def test_float16_runs_the_forward_under_autocast_and_steps_through_the_scaler(tmp_path, monkeypatch):
    entered = []

    @contextlib.contextmanager
    def autocast(device_type, dtype):
        entered.append((device_type, dtype))
        yield
    monkeypatch.setattr(tensorlite, "autocast", autocast, raising=False)
    monkeypatch.setattr(tensorlite, "amp", SimpleNamespace(GradScaler=FakeScaler), raising=False)
    FakeScaler.calls = []
    (t,) = _run(tmp_path, "--dtype", "float16")
    assert t["dtype"] == "float16" and t["stats"]["tensorlite"]["median_s"] > 0 and t["stats"]["torch"]["median_s"] > 0
    assert entered == [("cpu", tensorlite.float16)] * 4  # the check that it accepts the device, then each step
    assert FakeScaler.calls == ["scale", "step", "update"] * 3


def test_an_autocast_that_refuses_the_device_makes_the_mode_unavailable(monkeypatch):
    @contextlib.contextmanager
    def autocast(device_type, dtype):
        raise RuntimeError(f"autocast: {device_type} supports bfloat16 only")
        yield
    monkeypatch.setattr(tensorlite, "autocast", autocast, raising=False)
    monkeypatch.setattr(tensorlite, "amp", SimpleNamespace(GradScaler=FakeScaler), raising=False)
    assert precision.tensorlite_missing("float16", "cpu") == \
        "tensorlite.autocast refuses float16 on cpu: autocast: cpu supports bfloat16 only"
    assert precision.tensorlite_missing("float32", "cpu") is None


def test_param_dtype_keeps_float32_master_weights():
    assert [precision.param_dtype(m) for m in precision.MODES] == ["float32", "float64", "float32", "float32"]
