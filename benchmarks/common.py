"""Shared pieces of the fastnn asv suite: thread pinning, seeded data, warm-up, timing, torch.

Threads: ``FASTNN_BENCH_THREADS`` (default: every core this process may run on) sets Numba's
thread count and the BLAS libraries' (through threadpoolctl), and torch's when a torch benchmark
runs. The numbers are printed once per process, on stderr (``asv run --show-stderr`` shows them).

``asv run --python=same`` does not install fastnn: when it is not importable, the checkout holding
this folder is put on ``sys.path``; the printed line says which fastnn was imported.

asv (asv_runner >= 0.3) re-runs ``setup()`` before every timed sample, so the data builders are
memoized (inputs are never modified by the kernels) and ``warm`` calls a kernel once per process.
"""
import abc
import functools
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

try:
    import fastnn
except ImportError:  # asv --python=same: the project is not installed, use this checkout
    sys.path.insert(0, REPO_ROOT)
    import fastnn
from fastnn import kernels  # noqa: E402  (re-exported for the bench modules)

__all__ = ["IMPLEMENTATIONS", "THREADS", "batchnorm_data", "dense_data", "first_call_seconds",
           "kernels", "softmax_data", "speedup", "torch_or_skip", "warm"]

#: "numpy" is fastnn's reference, "cpu" its Numba kernels, "torch" PyTorch on the CPU.
IMPLEMENTATIONS = ["numpy", "cpu", "torch"]


# --- threads -------------------------------------------------------------------------------------

def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


THREADS = int(os.environ.get("FASTNN_BENCH_THREADS") or _cores())


def _pin_threads(n):
    """Pin Numba and BLAS to ``n`` threads and print what was set; returns the BLAS limiter."""
    import numba
    import scipy.linalg.cython_blas  # noqa: F401  (load SciPy's BLAS, the one Numba calls)
    from threadpoolctl import threadpool_info, threadpool_limits

    from fastnn.kernels.cpu import _blas

    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    limiter = threadpool_limits(limits=n, user_api="blas")
    blas = ", ".join(sorted(f"{os.path.basename(os.path.dirname(i['filepath']))} "
                            f"{i['internal_api']}={i['num_threads']}"
                            for i in threadpool_info() if i["user_api"] == "blas"))
    print(f"fastnn benchmarks: FASTNN_BENCH_THREADS={n}; numba threads={numba.get_num_threads()} "
          f"(max {numba.config.NUMBA_NUM_THREADS}); BLAS threads: {blas}; "
          f"fastnn's products: {_blas.PROVIDER_INFO}; "
          f"fastnn from {os.path.dirname(fastnn.__file__)}", file=sys.stderr)
    return limiter


_BLAS_LIMITER = _pin_threads(THREADS)


def torch_or_skip():
    """The torch module, with ``THREADS`` threads; raises NotImplementedError (asv's skip) when
    torch is not installed."""
    try:
        import torch
    except ImportError:
        raise NotImplementedError("torch is not installed") from None
    torch.set_num_threads(THREADS)
    return torch


# --- data (seeded, float32) ----------------------------------------------------------------------

@functools.lru_cache(maxsize=2)
def dense_data(m, n_in, n_out, seed=0):
    """X (m, n_in), W (n_in, n_out) He-scaled, b (n_out,), dA (m, n_out)."""
    g = np.random.default_rng(seed)
    return SimpleNamespace(
        X=g.standard_normal((m, n_in), dtype=np.float32),
        W=g.standard_normal((n_in, n_out), dtype=np.float32) * np.float32(np.sqrt(2.0 / n_in)),
        b=g.standard_normal(n_out, dtype=np.float32) * np.float32(0.1),
        dA=g.standard_normal((m, n_out), dtype=np.float32))


@functools.lru_cache(maxsize=2)
def batchnorm_data(m, n, seed=0):
    """X (m, n) with mean 1 and std 2, gamma, beta (n,), dY (m, n). The running statistics are
    updated in place by every call: build them fresh with ``np.zeros(n)``/``np.ones(n)``."""
    g = np.random.default_rng(seed)
    return SimpleNamespace(
        X=g.standard_normal((m, n), dtype=np.float32) * np.float32(2) + np.float32(1),
        gamma=np.float32(1) + g.standard_normal(n, dtype=np.float32) * np.float32(0.1),
        beta=g.standard_normal(n, dtype=np.float32) * np.float32(0.1),
        dY=g.standard_normal((m, n), dtype=np.float32))


@functools.lru_cache(maxsize=2)
def softmax_data(m, c, seed=0):
    """Logits Z (m, c) with std 3, class labels y (m,) int64."""
    g = np.random.default_rng(seed)
    return SimpleNamespace(Z=g.standard_normal((m, c), dtype=np.float32) * np.float32(3),
                           y=g.integers(0, c, m))


# --- warm-up and timing --------------------------------------------------------------------------

_warmed = set()


def warm(key, fn):
    """Call ``fn()`` once per process for ``key`` (e.g. ``("dense", shape, impl)``), in setup():
    it compiles the Numba kernels for these types and this size's path (serial or parallel), or
    loads them from Numba's cache, outside the timings."""
    if key not in _warmed:
        fn()
        _warmed.add(key)


