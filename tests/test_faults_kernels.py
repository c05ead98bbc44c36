"""Bad input and faults at the kernel and optimizer API: each test is a regression test for a
defect that gave a wrong value or state with no error, or the wrong kind of error. Every backend
concerned runs: "numpy", "cpu" (serial and parallel paths) and "cuda" in Numba's CUDA simulator
with small arrays and launch sizes."""
import math

import numpy as np
import pytest
from numba import cuda

import fastnn
from fastnn import backend as fastnn_backend
from fastnn import config
from fastnn import kernels as K
from fastnn.errors import NonFiniteError
from fastnn.optim import GD, Adam, Momentum, RMSprop

BACKENDS = ["numpy", "cpu", "cuda"]
over_backends = pytest.mark.parametrize("backend", BACKENDS)
f4 = np.float32

#: Small CUDA launches (several blocks even for tiny arrays), as in test_cuda_kernels.
SMALL_CUDA = dict(CUDA_THREADS_PER_BLOCK=8, CUDA_MAX_BLOCKS=3, CUDA_GEMM_THREADS_X=2,
                  CUDA_GEMM_THREADS_Y=3, CUDA_GEMM_REGS_M=2, CUDA_GEMM_REGS_N=3,
                  CUDA_GEMM_TILE_K=2, CUDA_REDUCE_COLS=4, CUDA_REDUCE_ROW_THREADS=2,
                  CUDA_REDUCE_ROWS_PER_BLOCK=3, CUDA_SOFTMAX_THREADS=8,
                  CUDA_SOFTMAX_ROW_THREADS=4)

pytestmark = pytest.mark.filterwarnings("ignore::numba.NumbaWarning",
                                        "ignore:overflow encountered:RuntimeWarning",
                                        "ignore:invalid value encountered:RuntimeWarning")


@pytest.fixture(autouse=True)
def small_cuda_launches(monkeypatch):
    for name, value in SMALL_CUDA.items():
        monkeypatch.setattr(config, name, value)


@pytest.fixture(params=["serial", "parallel"])
def optim_path(request, monkeypatch):
    """The CPU optimizer kernels' serial path and (threshold 0) their parallel driver."""
    if request.param == "parallel":
        monkeypatch.setattr(config, "OPTIM_PARALLEL_MIN_ELEMENTS", 0)
    return request.param


def to(backend, a):
    """``a`` as an array of ``backend`` (device memory for "cuda")."""
    return fastnn_backend.get(backend).to_backend(a)


def host(a):
    return np.array(a.copy_to_host() if hasattr(a, "copy_to_host") else a)


def snapshot(*arrays):
    return [host(a).tobytes() for a in arrays]


# --- 1. overflow in the optimizer kernels is reported, with nothing written ---------------------

#: kernel -> (state count, hyperparameters after the state, a finite (p, g) pair that overflows)
OVERFLOWS = {
    "sgd_update": (0, (10.0,), (3e38, -3e38)),               # p - lr * g = 3.3e39
    "momentum_update": (1, (1e30, 0.9), (1.0, 1e10)),        # lr * v = 1e39
    "rmsprop_update": (1, (0.01, 0.9, 1e-8), (1.0, 1e30)),   # g^2 = inf
    "adam_update": (2, (1, 1e-3, 0.9, 0.999, 1e-8), (1.0, 1e30)),  # v = inf
}


@over_backends
@pytest.mark.parametrize("kernel", list(OVERFLOWS))
def test_update_that_overflows_raises_and_writes_nothing(backend, kernel, optim_path):
    n_states, hyper, (p_bad, g_bad) = OVERFLOWS[kernel]
    p = np.full(9, 0.5, f4)
    g = np.full(9, 0.25, f4)
    p[7], g[7] = p_bad, g_bad  # one element of the last block overflows
    states = [np.full(9, 0.125, f4) for _ in range(n_states)]
    before = snapshot(p, g, *states)
    with pytest.raises(NonFiniteError, match=rf"{kernel}: the update overflowed .* although the "
                                             r"inputs are finite .*lower the learning rate"):
        getattr(K, kernel)(p, g, *states, *hyper, backend=backend)
    assert snapshot(p, g, *states) == before


