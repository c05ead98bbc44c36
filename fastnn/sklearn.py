"""scikit-learn estimators that train fastnn networks: ``MLPClassifier`` and ``MLPRegressor``.

They take the parameters of ``sklearn.neural_network.MLPClassifier`` and ``MLPRegressor`` (the
same names and defaults wherever they mean the same thing), set the same fitted attributes, stop
by the same rules, and pass ``sklearn.utils.estimator_checks``. The network is a
``fastnn.nn.Sequential`` (the fitted attribute ``model_``) trained by its own ``fit``: fastnn's
kernels and optimizers do the work, and a ``fastnn.nn.Callback`` keeps scikit-learn's books after
each epoch (the loss curve, the stopping rule, the best weights of early stopping). Use them as
any scikit-learn estimator, in pipelines, searches and cross-validation::

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from fastnn.sklearn import MLPClassifier

    clf = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64,), max_iter=50))
    clf.fit(X_train, y_train).score(X_test, y_test)

No input scaling is done for you (scikit-learn's semantics: put a ``StandardScaler`` in a
``Pipeline``, as above); ``fastnn.nn.Normalization`` is for fastnn's own models.

Needs scikit-learn >= 1.6 (``pip install "fastnn[sklearn]"``); ``import fastnn`` does not import
this module.
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
except ImportError as error:  # pragma: no cover (scikit-learn is an optional dependency)
    raise ImportError("fastnn.sklearn needs scikit-learn >= 1.6: pip install "
                      "'fastnn[sklearn]'") from error
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, check_scalar, column_or_1d, validate_data

from fastnn import backend as _backend
from fastnn import optim
from fastnn.errors import TrainingDivergedError
from fastnn.nn import Activation, BatchNorm, Callback, Dense, Dropout, Sequential

__all__ = ["MLPClassifier", "MLPRegressor"]

#: scikit-learn's activation names -> fastnn's.
ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "logistic": "sigmoid", "identity": "linear"}
#: fastnn's loss -> scikit-learn's name of the output activation (``out_activation_``).
_OUT_ACTIVATIONS = {"softmax_cross_entropy": "softmax", "sigmoid_cross_entropy": "logistic",
                    "mean_squared_error": "identity"}
_SEED_MAX = 2**31 - 1


class _Bookkeeping(Callback):
    """scikit-learn's per-epoch bookkeeping of its MLP, run by ``Sequential.fit`` after each epoch
    (``_BaseMLP._end_epoch``): it ends training when the stopping rule says so."""

    def __init__(self, estimator, n_train, validation):
        self.estimator, self.n_train, self.validation = estimator, n_train, validation
        self.stopped = False

    def on_epoch_end(self, model, epoch, logs):
        if self.estimator._end_epoch(logs["loss"], self.n_train, self.validation):
            model.stop_training = self.stopped = True


class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: the parameters, the network, training with
    scikit-learn's bookkeeping. Subclasses give ``_validate_input``, ``_targets`` and
    ``_validation_score``."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, batch_norm=False, dropout=0.0,
                 dtype="float64", backend=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.batch_norm = batch_norm
        self.dropout = dropout
        self.dtype = dtype
        self.backend = backend

    # --- parameters --------------------------------------------------------------------------

    def _hidden_sizes(self):
        """hidden_layer_sizes as a list of ints >= 1 (an int is one layer)."""
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral):
            sizes = [sizes]
        try:
            sizes = list(sizes)
        except TypeError:
            raise TypeError(f"hidden_layer_sizes must be an int or a sequence of ints, got "
                            f"{sizes!r}") from None
        for i, size in enumerate(sizes):
            check_scalar(size, f"hidden_layer_sizes[{i}]", numbers.Integral, min_val=1)
        return [int(size) for size in sizes]

    def _check_params(self):
        """Raise TypeError or ValueError for a parameter out of its range, before ``fit`` changes
        anything."""
        name = type(self).__name__
        self._hidden_sizes()
        _options("activation", self.activation, ACTIVATIONS)
        if self.solver == "lbfgs":
            raise ValueError(f"{name}: solver='lbfgs' is not available: fastnn trains with "
                             "mini-batches (solver='adam' or 'sgd'); for L-BFGS use "
                             "sklearn.neural_network's MLP")
        _options("solver", self.solver, ("adam", "sgd"))
        check_scalar(self.alpha, "alpha", numbers.Real, min_val=0.0)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            check_scalar(self.batch_size, "batch_size", numbers.Integral, min_val=1)
        _options("learning_rate", self.learning_rate, ("constant", "invscaling", "adaptive"))
        check_scalar(self.learning_rate_init, "learning_rate_init", numbers.Real, min_val=0.0,
                     include_boundaries="neither")
        check_scalar(self.power_t, "power_t", numbers.Real, min_val=0.0)
        check_scalar(self.max_iter, "max_iter", numbers.Integral, min_val=1)
        check_scalar(self.tol, "tol", numbers.Real, min_val=0.0)
        for param in ("momentum", "validation_fraction", "beta_1", "beta_2", "dropout"):
            check_scalar(getattr(self, param), param, numbers.Real, min_val=0.0, max_val=1.0,
                         include_boundaries="left")
        check_scalar(self.epsilon, "epsilon", numbers.Real, min_val=0.0,
                     include_boundaries="neither")
        if self.n_iter_no_change != np.inf:
            check_scalar(self.n_iter_no_change, "n_iter_no_change", numbers.Integral, min_val=1)
        for param in ("shuffle", "warm_start", "early_stopping", "batch_norm"):
            if not isinstance(getattr(self, param), (bool, np.bool_)):
                raise TypeError(f"{param} must be True or False, got {getattr(self, param)!r}")
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            dtype = None
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if self.backend is not None:
            _options("backend", self.backend, _backend.BACKENDS)

    # --- the network -------------------------------------------------------------------------

    def _layers(self, n_outputs):
        """Per hidden width: Dense with the activation (batch_norm: Dense(use_bias=False) ->
        BatchNorm -> activation), then Dropout when ``dropout``; last a linear Dense of
        ``n_outputs`` (the loss applies softmax or sigmoid). (``_init_weights`` then draws the
        weights as scikit-learn does.)"""
        activation = ACTIVATIONS[self.activation]
        layers = []
        for width in self._hidden_sizes():
            if self.batch_norm:
                layers += [Dense(width, use_bias=False), BatchNorm(), Activation(activation)]
            else:
                layers.append(Dense(width, activation=activation))
            if self.dropout:
                layers.append(Dropout(self.dropout))
        layers.append(Dense(n_outputs))
        return layers

    def _initialize(self, n_features, n_outputs, loss, dtype, rng):
        """A new network and fresh books (a first ``fit``, or any without ``warm_start``)."""
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(self._hidden_sizes()) + 2
        self.out_activation_ = _OUT_ACTIVATIONS[loss]
        self.n_iter_ = self.t_ = 0
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = self.best_validation_score_ = None
            self.best_loss_ = np.inf
        # scikit-learn's objective = scale * fastnn's: fastnn averages its cross-entropies and
        # squared errors over every output value, scikit-learn sums them over the outputs (and
        # halves the squared error); its gradients are those of this sum
        self._scale = {"softmax_cross_entropy": 1.0, "sigmoid_cross_entropy": float(n_outputs),
                       "mean_squared_error": n_outputs / 2.0}[loss]
        self.model_ = Sequential(self._layers(n_outputs), loss=loss, backend=self.backend,
                                 dtype=dtype)
        self.model_.build(n_features, seed=int(rng.randint(_SEED_MAX)))
        self._init_weights(rng)
        if self.early_stopping:
            self._best_weights = self.model_.get_weights()

    def _init_weights(self, rng):
        """scikit-learn's initialization: each Dense layer's W and b uniform in +-sqrt(6 /
        (n_in + n_out)) (+-sqrt(2 / (n_in + n_out)) with activation="logistic"), drawn from
        ``rng`` layer by layer; BatchNorm's gamma and beta keep 1 and 0."""
        flat, states = self.model_.get_weights()
        factor = 2.0 if self.activation == "logistic" else 6.0
        offset = 0
        for layer in self.model_.layers:
            W = layer.params.get("W") if isinstance(layer, Dense) else None
            bound = None if W is None else np.sqrt(factor / (W.shape[0] + W.shape[1]))
            for param in layer.params.values():  # (in the order of the flat buffer)
                if bound is not None:
                    flat[offset:offset + param.size] = rng.uniform(-bound, bound, param.size)
                offset += param.size
        self.model_.set_weights((flat, states))

    def _make_optimizer(self):
        """The fastnn optimizer that takes scikit-learn's steps on fastnn's loss (scale times
        smaller, so its gradients too): Adam with epsilon / scale; for "sgd", Momentum(lr *
        scale / (1 - momentum), beta=momentum), whose EWA velocity then moves the weights as
        scikit-learn's v <- momentum * v - lr * g (GD(lr * scale) when momentum is 0)."""
        if self.solver == "adam":
            return optim.Adam(self.learning_rate_init, self.beta_1, self.beta_2,
                              self.epsilon / self._scale)
        self._lr = float(self.learning_rate_init)  # scikit-learn's learning rate, as it decays
        if self.momentum == 0:
            return optim.GD(self._fastnn_lr())
        return optim.Momentum(self._fastnn_lr(), beta=self.momentum)

    def _fastnn_lr(self):
        return self._lr * self._scale / (1.0 - self.momentum)

    def _set_lr(self, lr):
        self._lr = lr
        self._optimizer.lr = self._fastnn_lr()

    # --- training ----------------------------------------------------------------------------

    def _fit(self, X, y, incremental):
        self._check_params()
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_pass = not hasattr(self, "model_") or (not self.warm_start and not incremental)
        dtype = np.dtype(self.dtype) if first_pass else self.model_.dtype
        X, y = self._validate_input(X, y, incremental, first_pass, dtype)
        targets, loss, n_outputs = self._targets(y)
        if not first_pass and n_outputs != self.n_outputs_:
            raise ValueError(f"y has {n_outputs} outputs, but the fitted network has "
                             f"{self.n_outputs_}; fit afresh (warm_start=False)")
        # a stream each for the initial weights, the validation split, the shuffles and masks
        seeds = check_random_state(self.random_state).randint(_SEED_MAX, size=3)
        init_seed, split_seed, fit_seed = (int(seed) for seed in seeds)
        if first_pass:
            self._initialize(X.shape[1], n_outputs, loss, dtype,
                             np.random.RandomState(init_seed))
        elif self.early_stopping and self.validation_scores_ is None:  # (a warm start with
            self.validation_scores_, self.best_validation_score_ = [], -np.inf  # it turned on)
            self._best_weights = self.model_.get_weights()
        elif not self.early_stopping and self.best_loss_ is None:  # (or off)
            self.best_loss_ = np.inf
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = self._make_optimizer()  # (scikit-learn: a new one for each fit)
        validation = None
        if self.early_stopping:  # stratified for binary targets, as scikit-learn does
            stratify = y if is_classifier(self) and self.n_outputs_ == 1 else None
            train, held_out = train_test_split(np.arange(X.shape[0]), random_state=split_seed,
                                               test_size=self.validation_fraction,
                                               stratify=stratify)
            if held_out.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            validation = (X[held_out], y[held_out])
            X, targets = X[train], targets[train]
        n_train = X.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n_train)
        else:
            if self.batch_size > n_train:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped", stacklevel=3)
            batch_size = int(np.clip(self.batch_size, 1, n_train))
        self.n_iter_ = 0
        bookkeeping = _Bookkeeping(self, n_train, validation)
        try:
            self.model_.fit(X, targets, epochs=1 if incremental else self.max_iter,
                            batch_size=batch_size, optimizer=self._optimizer,
                            l2=self.alpha / self._scale, callbacks=[bookkeeping],
                            shuffle=self.shuffle, seed=fit_seed,
                            verbose=False)
        except TrainingDivergedError as error:
            raise ValueError(f"Solver produced non-finite parameter weights. The input data may "
                             f"contain large values and need to be preprocessed. ({error})"
                             ) from error
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=3)
        if not incremental and not bookkeeping.stopped and self.n_iter_ == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                          "and the optimization hasn't converged yet.", ConvergenceWarning,
                          stacklevel=3)
        if self.early_stopping:  # the weights of the best validation score
            self.model_.set_weights(self._best_weights)
        return self

    def _end_epoch(self, loss, n_train, validation):
        """scikit-learn's books after an epoch of mean training loss ``loss`` (fastnn's, with the
        L2 term): the loss curve, the validation score, the no-improvement count and the
        learning-rate schedule. Returns whether to stop."""
        loss = float(loss) * self._scale
        self.n_iter_ += 1
        self.t_ += n_train
        self.loss_ = loss
        self.loss_curve_.append(loss)
        if self.verbose:
            print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
        if validation is not None:
            score = self._validation_score(*validation)
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            improved = not score < self.best_validation_score_ + self.tol
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_weights = self.model_.get_weights()
        else:
            improved = not loss > self.best_loss_ - self.tol
            self.best_loss_ = min(self.best_loss_, loss)
        self._no_improvement_count = 0 if improved else self._no_improvement_count + 1
        sgd = self.solver == "sgd"
        if sgd and self.learning_rate == "invscaling":
            self._set_lr(self.learning_rate_init / (self.t_ + 1) ** self.power_t)
        if not self._no_improvement_count > self.n_iter_no_change:
            return False
        what = "Validation score" if validation is not None else "Training loss"
        message = (f"{what} did not improve more than tol={self.tol:f} for "
                   f"{self.n_iter_no_change} consecutive epochs.")
        if sgd and self.learning_rate == "adaptive":
            if self._lr > 1e-6:
                self._set_lr(self._lr / 5.0)
                self._no_improvement_count = 0
                if self.verbose:
                    print(f"{message} Setting learning rate to {self._lr:f}")
                return False
            message += " Learning rate too small."
        if self.verbose:
            print(f"{message} Stopping.")
        return True

    def fit(self, X, y):
        """Fit the network to data matrix X and target(s) y: at most ``max_iter`` epochs of
        mini-batches (see the class docstring for when training stops).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The target values (class labels in classification, real numbers in regression).

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._fit(X, y, incremental=False)

    def _validate_X(self, X):
        """X for prediction: checked, of the network's dtype, C-contiguous."""
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=self.model_.dtype, order="C")


