"""Softmax, log-softmax, hardmax and softmax cross-entropy: CPU backend against the reference,
both against SciPy and fixed values, stability at large logits, and finite differences."""
import numpy as np
import pytest
from helpers import assert_close, assert_gradient, matrix_shapes, over_backends, over_dtypes, seeds
from hypothesis import example, given
from scipy.special import log_softmax as scipy_log_softmax
from scipy.special import softmax as scipy_softmax

from fastnn import kernels as K
from fastnn.kernels import cpu, reference

ROWWISE = ["softmax", "log_softmax", "hardmax"]


def logits(rng, m, C, dtype=np.float64, scale=3.0):
    return (scale * rng.standard_normal((m, C))).astype(dtype)


def one_hot(y, C, dtype):
    Y = np.zeros((len(y), C), dtype)
    Y[np.arange(len(y)), y] = 1
    return Y


def probability_rows(rng, m, C, dtype, sums=None):
    """Non-negative target rows summing to 1, or to ``sums`` (one per row) when given."""
    Y = rng.dirichlet(np.ones(C), size=m)
    if sums is not None:
        Y *= np.asarray(sums)[:, None]
    return Y.astype(dtype)


def cross_entropy_formula(Z, Y):
    """(loss, dZ) from the docstring, in float64 with SciPy: loss = -(1/m) sum Y log softmax(Z),
    dZ = (softmax(Z) * rowsum(Y) - Y) / m."""
    Z, Y = Z.astype(np.float64), Y.astype(np.float64)
    m = Z.shape[0]
    loss = -np.sum(Y * scipy_log_softmax(Z, axis=1)) / m
    dZ = (scipy_softmax(Z, axis=1) * Y.sum(axis=1, keepdims=True) - Y) / m
    return loss, dZ


def check_against_reference(Z, y_labels, Y_rows, dtype):
    """cpu matches numpy for the three row-wise functions and for both kinds of targets."""
    C = Z.shape[1]
    for fn in ROWWISE:
        ref = getattr(K, fn)(Z, backend="numpy")
        cpu = getattr(K, fn)(Z, backend="cpu")
        if fn == "hardmax":
            assert cpu.dtype == dtype
            np.testing.assert_array_equal(cpu, ref)
        else:  # log_softmax adds terms as large as |Z| (~10 here): a wider atol
            assert_close(cpu, ref, dtype, scale=1 if fn == "softmax" else 4, what=fn)
    for y in (y_labels, Y_rows):
        loss_ref, dZ_ref = K.softmax_cross_entropy(Z, y, backend="numpy")
        loss_cpu, dZ_cpu = K.softmax_cross_entropy(Z, y, backend="cpu")
        assert isinstance(loss_cpu, float)
        rtol, atol = (1e-10, 1e-12) if dtype == np.float64 else (2e-5, 2e-6)
        np.testing.assert_allclose(loss_cpu, loss_ref, rtol=rtol, atol=atol * np.sqrt(C))
        assert_close(dZ_cpu, dZ_ref, dtype, scale=1 / Z.shape[0], what="dZ")


# --- cpu against the reference -------------------------------------------------------------------

@over_dtypes
@given(shape=matrix_shapes(), seed=seeds)
@example(shape=(1, 1), seed=0)
@example(shape=(1, 9), seed=1)
@example(shape=(17, 1), seed=2)
def test_matches_reference(dtype, shape, seed):
    """Random shapes including m = 1 and C = 1; class labels and probability rows."""
    rng = np.random.default_rng(seed)
    m, C = shape
    Z = logits(rng, m, C, dtype)
    check_against_reference(Z, rng.integers(0, C, m), probability_rows(rng, m, C, dtype), dtype)


