"""fastnn kernels: the public functional API, one implementation per backend.

Every function validates its inputs (shapes, dtypes, values), then runs the backend chosen by
``backend=`` ("numpy" reference, "cpu" Numba or "cuda" Numba CUDA; default from
``fastnn.backend``). Arrays are
(n_samples, n_features), float32 or float64 (one dtype per call), C-contiguous (others are copied);
the elementwise losses (``sigmoid_cross_entropy``, ``mean_squared_error``) also take 1-D (m,).
Bad input raises TypeError/ValueError naming the argument before any state changes; NaN or inf in
an input raises ValueError naming it.

``out=`` (as in NumPy and PyTorch) takes preallocated results: an array, or a tuple of arrays for
kernels with several results, each writable, C-contiguous, of the result's shape and dtype, sharing
no memory with the inputs; the kernel writes into them and returns them. A training loop that
passes the same buffers at every step allocates no large arrays.
"""
from typing import Optional

import numpy as np
from numpy.typing import ArrayLike

from fastnn import backend as _backend
from fastnn.kernels import validation as check
from fastnn.kernels.base import (
    ACTIVATIONS,
    Activation,
    Backend,
    BatchNormCache,
    NonFiniteError,
    is_device_array,
    to_host,
)
from fastnn.kernels.optim import adam_update, momentum_update, rmsprop_update, sgd_update

__all__ = ["ACTIVATIONS", "BatchNormCache", "activation_backward", "activation_forward",
           "adam_update", "batchnorm_backward", "batchnorm_forward", "momentum_update",
           "rmsprop_update", "sgd_update",
           "dense_backward", "dense_forward", "hardmax", "log_softmax", "mean_squared_error",
           "sigmoid_cross_entropy", "softmax", "softmax_cross_entropy"]


def _run(fn, backend, inputs, *args, extra=None, **kwargs):
    """Call ``fn`` of the chosen backend; on NaN/inf name the input in ``inputs`` that has it.
    A CUDA device array among ``inputs``, ``extra`` (other arrays or tuples of them) and
    ``out`` given to a host backend: a TypeError naming it."""
    try:
        module = _backend.get(backend)
    except ValueError as error:
        raise ValueError(f"{fn}: {error}") from None
    check.host_backend_arrays(fn, module, {**inputs, **(extra or {}), "out": kwargs.get("out")})
    try:
        return getattr(module, fn)(*args, **kwargs)
    except NonFiniteError:
        check.nonfinite_result(fn, **inputs)


def _activation(fn, activation):
    activation = "linear" if activation is None else activation
    check.choice(fn, "activation", activation, ACTIVATIONS)
    return activation


def activation_forward(Z: ArrayLike, activation: Activation, *, out: Optional[np.ndarray] = None,
                       backend: Backend = None) -> np.ndarray:
    """A = g(Z) elementwise, g in "linear", "relu", "tanh", "sigmoid". Z: (m, n) -> (m, n).
    (``dense_forward`` fuses g after the product; this is g alone, for an Activation layer.)"""
    fn = "activation_forward"
    Z = check.float_array(fn, "Z", Z, 2)
    activation = _activation(fn, activation)
    out = check.output(fn, "out", out, Z.shape, Z.dtype, (Z,))
    return _run(fn, backend, dict(Z=Z), Z, activation, out=out)


def activation_backward(dA: ArrayLike, A: ArrayLike, activation: Activation, *,
                        out: Optional[np.ndarray] = None, backend: Backend = None) -> np.ndarray:
    """dZ = dA * g'(Z), with g' computed from A = g(Z). dA, A: (m, n) -> (m, n)."""
    fn = "activation_backward"
    dA = check.float_array(fn, "dA", dA, 2)
    A = check.float_array(fn, "A", A, 2)
    check.same_dtype(fn, dA=dA, A=A)
    check.shape(fn, "dA", dA, A.shape, "(the shape of A)")
    activation = _activation(fn, activation)
    out = check.output(fn, "out", out, A.shape, A.dtype, (dA, A))
    return _run(fn, backend, dict(dA=dA, A=A), dA, A, activation, out=out)