@over_backends
def test_adam_gradient_above_1e19_no_longer_freezes_a_weight(backend):
    """The issue's case: |g| > 1.8e19 used to write v = inf (on cpu/cuda), and that weight never
    moved again. Now nothing is written (or, where g^2 (1 - beta2) is computed without
    overflowing, the update is finite), and the next ordinary step moves every weight."""
    p, m, v = np.zeros(4, f4), np.zeros(4, f4), np.zeros(4, f4)
    g = np.array([1, 1, 1, 2e19], f4)
    try:
        K.adam_update(p, g, m, v, 1, 1e-3, 0.9, 0.999, 1e-8, backend=backend)
    except NonFiniteError:
        assert (p == 0).all() and (m == 0).all() and (v == 0).all()
    assert np.isfinite(v).all()
    before = p.copy()
    K.adam_update(p, np.ones(4, f4), m, v, 2, 1e-3, 0.9, 0.999, 1e-8, backend=backend)
    assert (p != before).all()


def test_check_finite_false_backend_call_still_all_or_nothing(optim_path):
    p = np.full(5, 3e38, f4)
    with pytest.raises(NonFiniteError):
        fastnn_backend.get("cpu").sgd_update(p, -p.copy(), 10.0, False)
    assert (p == f4(3e38)).all()


# --- 2. optimizer steps are all or nothing ------------------------------------------------------

OPTIMIZERS = {"GD": lambda b: GD(1e-3, backend=b),
              "Momentum": lambda b: Momentum(1e-3, backend=b),
              "RMSprop": lambda b: RMSprop(1e-3, backend=b),
              "Adam": lambda b: Adam(1e-3, backend=b)}


def bad_gradient(name, n):
    """A finite gradient whose update overflows (huge for GD/Momentum, squared for the others)."""
    g = np.full(n, 0.5, f4)
    g[-1] = 3e38 if name in ("GD", "Momentum") else 1e30
    return g


def optimizer_snapshot(opt, *params):
    d = opt.state_dict()
    return (d["t"], [host(p).tobytes() for p in params],
            {k: [a.tobytes() for a in v] for k, v in d["state"].items()})


@over_backends
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_step_unchecked_that_overflows_changes_nothing(backend, name, optim_path):
    """Sequential.fit's step over one flat buffer: on overflow, p, the state and t stay bit for
    bit, NonFiniteError says so, and the next good step is the one a fresh copy would make."""
    opt = OPTIMIZERS[name](backend)
    if name in ("GD", "Momentum"):
        opt.lr = 100.0
    p = to(backend, np.linspace(-1, 1, 11).astype(f4))
    good = to(backend, np.full(11, 0.25, f4))
    for _ in range(2):
        opt.step_unchecked(p, good)
    before = optimizer_snapshot(opt, p)
    saved, p_saved = opt.state_dict(), host(p).copy()
    with pytest.raises(NonFiniteError, match=rf"{name}.step_unchecked: the update overflowed.*"
                                             r"nothing was updated"):
        opt.step_unchecked(p, to(backend, bad_gradient(name, 11)))
    assert optimizer_snapshot(opt, p) == before
    # the next step continues from the state before the failure
    twin = OPTIMIZERS[name](backend)
    twin.load_state_dict(saved)
    q = to(backend, p_saved)
    opt.step_unchecked(p, good)
    twin.step_unchecked(q, good)
    assert host(p).tobytes() == host(q).tobytes() and opt.t == twin.t == 3


@over_backends
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_step_over_a_list_is_all_or_nothing(backend, name):
    """The second parameter's update overflows: the first parameter, already updated by its
    kernel, is put back (from device or host memory); the state and t are as before."""
    opt = OPTIMIZERS[name](backend)
    if name in ("GD", "Momentum"):
        opt.lr = 100.0
    params = [np.linspace(0, 1, 6).astype(f4).reshape(2, 3), np.ones(5, f4)]
    grads = [np.full((2, 3), 0.5, f4), np.full(5, 0.5, f4)]
    if backend == "cuda":  # one parameter in device memory, one on the host
        params[0] = cuda.to_device(params[0])
    opt.step(params, grads)
    before = optimizer_snapshot(opt, *params)
    with pytest.raises(NonFiniteError, match=rf"{name}.step, params\[1\]: the update overflowed"):
        opt.step(params, [grads[0], bad_gradient(name, 5)])
    assert optimizer_snapshot(opt, *params) == before
    nan = [grads[0], np.array([0.5, np.nan, 0.5, 0.5, 0.5], f4)]
    with pytest.raises(ValueError, match=r"grads\[1\] contains NaN or inf; nothing was updated"):
        opt.step(params, nan)
    assert optimizer_snapshot(opt, *params) == before


