"""fastnn.sklearn: MLPClassifier and MLPRegressor as scikit-learn estimators. scikit-learn's own
estimator checks; the same updates as scikit-learn's MLP from the same weights; pipelines,
searches, cross-validation, cloning, pickling, warm starts, partial_fit, every kind of target,
early stopping and the stopping rules."""
import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn", minversion="1.6")

from sklearn import neural_network  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.metrics import accuracy_score  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastnn.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

#: Checks that can fail, with the reason (scikit-learn's ``expected_failed_checks``; not strict:
#: an expected failure may pass), by (estimator, dtype): none with the default float64.
EXPECTED_FAILED_CHECKS = {
    (MLPRegressor, "float32"): {
        "check_methods_subset_invariance":
            "float32 (not the default) can fail it: a row predicted alone and in a batch of 20 "
            "may differ by 2 ulp (2.4e-7 measured; a one-row and a batched matrix product round "
            "differently), beyond the check's absolute tolerance of 1e-7 for values near 1; "
            "whether it does depends on the weights",
    },
}


def expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS.get((type(estimator), estimator.dtype), {})


# Small networks and few epochs keep the ~55 checks of each estimator fast; a learning rate of
# 0.01 lets them reach the checks' accuracy (0.83) and R^2 (0.5) bars within those epochs.
# float32 too: it passes the same checks (the float64 default: see the module's docstring).
@parametrize_with_checks([estimator(hidden_layer_sizes=(16,), learning_rate_init=0.01,
                                    max_iter=30, dtype=dtype)
                          for dtype in ("float64", "float32")
                          for estimator in (MLPClassifier, MLPRegressor)],
                         expected_failed_checks=expected_failed_checks, xfail_strict=False)
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


# --- the same updates as scikit-learn's MLP -----------------------------------------------------

def classification(n=120, n_features=6, n_classes=2, seed=0):
    return make_classification(n_samples=n, n_features=n_features, n_informative=4,
                               n_classes=n_classes, random_state=seed)


def multilabel(n=120, n_features=6, n_labels=3, seed=0):
    g = np.random.default_rng(seed)
    X = g.standard_normal((n, n_features))
    return X, (X @ g.standard_normal((n_features, n_labels)) > 0).astype(int)


def regression(n=120, n_features=6, outputs=1, seed=0):
    X, y = make_regression(n_samples=n, n_features=n_features, n_targets=outputs, noise=0.1,
                           random_state=seed)
    return X, y / np.std(y, axis=0)


def start_both_from_sklearns_weights(ours, theirs, X, y):
    """Fit both for an epoch, then give ours scikit-learn's weights and warm-start both (a fresh
    optimizer each, as a new fit makes): the next fits start from the same weights."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs.set_params(max_iter=1).fit(X, y)
        ours.set_params(max_iter=1).fit(X, y)
    flat = np.concatenate([a.ravel() for W, b in zip(theirs.coefs_, theirs.intercepts_)
                           for a in (W, b)])
    ours.model_.set_weights((flat, [{} for _ in ours.model_.layers]))


@pytest.mark.parametrize("task, options", [
    ("binary", dict(solver="sgd", momentum=0.0, learning_rate="invscaling",
                    learning_rate_init=0.05)),
    ("multiclass", dict(solver="adam", learning_rate_init=0.01)),
    ("multilabel", dict(solver="sgd", momentum=0.9, learning_rate_init=0.02)),
    ("regression", dict(solver="sgd", momentum=0.5, learning_rate_init=0.05)),
    ("multioutput", dict(solver="sgd", momentum=0.9, learning_rate_init=0.01)),
])
def test_the_same_training_as_scikit_learn_from_the_same_weights(task, options):
    """From the same weights, in the same order of rows, fastnn's steps (its losses averaged
    over the outputs, its EWA momentum) are scikit-learn's: the loss curves and predictions
    agree (Adam to its epsilon's placement, the rest to rounding). For several regression
    outputs, scikit-learn's loss_curve_ averages the half squared errors over the outputs while
    its gradients (and fastnn's loss_curve_) sum them: only the predictions are compared."""
    X, y = {"binary": lambda: classification(), "multiclass": lambda: classification(n_classes=3),
            "multilabel": lambda: multilabel(), "regression": lambda: regression(),
            "multioutput": lambda: regression(outputs=2)}[task]()
    regressor = task in ("regression", "multioutput")
    common = dict(hidden_layer_sizes=(5,), alpha=0.01, batch_size=32, shuffle=False, tol=0.0,
                  n_iter_no_change=100, warm_start=True, random_state=0, **options)
    ours = (MLPRegressor if regressor else MLPClassifier)(**common)
    theirs = (neural_network.MLPRegressor if regressor else neural_network.MLPClassifier)(
        nesterovs_momentum=False, **common)
    start_both_from_sklearns_weights(ours, theirs, X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs.set_params(max_iter=6).fit(X, y)
        ours.set_params(max_iter=6).fit(X, y)
    rtol = 1e-4 if options["solver"] == "adam" else 1e-9
    if task != "multioutput":
        np.testing.assert_allclose(ours.loss_curve_[-6:], theirs.loss_curve_[-6:], rtol=rtol)
    if regressor:
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=rtol, atol=rtol)
    else:
        np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=rtol,
                                   atol=rtol)
    assert ours.out_activation_ == theirs.out_activation_
    assert ours.n_outputs_ == theirs.n_outputs_ and ours.n_layers_ == theirs.n_layers_
    assert ours.t_ == theirs.t_


def test_the_stopping_rule_is_scikit_learns():
    """The training loss not improving by tol for more than n_iter_no_change epochs stops after
    the same epoch as scikit-learn, without a ConvergenceWarning."""
    X, y = classification()
    common = dict(hidden_layer_sizes=(8,), tol=10.0, n_iter_no_change=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        ours = MLPClassifier(**common).fit(X, y)
    theirs = neural_network.MLPClassifier(**common).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ == 4
    assert len(ours.loss_curve_) == 4 and ours.best_loss_ == min(ours.loss_curve_)
    assert ours.validation_scores_ is None and ours.best_validation_score_ is None


def test_max_iter_without_converging_warns():
    X, y = classification()
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\) reached"):
        clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X, y)
    assert clf.n_iter_ == 3 and len(clf.loss_curve_) == 3