def dense_forward(X: ArrayLike, W: ArrayLike, b: Optional[ArrayLike] = None,
                  activation: Activation = "linear", *, out: Optional[np.ndarray] = None,
                  backend: Backend = None) -> np.ndarray:
    """Dense layer: A = g(Z), Z = X @ W + b, with the bias and g fused after the product.

    X: (m, n_in); W: (n_in, n_out); b: (n_out,) or None; activation g: "linear" (or None), "relu",
    "tanh", "sigmoid". Returns A: (m, n_out), X's dtype.
    """
    fn = "dense_forward"
    X = check.float_array(fn, "X", X, 2)
    W = check.float_array(fn, "W", W, 2)
    b = None if b is None else check.float_array(fn, "b", b, 1)
    check.same_dtype(fn, X=X, W=W, b=b)
    check.shape(fn, "W", W, (X.shape[1], W.shape[1]), f"(n_in = X.shape[1] = {X.shape[1]} rows)")
    if b is not None:
        check.shape(fn, "b", b, (W.shape[1],), "(one bias per column of W)")
    activation = _activation(fn, activation)
    out = check.output(fn, "out", out, (X.shape[0], W.shape[1]), X.dtype, (X, W, b))
    return _run(fn, backend, dict(X=X, W=W, b=b), X, W, b, activation, out=out)


def dense_backward(dA: ArrayLike, X: ArrayLike, W: ArrayLike, A: ArrayLike,
                   activation: Activation = "linear", *, input_grad: bool = True,
                   bias_grad: bool = True, out: Optional[tuple] = None, overwrite_dA: bool = False,
                   backend: Backend = None
                   ) -> tuple[Optional[np.ndarray], np.ndarray, Optional[np.ndarray]]:
    """Gradients of ``dense_forward``: dZ = dA * g'(Z) with g' computed from A = g(Z), then
    dX = dZ @ W.T, dW = X.T @ dZ, db = sum of dZ over rows.

    dA, A: (m, n_out); X: (m, n_in); W: (n_in, n_out). Returns (dX (m, n_in), dW (n_in, n_out),
    db (n_out,)). With ``input_grad=False`` dX is not computed (None): a model's first layer
    needs no gradient with respect to the data, and skipping it saves one of the two products.
    With
    ``bias_grad=False`` db is not computed (None), as PyTorch skips it for ``bias=False``: a
    linear layer then runs only its products, and NaN or inf in A (unused) is not looked for.
    out: (dX or None, dW, db or None). ``overwrite_dA=True`` (as in SciPy's ``overwrite_a``)
    lets the kernel keep dZ in dA's memory instead of a new array; dA's values are then
    undefined. It is a permission: a read-only dA, or one that shares memory with X, W or A, is
    never written (the kernel uses a buffer of its own).
    """
    fn = "dense_backward"
    dA, X, W, A = (check.float_array(fn, name, a, 2)
                   for name, a in (("dA", dA), ("X", X), ("W", W), ("A", A)))
    check.same_dtype(fn, dA=dA, X=X, W=W, A=A)
    m, n_in = X.shape
    n_out = W.shape[1]
    check.shape(fn, "W", W, (n_in, n_out), f"(n_in = X.shape[1] = {n_in} rows)")
    check.shape(fn, "A", A, (m, n_out), "(X.shape[0] rows, W.shape[1] columns)")
    check.shape(fn, "dA", dA, (m, n_out), "(the shape of A)")
    activation = _activation(fn, activation)
    input_grad, bias_grad = bool(input_grad), bool(bias_grad)
    out = check.outputs(fn, out, (("dX", (m, n_in) if input_grad else None, X.dtype),
                                  ("dW", (n_in, n_out), X.dtype),
                                  ("db", (n_out,) if bias_grad else None, X.dtype)),
                        (dA, X, W, A))
    # (a permission: not taken when dA shares memory with an input read after dZ is written)
    overwrite_dA = bool(overwrite_dA) and not any(check.share_memory(dA, a) for a in (X, W, A))
    return _run(fn, backend, dict(dA=dA, X=X, W=W, A=A), dA, X, W, A, activation,
                input_grad, out=out, overwrite_dA=overwrite_dA, bias_grad=bias_grad)


