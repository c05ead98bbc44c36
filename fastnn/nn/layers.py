"""Layers: small classes that hold parameters and call ``fastnn.kernels``.

A layer declares its trainable parameters with ``param_specs(n_in)``; the model places them in one
flat buffer (and their gradients in another) and hands each layer views into both, so that an
optimizer updates every parameter with one kernel call. ``forward(X, training)`` keeps what the
backward pass needs; ``backward(dA)`` writes the parameter gradients and returns dX.
Arrays are (n_samples, n_features).

Layers call the kernels of their backend directly, without the checks of ``fastnn.kernels``: the
model checks the data once per ``fit`` and builds every shape itself. In training, the results
live in per-layer workspaces reused from step to step (grown for a larger batch), so a training
step allocates no large arrays; they are overwritten by the next training step. Inference returns
new arrays and leave what the training step keeps for its backward pass untouched, so that a
``predict`` between a training forward and its backward changes nothing.

A layer object belongs to one model: ``Sequential`` rejects a layer listed twice or already in
another live model (fastnn has no weight sharing; make a new layer, or ``copy.deepcopy`` one).
Besides its ``backend`` and its owner, the model tells a layer what it needs to know through
three hooks of ``Layer`` (it sets no other attribute): ``fuse`` at construction,
``bind`` at build and ``on_epoch_begin`` before each epoch of ``fit``.
"""
from __future__ import annotations

import math
import weakref

import numpy as np

from fastnn import backend as _backend
from fastnn.kernels.base import ACTIVATIONS, to_host
from fastnn.kernels.base import Activation as ActivationName
from fastnn.nn import initializers
from fastnn.nn.checks import inputs, number
from fastnn.nn.workspace import Workspace


class ParamSpec:
    """One trainable parameter: its shape, how to initialize it, and whether L2 applies."""

    def __init__(self, shape, init, regularized):
        self.shape, self.init, self.regularized = tuple(shape), init, regularized


class Layer:
    """Base class. Subclasses declare ``param_specs`` and ``output_width``, and define
    ``forward(X, training)`` and ``backward(dA, overwrite_dA=False)`` (the model passes
    ``overwrite_dA=True`` when dA is its own workspace, which the layer may then compute in).

    The hooks the model calls: ``fuse(following)`` when it is constructed, ``bind(params,
    grads, input_grad)`` when it is built, and ``on_epoch_begin(epoch, rng)`` before each epoch
    of ``fit``. ``input_grad``: whether ``backward`` must return dX (set by ``bind``: a model's
    first layer need not; True for a layer used on its own)."""
    backend = None
    input_grad = True
    _model = None  # a weak reference to the Sequential holding this layer

    def __init__(self):
        self.params, self.grads = {}, {}
        self.workspace = Workspace()

    @property
    def model(self):
        """The live ``Sequential`` this layer is in, or None."""
        return None if self._model is None else self._model()

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_model", None)  # a weak reference cannot be pickled; the model sets it again
        return state

    @property
    def kernels(self):
        """The kernel module of this layer's backend (``fastnn.backend``)."""
        return _backend.get(self.backend)

    def _work(self, name, shape, dtype):
        """The workspace array ``name``, in the memory of this layer's backend."""
        return self.workspace.array(name, shape, dtype, self.kernels.empty)

    def _like(self, name, a):
        """The workspace array ``name`` of a's shape and dtype."""
        return self._work(name, a.shape, a.dtype)

    def _output(self, name, X, training, cols=None):
        """Where a training-mode result for X's rows (``cols`` columns, default X's) goes: a
        workspace array; None (a new array) at inference."""
        if not training:
            return None
        return self._work(name, (X.shape[0], X.shape[1] if cols is None else cols), X.dtype)

    def param_specs(self, n_in):
        """{name: ParamSpec} of the trainable parameters for an input width n_in."""
        return {}

    def output_width(self, n_in):
        return n_in

    def bind(self, params, grads, input_grad=True):
        """Attach the views into the model's flat parameter and gradient buffers (a new build:
        the workspaces start afresh); ``input_grad``: whether ``backward`` must return dX."""
        self.params, self.grads, self.input_grad = params, grads, bool(input_grad)
        self.workspace.clear()

    def fuse(self, following):
        """Offered the layer that follows this one in a model (None for the last): take over
        its work in this layer's own kernels and return True (the model then skips it), or
        return False. The base class takes nothing over."""
        return False

    def on_epoch_begin(self, epoch, rng):
        """Called by ``fit`` before each epoch with that epoch's generator (seeded by (seed,
        epoch)): a layer that draws random numbers draws them from it. The base class does
        nothing."""

    def state(self):
        """Non-trainable arrays to save with the model (e.g. running statistics)."""
        return {}

    def config(self):
        """Constructor arguments, to rebuild the layer when a model is loaded."""
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def _activation_name(name):
    name = "linear" if name is None else name
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}")
    return name


