"""General matrix product through BLAS from inside Numba kernels, on Numba's thread pool.

Why: NumPy's matmul runs on OpenBLAS's own threads, which keep spinning for a while after each call;
a ``parallel=True`` Numba kernel launched then waits for a scheduler tick (~8 ms measured on this
2-core machine). fastnn therefore does all of its BLAS work inside Numba kernels, one
single-threaded BLAS call per thread on a block of rows or columns, so that one thread pool
(Numba's) does everything. ``single_threaded_blas`` pins SciPy's BLAS (the one Numba calls) to one
thread for the duration of a fastnn call and restores it afterwards.
"""
import threading

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, register_jitable
from numba.np.linalg import check_blas_return, ensure_blas, get_blas_kind

_char = ir.IntType(8)
_voidptr = ir.IntType(8).as_pointer()


@intrinsic
def gemm(typingctx, a, b, c, alpha, beta, trans_a, trans_b):
    """C = alpha * op(A) @ op(B) + beta * C, in place; op(M) is M.T when ``trans_*`` is true.

    A, B, C are 2-D row-major views whose last axis is contiguous (row slices and column slices of
    C-contiguous arrays qualify): BLAS reads them through their leading dimension, so sub-matrices
    need no copy. Shapes: op(A) (m, k), op(B) (k, n), C (m, n); not checked here.
    Calls ``numba_xxgemm`` (Numba's own BLAS entry, linked by name, so kernels stay cacheable).
    """
    ensure_blas()

    def codegen(context, builder, sig, args):
        a_ty, b_ty, c_ty, alpha_ty, beta_ty = sig.args[:5]
        a_val, b_val, c_val, alpha_val, beta_val, ta, tb = args
        arr_a = context.make_array(a_ty)(context, builder, a_val)
        arr_b = context.make_array(b_ty)(context, builder, b_val)
        arr_c = context.make_array(c_ty)(context, builder, c_val)
        intp = context.get_value_type(types.intp)
        itemsize = ir.Constant(intp, context.get_abi_sizeof(context.get_data_type(c_ty.dtype)))

        def leading_dim(arr):
            return builder.sdiv(cgutils.unpack_tuple(builder, arr.strides, 2)[0], itemsize)

        def ptr(arr):
            return builder.bitcast(arr.data, _voidptr)

        def scalar_slot(val, ty):
            slot = cgutils.alloca_once_value(builder, context.cast(builder, val, ty, c_ty.dtype))
            return builder.bitcast(slot, _voidptr)

        m, n = cgutils.unpack_tuple(builder, arr_c.shape, 2)
        a_rows, a_cols = cgutils.unpack_tuple(builder, arr_a.shape, 2)
        k = builder.select(ta, a_rows, a_cols)
        trans = ir.Constant(_char, ord("t"))
        notrans = ir.Constant(_char, ord("n"))
        fnty = ir.FunctionType(ir.IntType(32), [_char, _char, _char, intp, intp, intp, _voidptr,
                                                _voidptr, intp, _voidptr, intp, _voidptr, _voidptr,
                                                intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        # Row-major C = op(A) op(B) is column-major C' = op(B)' op(A)': swap the operands.
        res = builder.call(fn, (
            ir.Constant(_char, ord(get_blas_kind(c_ty.dtype))),
            builder.select(tb, trans, notrans), builder.select(ta, trans, notrans), n, m, k,
            scalar_slot(alpha_val, alpha_ty), ptr(arr_b), leading_dim(arr_b),
            ptr(arr_a), leading_dim(arr_a), scalar_slot(beta_val, beta_ty),
            ptr(arr_c), leading_dim(arr_c)))
        check_blas_return(context, builder, res)
        return context.get_dummy_value()

    return types.none(a, b, c, alpha, beta, trans_a, trans_b), codegen


@register_jitable
def output_block(m, n, t, blocks):
    """Block t of ``blocks`` of an (m, n) product C, as (r0, r1, c0, c1): split along C's longer
    side, so that no thread packs the larger operand again (a row block reads all of op(B), a
    column block all of op(A))."""
    if m >= n:
        return t * m // blocks, (t + 1) * m // blocks, 0, n
    return 0, m, t * n // blocks, (t + 1) * n // blocks


@register_jitable
def gemm_sub(a, b, c, trans_a, trans_b, r0, r1, c0, c1):
    """C[r0:r1, c0:c1] = op(A)[r0:r1] @ op(B)[:, c0:c1] (rows of op(A), columns of op(B))."""
    a_part = a[:, r0:r1] if trans_a else a[r0:r1]
    b_part = b[c0:c1] if trans_b else b[:, c0:c1]
    gemm(a_part, b_part, c[r0:r1, c0:c1], 1.0, 0.0, trans_a, trans_b)


class _BlasPin:
    """Reference-counted pin of SciPy's BLAS to one thread (thread-safe, re-entrant)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = []
        self._libs = None

    def _find_libs(self):
        import scipy.linalg.cython_blas  # noqa: F401  (loads the library Numba calls)
        from threadpoolctl import ThreadpoolController

        blas = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
        own = [lib for lib in blas if "scipy" in lib.filepath]
        return own or blas

    def __enter__(self):
        with self._lock:
            if self._depth == 0:
                if self._libs is None:
                    self._libs = self._find_libs()
                self._saved = [lib.num_threads for lib in self._libs]
                for lib in self._libs:
                    lib.set_num_threads(1)
            self._depth += 1

    def __exit__(self, *exc):
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                for lib, n in zip(self._libs, self._saved):
                    lib.set_num_threads(n)


#: ``with single_threaded_blas: ...`` around every fastnn call that reaches BLAS.
single_threaded_blas = _BlasPin()
