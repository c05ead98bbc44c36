"""``fastnn train --data``, ``fastnn predict`` and ``fastnn tune --data`` on the user's data files
(``fastnn.tabular``): each task end to end on small CSV / .npz files, train then predict, the
task inference rule, and bad data: one line on stderr, exit status 2, before any training and
with nothing written."""
import csv
import json
import re
import sys

import numpy as np
import pytest
from helpers import cli_fails as fails

from fastnn import tabular
from fastnn.cli import main

#: Quick runs: a small model, few steps, the NumPy backend (no compilation), no progress bar.
QUICK = ["--hidden", "16", "--epochs", "40", "--batch-size", "16", "--quiet", "--no-plot",
         "--backend", "numpy"]


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def features(n, d=4, seed=0):
    """Features on skewed scales (the Normalization layer must standardize them)."""
    g = np.random.default_rng(seed)
    return g.standard_normal((n, d)) * np.array([1.0, 10.0, 100.0, 0.1])[:d] + 50


def binary_csv(path, n=120):
    X = features(n)
    z = (X[:, 0] - 50) + (X[:, 1] - 50) / 10
    labels = np.where(z > 0, "yes", "no")
    return write_csv(path, ["f1", "f2", "f3", "f4", "answer"],
                     [[*map(repr, x), label] for x, label in zip(X.tolist(), labels)])


def multiclass_csv(path, n=150):
    """Three well-separated classes named by text, in the middle column."""
    g = np.random.default_rng(1)
    names = np.array(["setosa", "versicolor", "virginica"])
    y = np.arange(n) % 3
    X = g.standard_normal((n, 4)) + 3 * y[:, None] * np.array([1, -1, 0.5, 0])
    return write_csv(path, ["a", "b", "species", "c", "d"],
                     [[repr(x[0]), repr(x[1]), names[k], repr(x[2]), repr(x[3])]
                      for x, k in zip(X.tolist(), y)])


def multilabel_csv(path, n=150):
    X = features(n)
    Z = (X - 50) / np.array([1.0, 10.0, 100.0, 0.1])
    Y = np.column_stack([Z[:, 0] > 0, Z[:, 1] > 0, Z[:, 0] + Z[:, 2] > 0]).astype(int)
    return write_csv(path, ["f1", "f2", "f3", "f4", "red", "green", "blue"],
                     [[*map(repr, x), *map(str, t)] for x, t in zip(X.tolist(), Y.tolist())])


