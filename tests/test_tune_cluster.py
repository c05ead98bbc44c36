"""A search across machines for real: a PostgreSQL server and a Dask cluster of separate
processes (``dask scheduler``, two ``dask worker``), started and stopped here, each bound to one
address only; a worker killed with SIGKILL in the middle of a trial, the driver killed and
rerun; the workers on hosts of their own (network namespaces) where this machine allows it.

Every planned trial must finish exactly once: each (round, index) of the plan completed by one
trial, a killed trial recorded as failed without a reason and run again, none lost."""
import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import interruptible

optuna = pytest.importorskip("optuna")
pytest.importorskip("distributed")
pytest.importorskip("sklearn")
pytest.importorskip("psycopg")

from fastnn.bench.services import DaskCluster, Hosts, PostgresServer, postgres_binaries  # noqa: E402
from fastnn.nn import load  # noqa: E402
from fastnn.tune import MLPObjective, digits_space, search  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: Trials of about half a second, re-run 2 s after their worker dies.
TUNE = ["--epochs", "60", "--hidden", "30,60", "--heartbeat", "1", "--quiet"]
#: Trials of a few seconds, for the tests that kill a process in the middle of one.
LONG = ["--epochs", "400"]

needs_postgres = pytest.mark.skipif(postgres_binaries() is None,
                                    reason="PostgreSQL is not installed (.ci/run installs it)")