@over_backends
def test_step_unchecked_with_a_nan_gradient_names_it(backend):
    opt = Adam(0.1, backend=backend)
    p = to(backend, np.ones(4, f4))
    g = np.ones(4, f4)
    g[2] = np.nan
    with pytest.raises(NonFiniteError, match="Adam.step_unchecked: NaN or inf in g; nothing"):
        opt.step_unchecked(p, to(backend, g))
    assert (host(p) == 1).all() and opt.t == 0


@over_backends
def test_state_dict_round_trip_after_double_buffered_steps(backend):
    """The state flips between two buffers at each step: state_dict() gives the current one,
    and a load continues bit for bit (an odd and an even number of steps)."""
    for steps in (3, 4):
        opt = Adam(0.01, backend=backend)
        p = to(backend, np.linspace(-1, 1, 7).astype(f4))
        grads = [to(backend, np.sin(np.arange(7) + k).astype(f4)) for k in range(steps + 2)]
        for g in grads[:steps]:
            opt.step_unchecked(p, g)
        twin = Adam(0.01, backend=backend)
        twin.load_state_dict(opt.state_dict())
        q = to(backend, host(p))
        for g in grads[steps:]:
            opt.step_unchecked(p, g)
            twin.step_unchecked(q, g)
        assert host(p).tobytes() == host(q).tobytes()
        assert optimizer_snapshot(opt)[2] == optimizer_snapshot(twin)[2]


@over_backends
def test_training_step_that_overflows_keeps_the_parameters(backend):
    """Sequential.train_on_batch with a learning rate that makes Adam's update overflow: the
    step raises TrainingDivergedError and the model keeps its parameters and optimizer state."""
    from fastnn.nn import Dense, Sequential

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((8, 3)).astype(f4), np.arange(8) % 2
    model = Sequential([Dense(2)], backend=backend).build(3)
    opt = GD(1e-3, backend=backend)
    model.train_on_batch(X, y, opt)
    before = model.get_weights()[0].tobytes(), optimizer_snapshot(opt)
    opt.lr = 3e38
    with pytest.raises(fastnn.TrainingDivergedError):
        model.train_on_batch(X * f4(1e3), y, opt)
    assert (model.get_weights()[0].tobytes(), optimizer_snapshot(opt)) == before


@over_backends
def test_eps_that_rounds_to_zero_is_refused(backend):
    """eps = 1e-50 is 0 in float32: an element with m = v = 0 gave 0 / 0, reported as an
    overflow. (A learning rate that small is accepted: its update is below the parameters'
    resolution anyway, and a decaying schedule gets there.)"""
    p = np.ones(3, f4)
    with pytest.raises(ValueError, match=r"adam_update: eps = 1e-50 is 0 in float32"):
        K.adam_update(p, np.zeros(3, f4), np.zeros(3, f4), np.zeros(3, f4), 1, 0.1, 0.9, 0.999,
                      1e-50, backend=backend)
    opt = RMSprop(0.1, eps=1e-50, backend=backend)
    with pytest.raises(ValueError, match=r"RMSprop.step: eps = 1e-50 is 0 in float32"):
        opt.step([p], [np.zeros(3, f4)])
    assert (p == 1).all() and opt.t == 0
    opt.step([np.ones(3)], [np.zeros(3)])  # float64 holds it
    K.sgd_update(p, np.ones(3, f4), 1e-50, backend=backend)  # lr: a no-op in float32, no error
    assert (p == 1).all()
    opt = Adam(0.1, backend=backend)
    opt.step([p], [np.ones(3, f4)])
    opt.eps = 1e-50  # later (a tuner sets it): refused before the model's step starts
    with pytest.raises(ValueError, match="eps = 1e-50"):
        opt.check_hyperparameters()