def batchnorm_forward(X: ArrayLike, gamma: ArrayLike, beta: ArrayLike, running_mean: np.ndarray,
                      running_var: np.ndarray, training: bool = True, decay: float = 0.9,
                      eps: float = 1e-5, *, activation: Activation = "linear",
                      out: Optional[np.ndarray | tuple] = None, backend: Backend = None
                      ) -> tuple[np.ndarray, BatchNormCache]:
    """Batch normalization: Y = gamma * (X - mean) / sqrt(var + eps) + beta, per column, then
    A = g(Y) with a fused ``activation`` g ("linear" (default, A = Y), "relu", "tanh",
    "sigmoid"): BatchNorm followed by ReLU in one pass over the data.

    X: (m, n); gamma, beta, running_mean, running_var: (n,). In training, mean and var are the
    batch mean and biased variance, and the running statistics are updated in place as
    exponentially weighted averages, r = decay * r + (1 - decay) * batch value; ``running_var``
    stores the unbiased batch variance var * m / (m - 1), as PyTorch does. ``decay`` is the weight
    of the old value: PyTorch's ``momentum`` is 1 - decay. At inference (``training=False``) the
    running statistics normalize and are left unchanged. Returns (A (m, n), cache for
    ``batchnorm_backward``). ``out``: an array for A, or a tuple (A, mean, invstd) of arrays
    ((m, n), (n,), (n,)) that also receives the cache's statistics (a training loop that passes
    the same buffers at every step allocates nothing).
    """
    fn = "batchnorm_forward"
    X = check.float_array(fn, "X", X, 2)
    vectors = {}
    for name, v in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean),
                    ("running_var", running_var)):
        if name.startswith("running") and not is_device_array(v) and not (
                isinstance(v, np.ndarray) and v.flags.writeable and v.flags.c_contiguous):
            raise TypeError(f"{fn}: {name} must be a writable C-contiguous NumPy array (it is "
                            f"updated in place), got {type(v).__name__}")
        vectors[name] = check.float_array(fn, name, v, 1)
        check.shape(fn, name, vectors[name], (X.shape[1],), "(one value per column of X)")
    check.same_dtype(fn, X=X, **vectors)
    check.finite(fn, **vectors)
    if np.any(to_host(vectors["running_var"]) < 0):
        raise ValueError(f"{fn}: running_var must be >= 0, got a minimum of "
                         f"{to_host(vectors['running_var']).min()}")
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"{fn}: training must be True or False, got {training!r}")
    if training and X.shape[0] < 2:
        raise ValueError(f"{fn}: training needs a batch of at least 2 rows to estimate a variance, "
                         f"got X of shape {X.shape}")
    check.number_in(fn, "decay", decay, 0.0, 1.0)
    check.number_in(fn, "eps", eps, 0.0, np.finfo(np.float64).max, low_open=True)
    activation = _activation(fn, activation)
    inputs = (X, *vectors.values())
    if isinstance(out, (tuple, list)):
        n = X.shape[1]
        out = check.outputs(fn, out, (("A", X.shape, X.dtype), ("mean", (n,), X.dtype),
                                      ("invstd", (n,), X.dtype)), inputs)
        outs = {f"out[{i}]": a for i, a in enumerate(out)}
    else:
        outs = {"out": out}
    # running_mean and running_var are written: neither may share memory with anything else
    check.disjoint(fn, {k: vectors[k] for k in ("running_mean", "running_var")},
                   dict(X=X, gamma=vectors["gamma"], beta=vectors["beta"], **outs))
    if "out" in outs:
        out = check.output(fn, "out", out, X.shape, X.dtype, inputs)
    return _run(fn, backend, dict(X=X), X, vectors["gamma"], vectors["beta"],
                running_mean, running_var, training=bool(training), decay=float(decay),
                eps=float(eps), activation=activation, out=out, extra=vectors)


