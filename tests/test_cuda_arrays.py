"""CUDA kernels' handling of arrays: host and device inputs and results, ``out=`` buffers, in-place
updates where the array lives, NaN/inf detection, the no-GPU error and the launch-size checks.
Runs in Numba's CUDA simulator with the small launch sizes of ``test_cuda_kernels``."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numba import cuda
from test_cuda_kernels import (
    KINDS,
    OPTIMIZERS,
    batchnorm_data,
    dense_data,
    host,
    on,
    optimizer_arrays,
    pytestmark,
    small_blocks,  # noqa: F401  (autouse fixture: applies here too)
)

import fastnn.kernels.cuda as kc  # after test_cuda_kernels' module-level skip
from fastnn import config
from fastnn.kernels import reference as ref
from fastnn.kernels.cuda import _device

pytestmark = pytestmark  # the same warning filters


def test_same_functions_and_arguments_as_the_reference():
    """fastnn.backend maps "cuda" to this module: every function of the reference backend is here,
    with the same parameters and defaults (dropout's seed may also be random-number states)."""
    import inspect

    for name in ref.__dict__:
        fn = getattr(ref, name)
        if (name.startswith("_") or not inspect.isfunction(fn)
                or not fn.__module__.startswith("fastnn") or name == "activation_derivative"):
            continue  # (activation_derivative: a helper of the reference's own)
        want = inspect.signature(fn)
        if name == "dropout_forward":
            want = want.replace(parameters=[p.replace(name="seed_or_states") if p.name == "seed"
                                            else p for p in want.parameters.values()])
        assert inspect.signature(getattr(kc, name)) == want, name
    with kc.kernel_scope:
        pass


# --- the array functions a model needs -----------------------------------------------------------

def test_to_backend_to_host_copy_and_assign(rng):
    a = rng.standard_normal((5, 6))
    d = kc.to_backend(a)
    assert getattr(d, "__cuda_ndarray__", False)
    assert kc.to_backend(d) is d
    np.testing.assert_array_equal(kc.to_host(d), a)
    np.testing.assert_array_equal(kc.to_host(a), a)
    f32 = kc.to_backend(d, np.float32)
    assert f32.dtype == np.float32
    np.testing.assert_array_equal(kc.to_host(f32), a.astype(np.float32))
    c = kc.copy(d)
    kc.assign(d, np.zeros_like(a))
    np.testing.assert_array_equal(kc.to_host(d), 0)
    np.testing.assert_array_equal(kc.to_host(c), a)
    kc.assign(d, c)
    np.testing.assert_array_equal(kc.to_host(d), a)


def test_empty_and_zeros():
    z = kc.zeros((7, 5), np.float32)
    assert z.shape == (7, 5) and z.dtype == np.float32
    np.testing.assert_array_equal(kc.to_host(z), np.zeros((7, 5)))
    e = kc.empty((3, 2), np.float64)
    assert e.shape == (3, 2) and e.dtype == np.float64


@pytest.mark.parametrize("shape", [(9, 4), (9,)], ids=["rows", "labels"])
def test_take_rows(rng, shape):
    X = rng.standard_normal(shape) if len(shape) == 2 else rng.integers(0, 5, shape[0])
    rows = np.array([3, 0, 8, 3, 12, -1])  # the last two clipped, as the host backends do
    want = np.take(X, rows, axis=0, mode="clip")
    got = kc.take_rows(kc.to_backend(X), rows, None)
    np.testing.assert_array_equal(kc.to_host(got), want)
    out = kc.empty(want.shape, X.dtype)
    assert kc.take_rows(kc.to_backend(X), rows, out) is out
    np.testing.assert_array_equal(kc.to_host(out), want)


@pytest.mark.parametrize("kind", KINDS)
def test_count_correct(rng, kind):
    """13 rows over several blocks; ties count the first maximum, as the host backends do."""
    Z = rng.integers(0, 3, (13, 5)).astype(np.float64)  # many ties
    y = rng.integers(0, 5, 13)
    y[:4] = np.argmax(Z[:4], axis=1)
    n = kc.count_correct(*on(kind, Z, y))
    assert isinstance(n, int) and n == ref.count_correct(Z, y) >= 4


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(13, 1), (13,), (9, 4)])
def test_count_binary_correct(rng, kind, shape):
    """Signs of Z against targets thresholded at 0.5 (probabilities too), over several blocks."""
    Z = rng.integers(-2, 3, shape).astype(np.float64)  # zeros: on the negative side
    Y = rng.random(shape)
    n = kc.count_binary_correct(*on(kind, Z, Y))
    assert isinstance(n, int) and n == ref.count_binary_correct(Z, Y)
    assert n == np.count_nonzero((Z > 0) == (Y >= 0.5))


