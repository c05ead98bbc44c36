"""The BLAS behind the CPU kernels' matrix products (``fastnn.kernels.cpu._blas``): the dense
kernel tests pass on each provider, and a bad or unavailable choice is a clear error."""
import importlib.metadata
import os
import subprocess
import sys

import pytest

from fastnn.kernels.cpu import _blas

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _mkl_installed():
    try:
        importlib.metadata.distribution("mkl")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def test_provider_is_bound():
    assert _blas.PROVIDER in ("mkl", "scipy")
    assert _blas.PROVIDER == "mkl" or not _mkl_installed() or _blas.config.BLAS == "scipy"


@pytest.mark.parametrize("provider", ["scipy", "mkl"])
def test_dense_kernels_pass_on_each_provider(provider):
    """The other provider than this process's, in a subprocess: the symbols are bound once at
    import (this process's provider is covered by the rest of the suite)."""
    if provider == _blas.PROVIDER:
        pytest.skip(f"{provider} is this process's provider: tested by test_dense.py here")
    if provider == "mkl" and not _mkl_installed():
        pytest.skip("the mkl package is not installed")
    env = dict(os.environ, FASTNN_BLAS=provider)
    bound = subprocess.run(
        [sys.executable, "-c", "from fastnn.kernels.cpu import _blas; print(_blas.PROVIDER)"],
        env=env, capture_output=True, text=True, check=True)
    assert bound.stdout.strip() == provider
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         os.path.join(ROOT, "tests", "test_dense.py")],
        env=env, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert " passed" in run.stdout


def test_unknown_choice_names_the_variable():
    with pytest.raises(ValueError, match="FASTNN_BLAS must be 'auto', 'mkl' or 'scipy', "
                                         "got 'atlas'"):
        _blas._bind_provider("atlas")


def test_mkl_asked_for_but_missing(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    assert _blas._load_mkl() == (None, "the mkl package is not installed "
                                       "(pip install fastnn[mkl])")
    with pytest.raises(ImportError, match="FASTNN_BLAS=mkl, but the mkl package is not installed"):
        _blas._bind_provider("mkl")
