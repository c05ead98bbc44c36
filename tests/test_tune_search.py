"""fastnn.tune.search on cheap objectives: rounds (coarse to fine), pruning, seeds, resuming a
stored study, the objective protocol and bad input."""
import math

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

from fastnn.tune import (  # noqa: E402
    Choice,
    IntRange,
    LogUniform,
    MLPObjective,
    OneMinusLogUniform,
    SearchSpace,
    StorageError,
    Uniform,
    search,
)
from fastnn.tune.plots import plot_trials  # noqa: E402

SPACE = SearchSpace({"lr": LogUniform(1e-4, 1.0), "beta": OneMinusLogUniform(0.9, 0.999),
                     "hidden": IntRange(50, 100)})


def bowl(trial, lr, beta, hidden):
    """Best at lr = 1e-2, beta = 0.99, hidden = 70, in the hyperparameters' own scales."""
    return -(math.log10(lr) + 2) ** 2 - (math.log10(1 - beta) + 2) ** 2 - ((hidden - 70) / 50) ** 2


def rising(trial, x):
    """A learning curve x, 2x, ..., 10x: trials with a small x are hopeless from the start."""
    for epoch in range(10):
        trial.report(x * (epoch + 1), epoch)
    return 10 * x


def test_random_search_maximizes_and_records_every_trial():
    result = search(bowl, SPACE, 12, seed=0, progress=False)
    assert [t.number for t in result.trials] == list(range(12))
    assert all(t.state == "COMPLETE" and t.round == 1 for t in result.trials)
    best = result.best
    assert best.value == max(t.value for t in result.trials)
    assert best.value == pytest.approx(bowl(None, **best.hyperparameters))
    assert best.params["1-beta"] == pytest.approx(1 - best.hyperparameters["beta"])
    assert result.top(3)[0] == best and len(result.table(3).splitlines()) == 4
    assert "val_accuracy" in result.table(3) and "beta" in result.table(3)


def test_same_seed_same_trials():
    def plan(seed):
        return [t.params for t in search(bowl, SPACE, 5, seed=seed, progress=False).trials]

    assert plan(7) == plan(7) == [p for p in SPACE.sample(5, seed=_round_seed(7, 1))]
    assert plan(7) != plan(8)


def _round_seed(seed, r):
    from fastnn.tune.space import derive_seed

    return derive_seed(seed, r)


def test_coarse_to_fine_zooms_into_the_best_region(tmp_path):
    result = search(bowl, SPACE, 36, rounds=3, keep=0.25, seed=1, progress=False)
    assert [sum(t.round == r for t in result.trials) for r in (1, 2, 3)] == [12, 12, 12]
    spaces = result.spaces
    assert len(spaces) == 3 and spaces[0] == SPACE
    for name in ("lr", "beta", "hidden"):
        # in each parameter's own scale: log10 lr, log10(1 - beta), hidden
        ranges = [np.log10(s[name].bounds()) if name != "hidden"
                  else np.array(s[name].bounds(), float) for s in spaces]
        for (a, b), (c, d) in zip(ranges, ranges[1:]):
            assert a - 1e-9 <= c <= d <= b + 1e-9
        assert np.ptp(ranges[-1]) < np.ptp(ranges[0]) * (1 if name == "hidden" else 0.5)
    for t in result.trials:  # every trial drawn from its own round's ranges
        space = spaces[t.round - 1]
        for name, key in space.keys().items():
            low, high = space[name].bounds()
            assert low - 1e-12 <= t.params[key] <= high + 1e-12
    means = [np.mean([t.value for t in result.trials if t.round == r]) for r in (1, 2, 3)]
    assert means[0] < means[1] < means[2]
    assert result.best.value > -0.05
    for y in (None, "beta"):
        path = tmp_path / f"trials_{y}.png"
        plot_trials(result, path, "lr", y)
        assert path.stat().st_size > 10_000


