"""Sequential: fit, evaluate, predict, callbacks, save/load, bad input, the digits main job."""
import re

import numpy as np
import pytest

import fastnn
from fastnn import optim
from fastnn.nn import (
    BatchNorm,
    Dense,
    Dropout,
    EarlyStopping,
    ReLU,
    Sequential,
    TrainingDivergedError,
)


def blobs(n=300, n_features=6, n_classes=3, seed=0, spread=0.6):
    """Separable Gaussian blobs: an easy classification problem."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_classes, n_features)) * 3
    y = rng.integers(0, n_classes, n)
    X = centers[y] + rng.standard_normal((n, n_features)) * spread
    return X.astype(np.float32), y


def mlp(backend=None, dtype=np.float32, dropout=0.0):
    layers = [Dense(16, use_bias=False), BatchNorm(), ReLU()]
    if dropout:
        layers.append(Dropout(dropout))
    return Sequential(layers + [Dense(3)], backend=backend, dtype=dtype)


def test_fit_learns_and_history_records_every_epoch():
    X, y = blobs()
    model = mlp()
    history = model.fit(X, y, epochs=8, batch_size=32, optimizer=optim.Adam(0.01),
                        validation_split=0.2, verbose=False)
    assert history.epoch == list(range(8))
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["val_accuracy"][-1] > 0.95
    loss, accuracy = model.evaluate(X, y)
    assert accuracy > 0.95 and loss < 0.3
    np.testing.assert_array_equal(model.predict(X), np.argmax(model.predict_proba(X), axis=1))
    np.testing.assert_allclose(model.predict_proba(X).sum(axis=1), 1, rtol=1e-5)


def test_fit_is_reproducible_from_the_seed():
    X, y = blobs()
    runs = []
    for _ in range(2):
        model = mlp(dropout=0.2)
        history = model.fit(X, y, epochs=3, seed=11, verbose=False)
        runs.append((history["loss"], model.flat_params.copy()))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_numpy_backend_gives_the_same_losses_as_cpu():
    X, y = blobs(n=200)
    losses = {}
    for backend in ("numpy", "cpu"):
        model = mlp(backend=backend)
        losses[backend] = model.fit(X, y, epochs=4, batch_size=25, seed=3, verbose=False)["loss"]
    np.testing.assert_allclose(losses["cpu"], losses["numpy"], rtol=2e-4)


def test_schedule_sets_the_learning_rate_per_epoch():
    X, y = blobs(n=100)
    schedule = optim.inverse_time(0.1, decay_rate=1.0)
    history = mlp().fit(X, y, epochs=4, optimizer=optim.GD(0.1), schedule=schedule,
                        verbose=False)
    np.testing.assert_allclose(history["lr"], [0.1 / (1 + e) for e in range(4)])


def test_l2_adds_its_penalty_to_dense_weights_only():
    X, y = blobs(n=32)
    model = mlp(dtype=np.float64).build(6)
    loss0, _ = model.loss_and_gradients(X, y)
    grads0 = [{k: g.copy() for k, g in layer.grads.items()} for layer in model.layers]
    loss1, _ = model.loss_and_gradients(X, y, l2=0.3)
    m = X.shape[0]
    weights = [model.layers[0].params["W"], model.layers[3].params["W"]]
    assert loss1 - loss0 == pytest.approx(0.3 / (2 * m) * sum((W ** 2).sum() for W in weights))
    for layer, before in zip(model.layers, grads0):
        for name, grad in layer.grads.items():  # only W gets the penalty: not b, gamma, beta
            expected = before[name] + (0.3 / m * layer.params[name] if name == "W" else 0)
            np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-15)


def test_l2_shrinks_the_weights():
    X, y = blobs()
    norms = []
    for l2 in (0.0, 5.0):
        model = mlp()
        model.fit(X, y, epochs=20, optimizer=optim.GD(0.1), l2=l2, seed=1, verbose=False)
        norms.append(np.linalg.norm(model.layers[-1].params["W"]))
    assert norms[1] < 0.8 * norms[0]


def test_early_stopping_stops_and_restores_the_best_weights():
    X, y = blobs(n=200, spread=3.0)  # overlapping classes: validation loss stops improving
    stopper = EarlyStopping(monitor="val_loss", patience=1)
    model = mlp()
    history = model.fit(X, y, epochs=200, optimizer=optim.Adam(0.05), validation_split=0.3,
                        callbacks=[stopper], verbose=False)
    assert len(history.epoch) < 200 and stopper.stopped_epoch == history.epoch[-1]
    X_val, y_val = X[-60:], y[-60:]
    assert model.evaluate(X_val, y_val)[0] == pytest.approx(min(history["val_loss"]), rel=1e-5)


def test_save_and_load_round_trip_exactly(tmp_path):
    X, y = blobs()
    model = mlp()
    model.fit(X, y, epochs=2, optimizer=optim.Adam(0.01), verbose=False)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = fastnn.load(path)
    np.testing.assert_array_equal(loaded.flat_params, model.flat_params)
    np.testing.assert_array_equal(loaded.layers[1].running_var, model.layers[1].running_var)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.optimizer.state_dict()["t"] == model.optimizer.state_dict()["t"]
    # training on from the loaded state is the same as training on without saving
    model.fit(X, y, epochs=1, optimizer=model.optimizer, seed=5, verbose=False)
    loaded.fit(X, y, epochs=1, optimizer=loaded.optimizer, seed=5, verbose=False)
    np.testing.assert_array_equal(loaded.flat_params, model.flat_params)


def test_load_rejects_other_and_truncated_files(tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a fastnn model"):
        fastnn.load(other)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a fastnn model file or it is truncated"):
        fastnn.load(text)
    X, y = blobs(n=50)
    model = mlp()
    model.fit(X, y, epochs=1, verbose=False)
    good = tmp_path / "good.npz"
    model.save(good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated"):
        fastnn.load(truncated)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(epochs=-1), ValueError, "epochs must be an integer >= 0"),
    (dict(epochs=1, batch_size=0), ValueError, "batch_size must be an integer >= 1"),
    (dict(epochs=1, optimizer="adagrad"), ValueError, "unknown optimizer 'adagrad'"),
    (dict(epochs=1, optimizer=3), TypeError, "optimizer must be"),
    (dict(epochs=1, l2=-1.0), ValueError, "l2 must be"),
    (dict(epochs=1, validation_split=1.5), ValueError, "validation_split"),
])
def test_fit_rejects_bad_arguments(kwargs, error, match):
    X, y = blobs(n=40)
    with pytest.raises(error, match=match):
        mlp().fit(X, y, verbose=False, **kwargs)


def test_fit_rejects_bad_data():
    X, y = blobs(n=40)
    model = mlp()
    with pytest.raises(ValueError, match="X has 40 rows but y has 39"):
        model.fit(X, y[:-1], epochs=1, verbose=False)
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"X contains NaN or inf \(first at index \(3, 2\)\)"):
        model.fit(bad, y, epochs=1, verbose=False)
    with pytest.raises(ValueError, match="label 3 is outside \\[0, 3\\)"):
        model.fit(X, np.where(y == 0, 3, y), epochs=1, verbose=False)
    model.fit(X, y, epochs=1, verbose=False)
    with pytest.raises(ValueError, match="X has 5 features, the model was built for 6"):
        model.predict(X[:, :5])
    with pytest.raises(RuntimeError, match="no parameters yet"):
        mlp().predict(X)


def test_divergence_stops_with_epoch_and_step_and_keeps_the_last_good_weights():
    X, y = blobs(n=64)
    model = Sequential([Dense(8, activation="relu"), Dense(3)])
    model.fit(X, y, epochs=1, batch_size=16, verbose=False)
    good = model.flat_params.copy()
    model.layers[0].params["W"][0, 0] = np.float32(3e38)  # the next forward overflows
    poisoned = model.flat_params.copy()
    with pytest.raises(TrainingDivergedError, match="epoch 1, step 1"):
        model.fit(X, y, epochs=1, batch_size=16, optimizer=optim.GD(0.1), verbose=False)
    np.testing.assert_array_equal(model.flat_params, poisoned)  # no half update
    assert not np.array_equal(good, poisoned)


def test_running_statistics_are_not_half_updated_by_a_failed_step():
    X, y = blobs(n=32)
    model = Sequential([Dense(4, use_bias=False), BatchNorm(), Dense(3)])
    model.fit(X, y, epochs=1, verbose=False)
    before = model.layers[1].running_mean.copy()
    model.layers[2].params["W"][...] = np.float32(3e38)  # fails after BatchNorm ran
    with pytest.raises(TrainingDivergedError):
        model.fit(X, y, epochs=1, verbose=False)
    np.testing.assert_array_equal(model.layers[1].running_mean, before)


def test_digits_main_job_reaches_97_percent(tmp_path):
    pytest.importorskip("sklearn")
    from fastnn.cli import train

    model, history, accuracy = train.run(out=str(tmp_path), plot=True, verbose=False)  # defaults
    assert accuracy >= 0.97
    assert (tmp_path / "model.npz").exists() and (tmp_path / "learning_curve.png").exists()
    X_train, y_train, X_test, y_test = fastnn.data.load_digits()
    assert fastnn.load(tmp_path / "model.npz").evaluate(X_test, y_test)[1] == accuracy


def test_train_command_line(tmp_path, capsys):
    pytest.importorskip("sklearn")
    from fastnn.cli import main

    main(["train", "--epochs", "2", "--hidden", "16", "--out", str(tmp_path), "--no-plot",
          "--quiet", "--backend", "numpy"])
    out = capsys.readouterr().out
    assert "test accuracy" in out and (tmp_path / "model.npz").exists()


@pytest.mark.parametrize("option, value, message", [
    ("--batch-size", "0", "batch_size must be an integer >= 1, got 0"),
    ("--epochs", "-1", "epochs must be an integer >= 0, got -1"),
    ("--hidden", "16,x", "--hidden must be comma-separated integers, got '16,x'"),
    ("--hidden", "0", "units must be a positive integer, got 0"),
    ("--lr", "-1", "lr0 must be a finite number in (0.0, inf), got -1.0"),
    ("--dropout", "1.5", "rate must be in [0, 1), got 1.5")])
def test_train_command_line_names_a_bad_option(tmp_path, option, value, message):
    """One line naming the option (as ``fastnn tune``), no traceback, nothing written."""
    pytest.importorskip("sklearn")
    from fastnn.cli import main

    with pytest.raises(SystemExit, match="^fastnn train: .*" + re.escape(message)):
        main(["train", "--epochs", "1", "--out", str(tmp_path / "run"), "--no-plot", "--quiet",
              option, value])  # (the last of a repeated option counts)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_training_step_allocates_no_large_arrays_after_the_first(backend):
    """Workspaces: after the first steps, a step (batch gathering, forward, loss, backward, L2,
    Adam) allocates only small arrays (statistics, row counts), none of a layer's size."""
    import tracemalloc

    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((300, 200), dtype=np.float32), rng.integers(0, 10, 300)
    model = Sequential([Dense(128, use_bias=False), BatchNorm(), ReLU(), Dropout(0.2),
                        Dense(128, activation="tanh"), Dense(10)], backend=backend)
    optimizer = optim.Adam(1e-3)
    model.fit(X, y, epochs=1, batch_size=128, optimizer=optimizer, l2=0.01, verbose=False)
    smallest_layer_array = 128 * 128 * 4  # one (batch, 128) float32 activation
    Xb, yb = X[:128].copy(), y[:128].copy()
    tracemalloc.start()
    try:
        for _ in range(3):
            tracemalloc.reset_peak()
            model.train_on_batch(Xb, yb, optimizer, l2=0.01)  # fit's step
            peak = tracemalloc.get_traced_memory()[1]
            if backend == "cpu":
                assert peak < smallest_layer_array / 2, f"a step allocated {peak} bytes"
    finally:
        tracemalloc.stop()
    assert np.isfinite(model.flat_params).all()


