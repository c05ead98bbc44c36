"""Gradient checking: backpropagation against central finite differences, in float64.

    difference = ||g - g_approx|| / (||g|| + ||g_approx||),
    g_approx[i] = (J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps)

over every parameter (and, for a single layer, the input). Below about 1e-7 the backward pass is
right; a wrong one gives differences of 1e-3 and more.
"""
import numbers
from dataclasses import dataclass

import numpy as np

from fastnn.nn.layers import Dropout, Layer
from fastnn.nn.model import Sequential


@dataclass
class GradcheckResult:
    """``difference`` over everything checked, ``per_parameter`` {name: difference} and the name
    of the ``worst`` parameter."""
    difference: float
    per_parameter: dict
    worst: str

    def __bool__(self):
        return self.difference < 1e-7

    def __str__(self):
        parts = ", ".join(f"{k}: {v:.2e}" for k, v in self.per_parameter.items())
        return f"gradcheck difference {self.difference:.2e} (worst {self.worst}); {parts}"


def _relative_difference(g, g_approx):
    denominator = np.linalg.norm(g) + np.linalg.norm(g_approx)
    return 0.0 if denominator == 0 else float(np.linalg.norm(g - g_approx) / denominator)


def _numeric_gradient(objective, theta, eps):
    """Central differences of objective() with respect to every entry of theta (in place)."""
    g = np.zeros_like(theta)
    for i in range(theta.size):
        saved = theta.flat[i]
        theta.flat[i] = saved + eps
        plus = objective()
        theta.flat[i] = saved - eps
        minus = objective()
        theta.flat[i] = saved
        g.flat[i] = (plus - minus) / (2 * eps)
    return g


def gradcheck(model_or_layer, X, y, eps=1e-7, l2=0.0):
    """Check the backward pass of a float64 model or layer.

    model: a ``Sequential`` with ``dtype=np.float64``; y are its loss's targets (class labels,
    0/1 labels, values); the objective is the training loss (the model's loss + L2 with
    ``l2``). layer: any fastnn layer; y is an upstream gradient of the layer's output shape and
    the objective is sum(layer(X) * y); the input gradient dX is checked too. Dropout layers
    keep one mask during the check; running statistics are restored afterwards.
    Returns a ``GradcheckResult``.
    """
    if not isinstance(eps, numbers.Real) or not 0 < eps < 1:
        raise ValueError(f"gradcheck: eps must be a number in (0, 1), got {eps!r}")
    X = np.asarray(X)
    if X.ndim != 2 or X.dtype.kind not in "fiu" or X.size == 0:
        raise ValueError(f"gradcheck: X must be a non-empty 2-D real array (n_samples, "
                         f"n_features), got shape {X.shape} and dtype {X.dtype}")
    if isinstance(model_or_layer, Layer):
        X = np.ascontiguousarray(X, dtype=np.float64)
        model = Sequential([model_or_layer], dtype=np.float64)
        model.build(X.shape[1])
        model_or_layer.bind(model_or_layer.params, model_or_layer.grads,
                            input_grad=True)  # bound again for dX: it is checked too
        upstream = np.ascontiguousarray(y, dtype=np.float64)
        expected = (X.shape[0], model.n_classes)
        if upstream.shape != expected:
            raise ValueError(f"gradcheck: for a layer, y is the upstream gradient of the layer's "
                             f"output, shape {expected}, got shape {upstream.shape}")

        def objective():
            return float(np.sum(model_or_layer.forward(X, True) * upstream))

        def analytic():
            model_or_layer.forward(X, True)
            return model_or_layer.backward(upstream)
    elif isinstance(model_or_layer, Sequential):
        model = model_or_layer
        if model.dtype != np.float64:
            raise TypeError("gradcheck: build the model with dtype=np.float64 (finite differences "
                            "need double precision)")
        X = np.ascontiguousarray(X, dtype=np.float64)
        if model.n_features is None:
            model.build(X.shape[1])
        y = np.asarray(y)

        def objective():
            return model.loss_and_gradients(X, y, l2)[0]

        def analytic():
            model.loss_and_gradients(X, y, l2)
    else:
        raise TypeError(f"gradcheck: expected a Sequential model or a layer, got "
                        f"{type(model_or_layer).__name__}")

    saved_states = model.get_weights()
    dropouts = [layer for layer in model.layers if isinstance(layer, Dropout)]
    for layer in dropouts:
        layer.fixed_mask = True
    try:
        dX = analytic()  # draws the dropout masks, which then stay fixed
        grads = model.flat_grads.copy()
        per_parameter = {}
        numeric = _numeric_gradient(objective, model.flat_params, eps)
        offset = 0
        for i, layer in enumerate(model.layers):
            for name, param in layer.params.items():
                n = param.size
                key = f"layer{i}.{type(layer).__name__}.{name}"
                per_parameter[key] = _relative_difference(grads[offset:offset + n],
                                                          numeric[offset:offset + n])
                offset += n
        g_all, approx_all = grads, numeric
        if isinstance(model_or_layer, Layer):
            dX_approx = _numeric_gradient(objective, X, eps)
            per_parameter["input dX"] = _relative_difference(dX, dX_approx)
            g_all = np.concatenate([grads, dX.ravel()])
            approx_all = np.concatenate([numeric, dX_approx.ravel()])
    finally:
        for layer in dropouts:
            layer.fixed_mask = False
        model.set_weights((model.flat_params, saved_states[1]))  # running statistics
    worst = max(per_parameter, key=per_parameter.get) if per_parameter else ""
    return GradcheckResult(_relative_difference(g_all, approx_all), per_parameter, worst)
