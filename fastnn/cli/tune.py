"""The search job, ``python -m fastnn tune``: a random search (or grid, or coarse to fine) over
an MLP's hyperparameters on the handwritten digits (``fastnn.tune.digits_space`` explored by
``fastnn.tune.MLPObjective``), with a progress bar over trials, the top trials as a table, the
best model saved, its test accuracy, and plots in ``out``. With ``data`` (``tune --data``) the
search runs on the user's data file instead (``fastnn.tabular``, as ``train --data``): a
stratified test part held out, the trials trained on the rest less a validation part and scored
with the task's metric (accuracy, R^2 for regression), the best model saved with its
description (best_model.json, for ``fastnn predict``).

Everything that can be checked is checked before the first trial (``OptionError``,
``SpaceError``, ``StorageError``): the search space against the objective, the output folder,
the storage URL, the Dask scheduler (reached within ``DASK_TIMEOUT`` seconds). Files are written
whole or not at all (``fastnn.files.atomic_write``). When no trial completes (every one diverged,
say) the table and trials.csv are still written, then ``SearchFailedError`` says so.
"""
import contextlib
import csv
import os
import socket
import sys
import time

import optuna

from fastnn import tabular
from fastnn.cli._common import (
    OptionError,
    check_test_size,
    evaluate_part,
    have_matplotlib,
    prepare_out,
    scores_text,
)
from fastnn.data import load_digits
from fastnn.files import atomic_write
from fastnn.tune.models import IN_STORAGE
from fastnn.tune.objectives import MLPObjective
from fastnn.tune.plots import plot_grid_vs_random, plot_trials
from fastnn.tune.search import (
    MAX_HEARTBEAT,
    SearchFailedError,
    grid_vs_random,
    outcome_summary,
    positive_count,
    search,
)
from fastnn.tune.space import SearchSpace, digits_space
from fastnn.tune.storage import StorageError, describe, in_memory, open_storage

__all__ = ["DASK_TIMEOUT", "DASK_WORKERS_TIMEOUT", "FILES", "run"]

#: Seconds to wait for a Dask scheduler before giving up.
DASK_TIMEOUT = 5
#: Seconds to wait for a scheduler without workers to get its first one.
DASK_WORKERS_TIMEOUT = 30
#: The files ``run`` writes in ``out``.
FILES = ("best_model.npz", "trials.csv", "lr_vs_accuracy.png", "rounds.png",
         "grid_vs_random.png")


