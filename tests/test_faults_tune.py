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
from helpers import slow_search_script

optuna = pytest.importorskip("optuna")
pytest.importorskip("sklearn")

from fastnn import optim  # noqa: E402
from fastnn.nn.mlp import build_mlp  # noqa: E402
from fastnn.tune import (  # noqa: E402
    Babysitter,
    Choice,
    IntRange,
    LogUniform,
    MLPObjective,
    OneMinusLogUniform,
    SearchFailedError,
    SpaceError,
    Uniform,
    search,
)
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


CONCURRENT = slow_search_script(0.05, 16, "shared")


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
        ".babysitter.lock", "checkpoints", "curve.csv", "curve.png"]  # no temporary files left
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


# --- red-team pass 3 -------------------------------------------------------------------------

def tiny_model_objective(trial, hidden):
    """Saves an (unbuilt-then-built) model of ``hidden`` units; the value is hidden."""
    model = build_mlp((hidden,), 10)
    model.build(64)
    trial.save_model(model)
    return float(hidden)


def test_two_studies_sharing_a_model_dir_keep_their_own_models(tmp_path):
    from fastnn.tune.trial import model_file

    models = str(tmp_path / "models")
    a = search(tiny_model_objective, {"hidden": IntRange(8, 9)}, 2, study_name="A",
               model_dir=models, progress=False)
    search(tiny_model_objective, {"hidden": IntRange(30, 40)}, 2, study_name="B",
           model_dir=models, progress=False)
    assert a.best_model().layers[0].units == a.best.hyperparameters["hidden"]
    assert sorted(os.listdir(models)) == ["A-trial-0000.npz", "A-trial-0001.npz",
                                          "B-trial-0000.npz", "B-trial-0001.npz"]
    assert model_file("../x/.y", 3) == "%2E.%2Fx%2F.y-trial-0003.npz"
    assert len(model_file("s" * 500, 1)) < 100 and model_file("s" * 500, 1) != \
        model_file("s" * 499, 1)


@pytest.mark.filterwarnings("ignore:.*:optuna.exceptions.ExperimentalWarning")
def test_memory_errors_and_huge_values_are_failed_trials(caplog):
    def objective(trial, x):
        if x < 0.5:
            raise MemoryError("Unable to allocate 9 TiB")
        return 10**400

    result = search(objective, {"x": Uniform(0, 1)}, 6, seed=1, progress=False)
    assert result.counts() == {"FAIL": 6}
    reasons = {t.reason.split(" (")[0] for t in result.failed}
    assert reasons == {"out of memory", "the objective returned a number too large for a float"}


def test_search_bounds_trials_heartbeat_and_seed():
    for kwargs, match in [({"n_trials": 10**12}, "n_trials must be an integer in \\[1, 1000000"),
                          ({"heartbeat": 10**14}, "heartbeat must be an integer in \\[1, 86400"),
                          ({"seed": 2**32}, "seed must be an integer < 2\\*\\*32"),
                          ({"jobs": 2, "storage": "sqlite://", "executor": "thread"},
                           "in-memory database")]:
        kwargs = {"n_trials": 2, **kwargs}
        with pytest.raises(ValueError, match=match):
            search(sometimes_nan, {"x": Uniform(0, 1)}, progress=False, **kwargs)


