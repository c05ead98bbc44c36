"""Where the trials' models are kept, so that the search's own process can load the best one
(``SearchResult.best_model``) wherever the trials ran.

- A folder (``search(model_dir=...)``): each trial writes ``STUDY-trial-NNNN.npz`` there and
  stores the file's path. With workers on several machines it must be a folder that every one of
  them and the search's process reach at the same path (a network file system).
- An Optuna artifact store (``search(artifact_store=...)``): each trial uploads its model with
  ``optuna.artifacts.upload_artifact`` and stores the artifact's id (user attribute
  ``model_artifact``). ``"storage"`` stands for ``DatabaseArtifactStore`` on the search's own
  database: wherever a worker can record its trial, it can keep its model. Optuna's own stores
  serve too: ``FileSystemArtifactStore`` on a shared folder, ``Boto3ArtifactStore`` (S3),
  ``GCSArtifactStore``.
"""
import functools
import io
import os
import tempfile
import warnings

import optuna
import sqlalchemy
from optuna.artifacts.exceptions import ArtifactNotFound

from fastnn.nn import load
from fastnn.tune.storage import configure_engine, creating_tables, engine_options, shown_url

__all__ = ["IN_STORAGE", "DatabaseArtifactStore", "artifact_store_for", "download_model",
           "upload_model"]

#: ``artifact_store=IN_STORAGE``: the models go into the search's database.
IN_STORAGE = "storage"
#: The table of ``DatabaseArtifactStore``, beside Optuna's tables.
TABLE = "fastnn_artifacts"

_metadata = sqlalchemy.MetaData()
_artifacts = sqlalchemy.Table(
    TABLE, _metadata,
    sqlalchemy.Column("artifact_id", sqlalchemy.String(255), primary_key=True),
    sqlalchemy.Column("content", sqlalchemy.LargeBinary, nullable=False))


class DatabaseArtifactStore:
    """An Optuna artifact store (``open_reader``, ``write``, ``remove``) in a table
    (``fastnn_artifacts``: artifact id, bytes) of the database at ``url``, the one that holds the
    study. Picklable (it travels as its URL; each process opens its own connections)."""

    def __init__(self, url):
        self.url = url
        _engine(url)  # a bad URL or an unreachable database fails here, in the search's process

    def __getstate__(self):
        return {"url": self.url}

    def __setstate__(self, state):
        self.url = state["url"]

    def open_reader(self, artifact_id):
        with _engine(self.url).connect() as connection:
            content = connection.execute(sqlalchemy.select(_artifacts.c.content).where(
                _artifacts.c.artifact_id == artifact_id)).scalar()
        if content is None:
            raise ArtifactNotFound(f"artifact {artifact_id} is not in {shown_url(self.url)}")
        return io.BytesIO(content)

    def write(self, artifact_id, content_body):
        content = content_body.read()
        with _engine(self.url).begin() as connection:  # one transaction: all or nothing
            connection.execute(_artifacts.delete().where(_artifacts.c.artifact_id == artifact_id))
            connection.execute(_artifacts.insert().values(artifact_id=artifact_id,
                                                          content=content))

    def remove(self, artifact_id):
        with _engine(self.url).begin() as connection:
            deleted = connection.execute(_artifacts.delete().where(
                _artifacts.c.artifact_id == artifact_id)).rowcount
        if not deleted:
            raise ArtifactNotFound(f"artifact {artifact_id} is not in {shown_url(self.url)}")


@functools.lru_cache(maxsize=None)
def _engine(url):
    """The process's engine for ``url``, with ``TABLE`` created if missing."""
    url, kwargs = engine_options(url, shown_url(url))
    engine = sqlalchemy.create_engine(url, **kwargs)
    configure_engine(engine)
    creating_tables(lambda: _metadata.create_all(engine, checkfirst=True))
    return engine


def artifact_store_for(artifact_store, storage):
    """The store ``artifact_store`` stands for: None, a ``DatabaseArtifactStore`` on ``storage``
    (a database URL) for ``IN_STORAGE``, or the store itself (anything with ``open_reader``,
    ``write`` and ``remove``); ValueError otherwise."""
    if artifact_store is None:
        return None
    if isinstance(artifact_store, str) and artifact_store == IN_STORAGE:
        if not isinstance(storage, str):
            raise ValueError(f"search: artifact_store='storage' keeps the models in the search's "
                             f"database, which needs storage to be a database URL, got "
                             f"{storage!r}")
        return DatabaseArtifactStore(storage)
    if all(callable(getattr(artifact_store, name, None))
           for name in ("open_reader", "write", "remove")):
        return artifact_store
    raise ValueError(f"search: artifact_store must be None, 'storage' or an Optuna artifact "
                     f"store (e.g. optuna.artifacts.FileSystemArtifactStore), got "
                     f"{artifact_store!r}")


def upload_model(model, artifact_store, optuna_trial, name):
    """Save ``model`` (a file ``name`` in a temporary folder), upload it to ``artifact_store``
    for ``optuna_trial``; returns the artifact's id."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, name)
        model.save(path)
        with warnings.catch_warnings():  # experimental since Optuna 3.3, stable in use
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.artifacts.upload_artifact(artifact_store=artifact_store,
                                                    file_path=path, study_or_trial=optuna_trial)


def download_model(artifact_store, artifact_id):
    """The model of artifact ``artifact_id`` in ``artifact_store``, loaded."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.npz")
        optuna.artifacts.download_artifact(artifact_store=artifact_store, file_path=path,
                                           artifact_id=artifact_id)
        return load(path)