# --- scikit-learn's tools -----------------------------------------------------------------------

def test_in_a_pipeline_grid_search_and_cross_validation():
    X, y = classification(n=200)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,), max_iter=40,
                                                         learning_rate_init=0.01,
                                                         random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert pipe.fit(X, y).score(X, y) > 0.85
        scores = cross_val_score(pipe, X, y, cv=3)
        search = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-1]}, cv=2,
                              n_jobs=2).fit(X, y)
    assert scores.shape == (3,) and scores.mean() > 0.7
    assert search.best_params_["mlpclassifier__alpha"] in (1e-4, 1e-1)
    assert search.score(X, y) > 0.8


def test_regressor_in_a_pipeline():
    X, y = regression(n=200)
    pipe = make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(16,), max_iter=60,
                                                        learning_rate_init=0.01,
                                                        random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert pipe.fit(X, y).score(X, y) > 0.9
        assert cross_val_score(pipe, X, y, cv=3).mean() > 0.8


def test_clone_copies_the_parameters_not_the_fit():
    X, y = classification()
    clf = MLPClassifier(hidden_layer_sizes=(8, 4), batch_norm=True, dropout=0.1, max_iter=2,
                        dtype="float32", random_state=3)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    twin = clone(clf)
    assert twin.get_params() == clf.get_params()
    assert not hasattr(twin, "model_") and not hasattr(twin, "classes_")


def test_a_fixed_random_state_fits_the_same_network_twice():
    X, y = classification()
    first, second = (MLPClassifier(hidden_layer_sizes=(8,), dropout=0.2, max_iter=5,
                                   random_state=7) for _ in range(2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        first.fit(X, y), second.fit(X, y)
        other = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5).fit(X, y)  # random_state None
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    assert not np.array_equal(first.predict_proba(X), other.predict_proba(X))


def test_pickle_round_trip_predicts_and_trains_on_identically():
    """Predictions of the unpickled estimator are identical, and so is further training
    (partial_fit): the network's layers still train the weights its optimizer steps."""
    X, y = classification(n_classes=3)
    clf = MLPClassifier(hidden_layer_sizes=(8,), batch_norm=True, max_iter=3, random_state=0)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    twin = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(twin.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(twin.predict(X), clf.predict(X))
    clf.partial_fit(X, y)
    twin.partial_fit(X, y)
    np.testing.assert_array_equal(twin.predict_proba(X), clf.predict_proba(X))
    assert twin.loss_curve_ == clf.loss_curve_


# --- training modes -----------------------------------------------------------------------------

def test_warm_start_continues_from_the_fitted_network():
    X, y = classification()
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        network, first = clf.model_, list(clf.loss_curve_)
        clf.fit(X, y)
        assert clf.model_ is network and clf.n_iter_ == 5 and clf.t_ == 10 * len(X)
        assert clf.loss_curve_[:5] == first and len(clf.loss_curve_) == 10
        assert clf.loss_curve_[5] < first[0]
        with pytest.raises(ValueError, match="warm_start can only be used"):
            clf.fit(X, np.where(y == 1, 2, y))
        cold = clf.set_params(warm_start=False).fit(X, y)
    assert cold.model_ is not network and len(cold.loss_curve_) == 5


def test_partial_fit_takes_one_epoch_per_call_and_needs_the_classes_first():
    X, y = classification(n_classes=3)
    labels = np.array(["ant", "bee", "cat"])[y]
    clf = MLPClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.01, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, labels)
    for _ in range(10):
        clf.partial_fit(X[:60], labels[:60], classes=["ant", "bee", "cat"])
        clf.partial_fit(X[60:], labels[60:])
    assert clf.n_iter_ == 1 and clf.t_ == 10 * len(X) and len(clf.loss_curve_) == 20
    assert clf.loss_curve_[-1] < clf.loss_curve_[1]
    assert list(clf.classes_) == ["ant", "bee", "cat"]
    with pytest.raises(ValueError, match="not in `self.classes_`"):
        clf.partial_fit(X, np.where(labels == "ant", "dog", labels))
    with pytest.raises(ValueError, match="is not the same as on last call"):
        clf.partial_fit(X, labels, classes=["ant", "bee"])
    with pytest.raises(ValueError, match="early_stopping"):
        clone(clf).set_params(early_stopping=True).partial_fit(X, labels, classes=clf.classes_)
    reg = MLPRegressor(hidden_layer_sizes=(8,), random_state=0)
    Xr, yr = regression()
    for _ in range(5):
        reg.partial_fit(Xr, yr)
    assert reg.n_iter_ == 1 and len(reg.loss_curve_) == 5


def test_early_stopping_keeps_the_best_validation_weights():
    X, y = classification(n=300)
    clf = MLPClassifier(hidden_layer_sizes=(16,), early_stopping=True, n_iter_no_change=3,
                        learning_rate_init=0.01, max_iter=100, random_state=0)
    clf.fit(X, y)
    assert len(clf.validation_scores_) == clf.n_iter_ < 100 and clf.best_loss_ is None
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    # the held-out rows, drawn as the estimator drew them: from the second of three seeds (the
    # initial weights', the split's, the shuffles'), scikit-learn's stratified split
    split_seed = int(np.random.RandomState(0).randint(2**31 - 1, size=3)[1])
    _, held_out = train_test_split(np.arange(len(X)), random_state=split_seed, test_size=0.1,
                                   stratify=y)
    assert accuracy_score(y[held_out], clf.predict(X[held_out])) == clf.best_validation_score_


# --- targets and inputs -------------------------------------------------------------------------

def test_string_and_boolean_labels():
    X, y = classification()
    names = np.array(["no", "yes"])[y]
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, learning_rate_init=0.05,
                        random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, names)
        assert set(clf.predict(X)) <= {"no", "yes"} and clf.score(X, names) > 0.8
        proba = clf.predict_proba(X)
        assert proba.shape == (len(X), 2) and clf.n_outputs_ == 1
        assert clf.out_activation_ == "logistic"
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        np.testing.assert_array_equal(clf.classes_[np.argmax(proba, axis=1)], clf.predict(X))
        np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba))
        flags = clf.fit(X, y.astype(bool)).predict(X)
    assert flags.dtype == bool


