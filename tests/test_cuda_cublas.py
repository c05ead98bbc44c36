"""The dense kernels' cuBLAS path (``fastnn.kernels.cuda.cublas``, ``fastnn.config.CUDA_GEMM``).

Numba's CUDA simulator cannot run cuBLAS. There the product itself is stood in for by NumPy on
the simulator's arrays, so that everything around it runs as on a GPU: the elementwise epilogue
(bias, activation, NaN/inf count), the one count pass over the backward products, and the
dispatch. Asking for "cublas" in the simulator gives a clear error. On a real GPU with CuPy the
last tests run cuBLAS itself (full float32 and TF32, against float64); elsewhere they are skipped.
"""
import importlib.util

import numpy as np
import pytest
from helpers import over_dtypes
from numba import cuda
from test_cuda_kernels import (
    ACTIVATIONS,
    check_dense,
    dense_data,
    pytestmark,  # noqa: F401  (the same warning filters)
    small_blocks,  # noqa: F401  (autouse fixture: applies here too)
)

import fastnn.kernels.cuda as kc
from fastnn import config
from fastnn.errors import NonFiniteError
from fastnn.kernels import reference as ref
from fastnn.kernels.cuda import cublas

ON_A_GPU = not kc.is_simulator() and importlib.util.find_spec("cupy") is not None


@pytest.fixture
def stand_in(monkeypatch):
    """The library path with NumPy doing the product (what cuBLAS would compute); returns the
    list of products asked for."""
    products = []

    def matmul(A, B, C, trans_a=False, trans_b=False):
        a, b = A.copy_to_host(), B.copy_to_host()
        C.copy_to_device(np.ascontiguousarray((a.T if trans_a else a) @ (b.T if trans_b else b)))
        products.append((tuple(A.shape), tuple(B.shape), trans_a, trans_b))

    monkeypatch.setattr(cublas, "in_use", lambda: True)
    monkeypatch.setattr(cublas, "matmul", matmul)
    return products


@over_dtypes
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_the_library_path_matches_the_reference(rng, dtype, activation, stand_in):
    """Forward: one product, then the epilogue adds the bias and applies g; backward: dX and dW
    as products of the stored arrays, read transposed (no copies)."""
    check_dense(rng, (13, 9, 4), dtype, activation)
    assert stand_in == [((13, 9), (9, 4), False, False),   # X @ W
                        ((13, 4), (9, 4), False, True),    # dZ @ W.T
                        ((13, 9), (13, 4), True, False)]   # X.T @ dZ


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # (NumPy's)
def test_the_library_path_counts_nan_and_inf(rng, stand_in):
    """The epilogue counts NaN/inf in the forward product, one pass counts them in dX and dW (or
    in W when dX is not asked for, as the tiled kernel's path does)."""
    X, W, b = dense_data(rng, 6, 5, 3, np.float32)
    A = ref.dense_forward(X, W, b, "relu")
    dA = np.ones_like(A)
    W_bad = W.copy()
    W_bad[2, 1] = np.nan
    with pytest.raises(NonFiniteError):
        kc.dense_forward(X, W_bad, b, "relu")
    X_bad = X.copy()
    X_bad[0, 0] = np.inf
    with pytest.raises(NonFiniteError):
        kc.dense_backward(dA, X_bad, W, A, "relu")  # (dW)
    with pytest.raises(NonFiniteError):
        kc.dense_backward(dA, X, W_bad, A, "relu")  # (dX)
    with pytest.raises(NonFiniteError):
        kc.dense_backward(dA, X, W_bad, A, "relu", input_grad=False)  # (W itself)
    dX, dW, db = kc.dense_backward(dA, X, W, A, "relu", input_grad=False)
    assert dX is None and np.isfinite(dW).all() and np.isfinite(db).all()


def test_cublas_asked_for_where_it_cannot_run_says_why(monkeypatch):
    X, W = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    monkeypatch.setattr(config, "CUDA_GEMM", "bogus")
    with pytest.raises(ValueError, match='CUDA_GEMM must be "auto", "cublas" or "numba"'):
        kc.dense_forward(X, W)
    monkeypatch.setattr(config, "CUDA_GEMM", "auto")
    assert cublas.in_use() == ON_A_GPU
    if kc.is_simulator():
        monkeypatch.setattr(config, "CUDA_GEMM", "cublas")
        with pytest.raises(RuntimeError, match='"cublas": Numba\'s CUDA simulator cannot run '
                                               'cuBLAS .*"auto" or "numba"'):
            kc.dense_forward(X, W)


# --- on a real GPU ---------------------------------------------------------------------------

gpu_only = pytest.mark.skipif(not ON_A_GPU, reason="needs a real GPU and CuPy (cuBLAS)")


@gpu_only
@over_dtypes
@pytest.mark.parametrize("shape", [(256, 512, 384), (64, 784, 256), (4096, 256, 10)],
                         ids=lambda s: "x".join(map(str, s)))
def test_cublas_products_match_the_reference(rng, monkeypatch, dtype, shape):
    monkeypatch.setattr(config, "CUDA_GEMM", "cublas")
    check_dense(rng, shape, dtype, "relu")


@gpu_only
def test_tf32_is_opt_in_and_its_error_is_bounded(rng, monkeypatch):
    """Full float32 by default (relative error ~1e-6 against float64); CUDA_ALLOW_TF32 trades
    it for tensor cores (inputs rounded to 10 mantissa bits: ~1e-3)."""
    X, W, _ = dense_data(rng, 512, 1024, 512, np.float32)
    exact = X.astype(np.float64) @ W.astype(np.float64)
    Xd, Wd = cuda.to_device(X), cuda.to_device(W)
    monkeypatch.setattr(config, "CUDA_GEMM", "cublas")
    errors = {}
    for tf32 in (False, True):
        monkeypatch.setattr(config, "CUDA_ALLOW_TF32", tf32)
        A = kc.dense_forward(Xd, Wd).copy_to_host()
        errors[tf32] = float(np.abs(A - exact).max() / np.abs(exact).max())
    assert errors[False] < 1e-5 and errors[True] < 1e-2, errors
