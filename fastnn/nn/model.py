"""Sequential: a stack of layers trained with mini-batch gradient descent on the softmax
cross-entropy (plus optional L2), one optimizer step per mini-batch over one flat buffer.

Keras-like use::

    model = Sequential([Dense(128, use_bias=False), BatchNorm(), ReLU(), Dense(10)])
    history = model.fit(X, y, epochs=20, batch_size=64, optimizer=Adam(1e-3))
    model.predict(X_test)
"""
import math
import numbers
import threading
import weakref

import numpy as np

from fastnn import backend as _backend
from fastnn import optim
from fastnn.data import minibatch_indices
from fastnn.kernels.base import is_device_array, to_host
from fastnn.errors import NonFiniteError, TrainingDivergedError
from fastnn.nn import checks, initializers
from fastnn.nn.callbacks import Callback
from fastnn.nn.layers import BatchNorm, Layer, claim_layers, fuse_activations
from fastnn.nn.workspace import Workspace

LOSSES = ("softmax_cross_entropy",)


class History:
    """Per-epoch records of ``fit``: ``history["loss"]``, ``"accuracy"``, ``"val_loss"``,
    ``"val_accuracy"``, ``"lr"`` (lists, one value per epoch), as Keras' ``History.history``."""

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


class Sequential:
    """Layers applied in order; the last one gives the logits (n_samples, n_classes).

    loss: "softmax_cross_entropy" (labels are class indices). backend: "numpy" | "cpu" | None
    (the default backend), used by every layer and the optimizer. dtype: float32 (default) or
    float64. The parameters are built on the first ``fit``/``build`` from the feature count.

    A layer object belongs to one model (no weight sharing): a layer listed twice, or already in
    another live model, is rejected. One model may be used from several threads: each training
    step and each inference call holds the model's lock, so a ``predict`` during ``fit`` sees
    the parameters between two steps.
    """

    def __init__(self, layers, loss="softmax_cross_entropy", backend=None, dtype=np.float32):
        layers = list(layers)
        if not layers or not all(isinstance(layer, Layer) for layer in layers):
            raise TypeError("Sequential: layers must be a non-empty list of fastnn.nn layers")
        if loss not in LOSSES:
            raise ValueError(f"Sequential: unknown loss {loss!r}; expected one of {LOSSES}")
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise TypeError(f"Sequential: dtype must be float32 or float64, got {dtype}")
        claim_layers(self, layers)  # (last check: a failed constructor claims nothing)
        self.layers, self.loss, self.dtype = layers, loss, np.dtype(dtype)
        self.backend = backend
        for layer in layers:
            layer.backend = backend
        fuse_activations(layers)
        self.n_features = None
        self.optimizer = None
        self.stop_training = False
        self.workspace = Workspace()
        self._lock = threading.RLock()
        self._forward_rows = None  # rows of the last training-mode forward, for ``backward``

    def __getstate__(self):  # (copy.deepcopy, pickle): the lock and weak references stay behind
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.RLock()
        for layer in self.layers:
            layer._model = weakref.ref(self)

    # --- parameters ------------------------------------------------------------------------

    def build(self, n_features, seed=0):
        """Create the parameters for ``n_features`` inputs, initialized from ``seed``: a fresh
        model (running statistics reset, no optimizer). A model is built on the backend it was
        given, or the default one at that moment, and stays there."""
        if (not isinstance(n_features, numbers.Integral) or isinstance(n_features, bool)
                or n_features < 1):
            raise ValueError(f"Sequential.build: n_features must be an integer >= 1, got "
                             f"{n_features!r}")
        rng = np.random.default_rng(seed)
        if self.backend is None:  # a built model stays on the backend it was built on
            self.backend = _backend.get_default()
            for layer in self.layers:
                layer.backend = self.backend
        specs, width = self._param_specs(n_features)
        size = self._n_params(n_features)
        initial = np.zeros(size, self.dtype)  # initialized on the host, then moved to the backend
        parts, offset = [], 0  # per layer: (name, spec, slice of the flat buffers)
        for layer, layer_specs in zip(self.layers, specs):
            parts.append([])
            for name, spec in layer_specs.items():
                part = slice(offset, offset + math.prod(spec.shape))
                if spec.init == "ones":
                    initial[part] = 1
                elif spec.init != "zeros":
                    initial[part] = initializers.initialize(
                        spec.init, spec.shape, rng, self.dtype,
                        getattr(layer, "init_scale", 0.01)).ravel()
                parts[-1].append((name, spec, part))
                offset = part.stop
        k = self._kernels()
        self.flat_params, self.flat_grads = k.to_backend(initial), k.zeros(size, self.dtype)
        self._regularized = []
        for layer, layer_parts in zip(self.layers, parts):
            params = {name: self.flat_params[part].reshape(spec.shape)
                      for name, spec, part in layer_parts}
            grads = {name: self.flat_grads[part].reshape(spec.shape)
                     for name, spec, part in layer_parts}
            self._regularized += [(params[name], grads[name])
                                  for name, spec, _ in layer_parts if spec.regularized]
            layer.bind(params, grads)
        for i, layer in enumerate(self.layers):
            layer.input_grad = i > 0  # nothing needs the gradient with respect to the data
        self.n_features, self.n_classes = int(n_features), width
        self._forward_rows, self.optimizer = None, None
        self.workspace.clear()
        return self

    def _param_specs(self, n_features):
        """([{name: ParamSpec} per layer], output width) for ``n_features`` inputs; allocates
        nothing (``load`` checks a file's sizes with it before building)."""
        specs, width = [], int(n_features)
        for layer in self.layers:
            specs.append(layer.param_specs(width))
            width = layer.output_width(width)
        return specs, width

    def _n_params(self, n_features):
        """The number of trainable parameters for ``n_features`` inputs (nothing allocated)."""
        return sum(math.prod(spec.shape) for layer_specs in self._param_specs(n_features)[0]
                   for spec in layer_specs.values())

    def _require_built(self, what):
        if self.n_features is None:
            raise RuntimeError(f"Sequential.{what}: the model has no parameters yet; call fit() "
                               "or build(n_features) first")

    def get_weights(self):
        """Host copies of every parameter and running statistic: (flat parameters, [per layer
        {state name: array}])."""
        self._require_built("get_weights")

        def host(a):
            return np.array(self._kernels().to_host(a))
        with self._lock:
            return host(self.flat_params), [{k: host(v) for k, v in layer.state().items()}
                                            for layer in self.layers]

    def set_weights(self, weights):
        """Put back what ``get_weights`` returned: (flat parameters (count_params(),), [per layer
        {state name: array}]), each array of exactly the model's shape and dtype and finite
        (running variances >= 0). Everything is checked before anything is assigned; a
        ValueError names the member that is wrong."""
        fn = "Sequential.set_weights"
        self._require_built("set_weights")
        if not isinstance(weights, (tuple, list)) or len(weights) != 2:
            raise TypeError(f"{fn}: weights must be the pair (flat parameters, [per-layer "
                            f"states]) from get_weights(), got {type(weights).__name__}")
        flat, states = weights
        k = self._kernels()
        targets = [("params", self.flat_params, flat)]
        if not isinstance(states, (tuple, list)) or len(states) != len(self.layers):
            raise ValueError(f"{fn}: the states must be a list of {len(self.layers)} dicts (one "
                             f"per layer), got {type(states).__name__} {checks.length(states)}")
        for i, (layer, state) in enumerate(zip(self.layers, states)):
            expected = layer.state()
            if not isinstance(state, dict) or set(state) != set(expected):
                got = sorted(state) if isinstance(state, dict) else type(state).__name__
                raise ValueError(f"{fn}: the state of layer {i} ({layer!r}) must have the keys "
                                 f"{sorted(expected)}, got {got}")
            targets += [(f"layer{i}.{key}", expected[key], state[key]) for key in expected]
        values = [(name, target, checks.exact_array(fn, name, value, target.shape, self.dtype))
                  for name, target, value in targets]
        with self._lock:
            for _, target, value in values:
                k.assign(target, value)

    def count_params(self):
        """The number of trainable parameters."""
        self._require_built("count_params")
        return self.flat_params.size

    # --- forward and backward --------------------------------------------------------------

    def forward(self, X, training=False):
        """Logits (n_samples, n_classes) of X (n_samples, n_features; converted to the model's
        dtype). In training mode (batch statistics, dropout) the logits live in a workspace that
        the next training-mode call overwrites (copy them to keep them), and ``backward`` may
        follow. NaN or inf met on the way raises ``fastnn.NonFiniteError`` naming the layer."""
        fn = "Sequential.forward"
        self._require_built("forward")
        if not isinstance(training, (bool, np.bool_)):
            raise TypeError(f"{fn}: training must be True or False, got {training!r}")
        X = self._check_X(fn, X, finite=False)  # NaN/inf: found by the kernels, layer named
        if training:
            self._check_batch_rows(fn, X.shape[0])
        with self._lock:
            return self._forward(self._kernels().to_backend(X), bool(training))

    def _forward(self, X, training):
        """``forward`` on checked data on the backend."""
        if training:
            self._forward_rows = X.shape[0]
        for i, layer in enumerate(self.layers):
            try:
                X = layer.forward(X, training)
            except NonFiniteError:
                raise NonFiniteError(f"NaN or inf in the forward pass of layer {i} "
                                     f"({layer!r})") from None
        return X

    def backward(self, dZ):
        """Backpropagate dZ (n_samples, n_classes), the gradient of the loss w.r.t. the logits
        of the last training-mode ``forward``; fills ``flat_grads``. Returns the gradient with
        respect to the input (None if the first layer skips it)."""
        fn = "Sequential.backward"
        self._require_built("backward")
        if self._forward_rows is None:
            raise RuntimeError(f"{fn}: call forward(X, training=True) first (backward uses what "
                               "that pass kept)")
        dZ, host = self._host_or_device(dZ)
        expected = (self._forward_rows, self.n_classes)
        if np.dtype(dZ.dtype).kind not in "fiu" or tuple(dZ.shape) != expected:
            raise ValueError(f"{fn}: dZ must be a real array of shape {expected} (the last "
                             f"training forward's rows, the model's outputs), got shape "
                             f"{tuple(dZ.shape)} and dtype {dZ.dtype}")
        k = self._kernels()
        if host:  # a copy the layers may overwrite
            dZ = k.to_backend(np.array(dZ, dtype=self.dtype))
        elif dZ.dtype != self.dtype:
            raise TypeError(f"{fn}: dZ on the device must have the model's dtype {self.dtype}, "
                            f"got {dZ.dtype}")
        else:
            dZ = k.copy(dZ)
        with self._lock:
            return self._backward(dZ)

    def _backward(self, dZ):
        """``backward`` on a dZ the model owns: layers may compute in place of their dA."""
        for i in range(len(self.layers) - 1, -1, -1):
            try:
                dZ = self.layers[i].backward(dZ, overwrite_dA=True)
            except NonFiniteError:
                raise NonFiniteError(f"NaN or inf in the backward pass of layer {i} "
                                     f"({self.layers[i]!r})") from None
        return dZ

    def loss_and_gradients(self, X, y, l2=0.0):
        """Training-mode loss on (X, y), cross-entropy + l2 / (2 m) * sum of squared weights,
        with every gradient in ``flat_grads`` (dW gets + l2 / m * W). Returns (loss, number of
        rows whose logits' argmax is the label)."""
        fn = "Sequential.loss_and_gradients"
        self._require_built("loss_and_gradients")
        X = self._check_X(fn, X)
        y = self._check_y(fn, y, X.shape[0])
        l2 = checks.l2(fn, l2)
        self._check_batch_rows(fn, X.shape[0])
        k = self._kernels()
        with self._lock, k.kernel_scope:
            return self._loss_and_gradients(k.to_backend(X), k.to_backend(y), l2)

    def _check_batch_rows(self, fn, rows):
        """A training batch for a model with BatchNorm needs 2 rows or more (a variance)."""
        if rows < 2 and any(isinstance(layer, BatchNorm) for layer in self.layers):
            raise ValueError(f"{fn}: a training batch for a model with BatchNorm needs at least 2 "
                             f"rows (batch statistics), got {rows}")

    def _kernels(self):
        return _backend.get(self.backend)

    def _loss_and_gradients(self, X, y, l2):
        """``loss_and_gradients`` on checked data (X of the model's dtype, C-contiguous; y class
        ids in range): the training step's path, with no checks and no large allocations."""
        k = self._kernels()
        logits = self._forward(X, training=True)
        dZ = self.workspace.array("dlogits", logits.shape, logits.dtype, k.empty)
        loss, dZ = k.softmax_cross_entropy(logits, y, out=dZ)
        n_correct = k.count_correct(logits, y)
        self._backward(dZ)
        if l2:
            m = X.shape[0]
            if l2 / m > float(np.finfo(self.dtype).max):
                raise NonFiniteError(f"the L2 factor l2 / m = {l2 / m:.3g} overflows "
                                     f"{self.dtype}")
            for W, dW in self._regularized:
                loss += l2 / (2 * m) * k.sum_squares(W)
                k.add_scaled(dW, l2 / m, W)
        return loss, n_correct


    # --- input checks ------------------------------------------------------------------------

    def _check_X(self, fn, X, finite=True, n_features=None):
        """X as a C-contiguous array of the model's dtype with the model's feature count; NaN or
        inf is looked for only when ``finite`` (else the kernels find it, see train_on_batch).
        A device array stays on the device for the "cuda" backend (its dtype must then be the
        model's: a conversion would copy it)."""
        X, host = self._host_or_device(X)
        if np.dtype(X.dtype).kind not in "fiu" or len(X.shape) != 2:
            raise ValueError(f"{fn}: X must be a 2-D real array (n_samples, n_features), got "
                             f"shape {X.shape} and dtype {X.dtype}")
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"{fn}: X is empty (shape {X.shape}: no rows or no features)")
        if self.n_features is not None and X.shape[1] != self.n_features:
            raise ValueError(f"{fn}: X has {X.shape[1]} features, the model was built for "
                             f"{self.n_features}")
        if n_features is not None and X.shape[1] != n_features:
            raise ValueError(f"{fn}: X has {X.shape[1]} features, the training data "
                             f"{n_features}")
        original = X
        if host:
            X = np.ascontiguousarray(X, dtype=self.dtype)
        elif X.dtype != self.dtype:
            raise TypeError(f"{fn}: X on the device must have the model's dtype {self.dtype}, "
                            f"got {X.dtype}")
        narrowed = (host and original.dtype.kind == "f"
                    and original.dtype.itemsize > self.dtype.itemsize)
        if finite or narrowed:  # (one pass over the converted values)
            values = X if host else self._kernels().to_host(X)
            if not np.isfinite(values).all():
                if narrowed and np.isfinite(original).all():  # finite, but too large for dtype
                    raise ValueError(f"{fn}: X holds values up to {np.abs(original).max():.3g}, "
                                     f"beyond the range of the model's dtype {self.dtype}")
                if finite:
                    where = tuple(int(i) for i in np.argwhere(~np.isfinite(values))[0])
                    raise ValueError(f"{fn}: X contains NaN or inf (first at index {where})")
        return X

    def _check_y(self, fn, y, n_rows, n_classes=None):
        n_classes = self.n_classes if n_classes is None else n_classes
        y, host = self._host_or_device(y)
        if len(y.shape) != 1 or np.dtype(y.dtype).kind not in "iu":
            raise ValueError(f"{fn}: y must be 1-D integer class labels, got shape {y.shape} and "
                             f"dtype {y.dtype}")
        if y.shape[0] != n_rows:
            raise ValueError(f"{fn}: X has {n_rows} rows but y has {y.shape[0]} labels")
        labels = y if host else self._kernels().to_host(y)  # (device labels: a small copy)
        if labels.min() < 0 or labels.max() >= n_classes:
            bad = int(labels.min()) if labels.min() < 0 else int(labels.max())
            raise ValueError(f"{fn}: label {bad} is outside [0, {n_classes}), the model's "
                             f"{n_classes} outputs")
        return y.astype(np.intp, copy=False) if host else y

    def _host_or_device(self, a):
        """(a, True) as a NumPy array, or (a, False) as a device array when a is one and the
        model is on the device (a device array for a host model is copied to the host)."""
        if not is_device_array(a):
            return np.asarray(a), True
        k = self._kernels()
        return (k.to_backend(a), False) if k.on_device else (to_host(a), True)

    # --- training ------------------------------------------------------------------------------

    def fit(self, X, y, epochs, batch_size=64, optimizer=None, l2=0.0, schedule=None,
            validation_data=None, validation_split=0.0, callbacks=(), shuffle=True, seed=0,
            verbose=True, initial_epoch=0):
        """Train with mini-batches; returns a ``History``.

        optimizer: an optimizer from ``fastnn.optim`` or its name ("gd", "momentum", "rmsprop",
        "adam"; default Adam(1e-3)). schedule: a function of the epoch returning the learning rate
        (``fastnn.optim`` schedules; those made per step get the global step). l2: lambda of the
        L2 penalty lambda / (2 m) * sum ||W||^2 on dense weights. validation_data (X, y) or
        validation_split (the last fraction of X, y, taken before shuffling). Each epoch
        shuffles and partitions the data, and draws the dropout masks, from its own stream
        seeded by (``seed``, epoch). ``initial_epoch`` (as in Keras) starts at that epoch, so that
        ``fit(..., epochs=10, initial_epoch=4)`` after ``fit(..., epochs=4)`` (the same optimizer
        object and seed) continues the first run exactly: the same shuffles, schedule values
        and steps. If the loss, a gradient or an update becomes NaN or inf, training stops
        with ``TrainingDivergedError`` naming the epoch and step, and the model keeps the
        parameters, optimizer state and running statistics of the last good step.

        With a BatchNorm layer, a last mini-batch of one row (``n % batch_size == 1``) is joined
        to the batch before it (batch statistics need two rows; PyTorch would raise). Every
        argument is checked before anything changes.
        """
        fn = "Sequential.fit"
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
        X = self._check_X(fn, X)
        n_classes = self.n_classes if self.n_features is not None else \
            self._param_specs(X.shape[1])[1]
        y = self._check_y(fn, y, X.shape[0], n_classes)
        if validation_data is not None:
            if validation_split:
                raise ValueError(f"{fn}: give validation_data or validation_split, not both")
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError(f"{fn}: validation_data must be a pair (X_val, y_val), got "
                                 f"{type(validation_data).__name__} "
                                 f"{checks.length(validation_data)}")
            X_val = self._check_X(fn, validation_data[0], n_features=X.shape[1])
            y_val = self._check_y(fn, validation_data[1], X_val.shape[0], n_classes)
        elif validation_split:
            split = checks.number(fn, "validation_split", validation_split, 0.0, 1.0)
            n_val = int(round(X.shape[0] * split)) if 0.0 < split < 1.0 else 0
            if not 1 <= n_val < X.shape[0]:
                raise ValueError(f"{fn}: validation_split must be in (0, 1) and leave at least "
                                 f"one row for validation and for training ({X.shape[0]} rows), "
                                 f"got {validation_split!r}")
            X, y, X_val, y_val = X[:-n_val], y[:-n_val], X[-n_val:], y[-n_val:]
        has_validation = validation_data is not None or bool(validation_split)
        self._check_batch_rows(fn, X.shape[0])
        if batch_size < 2 and self._folds_single_row():
            raise ValueError(f"{fn}: batch_size must be >= 2 for a model with BatchNorm (batch "
                             f"statistics), got {batch_size}")
        optimizer = self._optimizer(fn, optimizer, X.shape[1])
        logged = ["loss", "accuracy", "lr"] + (["val_loss", "val_accuracy"] if has_validation
                                               else [])
        for c in callbacks:
            c.check_logged(fn, logged)
        if schedule is not None:  # a schedule's first value is checked before anything changes
            first = initial_epoch if getattr(schedule, "unit", "epoch") == "epoch" else \
                initial_epoch * _n_batches(X.shape[0], batch_size, self._folds_single_row())
            checks.scheduled_lr(fn, schedule, first, optimizer)

        if self.n_features is None:
            self.build(X.shape[1], seed)
        k = self._kernels()  # the data moves to the backend once ("cuda": the device)
        X, y = k.to_backend(X), k.to_backend(y)
        if has_validation:
            X_val, y_val = k.to_backend(X_val), k.to_backend(y_val)
        self.optimizer, self.stop_training, history = optimizer, False, History()
        for c in callbacks:
            c.on_train_begin(self)
        fold = self._folds_single_row()
        n_batches = _n_batches(X.shape[0], batch_size, fold)
        progress = _progress((epochs - initial_epoch) * n_batches, verbose)
        step = initial_epoch * n_batches
        for epoch in range(initial_epoch, epochs):
            if schedule is not None and getattr(schedule, "unit", "epoch") == "epoch":
                optimizer.lr = checks.scheduled_lr(fn, schedule, epoch, optimizer)
            for c in callbacks:
                c.on_epoch_begin(self, epoch)
            total, correct, seen = 0.0, 0, 0
            rng = np.random.default_rng([seed, epoch])  # each epoch its own stream: resumable
            for layer in self.layers:
                if hasattr(layer, "rng"):
                    layer.rng = rng
            order_seed = int(rng.integers(2**63)) if shuffle else None
            for b, rows in enumerate(minibatch_indices(X.shape[0], batch_size, order_seed,
                                                       fold_single_row=fold)):
                if schedule is not None and getattr(schedule, "unit", "epoch") == "step":
                    optimizer.lr = checks.scheduled_lr(fn, schedule, step, optimizer)
                Xb, yb = self._gather(X, rows), self._gather(y, rows)
                loss, n_correct = self._train_step(Xb, yb, l2, optimizer,
                                                   f"at epoch {epoch + 1}, step {b + 1}")
                total += loss * Xb.shape[0]
                correct += n_correct
                seen += Xb.shape[0]
                step += 1
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(refresh=False, epoch=epoch + 1, loss=f"{total / seen:.4f}",
                                         acc=f"{correct / seen:.3f}")
            logs = {"loss": total / seen, "accuracy": correct / seen, "lr": float(optimizer.lr)}
            if has_validation:
                with self._lock:
                    logs["val_loss"], logs["val_accuracy"] = self._evaluate(X_val, y_val)
            history.append(epoch, logs)
            for c in callbacks:
                c.on_epoch_end(self, epoch, logs)
            if self.stop_training:
                break
        if progress is not None:
            progress.close()
        for c in callbacks:
            c.on_train_end(self)
        return history

    def _folds_single_row(self):
        """Whether ``fit`` joins a one-row last mini-batch to the one before (BatchNorm)."""
        return any(isinstance(layer, BatchNorm) for layer in self.layers)

    def _optimizer(self, fn, optimizer, n_features):
        """The optimizer to train with (Adam(1e-3) for None, or from its name), checked to fit
        this model's parameters for ``n_features`` inputs: its backend keeps arrays where the
        model's do, and state it already holds is for one flat buffer of the model's size."""
        optimizer = optim.Adam() if optimizer is None else optim.get(optimizer, fn)
        k = self._kernels()
        if optimizer.backend is not None and _backend.get(optimizer.backend).on_device != \
                k.on_device:
            raise ValueError(f"{fn}: the optimizer's backend {optimizer.backend!r} keeps its "
                             f"arrays elsewhere than the model's backend {self.backend!r}")
        size = self.flat_params.size if self.n_features is not None else \
            self._n_params(n_features)
        if optimizer._spec is not None and optimizer._spec != [((size,), self.dtype)]:
            raise ValueError(f"{fn}: the optimizer holds state for other parameters "
                             f"({optimizer._spec}), not this model's {size} {self.dtype} "
                             "parameters; pass a new optimizer")
        optimizer.backend = self.backend if optimizer.backend is None else optimizer.backend
        return optimizer

    def _gather(self, a, rows):
        """a[rows] (a mini-batch) in a workspace array; only ``rows`` crosses to the device."""
        if isinstance(rows, slice):
            return a[rows]
        k = self._kernels()
        out = self.workspace.array(f"batch{a.ndim}", (len(rows),) + a.shape[1:], a.dtype,
                                   k.empty)
        return k.take_rows(a, rows, out)

    def train_on_batch(self, X, y, optimizer=None, l2=0.0):
        """One training step on the batch (X, y), as Keras' ``train_on_batch``: forward, loss,
        backward and one optimizer update. Returns (loss, accuracy) of the batch before the
        update.

        optimizer: as in ``fit``; by default the model's optimizer (from ``fit`` or an earlier
        call; Adam(1e-3) at first). A name keeps the model's optimizer when it is of that kind,
        so that ``train_on_batch(X, y, optimizer="adam")`` in a loop steps one Adam. The step is
        ``fit``'s: workspaces, no large allocations.
        NaN or inf in X raises ValueError, and a step whose loss, gradients or update become NaN
        or inf raises ``TrainingDivergedError``; either way nothing is updated. With a BatchNorm
        layer the batch needs at least 2 rows.
        """
        fn = "Sequential.train_on_batch"
        X = self._check_X(fn, X, finite=False)  # NaN/inf: found by the kernels, named below
        n_classes = self.n_classes if self.n_features is not None else \
            self._param_specs(X.shape[1])[1]
        y = self._check_y(fn, y, X.shape[0], n_classes)
        l2 = checks.l2(fn, l2)
        self._check_batch_rows(fn, X.shape[0])
        if optimizer is None or (isinstance(optimizer, str) and isinstance(
                self.optimizer, optim.OPTIMIZERS.get(optimizer.lower(), ()))):
            optimizer = self.optimizer  # (a name keeps the model's optimizer of that kind)
        optimizer = self._optimizer(fn, optimizer, X.shape[1])
        if self.n_features is None:
            self.build(X.shape[1])
        self.optimizer = optimizer
        try:
            loss, n_correct = self._train_step(X, y, l2, optimizer, "in train_on_batch")
        except TrainingDivergedError:
            self._check_X(fn, X)  # a ValueError naming X when the NaN/inf came with the data
            raise
        return loss, n_correct / X.shape[0]

    def _train_step(self, Xb, yb, l2, optimizer, where):
        """One forward, backward and update on checked data; on NaN/inf restore the state
        before the step and raise TrainingDivergedError saying ``where`` it happened."""
        optimizer.check_hyperparameters(dtypes=(self.dtype,))  # (a schedule may have set lr)
        k = self._kernels()
        saved = [(layer, key, k.copy(value)) for layer in self.layers
                 for key, value in layer.state().items()]
        try:
            with self._lock, k.kernel_scope:  # (the optimizer step is all or nothing)
                loss, n_correct = self._loss_and_gradients(Xb, yb, l2)
                if not math.isfinite(loss):
                    raise FloatingPointError("the loss is not finite")
                optimizer.step_unchecked(self.flat_params, self.flat_grads)
        except ArithmeticError as error:  # NonFiniteError, FloatingPointError
            for layer, key, value in saved:
                k.assign(layer.state()[key], value)
            raise TrainingDivergedError(
                f"training diverged {where} ({error}); the model keeps the parameters, optimizer "
                "state and running statistics of the last good step: lower the learning rate, or "
                "check the inputs and the initialization") from error
        return loss, n_correct

    # --- inference ------------------------------------------------------------------------------

    def _logits(self, fn, X):
        """Inference-mode logits of X (checked, moved to the backend)."""
        self._require_built(fn)
        X = self._kernels().to_backend(self._check_X(f"Sequential.{fn}", X))
        with self._lock:
            return self._forward(X, False)

    def predict_proba(self, X):
        """Class probabilities softmax(logits), (n_samples, n_classes), a NumPy array."""
        k = self._kernels()
        return np.asarray(k.to_host(k.softmax(self._logits("predict_proba", X))))

    def predict(self, X):
        """Predicted class ids (n_samples,), a NumPy array."""
        return np.argmax(self._kernels().to_host(self._logits("predict", X)), axis=1)

    def evaluate(self, X, y):
        """(mean cross-entropy, accuracy) on (X, y), in inference mode (no L2 term)."""
        self._require_built("evaluate")
        X = self._check_X("Sequential.evaluate", X)
        y = self._check_y("Sequential.evaluate", y, X.shape[0])
        k = self._kernels()
        with self._lock:
            return self._evaluate(k.to_backend(X), k.to_backend(y))

    def _evaluate(self, X, y):
        """``evaluate`` on checked data already on the backend."""
        k = self._kernels()
        logits = self._forward(X, False)
        loss, _ = k.softmax_cross_entropy(logits, y)
        return loss, k.count_correct(logits, y) / X.shape[0]

    # --- saving -----------------------------------------------------------------------------------

    def save(self, path):
        """Write the architecture, parameters, running statistics and optimizer state to
        ``path``, exactly that name (no suffix is added), whole or not at all: see
        ``fastnn.nn.saving.save``."""
        from fastnn.nn import saving  # (saving builds models: it imports this module)
        saving.save(self, path)

    def summary(self):
        """One line per layer with its parameter count, then the total."""
        self._require_built("summary")
        lines = [f"{layer!r:<60} params {sum(p.size for p in layer.params.values())}"
                 for layer in self.layers]
        return "\n".join(lines + [f"total params {self.count_params()}"])


def _progress(total, verbose):
    if not verbose:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="step", leave=True)


def _n_batches(n, batch_size, fold_single_row):
    """The number of mini-batches ``fit`` makes of n rows."""
    return n // batch_size if fold_single_row and n % batch_size == 1 and n > 1 else \
        -(-n // batch_size)