@over_dtypes
@pytest.mark.parametrize("shape", [(4096, 16), (64, 1024), (40000, 1)], ids=str)
@pytest.mark.usefixtures("parallel_path")
def test_matches_reference_parallel(rng, dtype, shape):
    """The parallel path (row blocks per thread)."""
    m, C = shape
    Z = logits(rng, m, C, dtype)
    check_against_reference(Z, rng.integers(0, C, m), probability_rows(rng, m, C, dtype), dtype)


# --- fixed values and independent formulas -------------------------------------------------------

@over_backends
@over_dtypes
def test_fixed_softmax_value(backend, dtype):
    Z = np.array([[5, 2, -1, 3]], dtype)
    np.testing.assert_array_almost_equal(K.softmax(Z, backend=backend),
                                         [[0.842, 0.042, 0.002, 0.114]], decimal=3)


@over_backends
@over_dtypes
def test_softmax_and_log_softmax_match_scipy(rng, backend, dtype):
    """softmax rows sum to 1, are >= 0, and softmax and log_softmax equal SciPy's."""
    Z = logits(rng, 30, 12, dtype, scale=10.0)
    P = K.softmax(Z, backend=backend)
    logP = K.log_softmax(Z, backend=backend)
    Z64 = Z.astype(np.float64)
    assert_close(P.sum(axis=1), np.ones(30, dtype), dtype, what="row sums")
    assert_close(P, scipy_softmax(Z64, axis=1), dtype, what="softmax")
    assert_close(logP, scipy_log_softmax(Z64, axis=1), dtype, scale=30, what="log_softmax")
    assert (P >= 0).all()


@over_backends
@over_dtypes
def test_shift_invariance(rng, backend, dtype):
    """softmax(Z + c) = softmax(Z) for a per-row constant c."""
    Z = logits(rng, 8, 5, dtype)
    shifted = (Z + np.array([[-50.0], [0.0], [7.0], [100.0], [-3.0], [1e3], [20.0], [-1e3]])
               ).astype(dtype)
    assert_close(K.softmax(shifted, backend=backend), K.softmax(Z, backend=backend), dtype,
                 scale=1e3, what="softmax")


@over_backends
@over_dtypes
def test_large_logits_are_stable(backend, dtype):
    """Logits of +-1e4 give finite outputs, loss and gradient with the right values."""
    Z = np.array([[1e4, -1e4, 0], [-1e4, -1e4, 1e4]], dtype)
    np.testing.assert_allclose(K.softmax(Z, backend=backend), [[1, 0, 0], [0, 0, 1]], atol=1e-30)
    np.testing.assert_allclose(K.log_softmax(Z, backend=backend),
                               [[0, -2e4, -1e4], [-2e4, -2e4, 0]], rtol=1e-7)
    np.testing.assert_array_equal(K.hardmax(Z, backend=backend), [[1, 0, 0], [0, 0, 1]])

    loss, dZ = K.softmax_cross_entropy(Z, np.array([0, 2]), backend=backend)
    assert loss == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(dZ, np.zeros((2, 3)), atol=1e-30)

    loss, dZ = K.softmax_cross_entropy(Z, np.array([1, 0]), backend=backend)
    assert np.isfinite(loss) and loss == pytest.approx(2e4, rel=1e-7)
    np.testing.assert_allclose(dZ, [[0.5, -0.5, 0], [-0.5, 0, 0.5]], atol=1e-7)

    Y = np.array([[0.5, 0.25, 0.25], [0.0, 0.0, 1.0]], dtype)  # probability rows
    loss, dZ = K.softmax_cross_entropy(Z, Y, backend=backend)
    assert loss == pytest.approx((0.25 * 2e4 + 0.25 * 1e4) / 2, rel=1e-6)
    np.testing.assert_allclose(dZ, [[0.25, -0.125, -0.125], [0, 0, 0]], atol=1e-7)


@over_backends
@over_dtypes
def test_hardmax_ties_pick_the_first_maximum(backend, dtype):
    Z = np.array([[1, 3, 3, 0], [2, 2, 2, 2], [-1, -5, -1, -1], [0, 0, 0, 7]], dtype)
    H = K.hardmax(Z, backend=backend)
    assert H.dtype == dtype
    np.testing.assert_array_equal(H, one_hot([1, 0, 0, 3], 4, dtype))