def test_step_count_too_large_for_a_float_is_a_value_error():
    with pytest.raises(ValueError, match=r"t must be at most 2\*\*1023"):
        K.adam_update(np.ones(2), np.ones(2), np.zeros(2), np.zeros(2), 2 ** 1100, 0.1, 0.9,
                      0.999, 1e-8)


@over_backends
def test_step_refuses_parameters_that_overlap(backend):
    """A parameter that shares memory with another, or with another position's gradient, was
    read after an earlier update moved it: wrong values, no error."""
    w = np.ones(4, f4)
    with pytest.raises(ValueError, match=r"params\[0\] and params\[1\] share memory"):
        GD(0.1, backend=backend).step([w, w[2:]], [np.ones(4, f4), np.ones(2, f4)])
    v = np.ones(4, f4)
    with pytest.raises(ValueError, match=r"grads\[1\] and params\[0\] share memory"):
        GD(0.1, backend=backend).step([w, v], [np.ones(4, f4), w])
    assert (w == 1).all() and (v == 1).all()
    buf = np.ones(8, f4)
    GD(0.5, backend=backend).step([buf[:4], buf[4:]], [np.ones(4, f4), np.ones(4, f4)])
    assert (buf == 0.5).all()


# --- 3. dense_backward: overwrite_dA is a permission ---------------------------------------------

@over_backends
@pytest.mark.parametrize("activation", ["linear", "relu"])
@pytest.mark.parametrize("bias_grad", [True, False])
def test_overwrite_dA_with_a_read_only_dA(backend, activation, bias_grad):
    rng = np.random.default_rng(1)
    X, W = rng.standard_normal((5, 4)).astype(f4), rng.standard_normal((4, 3)).astype(f4)
    A = K.dense_forward(X, W, None, activation, backend="numpy")
    dA = rng.standard_normal((5, 3)).astype(f4)
    want = K.dense_backward(dA.copy(), X, W, A, activation, bias_grad=bias_grad, backend="numpy")
    frozen = dA.copy()
    frozen.flags.writeable = False
    got = K.dense_backward(frozen, X, W, A, activation, bias_grad=bias_grad, overwrite_dA=True,
                           backend=backend)
    for a, b in zip(got, want):
        if b is None:
            assert a is None
        else:
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert frozen.tobytes() == dA.tobytes()


@over_backends
@pytest.mark.parametrize("alias", ["X", "W"])
def test_overwrite_dA_not_taken_when_dA_is_another_input(backend, alias):
    """dA given as X (or W) with overwrite_dA: dZ written over it while X.T @ dZ still read it
    (cpu: wrong dW, no error). The permission is not taken then."""
    rng = np.random.default_rng(2)
    X, W = rng.standard_normal((4, 4)).astype(f4), rng.standard_normal((4, 4)).astype(f4)
    A = np.maximum(X @ W, 0)
    dA = X if alias == "X" else W
    want = K.dense_backward(dA.copy(), X.copy(), W.copy(), A, "relu", backend="numpy")
    got = K.dense_backward(dA, X, W, A, "relu", overwrite_dA=True, backend=backend)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


# --- 4. batch norm: no memory shared with the running statistics ---------------------------------

def bn_inputs(n=4):
    rng = np.random.default_rng(3)
    X = np.abs(rng.standard_normal((6, n))).astype(f4) + 1
    return X, np.ones(n, f4), np.zeros(n, f4), np.zeros(n, f4), np.ones(n, f4)


@over_backends
@pytest.mark.parametrize("case", ["mean is var", "gamma is var", "beta overlaps mean",
                                  "X row is var", "out overlaps var"])
