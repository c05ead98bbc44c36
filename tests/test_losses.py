"""Sigmoid cross-entropy and mean squared error on every backend ("numpy", "cpu", and "cuda" in
Numba's CUDA simulator with small launches): against float64 formulas written here the way
PyTorch defines ``binary_cross_entropy_with_logits`` and ``mse_loss`` (and against PyTorch when it
is installed), 1-D and 2-D shapes, probabilities as targets, extreme logits, finite differences,
float32, ``out=``, the CPU's parallel path, ``Pending`` losses inside the CUDA ``kernel_scope``,
and bad input."""
import math

import numpy as np
import pytest
from helpers import assert_close, assert_gradient, over_dtypes
from numba import cuda
from scipy.special import expit

from fastnn import config
from fastnn import kernels as K
from fastnn.errors import NonFiniteError

BACKENDS = ["numpy", "cpu", "cuda"]
over_backends = pytest.mark.parametrize("backend", BACKENDS)
LOSSES = ["sigmoid_cross_entropy", "mean_squared_error"]
over_losses = pytest.mark.parametrize("fn", LOSSES)
#: Shapes small enough for the simulator: one value, one row, a column, 1-D, and 39 values over
#: the 3 blocks of 8 threads below (the grid-stride loop goes round twice).
SHAPES = [(1,), (7,), (1, 1), (6, 1), (5, 3), (13, 3)]
over_shapes = pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))

pytestmark = pytest.mark.filterwarnings("ignore::numba.NumbaWarning",
                                        "ignore:overflow encountered:RuntimeWarning",
                                        "ignore:invalid value encountered:RuntimeWarning")


@pytest.fixture(autouse=True)
def small_cuda_launches(monkeypatch):
    """Blocks of 8 threads, at most 3 of them: several blocks and the last-block reduction of
    the loss even for tiny arrays (as in test_cuda_kernels)."""
    monkeypatch.setattr(config, "CUDA_THREADS_PER_BLOCK", 8)
    monkeypatch.setattr(config, "CUDA_MAX_BLOCKS", 3)


# --- independent formulas (float64) --------------------------------------------------------------

def bce_formula(Z, y):
    """PyTorch's binary_cross_entropy_with_logits, reduction "mean", in float64: the loss terms
    (1 - y) z + log(1 + exp(-z)) (logaddexp keeps them finite), the gradient (sigmoid(z) - y) / N
    with SciPy's sigmoid."""
    Z, y = np.asarray(Z, np.float64), np.asarray(y, np.float64)
    loss = np.mean((1 - y) * Z + np.logaddexp(0.0, -Z))
    return float(loss), (expit(Z) - y) / Z.size


def mse_formula(Z, Y):
    """PyTorch's mse_loss, reduction "mean", in float64: mean((z - y)^2), gradient 2 (z - y) / N."""
    Z, Y = np.asarray(Z, np.float64), np.asarray(Y, np.float64)
    return float(np.mean((Z - Y) ** 2)), 2 * (Z - Y) / Z.size


FORMULAS = {"sigmoid_cross_entropy": bce_formula, "mean_squared_error": mse_formula}


def data(rng, fn, shape, dtype=np.float64):
    """Logits or predictions (std 3) and targets: probabilities in [0, 1] for the cross-entropy
    (0/1 labels among them), any numbers for the squared error."""
    Z = (3 * rng.standard_normal(shape)).astype(dtype)
    if fn == "sigmoid_cross_entropy":
        y = rng.random(shape)
        y.flat[::3] = np.round(y.flat[::3])  # some 0/1 labels
    else:
        y = 2 * rng.standard_normal(shape)
    return Z, y.astype(dtype)


def call(fn, Z, y, backend, **kwargs):
    loss, dZ = getattr(K, fn)(Z, y, backend=backend, **kwargs)
    assert isinstance(loss, float)
    assert isinstance(dZ, np.ndarray) and dZ.shape == np.shape(Z) and dZ.dtype == np.dtype(Z.dtype)
    return loss, dZ


