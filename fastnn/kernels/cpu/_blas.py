"""General matrix product through BLAS from inside Numba kernels, on Numba's thread pool.

Why: NumPy's matmul runs on OpenBLAS's own threads, which keep spinning for a while after each call;
a ``parallel=True`` Numba kernel launched then waits for a scheduler tick (~8 ms measured on this
2-core machine). fastnn therefore does all of its BLAS work inside Numba kernels, one
single-threaded BLAS call per thread on a block of rows or columns, so that one thread pool
(Numba's) does everything.

Which BLAS: the kernels call ``fastnn_sgemm`` / ``fastnn_dgemm`` (Fortran ``?gemm`` arguments),
symbols bound here at import to one provider, chosen by ``FASTNN_BLAS`` (see ``fastnn.config``):

- ``"mkl"``: Intel oneMKL's sequential library (the ``mkl`` package, ``pip install fastnn[mkl]``),
  loaded privately (RTLD_LOCAL, so that another MKL in the process, such as PyTorch's, is left
  alone). On the training step's products it is 1.15-1.5x faster than OpenBLAS (measured here on
  a 784-256-256-10 MLP's products at batch 64 and 512, two threads).
- ``"scipy"``: the BLAS SciPy ships (OpenBLAS), the one Numba's own ``np.dot`` calls.
  ``single_threaded_blas`` pins it to one thread for the duration of a fastnn call and restores it.
- ``"auto"`` (default): MKL when it is installed and gives its sequential layer, else SciPy's.

Kernels link the symbols by name, so Numba's on-disk cache holds the same code for either.
"""
import contextlib
import ctypes
import importlib.metadata
import threading

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic, register_jitable

from fastnn import config

_char = ir.IntType(8)
_int = ir.IntType(32)  # LP64: Fortran INTEGER is 32-bit in both providers
_voidptr = ir.IntType(8).as_pointer()
_SYMBOLS = {types.float32: "fastnn_sgemm", types.float64: "fastnn_dgemm"}

_MKL_THREADING_SEQUENTIAL = 1
_MKL_INTERFACE_LP64 = 0


def _load_mkl():
    """oneMKL's runtime library (``mkl_rt``) set to its sequential LP64 layers, or None (with
    the reason) when the ``mkl`` package is not installed or MKL is already running threaded in
    this process (its layer is fixed by the first call)."""
    try:
        files = importlib.metadata.distribution("mkl").files or []
    except importlib.metadata.PackageNotFoundError:
        return None, "the mkl package is not installed (pip install fastnn[mkl])"
    paths = [f.locate() for f in files if f.name.startswith(("libmkl_rt.so", "mkl_rt"))]
    if not paths:
        return None, "the mkl package has no mkl_rt library for this platform"
    lib = ctypes.CDLL(str(paths[0]))
    if lib.MKL_Set_Threading_Layer(_MKL_THREADING_SEQUENTIAL) != _MKL_THREADING_SEQUENTIAL:
        return None, "MKL is already loaded with a threaded layer"
    if lib.MKL_Set_Interface_Layer(_MKL_INTERFACE_LP64) != _MKL_INTERFACE_LP64:
        return None, "MKL is already loaded with the ILP64 interface"
    return lib, ""


def _bind_provider(choice):
    """Bind ``fastnn_?gemm`` to the provider ``choice`` ("auto", "mkl", "scipy"); returns a
    description of what was bound."""
    if choice not in ("auto", "mkl", "scipy"):
        raise ValueError(f"FASTNN_BLAS must be 'auto', 'mkl' or 'scipy', got {choice!r}")
    if choice != "scipy":
        lib, why = _load_mkl()
        if lib is not None:
            for dtype, name in _SYMBOLS.items():
                fn = getattr(lib, "sgemm" if dtype == types.float32 else "dgemm")
                llvm.add_symbol(name, ctypes.cast(fn, ctypes.c_void_p).value)
            version = ctypes.create_string_buffer(256)
            lib.MKL_Get_Version_String(version, len(version))
            return "mkl", version.value.decode(errors="replace").strip()
        if choice == "mkl":
            raise ImportError(f"FASTNN_BLAS=mkl, but {why}")
    for dtype, name in _SYMBOLS.items():
        kind = "sgemm" if dtype == types.float32 else "dgemm"
        llvm.add_symbol(name, get_cython_function_address("scipy.linalg.cython_blas", kind))
    return "scipy", "SciPy's BLAS (scipy.linalg.cython_blas)"


