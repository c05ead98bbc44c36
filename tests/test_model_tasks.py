"""Sequential on the tasks beyond multiclass: binary and multi-label (sigmoid cross-entropy) and
regression (mean squared error), their metrics and predictions, gradient checks of whole models,
and the Normalization layer (adapt, fit, saving)."""
import numpy as np
import pytest

from fastnn import gradcheck
from fastnn.nn import Dense, Normalization, ReLU, Sequential, load

#: (The "cuda" backend: tests/test_cuda_model.py, against these, on tiny data: the simulator is
#: slow.)
BACKENDS = ["numpy", "cpu"]


def binary_data(n=200, n_features=5, seed=0, labels=1):
    """Features far from 0 on a skewed scale, and labels of ``labels`` linear rules ((n,) for
    one)."""
    g = np.random.default_rng(seed)
    X = g.standard_normal((n, n_features)) * 3 + 10
    W = g.standard_normal((n_features, labels))
    y = ((X - 10) @ W > 0).astype(np.float64)
    return X, (y[:, 0] if labels == 1 else y)


def regression_data(n=200, n_features=4, seed=0, outputs=1):
    g = np.random.default_rng(seed)
    X = g.standard_normal((n, n_features))
    y = np.tanh(X @ g.standard_normal((n_features, outputs))) + 0.05 * g.standard_normal(
        (n, outputs))
    return X, (y[:, 0] if outputs == 1 else y)


