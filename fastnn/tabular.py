"""Tables of the user's data for a model: a CSV, .npz or Parquet file read into named columns, the
task (given, or inferred from the target), the features and targets as the model's arrays, a
stratified test split, and the description (``Schema``) saved beside a model that turns its
predictions back into the original labels. The command line's ``train --data``, ``predict`` and
``tune --data`` are built on it.

Files (``read_table``), by extension:

- ``.csv`` (``.tsv``: tab-separated): a header row naming the columns, then one row per sample,
  read with the standard library's ``csv`` module (UTF-8, an optional BOM; blank lines skipped).
  A column is numeric when every present value parses as a number.
- ``.npz``: the arrays ``X`` (n_samples, n_features; numbers) and ``y`` (n_samples,) or
  (n_samples, k) (numbers or strings), as ``np.savez`` writes them (no pickle). The feature
  columns are named x0, x1, ...; the target y (y0, y1, ... for a 2-D y).
- ``.parquet`` (``.pq``): read with pyarrow when it is installed (ImportError saying to install
  it otherwise); numeric, boolean and text columns.

Missing values: the cells "", "NA", "N/A", "#N/A", "<NA>", "NaN", "-NaN", "null", "None" and "?"
(in any case, spaces around ignored) in a CSV, NaN in an .npz, nulls and NaN in Parquet. fastnn
does not impute: a feature or target with missing values is an error naming the column, the
count and where the first is, and so is a non-numeric feature and an infinite value.

Tasks, with the model's loss (``LOSSES``): "multiclass" (softmax cross-entropy; one target
column of labels), "binary" (sigmoid cross-entropy, one output; a target column of 2 distinct
labels, the second in sorted order is the positive class), "multilabel" (sigmoid cross-entropy,
one output per target column; each column 0/1), "regression" (mean squared error, one output
per target column). ``infer_task`` (task="auto") decides from the target column(s):

1. several target columns: "multilabel" when every value is 0 or 1, else "regression";
2. one column with exactly 2 distinct values: "binary";
3. one column of text (a value that is not a number): "multiclass";
4. one column of whole numbers with at most ``MAX_AUTO_CLASSES`` (20) distinct values:
   "multiclass";
5. otherwise (fractional numbers, or more distinct whole numbers): "regression".

Class labels keep their values: text as written (spaces around removed), numbers as numbers
(whole numbers written back without a fraction: "3", not "3.0").
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import zipfile
import zlib

import numpy as np

from fastnn import backend as _backend
from fastnn.files import atomic_write
from fastnn.nn.layers import Dense

__all__ = ["LOSSES", "MAX_AUTO_CLASSES", "MIN_ROWS", "MISSING", "TASKS", "DataError", "Dataset",
           "Schema", "Table", "infer_task", "load_data", "load_model", "read_features",
           "read_table", "save_model", "scale_targets", "schema_path", "split",
           "target_scaling", "unscale_outputs"]

TASKS = ("multiclass", "binary", "multilabel", "regression")
#: The loss a model of each task trains with.
LOSSES = {"multiclass": "softmax_cross_entropy", "binary": "sigmoid_cross_entropy",
          "multilabel": "sigmoid_cross_entropy", "regression": "mean_squared_error"}
#: task="auto": one target column of whole numbers with at most this many distinct values is
#: multiclass (more: regression).
MAX_AUTO_CLASSES = 20
#: The fewest rows a data set may have (a test part, a validation part and training rows).
MIN_ROWS = 10
#: The cells of a CSV (lowercased, stripped) that are missing values.
MISSING = frozenset({"", "na", "n/a", "#n/a", "<na>", "nan", "-nan", "null", "none", "?"})
#: File kinds by extension.
KINDS = {".csv": "csv", ".tsv": "tsv", ".npz": "npz", ".parquet": "parquet", ".pq": "parquet"}
SCHEMA_FORMAT = "fastnn-tabular-1"
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class DataError(ValueError):
    """Bad data, found before any training: one line saying what is wrong and where (the file,
    the column, the line or row). ``name``: the argument of ``load_data`` at fault ("path",
    "target", "task" or "drop")."""

    def __init__(self, message, name="path"):
        super().__init__(message)
        self.name = name


def _names(names, limit=20):
    """'a', 'b', 'c' (the first ``limit``, then how many in all)."""
    names = list(names)
    text = ", ".join(repr(n) for n in names[:limit])
    return text + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _one_line(error):
    return " ".join(str(error).split())


# --- columns and tables ------------------------------------------------------------------------

class Column:
    """One column: ``numbers`` (float64, NaN where a value is missing or not a number),
    ``missing`` (bool per row), ``text`` (None when every present value is a number; else an
    object array of the values as text, None where missing) and ``first_text`` (the row of the
    first value that is not a number, or None)."""

    def __init__(self, name, numbers, missing, text=None, first_text=None):
        self.name, self.numbers, self.missing = name, numbers, missing
        self.text, self.first_text = text, first_text

    @property
    def numeric(self):
        return self.text is None

    @classmethod
    def from_cells(cls, name, cells):
        """The column of text cells (a CSV's, or a Parquet text column's: None is missing)."""
        cells = ["" if c is None else str(c).strip() for c in cells]
        missing = np.fromiter((c.lower() in MISSING for c in cells), bool, len(cells))
        try:  # (the fast path: NumPy parses the numbers)
            numbers = np.array(["nan" if m else c for c, m in zip(cells, missing)], np.float64)
            return cls(name, numbers, missing)
        except ValueError:
            pass
        numbers, text, first = np.full(len(cells), np.nan), np.empty(len(cells), object), None
        for i, (cell, gap) in enumerate(zip(cells, missing)):
            if gap:
                continue
            text[i] = cell
            try:
                numbers[i] = float(cell)
            except ValueError:
                first = i if first is None else first
        return cls(name, numbers, missing, None if first is None else text, first)

    @classmethod
    def from_array(cls, name, values):
        """The column of a 1-D NumPy array: numbers or booleans (NaN is missing), or strings."""
        if values.dtype.kind in "biuf":
            numbers = values.astype(np.float64)
            return cls(name, numbers, np.isnan(numbers))
        return cls.from_cells(name, values.tolist())


class Table:
    """Named columns of equal length read from ``path``: ``names`` (in the file's order),
    ``columns`` ({name: Column}), ``n_rows``; ``kind`` ("csv", "tsv", "npz", "parquet");
    ``targets``: the target columns when the file fixes them (an .npz's y), else None;
    ``where(i)``: where row i is in the file ("line 7" for text files, "row 7" otherwise)."""

    def __init__(self, path, kind, columns, lines=None, targets=None, n_rows=None):
        self.path, self.kind, self.columns = path, kind, {c.name: c for c in columns}
        self.names = [c.name for c in columns]
        self.n_rows = n_rows if n_rows is not None else len(columns[0].numbers) if columns else 0
        self.lines, self.targets = lines, targets

    def where(self, row):
        return f"line {self.lines[row]}" if self.lines is not None else f"row {row + 1}"

    def column(self, name, role="column"):
        try:
            return self.columns[name]
        except KeyError:
            raise DataError(f"no {role} {name!r} in {self.path}; its columns: "
                            f"{_names(self.names)}", "target") from None

    def matrix(self, names, role="column"):
        """The columns ``names`` as one float32 array (n_rows, len(names)); DataError for the
        first that is not numeric, has missing values, or has values that are infinite or
        beyond float32's range."""
        X = np.empty((self.n_rows, len(names)), np.float32)
        for j, name in enumerate(names):
            X[:, j] = self._values(name, role)
        return X

    def _values(self, name, role):
        c, path = self.columns[name], self.path
        if not c.numeric:
            i = c.first_text
            raise DataError(f"{path}: the {role} {name!r} is not numeric ({self.where(i)}: "
                            f"{c.text[i]!r}); features must be numbers: encode it as numbers "
                            f"or drop the column")
        self.check_present(name, role)
        bad = ~np.isfinite(c.numbers)
        if bad.any():
            raise DataError(f"{path}: the {role} {name!r} has {int(bad.sum())} infinite "
                            f"value{'s' * (int(bad.sum()) > 1)} (first at "
                            f"{self.where(int(np.argmax(bad)))})")
        big = np.abs(c.numbers) > _FLOAT32_MAX
        if big.any():
            i = int(np.argmax(big))
            raise DataError(f"{path}: the {role} {name!r} has {int(big.sum())} value"
                            f"{'s' * (int(big.sum()) > 1)} beyond float32's range (first at "
                            f"{self.where(i)}: {c.numbers[i]:.3g})")
        return c.numbers

    def check_present(self, name, role="column"):
        """DataError when the column ``name`` has missing values (how many, the first)."""
        c = self.columns[name]
        if c.missing.any():
            n = int(c.missing.sum())
            raise DataError(f"{self.path}: the {role} {name!r} has {n} missing value"
                            f"{'s' * (n > 1)} (first at {self.where(int(np.argmax(c.missing)))})"
                            f"; fill them in or drop those rows")


def file_kind(path):
    """"csv", "tsv", "npz" or "parquet" from the extension of ``path``; DataError otherwise."""
    extension = os.path.splitext(os.fspath(path))[1].lower()
    if extension not in KINDS:
        raise DataError(f"{os.fspath(path)}: unknown file type {extension or '(no extension)'!r}"
                        f"; fastnn reads {', '.join(KINDS)} files")
    return KINDS[extension]


def read_table(path):
    """The ``Table`` in the file ``path`` (see the module's docstring); DataError for a file
    that is missing, of an unknown type, empty, or does not parse (with the line when known);
    ImportError for Parquet without pyarrow."""
    path = os.fspath(path)
    kind = file_kind(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    if os.path.isdir(path):
        raise DataError(f"{path} is a folder, not a data file")
    try:
        if kind == "npz":
            table = _read_npz(path)
        elif kind == "parquet":
            table = _read_parquet(path)
        else:
            table = _read_csv(path, "\t" if kind == "tsv" else ",", kind)
    except OSError as error:
        raise DataError(f"{path}: cannot read it: {error.strerror or _one_line(error)}") \
            from None
    if table.n_rows == 0:
        header = " (only a header)" if table.kind in ("csv", "tsv") else ""
        raise DataError(f"{path} has no data rows{header}")
    return table


def _read_csv(path, delimiter, kind):
    with open(path, "rb") as f:
        reader = csv.reader(_text_lines(f, path, kind), delimiter=delimiter, strict=True)
        rows, lines, header = [], [], None
        try:
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line
                if header is None:
                    header = [name.strip() for name in row]
                    _check_header(path, header, delimiter)
                    continue
                if len(row) != len(header):
                    raise DataError(f"{path}: line {reader.line_num} has {len(row)} field"
                                    f"{'s' * (len(row) != 1)}, the header has {len(header)}")
                rows.append(row)
                lines.append(reader.line_num)
        except csv.Error as error:
            raise DataError(f"{path}: line {reader.line_num}: does not parse as "
                            f"{kind.upper()} ({_one_line(error)})") from None
    if header is None:
        raise DataError(f"{path} is empty")
    columns = [Column.from_cells(name, cells) for name, cells in
               zip(header, zip(*rows) if rows else [[] for _ in header])]
    return Table(path, kind, columns, lines)


def _text_lines(f, path, kind):
    """The lines of the binary file ``f`` decoded from UTF-8 (a BOM dropped); DataError naming
    the line of a byte that is not UTF-8."""
    for number, raw in enumerate(f, 1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            raise DataError(f"{path}: line {number} is not UTF-8 text (byte "
                            f"0x{raw[error.start]:02x}); is it a {kind.upper()} file?") from None


def _check_header(path, header, delimiter):
    for i, name in enumerate(header):
        if not name:
            raise DataError(f"{path}: the header's column {i + 1} has no name")
        if header.index(name) != i:
            raise DataError(f"{path}: the header names {name!r} twice (columns "
                            f"{header.index(name) + 1} and {i + 1})")
    if len(header) == 1 and any(s in header[0] for s in ";\t,|" if s != delimiter):
        raise DataError(f"{path}: the header has one column, {header[0]!r}; fastnn reads "
                        f"{'tab' if delimiter == chr(9) else 'comma'}-separated values")


def _read_npz(path):
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(f"{path}: not a readable .npz archive of NumPy arrays "
                        f"({_one_line(error)})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path} holds one array, not an .npz archive of the arrays X and y")
    with archive:
        if "X" not in archive.files:
            raise DataError(f"{path} has no array 'X' (the features); its arrays: "
                            f"{_names(archive.files) or 'none'}")
        X = _member(path, archive, "X")
        y = _member(path, archive, "y") if "y" in archive.files else None
    if X.ndim != 2 or X.dtype.kind not in "biuf":
        raise DataError(f"{path}: X must be a 2-D array of numbers (samples, features), got "
                        f"shape {X.shape} and dtype {X.dtype}")
    columns = [Column.from_array(f"x{j}", X[:, j]) for j in range(X.shape[1])]
    targets = None
    if y is not None:
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim not in (1, 2) or y.shape[0] != X.shape[0] or y.dtype.kind not in "biufU":
            raise DataError(f"{path}: y must hold a number or string per row of X ({X.shape[0]} "
                            f"rows): shape ({X.shape[0]},) or ({X.shape[0]}, k); got shape "
                            f"{y.shape} and dtype {y.dtype}")
        targets = ["y"] if y.ndim == 1 else [f"y{j}" for j in range(y.shape[1])]
        columns += [Column.from_array(name, y if y.ndim == 1 else y[:, j])
                    for j, name in enumerate(targets)]
    return Table(path, "npz", columns, targets=targets, n_rows=X.shape[0])


def _member(path, archive, name):
    try:
        return archive[name]
    except (ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(f"{path}: the array {name!r} cannot be read ({_one_line(error)}); "
                        f"fastnn reads plain arrays of numbers or strings, no pickle") from None


def _read_parquet(path):
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(f"reading the Parquet file {path} needs pyarrow: pip install pyarrow") \
            from None
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, ValueError) as error:
        raise DataError(f"{path}: not a readable Parquet file ({_one_line(error)})") from None
    names = [str(n) for n in table.column_names]
    for i, name in enumerate(names):
        if names.index(name) != i:
            raise DataError(f"{path}: the column name {name!r} appears twice")
    columns = []
    for name, values in zip(names, table.columns):
        kind = values.type
        if pa.types.is_dictionary(kind):
            values, kind = values.cast(kind.value_type), kind.value_type
        if (pa.types.is_integer(kind) or pa.types.is_floating(kind)
                or pa.types.is_boolean(kind) or pa.types.is_decimal(kind)):
            numbers = values.cast(pa.float64()).fill_null(float("nan"))
            columns.append(Column.from_array(name, np.asarray(numbers.to_numpy(), np.float64)))
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            columns.append(Column.from_cells(name, values.to_pylist()))
        else:
            raise DataError(f"{path}: the column {name!r} has the Parquet type {kind}; fastnn "
                            f"reads numbers, booleans and text")
    return Table(path, "parquet", columns)


# --- the schema: what a model takes and gives ----------------------------------------------------

def _label(value):
    """A class label as JSON keeps it: str, int (a whole number) or float."""
    if isinstance(value, str):
        return value
    value = float(value)
    return int(value) if value.is_integer() else value


def _label_text(value):
    return value if isinstance(value, str) else repr(value)


class Schema:
    """What a model trained on a table takes and gives: ``features`` (the columns it takes, in
    order), ``target`` (the target columns), ``task`` (one of ``TASKS``) and ``classes``
    (binary and multiclass: the original labels, sorted: output i is class i; None
    otherwise). ``loss``, ``n_outputs`` and ``outputs`` (the names of the outputs) follow.
    Saved as JSON beside the model (``save_model``)."""

    def __init__(self, features, target, task, classes=None):
        if task not in TASKS:
            raise ValueError(f"Schema: task must be one of {', '.join(TASKS)}, got {task!r}")
        self.features, self.target, self.task = list(features), list(target), task
        self.classes = None if classes is None else [_label(c) for c in classes]
        if (self.classes is None) != (task in ("multilabel", "regression")):
            raise ValueError(f"Schema: classes are given for binary and multiclass models "
                             f"only, got {classes!r} for {task}")

    @property
    def loss(self):
        return LOSSES[self.task]

    @property
    def n_outputs(self):
        return {"multiclass": len(self.classes or ()), "binary": 1}.get(self.task,
                                                                         len(self.target))

    @property
    def outputs(self):
        """Names of the outputs: the classes (multiclass), the positive class (binary), the
        target columns (multilabel, regression)."""
        if self.task == "multiclass":
            return [_label_text(c) for c in self.classes]
        if self.task == "binary":
            return [_label_text(self.classes[1])]
        return list(self.target)

    @property
    def metric(self):
        return "r2" if self.task == "regression" else "accuracy"

    def describe(self):
        """'multiclass: 3 classes (setosa, versicolor, virginica)' and the like."""
        if self.classes is not None:
            names = _names(self.classes, 10)
            return f"{self.task}: {len(self.classes)} classes ({names})"
        return f"{self.task}: {len(self.target)} output{'s' * (len(self.target) > 1)}"

    def to_dict(self):
        return {"format": SCHEMA_FORMAT, "task": self.task, "loss": self.loss,
                "features": self.features, "target": self.target, "classes": self.classes,
                "outputs": self.outputs}

    @classmethod
    def from_dict(cls, d):
        """The schema of ``to_dict``; ValueError saying what is wrong."""
        if not isinstance(d, dict) or d.get("format") != SCHEMA_FORMAT:
            raise ValueError(f"not a fastnn model description (format {SCHEMA_FORMAT!r})")
        try:
            features, target, classes = d["features"], d["target"], d.get("classes")
            if not (isinstance(features, list) and isinstance(target, list)
                    and all(isinstance(n, str) for n in features + target)
                    and (classes is None or isinstance(classes, list)
                         and all(isinstance(c, (str, int, float)) for c in classes))):
                raise ValueError("features, target and classes must be lists of names")
            return cls(features, target, d["task"], classes)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"a damaged model description ({_one_line(error)})") from None

    def predictions(self, model, X):
        """(header, rows) of a predictions table for the features X: the predicted labels (as
        in the data) or values under the target's name, then for classification a probability
        column per class (``proba_CLASS``; multi-label: ``proba_COLUMN``)."""
        labels = model.predict(X)
        labels = labels.reshape(labels.shape[0], -1) if self.task == "multilabel" else labels
        if self.task == "regression":
            values = labels.reshape(labels.shape[0], -1).astype(np.float32)
            return list(self.target), [[str(v) for v in row] for row in values]
        proba = model.predict_proba(X).astype(np.float32)
        if self.task == "multilabel":
            header = self.target + [f"proba_{t}" for t in self.target]
            return header, [[str(int(v)) for v in lab] + [str(p) for p in pr]
                            for lab, pr in zip(labels, proba)]
        if self.task == "binary":
            proba = np.column_stack([np.float32(1) - proba[:, 0], proba[:, 0]])
        names = [_label_text(c) for c in self.classes]
        header = self.target + [f"proba_{c}" for c in names]
        return header, [[names[int(i)]] + [str(p) for p in pr] for i, pr in zip(labels, proba)]


# --- data sets -----------------------------------------------------------------------------------

class Dataset:
    """Features ``X`` (float32, (n, len(schema.features))), targets ``y`` in the form the
    schema's loss takes (multiclass: class indices; binary: 0/1 float32 (n,); multilabel: 0/1
    float32 (n, k); regression: float32 values, (n,) or (n, k)), the ``schema`` and the
    ``rows`` of the file they come from."""

    def __init__(self, X, y, schema, rows=None, path=None):
        self.X, self.y, self.schema, self.path = X, y, schema, path
        self.rows = np.arange(X.shape[0]) if rows is None else rows

    def __len__(self):
        return self.X.shape[0]

    def subset(self, rows):
        return Dataset(self.X[rows], self.y[rows], self.schema, self.rows[rows], self.path)

    def fingerprint(self):
        """A short hash of the features and targets (a search resumes only on the same data)."""
        digest = hashlib.sha256(np.ascontiguousarray(self.X).tobytes())
        digest.update(np.ascontiguousarray(self.y).tobytes())
        return digest.hexdigest()[:12]


def _target_names(table, target):
    if target is None:
        return list(table.targets or table.names[-1:])
    if isinstance(target, str):
        names = [target] if target in table.columns else [t.strip() for t in target.split(",")]
    else:
        names = list(target)
    if not names or any(not isinstance(n, str) or not n for n in names):
        raise DataError(f"the target must name one column or several (comma-separated), got "
                        f"{target!r}", "target")
    if len(set(names)) != len(names):
        raise DataError(f"the target names a column twice: {target!r}", "target")
    if table.targets is not None and names != table.targets:
        raise DataError(f"an .npz file's target is its array y ({_names(table.targets)}); "
                        f"got {target!r}", "target")
    for name in names:
        table.column(name, "column")
    return names


def load_data(path, target=None, task="auto", drop=()):
    """The ``Dataset`` in the file ``path``: every column but the target and ``drop`` is a
    feature. target: a column name, several (a list, or one string of comma-separated names),
    or None (the last column; an .npz's y). task: "auto" (``infer_task``) or one of ``TASKS``.
    DataError (``name``: the argument at fault) for bad data or arguments, found before
    anything is built; ImportError for Parquet without pyarrow."""
    if task != "auto" and task not in TASKS:
        raise DataError(f"task must be 'auto' or one of {', '.join(TASKS)}, got {task!r}", "task")
    table = read_table(path)
    targets = _target_names(table, target)
    drop = [d.strip() for d in drop.split(",")] if isinstance(drop, str) else list(drop or ())
    for name in drop:
        if name not in table.columns:
            raise DataError(f"no column {name!r} to drop in {table.path}; its columns: "
                            f"{_names(table.names)}", "drop")
        if name in targets:
            raise DataError(f"{name!r} is the target; it cannot be dropped", "drop")
    features = [n for n in table.names if n not in targets and n not in drop]
    if not features:
        raise DataError(f"{table.path}: no feature columns (the columns {_names(table.names)} "
                        f"are the target or dropped)")
    if table.n_rows < MIN_ROWS:
        raise DataError(f"{table.path}: too few rows: {table.n_rows} (at least {MIN_ROWS}: a "
                        f"test part, a validation part and training rows)")
    X = table.matrix(features, "feature column")
    for name in targets:
        table.check_present(name, "target column")
    given = task != "auto"
    task = task if given else infer_task([table.columns[n] for n in targets])
    y, classes = _encode(table, targets, task, given)
    return Dataset(X, y, Schema(features, targets, task, classes), path=table.path)


def infer_task(columns):
    """The task for the target ``columns`` (Column objects, no missing values): see the
    module's docstring."""
    if len(columns) > 1:
        if all(c.numeric and np.isin(c.numbers, (0.0, 1.0)).all() for c in columns):
            return "multilabel"
        return "regression"
    c = columns[0]
    values = c.text if not c.numeric else c.numbers
    distinct = len(set(values.tolist()))
    if distinct == 2 or not c.numeric:
        return "binary" if distinct == 2 else "multiclass"
    whole = np.all(c.numbers == np.round(c.numbers))
    return "multiclass" if whole and distinct <= MAX_AUTO_CLASSES else "regression"


def _encode(table, targets, task, given):
    """(y, classes) for the target columns and the task; DataError when they do not fit."""
    path, name = table.path, "task" if given else "path"
    columns = [table.columns[t] for t in targets]
    if task in ("binary", "multiclass") and len(columns) > 1:
        raise DataError(f"task {task!r} takes one target column, got {len(columns)}: "
                        f"{_names(targets)}", name)
    if task in ("multilabel", "regression"):
        for c in columns:
            if not c.numeric:
                i = c.first_text
                raise DataError(f"{path}: the target column {c.name!r} is not numeric "
                                f"({table.where(i)}: {c.text[i]!r}); task {task!r} needs "
                                f"numbers", name)
        Y = table.matrix(targets, "target column")
        if task == "multilabel":
            for j, c in enumerate(columns):
                bad = ~np.isin(Y[:, j], (0.0, 1.0))
                if bad.any():
                    i = int(np.argmax(bad))
                    raise DataError(f"{path}: task 'multilabel' needs 0/1 values in each target "
                                    f"column; {c.name!r} has {c.numbers[i]:g} "
                                    f"({table.where(i)})", name)
        elif (Y == Y[0]).all():
            raise DataError(f"{path}: the target {_names(targets)} is constant "
                            f"({_label_text(_label(Y[0, 0]))} in all {table.n_rows} rows): "
                            f"nothing to learn")
        return (Y[:, 0] if Y.shape[1] == 1 else Y), None
    c = columns[0]
    if c.numeric:
        table.matrix(targets, "target column")  # (infinite values)
        classes, y = np.unique(c.numbers, return_inverse=True)
    else:
        classes, y = np.unique(c.text.astype(str), return_inverse=True)
    classes = [_label(v) for v in classes.tolist()]
    if len(classes) < 2:
        raise DataError(f"{path}: the target column {c.name!r} has a single class "
                        f"({classes[0]!r} in all {table.n_rows} rows): a classifier "
                        f"needs 2 or more")
    if task == "binary":
        if len(classes) != 2:
            raise DataError(f"{path}: task 'binary' needs 2 distinct values in the target column "
                            f"{c.name!r}, found {len(classes)}: "
                            f"{_names(classes, 10)}", name)
        return y.astype(np.float32), classes
    return y.astype(np.intp), classes


def read_features(path, schema):
    """The features of ``schema`` read from the file ``path`` (float32 (n, len(features))): by
    name from a CSV or Parquet file (other columns, such as the target, are ignored), by
    position from an .npz's X. DataError for a missing column (named) and bad values."""
    table = read_table(path)
    if table.kind == "npz":
        n = len(table.names) - len(table.targets or ())
        if n != len(schema.features):
            raise DataError(f"{table.path}: X has {n} column{'s' * (n != 1)}; the model takes "
                            f"{len(schema.features)} features ({_names(schema.features, 10)})")
        return table.matrix([f"x{j}" for j in range(n)], "feature column")
    missing = [n for n in schema.features if n not in table.columns]
    if missing:
        raise DataError(f"{table.path}: no column {missing[0]!r}, a feature of the model"
                        + (f" ({len(missing)} missing: {_names(missing, 10)})"
                           if len(missing) > 1 else "")
                        + f"; its columns: {_names(table.names)}")
    return table.matrix(schema.features, "feature column")


def split(data, test_size=0.2, seed=0):
    """(train, test): ``test_size`` (a fraction) of the rows of the Dataset ``data`` held out.
    Binary and multiclass: stratified (each class's share of the test rows is its share of the
    rows, rounded by largest remainder; a class keeps at least one row in the training part);
    multilabel and regression: a random draw. Seeded by ``seed``. DataError when the test part
    would be empty or the training part under 2 rows."""
    if not isinstance(test_size, float) or not 0.0 < test_size < 1.0:
        raise ValueError(f"split: test_size must be a number in (0, 1), got {test_size!r}")
    n = len(data)
    rng = np.random.default_rng(seed)
    n_test = min(max(1, round(n * test_size)), n - 2)
    if data.schema.task in ("binary", "multiclass"):
        test = _stratified(data.y, n_test, rng)
    else:
        test = np.sort(rng.permutation(n)[:max(n_test, 0)])
    if test.size == 0:
        raise DataError(f"{data.path}: cannot hold out a test part of {test_size:g} of "
                        f"{n} rows" + (" (no class has 2 rows)"
                                       if data.schema.task in ("binary", "multiclass") else ""))
    train = np.setdiff1d(np.arange(n), test)
    return data.subset(train), data.subset(test)


def _stratified(y, n_test, rng):
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    quota = counts * (n_test / len(y))
    take = np.minimum(np.floor(quota).astype(np.intp), counts - 1)
    left = n_test - int(take.sum())
    for c in np.lexsort((rng.random(len(classes)), -(quota - take))):  # largest remainder first
        if left <= 0:
            break
        if take[c] < counts[c] - 1:
            take[c] += 1
            left -= 1
    rows = [rng.permutation(np.flatnonzero(inverse == c))[:take[c]] for c in range(len(classes))]
    return np.sort(np.concatenate(rows))


# --- regression targets ----------------------------------------------------------------------

def target_scaling(y):
    """(mean, scale) per output (float64 (k,)) of regression targets y ((n,) or (n, k)): a
    model trains on (y - mean) / scale, whatever the targets' units (scale 1 for a constant
    output)."""
    values = np.asarray(y, np.float64).reshape(len(y), -1)
    mean, scale = values.mean(axis=0), values.std(axis=0)
    scale[scale == 0] = 1.0
    return mean, scale


def scale_targets(y, scaling):
    """(y - mean) / scale, float32, with the (mean, scale) of ``target_scaling``."""
    mean, scale = scaling
    return ((np.asarray(y, np.float64) - mean) / scale).astype(np.float32)


def unscale_outputs(model, mean, scale):
    """Fold outputs * scale + mean into the model's last layer, a Dense layer with a bias and
    no activation (W <- W * scale, b <- b * scale + mean), so that a model trained on
    standardized targets (``target_scaling``) predicts in the targets' units. In place."""
    last = model.layers[-1]
    if not (isinstance(last, Dense) and last.use_bias and last.activation == "linear"):
        raise ValueError(f"unscale_outputs: the last layer must be a Dense layer with a bias "
                         f"and no activation, got {last!r}")
    k = _backend.get(model.backend)
    W, b = (np.asarray(k.to_host(last.params[name]), np.float64) for name in ("W", "b"))
    k.assign(last.params["W"], (W * scale).astype(model.dtype))
    k.assign(last.params["b"], (b * scale + mean).astype(model.dtype))


# --- saving --------------------------------------------------------------------------------------

def schema_path(model_path):
    """The description beside a model file: NAME.json for NAME.npz."""
    return os.path.splitext(os.fspath(model_path))[0] + ".json"


def save_model(model, path, schema):
    """``model.save(path)`` and the schema beside it (``schema_path``), each file written
    whole or not at all."""
    model.save(path)
    with atomic_write(schema_path(path), "w") as f:
        json.dump(schema.to_dict(), f, indent=1)
        f.write("\n")


def load_model(path, backend=None):
    """(model, schema) saved by ``save_model``. FileNotFoundError for a missing model file or
    description; ValueError for a damaged one, or one that does not describe the model."""
    from fastnn.nn import load

    model = load(path, backend)
    description = schema_path(path)
    try:
        with open(description, encoding="utf-8") as f:
            schema = Schema.from_dict(json.load(f))
    except FileNotFoundError:
        raise FileNotFoundError(f"{description} is missing: the description of the model's "
                                f"columns and classes, written beside it by 'fastnn train "
                                f"--data'") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{description}: {_one_line(error)}") from None
    if (len(schema.features), schema.n_outputs, schema.loss) != (
            model.n_features, model.n_classes, model.loss):
        raise ValueError(f"{description} does not describe {os.fspath(path)} "
                         f"({len(schema.features)} features, {schema.n_outputs} outputs, "
                         f"{schema.loss}; the model: {model.n_features}, {model.n_classes}, "
                         f"{model.loss})")
    return model, schema
