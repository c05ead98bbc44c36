"""The benchmark harness (``fastnn.bench``): timing in interleaved rounds, every case's
implementations against the NumPy reference in float64, and the CPU table ``run()`` prints (with
stubbed timings).

The cases' CuPy closures run here on NumPy (the same array formulas); PyTorch's and JAX's where
installed."""
import numpy as np
import pytest

from fastnn import bench
from fastnn.bench import cases, machine, mlp, peers, tables

#: Every case at a tiny shape (CuPy's stand-in is NumPy, see ``numpy_as_cupy``).
TINY = ([cases.dense(5, 4, 3), cases.dense(5, 4, 3, backward=False), cases.batchnorm(6, 5),
         cases.batchnorm(6, 5, backward=False), cases.cross_entropy(5, 4)]
        + [cases.softmax(5, 4, kind) for kind in cases.SOFTMAX_KINDS]
        + [cases.optimizer(30, rule) for rule in cases.OPTIMIZERS]
        + [cases.elementwise_loss(5, 4, kind) for kind in cases.ELEMENTWISE_LOSSES])
#: PyTorch's optimizers keep their own step count and start momentum from g: only these match.
TORCH_MATCHES = {"sgd update", "rmsprop update"}


def to_host(result):
    """A closure's result (an array of any implementation, a number, or a tuple of them) as
    NumPy arrays."""
    if isinstance(result, tuple):
        return tuple(to_host(r) for r in result)
    if hasattr(result, "detach"):  # PyTorch
        result = result.detach().cpu()
    elif hasattr(result, "copy_to_host"):  # Numba device array
        result = result.copy_to_host()
    elif hasattr(result, "get"):  # CuPy
        result = result.get()
    return np.asarray(result)


def assert_matches_reference(case, got):
    """``got`` (a closure's float32 results) equals the reference run in float64, to float32
    accuracy."""
    want = to_host(case.closure("numpy", np.float64)())
    got = to_host(got)
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
    for g, w in zip(got, want) if isinstance(want, tuple) else [(got, want)]:
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-4 * np.abs(w).max())


@pytest.fixture
def numpy_as_cupy(monkeypatch):
    monkeypatch.setitem(peers._loaded, "cupy", np)


def check_case(case, impl):
    """``case``'s closure for ``impl`` gives the reference's results (skipped where ``impl`` is
    missing, or is PyTorch's optimizer with its own state)."""
    if impl not in case.implementations([impl]):
        pytest.skip(f"{impl} is not installed")
    if impl == "torch" and case.name.endswith("update") and case.name not in TORCH_MATCHES:
        pytest.skip("PyTorch's version differs in its state (same cost)")
    assert_matches_reference(case, case.closure(impl)())


def check_dropout(impl):
    """Inverted dropout in ``impl``: each element dropped (0) or kept and scaled by 1 / keep,
    about keep of them kept."""
    case = cases.dropout(20, 25, rate=0.25)
    if impl not in case.implementations([impl]):
        pytest.skip(f"{impl} is not installed")
    Y = to_host(case.closure(impl)())
    Y = Y[0] if isinstance(Y, tuple) else Y  # (Y, mask), or PyTorch's Y
    X = case.data()["X"]
    kept = Y != 0
    np.testing.assert_allclose(Y[kept], X[kept] / 0.75, rtol=1e-6)
    assert 0.65 < kept.mean() < 0.85


def check_training_step(impl, batch=16, widths=(6, 5, 4, 3), steps=5):
    """The MLP training step in ``impl`` lowers the loss on its batch."""
    case = mlp.mlp(batch, widths=widths)
    if impl not in case.implementations([impl]):
        pytest.skip(f"{impl} is not installed")
    step = case.closure(impl)
    losses = [float(np.ravel(to_host(step()))[0]) for _ in range(steps)]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


HOST = ["numpy", "cpu", "torch", "jax", "cupy"]


@pytest.mark.usefixtures("numpy_as_cupy")
@pytest.mark.parametrize("impl", HOST)
@pytest.mark.parametrize("case", TINY, ids=lambda c: f"{c.name}-{'x'.join(map(str, c.shape))}")
def test_each_implementation_matches_the_reference(case, impl):
    check_case(case, impl)


@pytest.mark.usefixtures("numpy_as_cupy")
@pytest.mark.parametrize("impl", HOST)
def test_dropout_keeps_or_drops_and_rescales(impl):
    check_dropout(impl)


@pytest.mark.parametrize("impl", ["numpy", "cpu", "torch", "torch-compile", "jax"])
def test_training_steps_lower_the_loss_on_their_batch(impl):
    check_training_step(impl)


def test_torch_compile_step_is_the_eager_step():
    case = mlp.mlp(16, widths=(6, 5, 4, 3))
    if "torch-compile" not in case.implementations(["torch-compile"]):
        pytest.skip("torch.compile is not usable here")

    def losses(impl):
        step = case.closure(impl)
        return [step().item() for _ in range(3)]

    assert losses("torch-compile") == pytest.approx(losses("torch"), rel=1e-4)


def test_mlp_step_is_the_same_on_the_reference_and_cpu():
    """``mlp_step`` (the name an external GPU script uses): the same model and data from the
    same seed on both host backends; the case's shape and FLOP count."""
    losses = {backend: bench.mlp_step(8, backend, widths=(6, 5, 4, 3))()[0]
              for backend in ("numpy", "cpu")}
    assert losses["cpu"] == pytest.approx(losses["numpy"], rel=1e-5)
    assert bench.mlp_step_flops(8, (6, 5, 4, 3)) == 3 * 2.0 * 8 * (30 + 20 + 12)
    case = mlp.mlp(8, widths=(6, 5, 4, 3))
    assert case.shape == (8, 6, 5, 4, 3) and case.flops == bench.mlp_step_flops(8, (6, 5, 4, 3))


