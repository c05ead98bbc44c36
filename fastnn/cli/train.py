"""The main job, ``python -m fastnn train``: a batch-normalized MLP (``fastnn.nn.mlp.build_mlp``)
trained with Adam and learning-rate decay on the bundled handwritten-digits data (``run``), or on
the user's data file (``run_data``, ``train --data``), reporting the test score and writing the
learning curve (PNG) and the model file (with ``--data`` also its description, model.json, and a
report, report.json).

``run`` and ``run_data`` check every argument (``check_options``), the data (``run_data``:
``fastnn.tabular.DataError``, before anything is written) and the output folder
(``prepare_out``) before any work, raising ``OptionError`` (a ValueError naming the argument:
the command line reports it as the option). Files are written whole or not at all
(``fastnn.files``).
"""
import json
import math
import numbers
import os
import sys
import time

import numpy as np

from fastnn import optim, tabular
from fastnn.cli._common import (
    OptionError,
    check_test_size,
    evaluate_part,
    have_matplotlib,
    prepare_out,
    scores_text,
)
from fastnn.data import load_digits
from fastnn.files import atomic_write, save_figure
from fastnn.nn import Dense, Dropout
from fastnn.nn.mlp import build_mlp
from fastnn.optim import OPTIMIZERS

__all__ = ["DATA_FILES", "VALIDATION", "check_options", "plot_learning_curve", "run", "run_data"]

#: ``run_data``: the fraction of the training part held out for validation (a stratified
#: draw), when the training part has ``tabular.MIN_ROWS`` rows or more.
VALIDATION = 0.1