def batchnorm_backward(dY: ArrayLike, cache: BatchNormCache, *, out: Optional[tuple] = None,
                       backend: Backend = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of ``batchnorm_forward``. dY: (m, n), the gradient of its output (of A when
    an activation is fused: dY <- dY * g'(A) first); cache: from the forward call.

    With xhat = (X - mean) * invstd: dbeta = sum(dY), dgamma = sum(dY * xhat) (over rows);
    training: dX = (gamma * invstd / m) * (m * dY - dbeta - xhat * dgamma);
    inference: dX = dY * gamma * invstd. Returns (dX (m, n), dgamma (n,), dbeta (n,)); out:
    the same three arrays.
    """
    fn = "batchnorm_backward"
    if not isinstance(cache, BatchNormCache):
        raise TypeError(f"{fn}: cache must be the BatchNormCache returned by batchnorm_forward, "
                        f"got {type(cache).__name__}")
    for name in ("X", "gamma", "mean", "invstd", "A"):
        value = getattr(cache, name)
        if not (value is None and name == "A") and not (hasattr(value, "dtype")
                                                        and hasattr(value, "shape")):
            raise TypeError(f"{fn}: cache.{name} must be an array, got {type(value).__name__}")
    dY = check.float_array(fn, "dY", dY, 2)
    check.same_dtype(fn, dY=dY, X=cache.X)
    check.shape(fn, "dY", dY, cache.X.shape, "(the shape of the forward input X)")
    m, n = dY.shape
    for name in ("gamma", "mean", "invstd"):  # (a cache built by hand must fit X too)
        vector = getattr(cache, name)
        check.same_dtype(fn, dY=dY, **{f"cache.{name}": vector})
        check.shape(fn, f"cache.{name}", vector, (n,), "(one value per column of X)")
    if cache.A is not None:
        check.same_dtype(fn, dY=dY, **{"cache.A": cache.A})
        check.shape(fn, "cache.A", cache.A, (m, n), "(the shape of the forward input X)")
    out = check.outputs(fn, out, (("dX", (m, n), dY.dtype), ("dgamma", (n,), dY.dtype),
                                  ("dbeta", (n,), dY.dtype)), (dY, *cache[:4]))
    return _run(fn, backend, dict(dY=dY, X=cache.X), dY, cache, out=out, extra={"cache": cache})


def _logits(fn, Z):
    return check.float_array(fn, "Z", Z, 2)


def _rowwise(fn, Z, out, backend):
    Z = _logits(fn, Z)
    out = check.output(fn, "out", out, Z.shape, Z.dtype, (Z,))
    return _run(fn, backend, dict(Z=Z), Z, out=out)


def softmax(Z: ArrayLike, *, out: Optional[np.ndarray] = None,
            backend: Backend = None) -> np.ndarray:
    """softmax(Z)_ij = exp(Z_ij - max_k Z_ik) / sum_l exp(Z_il - max_k Z_ik).

    Z: (m, C) -> (m, C)."""
    return _rowwise("softmax", Z, out, backend)


def log_softmax(Z: ArrayLike, *, out: Optional[np.ndarray] = None,
                backend: Backend = None) -> np.ndarray:
    """log softmax(Z) = Z - max(Z) - log(sum(exp(Z - max(Z)))), per row. Z: (m, C) -> (m, C)."""
    return _rowwise("log_softmax", Z, out, backend)


def hardmax(Z: ArrayLike, *, out: Optional[np.ndarray] = None,
            backend: Backend = None) -> np.ndarray:
    """One-hot of each row's argmax (the first on ties), Z's dtype. Z: (m, C) -> (m, C)."""
    return _rowwise("hardmax", Z, out, backend)


def softmax_cross_entropy(Z: ArrayLike, y: ArrayLike, *, out: Optional[np.ndarray] = None,
                          backend: Backend = None) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of softmax(Z) against y, and its gradient, in one pass.

    Z: (m, C) logits. y: class indices (m,) of an integer dtype in [0, C), or target rows (m, C) of
    Z's dtype (one-hot or probabilities). loss = -(1/m) sum_ij Y_ij log softmax(Z)_ij and
    dZ_ij = (softmax(Z)_ij * sum_k Y_ik - Y_ij) / m, i.e. (softmax(Z) - Y) / m for one-hot rows.
    Returns (loss as a Python float, dZ (m, C)); out: an array for dZ.
    """
    fn = "softmax_cross_entropy"
    Z = _logits(fn, Z)
    y = y if is_device_array(y) else np.asarray(y)
    if y.ndim == 1:
        check.class_labels(fn, "y", y, Z.shape[0], Z.shape[1])
    elif y.ndim == 2:
        y = check.float_array(fn, "y", y, 2)
        check.same_dtype(fn, Z=Z, y=y)
        check.shape(fn, "y", y, Z.shape, "(target rows: the shape of Z)")
    else:
        raise ValueError(f"{fn}: y must be class indices (m,) or target rows (m, C), got shape "
                         f"{y.shape}")
    inputs = dict(Z=Z) if y.ndim == 1 else dict(Z=Z, y=y)
    out = check.output(fn, "out", out, Z.shape, Z.dtype, (Z, y))
    return _run(fn, backend, inputs, Z, y, out=out, extra={"y": y})


def _elementwise_loss(fn, Z, target, name, out, backend, unit_interval=False):
    """The checks shared by the elementwise losses, then the backend's kernel: Z (m,) or (m, k);
    the target ``name`` of Z's shape and dtype, or (m,) for Z (m, 1) (given to the kernel
    reshaped to (m, 1)); with ``unit_interval`` its values in [0, 1]."""
    Z = check.float_array(fn, "Z", Z, (1, 2))
    given = check.float_array(fn, name, target, (1, 2))
    check.same_dtype(fn, Z=Z, **{name: given})
    if given.shape == Z.shape:
        target = given
    elif Z.ndim == 2 and Z.shape[1] == 1 and given.shape == Z.shape[:1]:
        target = given.reshape(Z.shape)
    else:
        check.shape(fn, name, given, Z.shape, "(the shape of Z, or (m,) when Z is (m, 1))")
    if unit_interval:
        check.in_unit_interval(fn, name, given)
    out = check.output(fn, "out", out, Z.shape, Z.dtype, (Z, given))
    return _run(fn, backend, {"Z": Z, name: given}, Z, target, out=out)


def sigmoid_cross_entropy(Z: ArrayLike, y: ArrayLike, *, out: Optional[np.ndarray] = None,
                          backend: Backend = None) -> tuple[float, np.ndarray]:
    """Mean binary cross-entropy of sigmoid(Z) against y, and its gradient, in one pass (the
    sigmoid fused, as PyTorch's ``binary_cross_entropy_with_logits``, reduction "mean").

    Z: (m,) or (m, k) logits (one or k independent binary outputs per sample). y: Z's shape and
    dtype ((m,) is also taken for Z (m, 1)), values in [0, 1]: 0/1 labels or probabilities.
    With N = Z.size: loss = (1/N) sum_ij max(z_ij, 0) - z_ij y_ij + log(1 + exp(-|z_ij|)) (the
    stable form of -(y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))): finite for any finite
    logit), dZ = (sigmoid(Z) - y) / N. Returns (loss as a Python float, summed in float64; dZ
    of Z's shape and dtype); out: an array for dZ. y outside [0, 1] (or NaN) is a ValueError
    that counts the values (a CUDA device y is checked on a host copy). NaN or inf in Z: a
    ValueError naming it, after the "cpu" backend has written meaningless values into ``out``
    (it counts them in its one pass over the data).
    """
    return _elementwise_loss("sigmoid_cross_entropy", Z, y, "y", out, backend,
                             unit_interval=True)


def mean_squared_error(Z: ArrayLike, Y: ArrayLike, *, out: Optional[np.ndarray] = None,
                       backend: Backend = None) -> tuple[float, np.ndarray]:
    """Mean squared error and its gradient, in one pass (PyTorch's ``MSELoss()``, reduction
    "mean").

    Z: (m,) or (m, k) predictions. Y: Z's shape and dtype ((m,) is also taken for Z (m, 1)).
    With N = Z.size: loss = (1/N) sum_ij (Z_ij - Y_ij)^2, dZ = 2 (Z - Y) / N. Returns (loss as a
    Python float, summed in float64; dZ of Z's shape and dtype); out: an array for dZ. NaN or
    inf in Z or Y: a ValueError naming it, after the "cpu" backend has written meaningless values
    into ``out`` (it counts them in its one pass over the data); a difference beyond the dtype's
    range: NonFiniteError.
    """
    return _elementwise_loss("mean_squared_error", Z, Y, "Y", out, backend)
