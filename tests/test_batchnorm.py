"""Batch normalization kernels: CPU backend against the reference, both against the documented
formulas (running statistics included) and against finite differences."""
import numpy as np
import pytest
from helpers import assert_close, assert_gradient, matrix_shapes, over_backends, over_dtypes, seeds
from hypothesis import example, given
from hypothesis import strategies as st

from fastnn import kernels as K


def bn_data(rng, m, n, dtype=np.float64, mean=0.0):
    """X (m, n) with per-column scales in [0.5, 2]; gamma of both signs; beta; running stats."""
    X = mean + rng.standard_normal((m, n)) * rng.uniform(0.5, 2.0, n)
    gamma = rng.uniform(0.5, 2.0, n) * rng.choice([-1.0, 1.0], n)
    beta = rng.standard_normal(n)
    running_mean = rng.standard_normal(n)
    running_var = rng.uniform(0.5, 2.0, n)
    return tuple(a.astype(dtype) for a in (X, gamma, beta, running_mean, running_var))


def forward(backend, X, gamma, beta, running_mean, running_var, **kwargs):
    """batchnorm_forward on copies of the running stats: (Y, cache, new mean, new var)."""
    rm, rv = running_mean.copy(), running_var.copy()
    Y, cache = K.batchnorm_forward(X, gamma, beta, rm, rv, backend=backend, **kwargs)
    return Y, cache, rm, rv


def conditioning(X, gamma, eps=1e-5):
    """How much rounding in X - mean is amplified: max |gamma| * max over columns of
    max |X| / std. Used as the tolerance scale (1 to ~10 for well-spread data)."""
    spread = np.abs(X.astype(np.float64)).max(axis=0) / np.sqrt(X.astype(np.float64).var(axis=0)
                                                                 + eps)
    return float(np.abs(gamma).max() * max(1.0, spread.max()))


def check_against_reference(X, gamma, beta, rm, rv, training, decay, dtype, rng):
    """cpu forward (Y, cache, running stats) and backward (on the reference cache) match numpy."""
    m = X.shape[0]
    scale = conditioning(X, gamma)
    Y_ref, cache_ref, rm_ref, rv_ref = forward("numpy", X, gamma, beta, rm, rv,
                                               training=training, decay=decay)
    Y_cpu, cache_cpu, rm_cpu, rv_cpu = forward("cpu", X, gamma, beta, rm, rv,
                                               training=training, decay=decay)
    assert_close(Y_cpu, Y_ref, dtype, scale, what="Y")
    assert_close(rm_cpu, rm_ref, dtype, scale, what="running_mean")
    assert_close(rv_cpu, rv_ref, dtype, scale, what="running_var")
    assert cache_cpu.training == cache_ref.training == training
    assert_close(cache_cpu.mean, cache_ref.mean, dtype, scale, what="cache.mean")
    assert_close(cache_cpu.invstd, cache_ref.invstd, dtype, scale, what="cache.invstd")

    dY = rng.standard_normal(X.shape).astype(dtype)
    ref = K.batchnorm_backward(dY, cache_ref, backend="numpy")
    cpu = K.batchnorm_backward(dY, cache_ref, backend="cpu")
    invstd = float(np.abs(cache_ref.invstd).max())
    scales = (scale * invstd * np.sqrt(m), scale * np.sqrt(m), np.sqrt(m))
    for name, got, want, s in zip(("dX", "dgamma", "dbeta"), cpu, ref, scales):
        assert_close(got, want, dtype, s, what=name)


# --- cpu against the reference -------------------------------------------------------------------

@over_dtypes
@given(shape=matrix_shapes(min_rows=1), seed=seeds, training=st.booleans(),
       decay=st.floats(0.0, 1.0))
@example(shape=(2, 1), seed=0, training=True, decay=0.9)
@example(shape=(1, 5), seed=1, training=False, decay=0.9)
@example(shape=(64, 1), seed=2, training=True, decay=0.0)
def test_matches_reference(dtype, shape, seed, training, decay):
    """Training (m >= 2) and inference on random shapes, random decay."""
    rng = np.random.default_rng(seed)
    if training and shape[0] < 2:
        shape = (2, shape[1])
    check_against_reference(*bn_data(rng, *shape, dtype), training, decay, dtype, rng)