@over_backends
@over_dtypes
@pytest.mark.parametrize("label_dtype", [np.int32, np.int64, np.uint8, np.int8, np.uint64])
def test_class_labels_equal_one_hot_rows(rng, backend, dtype, label_dtype):
    Z = logits(rng, 10, 4, dtype)
    y = rng.integers(0, 4, 10).astype(label_dtype)
    loss_labels, dZ_labels = K.softmax_cross_entropy(Z, y, backend=backend)
    loss_rows, dZ_rows = K.softmax_cross_entropy(Z, one_hot(y, 4, dtype), backend=backend)
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    assert loss_labels == pytest.approx(loss_rows, rel=rtol)
    assert_close(dZ_labels, dZ_rows, dtype, scale=0.1, what="dZ")


@over_backends
@over_dtypes
@pytest.mark.parametrize("rows", ["one-hot", "sum to 1", "sum to other values"])
def test_cross_entropy_matches_formula(rng, backend, dtype, rows):
    """loss = -(1/m) sum Y log softmax(Z) and dZ = (softmax(Z) rowsum(Y) - Y) / m (SciPy)."""
    m, C = 12, 5
    Z = logits(rng, m, C, dtype)
    if rows == "one-hot":
        y = rng.integers(0, C, m)
        Y = one_hot(y, C, dtype)
    else:
        sums = None if rows == "sum to 1" else rng.uniform(0.0, 3.0, m)
        Y = probability_rows(rng, m, C, dtype, sums)
    want_loss, want_dZ = cross_entropy_formula(Z, Y)
    for target in ([Y, y] if rows == "one-hot" else [Y]):
        loss, dZ = K.softmax_cross_entropy(Z, target, backend=backend)
        rtol = 1e-10 if dtype == np.float64 else 2e-5
        assert loss == pytest.approx(want_loss, rel=rtol)
        assert_close(dZ, want_dZ, dtype, scale=0.1, what="dZ")


@over_backends
def test_loss_is_mean_negative_log_probability(rng, backend):
    """loss = -mean(log softmax(Z)[i, y_i]), computed with scipy.special.log_softmax."""
    Z = logits(rng, 20, 7)
    y = rng.integers(0, 7, 20)
    loss, _ = K.softmax_cross_entropy(Z, y, backend=backend)
    want = -np.mean(scipy_log_softmax(Z, axis=1)[np.arange(20), y])
    assert loss == pytest.approx(want, rel=1e-12)


# --- finite differences --------------------------------------------------------------------------

@over_backends
@pytest.mark.parametrize("target", ["labels", "rows", "rows not summing to 1"])
def test_gradient_by_finite_differences(rng, backend, target):
    m, C = 6, 5
    Z = logits(rng, m, C, scale=2.0)
    if target == "labels":
        y = rng.integers(0, C, m)
    else:
        y = probability_rows(rng, m, C, np.float64,
                             None if target == "rows" else rng.uniform(0.2, 3.0, m))

    def f():
        return K.softmax_cross_entropy(Z, y, backend=backend)[0]

    assert_gradient(K.softmax_cross_entropy(Z, y, backend=backend)[1], f, Z, "dZ")


@over_dtypes
def test_count_correct_matches_the_reference(rng, dtype):
    """The compiled count of rows whose argmax is the label, ties going to the first maximum."""
    Z = rng.integers(0, 3, (257, 7)).astype(dtype)  # many ties
    for y in (rng.integers(0, 7, 257), np.argmax(Z, axis=1).astype(np.int32)):
        got = cpu.count_correct(Z, y)
        assert isinstance(got, int) and got == reference.count_correct(Z, y)
    assert cpu.count_correct(Z, np.argmax(Z, axis=1)) == 257
