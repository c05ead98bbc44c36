"""How many Numba threads a run of kernel calls (a training step) uses: measured, not assumed.

A parallel kernel splits its rows evenly over the threads and waits for the slowest. On a shared
machine, where other processes keep some cores busy, one of fastnn's threads then waits for a
core, and the whole step waits with it (measured for issue 17: a batch-64 step went from 0.74 ms
to 4-5 ms with one core kept busy, against 1.2 ms on one thread). Environment variables (the OpenMP
wait policy, the thread count) would fix that only for the whole process, the user's other
libraries included, and at start-up; the load comes and goes while a model trains.

So the CPU backend measures, in its ``kernel_scope`` and in each large kernel called on its own
(``adapts``). Each host thread keeps, per kind of run and thread-count ceiling
(``numba.get_num_threads()`` when the scope is entered: the user's own setting stays the
ceiling), the candidates 1, ceiling - 1 and ceiling, and the wall times of the last ``KEPT`` runs
made with each (first all threads, then each count in turn until each has ``BURST`` timed
runs; the first run of each count is dropped: it compiles). A kernel called on its own whose
runs with all threads take ``LONG_RUN`` seconds or more keeps all threads. A run uses the
candidate whose mean time, the slowest run left out, is lowest. Now and then ``BURST`` runs of
another candidate, in turn, are timed afresh (its older times dropped): ``FIRST_RETRY`` runs
after the start, then at intervals that double while the retries confirm the choice, up to
``config.CPU_THREADS_EXPLORE_EVERY`` runs, so that a wrong early choice is undone within a few
dozen runs and a change of load shows within that many.
Runs that raise are not counted. ``config.CPU_ADAPTIVE_THREADS = False`` keeps the ceiling.
"""
import collections
import functools
import time

from fastnn import config
from fastnn.kernels.base import OutermostScope, current_run_kind
from fastnn.kernels.cpu._jit import num_threads, set_num_threads, split_for

#: Runs kept per thread count (their mean, the slowest left out, is its estimate), and how many
#: runs in a row a count other than the best gets when it is tried again.
KEPT, BURST = 8, 4
#: Seconds from which a kernel called on its own keeps all threads, untried against the others,
#: when its runs with all threads all take that long: each thread's share is then several
#: scheduler ticks long, so waking a thread costs little, and on a loaded machine fewer threads
#: would not finish sooner (the work waits for a core either way), while trying one thread
#: would cost a whole slow run (a 4096x1024x1024 dense layer's backward: 90 ms against 190). A
#: training step is always timed (waiting for a core can make its runs long: 123 ms instead of
#: 7 ms on one thread, for a batch-512 step under load).
LONG_RUN = 0.03
#: Runs before the first retry of another count; the interval doubles while retries confirm the
#: choice, up to ``config.CPU_THREADS_EXPLORE_EVERY``, and starts again here when one changes it.
FIRST_RETRY = 16
#: Kinds of run (the training step, each kernel and shape called on its own) timed per host
#: thread at most; the oldest is forgotten beyond.
MAX_KINDS = 256


class _Candidates:
    """The timings of the thread counts tried under one ceiling."""

    def __init__(self, ceiling, long_runs_keep_all=False):
        self.counts = sorted({1, max(1, ceiling - 1), ceiling})
        self.long_runs_keep_all = long_runs_keep_all
        self.times = {n: collections.deque(maxlen=KEPT) for n in self.counts}
        self.compiled = set()  # counts whose first run (compiling) was dropped
        self.runs = 0
        self.trying, self.left = None, 0  # a count tried again, and its runs to go
        self.fresh = None  # a count whose older times go when its next time comes
        self.started = False  # whether every count has its first timed runs
        self.interval = FIRST_RETRY  # runs between retries, doubled while the choice holds
        self.next_retry = self.held = None
        self.turn = 0

    def estimate(self, n):
        """The mean seconds of the runs kept for count n, the slowest left out (None before
        any). A mean, because the waits for a core that fewer threads avoid come as a few slow
        runs among fast ones; the slowest left out, because a pause that any count would have
        met (a page fault storm, the garbage collector) should not decide."""
        times = sorted(self.times[n])
        if not times:
            return None
        kept = times[:-1] if len(times) > 2 else times
        return sum(kept) / len(kept)

    def choose(self):
        """The thread count for the next run."""
        self.runs += 1
        ceiling = self.counts[-1]
        if len(self.times[ceiling]) < 2:  # all threads first: a run to compile, two timed
            return ceiling
        if self.long_runs_keep_all and min(self.times[ceiling]) >= LONG_RUN:
            return ceiling
        if not self.started:  # each count: a run to compile, then BURST timed runs, the counts
            # in turns, so that the first runs of a process (slower: pages touched the first
            # time) fall on all of them alike
            starting = [n for n in self.counts
                        if n not in self.compiled or len(self.times[n]) < BURST]
            if starting:
                return min(starting, key=lambda n: (n in self.compiled, len(self.times[n]), -n))
            self.started, self.next_retry = True, self.runs + self.interval
        if self.left:
            self.left -= 1
            return self.trying
        best = min(self.counts, key=self.estimate)
        if self.trying is not None:  # a retry has ended: retry sooner if it changed the choice
            self.interval = (FIRST_RETRY if best != self.held
                             else min(2 * self.interval, config.CPU_THREADS_EXPLORE_EVERY))
            self.trying, self.next_retry = None, self.runs + self.interval
        if self.runs >= self.next_retry:
            others = [n for n in self.counts if n != best]
            self.turn = (self.turn + 1) % len(others)
            self.trying, self.left, self.held = others[self.turn], BURST - 1, best
            self.fresh = self.trying  # (timed afresh: stale times would outvote the new ones)
            return self.trying
        return best

    def record(self, n, seconds):
        if n not in self.compiled:
            self.compiled.add(n)  # (the first run of a count compiles its kernels)
            return
        if n == self.fresh:
            self.times[n].clear()
            self.fresh = None
        self.times[n].append(seconds)