@over_dtypes
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("shape", [(600, 80), (5000, 7), (40, 1000)], ids=str)
@pytest.mark.usefixtures("parallel_path")
def test_matches_reference_parallel(rng, dtype, training, shape):
    """The parallel path (row blocks per thread, partial sums combined)."""
    check_against_reference(*bn_data(rng, *shape, dtype), training, 0.9, dtype, rng)


def test_cache_of_one_backend_works_with_the_other(rng):
    """BatchNormCache is backend independent: cpu's cache in numpy's backward and vice versa."""
    X, gamma, beta, rm, rv = bn_data(rng, 9, 4)
    dY = rng.standard_normal(X.shape)
    _, cache_cpu, _, _ = forward("cpu", X, gamma, beta, rm, rv)
    _, cache_ref, _, _ = forward("numpy", X, gamma, beta, rm, rv)
    for got, want in zip(K.batchnorm_backward(dY, cache_cpu, backend="numpy"),
                         K.batchnorm_backward(dY, cache_ref, backend="cpu")):
        assert_close(got, want, np.float64, scale=10)


# --- against the documented formulas -------------------------------------------------------------

@over_backends
@over_dtypes
@pytest.mark.parametrize("decay", [0.9, 0.0, 1.0, 0.37])
def test_running_stats_update_in_place_as_documented(rng, backend, dtype, decay):
    """r = decay * r + (1 - decay) * batch value, running_var storing the unbiased variance,
    written into the arrays passed in."""
    X, gamma, beta, rm, rv = bn_data(rng, 10, 6, dtype)
    X64 = X.astype(np.float64)
    want_mean = decay * rm.astype(np.float64) + (1 - decay) * X64.mean(axis=0)
    want_var = decay * rv.astype(np.float64) + (1 - decay) * X64.var(axis=0, ddof=1)
    rm_in, rv_in = rm.copy(), rv.copy()
    K.batchnorm_forward(X, gamma, beta, rm_in, rv_in, decay=decay, backend=backend)
    assert rm_in.dtype == rv_in.dtype == dtype
    assert_close(rm_in, want_mean, dtype, scale=2, what="running_mean")
    assert_close(rv_in, want_var, dtype, scale=2, what="running_var")
    if decay == 1.0:
        np.testing.assert_array_equal(rm_in, rm)
        np.testing.assert_array_equal(rv_in, rv)


@over_backends
@over_dtypes
def test_training_output_has_mean_beta_and_std_abs_gamma(rng, backend, dtype):
    """With eps tiny, each column of Y has mean beta and biased std |gamma|."""
    X, gamma, beta, rm, rv = bn_data(rng, 50, 7, dtype, mean=3.0)
    Y, _, _, _ = forward(backend, X, gamma, beta, rm, rv, eps=1e-12)
    Y64 = Y.astype(np.float64)
    rtol, atol = (1e-10, 1e-12) if dtype == np.float64 else (2e-5, 2e-5)
    np.testing.assert_allclose(Y64.mean(axis=0), beta, rtol=rtol, atol=atol)
    np.testing.assert_allclose(Y64.std(axis=0), np.abs(gamma), rtol=rtol, atol=atol)


@over_backends
@over_dtypes
def test_inference_uses_running_stats_and_leaves_them_unchanged(rng, backend, dtype):
    X, gamma, beta, rm, rv = bn_data(rng, 8, 5, dtype)
    rm_in, rv_in = rm.copy(), rv.copy()
    eps = 1e-3
    Y, cache = K.batchnorm_forward(X, gamma, beta, rm_in, rv_in, training=False, eps=eps,
                                   backend=backend)
    np.testing.assert_array_equal(rm_in, rm)
    np.testing.assert_array_equal(rv_in, rv)
    a = [v.astype(np.float64) for v in (X, gamma, beta, rm, rv)]
    want = a[1] * (a[0] - a[3]) / np.sqrt(a[4] + eps) + a[2]
    assert_close(Y, want, dtype, scale=conditioning(X, gamma), what="Y")
    assert not cache.training


