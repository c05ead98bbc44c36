"""Throughput of a distributed search (``python -m fastnn bench --search``): trials per minute
of ``fastnn.tune.search`` on a Dask cluster of 1, 2 and 4 worker processes with a real PostgreSQL
storage, and where each trial's time goes besides training: scheduling (Dask), storage round
trips (Optuna on PostgreSQL), model transfer (each trial's model uploaded into the database, the
best one downloaded).

The setup (``run_search_throughput``): one PostgreSQL server (``services.PostgresServer``) for
the whole run; for each worker count n a fresh ``services.DaskCluster(n, threads=1)`` (a scheduler
and n worker processes, each under its nanny, on 127.0.0.1; one task at a time per worker; Dask's
nanny gives each worker one BLAS thread, and ``TrialTask`` one Numba thread). The search is the
real one: ``search(MLPObjective(epochs), digits_space(), trials, executor=client,
storage="postgresql://...", artifact_store="storage")`` (heartbeat 10 s), each in a new study.

Table 1, the throughput, one row per worker count n:

- start-up s = the cluster's start (its processes listening, the workers registered) + a warm-up
  search of n trials in a study of its own (each worker imports fastnn, Optuna and SQLAlchemy,
  loads the digits and Numba's cached kernels, connects to PostgreSQL; repeated, at most 3 times,
  until every worker has run a trial); not counted in the rate;
- search s = the wall time of a ``search`` call (the plan, the study, every trial, the result
  read back), the median of ``repeats`` searches, each in a new study with the same seed (the
  same hyperparameters: every worker count trains the same models); the range in brackets;
- trials/min = 60 * trials / search s; speed-up = trials/min / the first row's (1 worker);
- busy = sum of the trials' durations / (n * search s): the share of the workers' time that one
  of their trials was open (median over the repeats);
- cores = CPU seconds of every process of the search (workers, driver, PostgreSQL, Dask's
  scheduler and nannies) / search s: how many of the machine's cores the search kept busy.

Table 2, per trial in those searches (means over the trials of the ``repeats`` searches), from
the study and from instruments in the processes (``TimedObjective`` times the objective and its
``Trial.save_model``; SQLAlchemy event listeners on every engine count the SQL statements;
``/proc`` gives each process's CPU time):

- wall x workers = n * search s / trials: a worker's wall time per trial;
- training = the objective's call on the worker's clock minus its model upload;
- model upload = ``Trial.save_model``'s (the .npz written to a temporary file, uploaded into the
  database, the artifact's id stored with the trial);
- storage inside the trial = Optuna's duration (``datetime_complete - datetime_start``: from the
  trial's row created to its result written) - the objective: the claim, the attributes, the
  parameters, the heartbeat, the result;
- outside the trial = wall x workers - Optuna's duration: the Dask hand-over, ``load_study``,
  the trial's creation, the driver's queries between trials and, for a worker without a trial
  to run, waiting for the others' last ones;
- SQL statements / transactions per trial, in the workers and in the driver: each statement is
  one round trip to PostgreSQL, and with psycopg each transaction two more (BEGIN, COMMIT);
- CPU ms per trial of the workers, the driver (the search's process), PostgreSQL (its server
  processes) and Dask (scheduler and nannies); their sum, against the 1000 ms per second that each
  core gives, bounds the rate: trials/min <= 60 000 * cores / CPU ms per trial.

With n above the number of cores the workers share them: the training takes longer on each
worker's clock, and the speed-up stops near the number of cores, lower by the CPU that the
storage, the driver and Dask take per trial.

Table 3, the overhead measured apart, on the cluster of the first worker count (1 worker), after
its searches:

- scheduling = the median round trip of a no-op task, ``client.submit(f, pure=False).result()``
  (``round_trips`` of them, each after a pause of ``PAUSE`` seconds: Dask batches its messages,
  and tasks sent back to back would wait for each batch); it bounds a trial's hand-over from
  above: in a search, Dask's queuing (worker-saturation 1.1) gives a worker of one thread two
  tasks at a time, so that its next trial is often there already when one ends;
- storage = (the wall time of a search of ``overhead_trials`` instant trials) /
  overhead_trials - scheduling: ``instant`` trains nothing and saves no model, but stores what
  ``MLPObjective`` stores (a learning curve of one point, three attributes): its time is a real
  trial's storage work, Optuna's and the search's, on the worker and in the driver (the median
  of ``repeats`` such searches; their SQL counted too);
- model upload = the median of ``transfers`` ``models.upload_model`` of the best model into the
  database (each a new artifact of an open trial; the part that writes the .npz to a temporary
  file, fsynced, is timed apart too), model download = of ``models.download_model`` (what
  ``SearchResult.best_model`` does, once per search), and the model's size;
- each in milliseconds and as a percentage of the mean trial time at 1 worker (Optuna's
  duration), then their sum, the overhead of one trial, against the wall time per trial at 1
  worker (search s / trials) less its training.
"""
import os
import platform
import statistics
import tempfile
import threading
import time
import warnings