class Dense(Layer):
    """A = g(X @ W + b), W: (n_in, units), b: (units,), the bias and g fused after the product.

    ``init`` names the initializer of W (see ``fastnn.nn.initializers``); b starts at zero. A Dense
    layer followed by BatchNorm needs no bias (BatchNorm subtracts the mean and adds its own beta):
    pass ``use_bias=False``.
    """

    def __init__(self, units: int, activation: ActivationName = None, init: str = "he",
                 use_bias: bool = True, init_scale: float = 0.01) -> None:
        super().__init__()
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units < 1:
            raise ValueError(f"Dense: units must be a positive integer, got {units!r}")
        initializers.check(init)
        if not isinstance(use_bias, (bool, np.bool_)):
            raise TypeError(f"Dense: use_bias must be True or False, got {use_bias!r}")
        self.units, self.activation = int(units), _activation_name(activation)
        self.init, self.use_bias = init, bool(use_bias)
        self.init_scale = number("Dense", "init_scale", init_scale, 0.0, math.inf, low_open=True,
                                  high_open=True)

    def param_specs(self, n_in):
        specs = {"W": ParamSpec((n_in, self.units), self.init, regularized=True)}
        if self.use_bias:
            specs["b"] = ParamSpec((self.units,), "zeros", regularized=False)
        return specs

    def output_width(self, n_in):
        return self.units

    def forward(self, X, training):
        A = self.kernels.dense_forward(X, self.params["W"], self.params.get("b"), self.activation,
                                       out=self._output("A", X, training, self.units))
        if training:
            self._X, self._A = X, A
        return A

    def backward(self, dA, overwrite_dA=False):
        """dW and db go straight into the model's gradient buffer; dX into a workspace. Without
        a bias no db is computed (a linear layer then runs only its two products)."""
        dX = self._like("dX", self._X) if self.input_grad else None
        self.kernels.dense_backward(dA, self._X, self.params["W"], self._A, self.activation,
                                    self.input_grad, out=(dX, self.grads["W"], self.grads.get("b")),
                                    overwrite_dA=overwrite_dA, bias_grad=self.use_bias)
        return dX

    def config(self):
        return dict(units=self.units, activation=self.activation, init=self.init,
                    use_bias=self.use_bias, init_scale=self.init_scale)


class BatchNorm(Layer):
    """Batch normalization with learnable gamma (starts at 1) and beta (starts at 0).

    Training normalizes with the batch statistics and updates the running mean and (unbiased)
    variance as r = decay * r + (1 - decay) * batch value; prediction uses the running ones.
    ``decay`` is PyTorch's 1 - momentum (Keras' momentum). An activation layer that directly
    follows in a model is fused into this one's kernels (``fuse``; ``fused_activation`` names
    it): one pass over the data instead of two, forward and backward.
    """
    fused_activation = "linear"

    def __init__(self, decay: float = 0.9, eps: float = 1e-5) -> None:
        super().__init__()
        self.decay = number("BatchNorm", "decay", decay, 0.0, 1.0)
        self.eps = number("BatchNorm", "eps", eps, 0.0, math.inf, low_open=True, high_open=True)
        self.running_mean = self.running_var = None

    def param_specs(self, n_in):
        return {"gamma": ParamSpec((n_in,), "ones", regularized=False),
                "beta": ParamSpec((n_in,), "zeros", regularized=False)}

    def fuse(self, following):
        """Apply ``following``'s activation after normalizing when it is an Activation layer."""
        fused = isinstance(following, Activation)
        self.fused_activation = following.name if fused else "linear"
        return fused

    def bind(self, params, grads, input_grad=True):
        super().bind(params, grads, input_grad)
        n, dtype = params["gamma"].shape[0], params["gamma"].dtype
        self.running_mean = self.kernels.zeros(n, dtype)  # (new parameters, new statistics)
        self.running_var = self.kernels.to_backend(np.ones(n, dtype))

    def forward(self, X, training):
        if training and X.shape[0] < 2:  # (the model checks first; this guards direct calls)
            raise ValueError(f"BatchNorm: training needs a batch of at least 2 rows to estimate "
                             f"a variance, got {X.shape[0]}")
        out = self._output("Y", X, training)
        if training:  # (the cache's statistics in workspaces too: a step allocates nothing)
            out = (out, *(self._work(name, (X.shape[1],), X.dtype) for name in ("mean", "invstd")))
        Y, cache = self.kernels.batchnorm_forward(
            X, self.params["gamma"], self.params["beta"], self.running_mean, self.running_var,
            training=training, decay=self.decay, eps=self.eps, activation=self.fused_activation,
            out=out)
        if training:
            self._cache = cache
        return Y

    def backward(self, dA, overwrite_dA=False):
        """dgamma and dbeta go straight into the model's gradient buffer."""
        dX, _, _ = self.kernels.batchnorm_backward(
            dA, self._cache, out=(self._like("dX", dA), self.grads["gamma"], self.grads["beta"]))
        return dX

    def state(self):
        return {"running_mean": self.running_mean, "running_var": self.running_var}

    def config(self):
        return dict(decay=self.decay, eps=self.eps)


