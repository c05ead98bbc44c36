"""Where trial results are kept: Optuna's storages, opened from a database URL.

- ``None``: Optuna's in-memory storage (one process; lost when it ends).
- ``"sqlite:///tune.db"``: an SQLite file, the embedded default of ``fastnn tune``; shared by the
  processes of one machine, which take turns (each transaction takes the file's write lock
  first, waiting up to 60 s for it).
- ``"postgresql://user:password@host/db"`` (or any SQLAlchemy URL): a database server, for
  workers on many machines. Its driver: psycopg 3 (the ``tune`` extra installs it; URLs
  ``postgresql://`` or ``postgresql+psycopg://``) or psycopg2 (``pip install psycopg2-binary``;
  ``postgresql+psycopg2://``). A plain ``postgresql://`` takes whichever is installed, psycopg 3
  first (SQLAlchemy alone would take only its default: psycopg 3 from SQLAlchemy 2.1 on,
  psycopg2 before).
- An ``optuna.storages.BaseStorage`` object: used as it is.

URLs open an ``optuna.storages.RDBStorage`` (behind Optuna's cache of finished trials) with a
heartbeat: every running trial records one
each ``heartbeat`` seconds, and a trial without one for 2 x ``heartbeat`` seconds (its process was
killed) is marked failed, so that a resumed search runs it again.
"""
import functools
import importlib.util
import os
import random
import time
import warnings

import optuna
import sqlalchemy

__all__ = ["StorageError", "configure_engine", "creating_tables", "describe", "engine_options",
           "in_memory", "open_storage", "root_cause", "shown_url"]


class StorageError(RuntimeError):
    """A storage URL that cannot be parsed, lacks its database driver, or cannot be reached."""


def open_storage(storage, heartbeat=10):
    """An Optuna storage for ``storage`` (None, a database URL or a storage object); URLs are opened
    once per process and heartbeat."""
    if storage is None:
        return optuna.storages.InMemoryStorage()
    if isinstance(storage, optuna.storages.BaseStorage):
        return storage
    if not isinstance(storage, str):
        raise TypeError(f"storage must be None, a database URL such as 'sqlite:///tune.db', or an "
                        f"optuna storage, got {type(storage).__name__}")
    return _rdb_storage(storage, heartbeat)


def in_memory(storage):
    """Whether ``storage`` is a URL of an in-memory SQLite database ("sqlite://",
    "sqlite:///:memory:"), which other processes cannot share."""
    if not isinstance(storage, str) or not storage.startswith("sqlite"):
        return False
    try:
        database = sqlalchemy.engine.make_url(storage).database
    except sqlalchemy.exc.ArgumentError:
        return False
    return not database or database == ":memory:" or "mode=memory" in database


def _check_sqlite_file(database, shown):
    """StorageError when an SQLite file (or its folder, which holds its write-ahead log) cannot
    be written."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    folder = os.path.dirname(os.path.abspath(database))
    if os.path.isfile(database) and not os.access(database, os.R_OK | os.W_OK):
        raise StorageError(f"storage: cannot open {shown}: the file {database!r} is read-only "
                           f"(the search writes every trial into it)")
    if os.path.isdir(folder) and not os.access(folder, os.W_OK | os.X_OK):
        raise StorageError(f"storage: cannot open {shown}: its folder {folder!r} is not "
                           f"writable (SQLite keeps its write-ahead log there)")


def shown_url(url):
    """``url`` with its password hidden, for messages; StorageError when it is not a URL."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        raise StorageError(f"storage: {url!r} is not a database URL; expected e.g. "
                           "'sqlite:///tune.db' or 'postgresql://user:password@host/db'") from None


def root_cause(error):
    """"Type: first line" of the innermost cause of ``error`` (the driver's error under
    SQLAlchemy's and Optuna's wrappers: permission denied, the server shutting down...)."""
    while (error.__cause__ or error.__context__) is not None:
        error = error.__cause__ or error.__context__
    return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"


def describe(storage):
    """``storage`` for messages: a URL with its password hidden, else its repr."""
    try:
        return shown_url(storage) if isinstance(storage, str) else repr(storage)
    except StorageError:
        return repr(storage)