def model(loss, outputs=1, backend=None, dtype=np.float32, normalize=True):
    layers = [Normalization()] if normalize else []
    return Sequential(layers + [Dense(16), ReLU(), Dense(outputs)], loss=loss, backend=backend,
                      dtype=dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_binary_classification_learns_and_predicts_labels(backend):
    X, y = binary_data()
    m = model("binary_cross_entropy", backend=backend)
    assert m.loss == "sigmoid_cross_entropy"
    history = m.fit(X, y, epochs=60, batch_size=40,
                    validation_split=0.2, verbose=False)
    assert set(history.history) == {"loss", "accuracy", "lr", "val_loss", "val_accuracy"}
    assert history["accuracy"][-1] > 0.85 and history["loss"][-1] < history["loss"][0]
    labels, proba = m.predict(X), m.predict_proba(X)
    assert labels.shape == y.shape and set(np.unique(labels)) <= {0, 1}
    assert proba.shape == (len(y), 1) and ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_array_equal(labels, (proba[:, 0] > 0.5).astype(int))
    loss, accuracy = m.evaluate(X, y)
    assert accuracy == pytest.approx(np.mean(labels == y))


def test_multilabel_predicts_one_column_per_label_and_scores_every_value():
    X, Y = binary_data(labels=3)
    m = model("sigmoid_cross_entropy", outputs=3)
    history = m.fit(X, Y, epochs=60, batch_size=40, verbose=False)
    assert history["accuracy"][-1] > 0.85
    labels = m.predict(X)
    assert labels.shape == Y.shape and m.predict_proba(X).shape == Y.shape
    assert m.evaluate(X, Y)[1] == pytest.approx(np.mean(labels == Y))
    # probabilities as targets are accepted too
    m.fit(X, np.clip(Y * 0.9 + 0.05, 0, 1), epochs=1, verbose=False)


@pytest.mark.parametrize("backend", BACKENDS)
def test_regression_learns_and_reports_r2_and_mae(backend):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    X, y = regression_data()
    m = model("mse", backend=backend)
    assert m.loss == "mean_squared_error"
    history = m.fit(X, y, epochs=80, batch_size=32,
                    validation_data=(X[:50], y[:50]), verbose=False)
    assert set(history.history) == {"loss", "r2", "lr", "val_loss", "val_r2", "val_mae"}
    assert history["r2"][-1] > 0.6 and history["r2"][-1] > history["r2"][0]
    prediction = m.predict(X)
    assert prediction.shape == y.shape and prediction.dtype == np.float32
    scores = m.evaluate(X, y, return_dict=True)
    assert scores["loss"] == pytest.approx(np.mean((prediction - y) ** 2), rel=1e-4)
    assert scores["r2"] == pytest.approx(sklearn_metrics.r2_score(y, prediction), rel=1e-4)
    assert scores["mae"] == pytest.approx(sklearn_metrics.mean_absolute_error(y, prediction),
                                          rel=1e-4)
    assert m.evaluate(X, y) == (scores["loss"], scores["r2"])
    with pytest.raises(ValueError, match="regression model .* not probabilities"):
        m.predict_proba(X)


def test_multi_output_regression_r2_is_variance_weighted():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    X, Y = regression_data(outputs=2)
    Y[:, 1] *= 5  # outputs of different variance: the weighting matters
    m = model("mean_squared_error", outputs=2)
    m.fit(X, Y, epochs=20, verbose=False)
    want = sklearn_metrics.r2_score(Y, m.predict(X), multioutput="variance_weighted")
    assert m.evaluate(X, Y)[1] == pytest.approx(want, rel=1e-4)


@pytest.mark.parametrize("loss, outputs, targets", [
    ("sigmoid_cross_entropy", 1, binary_data(n=12)[1]),
    ("sigmoid_cross_entropy", 3, binary_data(n=12, labels=3)[1]),
    ("mean_squared_error", 2, regression_data(n=12, outputs=2)[1]),
])
def test_whole_models_pass_the_gradient_check(loss, outputs, targets):
    X = np.random.default_rng(1).standard_normal((12, 5))
    m = model(loss, outputs, dtype=np.float64)
    m.layers[0].adapt(X)
    result = gradcheck(m, X, targets, l2=0.1)
    assert result.difference < 1e-6, str(result)


@pytest.mark.parametrize("loss, y, match", [
    ("sigmoid_cross_entropy", np.full(20, 2.0), r"y must be in \[0, 1\].*20 values outside"),
    ("sigmoid_cross_entropy", np.zeros((20, 2)), r"y must have shape \(20, 1\) or \(20,\)"),
    ("mean_squared_error", np.r_[np.zeros(19), np.nan], r"y contains NaN or inf .*row 19"),
    ("mean_squared_error", np.zeros(19), r"y must have shape \(20, 1\) or \(20,\)"),
    ("mean_squared_error", np.array(["a"] * 20), "y must be real or boolean targets"),
])
def test_bad_targets_are_named_before_anything_changes(loss, y, match):
    X = np.random.default_rng(0).standard_normal((20, 3))
    m = model(loss)
    with pytest.raises(ValueError, match=match):
        m.fit(X, y, epochs=1, verbose=False)
    assert m.n_features is None and not m.layers[0].adapted


def test_unknown_loss_lists_the_names():
    with pytest.raises(ValueError, match="unknown loss 'hinge'.*'binary_cross_entropy'.*'mse'"):
        Sequential([Dense(1)], loss="hinge")


def test_normalization_learns_from_the_training_part_only_and_is_saved(tmp_path):
    X, y = binary_data()
    X[:, 2] = 4.0  # a constant feature: centred, not scaled
    m = model("binary_cross_entropy")
    m.fit(X, y, epochs=2, validation_split=0.25, verbose=False)
    norm = m.layers[0]
    np.testing.assert_allclose(norm.mean, X[:150].mean(0), rtol=1e-6)
    want_var = X[:150].var(0)
    want_var[2] = 1.0
    np.testing.assert_allclose(norm.variance, want_var, rtol=1e-5)
    assert norm.count[0] == 150 and norm.adapted
    before = norm.mean.copy()
    m.fit(X * 2, y, epochs=1, verbose=False)  # adapted: later fits keep the statistics
    np.testing.assert_array_equal(norm.mean, before)
    m.save(tmp_path / "m.npz")
    loaded = load(tmp_path / "m.npz", backend="cpu")
    assert isinstance(loaded.layers[0], Normalization) and loaded.layers[0].adapted
    np.testing.assert_array_equal(loaded.predict_proba(X), m.predict_proba(X))


def test_normalization_adapted_before_the_build_and_after():
    X = np.random.default_rng(0).standard_normal((30, 4)) * 5 + 3
    norm = Normalization().adapt(X)
    m = Sequential([norm, Dense(2)], loss="mse").build(4)
    Y = m.layers[0].forward(m._kernels().to_backend(X.astype(np.float32)), False)
    np.testing.assert_allclose(Y.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(Y.std(0), 1, rtol=1e-4)
    with pytest.raises(ValueError, match=r"X has 3 features, the layer normalizes 4"):
        norm.adapt(X[:, :3])
    later = Sequential([Dense(3), Normalization(), Dense(1)], loss="mse")
    with pytest.raises(ValueError, match="layer 1 .*Normalization.* adapt()"):
        later.fit(X, X[:, 0], epochs=1, verbose=False)


def test_normalization_input_gradient_passes_the_check():
    X = np.random.default_rng(2).standard_normal((9, 4)) * 3 + 1
    norm = Normalization().adapt(X)
    upstream = np.random.default_rng(3).standard_normal((9, 4))
    assert gradcheck(norm, X, upstream).difference < 1e-7


def test_an_unadapted_normalization_refuses_to_run():
    """A Normalization layer that has learned nothing raises instead of passing the inputs
    through unchanged (a later fit would then change what earlier steps trained on)."""
    X = np.random.default_rng(0).standard_normal((8, 3))
    m = Sequential([Normalization(), Dense(1)], loss="mse").build(3)
    for call in (lambda: m.predict(X), lambda: m.train_on_batch(X, X[:, 0])):
        with pytest.raises(RuntimeError, match="Normalization: .*adapt"):
            call()
    m.layers[0].adapt(X)
    assert m.predict(X).shape == (8,)


def test_the_training_r2_leaves_the_l2_penalty_out():
    """History's and train_on_batch's R^2 come from the data's squared error, not the loss with
    its L2 penalty (one full batch per epoch: the epoch's R^2 is the start's)."""
    X, y = regression_data(n=50)
    runs = []
    for _ in range(2):
        m = model("mse", normalize=False).build(4, seed=2)
        prediction = m.predict(X).astype(np.float64)
        runs.append((m, 1 - np.mean((prediction - y) ** 2) / np.var(y)))
    (fitted, want), (stepped, _) = runs
    history = fitted.fit(X, y, epochs=1, batch_size=50, l2=10.0, shuffle=False, verbose=False)
    assert history["r2"][0] == pytest.approx(want, rel=1e-5)
    assert stepped.train_on_batch(X, y, l2=10.0)[1] == pytest.approx(want, rel=1e-5)
    assert history["loss"][0] > np.mean((prediction - y) ** 2)  # (the loss has the penalty)
