"""Timing: the median seconds of a call, and several implementations timed in interleaved rounds.

``interleaved`` times its implementations in turns: after one warm-up call each (which compiles),
several rounds in which every implementation is timed for a moment. A time is the median of its
rounds, and a ratio (``ratio``) the median of the per-round ratios, so that a slow spell of the
machine (a 2-core VM's speed drifts by 1.5x within seconds, and a slow spell once made one
implementation 7x slower for a whole 0.6 s sample) falls on every implementation of a round alike.
On the CPU, NumPy's OpenBLAS keeps its threads spinning after a matmul, so there is a short pause
before each turn: each implementation is measured on an idle machine, as it would run in its own
training loop. On a GPU, ``sync`` (a device synchronization) ends every timed call, so that a
time is the wall-clock time of a call with the GPU idle at both ends.
"""
import time

import numpy as np

#: Rounds of ``interleaved`` (the tables' headers say how many).
ROUNDS = 5


def median_seconds(fn, budget, min_calls=3, max_calls=200, sync=None):
    """Median seconds of a call of ``fn()`` (already warm), each followed by ``sync()`` when
    given: at least ``min_calls`` calls, more while the ``budget`` of seconds lasts."""
    times = []
    start = time.perf_counter()
    while len(times) < min_calls or (time.perf_counter() - start < budget
                                     and len(times) < max_calls):
        t0 = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def interleaved(fns, rounds=ROUNDS, budget=0.12, pause=0.1, sync=None):
    """{name: [median seconds per call in each round]} of the functions ``fns`` ({name: fn}):
    one warm-up call each, then ``rounds`` rounds in which each in turn, after a ``pause``, is
    called for about ``budget`` seconds (at least once); ``sync()``, when given, after every
    call."""
    for fn in fns.values():
        fn()
        if sync is not None:
            sync()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            time.sleep(pause)
            times[name].append(median_seconds(fn, budget, min_calls=1, sync=sync))
    return times


def ratio(times, slow, fast):
    """The median over rounds of ``times[slow][r] / times[fast][r]`` (``interleaved``'s times)."""
    return float(np.median(np.divide(times[slow], times[fast])))