def _options(name, value, allowed):
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, got {value!r}")


_PARAMETERS = """
    hidden_layer_sizes : array-like of int, default=(100,)
        The width of each hidden layer, in order (``()``: no hidden layer, a linear model).

    activation : {"relu", "tanh", "logistic", "identity"}, default="relu"
        The hidden layers' activation (fastnn's "relu", "tanh", "sigmoid", "linear").

    solver : {"adam", "sgd"}, default="adam"
        "adam": ``fastnn.optim.Adam``; "sgd": ``fastnn.optim.Momentum`` (``GD`` when
        momentum=0). "lbfgs" raises ValueError: fastnn trains with mini-batches.

    alpha : float, default=0.0001
        Strength of the L2 penalty alpha / (2 n_batch) * sum ||W||^2 on the dense weights (not
        the biases nor the batch-norm parameters), scikit-learn's convention.

    batch_size : int or "auto", default="auto"
        Rows per mini-batch; "auto" is min(200, n_samples). Larger than the number of rows:
        clipped, with a warning.

    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        The learning-rate schedule of solver="sgd" (ignored by "adam"): "invscaling" sets
        learning_rate_init / (t_ + 1) ** power_t after each epoch; "adaptive" divides it by 5
        when the stopping rule is met, and stops once it is below 1e-6.

    learning_rate_init : float, default=0.001
        The initial learning rate.

    power_t : float, default=0.5
        The exponent of "invscaling".

    max_iter : int, default=200
        The most epochs ``fit`` trains (``partial_fit`` trains one).

    shuffle : bool, default=True
        Shuffle the rows before each epoch.

    random_state : int, RandomState instance or None, default=None
        Draws the initial weights, the validation split, the shuffles and the dropout masks: an
        int makes ``fit`` reproducible; None draws afresh at each fit (NumPy's global state).

    tol : float, default=1e-4
        Training stops when the training loss (or, with early_stopping, the validation score)
        has not improved by at least tol for more than n_iter_no_change consecutive epochs.

    verbose : bool, default=False
        Print the loss of each epoch (and the validation score) to stdout.

    warm_start : bool, default=False
        ``fit`` continues from the fitted network (and its books) instead of starting afresh.

    momentum : float in [0, 1), default=0.9
        The momentum of solver="sgd" (classical momentum; 1 is not accepted).

    early_stopping : bool, default=False
        Hold out validation_fraction of the training data (stratified for binary targets, as
        scikit-learn does), stop when its score (accuracy, or R^2) stops improving, and keep
        the weights of the best score.

    validation_fraction : float in [0, 1), default=0.1
        The held-out share with early_stopping.

    beta_1 : float in [0, 1), default=0.9
        Adam's decay of the gradients' average.

    beta_2 : float in [0, 1), default=0.999
        Adam's decay of the squared gradients' average.

    epsilon : float, default=1e-8
        Adam's epsilon.

    n_iter_no_change : int or np.inf, default=10
        Epochs without an improvement of tol tolerated (see tol).

    batch_norm : bool, default=False
        (fastnn) Each hidden layer is Dense(use_bias=False) -> BatchNorm -> activation.
        Mini-batches then need two rows or more.

    dropout : float in [0, 1), default=0.0
        (fastnn) The drop rate of a Dropout layer after each hidden layer (0: none).

    dtype : {"float64", "float32"}, default="float64"
        (fastnn) The precision of the weights and of the computation. float64 by default, as
        scikit-learn's MLP computes on float64 data: scikit-learn's checks compare a row
        predicted alone with the same row predicted in a batch to 1e-7, and float32 products
        differ there by 1-2 ulp (2.4e-7). "float32" halves the memory and is faster on large
        problems. Regression predictions are float64 either way.

    backend : {"numpy", "cpu", "cuda"} or None, default=None
        (fastnn) The kernel backend; None is fastnn's default (``fastnn.set_backend``).
"""

