"""tensorlite.profiler: per-Function forward/backward times, and no trace left behind."""
import time

import numpy as np
import pytest

import tensorlite
import tensorlite.profiler
from tensorlite import autograd
from tensorlite.autograd import Function


def _small_graph(device):
    x = tensorlite.randn(8, 5, device=device, requires_grad=True)
    w = tensorlite.randn(5, 3, device=device, requires_grad=True)
    loss = ((x @ w).relu().exp() * 2.0).sum()
    return x, w, loss


@pytest.mark.parametrize("sync", [False, True])
def test_records_forward_and_backward_of_each_function(device, sync):
    with tensorlite.profiler.profile(sync=sync) as prof:
        x, w, loss = _small_graph(device)
        loss.backward()
    totals = prof.totals()
    for name in ("MatMul", "ReLU", "Exp", "Mul", "Sum"):
        assert totals[name]["forward_count"] == 1, (name, totals)
        assert totals[name]["backward_count"] == 1, (name, totals)
        assert totals[name]["forward_s"] >= 0 and totals[name]["backward_s"] >= 0
        assert totals[name]["total_s"] == pytest.approx(totals[name]["forward_s"] + totals[name]["backward_s"])
    recorded = sum(r["total_s"] for r in totals.values())
    assert 0 < recorded <= prof.wall_s
    assert list(totals) == sorted(totals, key=lambda k: -totals[k]["total_s"])
    assert autograd._profile_hook is None


def test_profiling_does_not_change_results():
    tensorlite.manual_seed(3)
    x, w, loss = _small_graph("cpu")
    loss.backward()
    plain = (loss.item(), x.grad.numpy().copy(), w.grad.numpy().copy())
    tensorlite.manual_seed(3)
    with tensorlite.profiler.profile():
        x, w, loss = _small_graph("cpu")
        loss.backward()
    assert loss.item() == plain[0]
    np.testing.assert_array_equal(x.grad.numpy(), plain[1])
    np.testing.assert_array_equal(w.grad.numpy(), plain[2])


def test_no_grad_records_forward_only():
    x = tensorlite.randn(4, 4, requires_grad=True)
    with tensorlite.profiler.profile() as prof, tensorlite.no_grad():
        (x * x).sum()
    totals = prof.totals()
    assert totals["Mul"]["forward_count"] == 1 and totals["Mul"]["backward_count"] == 0


def test_hook_removed_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with tensorlite.profiler.profile():
            tensorlite.ones(3) + tensorlite.ones(3)
            1 / 0
    assert autograd._profile_hook is None
    # a later profile works normally
    with tensorlite.profiler.profile() as prof:
        tensorlite.ones(3) + tensorlite.ones(3)
    assert prof.totals()["Add"]["forward_count"] == 1
    assert autograd._profile_hook is None


class _Boom(Function):
    def forward(self, x):
        raise ValueError("boom")


def test_exception_inside_a_forward_propagates_and_is_not_double_counted():
    with tensorlite.profiler.profile() as prof:
        with pytest.raises(ValueError, match="boom"):
            _Boom.apply(tensorlite.ones(2))
        tensorlite.ones(2) * tensorlite.ones(2)
    assert prof._children == []
    assert prof.totals()["Mul"]["forward_count"] == 1
    assert autograd._profile_hook is None


def test_nested_profiles_raise_and_keep_the_outer_one():
    with tensorlite.profiler.profile() as outer:
        with pytest.raises(RuntimeError, match="already active"):
            with tensorlite.profiler.profile():
                pass
        assert autograd._profile_hook is not None
        tensorlite.ones(2) + tensorlite.ones(2)
    assert outer.totals()["Add"]["forward_count"] == 1
    assert autograd._profile_hook is None


class _Inner(Function):
    def forward(self, x):
        time.sleep(0.05)
        return x


class _Outer(Function):
    """A Function whose forward calls another Function: its time must not include the inner one's."""

    def forward(self, x):
        time.sleep(0.005)
        return _Inner.apply(tensorlite.Tensor(x)).data


def test_times_are_self_times():
    with tensorlite.profiler.profile() as prof:
        _Outer.apply(tensorlite.ones(2))
    totals = prof.totals()
    assert totals["_Inner"]["forward_s"] >= 0.05
    assert 0.005 <= totals["_Outer"]["forward_s"] < 0.04


def test_table_lists_functions_slowest_first_and_divides_by_per():
    with tensorlite.profiler.profile() as prof:
        for _ in range(4):
            x, w, loss = _small_graph("cpu")
            loss.backward()
    table = prof.table(per=4)
    lines = table.splitlines()
    names = [line.split()[0] for line in lines[2:] if line and not line.startswith("-")]
    expected = list(prof.totals())
    assert names[:len(expected)] == expected
    assert "all Functions" in table and "outside Functions" in table
    matmul_row = next(line for line in lines if line.startswith("MatMul"))
    assert matmul_row.split()[1] == "1"  # 4 calls / 4 steps
    assert len(prof.table(limit=2).splitlines()) == 2 + 2 + 2 + 1  # header, rule, 2 rows, rule, 2 summaries
    with pytest.raises(ValueError, match="per must be positive"):
        prof.table(per=0)


def test_empty_profile_table():
    with tensorlite.profiler.profile() as prof:
        pass
    assert prof.totals() == {}
    assert "all Functions" in prof.table()
