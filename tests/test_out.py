"""``out=`` buffers, ``overwrite_dA`` and the optimizers' ``check_finite`` switch: every kernel
writes into given arrays exactly what it would return, and rejects unusable ones."""
import numpy as np
import pytest
from helpers import over_backends, over_dtypes

from fastnn import backend as fastnn_backend
from fastnn import kernels as K
from fastnn.errors import NonFiniteError


def _data(rng, dtype, m=9, n_in=7, n_out=5):
    X = rng.standard_normal((m, n_in)).astype(dtype)
    W = (rng.standard_normal((n_in, n_out)) / 3).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    dA = rng.standard_normal((m, n_out)).astype(dtype)
    return X, W, b, dA


def _assert_same_into(out, result, expected):
    """The kernel returned the given buffer(s), holding the values of a call without out=."""
    outs = out if isinstance(out, tuple) else (out,)
    results = result if isinstance(result, tuple) else (result,)
    expecteds = expected if isinstance(expected, tuple) else (expected,)
    for o, r, e in zip(outs, results, expecteds):
        if o is None:
            assert r is None
            continue
        assert r is o
        np.testing.assert_array_equal(o, e)


@over_backends
@over_dtypes
@pytest.mark.parametrize("activation", ["linear", "relu", "tanh", "sigmoid"])
def test_dense_and_activation_write_into_out(backend, dtype, activation, rng):
    X, W, b, dA = _data(rng, dtype)
    A = K.dense_forward(X, W, b, activation, backend=backend)
    out = np.full_like(A, np.nan)
    _assert_same_into(out, K.dense_forward(X, W, b, activation, out=out, backend=backend), A)
    for input_grad in (True, False):
        expected = K.dense_backward(dA, X, W, A, activation, input_grad=input_grad,
                                    backend=backend)
        out = (np.empty_like(X) if input_grad else None, np.empty_like(W), np.empty_like(b))
        got = K.dense_backward(dA, X, W, A, activation, input_grad=input_grad, out=out,
                               backend=backend)
        _assert_same_into(out, got, expected)
    Z = X @ W
    A = K.activation_forward(Z, activation, backend=backend)
    out = np.empty_like(Z)
    _assert_same_into(out, K.activation_forward(Z, activation, out=out, backend=backend), A)
    expected = K.activation_backward(dA, A, activation, backend=backend)
    out = np.empty_like(Z)
    _assert_same_into(out, K.activation_backward(dA, A, activation, out=out, backend=backend),
                      expected)


@over_backends
@pytest.mark.parametrize("activation", ["linear", "relu", "tanh"])
def test_overwrite_dA_gives_the_same_gradients(backend, activation, rng):
    X, W, b, dA = _data(rng, np.float64)
    A = K.dense_forward(X, W, b, activation, backend=backend)
    expected = K.dense_backward(dA, X, W, A, activation, backend=backend)
    kept = dA.copy()
    np.testing.assert_array_equal(dA, kept)  # without overwrite_dA, dA is left alone
    got = K.dense_backward(dA, X, W, A, activation, overwrite_dA=True, backend=backend)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


@over_backends
@over_dtypes
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_writes_into_out(backend, dtype, training, rng):
    X = rng.standard_normal((8, 6)).astype(dtype)
    gamma, beta = rng.random(6).astype(dtype) + 0.5, rng.standard_normal(6).astype(dtype)
    stats = [np.zeros(6, dtype), np.ones(6, dtype)]
    stats_out = [s.copy() for s in stats]
    Y, cache = K.batchnorm_forward(X, gamma, beta, *stats, training, backend=backend)
    out = np.empty_like(X)
    Y_out, cache_out = K.batchnorm_forward(X, gamma, beta, *stats_out, training, out=out,
                                           backend=backend)
    _assert_same_into(out, Y_out, Y)
    for s, s_out in zip(stats, stats_out):
        np.testing.assert_array_equal(s_out, s)
    dY = rng.standard_normal(X.shape).astype(dtype)
    expected = K.batchnorm_backward(dY, cache, backend=backend)
    out = (np.empty_like(X), np.empty(6, dtype), np.empty(6, dtype))
    _assert_same_into(out, K.batchnorm_backward(dY, cache_out, out=out, backend=backend),
                      expected)


