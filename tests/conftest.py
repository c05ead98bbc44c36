"""Shared pytest setup for the fastnn suite.

Fixtures live here; plain helpers (tolerances, strategies, gradient checks) live in
``tests/helpers.py`` so that test modules can import them by name.
"""
import os

# The CUDA simulator must be enabled before numba is first imported anywhere in the process
# (numba reads the variable at import time); the CUDA kernels and their tests arrive later.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# Make ``import fastnn`` work also when pytest is run as ``pytest`` from an uninstalled checkout.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

# First calls compile Numba kernels (seconds): no per-example deadline. Few examples keep CI fast;
# FASTNN_HYPOTHESIS_PROFILE=thorough runs 500 per test.
settings.register_profile("fastnn", max_examples=30, deadline=None)
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("FASTNN_HYPOTHESIS_PROFILE", "fastnn"))


@pytest.fixture
def rng():
    """A seeded NumPy Generator: every test gets the same stream."""
    return np.random.default_rng(20240611)


@pytest.fixture(autouse=True)
def _restore_default_backend():
    """Undo any change of the default backend a test makes, even if the test fails."""
    import fastnn

    before = fastnn.get_backend()
    yield
    fastnn.set_backend(before)


@pytest.fixture
def parallel_path(monkeypatch):
    """Force the CPU kernels' parallel path whatever the input size (thresholds set to 0), on
    every Numba thread (the thread-count chooser off: it could pick one thread, the serial path,
    for some calls of a test and not others)."""
    from fastnn import config

    for name in ("SOFTMAX_PARALLEL_MIN_ELEMENTS", "BATCHNORM_PARALLEL_MIN_ELEMENTS",
                 "DENSE_PARALLEL_MIN_FLOPS", "OPTIM_PARALLEL_MIN_ELEMENTS",
                 "ACTIVATION_PARALLEL_MIN_ELEMENTS", "LOSS_PARALLEL_MIN_ELEMENTS"):
        monkeypatch.setattr(config, name, 0)
    monkeypatch.setattr(config, "CPU_ADAPTIVE_THREADS", False)