__all__ = ["EPOCHS", "QUICK", "REPEATS", "TRIALS", "WORKERS", "TimedObjective", "count_sql",
           "instant", "run_search_throughput", "take_counts"]

#: The defaults of ``run_search_throughput`` (``python -m fastnn bench --search``).
WORKERS = (1, 2, 4)
TRIALS = 16
EPOCHS = 40
REPEATS = 3
#: Measured apart: no-op tasks, instant trials per search, uploads and downloads.
ROUND_TRIPS = 30
#: Seconds between two no-op tasks: Dask batches the messages of each connection (the client
#: sends at most every 10 ms, the scheduler to a worker every 5 ms), so that back-to-back tasks
#: would each wait for the next batch, which a trial (100 ms or more) does not.
PAUSE = 0.05
OVERHEAD_TRIALS = 32
TRANSFERS = 10
#: ``bench --search --quick``: a smoke run (about 20 s here).
QUICK = dict(workers=(1, 2), trials=8, epochs=20, repeats=2, round_trips=20, overhead_trials=16,
             transfers=5)
#: Warm-up searches per cluster at most (until every worker has run a trial).
WARM_UPS = 3
#: The width of table 2's first column.
LABEL = 50
#: The processes whose CPU time is counted, in the order of table 2.
CPU_PARTS = ("workers", "driver", "postgres", "dask")

# Instruments, in each process that runs trials (a Dask worker) and in the driver.
_lock = threading.Lock()
_records = []  # (study name, trial number, objective seconds, upload seconds)
_sql = {"statements": 0, "transactions": 0}


def instant(trial, **params):
    """A trial with no training and no model, storing what ``MLPObjective`` stores: a learning
    curve (one point), train_accuracy, epochs and diverged; its value is 0.5."""
    trial.report(0.5, 0)
    trial.set_attrs(train_accuracy=0.5, epochs=1, diverged=False)
    return 0.5


def _noop():
    return None


class _TimedTrial:
    """A ``fastnn.tune.Trial`` whose ``save_model`` is timed (``upload``: its seconds)."""

    def __init__(self, trial):
        self._trial, self.upload = trial, 0.0

    def __getattr__(self, name):
        return getattr(self._trial, name)

    def save_model(self, model):
        start = time.perf_counter()
        try:
            return self._trial.save_model(model)
        finally:
            self.upload += time.perf_counter() - start


class TimedObjective:
    """``objective`` (e.g. ``MLPObjective``), its calls timed in the process that runs them: each
    trial adds (study name, trial number, objective seconds, ``save_model`` seconds) to that
    process's records (``take_counts``). Its settings and space check are the objective's."""

    def __init__(self, objective):
        self.objective = objective

    def settings(self):
        settings = getattr(self.objective, "settings", None)
        return settings() if callable(settings) else {}

    def check_space(self, space):
        check = getattr(self.objective, "check_space", None)
        if callable(check):
            check(space)

    def __call__(self, trial, **params):
        timed = _TimedTrial(trial)
        start = time.perf_counter()
        try:
            return self.objective(timed, **params)
        finally:
            seconds = time.perf_counter() - start
            with _lock:
                _records.append((trial.optuna_trial.study.study_name, trial.number, seconds,
                                 timed.upload))


def _before_execute(conn, cursor, statement, parameters, context, executemany):
    with _lock:
        _sql["statements"] += 1


def _before_commit(conn):
    with _lock:
        _sql["transactions"] += 1


