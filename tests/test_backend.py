"""Choosing the backend: fastnn.set_backend / get_backend, the default, and per-call overrides."""
import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

import fastnn
from fastnn import kernels as K
from fastnn.kernels import cpu, reference
from fastnn.kernels.cpu._jit import num_threads

ROOT = Path(__file__).resolve().parents[1]


def default_backend_in_fresh_process(**env):
    """fastnn.get_backend() in a new interpreter with FASTNN_BACKEND unset, then ``env`` added."""
    clean = {k: v for k, v in os.environ.items() if k != "FASTNN_BACKEND"}
    clean["PYTHONPATH"] = os.pathsep.join([str(ROOT), clean.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", "import fastnn; print(fastnn.get_backend())"],
                         env={**clean, **env}, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_default_is_cpu_and_fastnn_backend_overrides_it():
    assert default_backend_in_fresh_process() == "cpu"
    assert default_backend_in_fresh_process(FASTNN_BACKEND="numpy") == "numpy"


def test_set_and_get_round_trip():
    before = fastnn.get_backend()
    try:
        for name in ("numpy", "cpu", "numpy"):
            fastnn.set_backend(name)
            assert fastnn.get_backend() == name
    finally:
        fastnn.set_backend(before)
    assert fastnn.get_backend() == before


@pytest.mark.parametrize("name", ["tpu", "gpu", "CPU", "", None, 3])
def test_unknown_names_are_rejected_and_change_nothing(name):
    before = fastnn.get_backend()
    with pytest.raises(ValueError, match="unknown backend"):
        fastnn.set_backend(name)
    assert fastnn.get_backend() == before


def _spy_on(monkeypatch, module, fn_name):
    """Record the calls of ``module.fn_name`` (still running it)."""
    calls = []
    real = getattr(module, fn_name)

    def spy(*args, **kwargs):
        calls.append(fn_name)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, fn_name, spy)
    return calls


@pytest.mark.parametrize("default", ["numpy", "cpu"])
def test_default_and_per_call_backend_are_used(monkeypatch, rng, default):
    """Calls without backend= go to the default; backend= overrides it for one call."""
    other = "cpu" if default == "numpy" else "numpy"
    modules = {"numpy": reference, "cpu": cpu}
    calls = {name: _spy_on(monkeypatch, module, "softmax") for name, module in modules.items()}
    Z = rng.standard_normal((3, 4))
    before = fastnn.get_backend()
    try:
        fastnn.set_backend(default)
        K.softmax(Z)
        assert (len(calls[default]), len(calls[other])) == (1, 0)
        K.softmax(Z, backend=other)
        assert (len(calls[default]), len(calls[other])) == (1, 1)
        assert fastnn.get_backend() == default
    finally:
        fastnn.set_backend(before)


def _calls(rng):
    """One call of each public kernel (as name, zero-argument function of backend)."""
    X = rng.standard_normal((6, 4)).astype(np.float32)
    W = rng.standard_normal((4, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    A = K.dense_forward(X, W, b, "sigmoid", backend="numpy")
    g = np.ones(4, np.float32)
    _, cache = K.batchnorm_forward(X, g, g, g * 0, g.copy(), backend="numpy")
    y = rng.integers(0, 3, 6)
    return {
        "dense_forward": lambda **kw: K.dense_forward(X, W, b, "sigmoid", **kw),
        "dense_backward": lambda **kw: K.dense_backward(A, X, W, A, "sigmoid", **kw),
        "batchnorm_forward": lambda **kw: K.batchnorm_forward(X, g, g, g * 0, g.copy(), **kw)[0],
        "batchnorm_backward": lambda **kw: K.batchnorm_backward(X, cache, **kw),
        "softmax": lambda **kw: K.softmax(A, **kw),
        "log_softmax": lambda **kw: K.log_softmax(A, **kw),
        "hardmax": lambda **kw: K.hardmax(A, **kw),
        "softmax_cross_entropy": lambda **kw: K.softmax_cross_entropy(A, y, **kw),
    }


@pytest.mark.parametrize("fn", list(_calls(np.random.default_rng(0))))
def test_default_backend_equals_explicit_cpu(rng, fn):
    """With the default backend "cpu", calls without backend= (or with backend=None) give
    bit-identical results to backend="cpu"."""
    def as_tuple(result):
        return result if isinstance(result, tuple) else (result,)

    before = fastnn.get_backend()
    try:
        fastnn.set_backend("cpu")
        call = _calls(rng)[fn]
        explicit = as_tuple(call(backend="cpu"))
        for implicit in (as_tuple(call()), as_tuple(call(backend=None))):
            assert len(implicit) == len(explicit)
            for got, want in zip(implicit, explicit):
                np.testing.assert_array_equal(got, want)
    finally:
        fastnn.set_backend(before)


def _run_without_simulator(code):
    """Run ``code`` in a fresh interpreter with the CUDA simulator off (this machine has no GPU)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)


def test_import_never_touches_the_gpu_and_cuda_says_why_it_cannot_run():
    from fastnn.kernels.cuda import gpu_available

    if gpu_available() and not __import__("numba").config.ENABLE_CUDASIM:
        pytest.skip("a real GPU is present")
    result = _run_without_simulator(
        "import sys, numpy as np, fastnn\n"
        "assert 'numba.cuda' not in sys.modules, 'import fastnn loaded numba.cuda'\n"
        "try:\n"
        "    fastnn.set_backend('cuda')\n"
        "except RuntimeError as error:\n"
        "    print('ERROR', error)\n"
        "print('DEFAULT', fastnn.get_backend())\n"
        "try:\n"
        "    fastnn.kernels.softmax(np.ones((2, 3)), backend='cuda')\n"
        "except RuntimeError as error:\n"
        "    print('KERNEL', error)\n")
    assert result.returncode == 0, result.stderr
    assert "ERROR fastnn's CUDA backend cannot run:" in result.stdout
    assert 'pip install "fastnn[cuda]"' in result.stdout
    assert "DEFAULT cpu" in result.stdout  # nothing changed
    assert "KERNEL fastnn's CUDA backend cannot run" in result.stdout


def test_cpu_thread_count_follows_numba():
    """The kernels' fast read of Numba's thread count agrees with numba.get_num_threads."""
    before = numba.get_num_threads()
    try:
        for n in (1, before):
            numba.set_num_threads(n)
            assert num_threads() == numba.get_num_threads() == n
    finally:
        numba.set_num_threads(before)
