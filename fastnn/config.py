"""Tunables of fastnn in one place: compile flags, caching, size thresholds.

Kernels read these values; they never hard-code them. Environment variables are read once, at
import:

- ``FASTNN_CACHE=0`` turns off Numba's on-disk cache of compiled kernels (on by default).
- ``FASTNN_BACKEND`` sets the default backend (``"cpu"`` unless set).
- ``FASTNN_BLAS`` picks the BLAS of the CPU kernels' matrix products: ``"mkl"`` (oneMKL, from
  ``pip install fastnn[mkl]``), ``"scipy"`` (SciPy's OpenBLAS) or ``"auto"`` (the default: MKL
  when installed, else SciPy's); see ``fastnn.kernels.cpu._blas``.
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

#: BLAS provider of the CPU backend's matrix products: "auto", "mkl" or "scipy".
BLAS = os.environ.get("FASTNN_BLAS", "auto").strip().lower()

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

#: Elementwise losses (sigmoid cross-entropy, mean squared error: two reads and one write per
#: element, one pass): parallel from 16K elements. Serial / parallel us on 2 threads, float32, at
#: 8K, 16K, 32K elements: sigmoid cross-entropy 7.4/7.4, 14.3/12.0, 28.1/16.0; mean squared
#: error 1.4/2.6, 2.3/3.1, 4.1/4.0.
LOSS_PARALLEL_MIN_ELEMENTS = 1 << 14

#: The CPU backend's ``kernel_scope`` (a training step) picks how many Numba threads to use by
#: timing its runs (fastnn/kernels/cpu/_threads.py): 1, all but one, or all of
#: ``numba.get_num_threads()``, whichever was fastest lately, trying another for a few runs
#: now and then: 16 runs after the start, then at doubling intervals up to
#: CPU_THREADS_EXPLORE_EVERY runs (about 1% of an idle step's time at 100). On a machine
#: where other processes keep cores busy, fewer threads stop waiting for a core; on an idle one
#: all threads win. False: always all.
CPU_ADAPTIVE_THREADS = True
CPU_THREADS_EXPLORE_EVERY = 100
#: A kernel called on its own (outside a training step) chooses likewise, each kernel and shape
#: timed apart, when its main array has at least this many elements (the smallest parallel
#: threshold above: smaller calls run on one thread anyway and would only pay the timing).
CPU_ADAPTIVE_MIN_ELEMENTS = 1 << 12

# --- CUDA backend (fastnn.kernels.cuda) ----------------------------------------------------------
# Read by the kernels at call time, so tests can shrink them (monkeypatch) and run the multi-block
# paths in Numba's CUDA simulator. Sizes that set a kernel's shared-memory arrays are compile-time
# constants there: each distinct setting compiles its own kernel (cached per setting).

#: Threads per block of the grid-stride kernels (activations, batch norm's elementwise pass,
#: optimizer updates, dropout, NaN/inf counts) and the most blocks one launch uses; each thread
#: loops over the elements beyond (a grid-stride loop). 1024 blocks of 256 threads fill a GPU of
#: up to ~128 SMs with 2048 resident threads each.
CUDA_THREADS_PER_BLOCK = 256
CUDA_MAX_BLOCKS = 1024

#: Where the dense layers' matrix products come from: "auto" (cuBLAS through CuPy's bindings when
#: CuPy is installed and a real GPU runs the kernels, else the tiled @cuda.jit kernel below),
#: "cublas" (required: an error says why it cannot run, e.g. in Numba's CUDA simulator) or
#: "numba" (the tiled kernel always).
CUDA_GEMM = "auto"
#: Let cuBLAS round float32 products' inputs to TF32 on tensor cores (Ampere and later: several
#: times faster, about 1e-3 relative error instead of 1e-6), as PyTorch's
#: ``torch.backends.cuda.matmul.allow_tf32``. Off by default.
CUDA_ALLOW_TF32 = False

#: Tiled matrix product (dense layers): a block of CUDA_GEMM_THREADS_Y x CUDA_GEMM_THREADS_X
#: threads computes a tile of (THREADS_Y * REGS_M) x (THREADS_X * REGS_N) outputs, each thread
#: REGS_M x REGS_N of them held in registers, stepping CUDA_GEMM_TILE_K along the inner dimension
#: through shared memory. Defaults: 64 x 64 tiles, 256 threads, 16 outputs per thread.
CUDA_GEMM_THREADS_X = 16
CUDA_GEMM_THREADS_Y = 16
CUDA_GEMM_REGS_M = 4
CUDA_GEMM_REGS_N = 4
CUDA_GEMM_TILE_K = 16

#: Column sums (batch norm statistics and gradient sums, the dense bias gradient): a block of
#: CUDA_REDUCE_COLS x CUDA_REDUCE_ROW_THREADS threads (a power of two) sums
#: CUDA_REDUCE_ROWS_PER_BLOCK rows of CUDA_REDUCE_COLS adjacent columns; the last block of each
#: column group to finish sums the blocks' partial sums (one launch).
CUDA_REDUCE_COLS = 32
CUDA_REDUCE_ROW_THREADS = 8
CUDA_REDUCE_ROWS_PER_BLOCK = 256

#: Softmax family: a block of CUDA_SOFTMAX_THREADS threads (a power of two) works on several rows
#: at once, each row shared by min(CUDA_SOFTMAX_ROW_THREADS, C rounded up to a power of two)
#: threads (32: a warp per row).
CUDA_SOFTMAX_THREADS = 128
CUDA_SOFTMAX_ROW_THREADS = 32