@pytest.mark.parametrize("backend", ["numpy", "cpu", "cuda"])
@over_dtypes
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_writes_its_cache_statistics_into_out(backend, dtype, training, rng):
    """out=(A, mean, invstd): the cache's statistics land in the given vectors (what a model's
    training step passes at every step, so that it allocates nothing); unusable ones are
    rejected before anything changes."""
    X = rng.standard_normal((8, 6)).astype(dtype)
    gamma, beta = rng.random(6).astype(dtype) + 0.5, rng.standard_normal(6).astype(dtype)
    stats = [np.zeros(6, dtype), np.ones(6, dtype)]
    stats_out = [s.copy() for s in stats]
    Y, cache = K.batchnorm_forward(X, gamma, beta, *stats, training, backend=backend)
    out = (np.empty_like(X), np.full(6, np.nan, dtype), np.full(6, np.nan, dtype))
    Y_out, cache_out = K.batchnorm_forward(X, gamma, beta, *stats_out, training, out=out,
                                           backend=backend)
    _assert_same_into(out, (Y_out, cache_out.mean, cache_out.invstd),
                      (Y, cache.mean, cache.invstd))
    for s, s_out in zip(stats, stats_out):
        np.testing.assert_array_equal(s_out, s)
    for bad, error in (((out[0], out[1]), TypeError),
                       ((out[0], out[1], np.empty(5, dtype)), ValueError),
                       ((out[0], out[1], out[1]), ValueError),
                       ((out[0], stats_out[0], out[2]), ValueError)):
        before = [s.copy() for s in stats_out]
        with pytest.raises(error):
            K.batchnorm_forward(X, gamma, beta, *stats_out, training, out=bad, backend=backend)
        for s, b in zip(stats_out, before):
            np.testing.assert_array_equal(s, b)


@over_backends
@pytest.mark.parametrize("kernel", ["softmax", "log_softmax", "hardmax"])
def test_softmax_family_writes_into_out(backend, kernel, rng):
    Z = rng.standard_normal((6, 4))
    fn = getattr(K, kernel)
    out = np.empty_like(Z)
    _assert_same_into(out, fn(Z, out=out, backend=backend), fn(Z, backend=backend))


@over_backends
@pytest.mark.parametrize("labels", ["indices", "rows"])
def test_cross_entropy_writes_dZ_into_out(backend, labels, rng):
    Z = rng.standard_normal((6, 4))
    y = rng.integers(0, 4, 6)
    if labels == "rows":
        y = np.eye(4)[y]
    loss, dZ = K.softmax_cross_entropy(Z, y, backend=backend)
    out = np.empty_like(Z)
    loss_out, dZ_out = K.softmax_cross_entropy(Z, y, out=out, backend=backend)
    assert loss_out == loss
    _assert_same_into(out, dZ_out, dZ)


def test_bad_out_is_rejected_before_anything_runs(rng):
    X, W, b, dA = _data(rng, np.float32)
    A = K.dense_forward(X, W, b)
    good = np.empty_like(A)
    with pytest.raises(ValueError, match=r"dense_forward: out must have shape \(9, 5\), got"):
        K.dense_forward(X, W, b, out=np.empty((9, 4), np.float32))
    with pytest.raises(TypeError, match="out must have dtype float32"):
        K.dense_forward(X, W, b, out=good.astype(np.float64))
    with pytest.raises(TypeError, match="writable C-contiguous"):
        K.dense_forward(X, W, b, out=np.empty((5, 9), np.float32).T)
    with pytest.raises(TypeError, match="NumPy array or None, got list"):
        K.dense_forward(X, W, b, out=[0.0] * 45)
    Z = X @ W
    with pytest.raises(ValueError, match="out shares memory with an input"):
        K.activation_forward(Z, "relu", out=Z)
    with pytest.raises(TypeError, match=r"out must be a tuple \(dX, dW, db\)"):
        K.dense_backward(dA, X, W, A, out=(None, np.empty_like(W)))
    with pytest.raises(ValueError, match="out's dX must be None"):
        K.dense_backward(dA, X, W, A, input_grad=False,
                         out=(np.empty_like(X), np.empty_like(W), np.empty_like(b)))
    with pytest.raises(ValueError, match=r"out's dW must have shape \(7, 5\)"):
        K.dense_backward(dA, X, W, A, out=(np.empty_like(X), np.empty_like(X), np.empty_like(b)))
    shared = np.empty(7 * 5, np.float32)
    with pytest.raises(ValueError, match="the arrays of out share memory"):
        K.dense_backward(dA, X, W, A, input_grad=False,
                         out=(None, shared.reshape(7, 5), shared[30:]))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: out must have shape \(9, 5\)"):
        K.softmax_cross_entropy(A, np.zeros(9, int), out=np.empty((9, 4), np.float32))


@over_backends
@pytest.mark.parametrize("update, states, args", [
    ("sgd_update", 0, (0.1,)), ("momentum_update", 1, (0.1, 0.9)),
    ("rmsprop_update", 1, (0.1, 0.9, 1e-8)), ("adam_update", 2, (1, 0.1, 0.9, 0.999, 1e-8))])
def test_check_finite_false_still_counts_what_the_update_computes(backend, update, states, args,
                                                                 parallel_path):
    """The backend updates take ``check_finite`` (the model's trusted path) for compatibility,
    but every update counts NaN/inf in the values it computes, which a NaN gradient always
    reaches: with or without it, NonFiniteError with nothing changed."""
    fn = getattr(fastnn_backend.get(backend), update)
    p, g = np.ones(40000), np.full(40000, 0.5)
    g[123] = np.nan
    state = [np.zeros_like(p) for _ in range(states)]
    for check_finite in (True, False):
        with pytest.raises(NonFiniteError):
            fn(p, g, *state, *args, check_finite)
        np.testing.assert_array_equal(p, 1.0)
        for s in state:
            np.testing.assert_array_equal(s, 0.0)