@pytest.mark.parametrize("size", [37, 8, 3])
def test_sum_squares(rng, size):
    """37 = 9 rows of 4 columns and 1 left over; 8: none left over; 3: only left over."""
    a = rng.standard_normal(size)
    assert kc.sum_squares(kc.to_backend(a)) == pytest.approx(ref.sum_squares(a), rel=1e-12)
    assert kc.sum_squares(a.reshape(-1, 1)) == pytest.approx(ref.sum_squares(a), rel=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_add_scaled(rng, kind):
    y, x = rng.standard_normal((5, 7)), rng.standard_normal((5, 7))
    want = y + 0.3 * x
    y_given = on(kind, y)
    kc.add_scaled(y_given, 0.3, on(kind, x))
    np.testing.assert_allclose(host(y_given, kind), want, rtol=1e-15)


# --- host in, host out; device in, device out ----------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_dense_returns_the_kind_given(rng, kind):
    X, W, b = dense_data(rng, 7, 5, 4, np.float64)
    dA = rng.standard_normal((7, 4))
    A = kc.dense_forward(*on(kind, X, W, b), "tanh")
    np.testing.assert_allclose(host(A, kind), ref.dense_forward(X, W, b, "tanh"), rtol=1e-12)
    A_ref = ref.dense_forward(X, W, b, "tanh")
    got = kc.dense_backward(*on(kind, dA, X, W, A_ref), "tanh")
    for g, w in zip(got, ref.dense_backward(dA, X, W, A_ref, "tanh")):
        np.testing.assert_allclose(host(g, kind), w, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", KINDS)
def test_batchnorm_updates_running_statistics_where_they_live(rng, kind):
    X, gamma, beta, (rm, rv) = batchnorm_data(rng, 8, 5, np.float64)
    rm_ref, rv_ref = rm.copy(), rv.copy()
    Y_ref, cache_ref = ref.batchnorm_forward(X, gamma, beta, rm_ref, rv_ref)
    rm_in, rv_in = on(kind, rm, rv)
    Y, cache = kc.batchnorm_forward(*on(kind, X, gamma, beta), rm_in, rv_in)
    np.testing.assert_allclose(host(Y, kind), Y_ref, rtol=1e-12)
    np.testing.assert_allclose(host(rm_in, kind), rm_ref, rtol=1e-12)
    np.testing.assert_allclose(host(rv_in, kind), rv_ref, rtol=1e-12)
    for a in (cache.mean, cache.invstd):  # the cache holds arrays of the kind returned
        host(a, kind)
    dY = rng.standard_normal(X.shape)
    for g, w in zip(kc.batchnorm_backward(on(kind, dY), cache),
                    ref.batchnorm_backward(dY, cache_ref)):
        np.testing.assert_allclose(host(g, kind), w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_softmax_family_returns_the_kind_given(rng, kind):
    Z = 3 * rng.standard_normal((5, 6))
    y = rng.integers(0, 6, 5)
    for fn in ("softmax", "log_softmax", "hardmax"):
        np.testing.assert_allclose(host(getattr(kc, fn)(on(kind, Z)), kind), getattr(ref, fn)(Z),
                                   rtol=1e-12, atol=1e-15)
    loss, dZ = kc.softmax_cross_entropy(*on(kind, Z, y))
    loss_ref, dZ_ref = ref.softmax_cross_entropy(Z, y)
    assert isinstance(loss, float) and loss == pytest.approx(loss_ref, rel=1e-12)
    np.testing.assert_allclose(host(dZ, kind), dZ_ref, rtol=1e-12, atol=1e-15)


def test_device_logits_with_host_labels_give_a_device_gradient(rng):
    Z = rng.standard_normal((4, 3))
    y = np.array([0, 2, 1, 2])
    _, dZ = kc.softmax_cross_entropy(cuda.to_device(Z), y)
    np.testing.assert_allclose(host(dZ, "device"), ref.softmax_cross_entropy(Z, y)[1], rtol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("kernel", ["momentum_update", "adam_update"])
def test_optimizer_updates_where_the_arrays_live(rng, kind, kernel):
    arrays = optimizer_arrays(rng, kernel, (19,), np.float64)
    before = [a.copy() for a in arrays]
    expected = [a.copy() for a in arrays]
    given = on(kind, *arrays)
    getattr(kc, kernel)(*given, *OPTIMIZERS[kernel][1])
    getattr(ref, kernel)(*expected, *OPTIMIZERS[kernel][1])
    for got, want in zip(given, expected):
        np.testing.assert_allclose(host(got, kind), want, rtol=1e-12)
    if kind == "device":  # the host arrays the device copies came from are untouched
        for a, b in zip(arrays, before):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_returns_the_kind_given(kind):
    X = np.ones((5, 6))
    Y, mask = kc.dropout_forward(on(kind, X), 0.5, 3)
    np.testing.assert_array_equal(host(Y, kind), 2 * host(mask, kind))
    dX = kc.dropout_backward(on(kind, X), mask, 0.5)
    np.testing.assert_array_equal(host(dX, kind), 2 * host(mask, kind))


def test_noncontiguous_device_array_is_refused():
    Z = cuda.to_device(np.ones((4, 6)))
    if not hasattr(Z[:, ::2], "is_c_contiguous"):
        pytest.skip("device array views are not strided here")
    with pytest.raises(TypeError, match="C-contiguous"):
        kc.softmax(Z[:, ::2])


# --- out= buffers --------------------------------------------------------------------------------

def out_calls(rng):
    """(name, call(out) -> result, the out to give, as a function of the kind)."""
    X, W, b = dense_data(rng, 6, 4, 5, np.float64)
    A = ref.dense_forward(X, W, b, "relu")
    Xb, gamma, beta, (rm, rv) = batchnorm_data(rng, 6, 5, np.float64)
    _, cache = ref.batchnorm_forward(Xb, gamma, beta, rm.copy(), rv.copy())
    Z, y = rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    def e(shape):  # NaN-filled: a buffer left unwritten cannot pass for the result
        return np.full(shape, np.nan)
    return [
        ("activation_forward", lambda out: kc.activation_forward(A, "tanh", out=out),
         lambda: e((6, 5))),
        ("activation_backward", lambda out: kc.activation_backward(A, A, "tanh", out=out),
         lambda: e((6, 5))),
        ("dense_forward", lambda out: kc.dense_forward(X, W, b, "relu", out=out),
         lambda: e((6, 5))),
        ("dense_backward", lambda out: kc.dense_backward(A, X, W, A, "relu", out=out),
         lambda: (e((6, 4)), e((4, 5)), e(5))),
        ("dense_backward no dX",
         lambda out: kc.dense_backward(A, X, W, A, "relu", input_grad=False, out=out),
         lambda: (None, e((4, 5)), e(5))),
        ("batchnorm_forward",
         lambda out: kc.batchnorm_forward(Xb, gamma, beta, rm.copy(), rv.copy(), out=out)[0],
         lambda: e((6, 5))),
        ("batchnorm_backward", lambda out: kc.batchnorm_backward(Z, cache, out=out),
         lambda: (e((6, 5)), e(5), e(5))),
        ("softmax", lambda out: kc.softmax(Z, out=out), lambda: e((6, 5))),
        ("log_softmax", lambda out: kc.log_softmax(Z, out=out), lambda: e((6, 5))),
        ("hardmax", lambda out: kc.hardmax(Z, out=out), lambda: e((6, 5))),
        ("softmax_cross_entropy", lambda out: kc.softmax_cross_entropy(Z, y, out=out)[1],
         lambda: e((6, 5))),
        ("dropout_forward", lambda out: kc.dropout_forward(Z, 0.5, 9, out=out),
         lambda: (e((6, 5)), e((6, 5)))),
        ("dropout_backward", lambda out: kc.dropout_backward(Z, np.ones((6, 5)), 0.5, out=out),
         lambda: e((6, 5))),
    ]


OUT_NAMES = [name for name, _, _ in out_calls(np.random.default_rng(0))]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", OUT_NAMES)
def test_out_buffers_are_written_and_returned(rng, kind, name):
    call, make_out = next((c, o) for n, c, o in out_calls(rng) if n == name)
    plain = call(None)
    out = make_out()
    if isinstance(out, tuple):
        out = tuple(on(kind, a) for a in out)
        got = call(out)
        assert len(got) == len(out)
        for g, o, p in zip(got, out, plain):
            assert g is o
            if o is not None:
                np.testing.assert_array_equal(host(o, kind), p)
    else:
        out = on(kind, out)
        assert call(out) is out
        np.testing.assert_array_equal(host(out, kind), plain)


def test_bad_out_buffers(rng):
    Z = rng.standard_normal((3, 4))
    with pytest.raises(ValueError, match=r"out must have shape \(3, 4\)"):
        kc.softmax(Z, out=np.empty((4, 3)))
    with pytest.raises(TypeError, match="out must have dtype float64"):
        kc.softmax(Z, out=np.empty((3, 4), np.float32))
    with pytest.raises(TypeError, match="writable C-contiguous"):
        kc.softmax(Z, out=np.empty((4, 3)).T)
    with pytest.raises(TypeError, match="tuple of 2 arrays"):
        kc.dropout_forward(Z, 0.5, 1, out=np.empty((3, 4)))


# --- NaN and inf ---------------------------------------------------------------------------------

def nonfinite_cases(rng):
    """(name, input holding NaN/inf, call) for every kernel and each of its array inputs."""
    X, W, b = dense_data(rng, 5, 4, 3, np.float64)
    A = ref.dense_forward(X, W, b, "relu")
    dA = rng.standard_normal(A.shape)
    Xb, gamma, beta, (rm, rv) = batchnorm_data(rng, 6, 3, np.float64)
    _, cache = ref.batchnorm_forward(Xb, gamma, beta, rm.copy(), rv.copy())
    Z, Y = rng.standard_normal((4, 5)), rng.random((4, 5))
    return [
        ("dense_forward X", X, lambda: kc.dense_forward(X, W, b, "relu")),
        ("dense_forward W", W, lambda: kc.dense_forward(X, W, b, "tanh")),
        ("dense_forward b", b, lambda: kc.dense_forward(X, W, b, "sigmoid")),
        ("dense_backward dA", dA, lambda: kc.dense_backward(dA, X, W, A, "relu")),
        ("dense_backward A", A, lambda: kc.dense_backward(dA, X, W, A, "relu")),
        ("dense_backward X", X, lambda: kc.dense_backward(dA, X, W, A, "relu")),
        ("dense_backward W", W, lambda: kc.dense_backward(dA, X, W, A, "relu")),
        ("dense_backward W, no dX", W,
         lambda: kc.dense_backward(dA, X, W, A, "relu", input_grad=False)),
        ("activation_forward Z", A, lambda: kc.activation_forward(A, "sigmoid")),
        ("activation_backward A", A, lambda: kc.activation_backward(dA, A, "relu")),
        ("activation_backward dA", dA, lambda: kc.activation_backward(dA, A, "relu")),
        ("batchnorm_forward X", Xb, lambda: kc.batchnorm_forward(Xb, gamma, beta, rm, rv)),
        ("batchnorm_forward X inference", Xb,
         lambda: kc.batchnorm_forward(Xb, gamma, beta, rm, rv, training=False)),
        ("batchnorm_backward dY", Xb, lambda: kc.batchnorm_backward(Xb, cache)),
        ("softmax Z", Z, lambda: kc.softmax(Z)),
        ("log_softmax Z", Z, lambda: kc.log_softmax(Z)),
        ("hardmax Z", Z, lambda: kc.hardmax(Z)),
        ("softmax_cross_entropy Z", Z, lambda: kc.softmax_cross_entropy(Z, np.arange(4))),
        ("softmax_cross_entropy Y", Y, lambda: kc.softmax_cross_entropy(Z, Y)),
        ("dropout_forward X", Z, lambda: kc.dropout_forward(Z, 0.5, 0)),
        ("dropout_backward dY", Z, lambda: kc.dropout_backward(Z, np.ones((4, 5)), 0.5)),
    ]


NONFINITE_NAMES = [name for name, _, _ in nonfinite_cases(np.random.default_rng(0))]


#: the simulator computes with NaN/inf in NumPy scalars, which warn
ignore_invalid = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")


@ignore_invalid
@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("name", NONFINITE_NAMES)
def test_nonfinite_input_raises(rng, name, value):
    array, call = next((a, c) for n, a, c in nonfinite_cases(rng) if n == name)
    array.flat[array.size // 2] = value
    with pytest.raises(ref.NonFiniteError):
        call()


@ignore_invalid
def test_nonfinite_batchnorm_leaves_the_running_statistics(rng):
    X, gamma, beta, (rm, rv) = batchnorm_data(rng, 6, 3, np.float64)
    X[2, 1] = np.nan
    saved = rm.copy(), rv.copy()
    for kind in KINDS:
        running = on(kind, rm, rv)
        with pytest.raises(ref.NonFiniteError):
            kc.batchnorm_forward(X, gamma, beta, *running)
        for r, s in zip(running, saved):
            np.testing.assert_array_equal(host(r, kind), s)


@ignore_invalid
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad", ["p", "g", "last state"])
@pytest.mark.parametrize("kernel", list(OPTIMIZERS))
def test_nonfinite_optimizer_input_changes_nothing(rng, kernel, kind, bad):
    arrays = optimizer_arrays(rng, kernel, (29,), np.float64)
    arrays[{"p": 0, "g": 1, "last state": -1}[bad]][17] = np.inf if bad == "g" else np.nan
    saved = [a.copy() for a in arrays]
    given = on(kind, *arrays)
    with pytest.raises(ref.NonFiniteError):
        getattr(kc, kernel)(*given, *OPTIMIZERS[kernel][1])
    for got, want in zip(given, saved):
        np.testing.assert_array_equal(host(got, kind), want)


def test_overflow_of_finite_inputs_raises():
    X = np.full((2, 3), 1e30, np.float32)
    with pytest.raises(ref.NonFiniteError):
        kc.dense_forward(X, np.full((3, 2), 1e30, np.float32))


# --- no GPU, no device at import, launch sizes ---------------------------------------------------

def test_require_gpu_explains_what_is_missing(monkeypatch):
    assert kc.require_gpu() is None  # the simulator counts as a device
    monkeypatch.setattr(_device, "is_simulator", lambda: False)
    monkeypatch.setattr(_device, "_why_unavailable", lambda: "the NVIDIA driver reports no GPU")
    with pytest.raises(RuntimeError, match=r'reports no GPU.*pip install "fastnn\[cuda\]".*cu12'):
        kc.softmax(np.ones((2, 2)))
    assert not kc.gpu_available()


def test_import_needs_no_gpu_and_kernels_say_why_they_cannot_run():
    """Without the simulator, on a machine without a usable GPU: the package imports, and a kernel
    call and the GPU benchmark table raise require_gpu's error."""
    code = ("import numpy as np, fastnn.kernels.cuda as kc, fastnn.bench\n"
            "for call in (lambda: kc.softmax(np.ones((2, 2))), fastnn.bench.run_cuda):\n"
            "    try:\n        call()\n"
            "    except RuntimeError as e:\n        print(e)\n"
            "    else:\n        print('ran')\n")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 0, run.stderr
    if "ran" in run.stdout.splitlines():
        pytest.skip("a CUDA GPU is usable here")
    errors = run.stdout.strip().splitlines()
    assert len(errors) == 2
    for error in errors:
        assert error.startswith("fastnn's CUDA backend cannot run")
        assert 'pip install "fastnn[cuda]"' in error


@pytest.mark.parametrize("name, value, kernel", [
    ("CUDA_REDUCE_ROW_THREADS", 3, "batchnorm_forward"),  # not a power of two
    ("CUDA_REDUCE_ROWS_PER_BLOCK", 1, "batchnorm_forward"),  # the passes would never end
    ("CUDA_SOFTMAX_THREADS", 12, "softmax"),
    ("CUDA_GEMM_TILE_K", 0, "dense_forward"),
    ("CUDA_THREADS_PER_BLOCK", 2.5, "sgd_update")])
def test_bad_launch_sizes_are_refused(monkeypatch, name, value, kernel):
    monkeypatch.setattr(config, name, value)
    X = np.ones((3, 2))
    calls = {"batchnorm_forward": lambda: kc.batchnorm_forward(X, *np.ones((4, 2))),
             "softmax": lambda: kc.softmax(X),
             "dense_forward": lambda: kc.dense_forward(X, np.ones((2, 2))),
             "sgd_update": lambda: kc.sgd_update(X, X.copy(), 0.1)}
    with pytest.raises(ValueError, match=f"fastnn.config.{name}"):
        calls[kernel]()
