"""Hyperparameter search (``pip install 'fastnn[tune]'``: Optuna, Dask).

- Search spaces (``space``): ``Uniform``, ``LogUniform`` (10^r, r uniform), ``OneMinusLogUniform``
  (betas: 1 - beta log-uniform), ``IntRange``, ``Choice``, in a ``SearchSpace``; ``digits_space``,
  the space of ``fastnn tune`` (lr, beta, hidden units, L2 of ``MLPObjective``).
- ``search`` (``search``): random search over Optuna's RandomSampler (the default), grid search
  for comparison (``grid_vs_random``), coarse to fine over ``rounds``, median pruning, trials in
  an Optuna storage (in memory, an SQLite file or a database URL) that a rerun resumes.
- Where trials run (``parallel``): this thread, local processes or threads (``jobs``), or a Dask
  cluster (``executor=distributed.Client(...)``); one Numba thread per trial.
- Objectives (``trial``, ``objectives``): ``objective(trial, **hyperparameters) -> float``;
  ``MLPObjective`` trains an MLP on the digits.
- Babysitting one model (``babysit``): ``Babysitter`` trains epoch by epoch with a live curve,
  hyperparameter changes between epochs, a checkpoint per epoch and resume.
- Plots (``plots``): trials against a hyperparameter with rounds coloured, grid against random,
  learning curves.

This package is library code only: the ``fastnn tune`` command (a search on the digits with its
table, files and plots) is built on it, outside it.
"""
try:
    import optuna  # noqa: F401
except ImportError:
    raise ImportError("fastnn.tune needs Optuna (and Dask for clusters): "
                      "pip install 'fastnn[tune]'") from None

from fastnn.tune.babysit import Babysitter, ControlFile  # noqa: E402
from fastnn.tune.objectives import MLPObjective  # noqa: E402
from fastnn.tune.plots import plot_curve, plot_grid_vs_random, plot_trials  # noqa: E402
from fastnn.tune.search import SearchFailedError, SearchResult, TrialRecord, grid_vs_random, search  # noqa: E402
from fastnn.tune.space import (  # noqa: E402
    Choice,
    Distribution,
    IntRange,
    LogUniform,
    OneMinusLogUniform,
    SearchSpace,
    SpaceError,
    Uniform,
    digits_space,
)
from fastnn.tune.storage import StorageError  # noqa: E402
from fastnn.tune.trial import Trial  # noqa: E402

__all__ = ["Babysitter", "Choice", "ControlFile", "Distribution", "IntRange", "LogUniform",
           "MLPObjective", "OneMinusLogUniform", "SearchFailedError", "SearchResult",
           "SearchSpace", "SpaceError", "StorageError", "Trial", "TrialRecord", "Uniform",
           "digits_space", "grid_vs_random", "plot_curve", "plot_grid_vs_random", "plot_trials",
           "search"]
