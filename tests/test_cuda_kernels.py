"""CUDA kernels (in Numba's CUDA simulator) against the NumPy reference, float64 and float32.

Launch sizes are shrunk through ``fastnn.config`` (``small_blocks``, autouse) so that tiny arrays
still run the multi-block paths: several tiles per product with partial edge tiles and partial
steps along k, several reduction passes over row blocks, rows longer than their thread group and
grid-stride loops that go round more than once. The simulator runs every thread in Python: keep
each case to about a thousand threads or fewer.
"""
import numpy as np
import pytest
from helpers import assert_close, over_dtypes, tolerance
from numba import cuda

from fastnn import config
from fastnn.errors import NonFiniteError
from fastnn.kernels import reference as ref
from fastnn.kernels.cuda import _device

if not _device.gpu_available():
    pytest.skip("no CUDA GPU and no CUDA simulator", allow_module_level=True)

import fastnn.kernels.cuda as kc  # noqa: E402

#: Launch sizes for the simulator: 6 x 6 product tiles from 2 x 3 threads with 2 x 3 outputs each
#: (2 along k), column sums over 3-row blocks of 4 columns, softmax rows shared by 4 threads in
#: blocks of 8, grid-stride loops over 3 blocks of 8 threads; the tiled product even where cuBLAS
#: could run (``test_cuda_cublas`` tests that path).
SMALL = dict(CUDA_THREADS_PER_BLOCK=8, CUDA_MAX_BLOCKS=3, CUDA_GEMM_THREADS_X=2,
             CUDA_GEMM_THREADS_Y=3, CUDA_GEMM_REGS_M=2, CUDA_GEMM_REGS_N=3, CUDA_GEMM_TILE_K=2,
             CUDA_REDUCE_COLS=4, CUDA_REDUCE_ROW_THREADS=2, CUDA_REDUCE_ROWS_PER_BLOCK=3,
             CUDA_SOFTMAX_THREADS=8, CUDA_SOFTMAX_ROW_THREADS=4, CUDA_GEMM="numba")
DEFAULTS = {name: getattr(config, name) for name in SMALL}
ACTIVATIONS = ["linear", "relu", "tanh", "sigmoid"]
KINDS = ["host", "device"]

#: The simulator runs Numba's xoroshiro128+ state set-up (dropout) in Python: object mode, and
#: uint64 arithmetic that wraps around.
pytestmark = pytest.mark.filterwarnings("ignore::numba.NumbaWarning",
                                        "ignore:overflow encountered:RuntimeWarning")


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    for name, value in SMALL.items():
        monkeypatch.setattr(config, name, value)


def on(kind, *arrays):
    """The arrays as given ("host") or copied to the device ("device"); one array or a list."""
    moved = [a if kind == "host" or a is None else cuda.to_device(a) for a in arrays]
    return moved[0] if len(moved) == 1 else moved


def host(a, kind="host"):
    """A kernel result as a NumPy array, after checking that it is of the ``kind`` expected."""
    if kind == "host":
        assert isinstance(a, np.ndarray), type(a)
        return a
    assert getattr(a, "__cuda_ndarray__", False), type(a)
    return a.copy_to_host()


def dense_data(rng, m, n_in, n_out, dtype):
    X = rng.standard_normal((m, n_in)).astype(dtype)
    W = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(dtype)
    b = (0.5 * rng.standard_normal(n_out)).astype(dtype)
    return X, W, b


def batchnorm_data(rng, m, n, dtype, mean=1.0):
    X = (mean + 2 * rng.standard_normal((m, n))).astype(dtype)
    gamma = (1 + 0.1 * rng.standard_normal(n)).astype(dtype)
    beta = (0.1 * rng.standard_normal(n)).astype(dtype)
    running = (rng.standard_normal(n).astype(dtype), (0.5 + rng.random(n)).astype(dtype))
    return X, gamma, beta, running


def directional_check(f, x, grad, rng, eps=1e-6):
    """<grad, V> matches the central difference of the scalar f() along a random V (float64; x is
    perturbed in place and restored)."""
    V = rng.standard_normal(x.shape)
    x0 = x.copy()
    x[...] = x0 + eps * V
    up = f()
    x[...] = x0 - eps * V
    down = f()
    x[...] = x0
    np.testing.assert_allclose((up - down) / (2 * eps), np.sum(grad * V), rtol=1e-6, atol=1e-9)