class Activation(Layer):
    """A = g(Z) elementwise, g in "linear", "relu", "tanh", "sigmoid". (Dense(activation=...)
    fuses g after the product and saves a pass over the data; in a model, a BatchNorm right
    before this layer applies g in its own kernels, and the model skips this layer.)"""

    def __init__(self, name: ActivationName) -> None:
        super().__init__()
        self.name = _activation_name(name)

    def forward(self, X, training):
        A = self.kernels.activation_forward(X, self.name, out=self._output("A", X, training))
        if training:
            self._A = A
        return A

    def backward(self, dA, overwrite_dA=False):
        """dZ in place of dA when ``overwrite_dA`` (the model owns dA), else in a workspace."""
        out = dA if overwrite_dA else self._like("dX", dA)
        return self.kernels.activation_backward(dA, self._A, self.name, out=out)

    def config(self):
        return dict(name=self.name)


class ReLU(Activation):
    def __init__(self) -> None:
        super().__init__("relu")

    def config(self):
        return {}


class Tanh(Activation):
    def __init__(self) -> None:
        super().__init__("tanh")

    def config(self):
        return {}


class Sigmoid(Activation):
    def __init__(self) -> None:
        super().__init__("sigmoid")

    def config(self):
        return {}


class Normalization(Layer):
    """Inputs standardized per feature with statistics of the training data, as Keras'
    ``Normalization`` and scikit-learn's ``StandardScaler``: Y = (X - mean) / sqrt(variance).

    ``mean`` and ``variance`` (the population variance; 1 for a feature whose standard deviation
    is below 10 machine epsilons, which is then only centred) are learned by ``adapt(X)``, or,
    when the layer is the model's first and not adapted yet, from the training data at the start
    of the first ``fit``. They are not trained: evaluation and prediction apply them unchanged,
    and they are saved with the model (with ``count``, the rows they came from; 0: not adapted);
    building the model again keeps them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.mean = self.variance = self.count = None
        self._pending = None  # (mean, variance, count) from an adapt() before the model is built
        self._known_adapted = False  # (True once seen adapted: forward reads no device count)

    def adapt(self, X) -> Normalization:
        """Learn the mean and variance of each column of X (n_samples, n_features), in float64;
        returns the layer. Before the model is built they are kept until it is."""
        fn = "Normalization.adapt"
        n = None if self.mean is None else self.mean.shape[0]
        X = inputs(fn, X, np.float64, _backend.get("numpy"), n, "the layer normalizes")
        mean, variance = X.mean(axis=0), X.var(axis=0)
        variance[np.sqrt(variance) < 10 * np.finfo(np.float64).eps] = 1.0
        self._pending = (mean, variance, np.array([X.shape[0]], np.float64))
        if self.mean is not None:
            self._assign_pending()
        return self

    @property
    def adapted(self) -> bool:
        """Whether the statistics have been learned (``adapt``, a ``fit``, or a loaded model)."""
        if self.count is None:
            return self._pending is not None
        if not self._known_adapted:
            self._known_adapted = float(np.asarray(self.kernels.to_host(self.count))[0]) > 0
        return self._known_adapted

    def _assign_pending(self):
        k, dtype = self.kernels, self.mean.dtype
        for target, value in zip((self.mean, self.variance, self.count), self._pending):
            k.assign(target, k.to_backend(value.astype(dtype)))
        self._pending, self._known_adapted = None, True

    def bind(self, params, grads, input_grad=True):
        super().bind(params, grads, input_grad)
        model = self.model
        n, dtype = self._width, model.dtype if model is not None else np.float32
        if self._pending is None and self.mean is not None and self.adapted:
            self._pending = tuple(np.asarray(to_host(a), np.float64)  # (a new build keeps them)
                                  for a in (self.mean, self.variance, self.count))
        k = self.kernels
        self._known_adapted = False
        self.mean, self.count = k.zeros(n, dtype), k.zeros(1, dtype)
        self.variance, self._ones = (k.to_backend(np.ones(n, dtype)) for _ in range(2))
        self._zeros = k.zeros(n, dtype)
        if self._pending is not None:
            if self._pending[0].shape[0] != n:
                raise ValueError(f"Normalization: adapted to {self._pending[0].shape[0]} "
                                 f"features, but the model gives it {n}")
            self._assign_pending()

    def param_specs(self, n_in):
        """No parameters; the width n_in is noted for ``bind``, which makes the statistics."""
        self._width = n_in
        return {}

    def forward(self, X, training):
        if not self.adapted:
            raise RuntimeError("Normalization: the layer has not learned its statistics yet: "
                               "call its adapt(X), or fit the model (a first layer learns them "
                               "from the training data)")
        Y, self._cache = self.kernels.batchnorm_forward(
            X, self._ones, self._zeros, self.mean, self.variance, training=False, eps=0.0,
            out=self._output("Y", X, training))
        return Y

    def backward(self, dA, overwrite_dA=False):
        """dX = dA / sqrt(variance) (only when a layer before needs it)."""
        n = dA.shape[1]
        dX, _, _ = self.kernels.batchnorm_backward(
            dA, self._cache, out=(self._like("dX", dA), self._work("dgamma", (n,), dA.dtype),
                                  self._work("dbeta", (n,), dA.dtype)))
        return dX

    def state(self):
        return {"mean": self.mean, "variance": self.variance, "count": self.count}

    def config(self):
        return {}


class Dropout(Layer):
    """Inverted dropout: in training, Y = X * mask / keep_prob with mask ~ Bernoulli(keep_prob)
    and keep_prob = 1 - rate (``rate`` is the drop probability, as in PyTorch and Keras); at
    prediction Y = X. The expected activation is unchanged, so nothing is rescaled at test time.
    Each mask is drawn by the backend's ``dropout_forward`` from a seed taken from ``rng``:
    ``fit`` hands each epoch's seeded generator to ``on_epoch_begin``. ``fixed_mask = True``
    keeps the last mask (for gradient checking)."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = number("Dropout", "rate", rate, 0.0, 1.0, high_open=True)
        self.rng = np.random.default_rng(0)
        self.fixed_mask = False
        self._mask = None

    def forward(self, X, training):
        if not training:
            return X
        if self.rate == 0.0:
            self._mask = None
            return X
        Y = self._like("Y", X)
        if self.fixed_mask and self._mask is not None and self._mask.shape == X.shape:
            return self.kernels.dropout_backward(X, self._mask, self.rate, out=Y)  # same mask
        seed = int(self.rng.integers(2**63))
        Y, self._mask = self.kernels.dropout_forward(X, self.rate, seed,
                                                     out=(Y, self._like("mask", X)))
        return Y

    def backward(self, dA, overwrite_dA=False):
        if self._mask is None:
            return dA
        out = dA if overwrite_dA else self._like("dX", dA)
        return self.kernels.dropout_backward(dA, self._mask, self.rate, out=out)

    def on_epoch_begin(self, epoch, rng):
        """Draw this epoch's masks from ``rng``."""
        self.rng = rng

    def config(self):
        return dict(rate=self.rate)


