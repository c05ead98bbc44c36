"""The prediction job, ``python -m fastnn predict``: a model written by ``fastnn train --data``
(model.npz and its description model.json beside it) applied to the rows of a data file, the
predictions written to a CSV file: the predicted labels (as in the training data) or values
under the target's name, and for classification a probability column per class
(``proba_CLASS``; multi-label: ``proba_COLUMN``), one row per row of the data, in order.

The features are read by name from a CSV or Parquet file (other columns, such as the target,
are ignored) and by position from an .npz's X. ``run`` checks the output file's place, the
model and the data (``OptionError``, ``fastnn.tabular.DataError``) before anything is written;
the predictions are written whole or not at all (``fastnn.files.atomic_write``).
"""
import csv
import os

from fastnn import tabular
from fastnn.cli._common import OptionError
from fastnn.files import atomic_write

__all__ = ["run"]


def _check_out(out):
    """``OptionError`` (out) unless ``out`` names a .csv file that can be written: not a folder,
    in a folder that exists or can be made (not under a file) and is writable."""
    out = os.fspath(out)
    if not out or os.path.splitext(out)[1].lower() != ".csv":
        raise OptionError("out", f"the predictions are written as CSV: give a file name ending "
                                 f"in .csv, got {out!r}")
    if os.path.isdir(out):
        raise OptionError("out", f"{out!r} is a folder; give a file name")
    folder = os.path.dirname(os.path.abspath(out))
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise OptionError("out", f"cannot write {out!r}: {existing!r} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OptionError("out", f"cannot write {out!r}: the folder {existing!r} is not "
                                 f"writable")
    return out


def run(model="fastnn-run/model.npz", data=None, out="predictions.csv", backend=None):
    """Predict the rows of the data file ``data`` with the model file ``model`` (and its
    description beside it) and write them to the CSV file ``out``; returns (header, rows) as
    written."""
    out = _check_out(out)
    if backend is not None:
        from fastnn import backend as backends
        try:
            backends.get(backend)
        except (ValueError, RuntimeError, ImportError) as error:
            raise OptionError("backend", f"backend {backend!r} cannot run here: {error}") \
                from None
    try:
        net, schema = tabular.load_model(model, backend)
    except FileNotFoundError as error:
        if not os.path.exists(model):
            raise OptionError("model", f"no such file: {model}") from None
        raise OptionError("model", str(error)) from None
    except (OSError, ValueError) as error:
        raise OptionError("model", " ".join(str(error).split())) from None
    if data is None:
        raise OptionError("data", "give the data file to predict (--data FILE)")
    X = tabular.read_features(data, schema)
    header, rows = schema.predictions(net, X)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with atomic_write(out, "w") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    print(f"{len(rows)} predictions of {', '.join(schema.target)} ({schema.task}) in {out}")
    return header, rows
