"""The CPU benchmark table (``fastnn.bench``): implementations timed in interleaved rounds, ratios
as medians of the rounds' ratios, and the table ``run()`` prints (with stubbed timings)."""
import numpy as np

from fastnn import bench


def test_interleaved_takes_turns_after_one_warm_up_call_each():
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    times = bench.interleaved(fns, rounds=3, budget=0.0, pause=0.0)
    assert calls == ["a", "b"] + ["a", "b"] * 3  # warm-up, then one call a turn (no budget)
    assert set(times) == {"a", "b"} and all(len(t) == 3 for t in times.values())
    assert all(s >= 0 and np.isfinite(s) for t in times.values() for s in t)


def test_ratio_is_the_median_of_the_rounds_ratios():
    times = {"slow": [4.0, 9.0, 2.0], "fast": [1.0, 1.0, 2.0]}  # ratios 4, 9, 1
    assert bench.ratio(times, "slow", "fast") == 4.0
    # a slow spell in the last round: the ratio of the medians would say 3 / 3 = 1
    times = {"slow": [3.0, 3.0, 30.0], "fast": [1.0, 3.0, 10.0]}  # ratios 3, 1, 3
    assert bench.ratio(times, "slow", "fast") == 3.0


def test_run_prints_the_table_from_interleaved_rounds(monkeypatch):
    case = bench.Case("MLP train step", (4, 3, 2), run=lambda backend: None,
                      torch_run=lambda: None, flops=2e9)
    rounds = {"numpy": [4e-3, 9e-3, 3e-3], "cpu": [1e-3, 3e-3, 1e-3], "torch": [2e-3, 6e-3, 2e-3]}
    monkeypatch.setattr(bench, "machine_limits", lambda: (100.0, 10.0))
    monkeypatch.setattr(bench, "cases", lambda quick: [case])
    monkeypatch.setattr(bench, "measure", lambda c: rounds)
    lines = []
    rows = bench.run(out=lines.append)
    assert rows == [dict(kernel="MLP train step", shape=(4, 3, 2), numpy=4e-3, cpu=1e-3,
                         torch=2e-3)]
    assert "5 interleaved rounds" in lines[0]
    # numpy / cpu per round: 4, 3, 3 -> 3.00x; torch / cpu: 2, 2, 2 -> 2.00x; 2 GFLOP in 1 ms
    assert lines[-1].split() == ["MLP", "train", "step", "4x3x2", "4.000", "1.000", "3.00x",
                                 "2.000", "2.00x", "2000.0", "GFLOP/s", "(2000%)"]
