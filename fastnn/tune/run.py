"""``python -m fastnn tune``: a random search (or grid, or coarse to fine) over an MLP's
hyperparameters on the handwritten digits, with a progress bar over trials, the top trials as a
table, the best model saved, its test accuracy, and plots in ``out``."""
import contextlib
import csv
import os
import shutil
import time

import optuna

from fastnn.data import load_digits
from fastnn.nn import load
from fastnn.tune.objectives import MLPObjective
from fastnn.tune.plots import plot_grid_vs_random, plot_trials
from fastnn.tune.search import grid_vs_random, search
from fastnn.tune.space import IntRange, LogUniform, OneMinusLogUniform, SearchSpace

__all__ = ["digits_space", "run"]


def digits_space(lr=(1e-4, 1.0), beta=(0.9, 0.999), hidden=(50, 100), l2=(1e-4, 1.0),
                 layers=None):
    """lr log-uniform, beta (Adam's beta1) with 1 - beta log-uniform, hidden units an integer
    range, the L2 lambda log-uniform; layers an integer range if given (else one hidden layer).
    Each range is (low, high)."""
    space = {"lr": LogUniform(*lr), "beta": OneMinusLogUniform(*beta), "hidden": IntRange(*hidden),
             "l2": LogUniform(*l2)}
    if layers is not None:
        space["layers"] = IntRange(*layers)
    return SearchSpace(space)


def run(trials=20, jobs=1, storage=None, study="digits", rounds=1, sampler="random", seed=0,
        epochs=20, out="fastnn-tune", prune=False, executor="process", dask=None, heartbeat=10,
        space=None, progress=True):
    """Search, then print the top trials and the best model's test accuracy and write
    ``out/``: best_model.npz, trials.csv, lr_vs_accuracy.png, rounds.png (lr against beta, the
    regions of the rounds) and grid_vs_random.png. storage: default ``sqlite:///out/tune.db``.
    dask: None, "local" (a LocalCluster of ``jobs`` one-thread workers on 127.0.0.1) or a
    scheduler address. Returns the SearchResult."""
    space = space or digits_space()
    os.makedirs(out, exist_ok=True)
    storage = storage or f"sqlite:///{os.path.join(out, 'tune.db')}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bar reports the trials

    start = time.perf_counter()
    objective = MLPObjective(epochs=epochs, seed=seed)
    with _where(dask, jobs, executor) as where:
        result = search(objective, space, trials, rounds=rounds, sampler=sampler, seed=seed,
                        storage=storage, study_name=study, jobs=jobs, executor=where, prune=prune,
                        heartbeat=heartbeat, model_dir=os.path.join(out, "models"),
                        progress=progress)
    seconds = time.perf_counter() - start
    counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(result.counts().items()))
    print(f"study {study!r} in {storage}: {counts}; this run {seconds:.1f} s")
    print(result.table(10))

    best = result.best
    shutil.copyfile(best.attrs["model"], os.path.join(out, "best_model.npz"))
    _, _, X_test, y_test = load_digits(seed=seed)
    _, test_accuracy = load(os.path.join(out, "best_model.npz")).evaluate(X_test, y_test)
    print(f"best: trial {best.number} (round {best.round}), validation accuracy "
          f"{best.value:.4f}, test accuracy {test_accuracy:.4f}; {best.hyperparameters}")
    comparison = grid_vs_random(space, trials, seed)
    print(f"distinct values tried with {trials} trials (why random search is the default):")
    print("\n".join(f"  {name:<8} grid {g:>3}   random {r:>3}"
                    for name, (g, r) in comparison["distinct"].items()))
    plot_grid_vs_random(space, comparison, os.path.join(out, "grid_vs_random.png"), "lr",
                        "hidden")
    _write_trials(result, os.path.join(out, "trials.csv"))
    plot_trials(result, os.path.join(out, "lr_vs_accuracy.png"), "lr")
    plot_trials(result, os.path.join(out, "rounds.png"), "lr", "beta")
    print(f"model, trials and plots in {out}/")
    return result


@contextlib.contextmanager
def _where(dask, jobs, executor):
    """The executor for ``search``: ``executor`` itself, or a Dask client (of a new local cluster
    for dask="local"), closed on exit."""
    if dask is None:
        yield executor
        return
    from distributed import Client, LocalCluster

    if dask == "local":
        with LocalCluster(n_workers=jobs, threads_per_worker=1, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster) as client:
            yield client
    else:
        with Client(dask) as client:
            yield client


def _write_trials(result, path):
    names = result.spaces[0].names
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["trial", "round", "state", result.metric, "seconds", *names, "worker"])
        for t in result.trials:
            worker = t.attrs.get("worker", {})
            writer.writerow([t.number, t.round, t.state, t.value, t.seconds,
                             *(t.hyperparameters.get(n) for n in names),
                             f"{worker.get('host', '')}:{worker.get('pid', '')}"])
