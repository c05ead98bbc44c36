"""Trials per minute of a random search (``fastnn.tune.search``) on the digits: one worker (this
process) against two worker processes sharing an SQLite study, one Numba thread per trial (the
issue's target: two workers >= 1.7x one on a 2-core machine).

Each search runs ``TRIALS[epochs]`` trials of ``MLPObjective(epochs)`` over ``digits_space()``,
for two trial lengths: 20 epochs (the CLI's default, about 0.16 s a trial here, where the
storage and hand-over work of each trial weighs) and 100 epochs (about 0.55 s).
"trials per minute" is the steady rate, read from the trials' times in the study: the trials run
(counting the part of each trial inside the window) from the moment every worker has finished
its first trial (a new worker process first imports fastnn and Optuna, loads the data and the
compiled kernels: about 2-3 s here) to the last trial's end. ``track_speedup_with_startup`` is
the ratio of the whole ``search`` calls, that start-up included (it weighs less the longer the
search). Each search runs ``REPEATS`` times, 1 and 2 workers alternating, and the best rate of
each is kept (the machine is shared). Skipped without Optuna or scikit-learn (the digits):
``setup_cache`` then returns {"skip": why} (asv calls ``setup()`` without the cache argument when
``setup_cache`` returns None, which fails) and ``setup()`` raises NotImplementedError, asv's skip.
"""
import importlib.util
import os
import tempfile
import time

from . import common  # noqa: F401  (this checkout's fastnn on sys.path)

TRIALS = {20: 32, 100: 16}  # epochs per trial: trials per search
REPEATS = 2


def _search(jobs, epochs, n_trials):
    """{"trials": steady trials per minute, "call": trials per minute of the whole ``search``
    call} with ``jobs`` workers."""
    from fastnn.tune import MLPObjective, digits_space, search

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        result = search(MLPObjective(epochs=epochs), digits_space(), n_trials, jobs=jobs,
                        storage=f"sqlite:///{os.path.join(folder, 'tune.db')}", progress=False)
        call = time.perf_counter() - start
        trials = result.study.trials
    first_ends = {}
    for t in sorted(trials, key=lambda t: t.datetime_complete):
        first_ends.setdefault(t.user_attrs["worker"]["pid"], t.datetime_complete)
    warm, end = max(first_ends.values()), max(t.datetime_complete for t in trials)
    # the part of each trial run after ``warm``, as a fraction of the trial
    done = sum(max(0.0, (t.datetime_complete - max(t.datetime_start, warm)).total_seconds())
               / t.duration.total_seconds() for t in trials)
    return {"trials": done / (end - warm).total_seconds() * 60, "call": n_trials / call * 60}


class TuneThroughput:
    """Searches with 1 and 2 workers for each trial length (in ``setup_cache``), then their
    rates."""
    params = list(TRIALS)
    param_names = ["epochs"]
    timeout = 900

    def setup_cache(self):
        missing = [name for name in ("optuna", "sklearn") if importlib.util.find_spec(name) is None]
        if missing:
            return {"skip": f"{', '.join(missing)} not installed: pip install "
                            "'fastnn[tune,examples]' (Optuna, and scikit-learn's digits)"}
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        _search(1, 1, n_trials=2)  # load the data and this process's compiled kernels first
        best = {}
        for epochs, n_trials in TRIALS.items():
            rates = {1: [], 2: []}
            for _ in range(REPEATS):
                for jobs in rates:
                    rates[jobs].append(_search(jobs, epochs, n_trials))
            best[epochs] = {jobs: {key: max(r[key] for r in runs) for key in runs[0]}
                            for jobs, runs in rates.items()}
            print(f"fastnn tune benchmark: {n_trials} trials of {epochs} epochs, trials/min per "
                  f"run: {rates}")
        return best

    def setup(self, rates, epochs):
        if "skip" in rates:
            raise NotImplementedError(rates["skip"])

    def track_trials_per_minute_1_worker(self, rates, epochs):
        return rates[epochs][1]["trials"]
    track_trials_per_minute_1_worker.unit = "trials/min"

    def track_trials_per_minute_2_workers(self, rates, epochs):
        return rates[epochs][2]["trials"]
    track_trials_per_minute_2_workers.unit = "trials/min"

    def track_speedup(self, rates, epochs):
        return rates[epochs][2]["trials"] / rates[epochs][1]["trials"]
    track_speedup.unit = "x"

    def track_speedup_with_startup(self, rates, epochs):
        return rates[epochs][2]["call"] / rates[epochs][1]["call"]
    track_speedup_with_startup.unit = "x"
