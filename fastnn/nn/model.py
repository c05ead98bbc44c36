"""Sequential: a stack of layers trained with mini-batch gradient descent on the softmax
cross-entropy (plus optional L2), one optimizer step per mini-batch over one flat buffer.

Keras-like use::

    model = Sequential([Dense(128, use_bias=False), BatchNorm(), ReLU(), Dense(10)])
    history = model.fit(X, y, epochs=20, batch_size=64, optimizer=Adam(1e-3))
    model.predict(X_test)
"""
import json
import math
import zipfile

import numpy as np

from fastnn import backend as _backend
from fastnn import optim
from fastnn.data import minibatch_indices
from fastnn.kernels._validate import is_device_array, to_host
from fastnn.errors import NonFiniteError, TrainingDivergedError
from fastnn.nn import initializers
from fastnn.nn.callbacks import Callback
from fastnn.nn.layers import LAYERS, Activation, BatchNorm, Layer
from fastnn.nn.workspace import Workspace

FORMAT = "fastnn-model-1"
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
    """

    def __init__(self, layers, loss="softmax_cross_entropy", backend=None, dtype=np.float32):
        layers = list(layers)
        if not layers or not all(isinstance(layer, Layer) for layer in layers):
            raise TypeError("Sequential: layers must be a non-empty list of fastnn.nn layers")
        if loss not in LOSSES:
            raise ValueError(f"Sequential: unknown loss {loss!r}; expected one of {LOSSES}")
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise TypeError(f"Sequential: dtype must be float32 or float64, got {dtype}")
        self.layers, self.loss, self.dtype = layers, loss, np.dtype(dtype)
        self.backend = backend
        for layer in layers:
            layer.backend = backend
        _fuse_activations(layers)
        self.n_features = None
        self.optimizer = None
        self.stop_training = False
        self.workspace = Workspace()

    # --- parameters ------------------------------------------------------------------------

    def build(self, n_features, seed=0):
        """Create the parameters for ``n_features`` inputs, initialized from ``seed``."""
        rng = np.random.default_rng(seed)
        specs, width = [], int(n_features)
        for layer in self.layers:
            specs.append(layer.param_specs(width))
            width = layer.output_width(width)
        size = sum(math.prod(s.shape) for layer_specs in specs for s in layer_specs.values())
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
        return self

    def _require_built(self, what):
        if self.n_features is None:
            raise RuntimeError(f"Sequential.{what}: the model has no parameters yet; call fit() "
                               "or build(n_features) first")

    def get_weights(self):
        """Host copies of every parameter and running statistic: (flat parameters, [per layer
        {state name: array}])."""
        def host(a):
            return np.array(self._kernels().to_host(a))
        return host(self.flat_params), [{k: host(v) for k, v in layer.state().items()}
                                        for layer in self.layers]

    def set_weights(self, weights):
        """Put back what ``get_weights`` returned."""
        flat, states = weights
        k = self._kernels()
        k.assign(self.flat_params, flat)
        for layer, state in zip(self.layers, states):
            for key, value in state.items():
                k.assign(layer.state()[key], value)

    def count_params(self):
        self._require_built("count_params")
        return self.flat_params.size

    # --- forward and backward --------------------------------------------------------------

    def forward(self, X, training=False):
        """Logits (n_samples, n_classes) of X (n_samples, n_features), a C-contiguous array of
        the model's dtype. In training mode the logits live in a workspace that the next
        training-mode call overwrites (copy them to keep them)."""
        for i, layer in enumerate(self.layers):
            try:
                X = layer.forward(X, training)
            except NonFiniteError:
                raise NonFiniteError(f"NaN or inf in the forward pass of layer {i} "
                                     f"({layer!r})") from None
        return X

    def backward(self, dZ):
        """Backpropagate dZ (gradient of the loss w.r.t. the logits); fills ``flat_grads``.
        Returns the gradient with respect to the input (None if the first layer skips it)."""
        return self._backward(np.array(dZ, dtype=self.dtype))  # a copy the layers may overwrite

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
        with self._kernels().kernel_scope:
            return self._loss_and_gradients(X, y, float(l2))

    def _kernels(self):
        return _backend.get(self.backend)

    def _loss_and_gradients(self, X, y, l2):
        """``loss_and_gradients`` on checked data (X of the model's dtype, C-contiguous; y class
        ids in range): the training step's path, with no checks and no large allocations."""
        k = self._kernels()
        logits = self.forward(X, training=True)
        dZ = self.workspace.array("dlogits", logits.shape, logits.dtype, k.empty)
        loss, dZ = k.softmax_cross_entropy(logits, y, out=dZ)
        n_correct = k.count_correct(logits, y)
        self._backward(dZ)
        if l2:
            m = X.shape[0]
            for W, dW in self._regularized:
                loss += l2 / (2 * m) * k.sum_squares(W)
                k.add_scaled(dW, l2 / m, W)
        return loss, n_correct


    # --- input checks ------------------------------------------------------------------------

    def _check_X(self, fn, X, finite=True):
        """X as a C-contiguous array of the model's dtype with the model's feature count; NaN or
        inf is looked for only when ``finite`` (else the kernels find it, see train_on_batch).
        A device array stays on the device for the "cuda" backend (its dtype must then be the
        model's: a conversion would copy it)."""
        X, host = self._host_or_device(X)
        if np.dtype(X.dtype).kind not in "fiu" or len(X.shape) != 2:
            raise ValueError(f"{fn}: X must be a 2-D numeric array (n_samples, n_features), got "
                             f"shape {X.shape} and dtype {X.dtype}")
        if X.shape[0] == 0:
            raise ValueError(f"{fn}: X is empty (0 rows)")
        if self.n_features is not None and X.shape[1] != self.n_features:
            raise ValueError(f"{fn}: X has {X.shape[1]} features, the model was built for "
                             f"{self.n_features}")
        if host:
            X = np.ascontiguousarray(X, dtype=self.dtype)
        elif X.dtype != self.dtype:
            raise TypeError(f"{fn}: X on the device must have the model's dtype {self.dtype}, "
                            f"got {X.dtype}")
        if finite:
            values = X if host else self._kernels().to_host(X)
            if not np.isfinite(values).all():
                where = tuple(int(i) for i in np.argwhere(~np.isfinite(values))[0])
                raise ValueError(f"{fn}: X contains NaN or inf (first at index {where})")
        return X

    def _check_y(self, fn, y, n_rows):
        y, host = self._host_or_device(y)
        if len(y.shape) != 1 or np.dtype(y.dtype).kind not in "iu":
            raise ValueError(f"{fn}: y must be 1-D integer class labels, got shape {y.shape} and "
                             f"dtype {y.dtype}")
        if y.shape[0] != n_rows:
            raise ValueError(f"{fn}: X has {n_rows} rows but y has {y.shape[0]} labels")
        labels = y if host else self._kernels().to_host(y)  # (device labels: a small copy)
        if labels.min() < 0 or labels.max() >= self.n_classes:
            bad = int(labels.min()) if labels.min() < 0 else int(labels.max())
            raise ValueError(f"{fn}: label {bad} is outside [0, {self.n_classes}), the model's "
                             f"{self.n_classes} outputs")
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
        and steps. If the loss or a gradient becomes NaN or inf, training stops with
        ``TrainingDivergedError`` naming the epoch and step, and the model keeps the parameters
        of the last good step.
        """
        fn = "Sequential.fit"
        if not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or epochs < 0:
            raise ValueError(f"{fn}: epochs must be an integer >= 0, got {epochs!r}")
        if (not isinstance(initial_epoch, (int, np.integer)) or isinstance(initial_epoch, bool)
                or not 0 <= initial_epoch <= epochs):
            raise ValueError(f"{fn}: initial_epoch must be an integer in [0, epochs = {epochs}], "
                             f"got {initial_epoch!r}")
        if (not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool)
                or batch_size < 1):
            raise ValueError(f"{fn}: batch_size must be an integer >= 1, got {batch_size!r}")
        l2 = _check_l2(fn, l2)
        optimizer = self._optimizer(fn, optimizer)
        X = self._check_X(fn, X)
        if self.n_features is None:
            self.build(X.shape[1], seed)
        y = self._check_y(fn, y, X.shape[0])
        if validation_data is None and validation_split:
            if not 0.0 < validation_split < 1.0:
                raise ValueError(f"{fn}: validation_split must be in (0, 1), got "
                                 f"{validation_split!r}")
            n_val = max(1, int(round(X.shape[0] * validation_split)))
            X, y, validation_data = X[:-n_val], y[:-n_val], (X[-n_val:], y[-n_val:])
        if validation_data is not None:
            X_val = self._check_X(fn, validation_data[0])
            y_val = self._check_y(fn, validation_data[1], X_val.shape[0])
        callbacks = list(callbacks)
        if not all(isinstance(c, Callback) for c in callbacks):
            raise TypeError(f"{fn}: callbacks must be fastnn.nn.Callback instances")

        k = self._kernels()  # the data moves to the backend once ("cuda": the device)
        X, y = k.to_backend(X), k.to_backend(y)
        if validation_data is not None:
            X_val, y_val = k.to_backend(X_val), k.to_backend(y_val)
        self.optimizer, self.stop_training, history = optimizer, False, History()
        for c in callbacks:
            c.on_train_begin(self)
        n_batches = -(-X.shape[0] // batch_size)
        progress = _progress((epochs - initial_epoch) * n_batches, verbose)
        step = initial_epoch * n_batches
        for epoch in range(initial_epoch, epochs):
            if schedule is not None and getattr(schedule, "unit", "epoch") == "epoch":
                optimizer.lr = schedule(epoch)
            for c in callbacks:
                c.on_epoch_begin(self, epoch)
            total, correct, seen = 0.0, 0, 0
            rng = np.random.default_rng([seed, epoch])  # each epoch its own stream: resumable
            for layer in self.layers:
                if hasattr(layer, "rng"):
                    layer.rng = rng
            order_seed = int(rng.integers(2**63)) if shuffle else None
            for b, rows in enumerate(minibatch_indices(X.shape[0], batch_size, order_seed)):
                if schedule is not None and getattr(schedule, "unit", "epoch") == "step":
                    optimizer.lr = schedule(step)
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
            if validation_data is not None:
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

    def _optimizer(self, fn, optimizer):
        optimizer = optim.Adam() if optimizer is None else optim.get(optimizer, fn)
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
        call; Adam(1e-3) at first). The step is ``fit``'s: workspaces, no large allocations.
        NaN or inf in X raises ValueError, and a step whose loss or gradients become NaN or inf
        raises ``TrainingDivergedError``; either way nothing is updated.
        """
        fn = "Sequential.train_on_batch"
        optimizer = self._optimizer(fn, self.optimizer if optimizer is None else optimizer)
        X = self._check_X(fn, X, finite=False)  # NaN/inf: found by the kernels, named below
        if self.n_features is None:
            self.build(X.shape[1])
        y = self._check_y(fn, y, X.shape[0])
        l2 = _check_l2(fn, l2)
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
        optimizer.check_hyperparameters()  # before anything changes (a schedule sets lr)
        k = self._kernels()
        saved = [(layer, key, k.copy(value)) for layer in self.layers
                 for key, value in layer.state().items()]
        try:
            with k.kernel_scope:
                loss, n_correct = self._loss_and_gradients(Xb, yb, l2)
                if not math.isfinite(loss):
                    raise FloatingPointError("the loss is not finite")
                optimizer.step_unchecked(self.flat_params, self.flat_grads)
        except ArithmeticError as error:  # NonFiniteError, FloatingPointError
            for layer, key, value in saved:
                k.assign(layer.state()[key], value)
            raise TrainingDivergedError(
                f"training diverged {where} ({error}); the model "
                "keeps the parameters of the last good step: lower the learning rate, or check "
                "the inputs and the initialization") from error
        return loss, n_correct

    # --- inference ------------------------------------------------------------------------------

    def _logits(self, fn, X):
        """Inference-mode logits of X (checked, moved to the backend)."""
        self._require_built(fn)
        return self.forward(self._kernels().to_backend(self._check_X(f"Sequential.{fn}", X)))

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
        return self._evaluate(k.to_backend(X), k.to_backend(y))

    def _evaluate(self, X, y):
        """``evaluate`` on checked data already on the backend."""
        k = self._kernels()
        logits = self.forward(X)
        loss, _ = k.softmax_cross_entropy(logits, y)
        return loss, k.count_correct(logits, y) / X.shape[0]

    # --- saving -----------------------------------------------------------------------------------

    def save(self, path):
        """Write the architecture, parameters, running statistics and optimizer state to ``path``
        (a NumPy .npz archive of plain arrays and a JSON header: no pickle)."""
        self._require_built("save")
        header = {"format": FORMAT, "loss": self.loss, "dtype": self.dtype.name,
                  "n_features": self.n_features,
                  "layers": [[type(layer).__name__, layer.config()] for layer in self.layers]}
        flat, states = self.get_weights()
        arrays = {"params": flat}
        for i, state in enumerate(states):
            for key, value in state.items():
                arrays[f"layer{i}.{key}"] = value
        if self.optimizer is not None:
            values = self.optimizer.state_dict()  # plain values, and "state": {name: [arrays]}
            state = values.pop("state")
            header["optimizer"] = {"values": values,
                                   "state": {name: len(arrays_) for name, arrays_ in state.items()}}
            for name, arrays_ in state.items():
                for j, array in enumerate(arrays_):
                    arrays[f"optimizer.{name}.{j}"] = array
        np.savez(path, header=np.array(json.dumps(header)), **arrays)

    def summary(self):
        """One line per layer with its parameter count, then the total."""
        self._require_built("summary")
        lines = [f"{layer!r:<60} params {sum(p.size for p in layer.params.values())}"
                 for layer in self.layers]
        return "\n".join(lines + [f"total params {self.count_params()}"])


