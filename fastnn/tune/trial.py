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
import hashlib
import inspect
import math
import numbers
import os
import socket
import sys
import time
import urllib.parse

import numba
import optuna

from fastnn.errors import NonFiniteError
from fastnn.nn.callbacks import Callback
from fastnn.tune.models import upload_model
from fastnn.tune.space import SearchSpace

__all__ = ["FAIL_REASON", "DuplicateTrial", "Trial", "TrialFailed", "call_objective",
           "check_objective", "claimed", "finished", "holds", "model_file"]

#: The user attribute holding why a trial failed (a failed trial that has it is finished: the
#: search goes on past it, and a resumed search does not run it again).
FAIL_REASON = "fail_reason"


#: Seconds a trial waits for the trials started just before it to claim their planned trial.
CLAIM_WAIT = 5.0


class DuplicateTrial(Exception):
    """Another process runs the same planned trial (it claimed it first); this trial is
    dropped."""


class TrialFailed(Exception):
    """A trial that failed in a way a search records and goes past: its objective raised
    ``fastnn.NonFiniteError`` (``TrainingDivergedError``: the training diverged) or returned NaN
    or inf. The reason is stored with the trial (user attribute ``FAIL_REASON``) and Optuna marks
    it FAIL."""


class Trial:
    """One trial of a search, as its objective sees it.

    optuna_trial: the ``optuna.Trial`` underneath (its ``user_attrs`` hold ``round``, ``index``,
    ``hyperparameters``, ``worker``, ``curve`` and what ``set_attrs`` adds). params: the
    hyperparameters. model_dir: where ``save_model`` writes, or None; artifact_store: an Optuna
    artifact store that ``save_model`` uploads to instead (``fastnn.tune.models``), or None.
    curve: {epoch: value} as reported.
    """

    def __init__(self, optuna_trial, params, model_dir=None, artifact_store=None):
        self.optuna_trial, self.params, self.model_dir = optuna_trial, dict(params), model_dir
        self.artifact_store = artifact_store
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
        """Keep ``model`` where the search keeps its trials' models (``fastnn.tune.models``):
        uploaded to the artifact store (user attribute ``model_artifact``: its id, returned), or
        saved as ``model_dir/STUDY-trial-NNNN.npz`` (STUDY: the study's name, made safe for a
        file name; searches of several studies can share a model_dir; user attribute ``model``:
        the path, returned); with neither, nothing is kept and None is returned."""
        name = model_file(self.optuna_trial.study.study_name, self.number)
        if self.artifact_store is not None:
            artifact = upload_model(model, self.artifact_store, self.optuna_trial, name)
            self.set_attrs(model_artifact=artifact)
            return artifact
        if self.model_dir is None:
            return None
        os.makedirs(self.model_dir, exist_ok=True)
        path = os.path.join(self.model_dir, name)
        model.save(path)
        self.set_attrs(model=os.path.abspath(path))
        return path


def model_file(study_name, number):
    """The file name of trial ``number``'s model in study ``study_name``: the name
    percent-encoded (no separators, no hidden file), shortened with a hash when long."""
    name = urllib.parse.quote(str(study_name), safe="")
    if name.startswith("."):
        name = "%2E" + name[1:]
    if len(name) > 80:
        name = name[:60] + "~" + hashlib.sha256(str(study_name).encode()).hexdigest()[:16]
    return f"{name}-trial-{number:04d}.npz"


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


