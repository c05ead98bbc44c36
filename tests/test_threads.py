"""The CPU backend's ``kernel_scope`` chooses its Numba thread count by timing its runs
(``fastnn/kernels/cpu/_threads.py``): the choice, its exploration and its bounds. (Speed itself
is measured by the benchmarks, not here.)"""
import numba
import pytest

import fastnn.kernels.cpu as kc
from fastnn import config
from fastnn.kernels.cpu._threads import AdaptiveThreads, _Candidates


def feed(table, ms_of, runs):
    """Run ``runs`` choices on ``table``, each taking ms_of[n] milliseconds; returns the counts
    chosen."""
    chosen = []
    for _ in range(runs):
        n = table.choose()
        table.record(n, ms_of[n] * 1e-3)
        chosen.append(n)
    return chosen


def test_the_candidates_are_one_all_but_one_and_all():
    assert _Candidates(2).counts == [1, 2]
    assert _Candidates(8).counts == [1, 7, 8]


def test_each_count_is_timed_first_then_the_fastest_wins_and_others_are_retried(monkeypatch):
    """A count's first run (compiling) is dropped and BURST runs time it, the counts in turns;
    then the fastest count runs, and every EXPLORE_EVERY-th run starts BURST fresh runs of
    another, so that a change of load is noticed; a count's estimate is the mean of its recent
    runs without the slowest."""
    monkeypatch.setattr(config, "CPU_THREADS_EXPLORE_EVERY", 20)
    table = _Candidates(4)
    idle = {1: 3.0, 3: 1.2, 4: 1.0}
    # a run each to compile (all threads first), then BURST timed runs each, in turns
    # all threads first (a run to compile, two timed), then the others' first runs, then BURST
    # timed runs each, in turns
    assert feed(table, idle, 15) == [4, 4, 4, 3, 1, 3, 1, 3, 1, 4, 3, 1, 4, 3, 1]
    chosen = feed(table, idle, 20)
    assert chosen.count(4) >= 16 and set(chosen) > {4}  # (tried the others again)
    table.record(4, 0.010)  # a pause any count would have met
    assert table.estimate(4) == pytest.approx(1e-3)
    loaded = {1: 3.0, 3: 1.4, 4: 9.0}  # another process takes a core: all threads now wait
    chosen = feed(table, loaded, 30)
    assert chosen[-20:].count(3) >= 12  # (all but the tries of the others)


def test_a_slow_start_is_forgotten_at_the_first_retry(monkeypatch):
    """All threads met a slow start (first touches), so one thread won; the first retry of all
    threads measures them afresh, and they win from then on."""
    monkeypatch.setattr(config, "CPU_THREADS_EXPLORE_EVERY", 20)
    table = _Candidates(2)
    for n, ms in [(2, 0), (2, 5), (2, 5), (1, 0), (1, 2), (1, 2), (2, 5), (1, 2), (2, 5),
                  (1, 2)]:  # (compile, timed)
        assert table.choose() == n
        table.record(n, ms * 1e-3)
    chosen = feed(table, {1: 2.0, 2: 1.0}, 40)
    retry = chosen.index(2)
    assert retry < 20 and chosen[retry:retry + 4] == [2] * 4
    assert chosen[retry:].count(1) <= 4  # (from then on all threads, but for a retry of one)


def test_the_scope_keeps_the_callers_ceiling_and_restores_it():
    scope = AdaptiveThreads()
    ceiling = numba.get_num_threads()
    seen = []
    for _ in range(8):
        with scope:
            with scope:  # (nested: the outer one chooses)
                seen.append(numba.get_num_threads())
        assert numba.get_num_threads() == ceiling
    assert set(seen) <= set(_Candidates(ceiling).counts)
    numba.set_num_threads(1)
    try:
        with scope:
            assert numba.get_num_threads() == 1  # (the user's setting is the ceiling)
    finally:
        numba.set_num_threads(ceiling)


def test_a_run_that_raises_is_not_timed_and_the_count_is_restored():
    scope = AdaptiveThreads()
    ceiling = numba.get_num_threads()
    with pytest.raises(KeyError):
        with scope:
            raise KeyError("x")
    assert numba.get_num_threads() == ceiling
    assert all(v is None for table in scope.estimates().values() for v in table.values())


def test_off_keeps_every_thread(monkeypatch):
    monkeypatch.setattr(config, "CPU_ADAPTIVE_THREADS", False)
    ceiling = numba.get_num_threads()
    for _ in range(5):
        with kc.kernel_scope:
            assert numba.get_num_threads() == ceiling


def test_a_large_kernel_called_on_its_own_chooses_for_itself(rng, monkeypatch):
    """Kernels called outside a training step time their own runs, each kernel and shape apart,
    when their main array is large enough; inside ``kernel_scope`` the scope's choice holds; the
    results are those of the kernel."""
    import numpy as np

    from fastnn.kernels import reference as ref
    from fastnn.kernels.cpu._threads import adaptive_threads

    if numba.get_num_threads() < 2:
        pytest.skip("one Numba thread: nothing to choose")
    monkeypatch.setattr(config, "CPU_ADAPTIVE_MIN_ELEMENTS", 100)
    big = rng.standard_normal((20, 10)).astype(np.float32)
    small = rng.standard_normal((3, 10)).astype(np.float32)
    for _ in range(3):
        np.testing.assert_allclose(kc.softmax(big), ref.softmax(big), rtol=1e-6)
        kc.softmax(small)
    key = ("softmax", (20, 10))
    assert set(adaptive_threads.estimates(key)) == {numba.get_num_threads()}
    assert adaptive_threads.estimates(("softmax", (3, 10))) == {}  # (below the threshold)
    with kc.kernel_scope:
        kc.softmax(rng.standard_normal((30, 10)).astype(np.float32))
    assert adaptive_threads.estimates(("softmax", (30, 10))) == {}  # (the scope chose)