def test_multiclass_and_multilabel_targets():
    X, y = classification(n_classes=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0).fit(X, y)
        assert clf.out_activation_ == "softmax" and clf.n_outputs_ == 3
        assert clf.predict_proba(X).shape == (len(X), 3)
        assert clf.model_.loss == "softmax_cross_entropy"
        Xm, Y = multilabel()
        clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=50, learning_rate_init=0.01,
                            random_state=0).fit(Xm, Y)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 3
    assert clf.model_.loss == "sigmoid_cross_entropy"
    assert clf.predict(Xm).shape == Y.shape and clf.predict_proba(Xm).shape == Y.shape
    assert np.mean(clf.predict(Xm) == Y) > 0.8


def test_multi_output_regression():
    X, Y = regression(outputs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = MLPRegressor(hidden_layer_sizes=(16,), max_iter=100, learning_rate_init=0.01,
                           random_state=0).fit(X, Y)
    assert reg.predict(X).shape == Y.shape and reg.n_outputs_ == 2
    assert reg.out_activation_ == "identity" and reg.score(X, Y) > 0.9


def test_batch_norm_and_dropout_build_those_layers():
    X, y = classification()
    clf = MLPClassifier(hidden_layer_sizes=(8, 4), activation="tanh", batch_norm=True,
                        dropout=0.25, max_iter=2, random_state=0)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    names = [type(layer).__name__ for layer in clf.model_.layers]
    assert names == ["Dense", "BatchNorm", "Activation", "Dropout"] * 2 + ["Dense"]
    assert clf.n_layers_ == 4


def test_verbose_is_off_by_default(capsys):
    X, y = classification()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=2).fit(X, y)
        assert capsys.readouterr().out == ""
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, verbose=True).fit(X, y)
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "Iteration 2, loss = " in out


@pytest.mark.parametrize("params, match", [
    (dict(solver="lbfgs"), "mini-batches"),
    (dict(activation="softplus"), "activation must be one of"),
    (dict(hidden_layer_sizes=(8, 0)), "hidden_layer_sizes"),
    (dict(momentum=1.0), "momentum"),
    (dict(dtype="float16"), "dtype must be"),
    (dict(dropout=1.0), "dropout"),
])
def test_bad_parameters_raise_at_fit(params, match):
    clf = MLPClassifier(**params)  # (scikit-learn: the constructor only stores them)
    X, y = classification()
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)
    with pytest.raises(ValueError, match="poisson"):
        MLPRegressor(loss="poisson").fit(*regression())


def test_dataframes_give_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = classification()
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    with pytest.warns(ConvergenceWarning):
        clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(frame, y)
    assert list(clf.feature_names_in_) == list(frame.columns)
    np.testing.assert_array_equal(clf.predict(frame), clf.predict(X))
