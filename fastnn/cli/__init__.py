"""Command line of fastnn: ``python -m fastnn train | predict | bench | tune`` (the console
script ``fastnn``): ``main`` parses the options, checks them and calls the job; the jobs are
``fastnn.cli.train`` (on the digits, or on the user's data file with ``--data``),
``fastnn.cli.predict`` (a model from ``train --data`` on a data file) and ``fastnn.cli.tune``
(``bench`` prints the tables of ``fastnn.bench``; ``bench --search`` those of
``fastnn.bench.cluster``). The library never imports this package.

Every error is one line on stderr, ``fastnn COMMAND: --option: why``, found before any work
starts: exit status 2 for a bad option or combination of options (as argparse's own errors)
or bad data (``--data: FILE: what is wrong, where``; ``fastnn.tabular.DataError``),
1 for a failure of the work itself (a diverged training, every trial of a search failed, a
missing package), 130 for Ctrl-C.
"""
import argparse
import sys


class _Failure(Exception):
    """The one line a command ends with (without "fastnn COMMAND: "), and its exit status."""

    def __init__(self, message, status=2):
        super().__init__(message)
        self.status = status


def _option(name):
    return "--" + name.replace("_", "-")


def _count(option, value, low=1, high=None):
    if value < low:
        raise _Failure(f"{option} must be an integer >= {low}, got {value}")
    if high is not None and value > high:
        raise _Failure(f"{option} must be an integer in [{low}, {high}], got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (no usage block): exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _bench(args):
    if args.search:
        _bench_search(args)
        return
    from fastnn import bench

    if args.count and not args.cuda:
        raise _Failure("--count counts the CUDA training step's launches; use it with --cuda")
    if args.cuda:
        if args.loaded:
            raise _Failure("--loaded keeps a CPU core busy for the CPU table; it does not apply "
                           "to --cuda")
        if args.threads:
            raise _Failure("--threads sets the CPU table's Numba threads; it does not apply to "
                           "--cuda")
        if args.count:
            _count_cuda_step()
            return
        try:
            bench.require_real_gpu()
        except (RuntimeError, ImportError) as error:
            raise _Failure(f"--cuda: no GPU to time: {error}") from None
        bench.run_cuda(quick=args.quick)
        return
    import numba

    limit = numba.config.NUMBA_NUM_THREADS
    if not 0 <= args.threads <= limit:
        raise _Failure(f"--threads must be in [0, {limit}] (0: all cores; Numba has {limit} "
                       f"threads here), got {args.threads}")
    if not args.loaded:
        bench.run(quick=args.quick, threads=args.threads)
        return
    from fastnn.bench.machine import busy_core

    print("--loaded: one core kept busy by a spinning process while the table is measured")
    with busy_core():
        bench.run(quick=args.quick, threads=args.threads)


#: The options of ``bench`` that ``--search`` does not take: what each does.
_NOT_WITH_SEARCH = {"cuda": "times the GPU kernels",
                    "count": "counts the CUDA training step's launches",
                    "loaded": "keeps a CPU core busy for the CPU table",
                    "threads": "sets the CPU table's Numba threads"}
#: What ``bench --search`` imports: (module, what to call it).
_SEARCH_MODULES = (("optuna", "Optuna"), ("distributed", "Dask's distributed"),
                   ("sklearn", "scikit-learn (the digits)"))


def _bench_search(args):
    """``bench --search``: a distributed search's throughput and per-trial overheads
    (``fastnn.bench.cluster``), on a PostgreSQL server and Dask clusters started here."""
    import importlib.util

    for name, what in _NOT_WITH_SEARCH.items():
        if getattr(args, name):
            raise _Failure(f"{_option(name)} {what}; it does not apply to --search")
    missing = [what for module, what in _SEARCH_MODULES
               if importlib.util.find_spec(module) is None]
    if all(importlib.util.find_spec(module) is None for module in ("psycopg", "psycopg2")):
        missing.append("a PostgreSQL driver (psycopg)")
    if missing:
        raise _Failure(f"--search needs {', '.join(missing)}: pip install "
                       f"'fastnn[tune,examples]'", 1)
    from fastnn.bench.services import ServiceError, postgres_binaries

    if postgres_binaries() is None:
        raise _Failure("--search needs PostgreSQL's server programs (initdb, pg_ctl), not found "
                       "on PATH or in /usr/lib/postgresql: apt-get install postgresql", 1)
    from fastnn.bench.cluster import QUICK, run_search_throughput

    try:
        run_search_throughput(**(QUICK if args.quick else {}))
    except ServiceError as error:
        raise _Failure(f"--search: {error}", 1) from None


def _count_cuda_step():
    """``bench --cuda --count``: on a GPU, or in Numba's CUDA simulator (a small MLP of the same
    layers there: the simulator runs every GPU thread in Python)."""
    from fastnn.bench import counting
    from fastnn.kernels.cuda import is_simulator, require_gpu

    try:
        require_gpu()
    except (RuntimeError, ImportError) as error:
        raise _Failure(f"--count: no GPU and no simulator (NUMBA_ENABLE_CUDASIM=1): {error}"
                       ) from None
    if is_simulator():
        counting.print_counts(batch=8, widths=(20, 8, 8, 10))
    else:
        counting.print_counts()


#: The argument of ``fastnn.tabular.load_data`` that a DataError names, as an option.
_DATA_OPTIONS = {"path": "--data", "target": "--target", "task": "--task", "drop": "--drop"}
#: The options that apply only with --data.
_WITH_DATA = ("target", "task", "drop", "test_size")
#: The tasks of --task (``fastnn.tabular.TASKS``, not imported: --help stays quick).
_TASKS = ("multiclass", "binary", "multilabel", "regression")


def _without_data(args, command):
    for name in _WITH_DATA:
        if getattr(args, name) is not None:
            raise _Failure(f"{_option(name)} applies with --data (your own data file; without "
                           f"it {command} uses the handwritten digits)")


def _data_failure(error):
    """The _Failure of a ``fastnn.tabular.DataError``: the option it names, status 2."""
    return _Failure(f"{_DATA_OPTIONS.get(error.name, '--data')}: {error}")


def _data_options(args):
    """The keywords of the jobs on the user's data, from the options (their defaults when not
    given)."""
    return dict(data=args.data, target=args.target, task=args.task or "auto",
                drop=args.drop or (), test_size=0.2 if args.test_size is None else args.test_size)


def _train(args):
    """The main job; a bad option ends it with one line naming it (as ``tune``), no traceback."""
    try:
        from fastnn.cli import train
    except ImportError as error:
        raise _Failure(str(error), 1) from None
    from fastnn.cli._common import OptionError
    from fastnn.errors import NonFiniteError
    from fastnn.tabular import DataError

    try:
        hidden = tuple(int(h) for h in args.hidden.split(",") if h.strip())
    except ValueError:
        raise _Failure(f"--hidden must be comma-separated integers, got {args.hidden!r}") \
            from None
    if args.data is None:
        _without_data(args, "train")
    options = dict(hidden=hidden, epochs=args.epochs, batch_size=args.batch_size,
                   optimizer=args.optimizer, lr=args.lr, decay=args.decay, l2=args.l2,
                   dropout=args.dropout, seed=args.seed, backend=args.backend, out=args.out,
                   plot=not args.no_plot, verbose=not args.quiet)
    try:
        if args.data is None:
            train.run(**options)
        else:
            train.run_data(**_data_options(args), **options)
    except OptionError as error:
        raise _Failure(f"{_option(error.name)}: {error}") from None
    except DataError as error:
        raise _data_failure(error) from None
    except NonFiniteError as error:
        hint = ("a smaller --l2 (a large L2 penalty makes the steps overflow)" if args.l2 >= 1
                else "a lower --lr or more --decay")
        raise _Failure(f"training diverged ({type(error).__name__}: {error}); try {hint}",
                       1) from None
    except MemoryError as error:
        detail = str(error) or "MemoryError"
        raise _Failure(f"out of memory ({detail}); try a smaller --hidden or --batch-size",
                       1) from None
    except ImportError as error:  # scikit-learn for the digits, pyarrow for Parquet
        raise _Failure(str(error), 1) from None


def _predict(args):
    """Predictions of a model from ``train --data`` on a data file, written to a CSV file."""
    from fastnn.cli import predict
    from fastnn.cli._common import OptionError
    from fastnn.tabular import DataError

    try:
        predict.run(model=args.model, data=args.data, out=args.out, backend=args.backend)
    except OptionError as error:
        raise _Failure(f"{_option(error.name)}: {error}") from None
    except DataError as error:
        raise _data_failure(error) from None
    except ImportError as error:  # pyarrow for Parquet
        raise _Failure(str(error), 1) from None


#: The options of ``fastnn tune`` that set each range of the search space.
_RANGES = {"lr": float, "beta": float, "hidden": int, "l2": float, "layers": int}
#: The stored search settings that each option of ``fastnn tune`` sets.
_SETTINGS = {"n_trials": "--trials", "rounds": "--rounds", "sampler": "--sampler",
             "seed": "--seed", "space": "--lr/--beta/--hidden/--l2/--layers",
             "objective": "--epochs/--seed"}


def _tune(args):
    try:
        from optuna.exceptions import StorageInternalError
        from sqlalchemy.exc import DBAPIError

        from fastnn.cli import tune
        from fastnn.cli._common import OptionError
        from fastnn.tune import SearchFailedError, SpaceError, StorageError
        from fastnn.tune.parallel import WorkerDiedError
        from fastnn.tune.search import MAX_HEARTBEAT, MAX_TRIALS, SettingsError
        from fastnn.tune.space import DIGITS_RANGES
        from fastnn.tune.storage import root_cause
    except ImportError as error:
        raise _Failure(str(error), 1) from None
    from fastnn.tabular import DataError

    def pair(option, text, kind):
        try:
            low, high = (kind(v) for v in text.split(","))
        except ValueError:
            what = "integers" if kind is int else "numbers"
            raise _Failure(f"{option} must be LOW,HIGH (two {what}), got {text!r}") from None
        return low, high

    trials = _count("--trials", args.trials, high=MAX_TRIALS)
    rounds = _count("--rounds", args.rounds)
    if rounds > trials:
        raise _Failure(f"--rounds must be <= --trials (each round runs trials), got --rounds "
                       f"{rounds} with --trials {trials}")
    _count("--epochs", args.epochs)
    _count("--heartbeat", args.heartbeat, high=MAX_HEARTBEAT)
    _count("--seed", args.seed, 0, 2**32 - 1)
    if args.dask is not None and args.executor is not None:
        raise _Failure("--executor does not apply with --dask (the trials run on the cluster)")
    if args.dask not in (None, "local") and args.jobs is not None:
        raise _Failure("--jobs does not apply with --dask ADDRESS (the cluster's workers decide "
                       "how many trials run at once); it sets the workers of --dask local")
    jobs = _count("--jobs", 1 if args.jobs is None else args.jobs)
    if args.data is None:
        _without_data(args, "tune")
    data = {} if args.data is None else _data_options(args)
    space = {}
    for name, kind in _RANGES.items():
        text = getattr(args, name)
        if text is None:
            continue
        try:
            space[name] = DIGITS_RANGES[name](*pair(_option(name), text, kind))
        except ValueError as error:
            raise _Failure(f"{_option(name)}: {error}") from None
    try:
        tune.run(trials=trials, jobs=jobs, storage=args.storage, study=args.study, rounds=rounds,
                 sampler=args.sampler, seed=args.seed, epochs=args.epochs, out=args.out,
                 prune=args.prune, executor=args.executor or "process", dask=args.dask,
                 heartbeat=args.heartbeat, space=space, progress=not args.quiet,
                 models=args.models, **data)
    except (OptionError, SpaceError) as error:
        raise _Failure(f"{_option(error.name)}: {error}") from None
    except DataError as error:
        raise _data_failure(error) from None
    except StorageError as error:
        message = str(error)
        raise _Failure(message.replace("storage: ", "--storage: ", 1)
                       if message.startswith("storage: ") else f"--storage: {message}") from None
    except SettingsError as error:
        settings = dict(_SETTINGS, objective=_SETTINGS["objective"] + (
            "/--data/--target/--task/--drop/--test-size" if data else ""))
        options = ", ".join(dict.fromkeys(settings.get(n, n) for n in error.names))
        raise _Failure(f"{options}: {error}") from None
    except (SearchFailedError, WorkerDiedError) as error:
        raise _Failure(str(error), 1) from None
    except (StorageInternalError, DBAPIError) as error:
        raise _Failure(f"--storage: the database failed in the middle of the search "
                       f"({root_cause(error)}); the finished trials are kept: run the same "
                       f"command again to resume", 1) from None
    except ImportError as error:  # pyarrow for Parquet
        raise _Failure(str(error), 1) from None


def main(argv=None):
    parser = _Parser(prog="fastnn", description="Numba-accelerated neural-network kernels.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("train", help="train a batch-normalized MLP on handwritten digits, "
                            "or on your data (--data)")
    p.add_argument("--hidden", default="256,128", help="hidden widths, comma-separated (256,128)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--optimizer", choices=["gd", "momentum", "rmsprop", "adam"], default="adam")
    p.add_argument("--lr", type=float, default=3e-3, help="initial learning rate")
    p.add_argument("--decay", type=float, default=0.05,
                   help="inverse-time decay: lr / (1 + decay * epoch)")
    p.add_argument("--l2", type=float, default=0.0, help="L2 regularization lambda")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout rate after each ReLU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=["cpu", "numpy", "cuda"], default=None)
    p.add_argument("--out", default="fastnn-run",
                   help="folder for model.npz and the PNG (with --data also model.json and "
                   "report.json)")
    p.add_argument("--no-plot", action="store_true", help="skip the learning-curve PNG")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_data_options(p, "train")
    p.set_defaults(func=_train)
    p = commands.add_parser("predict", help="predict the rows of a data file with a model from "
                            "train --data",
                            description="Predictions of a model written by 'fastnn train "
                            "--data' (model.npz and model.json beside it) for the rows of a data "
                            "file, as a CSV file: the predicted labels or values, and a "
                            "probability column per class.")
    p.add_argument("--model", default="fastnn-run/model.npz",
                   help="the model file (fastnn-run/model.npz)")
    p.add_argument("--data", required=True, metavar="FILE",
                   help="the rows to predict: a CSV or Parquet file with the feature columns "
                   "(by name; others are ignored), or an .npz with the array X")
    p.add_argument("--out", default="predictions.csv",
                   help="the CSV file to write (predictions.csv)")
    p.add_argument("--backend", choices=["cpu", "numpy", "cuda"], default=None)
    p.set_defaults(func=_predict)
    p = commands.add_parser("bench", help="time every kernel against its NumPy reference")
    p.add_argument("--quick", action="store_true",
                   help="a fast subset of the shapes (with --search: 1 and 2 workers, fewer "
                   "and shorter trials)")
    p.add_argument("--threads", type=int, default=0, help="Numba threads (default: all cores)")
    p.add_argument("--loaded", action="store_true",
                   help="keep one core busy with a spinning process while measuring (a shared "
                        "machine)")
    p.add_argument("--cuda", action="store_true",
                   help="the GPU table instead: CUDA kernels against CuPy / PyTorch CUDA")
    p.add_argument("--count", action="store_true",
                   help="with --cuda: count the launches, allocations, copies and "
                   "synchronizations of one training step (also in the CUDA simulator)")
    p.add_argument("--search", action="store_true",
                   help="instead: trials per minute of a distributed search (fastnn.tune) on "
                   "1, 2 and 4 Dask workers with a PostgreSQL storage, and its per-trial "
                   "overheads (scheduling, storage, model transfer); needs PostgreSQL and "
                   "fastnn[tune]")
    p.set_defaults(func=_bench)
    p = commands.add_parser("tune", help="hyperparameter search for an MLP on handwritten digits",
                            description="Random search (Optuna) over lr, beta (Adam's beta1), "
                            "hidden units and L2 of a batch-normalized MLP on the digits; rerun "
                            "the same command to resume a killed search. With --data the "
                            "search runs on your data.")
    p.add_argument("--trials", type=int, default=20, help="number of trials in all (20)")
    p.add_argument("--jobs", type=int, default=None, help="trials at once (1)")
    p.add_argument("--executor", choices=["process", "thread"], default=None,
                   help="where local jobs run (process)")
    p.add_argument("--dask", default=None, metavar="ADDRESS",
                   help="run trials on a Dask cluster: a scheduler address, or 'local' for a "
                   "local cluster of --jobs workers")
    p.add_argument("--storage", default=None,
                   help="database URL of the study (default sqlite:///OUT/tune.db; "
                   "postgresql://... for many machines)")
    p.add_argument("--study", default=None,
                   help="study name in the storage (digits; with --data the file's name)")
    p.add_argument("--rounds", type=int, default=1, help="coarse-to-fine rounds (1)")
    p.add_argument("--sampler", choices=["random", "grid"], default="random")
    p.add_argument("--prune", action="store_true",
                   help="stop hopeless trials (median rule, from epoch 5 on)")
    p.add_argument("--epochs", type=int, default=20, help="epochs per trial (20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", default="1e-4,1", help="learning-rate range, log-uniform (1e-4,1)")
    p.add_argument("--beta", default="0.9,0.999",
                   help="Adam's beta1 range, 1 - beta log-uniform (0.9,0.999)")
    p.add_argument("--hidden", default="50,100", help="hidden-unit range (50,100)")
    p.add_argument("--l2", default="1e-4,1", help="L2 lambda range, log-uniform (1e-4,1)")
    p.add_argument("--layers", default=None, help="hidden-layer range, e.g. 2,4 (default: 1)")
    p.add_argument("--heartbeat", type=int, default=10,
                   help="seconds between heartbeats of running trials; a killed run's trials "
                   "are re-run after twice that (10)")
    p.add_argument("--out", default="fastnn-tune", help="folder for the model, CSV and plots")
    p.add_argument("--models", default=None, metavar="WHERE",
                   help="where the trials keep their models: 'storage' (in the --storage "
                   "database: every machine reaches it; the default with --dask ADDRESS) or a "
                   "folder that every worker and this machine reach (default OUT/models)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_data_options(p, "tune")
    p.set_defaults(func=_tune)
    args = parser.parse_args(argv)
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _redeliver_interrupt(previous_hook)
    try:
        args.func(args)
    except _Failure as failure:
        _exit(f"fastnn {args.command}: {failure}", failure.status)
    except KeyboardInterrupt:
        _exit(f"fastnn {args.command}: interrupted" + (
            "; run the same command again to resume the search" if args.command == "tune"
            else ""), 130)
    finally:
        sys.unraisablehook = previous_hook
    return 0


def _redeliver_interrupt(hook):
    """An ``unraisablehook`` that delivers a Ctrl-C again when Python dropped it: a
    KeyboardInterrupt raised while a finalizer runs (a weakref callback, ``__del__``, which the
    garbage collector calls between any two lines) can only be printed as "Exception ignored",
    and the job would go on as if never interrupted. Another thread sends the main thread SIGINT
    again once this hook has returned (a real signal: it also wakes a blocking wait; one that
    landed in the hook itself would be dropped for good). Other exceptions go to ``hook``."""
    import signal
    import threading
    import time

    in_hook = threading.Event()

    def send_when_out(main_thread):
        while in_hook.is_set():
            time.sleep(0.001)
        signal.pthread_kill(main_thread, signal.SIGINT)

    def redeliver(unraisable):
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            hook(unraisable)
            return
        in_hook.set()
        try:
            threading.Thread(target=send_when_out, args=(threading.main_thread().ident,),
                             name="fastnn-redeliver-sigint", daemon=True).start()
        finally:
            in_hook.clear()
    return redeliver


def _add_data_options(p, command):
    """--data, --target, --task, --drop and --test-size of ``train`` and ``tune``."""
    p.add_argument("--data", default=None, metavar="FILE",
                   help=f"{command} on your data instead of the digits: a CSV file (header "
                   "row), an .npz (arrays X and y) or a Parquet file (needs pyarrow)")
    p.add_argument("--target", default=None, metavar="COLUMNS",
                   help="with --data: the target column (default: the last), or several "
                   "comma-separated 0/1 columns (multi-label)")
    p.add_argument("--task", choices=["auto", *_TASKS], default=None,
                   help="with --data: the task (auto: inferred from the target: several 0/1 "
                   "columns multilabel, 2 values binary, text or at most 20 whole numbers "
                   "multiclass, other numbers regression)")
    p.add_argument("--drop", default=None, metavar="COLUMNS",
                   help="with --data: columns that are not features (an id, a name), "
                   "comma-separated")
    p.add_argument("--test-size", type=float, default=None,
                   help="with --data: the fraction of the rows held out for testing "
                   "(stratified for classification) (0.2)")


def _exit(line, status):
    """Print ``line`` on stderr and exit with ``status`` (a SystemExit whose text is the line)."""
    print(line, file=sys.stderr, flush=True)
    error = SystemExit(line)
    error.code = status
    raise error