def assert_matches(fn, Z, y, loss, dZ, dtype):
    want_loss, want_dZ = FORMULAS[fn](Z, y)
    rtol, atol = (1e-12, 1e-14) if np.dtype(dtype) == np.float64 else (2e-6, 1e-7)
    assert loss == pytest.approx(want_loss, rel=rtol, abs=atol)
    assert_close(dZ, want_dZ, dtype, scale=1 / Z.size, what="dZ")


# --- against the formulas ------------------------------------------------------------------------

@over_backends
@over_losses
@over_dtypes
@over_shapes
def test_matches_formula(rng, backend, fn, dtype, shape):
    Z, y = data(rng, fn, shape, dtype)
    loss, dZ = call(fn, Z, y, backend)
    assert_matches(fn, Z, y, loss, dZ, dtype)


@over_losses
@over_dtypes
@pytest.mark.parametrize("shape", [(4096, 7), (40000,), (333, 1)], ids=str)
@pytest.mark.usefixtures("parallel_path")
def test_cpu_parallel_path_matches_formula(rng, fn, dtype, shape):
    """Row blocks on the threads (threshold 0), their float64 sums added."""
    Z, y = data(rng, fn, shape, dtype)
    loss, dZ = call(fn, Z, y, "cpu")
    assert_matches(fn, Z, y, loss, dZ, dtype)


@over_backends
@over_losses
def test_column_targets_may_be_1d(rng, backend, fn):
    """Z (m, 1) takes its targets as (m, 1) or (m,), with the same results; dZ is (m, 1)."""
    Z, y = data(rng, fn, (6, 1))
    loss, dZ = call(fn, Z, y, backend)
    loss_1d, dZ_1d = call(fn, Z, y[:, 0], backend)
    assert loss_1d == loss
    np.testing.assert_array_equal(dZ_1d, dZ)


@over_losses
def test_1d_and_2d_give_the_same_numbers(rng, fn):
    """The loss is a mean over all values: Z (m,) equals Z (m, 1) and (1, m) (cpu)."""
    Z, y = data(rng, fn, (9,))
    loss, dZ = call(fn, Z, y, "cpu")
    for shape in [(9, 1), (1, 9), (3, 3)]:
        loss_2d, dZ_2d = call(fn, Z.reshape(shape), y.reshape(shape), "cpu")
        assert loss_2d == pytest.approx(loss, rel=1e-15)
        np.testing.assert_allclose(dZ_2d.reshape(-1), dZ, rtol=1e-15)


@over_backends
@over_losses
@over_dtypes
def test_matches_torch(rng, backend, fn, dtype):
    """The same loss and gradient as PyTorch's functional losses with autograd."""
    torch = pytest.importorskip("torch")
    for shape in [(8,), (5, 3)]:
        Z, y = data(rng, fn, shape, dtype)
        z = torch.from_numpy(Z.copy()).requires_grad_()
        torch_fn = (torch.nn.functional.binary_cross_entropy_with_logits
                    if fn == "sigmoid_cross_entropy" else torch.nn.functional.mse_loss)
        want = torch_fn(z, torch.from_numpy(y))
        want.backward()
        loss, dZ = call(fn, Z, y, backend)
        rtol = 1e-12 if np.dtype(dtype) == np.float64 else 1e-5
        assert loss == pytest.approx(want.item(), rel=rtol, abs=rtol)
        assert_close(dZ, z.grad.numpy(), dtype, scale=1 / Z.size, what="dZ")


# --- stability and fixed values ------------------------------------------------------------------

