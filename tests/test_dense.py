"""Dense layer kernels: Numba CPU backend against the NumPy reference, the reference against
direct formulas, and both against finite differences."""
import numpy as np
import pytest
from helpers import assert_close, assert_gradient, dense_shapes, over_backends, over_dtypes, seeds
from hypothesis import example, given
from hypothesis import strategies as st
from scipy.special import expit

from fastnn import kernels as K

ACTIVATIONS = ["linear", "relu", "tanh", "sigmoid"]
over_activations = pytest.mark.parametrize("activation", ACTIVATIONS + [None])

#: Activations and their derivatives written in terms of Z (the kernels use A = g(Z) instead).
G = {"linear": lambda z: z, "relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "sigmoid": expit}
DG = {"linear": np.ones_like, "relu": lambda z: (z > 0).astype(z.dtype),
      "tanh": lambda z: 1 / np.cosh(z) ** 2, "sigmoid": lambda z: expit(z) * (1 - expit(z))}


def dense_data(rng, m, n_in, n_out, dtype=np.float64, bias=True):
    """X (m, n_in), W (n_in, n_out) scaled so Z = X @ W + b is O(1), b (n_out,) or None."""
    X = rng.standard_normal((m, n_in)).astype(dtype)
    W = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(dtype)
    b = (0.5 * rng.standard_normal(n_out)).astype(dtype) if bias else None
    return X, W, b


def check_against_reference(X, W, b, activation, dtype, rng):
    """cpu forward and backward match the numpy backend on the same inputs."""
    m, n_in = X.shape
    n_out = W.shape[1]
    A_ref = K.dense_forward(X, W, b, activation, backend="numpy")
    A_cpu = K.dense_forward(X, W, b, activation, backend="cpu")
    assert_close(A_cpu, A_ref, dtype, scale=np.sqrt(n_in), what="A")

    dA = rng.standard_normal((m, n_out)).astype(dtype)
    ref = K.dense_backward(dA, X, W, A_ref, activation, backend="numpy")
    cpu = K.dense_backward(dA, X, W, A_ref, activation, backend="cpu")
    for name, got, want, terms in zip(("dX", "dW", "db"), cpu, ref, (n_out, m, m)):
        assert_close(got, want, dtype, scale=np.sqrt(terms), what=name)


# --- cpu against the reference -------------------------------------------------------------------

@over_dtypes
@over_activations
@given(shape=dense_shapes(), seed=seeds, bias=st.booleans())
@example(shape=(1, 1, 1), seed=0, bias=True)
@example(shape=(1, 7, 3), seed=1, bias=False)
@example(shape=(9, 1, 4), seed=2, bias=True)
@example(shape=(9, 4, 1), seed=3, bias=True)
def test_matches_reference(dtype, activation, shape, seed, bias):
    """Forward and backward agree with the reference on random shapes (1s included)."""
    rng = np.random.default_rng(seed)
    X, W, b = dense_data(rng, *shape, dtype, bias)
    check_against_reference(X, W, b, activation, dtype, rng)


@over_dtypes
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("shape", [
    (5, 3, 20),       # n_out > n_in: outputs split along columns
    (5, 20, 3),       # n_in > n_out
    (300, 128, 96),   # outputs split along rows
    (300, 96, 128),
    (1024, 2048, 1),  # one output column
    (2048, 1, 1024),  # one input column
    (1, 7, 5),        # one row: fewer rows than threads
], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("path", ["serial", "parallel"])
def test_matches_reference_fixed_shapes(request, rng, dtype, activation, shape, path):
    """Serial and parallel paths, both ways of splitting each product, degenerate widths."""
    if path == "parallel":
        request.getfixturevalue("parallel_path")
    X, W, b = dense_data(rng, *shape, dtype)
    check_against_reference(X, W, b, activation, dtype, rng)


@over_backends
@over_dtypes
def test_no_bias_equals_zero_bias_and_none_is_linear(rng, backend, dtype):
    X, W, _ = dense_data(rng, 6, 5, 4, dtype)
    zeros = np.zeros(4, dtype)
    for act in ACTIVATIONS:
        np.testing.assert_array_equal(K.dense_forward(X, W, None, act, backend=backend),
                                      K.dense_forward(X, W, zeros, act, backend=backend))
    np.testing.assert_array_equal(K.dense_forward(X, W, zeros, None, backend=backend),
                                  K.dense_forward(X, W, zeros, "linear", backend=backend))
    A = K.dense_forward(X, W, backend=backend)
    for got, want in zip(K.dense_backward(A, X, W, A, None, backend=backend),
                         K.dense_backward(A, X, W, A, "linear", backend=backend)):
        np.testing.assert_array_equal(got, want)


@over_backends
def test_inputs_are_not_modified(rng, backend):
    X, W, b = dense_data(rng, 7, 5, 3)
    dA = rng.standard_normal((7, 3))
    saved = [a.copy() for a in (X, W, b, dA)]
    A = K.dense_forward(X, W, b, "tanh", backend=backend)
    A_saved = A.copy()
    K.dense_backward(dA, X, W, A, "tanh", backend=backend)
    for a, s in zip((X, W, b, dA, A), saved + [A_saved]):
        np.testing.assert_array_equal(a, s)


# --- against direct formulas ---------------------------------------------------------------------

@over_backends
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_forward_and_backward_match_formulas(rng, backend, activation):
    """A = g(X @ W + b); dX = (dA g'(Z)) @ W.T, dW = X.T @ (dA g'(Z)), db = column sums,
    with g' computed from Z here (the kernels compute it from A)."""
    X, W, b = dense_data(rng, 8, 5, 4)
    Z = X @ W + b
    A = K.dense_forward(X, W, b, activation, backend=backend)
    assert_close(A, G[activation](Z), np.float64, what="A")

    dA = rng.standard_normal(A.shape)
    dZ = dA * DG[activation](Z)
    dX, dW, db = K.dense_backward(dA, X, W, A, activation, backend=backend)
    assert_close(dX, dZ @ W.T, np.float64, what="dX")
    assert_close(dW, X.T @ dZ, np.float64, what="dW")
    assert_close(db, dZ.sum(axis=0), np.float64, what="db")


@over_backends
@over_dtypes
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.filterwarnings("ignore:overflow encountered in exp")
def test_activation_over_wide_range(backend, dtype, activation):
    """With W = I and b = 0, A = g(X) elementwise: checks g on [-100, 100], incl. saturation."""
    z = np.concatenate([np.linspace(-100, 100, 401), [-1e-3, 1e-3, 0.3, 0.7]])
    X = z.reshape(-1, 3).astype(dtype)
    A = K.dense_forward(X, np.eye(3, dtype=dtype), activation=activation, backend=backend)
    want = G[activation](X.astype(np.float64))
    rtol, atol = (2e-6, 1e-7) if dtype == np.float32 else (1e-13, 1e-15)
    np.testing.assert_allclose(A, want, rtol=rtol, atol=atol)


@over_backends
def test_relu_gradient_is_zero_at_the_kink(backend):
    """g'(0) for relu is 0, as documented (1[A > 0])."""
    X = np.array([[0.0, 1.0], [-1.0, 2.0]])
    W = np.array([[1.0], [0.0]])  # Z = X[:, :1]: 0 and -1
    A = K.dense_forward(X, W, activation="relu", backend=backend)
    dX, dW, db = K.dense_backward(np.ones_like(A), X, W, A, "relu", backend=backend)
    np.testing.assert_array_equal(db, [0.0])
    np.testing.assert_array_equal(dX, np.zeros_like(X))


# --- finite differences --------------------------------------------------------------------------

def away_from_relu_kink(rng, m, n_in, n_out, margin=0.05):
    """Inputs whose pre-activations all satisfy |Z| > margin (differences do not cross the kink)."""
    while True:
        X, W, b = dense_data(rng, m, n_in, n_out)
        if np.abs(X @ W + b).min() > margin:
            return X, W, b


@over_backends
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradients_by_finite_differences(rng, backend, activation):
    """dX, dW, db of f = sum(A * R) agree with central differences (float64)."""
    X, W, b = away_from_relu_kink(rng, 5, 4, 3)
    R = rng.standard_normal((5, 3))

    def f():
        return float(np.sum(K.dense_forward(X, W, b, activation, backend=backend) * R))

    A = K.dense_forward(X, W, b, activation, backend=backend)
    dX, dW, db = K.dense_backward(R, X, W, A, activation, backend=backend)
    assert_gradient(dX, f, X, "dX")
    assert_gradient(dW, f, W, "dW")
    assert_gradient(db, f, b, "db")


@over_backends
@pytest.mark.parametrize("path", ["serial", "parallel"])
def test_backward_without_input_gradient(request, rng, backend, path):
    """input_grad=False skips dX (None) and leaves dW and db as they were."""
    if path == "parallel":
        request.getfixturevalue("parallel_path")
    X, W, b = dense_data(rng, 40, 12, 9, np.float64)
    A = K.dense_forward(X, W, b, "relu", backend=backend)
    dA = rng.standard_normal(A.shape)
    full = K.dense_backward(dA, X, W, A, "relu", backend=backend)
    dX, dW, db = K.dense_backward(dA, X, W, A, "relu", input_grad=False, backend=backend)
    assert dX is None
    np.testing.assert_array_equal(dW, full[1])
    np.testing.assert_array_equal(db, full[2])


@over_backends
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize("path", ["serial", "parallel"])
def test_backward_without_bias_gradient(request, rng, backend, activation, input_grad, path):
    """bias_grad=False skips db (None) and leaves dX and dW as they were; out's db is None."""
    if path == "parallel":
        request.getfixturevalue("parallel_path")
    X, W, _ = dense_data(rng, 300, 96, 128, np.float64, bias=False)
    A = K.dense_forward(X, W, None, activation, backend=backend)
    dA = rng.standard_normal(A.shape)
    full = K.dense_backward(dA, X, W, A, activation, input_grad=input_grad, backend=backend)
    dW = np.empty_like(W)
    dX = np.empty_like(X) if input_grad else None
    got = K.dense_backward(dA, X, W, A, activation, input_grad=input_grad, bias_grad=False,
                           out=(dX, dW, None), backend=backend)
    assert got[2] is None and got[1] is dW and (got[0] is dX)
    for have, want in zip(got[:2], full[:2]):
        if want is not None:
            np.testing.assert_array_equal(have, want)
    with pytest.raises(ValueError, match="out's db must be None here"):
        K.dense_backward(dA, X, W, A, activation, bias_grad=False,
                         out=(np.empty_like(X), dW, np.empty(W.shape[1])), backend=backend)


@over_backends
def test_backward_without_bias_gradient_finds_nan(rng, backend):
    """A linear layer without db runs only its products: NaN in dA still reaches dW, named."""
    X, W, _ = dense_data(rng, 30, 8, 5, np.float64, bias=False)
    A = K.dense_forward(X, W, None, backend=backend)
    dA = rng.standard_normal(A.shape)
    dA[3, 2] = np.nan
    with pytest.raises(ValueError, match="dA contains NaN or inf"):
        K.dense_backward(dA, X, W, A, bias_grad=False, backend=backend)
