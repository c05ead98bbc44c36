"""Tunables of fastnn in one place: compile flags, caching, size thresholds.

Kernels read these values; they never hard-code them. Environment variables are read once, at
import:

- ``FASTNN_CACHE=0`` turns off Numba's on-disk cache of compiled kernels (on by default).
- ``FASTNN_BACKEND`` sets the default backend (``"cpu"`` unless set).
"""
import os

#: LLVM fast-math flags for every Numba kernel. Numba's all-on fastmath would add ``nnan`` and
#: ``ninf``, which delete NaN/inf checks; this subset keeps them and still lets reductions
#: vectorize.
FASTMATH = frozenset({"reassoc", "contract", "arcp", "nsz"})

#: Cache compiled kernels on disk (numba ``cache=True``).
CACHE = os.environ.get("FASTNN_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")

#: Backend used when a kernel is called without ``backend=``.
DEFAULT_BACKEND = os.environ.get("FASTNN_BACKEND", "cpu")

#: Below these sizes a CPU kernel runs serially on the calling thread, where waking the thread pool
#: costs more than it saves. Crossovers measured on the 2-core machine (serial vs parallel time,
#: float32): softmax family about 4K elements, batch norm forward+backward about 64K elements,
#: dense forward+backward about 1M multiply-adds (m * n_in * n_out).
SOFTMAX_PARALLEL_MIN_ELEMENTS = 1 << 12
BATCHNORM_PARALLEL_MIN_ELEMENTS = 1 << 16
DENSE_PARALLEL_MIN_FLOPS = 1 << 20
#: Optimizer updates (count pass + update pass over a flat buffer) cross over at about 32K
#: elements: serial / parallel time at 2^12 .. 2^18 elements was 0.67, 0.92, 0.87, 1.31, 1.03,
#: 1.57, 1.96 for adam_update.
OPTIM_PARALLEL_MIN_ELEMENTS = 1 << 15
#: Standalone activation layers (one read, one write per element): parallel already wins at 16K
#: elements (relu forward 11 vs 13 us; 45 vs 71 us at 128K).
ACTIVATION_PARALLEL_MIN_ELEMENTS = 1 << 14