@over_backends
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_backward_matches_formulas(rng, backend, training):
    """dbeta = sum dY, dgamma = sum dY * xhat, dX as in the docstring, with xhat computed here."""
    X, gamma, beta, rm, rv = bn_data(rng, 12, 5)
    eps = 1e-5
    Y, cache, _, _ = forward(backend, X, gamma, beta, rm, rv, training=training, eps=eps)
    mean, var = (X.mean(axis=0), X.var(axis=0)) if training else (rm, rv)
    invstd = 1 / np.sqrt(var + eps)
    xhat = (X - mean) * invstd
    dY = rng.standard_normal(X.shape)
    dX, dgamma, dbeta = K.batchnorm_backward(dY, cache, backend=backend)
    assert_close(dbeta, dY.sum(axis=0), np.float64, 10, "dbeta")
    assert_close(dgamma, (dY * xhat).sum(axis=0), np.float64, 10, "dgamma")
    m = X.shape[0]
    if training:
        want = gamma * invstd / m * (m * dY - dY.sum(axis=0) - xhat * (dY * xhat).sum(axis=0))
    else:
        want = dY * gamma * invstd
    assert_close(dX, want, np.float64, 10, "dX")


@over_backends
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_large_mean_float32(rng, backend, training):
    """X = 1000 + randn in float32 is normalized accurately (a one-pass float32 variance,
    E[x^2] - E[x]^2, is off by ~1). The reference's float32 mean is off by up to ~12 ulp of
    1000, so its tolerance is 10x wider."""
    X, gamma, beta, rm, rv = bn_data(rng, 256, 16, np.float32, mean=1000.0)
    rm = (1000 + rng.standard_normal(16)).astype(np.float32)  # plausible for inference
    Y, _, rm_new, rv_new = forward(backend, X, gamma, beta, rm, rv, training=training)
    a = [v.astype(np.float64) for v in (X, gamma, beta, rm, rv)]
    mean, var = (a[0].mean(axis=0), a[0].var(axis=0)) if training else (a[3], a[4])
    want = a[1] * (a[0] - mean) / np.sqrt(var + 1e-5) + a[2]
    np.testing.assert_allclose(Y, want, rtol=1e-4, atol={"numpy": 5e-3, "cpu": 5e-4}[backend])
    if training:
        m = X.shape[0]
        np.testing.assert_allclose(rv_new, 0.9 * a[4] + 0.1 * var * m / (m - 1), rtol=1e-4)
        np.testing.assert_allclose(rm_new, 0.9 * a[3] + 0.1 * mean, rtol=1e-6)


@over_backends
@over_dtypes
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_zero_variance_column_gives_finite_output_and_gradients(rng, backend, dtype, training):
    X, gamma, beta, rm, rv = bn_data(rng, 6, 3, dtype)
    X[:, 1] = 2.5
    rm[1], rv[1] = 2.5, 0.0
    Y, cache, _, _ = forward(backend, X, gamma, beta, rm, rv, training=training)
    assert np.isfinite(Y).all()
    assert_close(Y[:, 1], np.full(6, beta[1]), dtype, what="Y of the constant column")
    dY = rng.standard_normal(X.shape).astype(dtype)
    dX, dgamma, dbeta = K.batchnorm_backward(dY, cache, backend=backend)
    assert np.isfinite(dX).all() and np.isfinite(dgamma).all() and np.isfinite(dbeta).all()
    assert abs(dgamma[1]) <= 1e-12 * np.abs(dY).sum()  # xhat is 0 in that column
    ref = K.batchnorm_backward(dY, cache, backend="numpy")
    # invstd = 1/sqrt(eps) ~ 316 there: scale the tolerance with it
    assert_close(dX, ref[0], dtype, scale=float(np.abs(gamma).max() * 316 * 6), what="dX")