def regression_csv(path, n=150):
    """Targets around 1000 with a spread of about 100 (trained standardized)."""
    X = features(n)
    Z = (X - 50) / np.array([1.0, 10.0, 100.0, 0.1])
    y = 1000 + 80 * Z[:, 0] - 50 * Z[:, 1] + np.random.default_rng(2).normal(0, 5, n)
    return write_csv(path, ["f1", "f2", "f3", "f4", "price"],
                     [[*map(repr, x), repr(v)] for x, v in zip(X.tolist(), y.tolist())])


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if a model starts training (bad data must be found before)."""
    from fastnn.nn.model import Sequential

    def fit(*args, **kwargs):
        raise AssertionError("training started before the error was found")

    monkeypatch.setattr(Sequential, "fit", fit)


# --- each task, end to end -------------------------------------------------------------------

def test_binary_csv_with_text_labels_trains_and_predicts_the_labels(tmp_path, capsys):
    data = binary_csv(tmp_path / "answers.csv")
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), *QUICK, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "target answer (binary: 2 classes ('no', 'yes'))" in printed
    assert re.search(r"test accuracy (0\.\d+|1\.0+), test loss", printed)
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.npz", "report.json"]
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == "binary" and report["loss"] == "sigmoid_cross_entropy"
    assert report["target"] == ["answer"] and report["classes"] == ["no", "yes"]
    assert report["features"] == ["f1", "f2", "f3", "f4"]
    assert report["rows"] == {"all": 120, "training": 86, "validation": 10, "test": 24}
    assert report["test"]["accuracy"] >= 0.75 and report["seconds"] > 0
    # predict on the same file: the target column is there, and ignored
    predictions = tmp_path / "predictions.csv"
    assert main(["predict", "--model", str(out / "model.npz"), "--data", str(data),
                 "--out", str(predictions)]) == 0
    assert f"120 predictions of answer (binary) in {predictions}" in capsys.readouterr().out
    header, rows = read_csv(predictions)
    assert header == ["answer", "proba_no", "proba_yes"] and len(rows) == 120
    _, truth = read_csv(data)
    assert {r[0] for r in rows} <= {"yes", "no"}
    assert np.mean([r[0] == t[-1] for r, t in zip(rows, truth)]) >= 0.75
    p = np.array([[float(v) for v in r[1:]] for r in rows])
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-6)
    assert all((r[0] == "yes") == (float(r[2]) > 0.5) for r in rows)


def test_multiclass_csv_with_string_labels_round_trips(tmp_path, capsys):
    data = multiclass_csv(tmp_path / "iris.csv")
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--target", "species", *QUICK,
                 "--out", str(out)]) == 0
    assert "multiclass: 3 classes ('setosa', 'versicolor', 'virginica')" in \
        capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["features"] == ["a", "b", "c", "d"] and report["test"]["accuracy"] >= 0.8
    # a file of the features only, its columns in another order and one more column
    _, rows = read_csv(data)
    new = write_csv(tmp_path / "new.csv", ["id", "d", "c", "b", "a"],
                    [[str(i), r[4], r[3], r[1], r[0]] for i, r in enumerate(rows)])
    predictions = tmp_path / "out" / "predictions.csv"  # (its folder is made)
    assert main(["predict", "--model", str(out / "model.npz"), "--data", str(new),
                 "--out", str(predictions), "--backend", "numpy"]) == 0
    header, predicted = read_csv(predictions)
    assert header == ["species", "proba_setosa", "proba_versicolor", "proba_virginica"]
    assert np.mean([p[0] == r[2] for p, r in zip(predicted, rows)]) >= 0.8
    # the same predictions from the library
    model, schema = tabular.load_model(out / "model.npz")
    X = tabular.read_features(new, schema)
    assert [schema.classes[i] for i in model.predict(X)] == [p[0] for p in predicted]


def test_multilabel_csv_predicts_one_column_per_label(tmp_path, capsys):
    data = multilabel_csv(tmp_path / "colours.csv")
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--target", "red,green,blue", *QUICK,
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "(multilabel: 3 outputs)" in printed and "all labels right in" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == "multilabel" and report["outputs"] == ["red", "green", "blue"]
    assert report["classes"] is None and report["test"]["accuracy"] >= 0.75
    assert 0 <= report["test"]["exact_match"] <= report["test"]["accuracy"]
    predictions = tmp_path / "p.csv"
    assert main(["predict", "--model", str(out / "model.npz"), "--data", str(data),
                 "--out", str(predictions)]) == 0
    header, rows = read_csv(predictions)
    assert header == ["red", "green", "blue", "proba_red", "proba_green", "proba_blue"]
    assert all(v in ("0", "1") for r in rows for v in r[:3])


def test_multilabel_with_one_label_column(tmp_path, capsys):
    """--task multilabel with one 0/1 target column: one output, scored and predicted as a
    label column (not a crash on 1-D labels)."""
    data = multilabel_csv(tmp_path / "colours.csv")
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--target", "red", "--task", "multilabel",
                 *QUICK, "--out", str(out)]) == 0
    assert "all labels right in" in capsys.readouterr().out
    predictions = tmp_path / "p.csv"
    assert main(["predict", "--model", str(out / "model.npz"), "--data", str(data),
                 "--out", str(predictions)]) == 0
    header, rows = read_csv(predictions)
    assert header == ["red", "proba_red"] and all(r[0] in ("0", "1") for r in rows)


def test_regression_csv_predicts_in_the_targets_units(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    data = regression_csv(tmp_path / "houses.csv")
    out = tmp_path / "run"
    options = [o for o in QUICK if o != "--no-plot"]  # (and the curve of R^2)
    assert main(["train", "--data", str(data), *options, "--epochs", "40",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "(regression: 1 output)" in printed and re.search(r"test R\^2 0\.\d+, MAE", printed)
    assert (out / "learning_curve.png").stat().st_size > 0
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == "regression" and report["loss"] == "mean_squared_error"
    assert report["test"]["r2"] > 0.5 and report["test"]["mae"] < 60
    predictions = tmp_path / "p.csv"
    assert main(["predict", "--model", str(out / "model.npz"), "--data", str(data),
                 "--out", str(predictions)]) == 0
    header, rows = read_csv(predictions)
    _, truth = read_csv(data)
    values, targets = (np.array([float(r[-1]) for r in t]) for t in (rows, truth))
    assert header == ["price"] and abs(values.mean() - targets.mean()) < 50
    assert np.corrcoef(values, targets)[0, 1] > 0.7


def test_npz_with_integer_classes_is_multiclass(tmp_path, capsys):
    g = np.random.default_rng(3)
    y = np.arange(100) % 4
    X = g.standard_normal((100, 3)) + 3 * y[:, None]
    np.savez(tmp_path / "d.npz", X=X, y=y)
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "d.npz"), *QUICK, "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == "multiclass" and report["classes"] == [0, 1, 2, 3]
    assert report["features"] == ["x0", "x1", "x2"] and report["target"] == ["y"]
    np.savez(tmp_path / "new.npz", X=X[:7])
    assert main(["predict", "--model", str(out / "model.npz"), "--data",
                 str(tmp_path / "new.npz"), "--out", str(tmp_path / "p.csv")]) == 0
    header, rows = read_csv(tmp_path / "p.csv")
    assert header == ["y", "proba_0", "proba_1", "proba_2", "proba_3"] and len(rows) == 7
    assert {r[0] for r in rows} <= {"0", "1", "2", "3"}


def test_parquet_when_pyarrow_is_installed(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    g = np.random.default_rng(4)
    n = 60
    x = g.standard_normal(n)
    table = pa.table({"x": x, "count": pa.array(np.arange(n) % 7, pa.int32()),
                      "flag": pa.array(np.arange(n) % 2 == 0),
                      "label": pa.array(np.where(x > 0, "up", "down")).dictionary_encode()})
    pq.write_table(table, tmp_path / "d.parquet")
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "d.parquet"), *QUICK, "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == "binary" and report["classes"] == ["down", "up"]
    assert report["features"] == ["x", "count", "flag"]
    # missing values: nulls and NaN
    pq.write_table(pa.table({"x": pa.array([1.0, None] + [0.5] * 10), "y": [0, 1] * 6}),
                   tmp_path / "gaps.parquet")
    fails(["train", "--data", str(tmp_path / "gaps.parquet"), *QUICK, "--out", str(out)],
          r"^fastnn train: --data: .*gaps.parquet: the feature column 'x' has 1 missing value "
          r"\(first at row 2\)")


def test_parquet_without_pyarrow_says_to_install_it(tmp_path, monkeypatch, no_training):
    (tmp_path / "d.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    fails(["train", "--data", str(tmp_path / "d.parquet"), *QUICK, "--out",
           str(tmp_path / "run")], r"^fastnn train: reading the Parquet file .*d.parquet needs "
                                   r"pyarrow: pip install pyarrow$", status=1)
    assert not (tmp_path / "run").exists()


# --- the task inference rule -----------------------------------------------------------------

def column_file(tmp_path, targets):
    """A CSV of one feature and the target columns ``targets`` ({name: values})."""
    n = len(next(iter(targets.values())))
    names = list(targets)
    return write_csv(tmp_path / "t.csv", ["x", *names],
                     [[str(i % 5), *(str(targets[t][i]) for t in names)] for i in range(n)])


@pytest.mark.parametrize("targets, task", [
    ({"y": [0, 1] * 10}, "binary"),
    ({"y": [3.5, -1.25] * 10}, "binary"),
    ({"y": ["cat", "dog", "emu", "cow"] * 5}, "multiclass"),
    ({"y": ["yes", "no"] * 10}, "binary"),
    ({"y": [i % 20 for i in range(40)]}, "multiclass"),  # whole numbers, 20 distinct
    ({"y": list(range(40))}, "regression"),  # whole numbers, 40 distinct
    ({"y": [i / 3 for i in range(20)]}, "regression"),
    ({"y": [0.5, 1.5, 2.5] * 7}, "regression"),  # (fractions: not class labels)
    ({"a": [0, 1] * 10, "b": [1, 1, 0, 0] * 5}, "multilabel"),
    ({"a": [0, 1] * 10, "b": [0.5, 2.0, 3.0, 1.0] * 5}, "regression"),
])
def test_task_auto_inference(tmp_path, targets, task):
    data = tabular.load_data(column_file(tmp_path, targets), target=list(targets))
    assert data.schema.task == task and data.schema.loss == tabular.LOSSES[task]
    assert data.X.shape == (len(next(iter(targets.values()))), 1)


def test_task_given_overrides_the_rule_and_is_checked(tmp_path):
    from fastnn.cli import _TASKS

    assert _TASKS == tabular.TASKS  # (--task's choices)
    path = column_file(tmp_path, {"y": [i % 4 for i in range(40)]})
    assert tabular.load_data(path, task="regression").schema.task == "regression"
    with pytest.raises(tabular.DataError, match="task 'binary' needs 2 distinct values in the "
                                                "target column 'y', found 4: 0, 1, 2, 3"):
        tabular.load_data(path, task="binary")


def test_stratified_split_keeps_each_class_share(tmp_path):
    y = np.array([0] * 60 + [1] * 30 + [2] * 10)
    data = tabular.Dataset(np.zeros((100, 1), np.float32), y,
                           tabular.Schema(["x"], ["y"], "multiclass", [0, 1, 2]))
    train, test = tabular.split(data, 0.2, seed=5)
    assert np.bincount(test.y).tolist() == [12, 6, 2] and len(train) == 80
    assert sorted(np.concatenate([train.rows, test.rows]).tolist()) == list(range(100))
    again = tabular.split(data, 0.2, seed=5)[1]
    np.testing.assert_array_equal(test.rows, again.rows)


def test_unscale_outputs_folds_the_target_scaling_into_the_last_layer():
    from fastnn.nn import build_mlp

    X = np.random.default_rng(6).standard_normal((20, 3)).astype(np.float32)
    model = build_mlp((8,), 2, backend="numpy", loss="mean_squared_error", normalize=True)
    model.build(3)
    model.layers[0].adapt(X)
    before = model.predict(X)
    mean, scale = np.array([100.0, -3.0]), np.array([7.0, 0.5])
    tabular.unscale_outputs(model, mean, scale)
    np.testing.assert_allclose(model.predict(X), before * scale + mean, rtol=1e-5, atol=1e-4)


# --- bad data: one line, exit status 2, before any training, nothing written -------------------

def small(tmp_path, text, name="d.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


GOOD = "".join(f"{i},{i * 2 % 7},{'ab'[i % 2]}\n" for i in range(12))


@pytest.mark.parametrize("text, options, match", [
    ("a,b,y\n" + GOOD, ["--target", "nope"],
     r"--target: no column 'nope' in .*d.csv; its columns: 'a', 'b', 'y'$"),
    ("a,b,y\n" + GOOD, ["--target", "a,zz"], r"--target: no column 'zz' in "),
    ("a,b,y\n" + GOOD, ["--drop", "q"], r"--drop: no column 'q' to drop in .*; its columns:"),
    ("a,b,y\n" + GOOD, ["--drop", "y"], r"--drop: 'y' is the target; it cannot be dropped$"),
    ("a,b,y\n" + GOOD, ["--drop", "a,b"], r"--data: .*no feature columns"),
    ("a,city,y\n1,Rome,a\n2,Paris,b\n" + GOOD, [],
     r"--data: .*d.csv: the feature column 'city' is not numeric \(line 2: 'Rome'\); "
     r"features must be numbers"),
    ("a,b,y\n" + GOOD + "1,,a\n2,NA,b\n", [],
     r"--data: .*d.csv: the feature column 'b' has 2 missing values \(first at line 14\); "
     r"fill them in or drop those rows$"),
    ("a,b,y\n" + GOOD + "1,inf,a\n", [],
     r"--data: .*: the feature column 'b' has 1 infinite value \(first at line 14\)$"),
    ("a,b,y\n" + GOOD + "1,1e39,a\n", [], r"--data: .*: the feature column 'b' has 1 value "
                                         r"beyond float32's range \(first at line 14: 1e\+39\)"),
    ("a,b,y\n" + GOOD + "1,2,\n", [],
     r"--data: .*: the target column 'y' has 1 missing value \(first at line 14\)"),
    ("", [], r"--data: .*d.csv is empty$"),
    ("\n\n", [], r"--data: .*d.csv is empty$"),
    ("a,b,y\n", [], r"--data: .*d.csv has no data rows \(only a header\)$"),
    ("a,b,y\n1,2,a\n3,4,b\n", [], r"--data: .*: too few rows: 2 \(at least 10"),
    ("a,b,y\n" + GOOD.replace(",a\n", ",b\n"), [],
     r"--data: .*: the target column 'y' has a single class \('b' in all 12 rows\): a "
     r"classifier needs 2 or more$"),
    ("a,b,y\n" + GOOD + "1,2\n", [], r"--data: .*d.csv: line 14 has 2 fields, the header has 3$"),
    ("a,b,y\n" + GOOD + '1,2,"a\n', [], r"--data: .*d.csv: line 14: does not parse as CSV "
                                        r"\(unexpected end of data\)$"),
    ("a,b,y\n" + GOOD + '1,2,"a"b\n', [], r"--data: .*d.csv: line 14: does not parse as CSV"),
    (b"a,b,y\n1,2,a\n\x89PNG\x00\xff,3,b\n", [], r"--data: .*d.csv: line 3 is not UTF-8 text "
                                                r"\(byte 0x89\); is it a CSV file\?$"),
    ("a,a,y\n" + GOOD, [], r"--data: .*: the header names 'a' twice \(columns 1 and 2\)$"),
    ("a;b;y\n1;2;3\n", [], r"--data: .*: the header has one column, 'a;b;y'; fastnn reads "
                           r"comma-separated values$"),
    ("a,b,y\n" + GOOD, ["--task", "regression"],
     r"--task: .*the target column 'y' is not numeric \(line 2: 'a'\); task 'regression' "
     r"needs numbers$"),
    ("x,a,y\n" + GOOD, ["--task", "multilabel", "--target", "a", "--drop", "y"],
     r"--task: .*task 'multilabel' needs 0/1 values in each target column; 'a' has 2 "
     r"\(line 3\)$"),
    ("x,a,y\n" + GOOD, ["--task", "multiclass", "--target", "a,y"],
     r"--task: task 'multiclass' takes one target column, got 2: 'a', 'y'$"),
    ("a,b,y\n" + GOOD.replace(",a\n", ",3\n").replace(",b\n", ",3\n"), ["--task", "regression"],
     r"--data: .*: the target 'y' is constant \(3 in all 12 rows\): nothing to learn$"),
])
def test_bad_data_is_one_line_with_status_2_before_training(tmp_path, no_training, text, options,
                                                           match):
    data = small(tmp_path, text)
    fails(["train", "--data", str(data), *QUICK, *options, "--out", str(tmp_path / "run")],
          "^fastnn train: " + match)
    assert not (tmp_path / "run").exists()  # nothing written


@pytest.mark.parametrize("name, content, match", [
    ("d.xlsx", b"PK", r"--data: .*d.xlsx: unknown file type '.xlsx'; fastnn reads .csv, .tsv, "
                      r".npz, .parquet, .pq files$"),
    ("data", b"a,b", r"--data: .*data: unknown file type '\(no extension\)'"),
    ("d.npz", b"not a zip", r"--data: .*d.npz: not a readable .npz archive"),
    ("d.npz", None, r"--data: .*d.npz has no array 'X' \(the features\); its arrays: 'A', 'b'$"),
    ("gone.csv", False, r"--data: .*gone.csv: no such file$"),
])
def test_bad_files_are_one_line_with_status_2(tmp_path, no_training, name, content, match):
    path = tmp_path / name
    if content is None:
        np.savez(path, A=np.zeros((12, 2)), b=np.zeros(12))
    elif content is not False:
        path.write_bytes(content)
    fails(["train", "--data", str(path), *QUICK, "--out", str(tmp_path / "run")],
          "^fastnn train: " + match)
    assert not (tmp_path / "run").exists()


def test_data_options_need_data_and_a_valid_test_size(tmp_path, no_training):
    fails(["train", "--target", "y", "--out", str(tmp_path / "run")],
          r"^fastnn train: --target applies with --data \(your own data file; without it "
          r"train uses the handwritten digits\)$")
    data = small(tmp_path, "a,b,y\n" + GOOD)
    fails(["train", "--data", str(data), "--test-size", "1.5", "--out", str(tmp_path / "run")],
          r"^fastnn train: --test-size: test_size must be a number in \(0, 1\), got 1.5$")
    assert not (tmp_path / "run").exists()


def test_predict_errors_are_one_line_and_leave_the_old_predictions(tmp_path, capsys):
    data = binary_csv(tmp_path / "answers.csv", n=40)
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), *QUICK, "--epochs", "1", "--out", str(out)]) == 0
    model = str(out / "model.npz")
    predictions = tmp_path / "p.csv"
    predictions.write_text("earlier predictions\n")
    _, rows = read_csv(data)
    lacking = write_csv(tmp_path / "lacking.csv", ["f1", "f3", "f4"],
                        [[r[0], r[2], r[3]] for r in rows])
    fails(["predict", "--model", model, "--data", str(lacking), "--out", str(predictions)],
          r"^fastnn predict: --data: .*lacking.csv: no column 'f2', a feature of the model; "
          r"its columns: 'f1', 'f3', 'f4'$")
    gaps = write_csv(tmp_path / "gaps.csv", ["f1", "f2", "f3", "f4"],
                     [r[:4] for r in rows[:5]] + [["1", "", "2", "3"]])
    fails(["predict", "--model", model, "--data", str(gaps), "--out", str(predictions)],
          r"^fastnn predict: --data: .*: the feature column 'f2' has 1 missing value \(first "
          r"at line 7\)")
    fails(["predict", "--model", model, "--data", str(data), "--out", str(tmp_path / "p.txt")],
          r"^fastnn predict: --out: the predictions are written as CSV: give a file name "
          r"ending in .csv")
    fails(["predict", "--model", str(tmp_path / "none.npz"), "--data", str(data), "--out",
           str(predictions)], r"^fastnn predict: --model: no such file: .*none.npz$")
    (out / "model.json").unlink()
    fails(["predict", "--model", model, "--data", str(data), "--out", str(predictions)],
          r"^fastnn predict: --model: .*model.json is missing: the description of the model's "
          r"columns and classes, written beside it by 'fastnn train --data'$")
    assert predictions.read_text() == "earlier predictions\n"


# --- tune on the user's data ---------------------------------------------------------------------

def test_tune_on_data_searches_and_saves_the_best_model_with_its_description(tmp_path, capsys):
    pytest.importorskip("optuna")
    data = multiclass_csv(tmp_path / "iris.csv", n=90)
    out = tmp_path / "tune"
    assert main(["tune", "--data", str(data), "--target", "species", "--trials", "2",
                 "--epochs", "2", "--hidden", "8,8", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "study 'iris'" in printed and "val_accuracy" in printed
    assert re.search(r"best: trial \d \(round 1\), validation accuracy [\d.]+, test accuracy",
                     printed)
    names = {p.name for p in out.iterdir()}
    assert {"best_model.npz", "best_model.json", "trials.csv"} <= names
    assert read_csv(out / "trials.csv")[0][3] == "val_accuracy"
    assert main(["predict", "--model", str(out / "best_model.npz"), "--data", str(data),
                 "--out", str(tmp_path / "p.csv")]) == 0
    header, rows = read_csv(tmp_path / "p.csv")
    assert header[0] == "species" and len(rows) == 90
    # the same study on other data is refused, naming the options
    fails(["tune", "--data", str(multiclass_csv(tmp_path / "iris.csv", n=120)), "--target",
           "species", "--trials", "2",
           "--epochs", "2", "--hidden", "8,8", "--quiet", "--out", str(out)],
          r"^fastnn tune: --epochs/--seed/--data/--target/--task/--drop/--test-size: ")


def test_tune_on_regression_data_scores_r2(tmp_path, capsys):
    pytest.importorskip("optuna")
    data = regression_csv(tmp_path / "houses.csv", n=60)
    out = tmp_path / "tune"
    assert main(["tune", "--data", str(data), "--trials", "2", "--epochs", "2", "--hidden",
                 "8,8", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"validation R\^2 -?[\d.]+, test R\^2 -?[\d.]+, MAE", printed)
    assert read_csv(out / "trials.csv")[0][3] == "val_r2"


def test_tune_bad_data_is_one_line_before_any_trial(tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    import fastnn.cli.tune

    monkeypatch.setattr(fastnn.cli.tune, "search",
                        lambda *a, **k: pytest.fail("the search started"))
    data = small(tmp_path, "a,b,y\n" + GOOD)
    fails(["tune", "--data", str(data), "--target", "q", "--trials", "2", "--out",
           str(tmp_path / "out")], r"^fastnn tune: --target: no column 'q' in ")
    fails(["tune", "--task", "binary", "--trials", "2", "--out", str(tmp_path / "out")],
          r"^fastnn tune: --task applies with --data")
    assert not (tmp_path / "out").exists()
