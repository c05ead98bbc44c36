"""Sequential: a stack of layers with its parameters in one flat buffer (and their gradients in
another), the forward and backward passes, the loss (``fastnn.nn.losses``: softmax or sigmoid
cross-entropy, mean squared error; plus optional L2) and inference. Training runs in
``fastnn.nn.training`` and saving in ``fastnn.nn.saving``; ``fit``, ``train_on_batch`` and ``save``
stay methods here, where users call them.

Keras-like use::

    model = Sequential([Dense(128, use_bias=False), BatchNorm(), ReLU(), Dense(10)])
    history = model.fit(X, y, epochs=20, batch_size=64, optimizer=Adam(1e-3))
    model.predict(X_test)

Methods with one leading underscore serve the other modules of ``fastnn.nn`` (the training
loop, saving): the unchecked paths of a training step, and the model's lock.
"""
from __future__ import annotations

import math
import numbers
import os
import threading
import weakref
from collections.abc import Callable, Iterable

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from fastnn import backend as _backend
from fastnn.errors import NonFiniteError
from fastnn.kernels.base import Backend, run_kind
from fastnn.nn import checks, initializers, losses, training
from fastnn.nn.callbacks import Callback
from fastnn.nn.layers import BatchNorm, Layer, claim_layers, fuse_layers
from fastnn.nn.workspace import Workspace
from fastnn.optim import Optimizer

LOSSES = tuple(losses.LOSSES) + tuple(losses.ALIASES)

#: What ``get_weights`` returns and ``set_weights`` takes: (flat parameters, [per layer
#: {state name: array}]).
Weights = tuple[np.ndarray, list[dict[str, np.ndarray]]]