def speedup(reference, fast):
    """Time of ``reference()`` / time of ``fast()``, measured here in turns: the median of the
    rounds' ratios of ``fastnn.bench.interleaved``, which pauses before each turn, so that the
    threads the other left spinning (OpenBLAS's after NumPy's matmul, Numba's OpenMP pool after
    a parallel kernel) are idle, and spreads a slow spell of the machine over both."""
    from fastnn.bench import interleaved, ratio

    return ratio(interleaved({"reference": reference, "fast": fast}), "reference", "fast")


# --- compile time, measured in a fresh interpreter -----------------------------------------------

def first_call_seconds(module, cache):
    """{kernel: seconds, "total": sum} for the first calls of ``module.compile_cases()`` (a bench
    module's name) in a fresh interpreter, less the time of the same calls once compiled.

    cache=False sets FASTNN_CACHE=0: a real compile. cache=True runs the interpreter twice over a
    fresh, empty NUMBA_CACHE_DIR and reports the second run (kernels loaded from Numba's cache).
    """
    # The fastnn under test (the one imported here) first, then this suite's folder.
    paths = [os.path.dirname(os.path.dirname(fastnn.__file__)), REPO_ROOT]
    code = (f"import sys; sys.path[:0] = {paths!r}; "
            f"from benchmarks.common import _first_calls_main; _first_calls_main({module!r})")
    with tempfile.TemporaryDirectory() as cache_dir:
        env = dict(os.environ, FASTNN_CACHE="1" if cache else "0", NUMBA_CACHE_DIR=cache_dir)
        for _ in range(2 if cache else 1):
            run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                 text=True)
            if run.returncode != 0:
                raise RuntimeError(f"compile-time subprocess failed:\n{run.stderr}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def _first_calls_main(module):
    """In the fresh interpreter: time each kernel's first calls, print the JSON on stdout."""
    import fastnn.kernels.cpu  # noqa: F401  (module import is not compile time)

    seconds = {}
    for kernel, calls in importlib.import_module(module).compile_cases().items():
        t0 = time.perf_counter()
        for call in calls:
            call()
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        for call in calls:
            call()
        seconds[kernel] = max(first - (time.perf_counter() - t0), 0.0)
    seconds["total"] = sum(seconds.values())
    print(json.dumps(seconds))


# --- base classes the bench_<area> modules share: abstract, so that asv does not collect them
# as benchmarks of their own ----------------------------------------------------------------------

class ForwardBackwardTimes(abc.ABC):
    """Times of ``forward()`` and ``forward_backward()`` from ``self.closures(shape, impl)``."""
    param_names = ["shape", "implementation"]
    repeat = (2, 10, 2.0)
    timeout = 180

    @staticmethod
    @abc.abstractmethod
    def closures(shape, impl):
        """(forward, forward_backward) closures for ``impl`` at ``shape``."""

    def setup(self, shape, impl):
        self.forward, self.forward_backward = self.closures(shape, impl)
        warm((type(self).__name__, shape, impl), lambda: (self.forward(), self.forward_backward()))

    def time_forward(self, shape, impl):
        self.forward()

    def time_forward_backward(self, shape, impl):
        self.forward_backward()


class ForwardBackwardSpeedup(abc.ABC):
    """NumPy reference time / fastnn cpu time, measured in one process, in turns."""
    param_names = ["shape"]
    timeout = 180

    @staticmethod
    @abc.abstractmethod
    def closures(shape, impl):
        """(forward, forward_backward) closures for the "numpy" or "cpu" backend."""

    def setup(self, shape):
        self.reference = self.closures(shape, "numpy")
        self.cpu = self.closures(shape, "cpu")
        warm((type(self).__name__, shape, "cpu"), self.cpu[1])

    def track_speedup_forward(self, shape):
        return speedup(self.reference[0], self.cpu[0])
    track_speedup_forward.unit = "x"

    def track_speedup_forward_backward(self, shape):
        return speedup(self.reference[1], self.cpu[1])
    track_speedup_forward_backward.unit = "x"


def compile_and_cached_seconds(module):
    """``first_call_seconds`` of a bench module with the cache off (a compile) and on."""
    return {"compile": first_call_seconds(module, cache=False),
            "cached": first_call_seconds(module, cache=True)}


class CompileTimes(abc.ABC):
    """Seconds of each cpu kernel's first calls in a fresh interpreter (in the order listed, so
    helpers shared with an earlier kernel are already compiled): FASTNN_CACHE=0 (a compile), and
    with the on-disk cache filled by an earlier interpreter. Subclasses define ``setup_cache``
    themselves: asv keys its cache by where that method is written."""
    param_names = ["kernel"]
    timeout = 600

    @abc.abstractmethod
    def setup_cache(self):
        """``compile_and_cached_seconds(__name__)``, written in the subclass's own module."""

    def track_compile_seconds(self, seconds, kernel):
        return seconds["compile"][kernel]
    track_compile_seconds.unit = "s"

    def track_cached_first_call_seconds(self, seconds, kernel):
        return seconds["cached"][kernel]
    track_cached_first_call_seconds.unit = "s"
