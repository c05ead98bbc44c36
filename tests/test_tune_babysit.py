"""Babysitting one model: hyperparameters changed between epochs are used, a checkpoint per
epoch, resume from a checkpoint equals not stopping, the control file, the curve files."""
import csv
import json

import numpy as np
import pytest

pytest.importorskip("optuna")
pytest.importorskip("sklearn")

from fastnn import optim  # noqa: E402
from fastnn.data import load_digits  # noqa: E402
from fastnn.nn.mlp import build_mlp  # noqa: E402
from fastnn.tune.babysit import Babysitter  # noqa: E402
from fastnn.tune.space import derive_seed  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    X, y, X_test, y_test = load_digits()
    return X[:400], y[:400], X_test[:100], y_test[:100]


def sitter(tmp_path, name="run", **kwargs):
    kwargs = {"plot": False, "verbose": False, **kwargs}
    return Babysitter(build_mlp((32,), 10), optim.Adam(3e-3), out=str(tmp_path / name),
                      batch_size=32, seed=5, **kwargs)


def test_a_learning_rate_set_between_epochs_is_used(digits, tmp_path):
    X, y, X_val, y_val = digits

    def lower_lr_after_two_epochs(s, epoch):
        if epoch == 2:
            s.set(lr=1e-4, beta1=0.8)

    run = sitter(tmp_path, hooks=[lower_lr_after_two_epochs])
    history = run.train(X, y, 4, validation_data=(X_val, y_val))
    assert history["lr"] == [3e-3, 3e-3, 1e-4, 1e-4]
    assert history["beta1"] == [0.9, 0.9, 0.8, 0.8]
    assert run.changes == [{"epoch": 2, "lr": 1e-4, "beta1": 0.8}]
    # the same four epochs by hand, changing the optimizer object between fit calls
    model, adam = build_mlp((32,), 10), optim.Adam(3e-3)
    for epoch in range(4):
        if epoch == 2:
            adam.lr, adam.beta1 = 1e-4, 0.8
        model.fit(X, y, epochs=1, batch_size=32, optimizer=adam, seed=derive_seed(5, epoch),
                  verbose=False)
    np.testing.assert_array_equal(run.model.flat_params, model.flat_params)
    unchanged = sitter(tmp_path, "unchanged")
    unchanged.train(X, y, 4)
    assert not np.array_equal(unchanged.model.flat_params, model.flat_params)


def test_resume_from_a_checkpoint_equals_not_stopping(digits, tmp_path):
    X, y, X_val, y_val = digits
    straight = sitter(tmp_path, "straight")
    straight.train(X, y, 5, validation_data=(X_val, y_val))
    for epoch in range(1, 6):  # a checkpoint per epoch, with its settings and history
        info = json.loads((tmp_path / "straight" / "checkpoints" /
                           f"epoch-{epoch:04d}.json").read_text())
        assert info["epoch"] == epoch and len(info["history"]["loss"]) == epoch
    resumed = Babysitter.resume(str(tmp_path / "straight/checkpoints/epoch-0002.npz"),
                                out=str(tmp_path / "resumed"), plot=False, verbose=False)
    assert resumed.epoch == 2 and resumed.optimizer.t == straight.optimizer.t * 2 // 5
    resumed.train(X, y, 5, validation_data=(X_val, y_val))
    np.testing.assert_array_equal(resumed.model.flat_params, straight.model.flat_params)
    for a, b in zip(resumed.model.get_weights()[1], straight.model.get_weights()[1]):
        for key in a:  # batch-norm running statistics
            np.testing.assert_array_equal(a[key], b[key])
    state, expected = resumed.optimizer.state_dict(), straight.optimizer.state_dict()
    assert state["t"] == expected["t"]
    for key in ("m", "v"):
        np.testing.assert_array_equal(state["state"][key][0], expected["state"][key][0])
    assert resumed.history.history == straight.history.history


def test_control_file_changes_lr_and_stops(digits, tmp_path):
    X, y, _, _ = digits
    run = sitter(tmp_path)

    def write_control(s, epoch):  # what a person does from another terminal
        if epoch == 1:
            (tmp_path / "run" / "control.json").write_text('{"lr": 0.0005}')
        if epoch == 3:
            (tmp_path / "run" / "control.json").write_text('{"stop": true}')

    run.hooks.append(write_control)  # runs after the control file is read: applies next epoch
    run.train(X, y, 10)
    assert run.epoch == 4 and run.history["lr"] == [3e-3, 3e-3, 5e-4, 5e-4]
    (tmp_path / "run" / "control.json").write_text('{"learning_rate": 0.1}')
    with pytest.warns(UserWarning, match="Adam has no hyperparameter learning_rate; it has lr"):
        run.train(X, y, 5)
    assert run.epoch == 5 and run.optimizer.lr == 5e-4
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got -1"):
        run.set(lr=-1)


def test_curve_files_are_updated_every_epoch(digits, tmp_path):
    X, y, X_val, y_val = digits
    run = sitter(tmp_path, plot=True)
    run.train(X, y, 2, validation_data=(X_val, y_val))
    with open(tmp_path / "run" / "curve.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert float(rows[1]["val_accuracy"]) == run.history["val_accuracy"][1]
    assert (tmp_path / "run" / "curve.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="checkpoint must be an epoch-NNNN.npz"):
        Babysitter.resume(str(tmp_path / "run" / "curve.csv"))