def run(trials=20, jobs=1, storage=None, study=None, rounds=1, sampler="random", seed=0,
        epochs=20, out="fastnn-tune", prune=False, executor="process", dask=None, heartbeat=10,
        space=None, progress=True, data=None, target=None, task="auto", drop=(),
        test_size=0.2, models=None):
    """Search, then print the top trials and the best model's test accuracy and write
    ``out/``: best_model.npz, trials.csv, lr_vs_accuracy.png, rounds.png (lr against beta, the
    regions of the rounds) and grid_vs_random.png. storage: default ``sqlite:///out/tune.db``.
    study: the study's name in the storage (default "digits", or the data file's name without
    its extension). dask: None, "local" (a LocalCluster of ``jobs`` one-thread workers on
    127.0.0.1) or a scheduler address. space: a SearchSpace, or a dict of some of
    ``digits_space``'s distributions (the others keep their defaults), or None
    (``digits_space()``). data: None (the digits) or the user's data file, with ``target``,
    ``task``, ``drop`` and ``test_size`` as in ``fastnn.cli.train.run_data`` (the best model's
    description is written too: best_model.json). models: where the trials keep their models,
    "storage" (the storage's database; the default with a scheduler address, whose workers may
    be on other machines) or a folder (default ``out/models``). Returns the SearchResult."""
    if not isinstance(space, SearchSpace):
        space = SearchSpace({**digits_space().distributions, **(space or {})})
    test = None
    if data is None:
        objective = MLPObjective(epochs=epochs, seed=seed)
    else:
        objective, test = _data_objective(data, target, task, drop, test_size, epochs, seed)
    if study is None:
        study = "digits" if data is None else os.path.splitext(os.path.basename(data))[0]
    objective.check_space(space)  # a bad range fails now, not when its bad value is drawn
    heartbeat = positive_count("heartbeat", heartbeat, MAX_HEARTBEAT)
    if in_memory(storage) and (dask is not None or jobs > 1):
        raise StorageError(f"storage: {storage!r} is an in-memory database, which trials in "
                           f"other processes or threads cannot share; use a file "
                           f"(sqlite:///tune.db), or one job")
    if dask not in (None, "local"):
        _check_reachable(dask)
    plots = have_matplotlib()
    if storage is not None:
        open_storage(storage, heartbeat)  # a bad URL fails now (StorageError), ...
    models_option = "out" if models is None else "models"  # which option an error names
    if models is None:
        models = IN_STORAGE if dask not in (None, "local") else os.path.join(out, "models")
    prepare_out(out, FILES + (("best_model.json",) if data is not None else ()))
    if models != IN_STORAGE:
        prepare_out(models, name=models_option)  # the trials' models go there
    if storage is None:
        storage = f"sqlite:///{os.path.join(out, 'tune.db')}"
        try:
            open_storage(storage, heartbeat)  # ... or once its folder is there
        except StorageError as error:
            raise OptionError("out", f"{error} (the default storage, in the output "
                                     f"folder)") from None
    if not plots:
        print("fastnn tune: matplotlib is not installed: no plots (pip install matplotlib)",
              file=sys.stderr)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bar reports the trials

    start = time.perf_counter()
    with _where(dask, jobs, executor) as where:
        result = search(objective, space, trials, rounds=rounds, sampler=sampler, seed=seed,
                        storage=storage, study_name=study, jobs=jobs, executor=where, prune=prune,
                        heartbeat=heartbeat,
                        model_dir=None if models == IN_STORAGE else models,
                        artifact_store=IN_STORAGE if models == IN_STORAGE else None,
                        metric=f"val_{objective.metric}", progress=progress)
    seconds = time.perf_counter() - start
    counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(result.counts().items()))
    killed = sum(t.state == "FAIL" and t.reason is None for t in result.trials)
    if killed:  # (a search that ends has run each planned trial again)
        counts += f" ({killed} stopped mid-trial when a worker or run was killed; run again)"
    print(f"study {study!r} in {describe(storage)}: {counts}; this run {seconds:.1f} s")
    print(result.table(10))
    _write_trials(result, os.path.join(out, "trials.csv"))
    if not result.top(1):
        raise SearchFailedError(f"no trial completed ({outcome_summary(result.trials)}); no best "
                                f"model; trials in {os.path.join(out, 'trials.csv')}")

    _best_model(result, os.path.join(out, "best_model.npz"), seed, test)
    comparison = grid_vs_random(space, trials, seed)
    print(f"distinct values tried with {trials} trials (why random search is the default):")
    print("\n".join(f"  {name:<8} grid {g:>3}   random {r:>3}"
                    for name, (g, r) in comparison["distinct"].items()))
    if plots:
        plot_grid_vs_random(space, comparison, os.path.join(out, "grid_vs_random.png"), "lr",
                            "hidden")
        plot_trials(result, os.path.join(out, "lr_vs_accuracy.png"), "lr")
        plot_trials(result, os.path.join(out, "rounds.png"), "lr", "beta")
    print(f"{'model, trials and plots' if plots else 'model and trials'} in {out}/")
    return result


#: ``tune --data``: the fraction of the training part held out to score the trials (stratified).
VALIDATION = 0.2


def _data_objective(data, target, task, drop, test_size, epochs, seed):
    """(objective, (test part, target scaling or None)) for a search on the data file ``data``:
    a stratified ``test_size`` held out for the best model's test score, ``VALIDATION`` of the
    rest to score the trials; regression targets standardized (``fastnn.tabular``)."""
    test_size = check_test_size(test_size)
    dataset = tabular.load_data(data, target, task, drop)
    schema = dataset.schema
    train_part, test_part = tabular.split(dataset, test_size, seed)
    fit_part, val_part = tabular.split(train_part, VALIDATION, seed + 1)
    y_fit, y_val, scaling = fit_part.y, val_part.y, None
    if schema.task == "regression":
        scaling = tabular.target_scaling(fit_part.y)
        y_fit, y_val = (tabular.scale_targets(y, scaling) for y in (y_fit, y_val))
    objective = MLPObjective(epochs=epochs, data=(fit_part.X, y_fit, val_part.X, y_val),
                             seed=seed, loss=schema.loss, n_outputs=schema.n_outputs,
                             normalize=True,
                             name=f"{os.path.basename(data)} {dataset.fingerprint()}")
    return objective, (test_part, scaling)