def count_sql(on=True):
    """Count the SQL statements and commits of every SQLAlchemy engine of this process (event
    listeners on the Engine class, which engines made before see too) from now on, or stop
    (``on=False``); the counts restart at 0."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    for name, listener in (("before_cursor_execute", _before_execute),
                           ("commit", _before_commit)):
        if on and not event.contains(Engine, name, listener):
            event.listen(Engine, name, listener)
        elif not on and event.contains(Engine, name, listener):
            event.remove(Engine, name, listener)
    take_counts()


def take_counts():
    """This process's records and SQL counts since the last call: {"records": [(study, trial
    number, objective s, upload s)], "statements": n, "transactions": n}; both restart."""
    with _lock:
        taken = {"records": list(_records), **_sql}
        _records.clear()
        _sql.update(statements=0, transactions=0)
    return taken


def _gather(client):
    """The records and SQL counts of the workers and of this process since the last call:
    ({(study, number): (objective s, upload s)}, {"workers": (statements, transactions),
    "driver": (statements, transactions)})."""
    records, counts = {}, {}
    for part, taken in (("workers", client.run(take_counts).values()),
                        ("driver", [take_counts()])):
        counts[part] = tuple(sum(t[key] for t in taken) for key in ("statements", "transactions"))
        for t in taken:
            records.update({(s, n): (o, u) for s, n, o, u in t["records"]})
    return records, counts


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid):
    """The fields of /proc/PID/stat after the command's name (field 3 on), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _cpu(pids, reaped=False):
    """User + system CPU seconds of the processes ``pids`` (with ``reaped``, also of their
    children that have ended), or None without /proc."""
    if not os.path.isdir("/proc/self"):
        return None
    ticks = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:  # (utime, stime, cutime, cstime: fields 14 to 17)
            ticks += sum(int(v) for v in fields[11:15 if reaped else 13])
    return ticks / _TICKS


def _postgres_pids(server):
    """The postmaster's pid and its children's (the server's processes)."""
    try:
        with open(os.path.join(server.data, "postmaster.pid")) as f:
            postmaster = int(f.readline())
    except (OSError, ValueError):
        return None, []
    children = [int(p) for p in os.listdir("/proc") if p.isdigit()
                and (_stat(p) or [None, None])[1] == str(postmaster)]
    return postmaster, children


def _cpu_snapshot(server, cluster, worker_pids):
    """{part: CPU seconds so far} of the search's processes (``CPU_PARTS``), or None."""
    postmaster, backends = _postgres_pids(server)
    parts = {"workers": _cpu(worker_pids), "driver": _cpu([os.getpid()]),
             "postgres": None if postmaster is None else
             _cpu([postmaster], reaped=True) + _cpu(backends),
             "dask": _cpu([p.pid for p in cluster.processes])}
    return None if None in parts.values() else parts


def _median(values):
    return float(statistics.median(values)) if values else float("nan")


def _mean(values):
    return float(statistics.fmean(values)) if values else float("nan")


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _postgres_version(url):
    import sqlalchemy

    from fastnn.tune.storage import engine_options, shown_url

    url, kwargs = engine_options(url, shown_url(url))
    engine = sqlalchemy.create_engine(url, **kwargs)
    try:
        with engine.connect() as connection:
            return connection.exec_driver_sql("SHOW server_version").scalar().split()[0]
    finally:
        engine.dispose()


def _search(client, url, study, objective, n_trials, seed=0):
    """(wall seconds, SearchResult) of a search of ``n_trials`` on the cluster."""
    from fastnn.tune import digits_space, search

    start = time.perf_counter()
    result = search(objective, digits_space(), n_trials, seed=seed, storage=url,
                    study_name=study, executor=client, artifact_store="storage", progress=False)
    return time.perf_counter() - start, result


def _warm_up(client, url, objective, n, tag):
    """Warm-up searches of n trials until every worker has run one (at most ``WARM_UPS``);
    returns their seconds."""
    pids = set(client.run(os.getpid).values())
    seen, start = set(), time.perf_counter()
    for attempt in range(WARM_UPS):
        _, result = _search(client, url, f"warm-up-{tag}-{attempt}", objective, n,
                            seed=1 + attempt)
        seen |= {t.attrs["worker"]["pid"] for t in result.trials}
        if pids <= seen:
            break
    return time.perf_counter() - start


