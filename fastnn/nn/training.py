"""The training loop behind ``Sequential.fit`` and ``Sequential.train_on_batch`` (documented
there): epochs of shuffled mini-batches, the learning-rate schedule, validation, callbacks and
the ``History`` they log, all made of ``train_step``, one forward, backward and optimizer
update that is all or nothing.

The loop runs the model, not its layers: it takes the model's unchecked training path
(``_loss_and_gradients``), its lock, its running statistics (``_state_arrays``) and its
per-epoch hook (``_begin_epoch``, which hands each layer the epoch's generator).
"""
import math

import numpy as np

from fastnn import backend as _backend
from fastnn import optim
from fastnn.data import minibatch_indices
from fastnn.errors import TrainingDivergedError
from fastnn.nn import checks, losses
from fastnn.nn.callbacks import Callback
from fastnn.nn.layers import Normalization

FIT = "Sequential.fit"


class History:
    """Per-epoch records of ``fit`` (lists, one value per epoch), as Keras' ``History.history``:
    ``history["loss"]``, the metric (``"accuracy"`` for classification, ``"r2"`` for regression),
    ``"lr"``, and with validation data ``"val_loss"`` and ``"val_accuracy"``, or ``"val_loss"``,
    ``"val_r2"`` and ``"val_mae"``."""

    def __init__(self):
        self.history, self.epoch = {}, []

    def append(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __getitem__(self, key):
        return self.history[key]

    def __repr__(self):
        last = {k: round(v[-1], 4) for k, v in self.history.items()}
        return f"History(epochs={len(self.epoch)}, last={last})"


def fit(model, X, y, epochs, batch_size, optimizer, l2, schedule, validation_data,
        validation_split, callbacks, shuffle, seed, verbose, initial_epoch):
    """``Sequential.fit``: every argument is checked before anything changes, then ``_run``
    trains."""
    fn = FIT
    epochs = checks.integer(fn, "epochs", epochs, 0)
    initial_epoch = checks.integer(fn, "initial_epoch", initial_epoch, 0)
    if initial_epoch > epochs:
        raise ValueError(f"{fn}: initial_epoch must be an integer in [0, epochs = {epochs}], "
                         f"got {initial_epoch!r}")
    batch_size = checks.integer(fn, "batch_size", batch_size, 1)
    seed = checks.integer(fn, "seed", seed, 0)
    l2 = checks.l2(fn, l2)
    if schedule is not None and not callable(schedule):
        raise TypeError(f"{fn}: schedule must be a function of the epoch (or step) returning "
                        f"the learning rate, e.g. fastnn.optim.exponential(...), got "
                        f"{schedule!r}")
    callbacks = [] if callbacks is None else list(callbacks)
    if not all(isinstance(c, Callback) for c in callbacks):
        raise TypeError(f"{fn}: callbacks must be fastnn.nn.Callback instances")
    X = model._inputs(fn, X)
    n_classes = _n_classes(model, X.shape[1])
    y = model._targets(fn, y, X.shape[0], n_classes)
    X, y, validation = _validation(model, X, y, n_classes, validation_data, validation_split)
    model._check_batch_rows(fn, X.shape[0])
    if batch_size < 2 and model._batch_statistics():
        raise ValueError(f"{fn}: batch_size must be >= 2 for a model with BatchNorm (batch "
                         f"statistics), got {batch_size}")
    optimizer = _optimizer(fn, model, optimizer, X.shape[1])
    logged = _logged(model, validation is not None)
    for c in callbacks:
        c.check_logged(fn, logged)
    if schedule is not None:  # a schedule's first value is checked before anything changes
        first = initial_epoch * _n_batches(model, X.shape[0], batch_size) if \
            _per_step(schedule) else initial_epoch
        checks.scheduled_lr(fn, schedule, first, optimizer)
    unadapted = [i for i, layer in enumerate(model.layers)
                 if isinstance(layer, Normalization) and not layer.adapted]
    if any(i > 0 for i in unadapted):
        raise ValueError(f"{fn}: layer {unadapted[-1]} (Normalization) has not learned its "
                         "statistics; only a first layer learns them from the training data: "
                         "call its adapt() with its inputs first")
    if model.n_features is None:
        model.build(X.shape[1], seed)
    if unadapted:  # (the training data only: a validation split is left out)
        model.layers[0].adapt(X)
    return _run(model, X, y, validation, epochs, initial_epoch, batch_size, optimizer, l2,
                schedule, callbacks, shuffle, seed, verbose)


def _validation(model, X, y, n_classes, validation_data, validation_split):
    """(X, y, (X_val, y_val) or None): the checked validation data, or the last
    ``validation_split`` of X and y split off."""
    fn = FIT
    if validation_data is not None:
        if validation_split:
            raise ValueError(f"{fn}: give validation_data or validation_split, not both")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError(f"{fn}: validation_data must be a pair (X_val, y_val), got "
                             f"{type(validation_data).__name__} "
                             f"{checks.length(validation_data)}")
        k = model._kernels()
        X_val = checks.inputs(fn, validation_data[0], model.dtype, k, X.shape[1],
                              "the training data")
        return X, y, (X_val, model._targets(fn, validation_data[1], X_val.shape[0], n_classes))
    if not validation_split:
        return X, y, None
    split = checks.number(fn, "validation_split", validation_split, 0.0, 1.0)
    n_val = int(round(X.shape[0] * split)) if 0.0 < split < 1.0 else 0
    if not 1 <= n_val < X.shape[0]:
        raise ValueError(f"{fn}: validation_split must be in (0, 1) and leave at least one row "
                         f"for validation and for training ({X.shape[0]} rows), got "
                         f"{validation_split!r}")
    return X[:-n_val], y[:-n_val], (X[-n_val:], y[-n_val:])


def _run(model, X, y, validation, epochs, initial_epoch, batch_size, optimizer, l2, schedule,
         callbacks, shuffle, seed, verbose):
    """The epochs of ``fit`` on checked arguments and a built model; returns the History."""
    k = model._kernels()  # the data moves to the backend once ("cuda": the device)
    X, y = k.to_backend(X), k.to_backend(y)
    if validation is not None:
        validation = tuple(k.to_backend(a) for a in validation)
    model.optimizer, model.stop_training, history = optimizer, False, History()
    metric = model._loss_fn.metric
    for c in callbacks:
        c.on_train_begin(model)
    fold, per_step = model._batch_statistics(), _per_step(schedule)
    score = _scorer(model, y)
    n_batches = _n_batches(model, X.shape[0], batch_size)
    progress = _progress((epochs - initial_epoch) * n_batches, verbose)
    step = initial_epoch * n_batches
    for epoch in range(initial_epoch, epochs):
        if schedule is not None and not per_step:
            optimizer.lr = checks.scheduled_lr(FIT, schedule, epoch, optimizer)
        for c in callbacks:
            c.on_epoch_begin(model, epoch)
        total, penalties, correct, seen = 0.0, 0.0, 0, 0
        rng = np.random.default_rng([seed, epoch])  # each epoch its own stream: resumable
        model._begin_epoch(epoch, rng)
        order_seed = int(rng.integers(2**63)) if shuffle else None
        for b, rows in enumerate(minibatch_indices(X.shape[0], batch_size, order_seed,
                                                   fold_single_row=fold)):
            if per_step:
                optimizer.lr = checks.scheduled_lr(FIT, schedule, step, optimizer)
            Xb, yb = _batch(model, k, X, rows, "X"), _batch(model, k, y, rows, "y")
            loss, n_correct, penalty = train_step(model, Xb, yb, l2, optimizer,
                                                  f"at epoch {epoch + 1}, step {b + 1}")
            total += loss * Xb.shape[0]
            penalties += penalty * Xb.shape[0]
            correct += n_correct
            seen += Xb.shape[0]
            step += 1
            if progress is not None:
                progress.update(1)
                value = score(total - penalties, correct, seen)
                progress.set_postfix(refresh=False, epoch=epoch + 1, loss=f"{total / seen:.4f}",
                                     **{metric[:3]: f"{value:.3f}"})
        logs = {"loss": total / seen, metric: score(total - penalties, correct, seen),
                "lr": float(optimizer.lr)}
        if validation is not None:
            with model._lock:
                logs.update({f"val_{name}": value
                             for name, value in model._evaluate(*validation).items()})
        history.append(epoch, logs)
        for c in callbacks:
            c.on_epoch_end(model, epoch, logs)
        if model.stop_training:
            break
    if progress is not None:
        progress.close()
    for c in callbacks:
        c.on_train_end(model)
    return history


def train_on_batch(model, X, y, optimizer, l2):
    """``Sequential.train_on_batch``: the arguments checked, then one ``train_step``; returns
    (loss, the batch's metric: accuracy, or R^2 for regression)."""
    fn = "Sequential.train_on_batch"
    X = model._inputs(fn, X, finite=False)  # NaN/inf: found by the kernels, named below
    n_classes = _n_classes(model, X.shape[1])
    y_given = y  # (labels on the device: their range is checked by the kernels, named below)
    y = model._targets(fn, y, X.shape[0], n_classes, device_range=False)
    l2 = checks.l2(fn, l2)
    model._check_batch_rows(fn, X.shape[0])
    if optimizer is None or (isinstance(optimizer, str) and isinstance(
            model.optimizer, optim.OPTIMIZERS.get(optimizer.lower(), ()))):
        optimizer = model.optimizer  # (a name keeps the model's optimizer of that kind)
    optimizer = _optimizer(fn, model, optimizer, X.shape[1])
    if model.n_features is None:
        model.build(X.shape[1])
    model.optimizer = optimizer
    try:
        loss, n_correct, penalty = train_step(model, X, y, l2, optimizer, "in train_on_batch")
    except TrainingDivergedError:
        model._inputs(fn, X)  # a ValueError naming X when the NaN/inf came with the data
        raise
    except ValueError:
        model._targets(fn, y_given, X.shape[0], n_classes)  # (names the label)
        raise
    return loss, _scorer(model, y)((loss - penalty) * X.shape[0], n_correct, X.shape[0])


def train_step(model, X, y, l2, optimizer, where):
    """One forward, backward and update on checked data; returns (loss, number of right
    predictions, the L2 penalty within the loss). All or nothing: on NaN or inf the running
    statistics are put back (and the optimizer's update undone, or never made) and
    TrainingDivergedError says ``where``;
    any other error (a class label out of range that the CUDA kernels found) puts them back
    too. On the CUDA backend the whole step is checked at the end of its ``kernel_scope``,
    which also reads the loss and the count: one wait for the GPU per step."""
    optimizer.check_hyperparameters(dtypes=(model.dtype,))  # (a schedule may have set lr)
    k = model._kernels()
    saved, t = model._backup_state(), optimizer.t
    try:
        with model._lock, model._step_kind(X.shape[0]):
            with k.kernel_scope:
                loss, n_correct, penalty = model._loss_and_gradients(X, y, l2)
                optimizer.step_unchecked(model.flat_params, model.flat_grads)
            loss, n_correct = float(loss), int(n_correct)  # (read at the scope's end)
            penalty = float(penalty)
            if not math.isfinite(loss):
                raise FloatingPointError("the loss is not finite")
    except BaseException as error:
        if optimizer.t != t:  # (stepped: its check was deferred to the scope's end)
            optimizer.undo_last_step(model.flat_params)
        model._restore_state(saved)
        if not isinstance(error, ArithmeticError):  # (NonFiniteError, FloatingPointError)
            raise
        raise TrainingDivergedError(
            f"training diverged {where} ({error}); the model keeps the parameters, optimizer "
            "state and running statistics of the last good step: lower the learning rate, or "
            "check the inputs and the initialization") from error
    return loss, n_correct, penalty


def _logged(model, validation):
    """The keys ``fit`` logs for ``model`` (with validation data or not)."""
    metric = model._loss_fn.metric
    val = ["val_loss", f"val_{metric}"] + (["val_mae"] if metric == "r2" else [])
    return ["loss", metric, "lr"] + (val if validation else [])


def _scorer(model, y):
    """``score(summed data loss, right predictions, rows)``: the metric of a built model's
    training steps on targets from ``y`` (the data loss: without the L2 penalty, summed over
    the rows' batches as mean loss * rows): the share of right predictions, or R^2 from the mean
    squared error and the variance of y's outputs."""
    if model._loss_fn.classifier:
        per_row = model._loss_fn.judged(1, model.n_classes)
        return lambda loss, correct, rows: correct / (rows * per_row)
    variance = losses.target_variance(y)
    return lambda loss, correct, rows: losses.r2_score(loss / rows, variance)


def _optimizer(fn, model, optimizer, n_features):
    """The optimizer to train with (Adam(1e-3) for None, or from its name), checked to fit the
    model's parameters for ``n_features`` inputs: its backend keeps arrays where the model's
    do, and state it already holds is for one flat buffer of the model's size."""
    optimizer = optim.Adam() if optimizer is None else optim.get(optimizer, fn)
    if optimizer.backend is not None and _backend.get(optimizer.backend).on_device != \
            model._kernels().on_device:
        raise ValueError(f"{fn}: the optimizer's backend {optimizer.backend!r} keeps its "
                         f"arrays elsewhere than the model's backend {model.backend!r}")
    size = model.flat_params.size if model.n_features is not None else \
        model._n_params(n_features)
    if optimizer._spec is not None and optimizer._spec != [((size,), model.dtype)]:
        raise ValueError(f"{fn}: the optimizer holds state for other parameters "
                         f"({optimizer._spec}), not this model's {size} {model.dtype} "
                         "parameters; pass a new optimizer")
    optimizer.backend = model.backend if optimizer.backend is None else optimizer.backend
    return optimizer


def _n_classes(model, n_features):
    """The model's outputs, built or not (for ``n_features`` inputs)."""
    return model.n_classes if model.n_features is not None else \
        model._param_specs(n_features)[1]


def _batch(model, k, a, rows, name):
    """a[rows] (a mini-batch) in the model's workspace array ``"batch " + name`` (one per
    role: X and 2-D targets must not share a buffer); only ``rows`` crosses to the device of
    the backend ``k``."""
    if isinstance(rows, slice):
        return a[rows]
    out = model.workspace.array(f"batch {name}", (len(rows),) + a.shape[1:], a.dtype, k.empty)
    return k.take_rows(a, rows, out)


def _per_step(schedule):
    """Whether ``schedule`` gives the learning rate per step (else per epoch, or no schedule)."""
    return schedule is not None and getattr(schedule, "unit", "epoch") == "step"


def _n_batches(model, n, batch_size):
    """The number of mini-batches ``fit`` makes of n rows (with batch statistics, a one-row
    last mini-batch is joined to the one before)."""
    fold = model._batch_statistics()
    return n // batch_size if fold and n % batch_size == 1 and n > 1 else -(-n // batch_size)


def _progress(total, verbose):
    """A tqdm progress bar over ``total`` steps, or None when not ``verbose``."""
    if not verbose:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="step", leave=True)
