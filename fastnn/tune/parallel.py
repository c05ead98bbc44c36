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

Local worker processes end when the process that started them dies (killed with SIGKILL, say):
on Linux the kernel sends them SIGKILL (``prctl(PR_SET_PDEATHSIG)``), and everywhere a watchdog
thread in each worker polls its parent's id.

Every trial runs on one Numba thread (``numba.set_num_threads(1)`` in the thread that runs it, a
per-thread setting), so ``jobs`` trials at once keep ``jobs`` cores busy without oversubscribing
them.
"""
import concurrent.futures
import ctypes
import ctypes.util
import functools
import logging
import multiprocessing
import os
import pickle
import re
import signal
import sys
import threading
import time
import warnings
import weakref
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import numba
import optuna

from fastnn.tune.storage import open_storage
from fastnn.tune.trial import FAIL_REASON, DuplicateTrial, TrialFailed, call_objective, claimed

__all__ = ["EXECUTORS", "TrialTask", "WorkerDiedError", "Workers"]

EXECUTORS = ("process", "thread")
#: Seconds between a worker's checks that its parent is alive (the portable fallback).
WATCHDOG_INTERVAL = 0.5


class WorkerDiedError(RuntimeError):
    """A local worker process died in the middle of a trial (killed, or out of memory)."""


class _HandledFailures(logging.Filter):
    """Optuna logs every failed trial with its traceback, then its value; a ``TrialFailed`` (a
    diverged trial, a NaN value) is reported by the search in one line instead."""

    def __init__(self):
        super().__init__()
        self._dropped = set()  # trial numbers whose "failed with value" line is still to come

    def filter(self, record):
        match = re.match(r"Trial (\d+) failed with (parameters|value)", str(record.msg))
        if match is None:
            return True
        if record.exc_info and record.exc_info[0] is not None \
                and issubclass(record.exc_info[0], (TrialFailed, DuplicateTrial)):
            self._dropped.add(match[1])
            return False
        if match[2] == "value" and match[1] in self._dropped:
            self._dropped.discard(match[1])
            return False
        return True


logging.getLogger("optuna.study._optimize").addFilter(_HandledFailures())


def _exit_with_parent(parent):
    """Worker initializer: end this process when ``parent`` (the pid of the process that started
    it) dies, so that killing a search leaves no workers behind. Ctrl-C is the parent's to
    handle (it ends the workers): workers ignore SIGINT (inherited from the moment they are
    started, see ``Workers.map``)."""
    with _suppress_errors():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _kill_with_parent()
    _watch_parent(parent)


class _suppress_errors:
    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        return kind is not None and issubclass(kind, (ValueError, OSError, AttributeError))


class _sigint_ignored:
    """Block SIGINT in this thread while workers are started, so that they start with SIGINT
    blocked (the signal mask is inherited through fork and exec): a Ctrl-C while a worker starts
    up does not raise KeyboardInterrupt in it. This process still gets it (once unblocked, or
    in another thread)."""

    def __enter__(self):
        self._previous = None
        if hasattr(signal, "pthread_sigmask"):
            self._previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        return self

    def __exit__(self, *exc_info):
        if self._previous is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._previous)


def _main_unguarded():
    """Whether this process's main module is a script without ``if __name__ == "__main__":``
    (which the "spawn" workers re-run when they import it); False when that cannot be told."""
    main = sys.modules.get("__main__")
    spec_name = getattr(getattr(main, "__spec__", None), "name", "") or ""
    path = getattr(main, "__file__", None)
    if not path or spec_name.endswith("__main__") and spec_name != "__main__":
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            source = f.read()
    except OSError:
        return False
    return not re.search(r"""__name__\s*==\s*['"]__main__['"]|['"]__main__['"]\s*==\s*__name__""",
                         source)


#: Why workers die at once in a script without the main-module guard.
UNGUARDED = ("search: the worker processes could not start: a script that runs a search with "
             "jobs > 1 (executor='process') must call it under `if __name__ == \"__main__\":` "
             "(each worker is a new Python process that imports the main module, which must not "
             "start a search again); or use executor='thread'")