def _best_model(result, path, seed, test=None):
    """Save the best trial's model (``SearchResult.best_model``: from its file or the storage)
    to ``path`` (whole or not at all) and print its test score; a note instead when it is
    missing or damaged (the search result stands). test: None (the digits' test part) or (the
    data's test part, its target scaling): the model, in the targets' units, is saved with its
    description (``fastnn.tabular.save_model``)."""
    best = result.best
    metric = "R^2" if test is not None and test[0].schema.task == "regression" else "accuracy"
    note = (f"best: trial {best.number} (round {best.round}), validation {metric} "
            f"{best.value:.4f}")
    try:
        model = result.best_model()
        if test is not None:
            if test[1] is not None:
                tabular.unscale_outputs(model, *test[1])
            tabular.save_model(model, path, test[0].schema)
        else:
            model.save(path)
    except (OSError, ValueError, LookupError) as error:
        print(f"{note}; {best.hyperparameters}; its model cannot be copied to {path}: "
              f"{' '.join(str(error).split())}", file=sys.stderr)
        return
    if test is not None:
        scores = evaluate_part(model, test[0])
        print(f"{note}, {scores_text(test[0].schema.task, scores)}; {best.hyperparameters}")
        return
    _, _, X_test, y_test = load_digits(seed=seed)
    _, test_accuracy = model.evaluate(X_test, y_test)
    print(f"{note}, test accuracy {test_accuracy:.4f}; {best.hyperparameters}")


@contextlib.contextmanager
def _where(dask, jobs, executor):
    """The executor for ``search``: ``executor`` itself, or a Dask client (of a new local cluster
    for dask="local"), closed on exit. An unreachable scheduler raises ``OptionError`` within
    ``DASK_TIMEOUT`` seconds."""
    if dask is None:
        yield executor
        return
    from distributed import Client, LocalCluster

    if dask == "local":
        with LocalCluster(n_workers=jobs, threads_per_worker=1, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(dask, timeout=DASK_TIMEOUT)
    except (OSError, TimeoutError, ValueError, TypeError, AssertionError) as error:
        raise OptionError("dask", f"cannot connect to the Dask scheduler {dask!r}: "
                                  f"{type(error).__name__}: {error}") from None
    with client:
        if not client.scheduler_info()["workers"]:
            print(f"fastnn tune: the Dask scheduler {dask} has no workers yet; waiting up to "
                  f"{DASK_WORKERS_TIMEOUT} s for one", file=sys.stderr)
            try:
                client.wait_for_workers(1, timeout=DASK_WORKERS_TIMEOUT)
            except (TimeoutError, OSError):
                raise OptionError("dask", f"the Dask scheduler {dask!r} has no workers after "
                                          f"{DASK_WORKERS_TIMEOUT} s; start some on the "
                                          f"machines that run trials: dask worker {dask}") \
                    from None
        yield client


def _check_reachable(address):
    """``OptionError`` unless ``address`` parses as a Dask address and, for TCP-based schemes,
    something listens there (within ``DASK_TIMEOUT`` seconds)."""
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import backends

    try:
        scheme, location = parse_address(address)
        if scheme not in backends:
            raise ValueError(f"unknown scheme {scheme!r}; known: {', '.join(sorted(backends))}")
        if scheme not in ("tcp", "tls", "ws", "wss"):
            return
        host, port = parse_host_port(location)
    except (ValueError, TypeError) as error:
        raise OptionError("dask", f"{address!r} is not a Dask scheduler address ({error}); "
                                  f"expected e.g. tcp://host:8786, or 'local'") from None
    try:
        socket.create_connection((host, port), timeout=DASK_TIMEOUT).close()
    except OSError as error:
        raise OptionError("dask", f"cannot reach the Dask scheduler at {address!r} within "
                                  f"{DASK_TIMEOUT} s ({error.strerror or error})") from None


def _write_trials(result, path):
    names = result.spaces[0].names
    with atomic_write(path, "w") as f:
        writer = csv.writer(f)
        writer.writerow(["trial", "round", "state", result.metric, "seconds", *names, "worker",
                         "fail_reason"])
        for t in result.trials:
            worker = t.attrs.get("worker", {})
            writer.writerow([t.number, t.round, t.state, t.value, t.seconds,
                             *(t.hyperparameters.get(n) for n in names),
                             f"{worker.get('host', '')}:{worker.get('pid', '')}",
                             t.reason or ""])