def test_batchnorm_refuses_memory_shared_with_running_statistics(backend, case):
    X, gamma, beta, rm, rv = bn_inputs()
    out, buf = None, np.ones(40, f4)
    if case == "mean is var":
        rm, names = rv, ("running_mean", "running_var")
    elif case == "gamma is var":
        gamma, names = rv, ("running_var", "gamma")
    elif case == "beta overlaps mean":
        beta, rm, names = buf[2:6], buf[:4], ("running_mean", "beta")
    elif case == "X row is var":
        rv, names = X[2], ("running_var", "X")
    else:
        out, rv, names = buf[:24].reshape(6, 4), buf[20:24], ("running_var", "out")
    before = snapshot(X, gamma, beta, rm, rv, buf)
    with pytest.raises(ValueError, match=rf"batchnorm_forward: {names[0]} and {names[1]} share "
                                         "memory"):
        K.batchnorm_forward(X, gamma, beta, rm, rv, out=out, backend=backend)
    assert snapshot(X, gamma, beta, rm, rv, buf) == before


def test_batchnorm_refuses_device_running_statistics_that_overlap():
    X, gamma, beta, _, _ = bn_inputs()
    d = cuda.to_device(np.ones(8, f4))
    for rm, rv in [(d[:4], d[:4]), (d[:4], d[2:6])]:
        with pytest.raises(ValueError, match="running_mean and running_var share memory"):
            K.batchnorm_forward(X, gamma, beta, rm, rv, backend="cuda")
        assert (d.copy_to_host() == 1).all()
    d2 = cuda.to_device(np.zeros(8, f4))
    K.batchnorm_forward(X, gamma, beta, d2[:4], d2[4:], backend="cuda")  # disjoint: fine
    with pytest.raises(ValueError, match="running_var and X share memory"):
        Xd = cuda.to_device(X)
        K.batchnorm_forward(Xd, gamma, beta, np.zeros(4, f4), Xd[1], backend="cuda")


# --- 5. log_softmax reports the overflow ---------------------------------------------------------

@over_backends
def test_log_softmax_below_the_dtype_range_raises(backend, parallel_path):
    Z = np.array([[3e38, -3e38], [1, 2]], f4)
    with pytest.raises(NonFiniteError, match="log_softmax: the result overflowed"):
        K.log_softmax(Z, backend=backend)
    out = np.full((2, 2), 7, f4)
    with pytest.raises(NonFiniteError):
        K.log_softmax(Z, out=out, backend=backend)
    np.testing.assert_allclose(K.log_softmax(Z[1:], backend=backend)[0],
                               [-math.log1p(math.e), -math.log1p(1 / math.e)], rtol=1e-6)


@over_backends
def test_cross_entropy_of_extreme_logits_agrees_across_backends(backend, parallel_path):
    """The loss is a float64: lse - z of 6e38 is held there. numpy returned NaN (0 * -inf) or
    inf with no error; cpu raised for labels (float32 lse); all now return the same value."""
    Z = np.array([[3e38, -3e38], [1, 2]], f4)
    lse = math.log(math.e + math.e ** 2)
    for y, want in [(np.array([0, 1]), (0 + lse - 2) / 2),
                    (np.array([1, 1]), (6.0000000109955e38 + lse - 2) / 2),
                    (np.array([[0.5, 0.5], [0, 1]], f4), (3.0000000054977e38 + lse - 2) / 2)]:
        loss, dZ = K.softmax_cross_entropy(Z, y, backend=backend)
        assert loss == pytest.approx(want, rel=1e-6)
        assert np.isfinite(dZ).all()


# --- 6. batch norm backends refuse to train on one row -------------------------------------------

@over_backends
def test_batchnorm_backend_refuses_one_row_in_training(backend):
    X, gamma, beta, rm, rv = bn_inputs()
    bn = fastnn_backend.get(backend).batchnorm_forward
    out = np.full((1, 4), 7, f4)
    with pytest.raises(ValueError, match=r"batchnorm_forward: training needs a batch of at least "
                                         r"2 rows .*shape \(1, 4\)"):
        bn(X[:1], gamma, beta, rm, rv, True, 0.9, 1e-5, "linear", out)
    assert (rm == 0).all() and (rv == 1).all() and (out == 7).all()
    Y, _ = bn(X[:1], gamma, beta, rm, rv, False, 0.9, 1e-5, "linear", None)  # inference: fine
    np.testing.assert_allclose(host(Y), (X[:1] - 0) / np.sqrt(1 + 1e-5), rtol=1e-6)