def _kill_with_parent():
    """Linux: the kernel sends this process SIGKILL when its parent dies (PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _watch_parent(parent, interval=WATCHDOG_INTERVAL):
    """Everywhere: a daemon thread that ends this process (``os._exit``) once its parent is no
    longer ``parent`` (an orphan is adopted by another process)."""
    if os.getppid() != parent:  # it died already
        os._exit(1)

    def watch():
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="fastnn-parent-watchdog", daemon=True).start()


def _is_dask_client(executor):
    try:
        from distributed import Client
    except ImportError:
        return False
    return isinstance(executor, Client)


@functools.lru_cache(maxsize=64)
def _resolved(address):
    """A Dask address with its host name resolved (tcp://localhost:8786 and tcp://127.0.0.1:8786
    are one scheduler), or the address itself when it cannot be resolved (None stays None)."""
    if address is None:
        return None
    from distributed.comm import resolve_address

    try:
        return resolve_address(address)
    except (OSError, ValueError):
        return address


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
            if getattr(multiprocessing.current_process(), "_inheriting", False):
                # a worker importing an unguarded main module, which starts a search again
                raise SystemExit(f"fastnn worker {os.getpid()}: {UNGUARDED}")
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.jobs, mp_context=multiprocessing.get_context("spawn"),
                initializer=_exit_with_parent, initargs=(os.getpid(),))
        elif self.jobs > 1:
            self._pool = concurrent.futures.ThreadPoolExecutor(self.jobs)
        return self

    def __exit__(self, kind, error, tb):
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if kind is None:
            pool.shutdown(wait=True)
        elif isinstance(pool, concurrent.futures.ProcessPoolExecutor):
            _stop_processes(pool)
        elif self.dask:  # the tasks are cancelled; running trials end on their workers
            pool.shutdown(wait=False)
        else:  # threads cannot be stopped: the running trials end, the others are cancelled
            pool.shutdown(wait=True, cancel_futures=True)

    def lost(self, trials):
        """The numbers of the running ``trials`` (Optuna's ``FrozenTrial``) whose worker is known
        to be gone: on a Dask cluster, those that started on a worker of this cluster that its
        scheduler no longer has (killed, or its machine lost; a restarted worker has a new
        address). Elsewhere none: the heartbeats find them, after 2 x heartbeat seconds."""
        if not self.dask:
            return []
        scheduler = _resolved(self.executor.scheduler.address)
        running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING
                   and _resolved(t.user_attrs.get("worker", {}).get("dask_scheduler"))
                   == scheduler]
        if not running:
            return []
        alive = set(self.executor.scheduler_info()["workers"])
        return [t.number for t in running if t.user_attrs["worker"]["dask_worker"] not in alive]

    def map(self, fn, calls):
        """``fn(*args)`` for each ``args`` of ``calls``; yield the results as they come. The first
        exception cancels the calls not started and is raised."""
        if self._pool is None:
            for args in calls:
                yield fn(*args)
            return
        futures = []
        try:
            with _sigint_ignored():  # workers start here (one per submit, up to jobs)
                for args in calls:
                    futures.append(self._pool.submit(fn, *args))
            for future in concurrent.futures.as_completed(futures):
                try:
                    result = future.result()
                except BrokenProcessPool:
                    if _main_unguarded():
                        raise WorkerDiedError(UNGUARDED) from None
                    raise WorkerDiedError(
                        "search: a worker process died in the middle of a trial (killed, or out "
                        "of memory); run the same search again to resume it (the trial runs "
                        "again once its heartbeat is stale)") from None
                except concurrent.futures.CancelledError:
                    if not self.dask:
                        raise
                    raise WorkerDiedError(
                        f"search: the Dask scheduler at {self.executor.scheduler.address} was "
                        f"lost (the client cancelled its tasks); start it and its workers again, "
                        f"then run the same search again to resume it") from None
                except Exception as error:
                    if type(error).__name__ != "KilledWorker":  # distributed.KilledWorker
                        raise
                    raise WorkerDiedError(
                        f"search: {error.allowed_failures + 1} Dask workers died in turn while "
                        f"running the same trial (the last: {error.last_worker.address}); it "
                        f"may need more memory than a worker has. The search stopped; running "
                        f"it again keeps the finished trials and tries that one again") from None
                yield result
        finally:
            for future in futures:
                future.cancel()


#: Pool manager threads of pools ended by ``_stop_processes`` (see ``_quiet_cancel_race``).
_stopped_managers = weakref.WeakSet()


def _quiet_cancel_race(manager):
    """Keep the manager thread of a pool we kill from printing "Exception in thread ...
    InvalidStateError": on Python before 3.12, a manager that finds its workers dead sets
    BrokenProcessPool on every queued future, including those ``map`` already cancelled, and
    that raises in the thread (a CPython race; the pool is being ended on purpose). Installs a
    ``threading.excepthook`` once that drops only that exception, only from such threads."""
    if not _stopped_managers and not getattr(threading.excepthook, "_fastnn", False):
        previous = threading.excepthook

        def excepthook(args):
            if not (args.thread in _stopped_managers and args.exc_type is not None
                    and issubclass(args.exc_type, concurrent.futures.InvalidStateError)):
                previous(args)
        excepthook._fastnn = True
        threading.excepthook = excepthook
    _stopped_managers.add(manager)


def _stop_processes(pool, timeout=5.0):
    """End a process pool now (Ctrl-C, an error): kill its workers, cancel what is left, and wait
    for none of them forever (the queue that feeds the dead workers is not joined at exit)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    queue = getattr(pool, "_call_queue", None)
    manager = getattr(pool, "_executor_manager_thread", None)
    if manager is not None:
        _quiet_cancel_race(manager)
    if queue is not None:
        with _suppress_errors():
            queue.cancel_join_thread()
    for process in processes:
        with _suppress_errors():
            process.kill()
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + timeout
    for process in processes:
        with _suppress_errors():
            process.join(max(0.0, deadline - time.monotonic()))
    if manager is not None:
        manager.join(max(0.0, deadline - time.monotonic()))


def _plain(error):
    """``error`` if it survives pickling (to go back to the search's process), else a
    RuntimeError with its type and text."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        plain = RuntimeError(f"{type(error).__name__}: {error}")
        plain.__traceback__ = error.__traceback__
        return plain
    return error


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
    artifact_store: object
    verbosity: int

    def __call__(self, round_, index, space, params):
        """Run trial ``index`` of round ``round_``: Optuna parameters ``params`` from ``space``
        (``SearchSpace.to_dict()``); returns (trial number, state, value, fail reason): state
        "COMPLETE", "PRUNED", "FAIL" (a ``TrialFailed``: diverged, or a NaN value; the
        reason, else None) or "DUPLICATE" (another process had started that planned trial).
        Other objective errors are raised (the trial is then recorded as failed, without a
        reason, and runs again when the search is resumed)."""
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
            if claimed(study.get_trials(deepcopy=False), round_, index):
                return None, "DUPLICATE", None, None  # another process has started it
            finished = []
            try:
                study.optimize(functools.partial(call_objective, self.objective, self.model_dir,
                                                 self.artifact_store, round_, index, space),
                               n_trials=1,
                               catch=(TrialFailed, DuplicateTrial),
                               callbacks=[lambda _, trial: finished.append(trial)])
            except Exception as error:
                if multiprocessing.parent_process() is None:  # in the search's own process
                    raise
                plain = _plain(error)  # an exception that cannot go back would break the pool
                if plain is error:
                    raise
                raise plain from None
            trial = finished[0]
            if "round" not in trial.user_attrs:  # a DuplicateTrial: another process runs it
                return trial.number, "DUPLICATE", None, None
            return (trial.number, trial.state.name, trial.value,
                    trial.user_attrs.get(FAIL_REASON))
        finally:
            numba.set_num_threads(threads)
