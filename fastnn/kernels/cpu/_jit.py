"""Numba decorators with fastnn's flags: the only place kernels get their compile options."""
import threading

import numba
from numba.np.ufunc import parallel as _numba_parallel

from fastnn import config

#: Numba's parallel options for ``@jit(parallel=True)``: only the explicit ``prange`` loops run
#: on the thread pool. With all options on, Numba also turns array expressions such as
#: ``np.zeros((blocks, n))`` into parallel loops of their own, one more wake-up of the pool each:
#: 4.6 against 8.1 us for a kernel allocating two small accumulators.
PRANGE_ONLY = {"prange": True, "fusion": True, "comprehension": False, "reduction": False,
               "inplace_binop": False, "setitem": False, "numpy": False, "stencil": False}


def jit(fn=None, *, parallel=False):
    """``numba.njit`` with fastnn's fast-math subset, on-disk caching and the GIL released.

    Use ``@jit`` for serial kernels and ``@jit(parallel=True)`` for kernels with a ``prange``
    (``PRANGE_ONLY``). ``error_model="numpy"`` lets divisions vectorize (no ZeroDivisionError
    checks).
    """
    decorate = numba.njit(parallel=dict(PRANGE_ONLY) if parallel else False,
                          fastmath=set(config.FASTMATH), cache=config.CACHE, nogil=True,
                          error_model="numpy")
    return decorate if fn is None else decorate(fn)


def num_threads():
    """``numba.get_num_threads()``: once Numba's thread pool is up, read straight from the
    threading layer, without the two process-wide locks that ``get_num_threads`` takes first
    (2 us a call here, five times a training step). Falls back to the public function."""
    if getattr(_numba_parallel, "_is_initialized", False):
        read = getattr(_numba_parallel, "_get_num_threads", None)
        if read is not None:
            return read()
    return numba.get_num_threads()


_split_for = threading.local()  # the thread count work is split for, in a scope that runs fewer


def n_blocks(n_rows, work, threshold):
    """Row blocks to split work into: one per Numba thread, or 1 (run serially on the calling
    thread) when ``work`` (elements or multiply-adds) is under ``threshold`` (see fastnn.config).
    Inside a thread-count chooser's scope (``_threads``) the work is split for the scope's
    ceiling even when fewer threads run it (they take the blocks in turn): the blocks, and so
    every rounding, are the same however many threads run, so results do not depend on the
    count chosen."""
    if work < threshold:
        return 1
    threads = getattr(_split_for, "threads", None)
    return max(1, min(num_threads() if threads is None else threads, n_rows))


def split_for(threads):
    """Make ``n_blocks`` split work for ``threads`` threads on this host thread (None: for the
    current Numba thread count)."""
    _split_for.threads = threads


def set_num_threads(n):
    """``numba.set_num_threads(n)`` for this host thread (1 <= n <= the pool's size), by the
    threading layer's own setter once the pool is up (as ``num_threads`` reads)."""
    if getattr(_numba_parallel, "_is_initialized", False):
        write = getattr(_numba_parallel, "_set_num_threads", None)
        if write is not None:
            write(n)
            return
    numba.set_num_threads(n)