def test_inference_results_are_not_workspaces():
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((50, 6)), rng.integers(0, 3, 50)
    model = Sequential([Dense(8, activation="relu"), Dense(3)])
    model.fit(X, y, epochs=1, verbose=False)
    proba, logits = model.predict_proba(X), model.forward(X.astype(np.float32))
    saved = logits.copy(), proba.copy()
    model.fit(X, y, epochs=1, verbose=False)  # training steps reuse their workspaces
    np.testing.assert_array_equal(logits, saved[0])
    np.testing.assert_array_equal(proba, saved[1])


def test_train_on_batch_is_one_step_of_fit():
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((40, 6)), rng.integers(0, 3, 40)
    layers = lambda: [Dense(8, use_bias=False), BatchNorm(), ReLU(), Dense(3)]  # noqa: E731
    fitted, stepped = Sequential(layers()), Sequential(layers())
    fitted.fit(X, y, epochs=1, batch_size=40, shuffle=False, verbose=False, l2=0.1)
    stepped.build(6)
    loss, accuracy = stepped.train_on_batch(X, y, l2=0.1)
    np.testing.assert_array_equal(stepped.flat_params, fitted.flat_params)
    np.testing.assert_array_equal(stepped.layers[1].running_var, fitted.layers[1].running_var)
    assert 0.0 <= accuracy <= 1.0 and loss > 0
    assert stepped.optimizer.t == 1
    stepped.train_on_batch(X, y)  # the model keeps its optimizer
    assert stepped.optimizer.t == 2


