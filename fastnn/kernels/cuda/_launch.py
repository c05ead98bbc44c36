"""Launch sizes from ``fastnn.config`` (read at each call): grid-stride and column-per-thread
grids; the NaN/inf count kernel."""
from numba import cuda

from fastnn import config
from fastnn.kernels.cuda._math import add_count, nonfinite


def setting(name, power_of_two=False, minimum=1):
    """``config.<name>`` checked: an int >= minimum (a power of two if asked)."""
    value = getattr(config, name)
    if not isinstance(value, int) or value < minimum or (
            power_of_two and value & (value - 1)):
        kind = "a power of two" if power_of_two else "an integer"
        raise ValueError(f"fastnn.config.{name} must be {kind} >= {minimum}, got {value!r}")
    return value


def stride_grid(n):
    """(blocks, threads per block) for a grid-stride loop over n items."""
    threads = setting("CUDA_THREADS_PER_BLOCK")
    blocks = min(-(-n // threads), setting("CUDA_MAX_BLOCKS"))
    return max(blocks, 1), threads


def column_grid(m, n):
    """(grid, block) for kernels whose threads each keep one column of an (m, n) array
    (``column_thread``): blocks of CUDA_REDUCE_COLS adjacent columns (coalesced rows) x
    CUDA_REDUCE_ROW_THREADS rows, as many row groups as fill CUDA_MAX_BLOCKS blocks (each thread
    then loops over rows)."""
    cols = setting("CUDA_REDUCE_COLS")
    row_threads = setting("CUDA_REDUCE_ROW_THREADS")
    col_blocks = -(-n // cols)
    row_blocks = max(1, min(-(-m // row_threads), setting("CUDA_MAX_BLOCKS") // col_blocks))
    return (col_blocks, row_blocks), (cols, row_threads)


@cuda.jit(device=True)
def column_thread():
    """(column, first row, row step) of this thread in a ``column_grid`` launch."""
    j = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    first = cuda.blockIdx.y * cuda.blockDim.y + cuda.threadIdx.y
    return j, first, cuda.gridDim.y * cuda.blockDim.y


@cuda.jit
def _count_kernel(a, b, c, d, n_arrays, bad):
    """bad[0] += how many values of the first n_arrays of the flat arrays a, b, c, d (of any
    sizes, a the largest) are NaN or inf."""
    count = 0
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        count += nonfinite(a[i])
        if n_arrays > 1 and i < b.size:
            count += nonfinite(b[i])
        if n_arrays > 2 and i < c.size:
            count += nonfinite(c[i])
        if n_arrays > 3 and i < d.size:
            count += nonfinite(d[i])
    add_count(bad, count)


def count_nonfinite(bad, *arrays):
    """Add to the device counter ``bad`` the NaN/inf count of up to four flat device arrays of
    one dtype (one launch)."""
    arrays = sorted(arrays, key=lambda a: -a.size)
    padded = tuple(arrays) + (arrays[0],) * (4 - len(arrays))
    blocks, threads = stride_grid(arrays[0].size)
    _count_kernel[blocks, threads](*padded, len(arrays), bad)