@over_backends
@over_dtypes
@pytest.mark.parametrize("shape", [(7,), (7, 1)], ids=["1d", "2d"])
def test_extreme_logits_give_finite_values(backend, dtype, shape):
    """|z| = 1e4 with 0 and 1 labels and a probability: terms 0, 0, 1e4, 1e4, 7e3 (and log 2,
    89 + log1p(e^-89)), no overflow, and the gradient saturates at (sigmoid(z) - y) / N in
    {0, +-1/N, 0.7/N}."""
    Z = np.array([1e4, -1e4, 1e4, -1e4, 1e4, 0.0, -89.0], dtype).reshape(shape)
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.3, 0.5, 1.0], dtype).reshape(shape)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # (numpy: no warning)
        loss, dZ = call("sigmoid_cross_entropy", Z, y, backend)
    y3 = np.float64(dtype(0.3))  # 0.3 as the dtype holds it
    want_terms = [0.0, 0.0, 1e4, 1e4, 1e4 * (1 - y3), math.log(2.0),
                  89.0 + math.log1p(math.exp(-89.0))]
    assert np.isfinite(loss)
    assert loss == pytest.approx(sum(want_terms) / 7, rel=1e-6)
    assert np.isfinite(dZ).all()
    want_dZ = np.array([0.0, 0.0, 1.0, -1.0, 1 - y3, 0.0, expit(-89.0) - 1.0]) / 7
    np.testing.assert_allclose(dZ.reshape(-1), want_dZ, rtol=1e-6, atol=1e-12)
    assert_matches("sigmoid_cross_entropy", Z, y, loss, dZ, dtype)


@over_backends
def test_perfect_predictions_have_zero_loss(backend):
    Z = np.array([[1e4, -1e4], [50.0, -50.0]])
    loss, dZ = call("sigmoid_cross_entropy", Z, np.array([[1.0, 0.0], [1.0, 0.0]]), backend)
    assert 0 <= loss < 1e-21 and np.abs(dZ).max() < 1e-21
    Y = np.array([[1.5, -2.0], [0.0, 3.0]])
    loss, dZ = call("mean_squared_error", Y.copy(), Y, backend)
    assert loss == 0.0 and not dZ.any()


@over_backends
def test_fixed_values(backend):
    """Values worked out by hand: BCE of z = 0 is log 2 for any y, gradient (1/2 - y) / N;
    MSE of differences 1, -2, 3, 0 is 14 / 4, gradient 2 d / 4."""
    loss, dZ = call("sigmoid_cross_entropy", np.zeros(4), np.array([0.0, 1.0, 0.25, 1.0]),
                    backend)
    assert loss == pytest.approx(math.log(2.0), rel=1e-15)
    np.testing.assert_allclose(dZ, [0.125, -0.125, 0.0625, -0.125], rtol=1e-15)
    loss, dZ = call("mean_squared_error", np.array([[1.0, 0.0], [4.0, 2.0]]),
                    np.array([[0.0, 2.0], [1.0, 2.0]]), backend)
    assert loss == 3.5
    np.testing.assert_array_equal(dZ, [[0.5, -1.0], [1.5, 0.0]])


# --- finite differences --------------------------------------------------------------------------

@over_backends
@over_losses
@pytest.mark.parametrize("shape", [(5,), (4, 3)], ids=["1d", "2d"])
def test_gradient_by_finite_differences(rng, backend, fn, shape):
    """Central differences of the float64 loss: entry by entry, and (fewer calls in the slow
    simulator) along random directions V for "cuda": <dZ, V> = (f(Z + eps V) - f(Z - eps V)) /
    (2 eps)."""
    Z, y = data(rng, fn, shape)

    def f():
        return getattr(K, fn)(Z, y, backend=backend)[0]

    dZ = getattr(K, fn)(Z, y, backend=backend)[1]
    if backend != "cuda":
        assert_gradient(dZ, f, Z, "dZ")
        return
    Z0, eps = Z.copy(), 1e-6
    for _ in range(2):
        V = rng.standard_normal(Z.shape)
        Z[...] = Z0 + eps * V
        up = f()
        Z[...] = Z0 - eps * V
        down = f()
        Z[...] = Z0
        assert (up - down) / (2 * eps) == pytest.approx(np.sum(dZ * V), rel=1e-6, abs=1e-9)