#: ("mkl" or "scipy", a description) of the BLAS the kernels call.
PROVIDER, PROVIDER_INFO = _bind_provider(config.BLAS)


@intrinsic
def gemm(typingctx, a, b, c, alpha, beta, trans_a, trans_b):
    """C = alpha * op(A) @ op(B) + beta * C, in place; op(M) is M.T when ``trans_*`` is true.

    A, B, C are 2-D row-major views whose last axis is contiguous (row slices and column slices of
    C-contiguous arrays qualify): BLAS reads them through their leading dimension, so sub-matrices
    need no copy. Shapes: op(A) (m, k), op(B) (k, n), C (m, n), each below 2**31; not checked
    here. float32 or float64 (C's dtype).
    """
    if c.dtype not in _SYMBOLS:
        return None

    def codegen(context, builder, sig, args):
        a_ty, b_ty, c_ty, alpha_ty, beta_ty = sig.args[:5]
        a_val, b_val, c_val, alpha_val, beta_val, ta, tb = args
        arr_a = context.make_array(a_ty)(context, builder, a_val)
        arr_b = context.make_array(b_ty)(context, builder, b_val)
        arr_c = context.make_array(c_ty)(context, builder, c_val)
        intp = context.get_value_type(types.intp)
        itemsize = ir.Constant(intp, context.get_abi_sizeof(context.get_data_type(c_ty.dtype)))

        def by_ref(value):  # Fortran passes every argument by reference
            return builder.bitcast(cgutils.alloca_once_value(builder, value), _voidptr)

        def int_ref(value):
            return by_ref(builder.trunc(value, _int))

        def leading_dim(arr):
            return int_ref(builder.sdiv(cgutils.unpack_tuple(builder, arr.strides, 2)[0], itemsize))

        def ptr(arr):
            return builder.bitcast(arr.data, _voidptr)

        def scalar_ref(val, ty):
            return by_ref(context.cast(builder, val, ty, c_ty.dtype))

        m, n = cgutils.unpack_tuple(builder, arr_c.shape, 2)
        a_rows, a_cols = cgutils.unpack_tuple(builder, arr_a.shape, 2)
        k = builder.select(ta, a_rows, a_cols)
        trans = ir.Constant(_char, ord("T"))
        notrans = ir.Constant(_char, ord("N"))
        fnty = ir.FunctionType(ir.VoidType(), [_voidptr] * 13)
        fn = cgutils.get_or_insert_function(builder.module, fnty, _SYMBOLS[c_ty.dtype])
        # Row-major C = op(A) op(B) is column-major C' = op(B)' op(A)': swap the operands.
        builder.call(fn, (
            by_ref(builder.select(tb, trans, notrans)), by_ref(builder.select(ta, trans, notrans)),
            int_ref(n), int_ref(m), int_ref(k), scalar_ref(alpha_val, alpha_ty),
            ptr(arr_b), leading_dim(arr_b), ptr(arr_a), leading_dim(arr_a),
            scalar_ref(beta_val, beta_ty), ptr(arr_c), leading_dim(arr_c)))
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


#: ``with single_threaded_blas: ...`` around every fastnn call that reaches BLAS (nothing to do for
#: MKL's sequential layer).
single_threaded_blas = _BlasPin() if PROVIDER == "scipy" else contextlib.nullcontext()
