"""asv glue for the fastnn suite: thread pinning, closures of ``fastnn.bench``'s cases built once
per process, warm-up, speedups in interleaved rounds, and the base class of the case timings.
The workloads themselves, and the rows timed, are ``fastnn.bench``'s (the tables of
``python -m fastnn bench``).

Threads: ``FASTNN_BENCH_THREADS`` (default: every core this process may run on) sets Numba's
thread count and the BLAS libraries' (through threadpoolctl), and PyTorch's when a torch
benchmark runs (JAX keeps its own pool). The numbers are printed once per process, on stderr
(``asv run --show-stderr`` shows them).

``asv run --python=same`` does not install fastnn: when it is not importable, the checkout holding
this folder is put on ``sys.path``; the printed line says which fastnn was imported.

asv runs each benchmark in a process forked from one that imported this suite
(``launch_method: forkserver`` in asv.conf.json): the heavy imports happen here, once. A
benchmark whose implementation is not installed in asv's environment (PyTorch, JAX) is skipped:
``setup()`` raises NotImplementedError.
"""
import abc
import functools
import importlib
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

try:
    import fastnn
except ImportError:  # asv --python=same: the project is not installed, use this checkout
    sys.path.insert(0, REPO_ROOT)
    import fastnn
from fastnn.bench import interleaved, peers, ratio  # noqa: E402

# imported once, in asv's forkserver (SciPy's BLAS is the one fastnn's Numba kernels call)
for _library in ("scipy.linalg.cython_blas", "threadpoolctl", "torch", "jax"):
    try:
        importlib.import_module(_library)
    except ImportError:
        pass

# --- threads -------------------------------------------------------------------------------------

def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


THREADS = int(os.environ.get("FASTNN_BENCH_THREADS") or _cores())


_pinned = []


def pin_threads():
    """Pin Numba and BLAS to ``THREADS`` threads, once per process, and print what was set. Not
    at import: asv's forkserver imports this suite and then forks, and a process that has
    started Numba's OpenMP threads cannot fork safely."""
    if _pinned:
        return
    import numba
    from threadpoolctl import threadpool_info, threadpool_limits

    from fastnn.kernels.cpu import BLAS_PROVIDER

    numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))
    _pinned.append(threadpool_limits(limits=THREADS, user_api="blas"))
    blas = ", ".join(sorted(f"{os.path.basename(os.path.dirname(i['filepath']))} "
                            f"{i['internal_api']}={i['num_threads']}"
                            for i in threadpool_info() if i["user_api"] == "blas"))
    print(f"fastnn benchmarks: FASTNN_BENCH_THREADS={THREADS}; numba threads="
          f"{numba.get_num_threads()} (max {numba.config.NUMBA_NUM_THREADS}); BLAS threads: "
          f"{blas}; fastnn's products: {BLAS_PROVIDER}; fastnn from "
          f"{os.path.dirname(fastnn.__file__)}", file=sys.stderr)


# --- closures, warm-up, speedups -----------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def closure(case, impl):
    """``case.closure(impl)``, built once per process: asv (asv_runner >= 0.3) re-runs
    ``setup()`` before every timed sample. NotImplementedError (asv's skip) when ``impl`` is not
    installed here."""
    pin_threads()
    if peers.IMPLEMENTATIONS[impl].library == "torch" and peers.usable(impl):
        peers.library(impl).set_num_threads(THREADS)
    return case.closure(impl)


_warmed = set()


def warm(fn):
    """Call ``fn()`` once per process, in setup(): it compiles the Numba kernels for these types
    and this size's path (serial or parallel), or loads them from Numba's cache (and JAX's jit),
    outside the timings."""
    if fn not in _warmed:
        fn()
        _warmed.add(fn)


def speedup(reference, fast):
    """Time of ``reference()`` / time of ``fast()``, measured here in turns: the median of the
    rounds' ratios of ``fastnn.bench.interleaved``, which pauses before each turn, so that the
    threads the other left spinning (OpenBLAS's after NumPy's matmul, Numba's OpenMP pool after
    a parallel kernel) are idle, and spreads a slow spell of the machine over both. 3 rounds of
    50 ms turns (the CLI's table: 5 of 120 ms) keep the suite's many ratios quick."""
    times = interleaved({"reference": reference, "fast": fast}, rounds=3, budget=0.05)
    return ratio(times, "reference", "fast")


# --- the base class of the case timings: abstract, so that asv does not collect it --------------

class CaseTimes(abc.ABC):
    """Seconds per call of each case (``cases``: {label: ``fastnn.bench`` case}) in each
    implementation, ``sync()`` after each call."""
    param_names = ["case", "implementation"]
    repeat = (2, 10, 2.0)
    timeout = 300
    sync = staticmethod(lambda: None)

    @staticmethod
    @abc.abstractmethod
    def check():
        """Raise NotImplementedError (asv's skip) where these cases cannot run."""

    def setup(self, label, impl):
        self.check()
        self.fn = closure(self.cases[label], impl)
        warm(self.fn)

    def time_call(self, label, impl):
        self.fn()
        self.sync()