# --- 7. more of the same kinds -------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_device_arrays_given_to_a_host_backend(backend):
    """A CUDA device array given to the numpy or cpu backend: a TypeError naming it (was a Numba
    TypingError, a TypeError about FakeCUDAArray, or a result by accident)."""
    X = np.ones((3, 4), f4)
    dX = cuda.to_device(X)
    message = "is a CUDA device array, but this backend works on host"
    with pytest.raises(TypeError, match=f"dense_forward: X {message}"):
        K.dense_forward(dX, np.ones((4, 2), f4), backend=backend)
    with pytest.raises(TypeError, match=f"softmax: out {message}"):
        K.softmax(X, out=cuda.to_device(X), backend=backend)
    with pytest.raises(TypeError, match=f"batchnorm_forward: running_var {message}"):
        K.batchnorm_forward(X, np.ones(4, f4), np.zeros(4, f4), np.zeros(4, f4),
                            cuda.to_device(np.ones(4, f4)), backend=backend)
    p = cuda.to_device(np.ones(4, f4))
    with pytest.raises(TypeError, match=f"sgd_update: p {message}"):
        K.sgd_update(p, np.ones(4, f4), 0.1, backend=backend)


def test_device_out_of_the_wrong_dtype_or_shape_or_shared():
    """Device ``out``: a wrong dtype is a TypeError as on the host (was ValueError), and an out
    sharing memory with a device input is refused (was not checked)."""
    X = np.ones((3, 4), f4)
    with pytest.raises(TypeError, match=r"softmax: out must have dtype float32"):
        K.softmax(X, out=cuda.to_device(np.ones((3, 4))), backend="cuda")
    with pytest.raises(ValueError, match=r"softmax: out must have shape \(3, 4\)"):
        K.softmax(X, out=cuda.to_device(np.ones((4, 3), f4)), backend="cuda")
    dX = cuda.to_device(X)
    with pytest.raises(ValueError, match="activation_forward: out shares memory with an input"):
        K.activation_forward(dX, "relu", out=dX, backend="cuda")
    d = cuda.to_device(np.ones(12, f4))
    with pytest.raises(ValueError, match="the arrays of out share memory"):
        K.batchnorm_backward(
            np.ones((3, 4), f4),
            K.batchnorm_forward(X, np.ones(4, f4), np.zeros(4, f4), np.zeros(4, f4),
                                np.ones(4, f4), backend="cuda")[1],
            out=(None, d[:4], d[2:6]), backend="cuda")


@over_backends
def test_batchnorm_statistics_beyond_float32_agree_across_backends(backend):
    """numpy computed the statistics in float32: a column of 3e38 gave NaN (NonFiniteError),
    eps = 1e-50 gave 0 * inf, and values of 1e20 gave Y = 0 with running_var = inf and no
    error. The statistics are now float64 on every backend."""
    X = np.full((4, 2), 3e38, f4)
    Y, _ = K.batchnorm_forward(X, np.ones(2, f4), np.zeros(2, f4), np.zeros(2, f4),
                               np.ones(2, f4), backend=backend)
    assert (host(Y) == 0).all()
    X = np.ones((4, 3), f4)
    Y, _ = K.batchnorm_forward(X, np.ones(3, f4), np.zeros(3, f4), np.zeros(3, f4),
                               np.ones(3, f4), eps=1e-50, backend=backend)
    assert (host(Y) == 0).all()
    X = np.array([[1e20], [-1e20]], f4)
    rm, rv = np.zeros(1, f4), np.ones(1, f4)
    with pytest.raises(NonFiniteError, match="overflowed"):
        K.batchnorm_forward(X, np.ones(1, f4), np.zeros(1, f4), rm, rv, backend=backend)
    assert rm[0] == 0 and rv[0] == 1


