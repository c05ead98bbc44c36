"""Ready-made objectives: the validation score of a batch-normalized MLP (``fastnn tune``'s):
its accuracy on the digits or on a classification data set, R^2 on a regression one."""
import functools
import math
import numbers

import numpy as np

from fastnn import optim
from fastnn.data import load_digits
from fastnn.nn import TrainingDivergedError, losses
from fastnn.nn.mlp import build_mlp
from fastnn.optim import OPTIMIZERS
from fastnn.tune.space import SpaceError

__all__ = ["MLPObjective"]

#: The optimizer attribute that each optimizer's ``beta`` hyperparameter sets.
BETA = {"momentum": "beta", "rmsprop": "beta", "adam": "beta1"}


def _real(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


#: What each hyperparameter of ``MLPObjective`` must be: (text, predicate); a search space is
#: checked against these before its first trial (``MLPObjective.check_space``).
REQUIREMENTS = {
    "lr": ("a finite number > 0", lambda v: _real(v) and v > 0),
    "beta": ("None or a number in [0, 1)", lambda v: v is None or (_real(v) and 0 <= v < 1)),
    "beta2": ("None or a number in [0, 1)", lambda v: v is None or (_real(v) and 0 <= v < 1)),
    "hidden": ("an integer >= 1", lambda v: _real(v) and int(v) >= 1),
    "layers": ("an integer >= 0", lambda v: _real(v) and v >= 0),
    "l2": ("a finite number >= 0", lambda v: _real(v) and v >= 0),
    "dropout": ("a number in [0, 1)", lambda v: _real(v) and 0 <= v < 1),
    "batch_size": ("an integer >= 1", lambda v: _real(v) and int(v) >= 1),
    "decay": ("a finite number >= 0", lambda v: _real(v) and v >= 0),
    "optimizer": (f"one of {', '.join(map(repr, OPTIMIZERS))}",
                  lambda v: isinstance(v, str) and v in OPTIMIZERS),
}


@functools.lru_cache(maxsize=4)
def _digits(seed, validation_split):
    """(X_fit, y_fit, X_val, y_val): the training part of ``load_digits(seed=seed)``, its last
    ``validation_split`` fraction held out for validation (the test part stays unseen)."""
    X, y, _, _ = load_digits(seed=seed)
    n_val = int(round(X.shape[0] * validation_split))
    return X[:-n_val], y[:-n_val], X[-n_val:], y[-n_val:]


class MLPObjective:
    """Validation score of ``build_mlp((hidden,) * layers, ...)`` after ``epochs`` epochs: its
    accuracy, or R^2 for a regression loss (the metric of ``loss``: ``metric``).

    data: (X_train, y_train, X_val, y_val), or None for the handwritten digits: the training part
    of ``fastnn.data.load_digits(seed=seed)`` with its last ``validation_split`` held out, loaded
    here, once (the arrays travel with the objective: workers need neither scikit-learn nor a
    copy of the data). train_size: use only the first rows of the training data (quick runs).
    seed: the model's initialization and shuffling (the same in every trial: only the
    hyperparameters differ). loss: the model's loss (``fastnn.nn.losses``; softmax
    cross-entropy for the digits); n_outputs: its outputs (None: the largest class id in
    y_train + 1 for softmax cross-entropy, else y_train's columns); normalize: a
    ``Normalization`` first layer (learned from each trial's training data). name: the data's
    name in ``settings`` (default "digits" or "data"; give one that changes with the data, a
    hash say, so that a search does not resume on other data).

    Hyperparameters (keywords of the call; a search space names any of them):
    lr; beta (the optimizer's averaging coefficient: Momentum's and RMSprop's beta, Adam's beta1;
    default: the optimizer's); beta2 (Adam's); hidden (units per hidden layer); layers; l2 (the
    lambda of the L2 penalty); dropout (rate); batch_size; decay (inverse-time learning-rate
    decay lr / (1 + decay * epoch)); optimizer ("adam", "momentum", "rmsprop", "gd").
    Stored with the trial: train_accuracy (train_r2 for regression), epochs (run), diverged;
    the model (``model_dir``).
    A run whose loss becomes NaN or inf raises ``TrainingDivergedError`` (stored with
    diverged=True): the search records the trial as failed, with the reason, and goes on.
    ``check_space(space)`` checks a search space against ``REQUIREMENTS`` (``search`` calls it
    before the first trial).
    """

    def __init__(self, epochs=20, data=None, validation_split=0.2, train_size=None, seed=0,
                 backend=None, loss="softmax_cross_entropy", n_outputs=None, normalize=False,
                 name=None):
        if not _positive_int(epochs):
            raise ValueError(f"MLPObjective: epochs must be an integer >= 1, got {epochs!r}")
        if train_size is not None and not _positive_int(train_size):
            raise ValueError(f"MLPObjective: train_size must be None or an integer >= 1, got "
                             f"{train_size!r}")
        if not 0.0 < validation_split < 1.0:
            raise ValueError(f"MLPObjective: validation_split must be in (0, 1), got "
                             f"{validation_split!r}")
        loss_fn = losses.get(loss)  # (ValueError naming the losses)
        if n_outputs is not None and not _positive_int(n_outputs):
            raise ValueError(f"MLPObjective: n_outputs must be None or an integer >= 1, got "
                             f"{n_outputs!r}")
        self.loss, self.metric = loss_fn.name, loss_fn.metric
        self.n_outputs, self.normalize = n_outputs, bool(normalize)
        self.name = name or ("digits" if data is None else "data")
        self.data = _digits(seed, validation_split) if data is None else tuple(data)
        self.epochs, self.train_size, self.seed, self.backend = epochs, train_size, seed, backend

    def __repr__(self):
        return (f"MLPObjective(epochs={self.epochs}, {self.name} {self.data[0].shape} train, "
                f"{self.data[2].shape} validation, train_size={self.train_size}, "
                f"seed={self.seed})")

    def load(self):
        """(X_train, y_train, X_val, y_val) as used by the trials."""
        X, y, X_val, y_val = self.data
        return X[:self.train_size], y[:self.train_size], X_val, y_val

    def settings(self):
        """What its trials' values depend on besides the hyperparameters (stored with a search,
        which refuses to resume with other settings)."""
        return {"objective": type(self).__name__, "epochs": self.epochs,
                "train_size": self.train_size, "seed": self.seed, "backend": self.backend,
                "data": self.name, "train_shape": list(self.data[0].shape),
                "validation_shape": list(self.data[2].shape),
                **({"loss": self.loss, "n_outputs": self.n_outputs, "normalize": self.normalize}
                   if (self.loss, self.n_outputs, self.normalize)
                   != ("softmax_cross_entropy", None, False) else {})}  # (older studies match)

    def check_space(self, space):
        """Raise ``fastnn.tune.SpaceError`` (a ValueError) naming the hyperparameter if the
        search space allows a value this objective cannot take (0 hidden units, lr <= 0, an
        unknown optimizer, beta for plain gradient descent, ...), before any trial runs."""
        space.check(REQUIREMENTS, "MLPObjective")
        names = space.names
        optimizers = space["optimizer"].extremes() if "optimizer" in names else ["adam"]
        for name in ("beta", "beta2"):
            if name not in names:
                continue
            for optimizer in optimizers:
                try:
                    _optimizer(optimizer, 1e-3, 0.9 if name == "beta" else None,
                               0.9 if name == "beta2" else None)
                except ValueError as error:
                    raise SpaceError(name, f"{error} (the search space has {name} "
                                           f"{space[name]!r} and optimizer {optimizer!r})") \
                        from None

    def __call__(self, trial, *, lr=1e-3, beta=None, beta2=None, hidden=64, layers=1, l2=0.0,
                 dropout=0.0, batch_size=64, decay=0.0, optimizer="adam"):
        given = dict(lr=lr, beta=beta, beta2=beta2, hidden=hidden, layers=layers, l2=l2,
                     dropout=dropout, batch_size=batch_size, decay=decay, optimizer=optimizer)
        for name, value in given.items():
            text, ok = REQUIREMENTS[name]
            if not ok(value):
                raise ValueError(f"MLPObjective: {name} must be {text}, got {value!r}")
        X, y, X_val, y_val = self.load()
        model = build_mlp((int(hidden),) * int(layers), self._outputs(y), dropout, self.backend,
                          loss=self.loss, normalize=self.normalize)
        schedule = optim.inverse_time(lr, decay) if decay else None
        try:
            history = model.fit(X, y, epochs=self.epochs, batch_size=int(batch_size),
                                optimizer=_optimizer(optimizer, lr, beta, beta2), l2=l2,
                                schedule=schedule, validation_data=(X_val, y_val),
                                callbacks=[trial.callback(f"val_{self.metric}")], seed=self.seed,
                                verbose=False)
        except TrainingDivergedError:
            trial.set_attrs(diverged=True)
            raise  # a failed trial (the search records why and goes on)
        score = model.evaluate(X_val, y_val)[1]
        trial.set_attrs(**{f"train_{self.metric}": history[self.metric][-1]},
                        epochs=len(history.epoch), diverged=False)
        trial.save_model(model)
        return score

    def _outputs(self, y):
        if self.n_outputs is not None:
            return self.n_outputs
        if self.loss == "softmax_cross_entropy":
            return int(np.max(y)) + 1
        return 1 if np.ndim(y) == 1 else int(np.shape(y)[1])


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _optimizer(name, lr, beta, beta2):
    if name not in OPTIMIZERS:
        raise ValueError(f"MLPObjective: optimizer must be one of {', '.join(OPTIMIZERS)}, got "
                         f"{name!r}")
    kwargs = {"lr": lr}
    canonical = "gd" if OPTIMIZERS[name] is optim.GD else name
    if beta is not None:
        if canonical not in BETA:
            raise ValueError(f"MLPObjective: beta does not apply to optimizer {name!r}; it "
                             f"applies to {', '.join(BETA)}")
        kwargs[BETA[canonical]] = beta
    if beta2 is not None:
        if canonical != "adam":
            raise ValueError(f"MLPObjective: beta2 applies to optimizer 'adam' only, got "
                             f"optimizer {name!r}")
        kwargs["beta2"] = beta2
    return OPTIMIZERS[name](**kwargs)
