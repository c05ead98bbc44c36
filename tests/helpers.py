"""Helpers shared by the test modules: parametrizations, tolerances, strategies, gradient checks."""
import re
import textwrap

import numpy as np
import pytest
from hypothesis import strategies as st

BACKENDS = ("numpy", "cpu")
DTYPES = (np.float32, np.float64)

#: ``@over_backends`` / ``@over_dtypes``: run a test for every backend / every float dtype.
over_backends = pytest.mark.parametrize("backend", BACKENDS)
over_dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)


# --- tolerances ----------------------------------------------------------------------------------

def tolerance(dtype, scale=1.0):
    """(rtol, atol) for two computations of one quantity in ``dtype``.

    ``scale`` is the size of the terms that were summed to make a value (for a dot product of
    length k with O(1) terms, about sqrt(k)): rounding errors grow with it, so atol does too.
    float64 is held to ~1e-10 (a wrong formula is off by far more); float32 to a few hundred ulp.
    """
    if np.dtype(dtype) == np.float64:
        return 1e-10, 1e-12 * scale
    return 2e-5, 2e-6 * scale


def assert_close(actual, desired, dtype, scale=1.0, what=""):
    """``actual`` matches ``desired`` within ``tolerance(dtype, scale)``; an array ``actual``
    must also have ``dtype`` and the shape of ``desired``."""
    if isinstance(actual, np.ndarray):
        assert actual.dtype == np.dtype(dtype), f"{what}: dtype {actual.dtype}, expected {dtype}"
        assert actual.shape == np.shape(desired), f"{what}: shape {actual.shape}"
    rtol, atol = tolerance(dtype, scale)
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol, err_msg=what)


# --- hypothesis strategies -----------------------------------------------------------------------

#: Seeds for ``np.random.default_rng``: Hypothesis picks shapes and a seed, NumPy draws the values.
seeds = st.integers(0, 2**32 - 1)


def matrix_shapes(min_rows=1, max_rows=64, max_cols=40):
    """(m, n) with m in [min_rows, max_rows] and n in [1, max_cols] (so 1-row / 1-column cases)."""
    return st.tuples(st.integers(min_rows, max_rows), st.integers(1, max_cols))


def dense_shapes(max_rows=64, max_features=40):
    """(m, n_in, n_out), each from 1."""
    return st.tuples(st.integers(1, max_rows), st.integers(1, max_features),
                     st.integers(1, max_features))


# --- gradient checking ---------------------------------------------------------------------------

def numerical_gradient(f, x, eps=1e-6):
    """Central-difference gradient of the scalar ``f()`` with respect to the array ``x``, which
    ``f`` reads and which is perturbed in place (and restored) one entry at a time."""
    grad = np.zeros(x.shape)
    flat = x.reshape(-1)
    assert np.shares_memory(flat, x)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        grad.flat[i] = (up - down) / (2 * eps)
    return grad


def relative_error(g, g_num):
    """||g - g_num|| / (||g|| + ||g_num||) (0 when both are 0)."""
    denom = np.linalg.norm(g) + np.linalg.norm(g_num)
    return 0.0 if denom == 0 else float(np.linalg.norm(g - g_num) / denom)


def assert_gradient(analytic, f, x, name, eps=1e-6, limit=1e-7):
    """The analytic gradient of ``f`` with respect to ``x`` agrees with central differences."""
    numeric = numerical_gradient(f, x, eps)
    assert np.shape(analytic) == x.shape, name
    err = relative_error(np.asarray(analytic, np.float64), numeric)
    assert err < limit, f"gradient {name}: relative error {err:.3g}"


# --- scripts run in a subprocess -----------------------------------------------------------------

def slow_search_script(sleep, n_trials, study_name):
    """A script that runs a random search of ``n_trials`` trials, each sleeping ``sleep`` s, on
    the storage given as its first argument, and prints the trial counts (for tests that kill
    it, or run two at once)."""
    return textwrap.dedent(f"""
        import sys
        import time

        from fastnn.tune import Uniform, search


        def slow(trial, x):
            time.sleep({sleep})
            return x


        if __name__ == "__main__":
            result = search(slow, {{"x": Uniform(0.0, 1.0)}}, {n_trials}, storage=sys.argv[1],
                            study_name={study_name!r}, heartbeat=1, progress=False)
            print(result.counts())
    """)


def cli_fails(argv, match, status=2):
    """``fastnn``'s command line on ``argv`` ends with one line matching ``match`` (the message
    it prints on stderr) and exit ``status``; returns the line."""
    from fastnn.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == status
    line = str(info.value)
    assert "\n" not in line and re.search(match, line), line
    return line


def interruptible():
    """``preexec_fn`` for a command that a test interrupts with SIGINT: a program started in
    the background by a shell (``cmd &``, as CI scripts may be run) ignores SIGINT, its children
    inherit that, and Python then installs no Ctrl-C handler; this gives the command the
    default, so that the test's SIGINT is a Ctrl-C."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
