"""Shared fixtures: the `device` fixture runs a test on the CPU and, where CuPy sees a GPU, on CUDA."""
import os

import pytest
from hypothesis import HealthCheck, settings

import tensorlite
from tensorlite import backend

# Under CI the examples are derandomized (the same every run), so a run's result never depends on luck;
# locally each run explores new ones.
settings.register_profile("default", max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", 20)), deadline=None,
                          derandomize=bool(os.environ.get("CI")),
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile("default")

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs CuPy and a CUDA GPU (skipped cleanly elsewhere)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "gpu_static: checks the CUDA code without a GPU (needs CuPy and NVRTC, "
                                       "skipped cleanly without them)")


def pytest_collection_modifyitems(config, items):
    if backend.cuda_is_available():
        return
    reason = "CuPy is not installed" if not backend.cupy_installed() else "no CUDA GPU is visible"
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    tensorlite.manual_seed(0)
    yield


# A tiny corpus for the training tests: a few characters, repeated, so a run of a few steps learns something.
TINY_TEXT = "the cat sat on the mat. the dog sat on the log. " * 30


@pytest.fixture
def text_file(tmp_path):
    """A UTF-8 text file holding TINY_TEXT, for --data."""
    path = tmp_path / "text.txt"
    path.write_text(TINY_TEXT, encoding="utf-8")
    return str(path)