def _timed(client, server, cluster, objective, n, trials, repeats, tag):
    """``repeats`` timed searches of ``trials`` trials on n workers: table 1's and table 2's
    numbers (seconds; counts and CPU seconds per trial), and the last search's result."""
    worker_pids = list(client.run(os.getpid).values())
    _gather(client)  # (the warm-up's counts dropped)
    walls, busy, cores, durations, objective_s, upload_s = [], [], [], [], [], []
    sql = {"workers": (0, 0), "driver": (0, 0)}
    cpu = dict.fromkeys(CPU_PARTS, 0.0)
    for r in range(repeats):
        before = _cpu_snapshot(server, cluster, worker_pids)
        wall, result = _search(client, server.url, f"search-{tag}-{r}", objective, trials)
        after = _cpu_snapshot(server, cluster, worker_pids)
        records, counts = _gather(client)
        done = [t for t in result.trials if t.state == "COMPLETE"]
        if len(done) != trials:
            raise RuntimeError(f"bench --search: {trials - len(done)} of {trials} trials did "
                               f"not complete ({result.counts()})")
        walls.append(wall)
        busy.append(sum(t.seconds for t in done) / (n * wall))
        durations += [t.seconds for t in done]
        for t in done:
            o, u = records[(result.study.study_name, t.number)]
            objective_s.append(o)
            upload_s.append(u)
        sql = {part: tuple(a + b for a, b in zip(sql[part], counts[part])) for part in sql}
        if cpu is not None and before is not None and after is not None:
            for part in CPU_PARTS:
                cpu[part] += after[part] - before[part]
            cores.append(sum(after[p] - before[p] for p in CPU_PARTS) / wall)
        else:
            cpu = None
    count = repeats * trials
    wall = _median(walls)
    row = dict(workers=n, walls=walls, wall=wall, trials_per_minute=60 * trials / wall,
               busy=_median(busy), cores=_median(cores) if cpu is not None else None,
               trial=_mean(durations), objective=_mean(objective_s), upload=_mean(upload_s),
               sql={part: (st / count, tx / count) for part, (st, tx) in sql.items()},
               cpu=None if cpu is None else {p: s / count for p, s in cpu.items()})
    row.update(per_worker=n * wall / trials, train=row["objective"] - row["upload"],
               storage=row["trial"] - row["objective"], outside=n * wall / trials - row["trial"])
    return row, result


def _overhead(client, url, best_result, repeats, round_trips, overhead_trials, transfers, tag):
    """Table 3's overheads, measured apart (see the module's docstring), in seconds."""
    import optuna

    from fastnn.tune.models import DatabaseArtifactStore, download_model, upload_model
    from fastnn.tune.storage import open_storage

    for _ in range(3):  # warm
        client.submit(_noop, pure=False).result()
    trips = []
    for _ in range(round_trips):
        time.sleep(PAUSE)
        start = time.perf_counter()
        client.submit(_noop, pure=False).result()
        trips.append(time.perf_counter() - start)
    scheduling = _median(trips)

    _gather(client)
    walls = []
    for r in range(repeats):
        wall, result = _search(client, url, f"instant-{tag}-{r}", instant, overhead_trials)
        if result.counts() != {"COMPLETE": overhead_trials}:
            raise RuntimeError(f"bench --search: instant trials: {result.counts()}")
        walls.append(wall)
    _, counts = _gather(client)
    statements, transactions = (sum(c[i] for c in counts.values()) for i in (0, 1))

    store = DatabaseArtifactStore(url)
    model = best_result.best_model()  # (a first download, not timed)
    saves = []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(transfers):
            path = os.path.join(folder, f"model-{i}.npz")
            start = time.perf_counter()
            model.save(path)
            saves.append(time.perf_counter() - start)
        size = os.path.getsize(path)
    study = optuna.create_study(storage=open_storage(url), study_name=f"transfer-{tag}",
                                direction="maximize")
    with warnings.catch_warnings():  # (a trial outside Study.optimize has no heartbeat)
        warnings.simplefilter("ignore", UserWarning)
        trial = study.ask()
    artifacts, ups, downs = [], [], []
    for i in range(transfers):
        start = time.perf_counter()
        artifacts.append(upload_model(model, store, trial, f"model-{i}.npz"))
        ups.append(time.perf_counter() - start)
    for artifact in artifacts:
        start = time.perf_counter()
        download_model(store, artifact)
        downs.append(time.perf_counter() - start)
    study.tell(trial, 0.0)
    return dict(scheduling=scheduling, round_trips=round_trips,
                instant_wall=_median(walls), instant_trials=overhead_trials,
                storage=_median(walls) / overhead_trials - scheduling,
                instant_statements=statements / (repeats * overhead_trials),
                instant_transactions=transactions / (repeats * overhead_trials),
                model_bytes=size, save=_median(saves), upload=_median(ups),
                download=_median(downs), transfers=transfers)