def test_train_on_batch_with_nan_data_names_X_and_changes_nothing():
    rng = np.random.default_rng(6)
    X, y = rng.standard_normal((20, 4)).astype(np.float32), rng.integers(0, 2, 20)
    model = Sequential([Dense(5, use_bias=False), BatchNorm(), ReLU(), Dense(2)]).build(4)
    model.train_on_batch(X, y)
    before = model.get_weights()
    X[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"train_on_batch: X contains NaN or inf \(first at "
                                         r"index \(3, 2\)\)"):
        model.train_on_batch(X, y)
    np.testing.assert_array_equal(model.flat_params, before[0])
    np.testing.assert_array_equal(model.layers[1].running_mean, before[1][1]["running_mean"])
    assert model.optimizer.t == 1
    with pytest.raises(ValueError, match="label 7 is outside"):
        model.train_on_batch(np.ones((20, 4)), np.full(20, 7))


def test_fit_resumes_exactly_from_initial_epoch():
    """fit(epochs=4) then fit(epochs=7, initial_epoch=4) with the same optimizer equals
    fit(epochs=7): shuffles, dropout masks, a step schedule and Adam's steps all continue."""
    rng = np.random.default_rng(9)
    X, y = rng.standard_normal((50, 6)), rng.integers(0, 3, 50)

    def model():
        return Sequential([Dense(8, use_bias=False), BatchNorm(), ReLU(), Dropout(0.3),
                           Dense(3)])
    schedule = optim.inverse_time(0.01, 0.1, unit="step")
    straight, resumed = model(), model()
    adam = optim.Adam(0.01)
    full = straight.fit(X, y, epochs=7, batch_size=16, optimizer=adam, schedule=schedule,
                        seed=2, verbose=False)
    adam = optim.Adam(0.01)
    first = resumed.fit(X, y, epochs=4, batch_size=16, optimizer=adam, schedule=schedule,
                        seed=2, verbose=False)
    rest = resumed.fit(X, y, epochs=7, batch_size=16, optimizer=adam, schedule=schedule,
                       seed=2, verbose=False, initial_epoch=4)
    np.testing.assert_array_equal(resumed.flat_params, straight.flat_params)
    assert first["loss"] + rest["loss"] == full["loss"]
    assert rest.epoch == [4, 5, 6]
    with pytest.raises(ValueError, match=r"initial_epoch must be an integer in \[0, epochs = 7\]"):
        resumed.fit(X, y, epochs=7, initial_epoch=8, verbose=False)