def test_a_case_without_a_version_or_a_library_is_not_implemented():
    with pytest.raises(NotImplementedError, match="no cupy version"):
        mlp.mlp(4).closure("cupy")
    if not peers.usable("jax"):
        with pytest.raises(NotImplementedError, match="jax is not installed"):
            cases.softmax(2, 2).closure("jax")


def test_interleaved_takes_turns_after_one_warm_up_call_each():
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    times = bench.interleaved(fns, rounds=3, budget=0.0, pause=0.0,
                              sync=lambda: calls.append("sync"))
    # a warm-up call each, then one call a turn (no budget), each followed by sync()
    assert calls == ["a", "sync", "b", "sync"] + ["a", "sync", "b", "sync"] * 3
    assert set(times) == {"a", "b"} and all(len(t) == 3 for t in times.values())
    assert all(s >= 0 and np.isfinite(s) for t in times.values() for s in t)


def test_ratio_is_the_median_of_the_rounds_ratios():
    times = {"slow": [4.0, 9.0, 2.0], "fast": [1.0, 1.0, 2.0]}  # ratios 4, 9, 1
    assert bench.ratio(times, "slow", "fast") == 4.0
    # a slow spell in the last round: the ratio of the medians would say 3 / 3 = 1
    times = {"slow": [3.0, 3.0, 30.0], "fast": [1.0, 3.0, 10.0]}  # ratios 3, 1, 3
    assert bench.ratio(times, "slow", "fast") == 3.0


def test_table_rows_end_with_the_training_steps():
    steps = {gpu: [c.shape[0] for c in tables.table_cases(quick=True, gpu=gpu)
                   if c.name == "MLP train step"] for gpu in (False, True)}
    assert steps == {False: [64, 512], True: [64, 4096]}


def test_run_prints_the_table_from_interleaved_rounds(monkeypatch):
    case = mlp.mlp(4, widths=(3, 2))
    rounds = {"cpu": [1e-3, 3e-3, 1e-3], "numpy": [4e-3, 9e-3, 3e-3], "torch": [2e-3, 6e-3, 2e-3]}

    class Workers:  # jax not installed; torch-compile has no version of the case
        def __init__(self, impls, threads=0):
            self.usable = [impl for impl in impls if impl != "jax"]

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def measure(self, case, impls):
            assert impls == ["cpu", "numpy", "torch"]
            return {impl: rounds[impl] for impl in impls}

    monkeypatch.setattr(machine, "cpu_limits", lambda: machine.Limits(100.0, 10.0))
    monkeypatch.setattr(tables, "table_cases", lambda quick: [case])
    monkeypatch.setattr(tables.apart, "Workers", Workers)
    monkeypatch.setattr(peers, "CPU_PEERS", ("numpy", "torch", "jax", "cupy"))
    monkeypatch.setattr(case, "builders", {k: case.builders[k] for k in ("fastnn", "torch")})
    lines = []
    rows = bench.run(out=lines.append)
    assert rows == [dict(kernel="MLP train step", shape=(4, 3, 2), cpu=1e-3, numpy=4e-3,
                         torch=2e-3)]
    assert "own process" in lines[0] and "5 interleaved rounds" in lines[0]
    assert lines[3] == "compared with: numpy, torch, cupy; not found here: jax"
    # numpy / cpu per round: 4, 3, 3 -> 3.00x; torch / cpu: 2, 2, 2 -> 2.00x; cupy: no version;
    # 48 FLOP in 1 ms
    assert lines[-1].split() == ["MLP", "train", "step", "4x3x2", "1.000", "4.000", "3.00x",
                                 "2.000", "2.00x", "-", "-", "0.0", "GFLOP/s", "(", "0%)"]


def test_workers_time_each_implementation_in_its_own_process():
    """``apart.Workers``: a process per implementation, which rebuilds a case from its recipe
    and answers with its times; a missing library is not usable; a failing build is reported
    with the worker's traceback."""
    from fastnn.bench import apart

    with apart.Workers(("cpu", "numpy", "cupy")) as workers:
        assert workers.usable == ["cpu", "numpy"]
        times = workers.measure(cases.softmax(4, 3), ["cpu", "numpy"], rounds=2, budget=0.0,
                                pause=0.0)
        assert set(times) == {"cpu", "numpy"}
        assert all(len(t) == 2 and all(0 < s < 1 for s in t) for t in times.values())
        bad = cases.softmax(4, 3)
        bad.recipe = cases.Recipe(cases.softmax, (4, 3), {"kind": "no such kind"})
        with pytest.raises(apart.WorkerError, match="the numpy worker failed"):
            workers.measure(bad, ["numpy"], rounds=1)
        assert workers.measure(cases.softmax(2, 2), ["numpy"], rounds=1)["numpy"][0] > 0


def test_busy_core_spins_a_process_only_while_the_block_runs(monkeypatch):
    """``bench --loaded``'s load: a separate process, running (and using CPU time) until the
    block ends."""
    import subprocess
    import time

    started, real_popen = [], subprocess.Popen

    def popen(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(machine.subprocess, "Popen", popen)
    with machine.busy_core():
        (spinner,) = started
        time.sleep(0.3)
        assert spinner.poll() is None
        with open(f"/proc/{spinner.pid}/stat") as stat:  # utime + stime, in clock ticks
            ticks = sum(int(x) for x in stat.read().rsplit(")", 1)[1].split()[11:13])
        assert ticks > 0
    assert spinner.poll() is not None


def test_bench_loaded_is_for_the_cpu_table():
    from fastnn.cli import main

    with pytest.raises(SystemExit, match="--loaded keeps a CPU core busy for the CPU table"):
        main(["bench", "--cuda", "--loaded"])