@functools.lru_cache(maxsize=None)
def _rdb_storage(url, heartbeat):
    shown = shown_url(url)
    url, engine_kwargs = engine_options(url, shown)
    try:
        storage = _create(url, engine_kwargs, heartbeat)
    except ImportError as error:
        raise StorageError(f"storage: the database driver for {shown} is not installed "
                           f"({error}); install it") from None
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError,
            RuntimeError, ValueError) as error:
        hint = ""
        if url.partition("://")[2].partition("/")[0].count("@") > 1:
            hint = ("; a password with @, :, / or % must be percent-encoded in the URL "
                    "(urllib.parse.quote(password, safe=''))")
        raise StorageError(f"storage: cannot open {shown}: the database is unreachable or "
                           f"unusable ({root_cause(error)}){hint}") from None
    configure_engine(storage.engine)
    try:  # another application's database with tables of the same names fails here, not later
        storage.get_all_studies()
    except Exception as error:
        raise StorageError(f"storage: cannot use {shown}: it is not an Optuna database, or it is "
                           f"damaged, or this user may not read it ({root_cause(error)})") \
            from None
    # Optuna's cache of finished trials, kept for the process: each study loaded from a bare
    # RDBStorage gets a new, empty cache and reads every trial again (quadratic in trials).
    return optuna.storages.get_storage(storage)


def engine_options(url, shown):
    """(url, SQLAlchemy engine keyword arguments) for a database URL: an SQLite file is checked
    and waits up to 60 s for the write lock; PostgreSQL gets its driver named, a 10 s connect
    timeout and a check of each pooled connection before use."""
    if url.startswith("sqlite"):
        _check_sqlite_file(sqlalchemy.engine.make_url(url).database, shown)
        return url, {"connect_args": {"timeout": 60}}
    if url.startswith("postgresql"):  # pre-ping: a pooled connection that a server restart
        # ended is replaced, not used (an error in each process once, after every restart)
        return _postgresql_driver(url, shown), {"connect_args": {"connect_timeout": 10},
                                                "pool_pre_ping": True}
    return url, {}


def configure_engine(engine):
    """SQLite: every connection from now on in write-ahead-log mode, each transaction taking the
    write lock first (``_sqlite_connect``, ``_sqlite_begin``); other databases as they are."""
    if engine.dialect.name != "sqlite":
        return
    sqlalchemy.event.listen(engine, "connect", _sqlite_connect)
    sqlalchemy.event.listen(engine, "begin", _sqlite_begin)
    engine.dispose()  # the connections from now on are set up as above


#: PostgreSQL's drivers: (URL driver name, module, how to install it).
POSTGRESQL_DRIVERS = (("psycopg", "psycopg", "pip install 'psycopg[binary]' (in fastnn[tune])"),
                      ("psycopg2", "psycopg2", "pip install psycopg2-binary"))


def _postgresql_driver(url, shown):
    """``url`` with its PostgreSQL driver named: a plain ``postgresql://`` gets the first of
    ``POSTGRESQL_DRIVERS`` that imports; StorageError when the driver asked for (or any, for a
    plain URL) is not installed, saying which URL goes with which driver."""
    parsed = sqlalchemy.engine.make_url(url)
    wanted = parsed.drivername.partition("+")[2]
    options = "; ".join(f"postgresql+{name}:// needs {install}"
                        for name, _, install in POSTGRESQL_DRIVERS)
    for name, module, _ in POSTGRESQL_DRIVERS:
        if wanted in ("", name) and importlib.util.find_spec(module) is not None:
            return url if wanted else parsed.set(drivername=f"postgresql+{name}") \
                .render_as_string(hide_password=False)
    if wanted and wanted not in {name for name, _, _ in POSTGRESQL_DRIVERS}:
        return url  # another driver (pg8000, asyncpg...): SQLAlchemy says if it is missing
    raise StorageError(f"storage: {shown} needs a PostgreSQL driver"
                       f"{f' ({wanted})' if wanted else ''}, which is not installed: "
                       f"postgresql:// takes psycopg 3 or psycopg2, whichever is installed; "
                       f"{options}")


def _create(url, engine_kwargs, heartbeat):
    """``RDBStorage(url)``, through ``creating_tables``."""
    def create():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                              heartbeat_interval=heartbeat)
    return creating_tables(create)


def creating_tables(create, attempts=10):
    """``create()``, tried again (after up to 0.5 s) when another process is creating the same
    database's tables at that moment (its schema commit conflicts with ours)."""
    for attempt in range(attempts):
        try:
            return create()
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError,
                sqlalchemy.exc.ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0.1, 0.5))


def _sqlite_connect(connection, _):
    """Write-ahead logging: a commit appends to the log without an fsync (synchronous=NORMAL: a
    killed process loses nothing it committed; only a power cut can lose the last commits).
    The driver's own transaction handling is turned off for ``_sqlite_begin``."""
    connection.isolation_level = None
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(connection):
    """Every transaction takes the write lock first (waiting up to the timeout for it), so that
    the processes sharing the file serialize their transactions. Without it, Python's sqlite3
    reads outside any transaction, so that a read-then-write of Optuna's (guarded by SELECT ...
    FOR UPDATE, which SQLite ignores) could interleave with another process's, and a read
    transaction that turns into a write fails with "database is locked" at once."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")