class AdaptiveThreads(OutermostScope):
    """A context manager (one object serves every host thread; scopes nest, the outermost
    chooses): runs the block with the thread count chosen as above, and restores the ceiling.
    Each kind of run has its own timings: a training step (``with``, of the kind named by
    ``fastnn.kernels.base.run_kind``: a model at a batch size), or a kernel called on its own
    (``call``, keyed by the kernel and its first argument's shape)."""

    def call(self, key, fn, *args, **kwargs):
        """fn(*args, **kwargs) as a run of kind ``key``, or plainly inside an open scope."""
        local = self._local
        if getattr(local, "depth", 0):
            return fn(*args, **kwargs)
        local.key = key
        try:
            with self:
                return fn(*args, **kwargs)
        finally:
            local.key = None

    def begin(self, local):
        ceiling = local.ceiling = local.n = num_threads()
        local.table = None
        if config.CPU_ADAPTIVE_THREADS and ceiling > 1:
            tables = local.__dict__.setdefault("tables", {})
            key = getattr(local, "key", None)
            kind = (current_run_kind() if key is None else key, ceiling)
            table = tables.get(kind)
            if table is None:
                if len(tables) >= MAX_KINDS:  # (many shapes: forget the oldest)
                    del tables[next(iter(tables))]
                table = tables[kind] = _Candidates(ceiling, long_runs_keep_all=key is not None)
            local.table, local.n = table, table.choose()
            if local.n != ceiling:
                split_for(ceiling)  # (the same blocks, so the same results, on fewer threads)
                set_num_threads(local.n)
        local.start = time.perf_counter()

    def end(self, local, exc_type):
        seconds = time.perf_counter() - local.start
        if local.n != local.ceiling:
            set_num_threads(local.ceiling)
            split_for(None)
        if exc_type is None and local.table is not None:
            local.table.record(local.n, seconds)

    def estimates(self, key=None):
        """{ceiling: {thread count: mean seconds of its recent runs, or None}} of this host
        thread's runs of kind ``key`` (a ``run_kind``'s, a kernel's, or None: scopes entered
        without a kind)."""
        return {c: {n: t.estimate(n) for n in t.counts}
                for (k, c), t in getattr(self._local, "tables", {}).items() if k == key}


#: The one chooser of the CPU backend: its ``kernel_scope`` and its kernels called on their own.
adaptive_threads = AdaptiveThreads()


def adapts(kernel):
    """``kernel`` (a CPU backend kernel whose first argument is its main array) choosing its
    thread count like a training step when called on its own with at least
    ``config.CPU_ADAPTIVE_MIN_ELEMENTS`` elements in that array (smaller ones run on one thread
    anyway); inside a ``kernel_scope`` the scope's choice holds."""
    name = kernel.__name__

    @functools.wraps(kernel)
    def call(*args, **kwargs):
        main = args[0]
        if getattr(main, "size", 0) < config.CPU_ADAPTIVE_MIN_ELEMENTS:
            return kernel(*args, **kwargs)
        return adaptive_threads.call((name, main.shape), kernel, *args, **kwargs)

    return call