def _integer(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_options(hidden=(256, 128), epochs=30, batch_size=64, optimizer="adam", lr=3e-3,
                  decay=0.05, l2=0.0, dropout=0.0, seed=0, backend=None):
    """Raise ``OptionError`` naming the first bad argument of ``run`` (as ``run`` would meet it,
    but before any work): each is checked by the code that uses it (layers, optimizer,
    schedule), and backend="cuda" by asking for the backend (a RuntimeError says why not)."""
    def fail(name, error):
        raise OptionError(name, str(error)) from None

    try:
        hidden = tuple(hidden)
        for width in hidden:
            Dense(width, use_bias=False)
    except (TypeError, ValueError) as error:
        fail("hidden", error)
    if not _integer(epochs) or epochs < 0:
        fail("epochs", f"epochs must be an integer >= 0, got {epochs!r}")
    if not _integer(batch_size) or batch_size < 1:
        fail("batch_size", f"batch_size must be an integer >= 1, got {batch_size!r}")
    if batch_size < 2 and hidden:  # each hidden layer has BatchNorm
        fail("batch_size", f"batch_size must be an integer >= 2 (the model has BatchNorm: batch "
                           f"statistics need 2 rows), got {batch_size!r}")
    _check_memory(hidden, batch_size)
    if optimizer not in OPTIMIZERS:
        fail("optimizer", f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    try:
        optim.inverse_time(lr, 0.0)
        OPTIMIZERS[optimizer](lr=lr)
    except (TypeError, ValueError) as error:
        fail("lr", error)
    try:
        optim.inverse_time(lr, decay)
    except (TypeError, ValueError) as error:
        fail("decay", error)
    if not (isinstance(l2, numbers.Real) and not isinstance(l2, bool) and math.isfinite(l2)
            and l2 >= 0):
        fail("l2", f"l2 must be a finite number >= 0, got {l2!r}")
    try:
        if dropout:
            Dropout(dropout)
    except (TypeError, ValueError) as error:
        fail("dropout", error)
    if not _integer(seed) or not 0 <= seed < 2**32:
        fail("seed", f"seed must be an integer in [0, 2**32), got {seed!r}")
    if backend is not None:
        from fastnn import backend as backends
        try:
            backends.get(backend)
        except (ValueError, RuntimeError, ImportError) as error:
            fail("backend", f"backend {backend!r} cannot run here: {error}")


def _available_memory():
    """Bytes of memory available here (MemAvailable on Linux, else the physical memory), or
    None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _check_memory(hidden, batch_size, n_features=64, n_classes=10):
    """``OptionError`` (hidden) when the MLP's parameters, gradients and optimizer moments (4
    float32 copies) and one batch's activations cannot fit in the memory available."""
    widths = (n_features, *hidden, n_classes)
    parameters = sum(a * b for a, b in zip(widths, widths[1:]))
    needed = 4 * (4 * parameters + 4 * batch_size * sum(widths))
    available = _available_memory()
    if available is not None and needed > available:
        fail = f"{needed / 2**30:.3g} GiB" if needed < 2**70 else f"{needed:.3g} bytes"
        raise OptionError("hidden", f"a model of {parameters:,} parameters needs about {fail} "
                                    f"of memory to train, more than the "
                                    f"{available / 2**30:.3g} GiB available here")


def run(hidden=(256, 128), epochs=30, batch_size=64, optimizer="adam", lr=3e-3, decay=0.05,
        l2=0.0, dropout=0.0, seed=0, backend=None, out="fastnn-run", plot=True, verbose=True):
    """Train on digits, print the test accuracy, save ``out/model.npz`` and
    ``out/learning_curve.png``; returns (model, history, test accuracy). Every argument and the
    folder are checked first (``OptionError``); without matplotlib the plot is skipped with a
    note."""
    hidden = tuple(hidden)
    check_options(hidden, epochs, batch_size, optimizer, lr, decay, l2, dropout, seed, backend)
    if plot and not have_matplotlib():
        print("fastnn train: matplotlib is not installed: no learning_curve.png "
              "(pip install matplotlib)", file=sys.stderr)
        plot = False
    prepare_out(out, ["model.npz"] + (["learning_curve.png"] if plot else []))
    start = time.perf_counter()
    X_train, y_train, X_test, y_test = load_digits(seed=seed)
    model = build_mlp(hidden, 10, dropout, backend)
    schedule = optim.inverse_time(lr, decay)
    history = model.fit(X_train, y_train, epochs=epochs, batch_size=batch_size,
                        optimizer=OPTIMIZERS[optimizer](lr=lr), l2=l2, schedule=schedule,
                        validation_split=0.1, seed=seed, verbose=verbose)
    test_loss, test_accuracy = model.evaluate(X_test, y_test)
    model.save(os.path.join(out, "model.npz"))
    plot = _plot_wanted(plot, history, out)
    if plot:
        plot_learning_curve(history, os.path.join(out, "learning_curve.png"))
    print(f"digits: {X_train.shape[0]} training and {X_test.shape[0]} test images; layers "
          f"{'-'.join(map(str, (64, *hidden, 10)))}; {optimizer} lr {lr} decay {decay}; "
          f"backend {model.backend or 'default'}")
    print(f"test accuracy {test_accuracy:.4f}, test loss {test_loss:.4f} after "
          f"{len(history.epoch)} epochs in {time.perf_counter() - start:.1f} s "
          f"(including compilation); {'model and learning curve' if plot else 'model'} in "
          f"{out}/")
    return model, history, test_accuracy


#: The files ``run_data`` writes in ``out`` (and learning_curve.png).
DATA_FILES = ("model.npz", "model.json", "report.json")


def run_data(data, target=None, task="auto", drop=(), test_size=0.2, hidden=(256, 128),
             epochs=30, batch_size=64, optimizer="adam", lr=3e-3, decay=0.05, l2=0.0,
             dropout=0.0, seed=0, backend=None, out="fastnn-run", plot=True, verbose=True):
    """Train on the data file ``data`` (CSV, .npz or Parquet: ``fastnn.tabular``): the target
    column(s) ``target`` (None: the last column), ``task`` ("auto": inferred), the columns in
    ``drop`` left out, every other column a feature. A stratified ``test_size`` of the rows is
    held out for testing, ``VALIDATION`` of the rest for validation; the model is ``build_mlp``
    with a ``Normalization`` first layer (learned from the training rows) and the task's loss;
    a regression model trains on standardized targets, then predicts in their units (the
    scaling folded into its last layer).

    Prints the test score (accuracy, R^2 and MAE for regression) and writes ``out/model.npz``,
    ``out/model.json`` (the columns and classes, for ``fastnn predict``), ``out/report.json``
    and ``out/learning_curve.png``. Every argument (``OptionError``) and the data
    (``tabular.DataError``) are checked before anything is written. Returns (model, history,
    the test scores: a dict)."""
    hidden = tuple(hidden)
    check_options(hidden, epochs, batch_size, optimizer, lr, decay, l2, dropout, seed, backend)
    test_size = check_test_size(test_size)
    dataset = tabular.load_data(data, target, task, drop)
    schema = dataset.schema
    _check_memory(hidden, batch_size, dataset.X.shape[1], schema.n_outputs)
    train_part, test_part = tabular.split(dataset, test_size, seed)
    fit_part, val_part = train_part, None
    if len(train_part) >= tabular.MIN_ROWS:
        fit_part, val_part = tabular.split(train_part, VALIDATION, seed + 1)
    if plot and not have_matplotlib():
        print("fastnn train: matplotlib is not installed: no learning_curve.png "
              "(pip install matplotlib)", file=sys.stderr)
        plot = False
    prepare_out(out, list(DATA_FILES) + (["learning_curve.png"] if plot else []))
    start = time.perf_counter()
    y_fit = y_val = scaling = None
    if schema.task == "regression":  # (trained on standardized targets)
        scaling = tabular.target_scaling(fit_part.y)
        y_fit = tabular.scale_targets(fit_part.y, scaling)
        if val_part is not None:
            y_val = tabular.scale_targets(val_part.y, scaling)
    else:
        y_fit, y_val = fit_part.y, None if val_part is None else val_part.y
    model = build_mlp(hidden, schema.n_outputs, dropout, backend, loss=schema.loss,
                      normalize=True)
    history = model.fit(fit_part.X, y_fit, epochs=epochs, batch_size=batch_size,
                        optimizer=OPTIMIZERS[optimizer](lr=lr), l2=l2,
                        schedule=optim.inverse_time(lr, decay),
                        validation_data=None if val_part is None else (val_part.X, y_val),
                        seed=seed, verbose=verbose)
    if scaling is not None:
        tabular.unscale_outputs(model, *scaling)
    scores = evaluate_part(model, test_part)
    tabular.save_model(model, os.path.join(out, "model.npz"), schema)
    plot = _plot_wanted(plot, history, out)
    name = os.path.basename(os.fspath(data))
    if plot:
        plot_learning_curve(history, os.path.join(out, "learning_curve.png"),
                            f"fastnn: MLP on {name} ({schema.task})",
                            "loss (standardized targets)" if scaling is not None else "loss")
    seconds = time.perf_counter() - start
    rows = {"all": len(dataset), "training": len(fit_part),
            "validation": 0 if val_part is None else len(val_part), "test": len(test_part)}
    report = {"data": os.fspath(data), **schema.to_dict(), "rows": rows, "test": scores,
              "epochs": len(history.epoch), "seconds": round(seconds, 3),
              "options": {"hidden": list(hidden), "epochs": epochs, "batch_size": batch_size,
                          "optimizer": optimizer, "lr": lr, "decay": decay, "l2": l2,
                          "dropout": dropout, "seed": seed, "test_size": test_size,
                          "backend": model.backend},
              "files": {"model": "model.npz", "description": "model.json",
                        "learning_curve": "learning_curve.png" if plot else None}}
    del report["format"]
    with atomic_write(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    print(f"{name}: {rows['all']} rows, {dataset.X.shape[1]} features, target "
          f"{', '.join(schema.target)} ({schema.describe()}); {rows['training']} training, "
          f"{rows['validation']} validation and {rows['test']} test rows; layers "
          f"{'-'.join(map(str, (dataset.X.shape[1], *hidden, schema.n_outputs)))} (inputs "
          f"normalized); {optimizer} lr {lr} decay {decay}; backend {model.backend}")
    print(f"{scores_text(schema.task, scores)} after {len(history.epoch)} epochs in "
          f"{seconds:.1f} s (including compilation); model, report"
          f"{' and learning curve' if plot else ''} in {out}/")
    return model, history, scores


def _plot_wanted(plot, history, out):
    """Whether to plot the learning curve: asked for, and at least one epoch trained (else an
    earlier run's curve in ``out`` is removed, so that it cannot pass for this one's)."""
    if plot and not history.epoch:
        curve = os.path.join(out, "learning_curve.png")
        if os.path.isfile(curve):
            os.remove(curve)
        print("fastnn train: no epoch trained: no learning_curve.png", file=sys.stderr)
        return False
    return plot


def plot_learning_curve(history, path, title="fastnn: MLP on handwritten digits", loss="loss"):
    """Loss and accuracy (R^2 for regression) per epoch (training and validation) in one PNG;
    ``loss``: the label of the loss axis."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history.epoch) + 1)
    metric = "accuracy" if "accuracy" in history.history else "r2"
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    try:
        for key, ax in (("loss", ax_loss), (metric, ax_acc)):
            ax.plot(epochs, history[key], label=f"training {key}")
            if f"val_{key}" in history.history:
                ax.plot(epochs, history[f"val_{key}"], label=f"validation {key}")
            ax.set_xlabel("epoch")
            ax.set_ylabel(loss if key == "loss" else key)
            ax.legend()
            ax.grid(alpha=0.3)
        ax_loss.set_yscale("log")
        fig.suptitle(title)
        fig.tight_layout()
        save_figure(fig, path)
    finally:
        plt.close(fig)