_ATTRIBUTES = """
    loss_ : float
        The training loss of the last epoch (with the L2 term), scikit-learn's objective.

    best_loss_ : float or None
        The lowest training loss (None with early_stopping).

    loss_curve_ : list of float
        The training loss of each epoch.

    validation_scores_ : list of float or None
        The validation score of each epoch with early_stopping, else None.

    best_validation_score_ : float or None
        The best validation score with early_stopping, else None.

    t_ : int
        The training rows seen (summed over epochs).

    n_features_in_ : int
        The number of features seen in ``fit``.

    feature_names_in_ : ndarray of str
        The column names of a DataFrame X (only then).

    n_iter_ : int
        The epochs the last ``fit`` trained.

    n_layers_ : int
        The number of layers, input and output included (scikit-learn's count).

    n_outputs_ : int
        The number of outputs of the network.

    out_activation_ : str
        The output activation: "softmax", "logistic" or "identity".

    model_ : fastnn.nn.Sequential
        The trained network (``model_.save(path)`` saves it in fastnn's format).
"""

_DIFFERENCES = """
    Notes
    -----
    From the same weights and the same order of rows, the updates are scikit-learn's (tested
    to 1e-9; Adam to 1e-4, see below). fastnn averages its losses over every output value, where
    scikit-learn sums them over the outputs (and halves the squared error): the estimator
    rescales alpha, Adam's epsilon and the SGD learning rate accordingly, and ``loss_curve_``
    reports scikit-learn's objective. Differences from scikit-learn's MLP:

    - no solver="lbfgs" (fastnn trains with mini-batches), no loss="poisson", no sample_weight,
      no sparse input;
    - no Nesterov momentum: solver="sgd" is scikit-learn's nesterovs_momentum=False. fastnn's
      ``Momentum`` keeps the EWA velocity v = beta v + (1 - beta) g; its learning rate is set to
      lr / (1 - momentum), which makes its steps those of scikit-learn's v = momentum v - lr g.
      When "invscaling" or "adaptive" changes the learning rate, the velocity kept is rescaled
      with it (scikit-learn's keeps the steps taken at the old rate);
    - Adam adds epsilon after the bias correction of the second moment (PyTorch's form;
      scikit-learn's is epsilon / sqrt(1 - beta_2^t) there): the same steps up to epsilon;
    - the initial weights and biases are drawn as scikit-learn draws them (uniform, Glorot's
      range), but from another stream: a given random_state gives other initial weights, other
      shuffles and other splits than scikit-learn's;
    - float64 by default whatever the input's dtype (scikit-learn keeps float32 input in
      float32);
    - multi-output regression: ``loss_curve_`` sums the half squared errors over the outputs,
      the objective both libraries' gradients follow (scikit-learn's loss_curve_ averages them);
    - early stopping holds out a stratified split for binary targets only, as scikit-learn.
"""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = f"""Multi-layer perceptron classifier trained by fastnn, with the parameters and
    attributes of ``sklearn.neural_network.MLPClassifier``.

    Builds a ``fastnn.nn.Sequential``: the hidden ``Dense`` layers (``BatchNorm`` and
    ``Dropout`` when asked), then a linear ``Dense`` output trained with
    "softmax_cross_entropy" for multiclass targets (one output per class),
    "sigmoid_cross_entropy" for binary targets (one output, as scikit-learn's logistic output)
    and multi-label indicator matrices (one output per label); optimizer ``fastnn.optim.Adam``,
    or ``Momentum``/``GD`` for solver="sgd". Labels may be of any type (strings, ints, bools):
    ``classes_`` holds them sorted.

    Parameters
    ----------{_PARAMETERS}
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels (for multi-label targets, the label indices).
{_ATTRIBUTES}{_DIFFERENCES}"""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, batch_norm=False, dropout=0.0,
                 dtype="float64", backend=None):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, batch_norm=batch_norm,
            dropout=dropout, dtype=dtype, backend=backend)

    def _validate_input(self, X, y, incremental, reset, dtype):
        """(X, y) checked (scikit-learn's MLPClassifier's rules): the classes learned on a first
        fit, else y's classes checked against them."""
        X, y = validate_data(self, X, y, multi_output=True, dtype=dtype, order="C",
                             reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(f"warm_start can only be used where `y` has the same "
                                     f"classes as in the previous call to fit. Previously got "
                                     f"{self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {classes}.")
        return X, y

    def _targets(self, y):
        """(fastnn targets, loss, outputs): class indices for softmax cross-entropy
        (multiclass), else the 0/1 indicator columns for sigmoid cross-entropy."""
        Y = self._label_binarizer.transform(y)
        if self._label_binarizer.y_type_ == "multiclass":
            return np.argmax(Y, axis=1), "softmax_cross_entropy", Y.shape[1]
        return Y, "sigmoid_cross_entropy", Y.shape[1]

    def _validation_score(self, X, y):
        return accuracy_score(y, self._predict(X))

    def _predict(self, X):
        proba = self.model_.predict_proba(X)
        return self._label_binarizer.inverse_transform(
            proba.ravel() if self.n_outputs_ == 1 else proba)

    def partial_fit(self, X, y, classes=None):
        """Update the network with one epoch over (X, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            The class labels (or a multi-label indicator matrix).
        classes : array-like of shape (n_classes,), default=None
            Every class y may hold over all calls: required on the first call (unless y is a
            multi-label indicator matrix), ignored or checked later.

        Returns
        -------
        self : object
            The updated estimator.
        """
        if classes is not None:
            classes = unique_labels(classes)
        if not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                binarizer.fit(y)
            else:
                binarizer.fit(classes)
            self._label_binarizer, self.classes_ = binarizer, binarizer.classes_
        elif classes is not None and not np.array_equal(self.classes_, classes):
            raise ValueError(f"`classes={classes!r}` is not the same as on last call to "
                             f"partial_fit, was: {self.classes_!r}")
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """The predicted classes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_labels)
            The predicted class labels (multi-label: an indicator matrix).
        """
        return self._predict(self._validate_X(X))

    def predict_proba(self, X):
        """Probability estimates.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            The probability of each class, in the order of ``classes_`` (binary: the two
            columns 1 - p, p; multi-label: the probability of each label).
        """
        X = self._validate_X(X)  # (first: NotFittedError before model_ is looked up)
        proba = self.model_.predict_proba(X)
        if self.n_outputs_ == 1:
            proba = proba.ravel()
            return np.vstack([1 - proba, proba]).T
        return proba

    def predict_log_proba(self, X):
        """The logarithm of ``predict_proba(X)``, shape (n_samples, n_classes)."""
        return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = f"""Multi-layer perceptron regressor trained by fastnn, with the parameters and
    attributes of ``sklearn.neural_network.MLPRegressor``.

    Builds a ``fastnn.nn.Sequential``: the hidden ``Dense`` layers (``BatchNorm`` and
    ``Dropout`` when asked), then a linear ``Dense`` output (one per target) trained with
    "mean_squared_error"; optimizer ``fastnn.optim.Adam``, or ``Momentum``/``GD`` for
    solver="sgd". Single- and multi-output targets.

    Parameters
    ----------
    loss : {{"squared_error"}}, default="squared_error"
        The loss ("poisson" is not available in fastnn).
{_PARAMETERS}
    Attributes
    ----------{_ATTRIBUTES}{_DIFFERENCES}"""

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, batch_norm=False, dropout=0.0,
                 dtype="float64", backend=None):
        self.loss = loss
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, batch_norm=batch_norm,
            dropout=dropout, dtype=dtype, backend=backend)

    def _check_params(self):
        if self.loss != "squared_error":
            raise ValueError(f"loss must be 'squared_error' (fastnn has no poisson loss), got "
                             f"{self.loss!r}")
        super()._check_params()

    def _validate_input(self, X, y, incremental, reset, dtype):
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=dtype,
                             order="C", reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def _targets(self, y):
        return y, "mean_squared_error", 1 if y.ndim == 1 else y.shape[1]

    def _validation_score(self, X, y):
        return r2_score(y, self.model_.predict(X))

    def partial_fit(self, X, y):
        """Update the network with one epoch over (X, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The target values.

        Returns
        -------
        self : object
            The updated estimator.
        """
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Predict with the network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predicted values (float64, also when dtype="float32").
        """
        X = self._validate_X(X)
        return self.model_.predict(X).astype(np.float64, copy=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