def fuse_layers(layers):
    """The (index, layer) pairs a model runs, in order: each layer is offered the one after it
    (``Layer.fuse``), and a layer taken over by the one before it is left out."""
    running, skip = [], False
    for i, layer in enumerate(layers):
        if skip:
            skip = False
            continue
        running.append((i, layer))
        skip = layer.fuse(layers[i + 1] if i + 1 < len(layers) else None)
    return running


def claim_layers(model, layers):
    """Make ``model`` the owner of ``layers``, rejecting a layer listed twice or held by another
    live model (one layer object in two places would share its parameters and its saved
    activations, and give wrong gradients)."""
    seen = {}
    for i, layer in enumerate(layers):
        if id(layer) in seen:
            raise ValueError(f"Sequential: layer {i} ({layer!r}) is the same object as layer "
                             f"{seen[id(layer)]}; a layer can be used once (fastnn has no weight "
                             "sharing): make a new layer")
        seen[id(layer)] = i
        owner = layer.model
        if owner is not None and owner is not model:
            raise ValueError(f"Sequential: layer {i} ({layer!r}) is already in another model; a "
                             "layer belongs to one model (fastnn has no weight sharing): make a "
                             "new layer, or copy.deepcopy the other model")
    for layer in layers:
        layer._model = weakref.ref(model)


LAYERS = {cls.__name__: cls for cls in (Dense, BatchNorm, Activation, ReLU, Tanh, Sigmoid, Dropout,
                                         Normalization)}