# --- activations and dense layers ----------------------------------------------------------------

@over_dtypes
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_matches_reference(rng, dtype, activation):
    """35 elements over 24 threads: the grid-stride loop goes round twice."""
    Z = (2 * rng.standard_normal((5, 7))).astype(dtype)
    A = kc.activation_forward(Z, activation)
    assert_close(A, ref.activation_forward(Z, activation), dtype, what="A")
    dA = rng.standard_normal(Z.shape).astype(dtype)
    dZ = kc.activation_backward(dA, A, activation)
    assert_close(dZ, ref.activation_backward(dA, A, activation), dtype, what="dZ")


def check_dense(rng, shape, dtype, activation, bias=True):
    m, n_in, n_out = shape
    X, W, b = dense_data(rng, m, n_in, n_out, dtype)
    b = b if bias else None
    A = kc.dense_forward(X, W, b, activation)
    A_ref = ref.dense_forward(X, W, b, activation)
    assert_close(A, A_ref, dtype, scale=np.sqrt(n_in), what="A")
    dA = rng.standard_normal((m, n_out)).astype(dtype)
    got = kc.dense_backward(dA, X, W, A_ref, activation)
    want = ref.dense_backward(dA, X, W, A_ref, activation)
    for name, g, w, terms in zip(("dX", "dW", "db"), got, want, (n_out, m, m)):
        assert_close(g, w, dtype, scale=np.sqrt(terms), what=name)


@over_dtypes
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_matches_reference(rng, dtype, activation):
    """13 x 9 x 4: three row tiles (the last partial), five steps along k (the last partial);
    dX = dZ @ W.T two column tiles; the bias gradient over five 3-row blocks, then a second pass."""
    check_dense(rng, (13, 9, 4), dtype, activation)


