"""Implementations timed each in its own process, in interleaved rounds.

Why: NumPy's OpenBLAS, PyTorch's OpenMP pool, XLA's pool and Numba's pool each keep threads
that spin for a while after a call. Timed in one process they meet each other's spinning threads
(and PyTorch pins its threads), so a table would partly measure which library ran before. Here
each implementation gets its own long-lived worker process (``Workers``), as it would run in its
own training program, and the parent takes the turns: ``interleaved``'s rounds, with the workers
it does not ask waiting idle on their pipe: a worker answers only once its own threads have
stopped spinning.

A case travels as its recipe (``cases.Case.recipe``: the workload function and its arguments), so
a worker builds the same seeded data with its own library; only seconds come back.
"""
import multiprocessing
import time
import traceback

from fastnn.bench import peers
from fastnn.bench.timing import ROUNDS, median_seconds


def _wait_until_idle(window=0.02, busy=0.1, limit=2.0):
    """Return once this process's threads have stopped using the CPU (under ``busy`` of a core
    over ``window`` seconds), or after ``limit`` seconds: a library's pool that keeps spinning
    after its calls (OpenBLAS: up to ~0.1 s, with yields) would otherwise slow the next
    implementation's turn."""
    end = time.perf_counter() + limit
    while time.perf_counter() < end:
        used = time.process_time()
        time.sleep(window)
        if time.process_time() - used < busy * window:
            return


def _serve(impl, conn, threads):
    """A worker's loop: answer the parent's requests on ``conn`` until "stop"."""
    if threads and peers.IMPLEMENTATIONS[impl].library == "fastnn":
        import numba

        numba.set_num_threads(threads)
    fn = None
    while True:
        request, *args = conn.recv()
        try:
            if request == "stop":
                return
            if request == "usable":
                reply = peers.usable(impl)
            elif request == "build":
                recipe, = args
                fn = None  # (the previous case's data freed first)
                try:
                    fn = recipe.make().closure(impl)
                except NotImplementedError:
                    reply = False
                else:
                    fn()  # the warm-up call (compiles)
                    reply = True
            else:  # "time"
                pause, budget = args
                time.sleep(pause)
                reply = median_seconds(fn, budget, min_calls=1)
                _wait_until_idle()
        except Exception:
            conn.send(("error", traceback.format_exc()))
        else:
            conn.send(("ok", reply))


class WorkerError(RuntimeError):
    """A worker's request raised; the message holds its traceback."""


class Workers:
    """A context manager: one worker process per implementation name in ``impls`` (fastnn's on
    ``threads`` Numba threads when nonzero), stopped on exit. ``usable``: those that load in
    their process. Processes start by "spawn": nothing of the parent's thread pools is copied."""

    def __init__(self, impls, threads=0):
        self.impls = tuple(impls)
        self.threads = threads
        self._conns = {}

    def __enter__(self):
        context = multiprocessing.get_context("spawn")
        try:
            for impl in self.impls:
                parent, child = context.Pipe()
                process = context.Process(target=_serve, args=(impl, child, self.threads),
                                          name=f"fastnn-bench-{impl}", daemon=True)
                process.start()
                child.close()
                self._conns[impl] = (parent, process)
            self.usable = [impl for impl in self.impls if self._ask(impl, "usable")]
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        for conn, process in self._conns.values():
            try:
                conn.send(("stop",))
            except OSError:
                pass
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
            conn.close()
        self._conns.clear()
        return False

    def _ask(self, impl, *request):
        conn, process = self._conns[impl]
        conn.send(request)
        try:
            status, reply = conn.recv()
        except EOFError:
            raise WorkerError(f"the {impl} worker died (exit code {process.exitcode})") from None
        if status == "error":
            raise WorkerError(f"the {impl} worker failed:\n{reply}")
        return reply

    def measure(self, case, impls, rounds=ROUNDS, budget=0.12, pause=0.1):
        """{impl: [median seconds per call in each round]} of ``case`` in those of ``impls``
        that have a version of it here: each worker builds it and makes one warm-up call, then
        ``rounds`` rounds in which each in turn, after a ``pause``, is called for about
        ``budget`` seconds (``timing.interleaved``'s schedule, across processes)."""
        built = [impl for impl in impls if self._ask(impl, "build", case.recipe)]
        times = {impl: [] for impl in built}
        for _ in range(rounds):
            for impl in built:
                times[impl].append(self._ask(impl, "time", pause, budget))
        return times
