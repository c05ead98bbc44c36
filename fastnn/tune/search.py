"""Random search (the default), grid search (for comparison) and coarse to fine, over Optuna.

``search`` runs ``rounds`` rounds of trials. Each round, it plans its share of the ``n_trials``
with Optuna's ``RandomSampler(seed)`` (or ``GridSampler``: a grid with at most that many points),
and runs the planned trials in the Optuna study (in the storage) where ``jobs`` and ``executor``
say (``fastnn.tune.parallel``). After a round it zooms in: the best ``keep`` fraction
of the completed trials so far defines the next round's ranges, each in its own sampling scale
(``SearchSpace.zoom``). The round of every trial is stored with it.

Everything lives in the storage: the settings, each round's search space, each trial's
hyperparameters, learning curve, value, duration and model file. Rerunning the same search with
the same ``study_name`` resumes it: finished trials are kept, the trials of a killed run are run
again (after 2 x ``heartbeat`` seconds without a heartbeat), and the study completes. Same seed,
same plan, whatever the number of workers.

A trial whose training diverges (the objective raises ``fastnn.NonFiniteError``, e.g.
``TrainingDivergedError``) or whose objective returns NaN or inf is recorded as failed (Optuna's
FAIL) with the reason (``TrialRecord.reason``, shown by ``table`` and in ``fastnn tune``'s CSV),
and the search goes on; the best trial is the best completed one. Any other exception from the
objective (a bug) stops the search. The search space is checked against the objective before
the first trial when the objective has a ``check_space(space)`` method (``MLPObjective`` has).

Why random beats grid (``grid_vs_random``): with a budget of n trials over d hyperparameters a
grid tries only n^(1/d) values of each, the most important one included, a random search n.
"""
import math
import numbers
import os
import pickle
import time
import warnings
from dataclasses import dataclass, field

import optuna
from tqdm.auto import tqdm

from fastnn.nn import load
from fastnn.tune.models import artifact_store_for, download_model
from fastnn.tune.parallel import TrialTask, Workers
from fastnn.tune.space import SearchSpace, derive_seed
from fastnn.tune.storage import describe, in_memory, open_storage
from fastnn.tune.trial import FAIL_REASON, check_objective, finished, holds

__all__ = ["SAMPLERS", "SearchFailedError", "SearchResult", "SettingsError", "TrialRecord",
           "grid_vs_random", "outcome_summary", "positive_count", "search"]

SAMPLERS = ("random", "grid")
#: The study's user attribute holding the search's settings (checked when resuming).
SETTINGS = "fastnn.tune"
#: The study's user attribute holding round r's search space (``.format(r)``).
ROUND_SPACE = "fastnn.round.{}"


class SettingsError(ValueError):
    """A stored study resumed with other settings; ``names`` are the settings that differ."""

    def __init__(self, names, message):
        super().__init__(message)
        self.names = list(names)


class SearchFailedError(RuntimeError):
    """No trial of a search completed (every one failed or was pruned): there is no best trial,
    and no completed trial to zoom into for the next round."""


@dataclass(frozen=True)
class TrialRecord:
    """One trial as stored: ``state`` is Optuna's (COMPLETE, PRUNED, FAIL, RUNNING),
    ``value`` the objective's (None unless COMPLETE), ``hyperparameters`` what the objective got,
    ``params`` Optuna's parameters (in their sampling units: "1-beta" for a beta), ``seconds`` the
    duration, ``curve`` {epoch: value reported}, ``attrs`` the other user attributes (``worker``,
    ``model``, what the objective stored), ``reason`` why a FAIL trial failed (None for a trial
    of a killed run, which a resumed search runs again)."""
    number: int
    round: int
    index: int
    state: str
    value: float | None
    hyperparameters: dict
    params: dict
    seconds: float | None
    curve: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)
    reason: str | None = None

    @classmethod
    def from_optuna(cls, trial):
        attrs = dict(trial.user_attrs)
        return cls(number=trial.number, round=attrs.pop("round"), index=attrs.pop("index"),
                   state=trial.state.name, value=trial.value,
                   hyperparameters=attrs.pop("hyperparameters", {}), params=dict(trial.params),
                   seconds=trial.duration.total_seconds() if trial.duration else None,
                   curve={int(e): v for e, v in attrs.pop("curve", [])},
                   reason=attrs.pop(FAIL_REASON, None), attrs=attrs)