def test_grid_search_runs_its_grid():
    result = search(bowl, SPACE, 30, sampler="grid", progress=False)
    assert len(result.trials) == 27  # 3 x 3 x 3 points fit in 30 trials
    assert len({t.params["lr"] for t in result.trials}) == 3


def test_median_pruning_stops_hopeless_trials():
    result = search(rising, {"x": Uniform(0.0, 1.0)}, 20, prune=True, seed=0, progress=False)
    pruned = [t for t in result.trials if t.state == "PRUNED"]
    done = [t for t in result.trials if t.state == "COMPLETE"]
    assert len(pruned) >= 3 and len(done) >= 5
    # pruned after the 4 warm-up epochs, at the first epoch the rule may stop them
    assert {len(t.curve) for t in pruned} == {5} and {len(t.curve) for t in done} == {10}
    assert max(t.hyperparameters["x"] for t in pruned) < result.best.hyperparameters["x"]
    unpruned = search(rising, {"x": Uniform(0.0, 1.0)}, 20, seed=0, progress=False)
    assert unpruned.counts() == {"COMPLETE": 20}


def test_a_stored_search_resumes_without_redoing_trials(tmp_path):
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    first = search(bowl, SPACE, 6, rounds=2, storage=url, study_name="s", progress=False)
    again = search(bowl, SPACE, 6, rounds=2, storage=url, study_name="s", progress=False)
    assert [(t.number, t.value, t.round) for t in again.trials] == \
        [(t.number, t.value, t.round) for t in first.trials]
    with pytest.raises(ValueError, match="n_trials=6 \\(now 8\\)"):
        search(bowl, SPACE, 8, rounds=2, storage=url, study_name="s", progress=False)


def none_objective(trial, x):
    return None


def failing_objective(trial, x):
    raise ZeroDivisionError("bug in the objective")


def test_objective_errors_stop_the_search():
    """A bug (an exception other than NonFiniteError, a value that is not a number) stops the
    search; NaN values and diverged trials do not (tests/test_faults_tune.py)."""
    with pytest.raises(ValueError, match="must return a finite number"):
        search(none_objective, {"x": Uniform(0, 1)}, 3, progress=False)
    with pytest.raises(ZeroDivisionError, match="bug in the objective"):
        search(failing_objective, {"x": Uniform(0, 1)}, 3, progress=False)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(n_trials=0), ValueError, "n_trials must be an integer >= 1, got 0"),
    (dict(n_trials=2.5), ValueError, "n_trials must be an integer >= 1"),
    (dict(rounds=0), ValueError, "rounds must be an integer >= 1"),
    (dict(rounds=5, n_trials=3), ValueError, "rounds must be <= n_trials"),
    (dict(sampler="tpe"), ValueError, "sampler must be one of"),
    (dict(keep=0), ValueError, "keep must be a number in \\(0, 1\\]"),
    (dict(seed=-1), ValueError, "seed must be an integer >= 0"),
    (dict(jobs=0), ValueError, "jobs must be an integer >= 1"),
    (dict(executor="cluster"), ValueError, "executor must be"),
    (dict(prune="median"), TypeError, "prune must be"),
    (dict(jobs=2), ValueError, "need storage to be a database URL"),
    (dict(storage="postgresql://user:secret@127.0.0.1:9/db"), StorageError,
     "storage: .*postgresql://user:\\*\\*\\*@127.0.0.1:9/db"),
    (dict(storage="sqlite:////nonexistent-dir/x/tune.db"), StorageError,
     "storage: cannot open sqlite:////nonexistent-dir/x/tune.db"),
    (dict(storage="not a url"), StorageError, "storage: 'not a url' is not a database URL"),
    (dict(artifact_store="storage"), ValueError, "artifact_store='storage' keeps the models in "
     "the search's database, which needs storage to be a database URL, got None"),
    (dict(artifact_store="s3://bucket"), ValueError, "artifact_store must be None, 'storage' or "
     "an Optuna artifact store"),
    (dict(artifact_store="storage", model_dir="models"), ValueError,
     "pass model_dir or artifact_store"),
])
def test_bad_search_arguments_raise_clear_errors(kwargs, error, match):
    kwargs = {"n_trials": 3, "progress": False, **kwargs}
    with pytest.raises(error, match=match):
        search(bowl, SPACE, **kwargs)