# --- out= ----------------------------------------------------------------------------------------

@over_backends
@over_losses
@pytest.mark.parametrize("shape", [(7,), (5, 3), (6, 1)], ids=str)
def test_writes_dZ_into_out(rng, backend, fn, shape):
    Z, y = data(rng, fn, shape, np.float32)
    loss, dZ = call(fn, Z, y, backend)
    out = np.full(shape, np.nan, np.float32)
    targets = [y, y[:, 0]] if shape == (6, 1) else [y]
    for target in targets:
        loss_out, dZ_out = call(fn, Z, target, backend, out=out)
        assert dZ_out is out and loss_out == loss
        np.testing.assert_array_equal(out, dZ)


# --- the CUDA backend on device arrays ------------------------------------------------------------

@over_losses
def test_cuda_device_arrays_and_pending_loss(rng, fn):
    """Device arrays in, a device dZ out (or the device ``out`` given); inside the backend's
    ``kernel_scope`` the loss is a ``Pending`` number, read when the scope ends."""
    import fastnn.kernels.cuda as kc

    Z, y = data(rng, fn, (6, 1), np.float32)
    want_loss, want_dZ = FORMULAS[fn](Z, y)
    Zd, yd = cuda.to_device(Z), cuda.to_device(y[:, 0])  # (m,) targets on the device too
    loss, dZd = getattr(K, fn)(Zd, yd, backend="cuda")
    assert isinstance(loss, float) and loss == pytest.approx(want_loss, rel=2e-6)
    assert getattr(dZd, "__cuda_ndarray__", False) and dZd.shape == (6, 1)
    assert_close(dZd.copy_to_host(), want_dZ, np.float32, scale=1 / 6)
    out = cuda.device_array((6, 1), np.float32)
    with kc.kernel_scope:
        pending, dZ_out = getattr(K, fn)(Zd, yd, out=out, backend="cuda")
        assert not isinstance(pending, float)  # (a Pending number, read at the scope's end)
        total = pending * 2 + 1.0
    assert dZ_out is out
    assert float(pending) == pytest.approx(loss, rel=1e-12)
    assert float(total) == pytest.approx(2 * loss + 1, rel=1e-12)
    np.testing.assert_array_equal(out.copy_to_host(), dZd.copy_to_host())


def test_cuda_nan_inside_kernel_scope_is_raised_at_its_end():
    import fastnn.kernels.cuda as kc

    Zd = cuda.to_device(np.array([0.5, np.nan, 1.0], np.float32))
    yd = cuda.to_device(np.ones(3, np.float32))
    with pytest.raises(NonFiniteError), kc.kernel_scope:
        kc.mean_squared_error(Zd, yd)  # (the backend: no error until the scope ends)


# --- bad input -----------------------------------------------------------------------------------