class SearchResult:
    """The outcome of ``search``: ``study`` (the Optuna study), ``spaces`` (the search space of each
    round), ``trials`` (a ``TrialRecord`` per trial, in order), ``best``, ``top(k)``,
    ``table(k)`` and ``best_model()``."""

    def __init__(self, study, metric="val_accuracy", artifact_store=None):
        self.study, self.metric, self.artifact_store = study, metric, artifact_store
        attrs = study.user_attrs
        self.spaces = [SearchSpace.from_dict(attrs[ROUND_SPACE.format(r)])
                       for r in range(1, attrs[SETTINGS]["rounds"] + 1)
                       if ROUND_SPACE.format(r) in attrs]
        self.trials = [TrialRecord.from_optuna(t) for t in study.get_trials()
                       if "round" in t.user_attrs]

    def top(self, k=10):
        """The ``k`` completed trials of highest value, best first."""
        done = [t for t in self.trials if t.state == "COMPLETE"]
        return sorted(done, key=lambda t: (-t.value, t.number))[:k]

    @property
    def failed(self):
        """The trials that failed with a reason (diverged, or a NaN value), in order."""
        return [t for t in self.trials if t.state == "FAIL" and t.reason is not None]

    @property
    def best(self):
        """The completed trial of highest value; SearchFailedError when none completed."""
        top = self.top(1)
        if not top:
            raise SearchFailedError(f"SearchResult.best: no trial has completed "
                                    f"({outcome_summary(self.trials)})")
        return top[0]

    def best_model(self):
        """The best trial's model, loaded from where its objective kept it
        (``Trial.save_model``): the search's artifact store, or its file."""
        best = self.best
        artifact = best.attrs.get("model_artifact")
        if artifact is not None:
            if self.artifact_store is None:
                raise ValueError(f"SearchResult.best_model: trial {best.number} uploaded its "
                                 f"model to an artifact store (id {artifact}); this result has "
                                 "none (pass the search's artifact_store)")
            return download_model(self.artifact_store, artifact)
        path = best.attrs.get("model")
        if path is None:
            raise ValueError(f"SearchResult.best_model: trial {best.number} saved no model "
                             "(pass model_dir or artifact_store to search, and call "
                             "trial.save_model)")
        return load(path)

    def table(self, k=10):
        """The top ``k`` trials as a text table: rank, trial, round, hyperparameters, value and
        seconds; then the failed trials (at most ``k``), each with its reason."""
        names = self.spaces[0].names if self.spaces else []
        headers = ["rank", "trial", "round", *names, self.metric, "seconds"]
        rows = [[str(rank), str(t.number), str(t.round),
                 *(_format(t.hyperparameters.get(n)) for n in names), f"{t.value:.4f}",
                 f"{t.seconds:.1f}"] for rank, t in enumerate(self.top(k), 1)]
        widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
        lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths))
                 for row in [headers, *rows]]
        if not rows:
            lines.append("(no trial has completed)")
        failed = self.failed
        if failed:
            lines.append(f"failed trials ({len(failed)} of {len(self.trials)}):")
            lines += [f"  trial {t.number} (round {t.round}; "
                      f"{', '.join(f'{n}={_format(t.hyperparameters.get(n))}' for n in names)}): "
                      f"{t.reason}" for t in failed[:k]]
            if len(failed) > k:
                lines.append(f"  ... and {len(failed) - k} more")
        return "\n".join(lines)

    def counts(self):
        """{state: number of trials}."""
        counts = {}
        for t in self.trials:
            counts[t.state] = counts.get(t.state, 0) + 1
        return counts