class Sequential:
    """Layers applied in order; the last one gives the outputs (n_samples, n_outputs): logits for
    the cross-entropy losses, predictions for regression.

    loss (``fastnn.nn.losses``): "softmax_cross_entropy" (multiclass: y class indices),
    "sigmoid_cross_entropy" or "binary_cross_entropy" (binary with one output, multi-label with
    one per label: y 0/1 or probabilities, (n_samples,) or (n_samples, n_outputs)),
    "mean_squared_error" or "mse" (regression: y values, likewise). backend: "numpy" | "cpu" |
    "cuda" | None (the default backend), used by every layer and the optimizer. dtype: float32
    (default) or float64. The parameters are built on the first ``fit``/``build`` from the
    feature count. Arrays returned by ``forward`` and ``backward`` are on the backend (device
    arrays for "cuda"); ``predict``, ``predict_proba`` and ``get_weights`` return NumPy arrays.

    A layer object belongs to one model (no weight sharing): a layer listed twice, or already in
    another live model, is rejected. One model may be used from several threads: each training
    step and each inference call holds the model's lock, so a ``predict`` during ``fit`` sees
    the parameters between two steps.
    """

    def __init__(self, layers: Iterable[Layer], loss: str = "softmax_cross_entropy",
                 backend: Backend = None, dtype: DTypeLike = np.float32) -> None:
        layers = list(layers)
        if not layers or not all(isinstance(layer, Layer) for layer in layers):
            raise TypeError("Sequential: layers must be a non-empty list of fastnn.nn layers")
        loss_fn = losses.get(loss)
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise TypeError(f"Sequential: dtype must be float32 or float64, got {dtype}")
        claim_layers(self, layers)  # (last check: a failed constructor claims nothing)
        self.layers, self.loss, self.dtype = layers, loss_fn.name, np.dtype(dtype)
        self._loss_fn = loss_fn
        self.backend = backend
        for layer in layers:
            layer.backend = backend
        self._running = fuse_layers(layers)  # (index, layer) pairs the passes run
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
        if self.n_features is not None:
            self._rebind()

    def _rebind(self):
        """Make the layers' parameters and gradients views into the flat buffers again, after
        pickle or copy.deepcopy (both copy every array apart: a layer would train its own copy
        while the optimizer steps the flat buffer), keeping the running statistics."""
        k = self._kernels()
        saved = [{key: np.array(k.to_host(value)) for key, value in layer.state().items()}
                 for layer in self.layers]
        self._bind_layers(self._layout(self._param_specs(self.n_features)[0]))
        for layer, values in zip(self.layers, saved):
            state = layer.state()
            for key, value in values.items():
                k.assign(state[key], value)
        self._forward_rows = None
        self.workspace.clear()

    # --- parameters ------------------------------------------------------------------------

    def build(self, n_features: int, seed: int = 0) -> Sequential:
        """Create the parameters for ``n_features`` inputs, initialized from ``seed``: a fresh
        model (running statistics reset, no optimizer). A model is built on the backend it was
        given, or the default one at that moment, and stays there. Returns the model."""
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
        parts = self._layout(specs)
        for layer, layer_parts in zip(self.layers, parts):
            for _, spec, part in layer_parts:
                if spec.init == "ones":
                    initial[part] = 1
                elif spec.init != "zeros":
                    initial[part] = initializers.initialize(
                        spec.init, spec.shape, rng, self.dtype,
                        getattr(layer, "init_scale", 0.01)).ravel()
        k = self._kernels()
        self.flat_params, self.flat_grads = k.to_backend(initial), k.zeros(size, self.dtype)
        self._bind_layers(parts)
        self.n_features, self.n_classes = int(n_features), width
        self._forward_rows, self.optimizer = None, None
        self.workspace.clear()
        return self

    @staticmethod
    def _layout(specs):
        """Per layer, [(name, spec, slice of the flat buffers)] for ``_param_specs``' specs: the
        parameters side by side, in the order of the layers and of their specs."""
        parts, offset = [], 0
        for layer_specs in specs:
            parts.append([])
            for name, spec in layer_specs.items():
                part = slice(offset, offset + math.prod(spec.shape))
                parts[-1].append((name, spec, part))
                offset = part.stop
        return parts

    def _bind_layers(self, parts):
        """Hand each layer its views into the flat buffers (``Layer.bind``; ``parts`` from
        ``_layout``) and note the weights L2 applies to."""
        self._regularized = []
        for i, (layer, layer_parts) in enumerate(zip(self.layers, parts)):
            params = {name: self.flat_params[part].reshape(spec.shape)
                      for name, spec, part in layer_parts}
            grads = {name: self.flat_grads[part].reshape(spec.shape)
                     for name, spec, part in layer_parts}
            self._regularized += [(params[name], grads[name])
                                  for name, spec, _ in layer_parts if spec.regularized]
            layer.bind(params, grads, input_grad=i > 0)  # (nothing needs the data's gradient)

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

    def get_weights(self) -> Weights:
        """Host copies of every parameter and running statistic: (flat parameters, [per layer
        {state name: array}])."""
        self._require_built("get_weights")

        def host(a):
            return np.array(self._kernels().to_host(a))
        with self._lock:
            return host(self.flat_params), [{k: host(v) for k, v in layer.state().items()}
                                            for layer in self.layers]

    def set_weights(self, weights: Weights) -> None:
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

    def _state_arrays(self):
        """Every layer's running statistics, the arrays themselves, in a fixed order (what a
        failed training step puts back)."""
        return [value for layer in self.layers for value in layer.state().values()]

    def _backup_state(self):
        """Copies of ``_state_arrays()``, written into buffers kept from step to step (a step
        allocates nothing for them after the first)."""
        k = self._kernels()
        arrays = self._state_arrays()
        backups = getattr(self, "_state_backups", [])
        if [(b.shape, b.dtype) for b in backups] != [(a.shape, a.dtype) for a in arrays]:
            backups = self._state_backups = [k.empty(a.shape, a.dtype) for a in arrays]
        for backup, a in zip(backups, arrays):
            k.assign(backup, a)
        return backups

    def _restore_state(self, saved):
        """Put ``_backup_state()``'s copies back into the running statistics (a failed step)."""
        k = self._kernels()
        for target, value in zip(self._state_arrays(), saved):
            k.assign(target, value)

    def count_params(self) -> int:
        """The number of trainable parameters."""
        self._require_built("count_params")
        return self.flat_params.size

    # --- forward and backward --------------------------------------------------------------

    def forward(self, X: ArrayLike, training: bool = False) -> np.ndarray:
        """Logits (n_samples, n_classes) of X (n_samples, n_features; converted to the model's
        dtype). In training mode (batch statistics, dropout) the logits live in a workspace that
        the next training-mode call overwrites (copy them to keep them), and ``backward`` may
        follow. NaN or inf met on the way raises ``fastnn.NonFiniteError`` naming the layer."""
        fn = "Sequential.forward"
        self._require_built("forward")
        if not isinstance(training, (bool, np.bool_)):
            raise TypeError(f"{fn}: training must be True or False, got {training!r}")
        X = self._inputs(fn, X, finite=False)  # NaN/inf: found by the kernels, layer named
        if training:
            self._check_batch_rows(fn, X.shape[0])
        with self._lock:
            return self._forward(self._kernels().to_backend(X), bool(training))

    def _forward(self, X, training):
        """``forward`` on checked data on the backend."""
        if training:
            self._forward_rows = X.shape[0]
        for i, layer in self._running:
            try:
                X = layer.forward(X, training)
            except NonFiniteError:
                raise NonFiniteError(f"NaN or inf in the forward pass of layer {i} "
                                     f"({layer!r})") from None
        return X

    def backward(self, dZ: ArrayLike) -> np.ndarray | None:
        """Backpropagate dZ (n_samples, n_classes), the gradient of the loss w.r.t. the logits
        of the last training-mode ``forward``; fills ``flat_grads``. Returns the gradient with
        respect to the input (None if the first layer skips it)."""
        fn = "Sequential.backward"
        self._require_built("backward")
        if self._forward_rows is None:
            raise RuntimeError(f"{fn}: call forward(X, training=True) first (backward uses what "
                               "that pass kept)")
        k = self._kernels()
        dZ, host = checks.host_or_device(dZ, k)
        expected = (self._forward_rows, self.n_classes)
        if np.dtype(dZ.dtype).kind not in "fiu" or tuple(dZ.shape) != expected:
            raise ValueError(f"{fn}: dZ must be a real array of shape {expected} (the last "
                             f"training forward's rows, the model's outputs), got shape "
                             f"{tuple(dZ.shape)} and dtype {dZ.dtype}")
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
        for i, layer in reversed(self._running):
            try:
                dZ = layer.backward(dZ, overwrite_dA=True)
            except NonFiniteError:
                raise NonFiniteError(f"NaN or inf in the backward pass of layer {i} "
                                     f"({layer!r})") from None
        return dZ

    def loss_and_gradients(self, X: ArrayLike, y: ArrayLike,
                           l2: float = 0.0) -> tuple[float, int]:
        """Training-mode loss on (X, y), the model's loss + l2 / (2 m) * sum of squared weights,
        with every gradient in ``flat_grads`` (dW gets + l2 / m * W). Returns (loss, number of
        right predictions: rows whose argmax is the label for softmax cross-entropy, values on
        their target's side for sigmoid cross-entropy, 0 for regression)."""
        fn = "Sequential.loss_and_gradients"
        self._require_built("loss_and_gradients")
        X = self._inputs(fn, X)
        y = self._targets(fn, y, X.shape[0], self.n_classes)
        l2 = checks.l2(fn, l2)
        self._check_batch_rows(fn, X.shape[0])
        k = self._kernels()
        saved = self._backup_state()
        try:
            with self._lock, self._step_kind(X.shape[0]):
                with k.kernel_scope:
                    loss, n_correct, _ = self._loss_and_gradients(k.to_backend(X),
                                                                  k.to_backend(y), l2)
                return float(loss), int(n_correct)  # (CUDA: read at the scope's end)
        except BaseException:  # (CUDA updates them before its check, at the scope's end)
            self._restore_state(saved)
            raise

    def _loss_and_gradients(self, X, y, l2):
        """``loss_and_gradients`` on checked data (X of the model's dtype, C-contiguous; y checked
        by ``_targets``): the training step's path, with no checks and no large allocations.
        Returns (loss, right predictions, the L2 penalty within the loss)."""
        k = self._kernels()
        logits = self._forward(X, training=True)
        dZ = self.workspace.array("dlogits", logits.shape, logits.dtype, k.empty)
        loss, dZ = self._loss_fn.compute(k, logits, y, dZ)
        n_correct, penalty = self._loss_fn.correct(k, logits, y), 0.0
        self._backward(dZ)
        if l2:
            m = X.shape[0]
            if l2 / m > float(np.finfo(self.dtype).max):
                raise NonFiniteError(f"the L2 factor l2 / m = {l2 / m:.3g} overflows "
                                     f"{self.dtype}")
            for W, dW in self._regularized:
                penalty = penalty + l2 / (2 * m) * k.sum_squares(W)
                k.add_scaled(dW, l2 / m, W)
        return loss + penalty, n_correct, penalty

    def _targets(self, fn, y, n_rows, n_outputs, device_range=True):
        """y checked for the model's loss (``Loss.targets``) and ``n_outputs`` outputs, in the
        form its kernel takes."""
        return self._loss_fn.targets(fn, y, n_rows, n_outputs, self.dtype, self._kernels(),
                                     device_range)

    def _step_kind(self, rows):
        """``run_kind`` of a training step of this model on ``rows`` rows: a backend that times
        its steps (the CPU backend's thread count) keeps them apart from other models' and
        other batch sizes'."""
        return run_kind(("training step", id(self), rows))

    def _inputs(self, fn, X, finite=True):
        """X checked for this model (``checks.inputs``): its dtype, and its feature count once
        built."""
        return checks.inputs(fn, X, self.dtype, self._kernels(), self.n_features, finite=finite)

    def _batch_statistics(self):
        """Whether a layer normalizes with batch statistics (BatchNorm): a training batch then
        needs 2 rows or more, and ``fit`` joins a one-row last mini-batch to the one before."""
        return any(isinstance(layer, BatchNorm) for layer in self.layers)

    def _check_batch_rows(self, fn, rows):
        """A training batch for a model with BatchNorm needs 2 rows or more (a variance)."""
        if rows < 2 and self._batch_statistics():
            raise ValueError(f"{fn}: a training batch for a model with BatchNorm needs at least 2 "
                             f"rows (batch statistics), got {rows}")

    def _kernels(self):
        return _backend.get(self.backend)

    # --- training (fastnn.nn.training) -------------------------------------------------------

    def fit(self, X: ArrayLike, y: ArrayLike, epochs: int, batch_size: int = 64,
            optimizer: Optimizer | str | None = None, l2: float = 0.0,
            schedule: Callable[[int], float] | None = None,
            validation_data: tuple[ArrayLike, ArrayLike] | None = None,
            validation_split: float = 0.0, callbacks: Iterable[Callback] | None = (),
            shuffle: bool = True, seed: int = 0, verbose: bool = True,
            initial_epoch: int = 0) -> training.History:
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
        return training.fit(self, X, y, epochs, batch_size, optimizer, l2, schedule,
                            validation_data, validation_split, callbacks, shuffle, seed,
                            verbose, initial_epoch)

    def train_on_batch(self, X: ArrayLike, y: ArrayLike, optimizer: Optimizer | str | None = None,
                       l2: float = 0.0) -> tuple[float, float]:
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
        return training.train_on_batch(self, X, y, optimizer, l2)

    def _begin_epoch(self, epoch, rng):
        """Hand each layer the generator of a training epoch (``Layer.on_epoch_begin``)."""
        for layer in self.layers:
            layer.on_epoch_begin(epoch, rng)

    # --- inference ------------------------------------------------------------------------------

    def _logits(self, fn, X):
        """Inference-mode logits of X (checked, moved to the backend)."""
        self._require_built(fn)
        X = self._kernels().to_backend(self._inputs(f"Sequential.{fn}", X))
        with self._lock:
            return self._forward(X, False)

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Probabilities (n_samples, n_outputs), a NumPy array: softmax of the logits for
        softmax cross-entropy, the sigmoid of each for sigmoid cross-entropy (a regression model
        has none: ValueError)."""
        if not self._loss_fn.classifier:
            raise ValueError(f"Sequential.predict_proba: a regression model (loss "
                             f"{self.loss!r}) gives values, not probabilities; use predict")
        k = self._kernels()
        return np.asarray(k.to_host(self._loss_fn.probabilities(
            k, self._logits("predict_proba", X))))

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predictions, a NumPy array: class ids (n_samples,) for softmax cross-entropy; 0/1
        labels for sigmoid cross-entropy ((n_samples,) for one output, else (n_samples,
        n_outputs)); values for regression (likewise)."""
        return self._loss_fn.predict(np.asarray(self._kernels().to_host(
            self._logits("predict", X))))

    def evaluate(self, X: ArrayLike, y: ArrayLike,
                 return_dict: bool = False) -> tuple[float, float] | dict[str, float]:
        """(mean loss, metric) on (X, y) in inference mode (no L2 term): the metric is the
        accuracy for classification and R^2 for regression. ``return_dict`` (as in Keras): a
        dict instead, {"loss", "accuracy"} or {"loss", "r2", "mae"} (the mean absolute
        error)."""
        fn = "Sequential.evaluate"
        self._require_built("evaluate")
        X = self._inputs(fn, X)
        y = self._targets(fn, y, X.shape[0], self.n_classes)
        k = self._kernels()
        with self._lock:
            scores = self._evaluate(k.to_backend(X), k.to_backend(y))
        return scores if return_dict else (scores["loss"], scores[self._loss_fn.metric])

    def _evaluate(self, X, y):
        """``evaluate``'s dict on checked data already on the backend."""
        k = self._kernels()
        outputs = self._forward(X, False)
        loss, _ = self._loss_fn.compute(k, outputs, y, None)
        loss = float(loss)
        if self._loss_fn.classifier:
            judged = self._loss_fn.judged(X.shape[0], self.n_classes)
            return {"loss": loss, "accuracy": int(self._loss_fn.correct(k, outputs, y)) / judged}
        errors = np.asarray(k.to_host(outputs), np.float64) - np.asarray(k.to_host(y), np.float64)
        return {"loss": loss, "r2": losses.r2_score(loss, losses.target_variance(y)),
                "mae": float(np.mean(np.abs(errors)))}

    # --- saving -----------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write the architecture, parameters, running statistics and optimizer state to
        ``path``, exactly that name (no suffix is added), whole or not at all: see
        ``fastnn.nn.saving.save``."""
        from fastnn.nn import saving  # (saving builds models: it imports this module)
        saving.save(self, path)

    def summary(self) -> str:
        """One line per layer with its parameter count, then the total."""
        self._require_built("summary")
        lines = [f"{layer!r:<60} params {sum(p.size for p in layer.params.values())}"
                 for layer in self.layers]
        return "\n".join(lines + [f"total params {self.count_params()}"])
