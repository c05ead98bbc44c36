"""Compile time: seconds of each cpu kernel's first calls in a fresh interpreter, less the same
calls once compiled, in the order listed (helpers shared with an earlier kernel are compiled by
then): over an empty Numba cache (a compile, which also fills the cache), then in a second
interpreter over that cache (the kernels loaded from it). Each kernel is called at a serial-path
and a parallel-path size (with more than one Numba thread), through the closures of
``fastnn.bench.cases``.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

from fastnn.bench import cases

from . import common


def compile_rows():
    """{kernel: the cases whose first cpu calls compile it}, in the order timed; a backward
    kernel's cases run its forward (compiled by then)."""
    rows = {}
    for name, small, large in (("dense", (16, 32, 16), (256, 256, 256)),
                               ("batchnorm", (16, 32), (1024, 64))):
        for backward in (False, True):
            rows[f"{name}_{'backward' if backward else 'forward'}"] = [
                getattr(cases, name)(*shape, backward=backward) for shape in (small, large)]
    for kind in cases.SOFTMAX_KINDS:
        rows[kind] = [cases.softmax(*shape, kind) for shape in ((16, 10), (1024, 64))]
    rows["softmax_cross_entropy"] = [cases.cross_entropy(*shape)
                                     for shape in ((16, 10), (1024, 64))]
    for rule in cases.OPTIMIZERS:
        rows[f"{rule}_update"] = [cases.optimizer(n, rule) for n in (1000, 1 << 16)]
    return rows


KERNELS = list(compile_rows())


def first_call_seconds():
    """{"compile": {kernel: seconds, "total": sum}, "cached": the same} of the first cpu calls of
    ``compile_rows()``: in a fresh interpreter over a new, empty NUMBA_CACHE_DIR, then in another
    over the cache the first one wrote."""
    # The fastnn under test (the one imported here) first, then this suite's folder.
    paths = [os.path.dirname(os.path.dirname(common.fastnn.__file__)), common.REPO_ROOT]
    code = (f"import sys; sys.path[:0] = {paths!r}; "
            "from benchmarks.bench_compile import _first_calls_main; _first_calls_main()")
    seconds = {}
    with tempfile.TemporaryDirectory() as cache_dir:
        env = dict(os.environ, FASTNN_CACHE="1", NUMBA_CACHE_DIR=cache_dir)
        for run in ("compile", "cached"):
            done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                  text=True)
            if done.returncode != 0:
                raise RuntimeError(f"compile-time subprocess failed:\n{done.stderr}")
            seconds[run] = json.loads(done.stdout.strip().splitlines()[-1])
    return seconds


def _first_calls_main():
    """In the fresh interpreter: time each kernel's first calls, print the JSON on stdout."""
    import fastnn.kernels.cpu  # noqa: F401  (module import is not compile time)

    seconds = {}
    calls_of = {kernel: [case.closure("cpu") for case in row]
                for kernel, row in compile_rows().items()}
    for kernel, calls in calls_of.items():
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


class Compile:
    """Seconds of each cpu kernel's first calls: compiled, and loaded from Numba's cache."""
    params = [KERNELS + ["total"]]
    param_names = ["kernel"]
    timeout = 600

    def setup_cache(self):
        return first_call_seconds()

    def track_compile_seconds(self, seconds, kernel):
        return seconds["compile"][kernel]
    track_compile_seconds.unit = "s"

    def track_cached_first_call_seconds(self, seconds, kernel):
        return seconds["cached"][kernel]
    track_cached_first_call_seconds.unit = "s"
