"""fastnn.tune under faults: diverged and NaN trials are recorded as failed and the search goes
on (one process, threads, processes, resume); a search space that allows a value the objective
cannot take fails before the first trial; workers die with their parent; two searches on one
SQLite file run each planned trial once; a worker killed mid-trial; the Babysitter's control
file and checkpoints when damaged."""
import json
import logging
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("sklearn")

from fastnn import optim  # noqa: E402
from fastnn.train import build_mlp  # noqa: E402
from fastnn.tune import (Babysitter, Choice, IntRange, LogUniform, MLPObjective,  # noqa: E402
                         OneMinusLogUniform, SearchFailedError, SpaceError, Uniform, search)
from fastnn.tune.parallel import WorkerDiedError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DIVERGES = 1e30  # an Adam lr at which the first steps overflow to NaN/inf


def sometimes_nan(trial, x):
    """NaN for x < 0.3, inf for x > 0.8, else x."""
    return math.nan if x < 0.3 else math.inf if x > 0.8 else x


def always_nan(trial, x):
    return math.nan


def test_diverged_and_nan_trials_fail_with_their_reason_and_the_search_goes_on(caplog):
    objective = MLPObjective(epochs=1, train_size=200)
    space = {"lr": Choice([1e-2, DIVERGES]), "hidden": IntRange(8, 8)}
    with caplog.at_level(logging.WARNING, logger="optuna"):
        result = search(objective, space, 2, sampler="grid", progress=False)
    assert result.counts() == {"COMPLETE": 1, "FAIL": 1}
    (failed,) = result.failed
    assert failed.hyperparameters["lr"] == DIVERGES and failed.value is None
    assert failed.reason.startswith("TrainingDivergedError: ") and failed.attrs["diverged"]
    assert result.best.hyperparameters["lr"] == 1e-2
    table = result.table()
    assert "failed trials (1 of 2):" in table and "TrainingDivergedError" in table
    # no traceback logged for a failure the search handles (one line in the table instead)
    assert not [r for r in caplog.records if r.exc_info or "failed with" in r.getMessage()]

    result = search(sometimes_nan, {"x": Uniform(0, 1)}, 12, seed=3, progress=False)
    values = {t.number: t.hyperparameters["x"] for t in result.trials}
    assert {t.number for t in result.failed} == {n for n, x in values.items()
                                                 if x < 0.3 or x > 0.8}
    assert {t.reason for t in result.failed} <= {"the objective returned nan",
                                                 "the objective returned inf"}
    assert 0.3 <= result.best.value <= 0.8 and len(result.trials) == 12


def test_every_trial_failed_says_so():
    result = search(always_nan, {"x": Uniform(0, 1)}, 3, progress=False)
    assert result.counts() == {"FAIL": 3} and result.top() == []
    with pytest.raises(SearchFailedError, match="no trial has completed \\(3 fail; trial 0 "
                                                "failed: the objective returned nan\\)"):
        result.best  # noqa: B018
    assert "(no trial has completed)" in result.table()
    with pytest.raises(SearchFailedError, match="no trial of rounds 1 to 1 completed .*nothing "
                                                "to zoom into for round 2"):
        search(always_nan, {"x": Uniform(0, 1)}, 4, rounds=2, progress=False)


def test_failed_trials_are_not_run_again_on_resume(tmp_path):
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    first = search(sometimes_nan, {"x": Uniform(0, 1)}, 6, seed=3, storage=url,
                   study_name="s", progress=False)
    assert first.failed and len(first.trials) == 6
    again = search(sometimes_nan, {"x": Uniform(0, 1)}, 6, seed=3, storage=url,
                   study_name="s", progress=False)
    assert [(t.number, t.state, t.reason) for t in again.trials] == \
        [(t.number, t.state, t.reason) for t in first.trials]


def test_failed_trials_in_threads_and_processes(tmp_path):
    objective = MLPObjective(epochs=1, train_size=200)
    space = {"lr": Choice([1e-2, DIVERGES]), "hidden": IntRange(8, 8)}
    threads = search(objective, space, 2, sampler="grid", jobs=2, executor="thread",
                     progress=False)
    assert threads.counts() == {"COMPLETE": 1, "FAIL": 1}
    processes = search(objective, space, 2, sampler="grid", jobs=2,
                       storage=f"sqlite:///{tmp_path / 'tune.db'}", study_name="p",
                       progress=False)
    assert processes.counts() == {"COMPLETE": 1, "FAIL": 1}
    assert processes.failed[0].reason.startswith("TrainingDivergedError")
    assert os.getpid() not in {t.attrs["worker"]["pid"] for t in processes.trials}