def _format(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def outcome_summary(trials):
    """"3 failed, 1 pruned; trial 0 failed: <reason>" (what happened to trials that did not
    complete)."""
    counts = {}
    for t in trials:
        counts[t.state] = counts.get(t.state, 0) + 1
    text = ", ".join(f"{n} {state.lower()}" for state, n in sorted(counts.items())) or "no trials"
    failed = [t for t in trials if t.state == "FAIL" and t.reason is not None]
    if failed:
        text += f"; trial {failed[0].number} failed: {failed[0].reason}"
    return text


def _real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


#: The most trials a search plans (its plan is made up front), and the longest heartbeat (s).
MAX_TRIALS = 10**6
MAX_HEARTBEAT = 86400


def positive_count(name, value, high=None):
    """``value`` as an int >= 1 (and <= ``high`` when given); a ValueError naming ``name``
    otherwise (a count of trials, rounds or seconds)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"search: {name} must be an integer >= 1, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"search: {name} must be an integer in [1, {high}], got {value!r}")
    return int(value)


def _pruner(prune):
    if prune is False or prune is None:
        return optuna.pruners.NopPruner()
    if prune is True:
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=4)
    if isinstance(prune, optuna.pruners.BasePruner):
        return prune
    raise TypeError(f"search: prune must be True (a MedianPruner), False or an optuna "
                    f"pruner, got {prune!r}")


def search(objective, space, n_trials, *, rounds=1, sampler="random", keep=0.25, margin=0.1,
           seed=0, storage=None, study_name=None, jobs=1, executor="process", prune=False,
           heartbeat=10, model_dir=None, artifact_store=None, metric="val_accuracy",
           progress=True):
    """Maximize ``objective`` over ``space`` with ``n_trials`` trials; returns a SearchResult.

    objective: ``objective(trial, **hyperparameters) -> float`` (see ``fastnn.tune.trial``; e.g.
    ``MLPObjective``). space: a ``SearchSpace`` or a dict of name: distribution.
    rounds: coarse to fine, the trials split evenly over the rounds (the first rounds get one
    more when they do not divide). sampler: "random" (Optuna's RandomSampler) or "grid" (Optuna's
    GridSampler over ``SearchSpace.grid``, at most each round's share of the trials).
    keep: the fraction of the best completed trials (at least one) that the next round's ranges
    are fitted to; margin: how much wider, as a fraction of the current width on each side.
    seed: the plans' seed (round r draws with ``derive_seed(seed, r)``).
    storage: None (in memory), a database URL ("sqlite:///tune.db", "postgresql://..."), or an
    Optuna storage; study_name: the study in it (pass one to resume a search).
    jobs, executor: how many trials run at once and where: "process" (local processes, the
    default), "thread", or a ``distributed.Client`` (then its workers' threads decide how many,
    and jobs is not used); see ``fastnn.tune.parallel``. Processes and Dask need a URL.
    prune: True for Optuna's MedianPruner(n_startup_trials=5, n_warmup_steps=4) on the reported
    learning curves (once 5 trials have completed, a trial whose value after epoch 5 or later is
    below the median of the completed trials' at that epoch stops), or an Optuna pruner.
    heartbeat: seconds between the heartbeats of running trials in a database. model_dir: the
    folder where objectives save their models (``Trial.save_model``; a path all workers and this
    process reach). artifact_store: where they upload them instead: "storage" (the search's
    database, which every worker reaches already) or an Optuna artifact store
    (``fastnn.tune.models``). ``SearchResult.best_model()`` loads the best from either.
    metric: the value's name in tables. progress: a progress bar over trials.
    """
    space = SearchSpace(space)
    n_trials = positive_count("n_trials", n_trials, MAX_TRIALS)
    rounds = positive_count("rounds", rounds)
    if rounds > n_trials:
        raise ValueError(f"search: rounds must be <= n_trials (each round runs trials), got "
                         f"rounds={rounds}, n_trials={n_trials}")
    if sampler not in SAMPLERS:
        raise ValueError(f"search: sampler must be one of {SAMPLERS}, got {sampler!r}")
    if not (_real(keep) and 0 < keep <= 1):
        raise ValueError(f"search: keep must be a number in (0, 1], got {keep!r}")
    if not (_real(margin) and 0 < margin < math.inf):
        raise ValueError(f"search: margin must be a number > 0, got {margin!r}")
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"search: seed must be an integer >= 0, got {seed!r}")
    if seed >= 2**32:
        raise ValueError(f"search: seed must be an integer < 2**32, got {seed!r}")
    heartbeat = positive_count("heartbeat", heartbeat, MAX_HEARTBEAT)
    check_objective(objective, space.names)
    check_space = getattr(objective, "check_space", None)
    if callable(check_space):
        check_space(space)  # every value the space allows must suit the objective
    pruner = _pruner(prune)
    if model_dir is not None and artifact_store is not None:
        raise ValueError(f"search: pass model_dir or artifact_store (where the models are "
                         f"kept), not both; got {model_dir!r} and {artifact_store!r}")
    artifact_store = artifact_store_for(artifact_store, storage)
    if model_dir is not None:  # the same folder for workers that start elsewhere
        model_dir = os.path.abspath(model_dir)
    workers = Workers(jobs, executor)
    if workers.remote:
        if not isinstance(storage, str) or in_memory(storage):
            raise ValueError(f"search: trials in other processes (jobs > 1 with executor="
                             f"'process', or Dask) need storage to be a database URL that every "
                             f"worker opens ('sqlite:///tune.db' on one machine, "
                             f"'postgresql://...' for many), got {storage!r}")
        try:
            pickle.dumps(objective)
        except Exception as error:
            raise TypeError(f"search: the objective must be picklable to run in other processes "
                            f"(a module-level function or class instance; or executor='thread'): "
                            f"{type(error).__name__}: {error}") from None

    if in_memory(storage) and jobs > 1:
        raise ValueError(f"search: storage {storage!r} is an in-memory database, which trials "
                         f"in other threads or processes cannot share; use a file "
                         f"('sqlite:///tune.db'), or storage=None, or jobs=1")
    optuna_storage = open_storage(storage, heartbeat)
    study = optuna.create_study(storage=optuna_storage, study_name=study_name,
                                direction="maximize", load_if_exists=True)
    settings = {"space": space.to_dict(), "n_trials": n_trials, "rounds": rounds,
                "sampler": sampler, "keep": keep, "margin": margin, "seed": seed}
    if callable(getattr(objective, "settings", None)):
        settings["objective"] = objective.settings()  # e.g. its epochs: trials must agree
    _check_settings(study, settings, storage)
    task = TrialTask(study.study_name, storage if workers.remote else optuna_storage, heartbeat,
                     objective, pruner, model_dir, artifact_store, optuna.logging.get_verbosity())
    budgets = [n_trials // rounds + (r < n_trials % rounds) for r in range(rounds)]
    done = [t for t in _planned(study) if finished(t)]
    bar = tqdm(total=n_trials, initial=len(done), unit="trial", disable=not progress)
    bar.best = max((t.value for t in done if t.value is not None), default=None)
    try:
        with workers:
            for r in range(1, rounds + 1):
                space_r = _round_space(study, r, keep, margin)
                plan = space_r.sample(budgets[r - 1], derive_seed(seed, r), sampler)
                bar.total -= budgets[r - 1] - len(plan)
                _run_round(study, r, space_r, plan, workers, task, bar, heartbeat)
    finally:
        bar.close()
    return SearchResult(study, metric, artifact_store)


def _planned(study, states=None):
    return [t for t in study.get_trials(deepcopy=False, states=states) if "round" in t.user_attrs]


def _check_settings(study, settings, storage):
    stored = study.user_attrs.get(SETTINGS)
    if stored is None:
        study.set_user_attr(SETTINGS, settings)
        study.set_user_attr(ROUND_SPACE.format(1), settings["space"])
        return
    names = [key for key, value in settings.items()
             if stored.get(key) != value and (key in stored or key != "objective")]
    if names:  # (a study stored before objectives had settings is not checked for them)
        changed = [f"{key}={stored.get(key)!r} (now {settings[key]!r})" for key in names]
        raise SettingsError(names, f"search: study {study.study_name!r} in "
                                   f"{describe(storage)} was started with other settings: "
                                   f"{'; '.join(changed)}; to resume it pass the same settings, "
                                   f"or give a new search another study name")


def _round_space(study, r, keep, margin):
    """Round r's search space: stored in the study, or zoomed from round r - 1's onto the best
    ``keep`` fraction of the completed trials so far (then stored)."""
    key = ROUND_SPACE.format(r)
    stored = study.user_attrs.get(key)
    if stored is not None:
        return SearchSpace.from_dict(stored)
    previous = SearchSpace.from_dict(study.user_attrs[ROUND_SPACE.format(r - 1)])
    done = sorted(_planned(study, (optuna.trial.TrialState.COMPLETE,)), key=lambda t: -t.value)
    if not done:
        summary = outcome_summary([TrialRecord.from_optuna(t) for t in _planned(study)])
        raise SearchFailedError(f"search: no trial of rounds 1 to {r - 1} completed ({summary}): "
                                f"nothing to zoom into for round {r}")
    top = done[:max(1, math.ceil(keep * len(done)))]
    space = previous.zoom([t.params for t in top], margin)
    study.set_user_attr(key, space.to_dict())
    return space


def _run_round(study, r, space, plan, workers, task, bar, heartbeat):
    """Run the planned trials of round r that no trial holds (running or finished), and wait for
    the trials still running from another run; until every planned trial has finished. A trial
    of a killed run is failed by Optuna's heartbeat check, and so run again; on a Dask cluster,
    a trial whose worker has left the cluster is failed at once (``Workers.lost``)."""
    State = optuna.trial.TrialState
    announced = False
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        for number in workers.lost(_planned(study, (State.RUNNING,))):
            study.tell(number, state=State.FAIL, skip_if_finished=True)  # its worker is gone
        trials = [t for t in _planned(study) if t.user_attrs["round"] == r]
        held = {t.user_attrs["index"] for t in trials if holds(t)}
        missing = [i for i in range(len(plan)) if i not in held]
        running = sum(t.state == State.RUNNING for t in trials)
        if missing:
            calls = [(r, i, space.to_dict(), plan[i]) for i in missing]
            for number, state, value, reason in workers.map(task, calls):
                if state == "DUPLICATE":  # run by another process: counted when it finishes
                    continue
                if state == "COMPLETE" and (bar.best is None or value > bar.best):
                    bar.best = value
                if state == "FAIL" and not bar.disable:
                    bar.write(f"trial {number} failed: {reason}")
                bar.update(1)
                bar.set_postfix(round=r, best="-" if bar.best is None else f"{bar.best:.4f}")
        elif running:
            bar.n = min(bar.total, sum(finished(t) for t in _planned(study)))
            bar.refresh()
            if not announced:
                bar.write(f"round {r}: waiting for {running} trial(s) running elsewhere, or left "
                          f"by a killed run (re-run after {2 * heartbeat} s without heartbeat)")
                announced = True
            time.sleep(heartbeat / 2)
        else:
            return


def grid_vs_random(space, n_trials, seed=0):
    """The plans of a grid search and a random search with the same budget of ``n_trials`` (lists
    of Optuna parameters), and how many distinct values each tries of every hyperparameter:
    {"grid": plan, "random": plan, "distinct": {name: (grid count, random count)}}."""
    space = SearchSpace(space)
    plans = {"grid": space.sample(n_trials, seed, "grid"),
             "random": space.sample(n_trials, seed, "random")}
    plans["distinct"] = {name: tuple(len({p[key] for p in plans[s]}) for s in ("grid", "random"))
                         for name, key in space.keys().items()}
    return plans