def _bad_calls(fn):
    """(id, Z, target, out, exception, words of the message) for ``fn`` on float64 (5, 3)."""
    name = "y" if fn == "sigmoid_cross_entropy" else "Y"
    Z, y = data(np.random.default_rng(0), fn, (5, 3))
    out = np.full((5, 3), 7.0)
    yield "target-rows", Z, y[:-1], out, ValueError, [f"{name} must have shape (5, 3)",
                                                      "got (4, 3)"]
    yield "target-1d-for-3-columns", Z, y[:, 0], out, ValueError, [f"{name} must have shape"]
    yield "target-2d-for-1d-Z", Z[:, 0].copy(), y[:, :1], out[:, 0], ValueError, [
        f"{name} must have shape (5,)", "got (5, 1)"]
    yield "Z-3d", Z[None], y, out, ValueError, ["Z must be 1-D (n_samples,) or 2-D"]
    yield "Z-empty", Z[:0], y[:0], out, ValueError, ["Z is an empty batch"]
    yield "Z-int", Z.astype(np.int64), y, out, TypeError, ["Z must have dtype float32 or "
                                                            "float64", "got int64"]
    yield "target-int", Z, (y > 0.5).astype(np.int64), out, TypeError, [
        f"{name} must have dtype float32 or float64"]
    yield "mixed-dtypes", Z, y.astype(np.float32), out, TypeError, [
        "mixed dtypes", "Z is float64", f"{name} is float32"]
    yield "out-shape", Z, y, np.zeros((3, 5)), ValueError, ["out must have shape (5, 3)"]
    yield "out-dtype", Z, y, np.zeros((5, 3), np.float32), TypeError, [
        "out must have dtype float64"]
    yield "out-is-Z", Z, y, "Z", ValueError, ["out shares memory with an input"]
    bad = Z.copy()
    bad[3, 1] = np.nan
    yield "nan-in-Z", bad, y, out, ValueError, ["Z contains NaN or inf", "(3, 1)"]
    bad = Z.copy()
    bad[0, 2] = -np.inf
    yield "inf-in-Z", bad, y, out, ValueError, ["Z contains NaN or inf", "(0, 2)"]
    if fn == "sigmoid_cross_entropy":
        for value, label in [(1.5, "above-1"), (-0.25, "negative"), (np.nan, "nan"),
                             (np.inf, "inf")]:
            bad = y.copy()
            bad[2, 0] = value
            bad[4, 2] = value
            yield f"y-{label}", Z, bad, out, ValueError, [
                "y must hold values in [0, 1]", "2 of its 15 values are outside [0, 1] or NaN",
                "first at index (2, 0)"]
    else:
        bad = y.copy()
        bad[1, 1] = np.nan
        yield "nan-in-Y", Z, bad, out, ValueError, ["Y contains NaN or inf", "(1, 1)"]


BAD_CALLS = [pytest.param(fn, *case[1:], id=f"{fn}-{case[0]}")
             for fn in LOSSES for case in _bad_calls(fn)]


@over_backends
@pytest.mark.parametrize("fn, Z, target, out, exc, words", BAD_CALLS)
def test_bad_input_is_named_and_out_untouched(backend, fn, Z, target, out, exc, words):
    """The exception names the function, the argument, what was expected and what was given;
    ``out`` keeps its values: every check runs before any kernel, and NaN/inf in an input is
    found before the result reaches a host ``out`` on "numpy" and "cuda". (The CPU kernels
    count NaN/inf while they write dZ in their one pass, as softmax_cross_entropy does: there
    ``out`` holds values that mean nothing after that error.)"""
    out = Z if isinstance(out, str) else out.copy()  # ("Z": out is Z itself)
    before = out.copy()
    with pytest.raises(exc) as error:
        getattr(K, fn)(Z, target, out=out, backend=backend)
    message = str(error.value)
    assert message.startswith(f"{fn}: ")
    for word in words:
        assert word in message
    if backend != "cpu" or "NaN or inf" not in message:
        np.testing.assert_array_equal(out, before)


@over_backends
def test_overflowing_difference_is_reported(backend):
    """Finite float32 inputs whose difference overflows: NonFiniteError that says so (not a
    ValueError naming an input)."""
    Z = np.array([3e38, 1.0], np.float32)
    Y = np.array([-3e38, 0.0], np.float32)
    with pytest.raises(NonFiniteError, match="mean_squared_error: the result overflowed"):
        K.mean_squared_error(Z, Y, backend=backend)


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@over_losses
def test_device_arrays_given_to_a_host_backend(backend, fn):
    Z = np.ones((3, 2), np.float32)
    with pytest.raises(TypeError, match=f"{fn}: Z is a CUDA device array, but this backend"):
        getattr(K, fn)(cuda.to_device(Z), Z * 0.5, backend=backend)
