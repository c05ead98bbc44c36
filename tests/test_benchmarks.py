"""pytest-benchmark timings of each cpu kernel beside its NumPy reference, at one moderate shape.

Skipped in normal runs (pyproject's addopts has ``--benchmark-disable --benchmark-skip``). Run:

    python -m pytest tests/test_benchmarks.py --benchmark-enable --benchmark-only -p no:randomly

``--benchmark-only`` overrides ``--benchmark-skip`` and ``--benchmark-enable`` overrides
``--benchmark-disable``. Each kernel has its own ``benchmark.group``, so the "numpy" and "cpu" rows
sit side by side. The tests check results (both backends against a float64 reference), never
speed. Each kernel is called once before timing, so compilation is not timed.
"""
import numpy as np
import pytest

from fastnn import kernels

BACKENDS = ["numpy", "cpu"]


def _rng():
    return np.random.default_rng(0)


def _close(got, want, rtol=1e-4):
    """float32 result against its float64 reference, to float32 accuracy."""
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


def _run(benchmark, group, fn):
    """Warm (compile) fn, then time it in ``group``; returns its result."""
    fn()
    benchmark.group = group
    return benchmark(fn)


def _f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


@pytest.mark.parametrize("backend", BACKENDS)
def test_dense_forward_backward(benchmark, backend):
    m, n_in, n_out = 256, 512, 512
    g = _rng()
    X = g.standard_normal((m, n_in), dtype=np.float32)
    W = g.standard_normal((n_in, n_out), dtype=np.float32) * np.float32(np.sqrt(2 / n_in))
    b = g.standard_normal(n_out, dtype=np.float32) * np.float32(0.1)
    dA = g.standard_normal((m, n_out), dtype=np.float32)

    def step(X, W, b, dA, backend):
        A = kernels.dense_forward(X, W, b, "relu", backend=backend)
        return (A, *kernels.dense_backward(dA, X, W, A, "relu", backend=backend))

    got = _run(benchmark, f"dense relu fwd+bwd {m}x{n_in}x{n_out}",
               lambda: step(X, W, b, dA, backend))
    want = step(*_f64(X, W, b, dA), "numpy")
    for g_, w_ in zip(got, want):  # A, dX, dW, db
        _close(g_, w_)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batchnorm_forward_backward(benchmark, backend):
    m, n = 4096, 256
    g = _rng()
    X = g.standard_normal((m, n), dtype=np.float32) * np.float32(2) + np.float32(1)
    gamma = np.float32(1) + g.standard_normal(n, dtype=np.float32) * np.float32(0.1)
    beta = g.standard_normal(n, dtype=np.float32) * np.float32(0.1)
    dY = g.standard_normal((m, n), dtype=np.float32)

    def step(X, gamma, beta, dY, backend):
        running = np.zeros(n, X.dtype), np.ones(n, X.dtype)
        Y, cache = kernels.batchnorm_forward(X, gamma, beta, *running, backend=backend)
        return (Y, *kernels.batchnorm_backward(dY, cache, backend=backend), *running)

    got = _run(benchmark, f"batchnorm fwd+bwd {m}x{n}", lambda: step(X, gamma, beta, dY, backend))
    want = step(*_f64(X, gamma, beta, dY), "numpy")
    for g_, w_ in zip(got, want):  # Y, dX, dgamma, dbeta, running_mean, running_var
        _close(g_, w_, rtol=2e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_cross_entropy(benchmark, backend):
    m, c = 4096, 100
    g = _rng()
    Z = g.standard_normal((m, c), dtype=np.float32) * np.float32(3)
    y = g.integers(0, c, m)

    loss, dZ = _run(benchmark, f"softmax cross-entropy {m}x{c}",
                    lambda: kernels.softmax_cross_entropy(Z, y, backend=backend))
    want_loss, want_dZ = kernels.softmax_cross_entropy(Z.astype(np.float64), y, backend="numpy")
    assert isinstance(loss, float) and loss == pytest.approx(want_loss, rel=1e-5)
    _close(dZ, want_dZ)


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax(benchmark, backend):
    m, c = 4096, 100
    Z = _rng().standard_normal((m, c), dtype=np.float32) * np.float32(3)

    P = _run(benchmark, f"softmax {m}x{c}", lambda: kernels.softmax(Z, backend=backend))
    _close(P, kernels.softmax(Z.astype(np.float64), backend="numpy"))
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-5)
