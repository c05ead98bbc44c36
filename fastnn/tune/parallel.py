"""Where trials run: this thread, local processes or threads, or a Dask cluster ("caviar").

A trial is one task (``TrialTask``): it opens the study from its storage and runs one trial with
the parameters the search planned, through Optuna's ``Study.optimize``, which records the trial,
its heartbeat and its result in the storage. Tasks go to:

- ``jobs=1``: this thread;
- ``executor="process"`` (the default), ``jobs > 1``: that many local processes, started with
  "spawn" (safe with Numba's OpenMP threads), sharing the storage (an SQLite file or a database);
- ``executor="thread"``: that many threads of this process (the kernels release the GIL, but
  the Python of the training loop does not: processes scale better);
- ``executor=distributed.Client(...)``: the workers of a Dask cluster, through the client's
  ``concurrent.futures`` executor; the cluster's worker threads decide how many run at once.

Every trial runs on one Numba thread (``numba.set_num_threads(1)`` in the thread that runs it, a
per-thread setting), so ``jobs`` trials at once keep ``jobs`` cores busy without oversubscribing
them.
"""
import concurrent.futures
import functools
import multiprocessing
import warnings
from dataclasses import dataclass

import numba
import optuna

from fastnn.tune.storage import open_storage
from fastnn.tune.trial import call_objective

__all__ = ["EXECUTORS", "TrialTask", "Workers"]

EXECUTORS = ("process", "thread")


def _is_dask_client(executor):
    try:
        from distributed import Client
    except ImportError:
        return False
    return isinstance(executor, Client)


class Workers:
    """Runs tasks where ``jobs`` and ``executor`` say (see the module's docstring); a context
    manager that starts the pool on entry and stops it on exit."""

    def __init__(self, jobs=1, executor="process"):
        if not (isinstance(jobs, int) and not isinstance(jobs, bool) and jobs >= 1):
            raise ValueError(f"search: jobs must be an integer >= 1, got {jobs!r}")
        self.dask = _is_dask_client(executor)
        if not self.dask and executor not in EXECUTORS:
            raise ValueError(f"search: executor must be 'process', 'thread' or a "
                             f"distributed.Client, got {executor!r}")
        self.jobs, self.executor, self._pool = jobs, executor, None

    @property
    def remote(self):
        """True when tasks run in other processes (they need a database URL for the storage and a
        picklable objective)."""
        return self.dask or (self.executor == "process" and self.jobs > 1)

    def __enter__(self):
        if self.dask:
            self._pool = self.executor.get_executor(pure=False)  # pure=False: every task runs
        elif self.jobs > 1 and self.executor == "process":
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.jobs, mp_context=multiprocessing.get_context("spawn"))
        elif self.jobs > 1:
            self._pool = concurrent.futures.ThreadPoolExecutor(self.jobs)
        return self

    def __exit__(self, *exc_info):
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def map(self, fn, calls):
        """``fn(*args)`` for each ``args`` of ``calls``; yield the results as they come. The first
        exception cancels the calls not started and is raised."""
        if self._pool is None:
            for args in calls:
                yield fn(*args)
            return
        futures = [self._pool.submit(fn, *args) for args in calls]
        try:
            for future in concurrent.futures.as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


@dataclass(frozen=True)
class TrialTask:
    """A worker's task: run one planned trial of the study ``study_name`` in ``storage`` (a URL,
    or a storage object in this process) on one Numba thread, with Optuna's ``Study.optimize``
    (which records the trial, its heartbeat and its result) and a ``PartialFixedSampler`` that
    gives the planned parameters."""
    study_name: str
    storage: object
    heartbeat: int
    objective: object
    pruner: object
    model_dir: str | None
    verbosity: int

    def __call__(self, round_, index, space, params):
        """Run trial ``index`` of round ``round_``: Optuna parameters ``params`` from ``space``
        (``SearchSpace.to_dict()``); returns its state ("COMPLETE" or "PRUNED") and value.
        Objective errors are raised (the trial is then recorded as failed)."""
        optuna.logging.set_verbosity(self.verbosity)
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            with warnings.catch_warnings():  # experimental since Optuna 2.4, stable in use
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                sampler = optuna.samplers.PartialFixedSampler(params,
                                                              optuna.samplers.RandomSampler())
            study = optuna.load_study(study_name=self.study_name, sampler=sampler,
                                      storage=open_storage(self.storage, self.heartbeat),
                                      pruner=self.pruner)
            finished = []
            study.optimize(functools.partial(call_objective, self.objective, self.model_dir,
                                             round_, index, space), n_trials=1,
                           callbacks=[lambda _, trial: finished.append(trial)])
            return finished[0].state.name, finished[0].value
        finally:
            numba.set_num_threads(threads)