def load(path, backend=None):
    """Load a model written by ``Sequential.save`` onto ``backend`` (default: the default
    backend); raises ValueError for a file that is not a fastnn model or is truncated."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        header = json.loads(str(arrays.pop("header")))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
        raise ValueError(f"load: {path} is not a fastnn model file or it is truncated "
                         f"({type(error).__name__}: {error})") from None
    if header.get("format") != FORMAT:
        raise ValueError(f"load: {path} is not a fastnn model file (format "
                         f"{header.get('format')!r}, expected {FORMAT!r})")
    try:
        layers = [LAYERS[name](**config) for name, config in header["layers"]]
        model = Sequential(layers, loss=header["loss"], dtype=header["dtype"], backend=backend)
        model.build(header["n_features"])
        model.set_weights((arrays["params"], [{key: arrays[f"layer{i}.{key}"]
                                               for key in layer.state()}
                                              for i, layer in enumerate(model.layers)]))
        if "optimizer" in header:
            info = header["optimizer"]
            values = dict(info["values"])
            values["state"] = {name: [arrays[f"optimizer.{name}.{j}"] for j in range(n)]
                               for name, n in info["state"].items()}
            model.optimizer = getattr(optim, values["optimizer"])(backend=backend)
            model.optimizer.load_state_dict(values)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"load: {path} is damaged or from an incompatible version "
                         f"({type(error).__name__}: {error})") from None
    return model


def _fuse_activations(layers):
    """Let each BatchNorm apply the Activation layer right after it (one pass over the data
    instead of two); that Activation then passes its input through."""
    for layer in layers:
        if isinstance(layer, Activation):
            layer.fused = False
        elif isinstance(layer, BatchNorm):
            layer.fused_activation = "linear"
    for layer, following in zip(layers, layers[1:]):
        if isinstance(layer, BatchNorm) and isinstance(following, Activation):
            layer.fused_activation, following.fused = following.name, True


def _check_l2(fn, l2):
    if not (isinstance(l2, (int, float)) and l2 >= 0 and math.isfinite(l2)):
        raise ValueError(f"{fn}: l2 must be a number >= 0, got {l2!r}")
    return float(l2)


def _progress(total, verbose):
    if not verbose:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="step", leave=True)
