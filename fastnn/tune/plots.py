"""Plots of a search and of a babysat training (matplotlib, Agg backend: files, no window).

Hyperparameters are drawn in their sampling scale: a log axis for log-uniform ones, and
1 - beta on a log axis for betas (``OneMinusLogUniform``), as Optuna stores them. Each file is
written whole or not at all (``fastnn.files.save_figure``), in the format of its extension.
"""
import numpy as np

from fastnn.files import save_figure
from fastnn.tune.space import SearchSpace

__all__ = ["plot_curve", "plot_grid_vs_random", "plot_trials"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path):
    try:
        save_figure(fig, path)
    finally:
        plt.close(fig)


def _axis(ax, which, space, name):
    """Label an axis with the Optuna parameter of ``name`` and make it logarithmic if drawn so;
    returns the Optuna parameter's name."""
    key = space.keys()[name]
    dist = space[name]
    if getattr(dist, "log", False):
        getattr(ax, f"set_{which}scale")("log")
    getattr(ax, f"set_{which}label")(key.replace("-", " - ") if key != name else name)
    return key


def plot_trials(result, path, x="lr", y=None):
    """Completed trials of a ``SearchResult``: hyperparameter ``x`` against the value (y=None),
    or against hyperparameter ``y`` with each round's search region drawn as a rectangle;
    coloured by round (coarse to fine shows as later rounds crowding into smaller regions).
    Failed trials (diverged) are grey crosses: at the bottom, or at their (x, y)."""
    plt = _pyplot()
    space = result.spaces[0]
    for name in (x, y):
        if name is not None and name not in space.names:
            raise ValueError(f"plot_trials: {name!r} is not a hyperparameter of the search; it "
                             f"has {', '.join(space.names)}")
    done = [t for t in result.trials if t.state == "COMPLETE"]
    failed = [t for t in result.trials if t.state == "FAIL" and t.reason is not None]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    x_key = _axis(ax, "x", space, x)
    if y is None:
        ax.set_ylabel(result.metric)
    else:
        y_key = _axis(ax, "y", space, y)
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(result.spaces), 1)))
    for r, (round_space, colour) in enumerate(zip(result.spaces, colours), 1):
        trials = [t for t in done if t.round == r]
        ys = [t.value for t in trials] if y is None else [t.params[y_key] for t in trials]
        ax.scatter([t.params[x_key] for t in trials], ys, color=colour, s=28, alpha=0.8,
                   label=f"round {r} ({len(trials)})")
        if y is not None and hasattr(round_space[x], "bounds") and hasattr(round_space[y],
                                                                              "bounds"):
            (x0, x1), (y0, y1) = round_space[x].bounds(), round_space[y].bounds()
            ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color=colour,
                                       linestyle="--", linewidth=1))
    if failed:  # at the bottom (no value), or at their hyperparameters
        xs = [t.params[x_key] for t in failed]
        if y is None:
            ax.scatter(xs, [0.02] * len(xs), marker="x", color="grey", s=30,
                       transform=ax.get_xaxis_transform(), label=f"failed ({len(failed)})")
        else:
            ax.scatter(xs, [t.params[y_key] for t in failed], marker="x", color="grey", s=30,
                       label=f"failed ({len(failed)})")
    if done:
        best = result.best
        ax.scatter([best.params[x_key]], [best.value if y is None else best.params[y_key]],
                   marker="*", s=220, color="crimson", label=f"best ({best.value:.4f})", zorder=3)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{len(done)} trials, {len(result.spaces)} round(s)")
    fig.tight_layout()
    _save(plt, fig, path)


def plot_grid_vs_random(space, comparison, path, x, y):
    """The plans of ``grid_vs_random(space, n, ...)`` (``comparison``) side by side in the
    (x, y) plane, with a tick under the x axis for each distinct x value tried: a grid tries few
    values of every hyperparameter, a random search as many as it has trials."""
    plt = _pyplot()
    space = SearchSpace(space)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharex=True, sharey=True)
    for ax, kind in zip(axes, ("grid", "random")):
        x_key, y_key = _axis(ax, "x", space, x), _axis(ax, "y", space, y)
        plan = comparison[kind]
        ax.scatter([p[x_key] for p in plan], [p[y_key] for p in plan], s=24)
        for value in {p[x_key] for p in plan}:
            ax.axvline(value, ymax=0.04, color="crimson", linewidth=1.5)
        column = ("grid", "random").index(kind)
        n_x, n_y = comparison["distinct"][x][column], comparison["distinct"][y][column]
        ax.set_title(f"{kind}: {len(plan)} trials, {n_x} values of {x}, {n_y} of {y}")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(plt, fig, path)


def plot_curve(history, path, changes=()):
    """A learning curve (a ``fastnn.nn.History``): loss, accuracy and lr per epoch, training and
    validation, with a dotted line where hyperparameters were changed (``changes``: dicts with
    the "epoch" from which they apply)."""
    plt = _pyplot()
    epochs = np.arange(1, len(history.epoch) + 1)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for key, ax in zip(("loss", "accuracy", "lr"), axes):
        for prefix in ("", "val_"):
            if prefix + key in history.history:
                ax.plot(epochs, history[prefix + key], marker=".",
                        label=("validation " if prefix else "training ") + key)
        for change in changes:
            ax.axvline(change["epoch"] + 0.5, color="grey", linestyle=":")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_yscale("log")
    axes[2].set_yscale("log")
    fig.tight_layout()
    _save(plt, fig, path)
