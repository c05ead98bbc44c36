"""The main job, ``python -m fastnn train``: a batch-normalized MLP (``fastnn.nn.mlp.build_mlp``)
trained with Adam and learning-rate decay on the bundled handwritten-digits data, reporting test
accuracy and writing the learning curve (PNG) and the model file.

``run`` checks every argument (``check_options``) and its output folder (``prepare_out``) before
any work, raising ``OptionError`` (a ValueError naming the argument: the command line reports it
as the option). Files are written whole or not at all (``fastnn.files``).
"""
import math
import numbers
import os
import sys
import time

import numpy as np

from fastnn import optim
from fastnn.cli._common import OptionError, have_matplotlib, prepare_out
from fastnn.data import load_digits
from fastnn.files import save_figure
from fastnn.nn import Dense, Dropout
from fastnn.nn.mlp import build_mlp
from fastnn.optim import OPTIMIZERS

__all__ = ["check_options", "plot_learning_curve", "run"]


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
    if plot and not history.epoch:
        curve = os.path.join(out, "learning_curve.png")
        if os.path.isfile(curve):  # an earlier run's curve must not pass for this one's
            os.remove(curve)
        print("fastnn train: no epoch trained: no learning_curve.png", file=sys.stderr)
        plot = False
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


def plot_learning_curve(history, path):
    """Loss and accuracy per epoch (training and validation) in one PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history.epoch) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    try:
        for key, ax in (("loss", ax_loss), ("accuracy", ax_acc)):
            ax.plot(epochs, history[key], label=f"training {key}")
            if f"val_{key}" in history.history:
                ax.plot(epochs, history[f"val_{key}"], label=f"validation {key}")
            ax.set_xlabel("epoch")
            ax.set_ylabel(key)
            ax.legend()
            ax.grid(alpha=0.3)
        ax_loss.set_yscale("log")
        fig.suptitle("fastnn: MLP on handwritten digits")
        fig.tight_layout()
        save_figure(fig, path)
    finally:
        plt.close(fig)