def test_the_kinds_of_run_timed_are_bounded(monkeypatch):
    from fastnn.kernels.cpu import _threads

    if numba.get_num_threads() < 2:
        pytest.skip("one Numba thread: nothing is timed")
    monkeypatch.setattr(_threads, "MAX_KINDS", 3)
    scope = AdaptiveThreads()
    for key in range(5):
        scope.call(key, lambda: None)
    assert [k for k in range(5) if scope.estimates(k)] == [2, 3, 4]


def test_retries_back_off_while_they_confirm_the_choice(monkeypatch):
    """Retries come FIRST_RETRY runs after the start, then twice as far apart each time the
    choice holds (up to EXPLORE_EVERY), and FIRST_RETRY apart again after one changed it."""
    monkeypatch.setattr(config, "CPU_THREADS_EXPLORE_EVERY", 100)
    table = _Candidates(2)
    chosen = feed(table, {1: 2.0, 2: 1.0}, 11 + 16 + 4 + 32 + 4 + 64 + 4 + 100 + 4)
    retries = [i for i in range(12, len(chosen))  # (after the 11 runs of the start)
               if chosen[i] == 1 and chosen[i - 1] == 2]
    assert [b - a for a, b in zip(retries, retries[1:])] == [36, 68, 104]
    loaded = feed(table, {1: 2.0, 2: 9.0}, 100)  # all threads now slow: one thread wins...
    switched = loaded.index(1)
    assert loaded[switched:switched + 20].count(1) >= 16  # ...and is confirmed soon after


def test_training_steps_are_timed_per_model_and_batch_size():
    """Each model's training step at each batch size has its own timings (a tuner trains many
    models in one process: their steps' times must not be compared with each other's)."""
    import numpy as np

    from fastnn.kernels.cpu._threads import adaptive_threads
    from fastnn.nn import Dense, Sequential

    if numba.get_num_threads() < 2:
        pytest.skip("one Numba thread: nothing to choose")
    X = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    y = np.arange(8) % 2
    models = [Sequential([Dense(2)], backend="cpu") for _ in range(2)]
    for model in models:
        model.train_on_batch(X, y)
    models[0].train_on_batch(X[:6], y[:6])
    kinds = [("training step", id(models[0]), 8), ("training step", id(models[1]), 8),
             ("training step", id(models[0]), 6)]
    assert all(adaptive_threads.estimates(kind) for kind in kinds)


def test_long_kernel_calls_keep_every_thread_untried():
    """A kernel called on its own whose runs with all threads take LONG_RUN or more never tries
    fewer (one slow try would cost a whole long run); when they get shorter, the counts are timed
    as usual. A training step (where waiting for a core can make runs long) is always timed."""
    from fastnn.kernels.cpu._threads import LONG_RUN

    long_ms = 2e3 * LONG_RUN
    table = _Candidates(2, long_runs_keep_all=True)
    assert feed(table, {1: 2 * long_ms, 2: long_ms}, 300) == [2] * 300
    assert 1 in feed(table, {1: 2.0, 2: 1.0}, 20)
    assert 1 in feed(_Candidates(2), {1: 2 * long_ms, 2: long_ms}, 20)


def test_the_results_do_not_depend_on_the_thread_count_chosen(monkeypatch):
    """Work is split for the ceiling however many threads the chooser runs: a training step on
    one thread gives the same bits as on all (training stays reproducible under load)."""
    import numpy as np

    from fastnn.kernels.cpu import _threads
    from fastnn.nn import BatchNorm, Dense, ReLU, Sequential

    if numba.get_num_threads() < 2:
        pytest.skip("one Numba thread: nothing to choose")
    monkeypatch.setattr(config, "DENSE_PARALLEL_MIN_FLOPS", 0)
    monkeypatch.setattr(config, "BATCHNORM_PARALLEL_MIN_ELEMENTS", 0)
    monkeypatch.setattr(config, "OPTIM_PARALLEL_MIN_ELEMENTS", 0)
    g = np.random.default_rng(0)
    X, y = g.standard_normal((300, 96)), g.integers(0, 5, 300)  # (blocks of 150 rows: MKL and
    results = {}  # OpenBLAS round the rows near a block's end differently from a whole 300)
    for count in (1, numba.get_num_threads()):
        monkeypatch.setattr(_threads._Candidates, "choose", lambda self, n=count: n)
        model = Sequential([Dense(128, "sigmoid"), Dense(64, use_bias=False), BatchNorm(),
                            ReLU(), Dense(5)], backend="cpu", dtype=np.float64).build(96, seed=1)
        losses = [model.train_on_batch(X, y, "adam") for _ in range(3)]
        results[count] = losses, model.get_weights()[0]
    (losses_1, weights_1), (losses_n, weights_n) = results.values()
    assert losses_1 == losses_n
    np.testing.assert_array_equal(weights_1, weights_n)
