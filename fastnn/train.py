"""The main job, ``python -m fastnn train``: a batch-normalized MLP trained with Adam and
learning-rate decay on the bundled handwritten-digits data, reporting test accuracy and writing
the learning curve (PNG) and the model file."""
import os
import time

import numpy as np

from fastnn import optim
from fastnn.data import load_digits
from fastnn.nn import BatchNorm, Dense, Dropout, ReLU, Sequential
from fastnn.optim import OPTIMIZERS


def build_mlp(hidden, n_classes, dropout=0.0, backend=None, dtype=np.float32):
    """Dense(h, no bias) -> BatchNorm -> ReLU [-> Dropout] per hidden width h, then Dense(n_classes)
    (the Dense bias is dropped before BatchNorm, whose beta replaces it)."""
    layers = []
    for width in hidden:
        layers += [Dense(width, use_bias=False), BatchNorm(), ReLU()]
        if dropout:
            layers.append(Dropout(dropout))
    layers.append(Dense(n_classes, init="glorot"))
    return Sequential(layers, backend=backend, dtype=dtype)


def run(hidden=(256, 128), epochs=30, batch_size=64, optimizer="adam", lr=3e-3, decay=0.05,
        l2=0.0, dropout=0.0, seed=0, backend=None, out="fastnn-run", plot=True, verbose=True):
    """Train on digits, print the test accuracy, save ``out/model.npz`` and
    ``out/learning_curve.png``; returns (model, history, test accuracy)."""
    start = time.perf_counter()
    X_train, y_train, X_test, y_test = load_digits(seed=seed)
    model = build_mlp(hidden, 10, dropout, backend)
    schedule = optim.inverse_time(lr, decay)
    history = model.fit(X_train, y_train, epochs=epochs, batch_size=batch_size,
                        optimizer=OPTIMIZERS[optimizer](lr=lr), l2=l2, schedule=schedule,
                        validation_split=0.1, seed=seed, verbose=verbose)
    test_loss, test_accuracy = model.evaluate(X_test, y_test)
    os.makedirs(out, exist_ok=True)
    model.save(os.path.join(out, "model.npz"))
    if plot:
        plot_learning_curve(history, os.path.join(out, "learning_curve.png"))
    print(f"digits: {X_train.shape[0]} training and {X_test.shape[0]} test images; layers "
          f"{'-'.join(map(str, (64, *hidden, 10)))}; {optimizer} lr {lr} decay {decay}; "
          f"backend {model.backend or 'default'}")
    print(f"test accuracy {test_accuracy:.4f}, test loss {test_loss:.4f} after "
          f"{len(history.epoch)} epochs in {time.perf_counter() - start:.1f} s "
          f"(including compilation); model and learning curve in {out}/")
    return model, history, test_accuracy


def plot_learning_curve(history, path):
    """Loss and accuracy per epoch (training and validation) in one PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history.epoch) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
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
    fig.savefig(path, dpi=100)
    plt.close(fig)