@pytest.mark.parametrize("space, name, match", [
    ({"hidden": IntRange(0, 10)}, "hidden", "hidden must be an integer >= 1, but the search "
                                            "space allows hidden = 0"),
    ({"lr": Uniform(-1.0, 1.0)}, "lr", "lr must be a finite number > 0, but the search space "
                                       "allows lr = -1.0"),
    ({"layers": IntRange(-1, 2)}, "layers", "layers = -1"),
    ({"dropout": Uniform(0.0, 1.0)}, "dropout", "dropout must be a number in \\[0, 1\\)"),
    ({"batch_size": Choice([32, 0])}, "batch_size", "batch_size = 0"),
    ({"l2": Uniform(-0.1, 0.1)}, "l2", "l2 = -0.1"),
    ({"optimizer": Choice(["adam", "adamw"])}, "optimizer", "optimizer = 'adamw'"),
    ({"optimizer": Choice(["adam", "gd"]), "beta": OneMinusLogUniform(0.9, 0.99)}, "beta",
     "beta does not apply to optimizer 'gd'"),
    ({"beta2": Uniform(0.9, 0.99), "optimizer": Choice(["rmsprop"])}, "beta2",
     "beta2 applies to optimizer 'adam' only"),
])
def test_a_space_the_objective_cannot_take_fails_before_the_first_trial(tmp_path, space, name,
                                                                        match):
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    with pytest.raises(SpaceError, match=match) as info:
        search(MLPObjective(epochs=1, train_size=50), {"lr": LogUniform(1e-3, 1e-1), **space},
               3, storage=url, study_name="s", progress=False)
    assert info.value.name == name
    assert not (tmp_path / "tune.db").exists()  # nothing ran, nothing stored
    with pytest.raises(ValueError, match="MLPObjective: layers must be an integer >= 0"):
        MLPObjective(epochs=1, train_size=50)(None, layers=-1)  # a direct call too


def test_a_space_with_zero_layers_is_fine():
    result = search(MLPObjective(epochs=1, train_size=100), {"layers": IntRange(0, 1),
                                                             "lr": LogUniform(1e-2, 1e-1)},
                    2, sampler="grid", progress=False)
    assert result.counts() == {"COMPLETE": 2}


def test_resuming_with_other_epochs_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    space = {"lr": LogUniform(1e-2, 1e-1), "hidden": IntRange(8, 8)}
    search(MLPObjective(epochs=1, train_size=50), space, 1, storage=url, study_name="s",
           progress=False)
    with pytest.raises(ValueError, match="other settings: objective=.*'epochs': 1.*'epochs': 2"):
        search(MLPObjective(epochs=2, train_size=50), space, 1, storage=url, study_name="s",
               progress=False)


# --- processes -------------------------------------------------------------------------------

def _workers_of(pid):
    psutil = pytest.importorskip("psutil")
    try:
        children = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def _gone(process):
    psutil = pytest.importorskip("psutil")
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
def test_killing_fastnn_tune_ends_its_workers(tmp_path):
    """SIGKILL of `fastnn tune --jobs 2` once both workers run trials: they exit within 5 s."""
    command = [sys.executable, "-m", "fastnn", "tune", "--jobs", "2", "--trials", "50",
               "--epochs", "1000", "--hidden", "64,64", "--out", str(tmp_path / "out"),
               "--quiet"]
    parent = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"sqlite:///{tmp_path / 'out' / 'tune.db'}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and parent.poll() is None:
            workers = _workers_of(parent.pid)
            if len(workers) == 2 and _running(url) == 2:
                break
            time.sleep(0.1)
        assert parent.poll() is None and len(workers) == 2
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not all(map(_gone, workers)):
            time.sleep(0.05)
        assert all(map(_gone, workers)), [w.pid for w in workers if not _gone(w)]
    finally:
        parent.kill()
        for worker in _workers_of(parent.pid):
            worker.kill()


def _running(url):
    try:
        study = optuna.load_study(study_name="digits", storage=url)
        return len(study.get_trials(states=(optuna.trial.TrialState.RUNNING,)))
    except Exception:  # not created yet
        return 0