def test_unknown_parameter_names_in_the_objective():
    with pytest.raises(ValueError) as info:
        search(bowl, {"lr": LogUniform(1e-3, 1), "learning_rate": LogUniform(1e-3, 1),
                      "beta": OneMinusLogUniform(0.9, 0.99), "hidden": IntRange(1, 2)}, 2,
               progress=False)
    message = str(info.value)
    assert "unknown parameter names ['learning_rate']" in message
    assert "it accepts ['lr', 'beta', 'hidden']" in message
    with pytest.raises(ValueError, match="required but missing \\['hidden'\\]"):
        search(bowl, {"lr": LogUniform(1e-3, 1), "beta": OneMinusLogUniform(0.9, 0.99)}, 2,
               progress=False)
    with pytest.raises(TypeError, match="objective must be callable"):
        search("bowl", SPACE, 2, progress=False)


def test_processes_need_a_picklable_objective(tmp_path):
    with pytest.raises(TypeError, match="must be picklable"):
        search(lambda trial, x: x, {"x": Uniform(0, 1)}, 2, jobs=2,
               storage=f"sqlite:///{tmp_path / 'tune.db'}", progress=False)


def test_mlp_objective_maps_beta_to_each_optimizer():
    pytest.importorskip("sklearn")
    objective = MLPObjective(epochs=1, train_size=200)
    space = {"optimizer": Choice(["momentum", "rmsprop", "adam"]),
             "beta": OneMinusLogUniform(0.9, 0.99), "lr": LogUniform(1e-3, 1e-1)}
    result = search(objective, space, 6, sampler="grid", progress=False)
    assert result.counts() == {"COMPLETE": 6}
    assert all(0 <= t.value <= 1 and "train_accuracy" in t.attrs for t in result.trials)
    with pytest.raises(ValueError, match="beta does not apply to optimizer 'gd'"):
        search(objective, {"optimizer": Choice(["gd"]), "beta": Uniform(0.5, 0.9)}, 1,
               progress=False)
    with pytest.raises(ValueError, match="MLPObjective: epochs must be an integer >= 1"):
        MLPObjective(epochs=0)


def test_a_plain_postgresql_url_takes_whichever_driver_is_installed(monkeypatch):
    """psycopg 3 first, else psycopg2; with neither (or without the one a URL names) the error
    says which URL form goes with which driver."""
    import importlib.util

    from fastnn.tune import storage

    installed = {"psycopg", "psycopg2"}
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name: object() if name in installed else None)
    url = "postgresql://u:secret@db:5432/tune"
    assert storage._postgresql_driver(url, "x") == "postgresql+psycopg://u:secret@db:5432/tune"
    installed.discard("psycopg")
    assert storage._postgresql_driver(url, "x") == "postgresql+psycopg2://u:secret@db:5432/tune"
    named = "postgresql+psycopg2://u:secret@db/tune"
    assert storage._postgresql_driver(named, "x") == named
    installed.clear()
    for url in ("postgresql://u:secret@db/tune", named):
        with pytest.raises(StorageError) as info:
            storage._postgresql_driver(url, "SHOWN")
        assert "SHOWN needs a PostgreSQL driver" in str(info.value)
        assert ("postgresql+psycopg:// needs pip install 'psycopg[binary]' (in fastnn[tune]); "
                "postgresql+psycopg2:// needs pip install psycopg2-binary") in str(info.value)
    other = "postgresql+pg8000://u@db/tune"  # another driver: SQLAlchemy's to find
    assert storage._postgresql_driver(other, "x") == other