@pytest.mark.parametrize("shape", [(1, 1, 1), (6, 12, 6), (7, 5, 8), (2, 3, 14)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("bias", [True, False])
def test_dense_shapes(rng, shape, bias):
    """Ones, exact tile multiples, more outputs than inputs, several column tiles; no bias."""
    check_dense(rng, shape, np.float64, "tanh", bias)


def test_dense_backward_without_input_gradient(rng):
    X, W, b = dense_data(rng, 8, 5, 3, np.float64)
    A = ref.dense_forward(X, W, b, "relu")
    dA = rng.standard_normal(A.shape)
    full = kc.dense_backward(dA, X, W, A, "relu")
    dX, dW, db = kc.dense_backward(dA, X, W, A, "relu", input_grad=False)
    assert dX is None
    np.testing.assert_array_equal(dW, full[1])
    np.testing.assert_array_equal(db, full[2])


@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_dense_backward_without_bias_gradient(rng, activation):
    """bias_grad=False: db is None (no column sums for a linear layer), dX and dW unchanged."""
    X, W, _ = dense_data(rng, 8, 5, 3, np.float64)
    A = ref.dense_forward(X, W, None, activation)
    dA = rng.standard_normal(A.shape)
    full = kc.dense_backward(dA, X, W, A, activation)
    dX, dW, db = kc.dense_backward(dA, X, W, A, activation, bias_grad=False)
    assert db is None
    np.testing.assert_array_equal(dX, full[0])
    np.testing.assert_array_equal(dW, full[1])


@pytest.mark.parametrize("activation", ["linear", "relu"])
@pytest.mark.parametrize("overwrite_dA", [False, True])
def test_dense_backward_overwrites_a_device_dA_only_when_allowed(rng, activation, overwrite_dA):
    X, W, b = dense_data(rng, 7, 5, 4, np.float64)
    A = ref.dense_forward(X, W, b, activation)
    dA = rng.standard_normal(A.shape)
    want = ref.dense_backward(dA, X, W, A, activation)
    dA_device = cuda.to_device(dA)
    got = kc.dense_backward(dA_device, X, W, A, activation, overwrite_dA=overwrite_dA)
    for g, w in zip(got, want):
        np.testing.assert_allclose(host(g, "device"), w, rtol=1e-12, atol=1e-14)
    dZ = ref.activation_backward(dA, A, activation)
    kept = overwrite_dA and activation != "linear"
    np.testing.assert_array_equal(dA_device.copy_to_host(), dZ if kept else dA)
    before = dA.copy()
    kc.dense_backward(dA, X, W, A, activation, overwrite_dA=overwrite_dA)
    np.testing.assert_array_equal(dA, before)  # a host dA: only its device copy is reused


def test_dense_relu_kink_and_none_activation():
    """relu' (0) = 0; activation None is linear."""
    X = np.array([[0.0, 1.0], [-1.0, 2.0]])
    W = np.array([[1.0], [0.0]])
    A = kc.dense_forward(X, W, activation="relu")
    dX, dW, db = kc.dense_backward(np.ones_like(A), X, W, A, "relu")
    np.testing.assert_array_equal(db, [0.0])
    np.testing.assert_array_equal(dX, np.zeros_like(X))
    np.testing.assert_array_equal(kc.dense_forward(X, W, None, None), X @ W)


@over_dtypes
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_activation_over_wide_range(dtype, activation):
    """W = I: A = g(X) on [-100, 100], saturation included, in the epilogue of the product."""
    X = np.linspace(-100, 100, 45).reshape(-1, 3).astype(dtype)
    A = kc.dense_forward(X, np.eye(3, dtype=dtype), activation=activation)
    want = ref.activation_forward(X.astype(np.float64), activation)
    rtol, atol = (4e-6, 1e-7) if dtype == np.float32 else (1e-13, 1e-15)
    np.testing.assert_allclose(A, want, rtol=rtol, atol=atol)


def test_dense_gradients_are_consistent(rng):
    """dX, dW, db of f = sum(A * R) agree with central differences of the CUDA forward pass."""
    X, W, b = dense_data(rng, 7, 5, 4, np.float64)
    R = rng.standard_normal((7, 4))

    def f():
        return float(np.sum(kc.dense_forward(X, W, b, "sigmoid") * R))

    A = kc.dense_forward(X, W, b, "sigmoid")
    dX, dW, db = kc.dense_backward(R, X, W, A, "sigmoid")
    for x, grad in ((X, dX), (W, dW), (b, db)):
        directional_check(f, x, grad, rng)


# --- batch normalization -------------------------------------------------------------------------

@over_dtypes
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("shape", [(20, 6), (2, 1), (5, 9)], ids=lambda s: "x".join(map(str, s)))
def test_batchnorm_matches_reference(rng, dtype, training, shape):
    """(20, 6): seven 3-row blocks of partial sums, summed in two more passes, two column tiles
    (the last partial); (2, 1): the smallest batch; running statistics updated alike."""
    X, gamma, beta, (rm, rv) = batchnorm_data(rng, *shape, dtype)
    rm_ref, rv_ref = rm.copy(), rv.copy()
    Y, cache = kc.batchnorm_forward(X, gamma, beta, rm, rv, training, decay=0.8, eps=1e-3)
    Y_ref, cache_ref = ref.batchnorm_forward(X, gamma, beta, rm_ref, rv_ref, training, 0.8, 1e-3)
    scale = np.sqrt(shape[0])
    assert_close(Y, Y_ref, dtype, scale=scale, what="Y")
    assert_close(rm, rm_ref, dtype, scale=scale, what="running_mean")
    assert_close(rv, rv_ref, dtype, scale=scale, what="running_var")
    assert cache.training == training and cache.X is X and cache.gamma is gamma
    assert_close(cache.mean, cache_ref.mean, dtype, scale=scale, what="cache.mean")
    assert_close(cache.invstd, cache_ref.invstd, dtype, scale=scale, what="cache.invstd")

    dY = rng.standard_normal(shape).astype(dtype)
    got = kc.batchnorm_backward(dY, cache)
    for name, g, w in zip(("dX", "dgamma", "dbeta"), got, ref.batchnorm_backward(dY, cache_ref)):
        assert_close(g, w, dtype, scale=4 * scale, what=name)


@over_dtypes
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_batchnorm_with_fused_activation_matches_reference(rng, dtype, activation):
    X, gamma, beta, (rm, rv) = batchnorm_data(rng, 7, 5, dtype)
    A, cache = kc.batchnorm_forward(X, gamma, beta, rm.copy(), rv.copy(), activation=activation)
    A_ref, cache_ref = ref.batchnorm_forward(X, gamma, beta, rm, rv, activation=activation)
    assert_close(A, A_ref, dtype, scale=3, what="A")
    assert cache.activation == activation and cache.A is A
    dA = rng.standard_normal(X.shape).astype(dtype)
    for name, g, w in zip(("dX", "dgamma", "dbeta"), kc.batchnorm_backward(dA, cache),
                          ref.batchnorm_backward(dA, cache_ref)):
        assert_close(g, w, dtype, scale=12, what=name)


def test_batchnorm_variance_is_accurate_for_a_large_mean(rng):
    """float32 data with mean 1000 and std 2: the shifted sums keep the variance accurate
    (sums of x and x^2 would lose it to cancellation)."""
    X, gamma, beta, (rm, rv) = batchnorm_data(rng, 20, 6, np.float32, mean=1000.0)
    _, cache = kc.batchnorm_forward(X, gamma, beta, rm, rv)
    exact = 1 / np.sqrt(X.astype(np.float64).var(axis=0) + 1e-5)
    np.testing.assert_allclose(cache.invstd, exact, rtol=1e-5)


def test_batchnorm_gradients_are_consistent(rng):
    """dX, dgamma, dbeta of f = sum(Y * R) (training) agree with central differences."""
    X, gamma, beta, (rm, rv) = batchnorm_data(rng, 6, 3, np.float64)
    R = rng.standard_normal(X.shape)

    def f():
        return float(np.sum(kc.batchnorm_forward(X, gamma, beta, rm.copy(), rv.copy())[0] * R))

    _, cache = kc.batchnorm_forward(X, gamma, beta, rm.copy(), rv.copy())
    dX, dgamma, dbeta = kc.batchnorm_backward(R, cache)
    for x, grad in ((X, dX), (gamma, dgamma), (beta, dbeta)):
        directional_check(f, x, grad, rng)


# --- softmax family and cross-entropy ------------------------------------------------------------

SOFTMAX_SHAPES = [(7, 11), (5, 3), (9, 1), (4, 40)]


@over_dtypes
@pytest.mark.parametrize("fn", ["softmax", "log_softmax", "hardmax"])
@pytest.mark.parametrize("shape", SOFTMAX_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_rowwise_matches_reference(rng, dtype, fn, shape):
    """Rows longer than their 4-thread group (11, 40 columns), shorter (3: a thread with no
    column; 1: a group of one), more row pairs than the 3 blocks (grid-stride over rows)."""
    Z = (3 * rng.standard_normal(shape)).astype(dtype)
    got, want = getattr(kc, fn)(Z), getattr(ref, fn)(Z)
    if fn == "hardmax":
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, want)
    else:
        assert_close(got, want, dtype, scale=1 if fn == "softmax" else 4, what=fn)


def test_hardmax_takes_the_first_maximum():
    Z = np.array([[1.0, 3.0, 3.0, 0.0, 3.0], [2.0, 2.0, 2.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0, 5.0]])
    np.testing.assert_array_equal(kc.hardmax(Z), ref.hardmax(Z))


@over_dtypes
def test_large_logits_stay_finite(dtype):
    Z = np.array([[1e4, -1e4, 0.0, 1e4 - 1], [-1e4, -1e4, -1e4, -1e4 + 2]], dtype)
    assert_close(kc.log_softmax(Z), ref.log_softmax(Z), dtype, scale=1e4)
    assert_close(kc.softmax(Z), ref.softmax(Z), dtype)
    loss, dZ = kc.softmax_cross_entropy(Z, np.array([1, 3]))
    loss_ref, dZ_ref = ref.softmax_cross_entropy(Z, np.array([1, 3]))
    np.testing.assert_allclose(loss, loss_ref, rtol=tolerance(dtype)[0])
    assert_close(dZ, dZ_ref, dtype)


def cross_entropy_targets(rng, m, C, dtype):
    """Class indices, one-hot rows and probability rows whose sums differ from 1."""
    y = rng.integers(0, C, m)
    Y = np.zeros((m, C), dtype)
    Y[np.arange(m), y] = 1
    P = (rng.dirichlet(np.ones(C), size=m) * rng.uniform(0.5, 2, (m, 1))).astype(dtype)
    return {"labels": y, "one-hot": Y, "probabilities": P}


@over_dtypes
@pytest.mark.parametrize("target", ["labels", "one-hot", "probabilities"])
@pytest.mark.parametrize("shape", [(13, 5), (7, 11), (1, 1)], ids=lambda s: "x".join(map(str, s)))
def test_cross_entropy_matches_reference(rng, dtype, target, shape):
    """(13, 5): 7 row pairs over 3 blocks, whose loss sums are reduced on the device."""
    Z = (3 * rng.standard_normal(shape)).astype(dtype)
    y = cross_entropy_targets(rng, *shape, dtype)[target]
    loss, dZ = kc.softmax_cross_entropy(Z, y)
    loss_ref, dZ_ref = ref.softmax_cross_entropy(Z, y)
    assert isinstance(loss, float)
    rtol, atol = tolerance(dtype, np.sqrt(shape[1]))
    np.testing.assert_allclose(loss, loss_ref, rtol=rtol, atol=atol)
    assert_close(dZ, dZ_ref, dtype, what="dZ")


@pytest.mark.parametrize("target", ["labels", "probabilities"])
def test_cross_entropy_gradient_is_consistent(rng, target):
    Z = 3 * rng.standard_normal((6, 4))
    y = cross_entropy_targets(rng, 6, 4, np.float64)[target]
    _, dZ = kc.softmax_cross_entropy(Z, y)
    directional_check(lambda: kc.softmax_cross_entropy(Z, y)[0], Z, dZ, rng)


# --- optimizer updates ---------------------------------------------------------------------------

OPTIMIZERS = {"sgd_update": (0, (0.1,)), "momentum_update": (1, (0.1, 0.9)),
              "rmsprop_update": (1, (0.01, 0.9, 1e-8)),
              "adam_update": (2, (3, 0.01, 0.9, 0.999, 1e-8))}


def optimizer_arrays(rng, kernel, shape, dtype):
    """p, g and the kernel's state arrays (non-negative, as second moments are)."""
    n_states = OPTIMIZERS[kernel][0]
    return [rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)] + [
        rng.random(shape).astype(dtype) for _ in range(n_states)]


@over_dtypes
@pytest.mark.parametrize("kernel", list(OPTIMIZERS))
@pytest.mark.parametrize("shape", [(37,), (5, 9)], ids=["flat37", "5x9"])
def test_optimizer_matches_reference(rng, dtype, kernel, shape):
    """In place, any shape; 37 and 45 elements over 24 threads: two rounds of the grid stride."""
    arrays = optimizer_arrays(rng, kernel, shape, dtype)
    expected = [a.copy() for a in arrays]
    hyper = OPTIMIZERS[kernel][1]
    assert getattr(kc, kernel)(*arrays, *hyper) is None
    getattr(ref, kernel)(*expected, *hyper)
    for name, got, want in zip(("p", "g", "state 1", "state 2"), arrays, expected):
        assert_close(got, want, dtype, what=name)


def test_optimizer_counts_even_without_the_finiteness_check(rng):
    """check_finite=False is accepted, but the update still counts NaN/inf in what it computes
    (a NaN gradient reaches it): NonFiniteError with nothing changed, as in the reference."""
    p, g, v = optimizer_arrays(rng, "momentum_update", (11,), np.float64)
    g[3] = np.nan
    before = [a.copy() for a in (p, g, v)]
    for impl in (kc, ref):
        with pytest.raises(NonFiniteError):
            impl.momentum_update(p, g, v, 0.1, 0.9, check_finite=False)
        for a, b in zip((p, g, v), before):
            np.testing.assert_array_equal(a, b)


# --- dropout -------------------------------------------------------------------------------------

@over_dtypes
def test_dropout_is_seeded_and_keeps_the_expected_fraction(dtype):
    X = np.linspace(1, 2, 1200, dtype=dtype).reshape(30, 40)
    rate = 0.3
    Y, mask = kc.dropout_forward(X, rate, 42)
    assert Y.dtype == mask.dtype == dtype and Y.shape == mask.shape == X.shape
    assert set(np.unique(mask)) == {0, 1}
    assert_close(Y, X * mask / dtype(1 - rate), dtype, what="Y")
    # keep fraction within 4 standard deviations of 1 - rate (binomial, 1200 draws)
    assert abs(mask.mean() - (1 - rate)) < 4 * np.sqrt(rate * (1 - rate) / X.size)
    Y2, mask2 = kc.dropout_forward(X, rate, 42)
    np.testing.assert_array_equal(mask2, mask)
    np.testing.assert_array_equal(Y2, Y)
    assert (kc.dropout_forward(X, rate, 43)[1] != mask).any()
    # each of the 24 threads (3 blocks of 8) draws its own stream: elements t, t + 24, ...
    streams = {tuple(mask.flat[t::24]) for t in range(24)}
    assert len(streams) == 24


def test_dropout_states_advance_between_calls():
    from numba.cuda.random import create_xoroshiro128p_states

    X = np.ones((6, 10))
    states = create_xoroshiro128p_states(16, seed=7)
    first = kc.dropout_forward(X, 0.5, states)[1]
    second = kc.dropout_forward(X, 0.5, states)[1]
    assert (first != second).any()
    again = create_xoroshiro128p_states(16, seed=7)
    np.testing.assert_array_equal(kc.dropout_forward(X, 0.5, again)[1], first)


def test_dropout_rate_zero_and_backward(rng):
    X = rng.standard_normal((4, 9))
    Y, mask = kc.dropout_forward(X, 0.0, 1)
    np.testing.assert_array_equal(mask, np.ones_like(X))
    np.testing.assert_array_equal(Y, X)
    _, mask = kc.dropout_forward(X, 0.25, 1)
    dY = rng.standard_normal(X.shape)
    np.testing.assert_allclose(kc.dropout_backward(dY, mask, 0.25), dY * mask / 0.75, rtol=1e-15)
    with pytest.raises(ValueError, match="rate"):
        kc.dropout_forward(X, 1.0, 1)


# --- the default launch sizes --------------------------------------------------------------------

def test_default_launch_sizes(rng, monkeypatch):
    """One small call of each kernel family with the shipped configuration (blocks of 256 and 128
    threads, 64 x 64 product tiles)."""
    for name, value in DEFAULTS.items():
        monkeypatch.setattr(config, name, value)
    dtype = np.float32
    X, W, b = dense_data(rng, 3, 4, 5, dtype)
    A = kc.dense_forward(X, W, b, "relu")
    assert_close(A, ref.dense_forward(X, W, b, "relu"), dtype, scale=2)
    for g, w in zip(kc.dense_backward(A, X, W, A, "relu"), ref.dense_backward(A, X, W, A, "relu")):
        assert_close(g, w, dtype, scale=2)
    Xb, gamma, beta, (rm, rv) = batchnorm_data(rng, 3, 4, dtype)
    Y, _ = kc.batchnorm_forward(Xb, gamma, beta, rm.copy(), rv.copy())
    assert_close(Y, ref.batchnorm_forward(Xb, gamma, beta, rm, rv)[0], dtype, scale=2)
    loss, dZ = kc.softmax_cross_entropy(A, np.array([0, 4, 2]))
    assert_close(dZ, ref.softmax_cross_entropy(A, np.array([0, 4, 2]))[1], dtype)
    p, g, m, v = optimizer_arrays(rng, "adam_update", (7,), dtype)
    expected = [a.copy() for a in (p, g, m, v)]
    kc.adam_update(p, g, m, v, 1, 0.1, 0.9, 0.999, 1e-8)
    ref.adam_update(*expected, 1, 0.1, 0.9, 0.999, 1e-8)
    assert_close(p, expected[0], dtype)