pytestmark = [needs_postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    with PostgresServer(tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture(scope="module")
def cluster():
    with DaskCluster(2) as dask:
        yield dask


def tune(*args, out, cwd=ROOT):
    return subprocess.Popen([sys.executable, "-m", "fastnn", "tune", *TUNE, "--out", str(out),
                             *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=interruptible)


def finish(process, timeout=300):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return out


def trials(url, study):
    return optuna.load_study(study_name=study, storage=url).get_trials()


def check_each_planned_trial_once(stored, n):
    """Each (round, index) of the plan completed by exactly one trial; the other planned trials
    failed without a reason (killed, re-run); returns those."""
    planned = [t for t in stored if "round" in t.user_attrs]
    done = collections.Counter((t.user_attrs["round"], t.user_attrs["index"]) for t in planned
                               if t.state.name == "COMPLETE")
    assert done == {(1, i): 1 for i in range(n)}, done
    killed = [t for t in planned if t.state.name != "COMPLETE"]
    assert all(t.state.name == "FAIL" and "fail_reason" not in t.user_attrs for t in killed)
    return killed


def wait_for(condition, timeout, what, process):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the search ended ({process.returncode}) before {what}")
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def running_trial(url, study):
    """(number, worker pid) of a trial running on a worker, once it has trained a while."""
    try:
        stored = trials(url, study)
    except KeyError:  # the study is not created yet
        return None
    for t in stored:
        if t.state.name == "RUNNING" and "worker" in t.user_attrs:
            started = t.datetime_start.timestamp()
            if time.time() - started > 0.5:
                return t.number, t.user_attrs["worker"]["pid"]
    return None


def test_both_postgresql_drivers_and_models_in_the_database(postgres):
    """postgresql:// takes psycopg 3 (the tune extra's); postgresql+psycopg2:// takes psycopg2;
    the models go into the same database and best_model() loads the best from there."""
    urls = {"plain": postgres.url,
            "psycopg": postgres.url.replace("postgresql://", "postgresql+psycopg://")}
    try:
        import psycopg2  # noqa: F401
        urls["psycopg2"] = postgres.url.replace("postgresql://", "postgresql+psycopg2://")
    except ImportError:
        pass
    for name, url in urls.items():
        result = search(MLPObjective(epochs=2, train_size=300), digits_space(), 2, storage=url,
                        study_name=f"driver-{name}", artifact_store="storage", progress=False)
        assert result.counts() == {"COMPLETE": 2}
        assert "model" not in result.best.attrs  # no file: the model is in the database
        X, y, X_val, y_val = MLPObjective(train_size=300).load()
        assert result.best_model().evaluate(X_val, y_val)[1] == result.best.value


def test_two_searches_at_once_on_postgresql_share_the_trials(postgres, tmp_path):
    """Two `fastnn tune` processes drive one study at once: 8 planned trials, each run once
    between them; a rerun resumes (runs nothing) and reports the same best."""
    args = ["--trials", "8", "--jobs", "2", "--storage", postgres.url, "--study", "together"]
    first, second = (tune(*args, out=tmp_path / name) for name in ("a", "b"))
    outs = [finish(first), finish(second)]
    stored = trials(postgres.url, "together")
    assert check_each_planned_trial_once(stored, 8) == []
    pids = {t.user_attrs["worker"]["pid"] for t in stored if "round" in t.user_attrs}
    assert len(pids) >= 2  # both searches' workers ran some
    rerun = finish(tune(*args, out=tmp_path / "c"))
    assert "8 complete" in rerun and len(trials(postgres.url, "together")) == len(stored)
    best = [line for out in [*outs, rerun] for line in out.splitlines()
            if line.startswith("best: trial")]
    assert len(best) == 3 and len(set(best)) == 1, best
    other = tune(*args, "--trials", "9", out=tmp_path / "d")  # (the last --trials counts)
    _, err = other.communicate(timeout=120)
    assert other.returncode == 2 and "--trials: search: study 'together' in postgresql://" \
        "fastnn:***@" in err and "n_trials=8 (now 9)" in err, err
    for printed in [*outs, rerun, err]:
        assert postgres.password not in printed  # the URL is shown with its password hidden


def test_worker_killed_in_the_middle_of_a_trial(postgres, cluster, tmp_path):
    """SIGKILL to the worker process running a trial: the search completes with every planned
    trial finished once (the killed one re-run elsewhere or in the restarted worker); the best
    model comes from the database. The killed trial is failed as soon as the scheduler has lost
    its worker, long before its heartbeat (30 s here) would go stale."""
    search_ = tune("--trials", "8", "--dask", cluster.address, "--storage", postgres.url,
                   "--study", "kill-worker", "--heartbeat", "30", *LONG, out=tmp_path / "o")
    number, pid = wait_for(lambda: running_trial(postgres.url, "kill-worker"), 120,
                           "a trial running on a worker", search_)
    assert pid in cluster.worker_pids().values()
    cluster.kill_worker(pid)
    killed_at = time.time()
    out = finish(search_)
    killed = check_each_planned_trial_once(trials(postgres.url, "kill-worker"), 8)
    assert number in [t.number for t in killed]
    assert all(t.user_attrs["worker"]["pid"] == pid for t in killed)
    assert all(t.datetime_complete.timestamp() - killed_at < 30 for t in killed)
    assert f"8 complete, {len(killed)} fail" in out
    assert load(tmp_path / "o" / "best_model.npz").n_features == 64
    cluster.wait_for_workers(2)  # the nanny restarted it


def test_driver_killed_then_rerun_resumes(postgres, cluster, tmp_path):
    """SIGKILL to `fastnn tune` itself: its running trials finish on the workers, and the same
    command run again completes the study, every planned trial once."""
    args = ["--trials", "8", "--dask", cluster.address, "--storage", postgres.url, "--study",
            "kill-driver", *LONG]
    driver = tune(*args, out=tmp_path / "o")
    wait_for(lambda: running_trial(postgres.url, "kill-driver"), 120, "a trial running", driver)
    driver.send_signal(signal.SIGKILL)
    driver.communicate()
    before = [t for t in trials(postgres.url, "kill-driver") if t.state.name == "COMPLETE"]
    assert len(before) < 8
    out = finish(tune(*args, out=tmp_path / "o"))
    check_each_planned_trial_once(trials(postgres.url, "kill-driver"), 8)
    assert "8 complete" in out and os.path.isfile(tmp_path / "o" / "best_model.npz")


def test_ctrl_c_of_a_search_on_the_cluster_ends_it_at_once(postgres, cluster, tmp_path):
    """SIGINT to `fastnn tune --dask ADDRESS`: the tasks are cancelled, one line, status 130
    (or death by SIGINT, see test_faults_cli) within seconds; the same command resumes."""
    args = ["--trials", "6", "--dask", cluster.address, "--storage", postgres.url, "--study",
            "ctrl-c", *LONG]
    driver = tune(*args, out=tmp_path / "o")
    wait_for(lambda: running_trial(postgres.url, "ctrl-c"), 120, "a trial running", driver)
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=30)
    assert driver.returncode in (130, -signal.SIGINT), err
    assert err.splitlines() == ["fastnn tune: interrupted; run the same command again to "
                                "resume the search"]
    out = finish(tune(*args, out=tmp_path / "o"))
    check_each_planned_trial_once(trials(postgres.url, "ctrl-c"), 6)
    assert "6 complete" in out


def test_a_database_restart_between_searches_costs_nothing(postgres, cluster, tmp_path):
    """The workers' pooled connections to PostgreSQL die with a restart: each is checked before
    use and replaced, so the next search runs at once (no error in each worker once). A relative
    --models folder is the driver's (the workers started elsewhere)."""
    args = ["--trials", "4", "--dask", cluster.address, "--storage", postgres.url]
    finish(tune(*args, "--study", "before-restart", out=tmp_path / "a"))
    postgres.restart()
    out = finish(tune(*args, "--study", "after-restart", "--models", "relative", out="o",
                      cwd=tmp_path))
    assert "4 complete" in out
    check_each_planned_trial_once(trials(postgres.url, "after-restart"), 4)
    assert len(list((tmp_path / "relative").glob("after-restart-trial-*.npz"))) == 4


def test_a_scheduler_without_workers_is_reported(postgres, tmp_path, monkeypatch, capsys):
    """A scheduler that has no worker (none started, or none could connect): one line naming
    --dask after the wait, not a search that waits forever."""
    from fastnn.cli import main
    from fastnn.cli import tune as tune_job

    monkeypatch.setattr(tune_job, "DASK_WORKERS_TIMEOUT", 2)
    with DaskCluster(0) as empty:
        with pytest.raises(SystemExit) as info:
            main(["tune", *TUNE, "--trials", "2", "--dask", empty.address, "--storage",
                  postgres.url, "--study", "no-workers", "--out", str(tmp_path / "o")])
    assert info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].endswith("has no workers yet; waiting up to 2 s for one")
    assert err[-1] == (f"fastnn tune: --dask: the Dask scheduler '{empty.address}' has no "
                       f"workers after 2 s; start some on the machines that run trials: dask "
                       f"worker {empty.address}")


def test_losing_the_scheduler_ends_the_search_with_one_line(postgres, tmp_path):
    """SIGKILL to the scheduler in the middle of a search: the driver ends with one line (its
    workers end with their scheduler); a new cluster and the same command resume it."""
    args = ["--trials", "6", "--storage", postgres.url, "--study", "scheduler-lost", *LONG]
    with DaskCluster(1) as doomed:
        driver = tune(*args, "--dask", doomed.address, out=tmp_path / "o")
        wait_for(lambda: running_trial(postgres.url, "scheduler-lost"), 120, "a trial running",
                 driver)
        doomed.scheduler.kill()
        _, err = driver.communicate(timeout=120)
    assert driver.returncode == 1, err
    assert err.splitlines()[-1] == (
        f"fastnn tune: search: the Dask scheduler at {doomed.address} was lost (the client "
        f"cancelled its tasks); start it and its workers again, then run the same search again "
        f"to resume it"), err
    with DaskCluster(1) as again:
        out = finish(tune(*args, "--dask", again.address, out=tmp_path / "o"))
    check_each_planned_trial_once(trials(postgres.url, "scheduler-lost"), 6)
    assert "6 complete" in out


NO_HOSTS = Hosts.unavailable()


@pytest.mark.skipif(NO_HOSTS is not None, reason=f"no hosts of their own here: {NO_HOSTS}")
def test_workers_on_hosts_of_their_own(tmp_path):
    """The scheduler and PostgreSQL listen only on a private bridge's address; each worker runs
    in its own network namespace (its own loopback, its own host name) and reaches them over a
    veth link: nothing works only because everything shares 127.0.0.1. The models travel
    through the database."""
    with Hosts(2) as hosts, \
            PostgresServer(tmp_path / "postgres", host=hosts.gateway) as server, \
            DaskCluster(2, hosts=hosts) as dask:
        out = finish(tune("--trials", "6", "--dask", dask.address, "--storage", server.url,
                          "--study", "hosts", out=tmp_path / "o"))
        stored = trials(server.url, "hosts")
        assert check_each_planned_trial_once(stored, 6) == []
        names = {t.user_attrs["worker"]["host"] for t in stored}
        assert names <= {f"{hosts.name}-host0", f"{hosts.name}-host1"} and names, names
        assert all("model_artifact" in t.user_attrs for t in stored)
        assert "6 complete" in out
        assert load(tmp_path / "o" / "best_model.npz").n_features == 64