def test_reference_running_average_that_overflows_writes_nothing():
    """The running variance stores var * m / (m - 1): from float64 statistics it can exceed
    float32 (the numpy backend wrote inf)."""
    X = np.array([[1.4e19], [-1.4e19]], f4)  # var 1.96e38, unbiased 3.9e38
    rm, rv = np.zeros(1, f4), np.ones(1, f4)
    with pytest.raises(NonFiniteError):
        fastnn_backend.get("numpy").batchnorm_forward(X, np.ones(1, f4), np.zeros(1, f4), rm, rv,
                                                      True, 0.0)
    assert rm[0] == 0 and rv[0] == 1


@over_backends
def test_sigmoid_of_large_negative_values(backend):
    """The CUDA sigmoid took exp(-z): in the simulator exp(1e30) raised OverflowError."""
    Z = np.array([[-1e30, -100.0, 0.0, 100.0]], f4)
    want = [0.0, 1 / (1 + math.exp(100)), 0.5, 1.0]
    np.testing.assert_allclose(host(K.activation_forward(Z, "sigmoid", backend=backend))[0], want,
                               rtol=1e-6, atol=1e-30)
    A = K.dense_forward(np.ones((1, 1), f4), np.full((1, 2), -1e30, f4), None, "sigmoid",
                        backend=backend)
    assert (host(A) < 1e-30).all()  # (cpu: its float32 exp saturates at 2.4e38)


@over_backends
def test_step_with_no_parameters_is_refused(backend):
    """step([], []) fixed the state to zero parameters and counted a step: the next real step
    then failed."""
    opt = Adam(0.1, backend=backend)
    with pytest.raises(ValueError, match="Adam.step: params is empty"):
        opt.step([], [])
    assert opt.t == 0
    w = np.ones(2, f4)
    opt.step([w], [np.ones(2, f4)])
    assert opt.t == 1 and (w < 1).all()


def test_schedule_counter_too_large_is_a_value_error():
    """A counter beyond 2**63 raised OverflowError from the float formulas."""
    from fastnn.optim import schedules

    for schedule in (schedules.inverse_time(0.2, 1.0), schedules.staircase(0.1, 0.5, 1),
                     schedules.inverse_sqrt(0.1)):
        with pytest.raises(ValueError, match=r"must be < 2\*\*63"):
            schedule(10 ** 400)
        assert schedule(2 ** 62) >= 0.0


# --- found by the lead's pass ---------------------------------------------------------------

@pytest.mark.parametrize("t, error", [(-1, ValueError), (2.5, ValueError), (True, ValueError)])
def test_an_optimizer_step_count_set_by_hand_is_checked(t, error):
    p, g = np.ones(4, f4), np.full(4, 0.5, f4)
    adam = Adam(0.1)
    adam.t = t
    with pytest.raises(error, match="t \\(the steps taken\\) must be an integer >= 0"):
        adam.step([p], [g])
    np.testing.assert_array_equal(p, np.ones(4, f4))


def test_the_base_optimizer_class_says_to_use_a_subclass():
    from fastnn.optim import Optimizer
    with pytest.raises(TypeError, match="Optimizer is the base class"):
        Optimizer(lr=0.1)


def test_two_threads_stepping_one_optimizer_lose_no_step():
    import threading
    p, g = np.zeros(1000, f4), np.full(1000, 0.001, f4)
    gd = GD(1.0)

    def run():
        for _ in range(200):
            gd.step([p], [g])
    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert gd.t == 400
    np.testing.assert_allclose(p, -0.4, rtol=1e-4)


def test_batchnorm_eps_must_be_finite_and_a_hand_built_cache_must_fit():
    X = np.random.default_rng(0).standard_normal((4, 3)).astype(f4)
    vectors = [np.ones(3, f4), np.zeros(3, f4), np.zeros(3, f4), np.ones(3, f4)]
    with pytest.raises(ValueError, match="eps must be a number in"):
        K.batchnorm_forward(X, *vectors, eps=math.inf)
    _, cache = K.batchnorm_forward(X, *vectors)
    short = cache._replace(gamma=cache.gamma[:2])
    with pytest.raises(ValueError, match=r"cache.gamma must have shape \(3,\)"):
        K.batchnorm_backward(np.ones_like(X), short)
    with pytest.raises(TypeError, match="cache.invstd must be an array"):
        K.batchnorm_backward(np.ones_like(X), cache._replace(invstd=[1.0, 1.0, 1.0]))