def run_search_throughput(workers=WORKERS, trials=TRIALS, epochs=EPOCHS, repeats=REPEATS,
                          out=print, round_trips=ROUND_TRIPS, overhead_trials=OVERHEAD_TRIALS,
                          transfers=TRANSFERS, train_size=None):
    """Measure a distributed search's throughput for each worker count of ``workers`` and its
    per-trial overheads (see the module's docstring); print the three tables with ``out`` (one
    line a call) and return {"machine": {...}, "storage": "PostgreSQL VERSION", "search":
    {...}, "rows": [one dict per worker count, seconds], "overhead": {seconds and counts
    measured apart}}. Needs PostgreSQL's programs (``services.postgres_binaries``), Dask's
    distributed, Optuna, psycopg and scikit-learn. train_size: train on the first rows of the
    digits only (quick runs)."""
    import distributed  # noqa: F401  (an ImportError here, before any server starts)
    import optuna

    from fastnn.bench.services import DaskCluster, PostgresServer
    from fastnn.tune import MLPObjective

    workers = tuple(workers)
    if not workers or any(not isinstance(n, int) or n < 1 for n in workers) \
            or min(trials, epochs, repeats, round_trips, overhead_trials, transfers) < 1:
        raise ValueError(f"run_search_throughput: workers must be integers >= 1, and trials, "
                         f"epochs, repeats, round_trips, overhead_trials and transfers >= 1; got "
                         f"workers={workers}, trials={trials}, epochs={epochs}, "
                         f"repeats={repeats}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objective = TimedObjective(MLPObjective(epochs=epochs, train_size=train_size))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    machine = dict(cpus=os.cpu_count(), cpu=_cpu_name(), load=load)
    settings = dict(trials=trials, epochs=epochs, repeats=repeats,
                    train_rows=int(objective.objective.load()[0].shape[0]))
    rows, overhead = [], None
    count_sql(True)
    try:
        with tempfile.TemporaryDirectory(prefix="fastnn-bench-search-") as folder, \
                PostgresServer(os.path.join(folder, "postgres")) as server:
            version = _postgres_version(server.url)
            out(f"fastnn bench --search: {machine['cpus']} CPUs ({machine['cpu']}), load "
                f"{load:.2f} at the start; storage PostgreSQL {version} on 127.0.0.1 (fsync "
                f"off), the models in it; Dask workers of 1 thread on 127.0.0.1")
            out(f"each search: {trials} trials of MLPObjective(epochs={epochs}) on the digits "
                f"({settings['train_rows']} training rows) over digits_space(), the same seed "
                f"(the same models) every time; search s: "
                + (f"the median of {repeats} searches (range)" if repeats > 1 else
                   "one search"))
            header = (f"{'workers':>7}{'start-up s':>13}{'search s':>20}{'trials/min':>12}"
                      f"{'speed-up':>10}{'busy':>7}{'cores':>7}")
            out(header)
            out("-" * len(header))
            for i, n in enumerate(workers):
                tag = f"{n}w{i}"
                start = time.perf_counter()
                with DaskCluster(n, threads=1) as cluster, cluster.client(timeout=60) as client:
                    cluster_s = time.perf_counter() - start
                    client.run(count_sql, True)
                    warm_s = _warm_up(client, server.url, objective, n, tag)
                    row, result = _timed(client, server, cluster, objective, n, trials, repeats,
                                         tag)
                    if overhead is None:
                        overhead = _overhead(client, server.url, result, repeats, round_trips,
                                             overhead_trials, transfers, tag)
                        overhead["workers"] = n
                row.update(cluster_start=cluster_s, warm_up=warm_s,
                           speedup=row["trials_per_minute"] / rows[0]["trials_per_minute"]
                           if rows else 1.0)
                rows.append(row)
                walls = f"{row['wall']:.2f} ({min(row['walls']):.2f}-{max(row['walls']):.2f})"
                cores = "-" if row["cores"] is None else f"{row['cores']:.2f}"
                out(f"{n:>7}{f'{cluster_s:.1f}+{warm_s:.1f}':>13}{walls:>20}"
                    f"{row['trials_per_minute']:12.1f}{row['speedup']:9.2f}x{row['busy']:7.0%}"
                    f"{cores:>7}")
    finally:
        count_sql(False)
    out("start-up: cluster start + warm-up search; busy: sum of the trials' durations / "
        "(workers * search s); cores: CPU seconds of all the search's processes / search s")
    out("")
    _print_per_trial(rows, out)
    out("")
    _print_overhead(overhead, rows[0], out)
    return {"machine": machine, "storage": f"PostgreSQL {version}", "search": settings,
            "rows": rows, "overhead": overhead}


def _workers(n):
    return f"{n} worker{'s' * (n != 1)}"


def _print_per_trial(rows, out):
    """Table 2: per trial, in the searches, one column per worker count."""
    names = [_workers(row["workers"]) for row in rows]
    width = max(12, *(len(name) + 2 for name in names))
    header = (f"{'per trial in the searches, ms':<{LABEL}}"
              + "".join(f"{name:>{width}}" for name in names))
    out(header)
    out("-" * len(header))
    lines = [("wall x workers (workers * search s / trials)", "per_worker"),
             ("  training (objective - upload)", "train"),
             ("  model upload (Trial.save_model)", "upload"),
             ("  storage inside the trial (duration - objective)", "storage"),
             ("  outside the trial (wall x workers - duration)", "outside"),
             ("trial (Optuna's duration)", "trial")]
    for label, key in lines:
        out(f"{label:<{LABEL}}" + "".join(f"{row[key] * 1e3:{width}.1f}" for row in rows))
    for part in ("workers", "driver"):
        sql = [f"{row['sql'][part][0]:.0f} / {row['sql'][part][1]:.0f}" for row in rows]
        out(f"{'SQL statements / transactions: ' + part:<{LABEL}}"
            + "".join(f"{s:>{width}}" for s in sql))
    if all(row["cpu"] is not None for row in rows):
        labels = {"workers": "CPU: workers", "driver": "CPU: driver (search's process)",
                  "postgres": "CPU: PostgreSQL", "dask": "CPU: Dask scheduler + nannies"}
        for part in CPU_PARTS:
            out(f"{labels[part]:<{LABEL}}"
                + "".join(f"{row['cpu'][part] * 1e3:{width}.1f}" for row in rows))
        out(f"{'CPU: all':<{LABEL}}"
            + "".join(f"{sum(row['cpu'].values()) * 1e3:{width}.1f}" for row in rows))


def _print_overhead(o, first, out):
    """Table 3: the overheads measured apart, against the first row's trial (1 worker)."""
    trial, wall = first["trial"], first["per_worker"]
    title = f"overhead per trial, measured apart ({_workers(o['workers'])})"
    header = f"{title:<44}{'ms':>8}{'% of trial':>12}  how"
    out(header)
    out("-" * len(header))
    items = [
        ("scheduling: Dask round trip", o["scheduling"],
         f"median of {o['round_trips']} no-op client.submit(f, pure=False).result(), "
         f"{PAUSE * 1e3:.0f} ms apart"),
        ("storage: Optuna on PostgreSQL", o["storage"],
         f"search of {o['instant_trials']} instant trials: wall / {o['instant_trials']} - "
         f"scheduling; {o['instant_statements']:.0f} SQL statements in "
         f"{o['instant_transactions']:.0f} transactions per trial"),
        (f"model upload ({o['model_bytes'] / 1e3:.1f} kB .npz)", o["upload"],
         f"median of {o['transfers']} upload_model into the database, of which "
         f"{o['save'] * 1e3:.1f} ms writing the .npz (fsynced)"),
    ]
    total = sum(seconds for _, seconds, _ in items)
    items.append(("sum: overhead per trial", total, "scheduling + storage + upload"))
    items.append(("model download (once per search)", o["download"],
                  f"median of {o['transfers']} download_model (best_model)"))
    for name, seconds, how in items:
        out(f"{name:<44}{seconds * 1e3:8.1f}{seconds / trial:12.1%}  {how}")
    train = first["train"]
    out(f"% of trial: of the mean trial time at {_workers(first['workers'])} "
        f"({trial * 1e3:.1f} ms, Optuna's duration, the model upload included)")
    per = "search s / trials" if first["workers"] == 1 else "workers * search s / trials"
    out(f"at {_workers(first['workers'])} a trial takes {wall * 1e3:.1f} ms of wall time "
        f"({per}): training {train * 1e3:.1f} ms ({train / wall:.0%}), the rest "
        f"{(wall - train) * 1e3:.1f} ms ({1 - train / wall:.0%}); measured apart the overhead is "
        f"{total * 1e3:.1f} ms ({total / wall:.0%} of the wall time per trial)")