def call_objective(objective, model_dir, artifact_store, round_, index, space, optuna_trial):
    """The objective's value for an ``optuna.Trial``, trial ``index`` of round ``round_`` of a
    search: the hyperparameters are drawn from ``space`` (``SearchSpace.to_dict()``; the
    trial's sampler gives the planned values), then ``objective(Trial, **hyperparameters)`` runs
    (``Trial.save_model`` keeps models in ``model_dir`` or ``artifact_store``).
    A trial whose objective raises ``NonFiniteError`` (a diverged training) or ``MemoryError``, or
    returns NaN, inf or an integer too large for a float, raises ``TrialFailed`` with the
    reason stored (the search records it as failed and goes on); a value that is not a number
    raises ValueError (a bug in the objective: the search stops).

    Searches in several processes on one storage (two ``fastnn tune`` at once) may start the same
    planned trial together: each trial first claims (round, index) (user attribute "claim"), and
    the one of lowest number runs it; the others raise ``DuplicateTrial`` and stay out of the
    search's trials (they never get the "round" attribute)."""
    _claim(optuna_trial, round_, index)
    optuna_trial.set_user_attr("round", round_)
    optuna_trial.set_user_attr("index", index)
    params = SearchSpace.from_dict(space).suggest(optuna_trial)
    optuna_trial.set_user_attr("hyperparameters", params)
    optuna_trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid(),
                                          "numba_threads": numba.get_num_threads(),
                                          **_dask_worker()})
    trial = Trial(optuna_trial, params, model_dir, artifact_store)
    try:
        value = objective(trial, **params)
    except NonFiniteError as error:
        _fail(optuna_trial, f"{type(error).__name__}: {error}", error)
    except MemoryError as error:  # a model too large for this machine: the next may fit
        _fail(optuna_trial, f"out of memory (MemoryError{': ' * bool(str(error))}{error})",
              error)
    finally:  # a pruned or failed trial keeps its curve too
        if trial.curve:
            optuna_trial.set_user_attr("curve", sorted(trial.curve.items()))
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ValueError(f"search: the objective returned {value!r} for trial "
                         f"{optuna_trial.number} with {params}; it must return a finite number")
    try:
        value = float(value)
    except OverflowError:  # an int beyond float's range, such as 10**400
        _fail(optuna_trial, f"the objective returned a number too large for a float "
                            f"({str(value)[:20]}...)")
    if not math.isfinite(value):
        _fail(optuna_trial, f"the objective returned {value!r}")
    return value


def _dask_worker():
    """{"dask_worker": its address, "dask_scheduler": its scheduler's} in a Dask worker's task,
    else {} (the search fails a running trial at once when its worker has left the cluster:
    ``Workers.lost``)."""
    # A Dask worker has imported distributed; a local worker process is none, and importing it
    # there would change how that process pickles exceptions (distributed installs tblib's).
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return {}
    try:
        worker = distributed.get_worker()
    except ValueError:
        return {}
    return {"dask_worker": worker.address, "dask_scheduler": worker.scheduler.address}


def finished(trial):
    """Whether a stored trial (an ``optuna.trial.FrozenTrial``) needs no other run: completed,
    pruned, or failed with a reason."""
    State = optuna.trial.TrialState
    return (trial.state in (State.COMPLETE, State.PRUNED)
            or (trial.state == State.FAIL and FAIL_REASON in trial.user_attrs))


def holds(trial):
    """Running or finished: its planned trial needs no other run (a trial failed without a
    reason, by a killed run's stale heartbeat or a bug since fixed, is run again)."""
    return trial.state == optuna.trial.TrialState.RUNNING or finished(trial)


def claimed(trials, round_, index, below=None):
    """The numbers of the ``trials`` (below trial number ``below``, if given) that hold planned
    trial (round_, index)."""
    return [t.number for t in trials if (below is None or t.number < below) and holds(t)
            and (t.user_attrs.get("claim") == [round_, index]
                 or (t.user_attrs.get("round"), t.user_attrs.get("index")) == (round_, index))]


def _claim(optuna_trial, round_, index, wait=CLAIM_WAIT):
    """Claim planned trial (round_, index) for ``optuna_trial``; ``DuplicateTrial`` when a trial
    of lower number holds the same claim. Waits (at most ``wait`` seconds) for the trials of
    lower number still being set up (running, no claim yet) to show theirs."""
    optuna_trial.set_user_attr("claim", [round_, index])
    study, number = optuna_trial.study, optuna_trial.number
    RUNNING = optuna.trial.TrialState.RUNNING
    deadline = time.monotonic() + wait
    while True:
        trials = study.get_trials(deepcopy=False)
        unclaimed = [t for t in trials if t.number < number and t.state == RUNNING
                     and "claim" not in t.user_attrs and "round" not in t.user_attrs]
        if not unclaimed or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    first = claimed(trials, round_, index, below=number)
    if first:
        raise DuplicateTrial(f"trial {number}: planned trial {index} of round {round_} is "
                             f"trial {first[0]}'s")


def _fail(optuna_trial, reason, cause=None):
    reason = " ".join(reason.split())  # one line, whatever the error's message
    if len(reason) > 300:
        reason = reason[:297] + "..."
    optuna_trial.set_user_attr(FAIL_REASON, reason)
    raise TrialFailed(reason) from cause
