"""Objectives and what they see of their trial.

An objective is a callable ``objective(trial, **hyperparameters) -> float``: the search space's
names are its keyword arguments, and it returns the value to maximize (a validation accuracy).
``trial`` is a ``Trial``: its number and round, ``report`` for the learning curve (which a pruner
reads), ``callback()`` doing that from ``Sequential.fit``, ``set_attrs`` and ``save_model``::

    def objective(trial, lr, hidden):
        model = build_mlp((hidden,), 10)
        model.fit(X, y, epochs=10, optimizer=Adam(lr), validation_data=(X_val, y_val),
                  callbacks=[trial.callback()], verbose=False)
        return model.evaluate(X_val, y_val)[1]

To run in other processes or on a Dask cluster the objective must be picklable: a module-level
function, or an instance of a module-level class such as ``MLPObjective``.
"""
import inspect
import math
import numbers
import os
import socket

import numba
import optuna

from fastnn.nn.callbacks import Callback
from fastnn.tune.space import SearchSpace

__all__ = ["Trial", "call_objective", "check_objective"]


class Trial:
    """One trial of a search, as its objective sees it.

    optuna_trial: the ``optuna.Trial`` underneath (its ``user_attrs`` hold ``round``, ``index``,
    ``hyperparameters``, ``worker``, ``curve`` and what ``set_attrs`` adds). params: the
    hyperparameters. model_dir: where ``save_model`` writes, or None (then it writes nothing).
    curve: {epoch: value} as reported.
    """

    def __init__(self, optuna_trial, params, model_dir=None):
        self.optuna_trial, self.params, self.model_dir = optuna_trial, dict(params), model_dir
        self.curve = {}
        self._pruning = not isinstance(optuna_trial.study.pruner, optuna.pruners.NopPruner)

    @property
    def number(self):
        return self.optuna_trial.number

    @property
    def round(self):
        return self.optuna_trial.user_attrs["round"]

    def report(self, value, epoch):
        """Record ``value`` (e.g. the validation accuracy) after ``epoch`` (0-based) in ``curve``,
        stored with the trial when it ends (user attribute "curve": [[epoch, value], ...]).
        When the search prunes, the value also goes to Optuna at once (an intermediate value)
        and ``optuna.TrialPruned`` is raised if the pruner finds the trial hopeless. (Without a
        pruner the curve is written once: each write to a database costs milliseconds.)"""
        self.curve[int(epoch)] = float(value)
        if not self._pruning:
            return
        self.optuna_trial.report(float(value), int(epoch))
        if self.optuna_trial.should_prune():
            raise optuna.TrialPruned(f"trial {self.number} pruned after epoch {epoch + 1} "
                                     f"(value {value:.4f})")

    def callback(self, monitor="val_accuracy"):
        """A ``fastnn.nn.Callback`` that reports ``logs[monitor]`` after every epoch of ``fit``
        (and so stops a pruned trial there)."""
        return _Report(self, monitor)

    def set_attrs(self, **attrs):
        """Store JSON-serializable values with the trial (Optuna user attributes)."""
        for key, value in attrs.items():
            self.optuna_trial.set_user_attr(key, value)

    def save_model(self, model):
        """Save ``model`` as ``model_dir/trial-NNNN.npz`` (nothing without a model_dir); returns
        the path or None."""
        if self.model_dir is None:
            return None
        os.makedirs(self.model_dir, exist_ok=True)
        path = os.path.join(self.model_dir, f"trial-{self.number:04d}.npz")
        model.save(path)
        self.set_attrs(model=os.path.abspath(path))
        return path


class _Report(Callback):
    def __init__(self, trial, monitor):
        self.trial, self.monitor = trial, monitor

    def on_epoch_end(self, model, epoch, logs):
        if self.monitor not in logs:
            raise ValueError(f"Trial.callback: {self.monitor!r} is not logged; logged: "
                             f"{', '.join(logs)} (val_* needs validation data)")
        self.trial.report(logs[self.monitor], epoch)


def check_objective(objective, names):
    """Raise before any trial runs if ``objective`` cannot be called as
    ``objective(trial, **{name: value for name in names})``."""
    if not callable(objective):
        raise TypeError(f"search: objective must be callable as objective(trial, "
                        f"**hyperparameters), got {type(objective).__name__}")
    try:
        signature = inspect.signature(objective)
    except (TypeError, ValueError):  # no signature to check (a builtin): let the call decide
        return
    parameters = list(signature.parameters.values())
    try:
        signature.bind(None, **dict.fromkeys(names))
    except TypeError as error:
        keywords = [p.name for p in parameters[1:]
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        unknown = [n for n in names if n not in keywords]
        missing = [p.name for p in parameters[1:] if p.default is p.empty
                   and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in names]
        raise ValueError(f"search: the objective {getattr(objective, '__name__', objective)!r} "
                         f"cannot take the search space's parameters: unknown parameter names "
                         f"{unknown}, required but missing {missing}; it accepts {keywords} "
                         f"({error})") from None


def call_objective(objective, model_dir, round_, index, space, optuna_trial):
    """The objective's value for an ``optuna.Trial``, trial ``index`` of round ``round_`` of a
    search: the hyperparameters are drawn from ``space`` (``SearchSpace.to_dict()``; the
    trial's sampler gives the planned values), then ``objective(Trial, **hyperparameters)`` runs.
    A value that is not a finite number raises (Optuna would record a failed trial)."""
    optuna_trial.set_user_attr("round", round_)
    optuna_trial.set_user_attr("index", index)
    params = SearchSpace.from_dict(space).suggest(optuna_trial)
    optuna_trial.set_user_attr("hyperparameters", params)
    optuna_trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid(),
                                          "numba_threads": numba.get_num_threads()})
    trial = Trial(optuna_trial, params, model_dir)
    try:
        value = objective(trial, **params)
    finally:  # a pruned or failed trial keeps its curve too
        if trial.curve:
            optuna_trial.set_user_attr("curve", sorted(trial.curve.items()))
    if (not isinstance(value, numbers.Real) or isinstance(value, bool)
            or not math.isfinite(value)):
        raise ValueError(f"search: the objective returned {value!r} for trial "
                         f"{optuna_trial.number} with {params}; it must return a finite number")
    return float(value)