# --- finite differences --------------------------------------------------------------------------

@over_backends
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("shape", [(2, 3), (7, 4)], ids=str)
@pytest.mark.parametrize("activation", ["linear", "relu", "tanh", "sigmoid"])
def test_gradients_by_finite_differences(rng, backend, training, shape, activation):
    """dX, dgamma, dbeta of f = sum(g(Y) * R) agree with central differences (float64)."""
    X, gamma, beta, rm, rv = bn_data(rng, *shape)
    R = rng.standard_normal(shape)

    def f():  # fresh running stats each call: training updates them in place
        A, _ = K.batchnorm_forward(X, gamma, beta, rm.copy(), rv.copy(), training=training,
                                   activation=activation, backend=backend)
        return float(np.sum(A * R))

    _, cache = K.batchnorm_forward(X, gamma, beta, rm.copy(), rv.copy(), training=training,
                                   activation=activation, backend=backend)
    dX, dgamma, dbeta = K.batchnorm_backward(R, cache, backend=backend)
    # (with 2 rows dX nearly cancels: its relative error is rounding-bound near 1e-7; a wrong
    # derivative is off by more than 1e-3)
    limit = 1e-7 if activation == "linear" else 1e-6
    assert_gradient(dX, f, X, "dX", limit=limit)
    assert_gradient(dgamma, f, gamma, "dgamma", limit=limit)
    assert_gradient(dbeta, f, beta, "dbeta", limit=limit)


@over_dtypes
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_fused_activation_is_batchnorm_then_activation(rng, dtype, activation, training,
                                                       parallel, monkeypatch):
    """A = g(BN(X)) and its gradients equal BN followed by the activation kernels, for both
    backends, on the serial and the parallel path."""
    if parallel:
        from fastnn import config
        monkeypatch.setattr(config, "BATCHNORM_PARALLEL_MIN_ELEMENTS", 0)
    X, gamma, beta, rm, rv = bn_data(rng, 37, 6, dtype)
    dA = rng.standard_normal(X.shape).astype(dtype)
    Y, split_cache, _, _ = forward("numpy", X, gamma, beta, rm, rv, training=training)
    A_ref = K.activation_forward(Y, activation, backend="numpy")
    dY = K.activation_backward(dA, A_ref, activation, backend="numpy")
    ref = K.batchnorm_backward(dY, split_cache, backend="numpy")
    scale = conditioning(X, gamma)
    for backend in ("numpy", "cpu"):
        A, cache, _, _ = forward(backend, X, gamma, beta, rm, rv, training=training,
                                 activation=activation)
        assert_close(A, A_ref, dtype, scale, what=f"{backend} A")
        for got, want, name in zip(K.batchnorm_backward(dA, cache, backend=backend), ref,
                                   ("dX", "dgamma", "dbeta")):
            assert_close(got, want, dtype, scale * np.sqrt(X.shape[0]), what=f"{backend} {name}")


# --- PyTorch, when available ---------------------------------------------------------------------

@over_backends
def test_running_var_matches_torch(rng, backend):
    """running_var and Y agree with torch.nn.functional.batch_norm (momentum = 1 - decay)."""
    torch = pytest.importorskip("torch")
    X, gamma, beta, rm, rv = bn_data(rng, 16, 5)
    decay = 0.8
    Y, _, rm_new, rv_new = forward(backend, X, gamma, beta, rm, rv, decay=decay)
    t_rm, t_rv = torch.tensor(rm), torch.tensor(rv)
    t_Y = torch.nn.functional.batch_norm(torch.tensor(X), t_rm, t_rv, torch.tensor(gamma),
                                         torch.tensor(beta), training=True, momentum=1 - decay,
                                         eps=1e-5)
    np.testing.assert_allclose(rv_new, t_rv.numpy(), rtol=1e-10)
    np.testing.assert_allclose(rm_new, t_rm.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(Y, t_Y.numpy(), rtol=1e-9, atol=1e-10)
