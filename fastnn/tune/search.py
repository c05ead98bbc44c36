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

Why random beats grid (``grid_vs_random``): with a budget of n trials over d hyperparameters a
grid tries only n^(1/d) values of each, the most important one included, a random search n.
"""
import math
import numbers
import pickle
import time
import warnings
from dataclasses import dataclass, field

import optuna
from tqdm.auto import tqdm

from fastnn.nn import load
from fastnn.tune.parallel import TrialTask, Workers
from fastnn.tune.space import SearchSpace, derive_seed
from fastnn.tune.storage import open_storage
from fastnn.tune.trial import check_objective

__all__ = ["SAMPLERS", "SearchResult", "TrialRecord", "grid_vs_random", "search"]

SAMPLERS = ("random", "grid")
#: The study's user attribute holding the search's settings (checked when resuming).
SETTINGS = "fastnn.tune"
#: The study's user attribute holding round r's search space (``.format(r)``).
ROUND_SPACE = "fastnn.round.{}"


@dataclass(frozen=True)
class TrialRecord:
    """One trial as stored: ``state`` is Optuna's (COMPLETE, PRUNED, FAIL, RUNNING),
    ``value`` the objective's (None unless COMPLETE), ``hyperparameters`` what the objective got,
    ``params`` Optuna's parameters (in their sampling units: "1-beta" for a beta), ``seconds`` the
    duration, ``curve`` {epoch: value reported}, ``attrs`` the other user attributes (``worker``,
    ``model``, what the objective stored)."""
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

    @classmethod
    def from_optuna(cls, trial):
        attrs = dict(trial.user_attrs)
        return cls(number=trial.number, round=attrs.pop("round"), index=attrs.pop("index"),
                   state=trial.state.name, value=trial.value,
                   hyperparameters=attrs.pop("hyperparameters", {}), params=dict(trial.params),
                   seconds=trial.duration.total_seconds() if trial.duration else None,
                   curve={int(e): v for e, v in attrs.pop("curve", [])}, attrs=attrs)


class SearchResult:
    """The outcome of ``search``: ``study`` (the Optuna study), ``spaces`` (the search space of each
    round), ``trials`` (a ``TrialRecord`` per trial, in order), ``best``, ``top(k)``,
    ``table(k)`` and ``best_model()``."""

    def __init__(self, study, metric="val_accuracy"):
        self.study, self.metric = study, metric
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
    def best(self):
        top = self.top(1)
        if not top:
            raise ValueError("SearchResult.best: no trial has completed")
        return top[0]

    def best_model(self):
        """The best trial's model, loaded from the file its objective saved."""
        path = self.best.attrs.get("model")
        if path is None:
            raise ValueError(f"SearchResult.best_model: trial {self.best.number} saved no model "
                             "(pass model_dir to search, and call trial.save_model)")
        return load(path)

    def table(self, k=10):
        """The top ``k`` trials as a text table: rank, trial, round, hyperparameters, value and
        seconds."""
        names = self.spaces[0].names if self.spaces else []
        headers = ["rank", "trial", "round", *names, self.metric, "seconds"]
        rows = [[str(rank), str(t.number), str(t.round),
                 *(_format(t.hyperparameters.get(n)) for n in names), f"{t.value:.4f}",
                 f"{t.seconds:.1f}"] for rank, t in enumerate(self.top(k), 1)]
        widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
        return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths))
                         for row in [headers, *rows])

    def counts(self):
        """{state: number of trials}."""
        counts = {}
        for t in self.trials:
            counts[t.state] = counts.get(t.state, 0) + 1
        return counts


def _format(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _count(name, value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"search: {name} must be an integer >= 1, got {value!r}")
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
           heartbeat=10, model_dir=None, metric="val_accuracy", progress=True):
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
    heartbeat: seconds between the heartbeats of running trials in a database. model_dir: where
    objectives save their models (a path all workers can reach). metric: the value's name in
    tables. progress: a progress bar over trials.
    """
    space = SearchSpace(space)
    n_trials, rounds = _count("n_trials", n_trials), _count("rounds", rounds)
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
    heartbeat = _count("heartbeat", heartbeat)
    check_objective(objective, space.names)
    pruner = _pruner(prune)
    workers = Workers(jobs, executor)
    if workers.remote:
        if not isinstance(storage, str):
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

    optuna_storage = open_storage(storage, heartbeat)
    study = optuna.create_study(storage=optuna_storage, study_name=study_name,
                                direction="maximize", load_if_exists=True)
    settings = {"space": space.to_dict(), "n_trials": n_trials, "rounds": rounds,
                "sampler": sampler, "keep": keep, "margin": margin, "seed": seed}
    _check_settings(study, settings, storage)
    task = TrialTask(study.study_name, storage if workers.remote else optuna_storage, heartbeat,
                     objective, pruner, model_dir, optuna.logging.get_verbosity())
    budgets = [n_trials // rounds + (r < n_trials % rounds) for r in range(rounds)]
    finished = _planned(study, (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    bar = tqdm(total=n_trials, initial=len(finished), unit="trial", disable=not progress)
    bar.best = max((t.value for t in finished if t.value is not None), default=None)
    try:
        with workers:
            for r in range(1, rounds + 1):
                space_r = _round_space(study, r, keep, margin)
                plan = space_r.sample(budgets[r - 1], derive_seed(seed, r), sampler)
                bar.total -= budgets[r - 1] - len(plan)
                _run_round(study, r, space_r, plan, workers, task, bar, heartbeat)
    finally:
        bar.close()
    return SearchResult(study, metric)


def _planned(study, states=None):
    return [t for t in study.get_trials(deepcopy=False, states=states) if "round" in t.user_attrs]


def _check_settings(study, settings, storage):
    stored = study.user_attrs.get(SETTINGS)
    if stored is None:
        study.set_user_attr(SETTINGS, settings)
        study.set_user_attr(ROUND_SPACE.format(1), settings["space"])
        return
    changed = [f"{key}={stored.get(key)!r} (now {value!r})" for key, value in settings.items()
               if stored.get(key) != value]
    if changed:
        raise ValueError(f"search: study {study.study_name!r} in {storage!r} was started with "
                         f"other settings: {'; '.join(changed)}; to resume it pass the same "
                         f"settings, or pass another study_name for a new search")


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
        raise RuntimeError(f"search: no trial of rounds 1 to {r - 1} completed (all pruned or "
                           f"failed): nothing to zoom into for round {r}")
    top = done[:max(1, math.ceil(keep * len(done)))]
    space = previous.zoom([t.params for t in top], margin)
    study.set_user_attr(key, space.to_dict())
    return space


def _run_round(study, r, space, plan, workers, task, bar, heartbeat):
    """Run the planned trials of round r that no trial holds (running or finished), and wait for
    the trials still running from another run; until every planned trial has finished. A trial
    of a killed run is failed by Optuna's heartbeat check, and so run again."""
    State = optuna.trial.TrialState
    announced = False
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        trials = [t for t in _planned(study) if t.user_attrs["round"] == r]
        held = {t.user_attrs["index"] for t in trials if t.state != State.FAIL}
        missing = [i for i in range(len(plan)) if i not in held]
        running = sum(t.state == State.RUNNING for t in trials)
        if missing:
            calls = [(r, i, space.to_dict(), plan[i]) for i in missing]
            for state, value in workers.map(task, calls):
                if state == "COMPLETE" and (bar.best is None or value > bar.best):
                    bar.best = value
                bar.update(1)
                bar.set_postfix(round=r, best="-" if bar.best is None else f"{bar.best:.4f}")
        elif running:
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