def test_the_watchdog_ends_a_worker_whose_parent_changed():
    """The portable fallback (no prctl): a worker whose parent id is no longer the one it was
    started by exits at once."""
    code = ("import time; from fastnn.tune.parallel import _watch_parent; "
            "_watch_parent(-1, interval=0.05); time.sleep(30)")
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          timeout=60)
    assert done.returncode == 1 and time.monotonic() - start < 25


CONCURRENT = textwrap.dedent("""
    import sys
    import time

    from fastnn.tune import Uniform, search


    def slow(trial, x):
        time.sleep(0.05)
        return x


    if __name__ == "__main__":
        result = search(slow, {"x": Uniform(0.0, 1.0)}, 16, storage=sys.argv[1],
                        study_name="shared", heartbeat=1, progress=False)
        print(result.counts())
""")


def test_two_searches_on_one_sqlite_file_run_each_planned_trial_once(tmp_path):
    script, url = tmp_path / "search.py", f"sqlite:///{tmp_path / 'tune.db'}"
    script.write_text(CONCURRENT)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    runs = [subprocess.Popen([sys.executable, str(script), url], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0, err  # both create the fresh database's tables at once
        assert out.strip().splitlines()[-1] == "{'COMPLETE': 16}"
    trials = optuna.load_study(study_name="shared", storage=url).trials
    done = [t.user_attrs["index"] for t in trials if t.state.name == "COMPLETE"]
    assert sorted(done) == list(range(16))  # each once


def dies(trial, x):
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
def test_a_worker_killed_mid_trial_ends_the_search_with_one_clear_error(tmp_path):
    with pytest.raises(WorkerDiedError, match="a worker process died in the middle of a trial"):
        search(dies, {"x": Uniform(0, 1)}, 2, jobs=2, storage=f"sqlite:///{tmp_path / 't.db'}",
               progress=False)


# --- babysitting -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    from fastnn.data import load_digits

    X, y, _, _ = load_digits()
    return X[:200], y[:200]


@pytest.mark.parametrize("content, match", [
    (b"\xff\xfe\x00 not text", "not applied before epoch 1: .*(utf-8|decode)"),
    (b'{"lr": NaN}', "lr must be a finite number > 0"),
    (b'{"stop": "yes"}', "stop must be true or false, got 'yes'"),
    (b'[0.001]', "expected a JSON object"),
    (b'{"lr": 0.001', "not applied before epoch 1: .*Expecting"),
    (None, "not applied before epoch 1: .*(directory|folder)"),
])
def test_a_bad_control_file_warns_and_changes_nothing(digits, tmp_path, content, match):
    X, y = digits
    run = Babysitter(build_mlp((16,), 10), optim.Adam(3e-3), out=str(tmp_path / "run"),
                     plot=False, verbose=False)
    control = tmp_path / "run" / "control.json"
    control.parent.mkdir()
    if content is None:
        control.mkdir()  # a folder where the file is expected
    else:
        control.write_bytes(content)
    with pytest.warns(UserWarning, match=match):
        run.train(X, y, 2)
    assert run.epoch == 2 and run.optimizer.lr == 3e-3 and run.changes == []


def test_resume_from_a_damaged_checkpoint_names_it(digits, tmp_path):
    X, y = digits
    run = Babysitter(build_mlp((16,), 10), optim.Adam(3e-3), out=str(tmp_path / "run"),
                     plot=True, verbose=False)
    run.train(X, y, 1)
    folder = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-0001.json", "epoch-0001.npz"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "checkpoints", "curve.csv", "curve.png"]  # no temporary files left
    resumed = Babysitter.resume(folder / "epoch-0001.npz", plot=False, verbose=False)  # a Path
    assert resumed.epoch == 1
    info = folder / "epoch-0001.json"
    for text, match in [("{", "is not valid JSON"), ("[]", "is not a JSON object"),
                        (json.dumps({"epoch": 1}), "lacks 'batch_size'")]:
        info.write_text(text)
        with pytest.raises(ValueError, match=f"Babysitter.resume: .*epoch-0001.json {match}"):
            Babysitter.resume(str(folder / "epoch-0001.npz"), verbose=False)
    (folder / "epoch-0001.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="epoch-0001.npz is not a fastnn model"):
        Babysitter.resume(str(folder / "epoch-0001.npz"), verbose=False)
    np.testing.assert_equal(resumed.history["loss"], run.history["loss"])