def test_a_script_without_the_main_guard_is_told_so(tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from fastnn.tune import Uniform, search
        from fastnn.tune.trial import FAIL_REASON  # noqa: F401

        def objective(trial, x):
            return x

        search(objective, {{"x": Uniform(0, 1)}}, 2, jobs=2,
               storage="sqlite:///{tmp_path}/t.db", progress=False)
    """))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert r.returncode != 0
    assert 'if __name__ == "__main__":' in r.stderr.splitlines()[-1], r.stderr[-2000:]
    assert "killed, or out of memory" not in r.stderr


class Unpicklable(Exception):
    def __init__(self, a, b):  # pickle calls Unpicklable(message): a TypeError there
        super().__init__(f"{a} and {b}")


class RaisesUnpicklable:
    def __call__(self, trial, x):
        raise Unpicklable("bad", "worse")


def test_an_objective_error_that_cannot_come_back_from_a_worker_keeps_its_text(tmp_path):
    with pytest.raises(RuntimeError, match="^Unpicklable: bad and worse$"):
        search(RaisesUnpicklable(), {"x": Uniform(0, 1)}, 2, jobs=2,
               storage=f"sqlite:///{tmp_path}/t.db", progress=False)


def test_two_babysitters_cannot_share_a_folder(digits, tmp_path):
    from fastnn.tune.babysit import FolderInUseError

    X, y = digits
    first = Babysitter(build_mlp((8,), 10), "adam", out=str(tmp_path / "run"), plot=False,
                       verbose=False)
    second = Babysitter(build_mlp((24,), 10), "adam", out=str(tmp_path / "run"), plot=False,
                        verbose=False)
    os.makedirs(tmp_path / "run")
    with first._lock():  # first is training
        with pytest.raises(FolderInUseError, match=f"folder '{tmp_path / 'run'}' is in use by "
                                                   f"another Babysitter \\(process {os.getpid()}"):
            second.train(X, y, 1)
    assert not os.listdir(tmp_path / "run" / "checkpoints")
    second.train(X, y, 1)  # once free
    assert second.epoch == 1


def test_resume_checks_the_checkpoint_pair_and_its_json(digits, tmp_path):
    X, y = digits
    for name, width in (("run", 16), ("other", 12)):
        Babysitter(build_mlp((width,), 10), optim.Adam(3e-3), out=str(tmp_path / name),
                   plot=False, verbose=False).train(X, y, 2)
    folder = tmp_path / "run" / "checkpoints"
    model, info = folder / "epoch-0002.npz", folder / "epoch-0002.json"
    good = json.loads(info.read_text())
    with pytest.raises(ValueError, match="epoch-0002.npz and .*epoch-0002.json are not a pair"):
        Babysitter.resume(_swap(model, tmp_path / "other"), verbose=False)
    model.write_bytes((tmp_path / "saved.npz").read_bytes())  # restore
    first = {k: v[:1] for k, v in good["history"].items()}
    for change, match in [({"epoch": 1, "history": first},
                           "is for epoch 1, not the 2 of its file name"),
                          ({"batch_size": 1}, "batch_size must be an integer >= 2"),
                          ({"l2": -1}, "l2 must be a finite number >= 0"),
                          ({"changes": [{"epoch": 1, "lr": -1}]}, "lr"),
                          ({"changes": [{"epoch": 1, "nope": 1}]}, "sets 'nope'"),
                          ({"history": {**good["history"], "loss": ["x", 1]}}, "history")]:
        info.write_text(json.dumps({**good, **change}))
        with pytest.raises(ValueError, match=f"Babysitter.resume: .*epoch-0002.json.*{match}"):
            Babysitter.resume(model, verbose=False)
    info.write_text(json.dumps(good))
    elsewhere = tmp_path / "copy"
    elsewhere.mkdir()
    for path in (model, info):
        (elsewhere / path.name).write_bytes(path.read_bytes())
    with pytest.raises(ValueError, match="not in the checkpoints folder of a run.*pass out="):
        Babysitter.resume(elsewhere / "epoch-0002.npz", verbose=False)
    resumed = Babysitter.resume(elsewhere / "epoch-0002.npz", out=str(tmp_path / "r2"),
                                verbose=False)
    assert resumed.epoch == 2 and resumed.out == str(tmp_path / "r2")


def _swap(model, other):
    """Keep ``model`` in saved.npz beside its run and put the other run's epoch-0002.npz in its
    place (a kill between the .npz and the .json of a checkpoint)."""
    (model.parents[2] / "saved.npz").write_bytes(model.read_bytes())
    model.write_bytes((other / "checkpoints" / model.name).read_bytes())
    return model
