"""Input checks run by ``fastnn.kernels`` before any backend work.

Each check raises TypeError (wrong kind or dtype) or ValueError (wrong shape or value) with a
message that names the function, the argument, what was expected and what was received.

CUDA device arrays (Numba device arrays, or anything with ``__cuda_array_interface__`` such as
CuPy arrays) pass through as they are, for the "cuda" backend: their dtype, shape and layout are
checked here, and small ones (batch-norm vectors, labels) are copied to the host for the value
checks; large ones are checked for NaN/inf by the kernels, as host arrays are.
"""
import numbers

import numpy as np

from fastnn.kernels.base import NonFiniteError, device_view, is_device_array, to_host

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _fail(exc, fn, message):
    raise exc(f"{fn}: {message}")


def _device_view(fn, name, a):
    """A Numba view of a device array (no copy), which must be C-contiguous."""
    try:
        return device_view(a, name)
    except TypeError as error:
        _fail(TypeError, fn, str(error))


def host_backend_arrays(fn, module, named):
    """A backend whose arrays live in host memory (``module.on_device`` false) cannot take CUDA
    device arrays: a TypeError naming the first one in ``named`` ({name: array, or a tuple or
    NamedTuple of arrays such as ``out`` or a batch-norm cache})."""
    if getattr(module, "on_device", False):
        return
    for name, a in named.items():
        parts = a if isinstance(a, (tuple, list)) else (a,)
        for part in parts:
            if part is not None and is_device_array(part):
                _fail(TypeError, fn, f"{name} is a CUDA device array, but this backend works on "
                                     "host (NumPy) arrays; use backend='cuda', or copy it to "
                                     "the host first")


def float_array(fn, name, a, ndim):
    """``a`` as a C-contiguous float32/float64 array with ``ndim`` dims and no empty axis (a
    device array: a Numba view of it, checked the same way). ``ndim`` = (1, 2): one sample per
    row of a 2-D array, or one per value of a 1-D one (the losses' logits and targets)."""
    if is_device_array(a):
        a = _device_view(fn, name, a)
    elif not isinstance(a, np.ndarray):
        if not hasattr(a, "__array__") and not isinstance(a, (list, tuple)):
            _fail(TypeError, fn, f"{name} must be a NumPy array, got {type(a).__name__}")
        a = np.asarray(a)
    if a.dtype not in FLOAT_DTYPES:
        _fail(TypeError, fn, f"{name} must have dtype float32 or float64, got {a.dtype}")
    if ndim == (1, 2):
        if a.ndim not in ndim:
            _fail(ValueError, fn, f"{name} must be 1-D (n_samples,) or 2-D (n_samples, n_outputs), "
                                  f"got shape {a.shape}")
    elif a.ndim != ndim:
        layout = "(n_samples, n_features)" if ndim == 2 else "(n_features,)"
        _fail(ValueError, fn, f"{name} must be {ndim}-D {layout}, got shape {a.shape}")
    if 0 in a.shape:
        what = "an empty batch" if a.shape[0] == 0 and ndim != 1 else "empty"
        _fail(ValueError, fn, f"{name} is {what}: shape {a.shape}")
    if is_device_array(a):
        return a
    a = np.ascontiguousarray(a)
    if a.strides != _c_strides(a):  # e.g. one row with a 0 stride: C-contiguous, not canonical
        a = a.copy()
    return a


def _c_strides(a):
    strides, step = [], a.itemsize
    for n in reversed(a.shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def same_dtype(fn, **arrays):
    """All given arrays (None skipped) share one dtype."""
    given = {k: v for k, v in arrays.items() if v is not None}
    if len({v.dtype for v in given.values()}) > 1:
        listing = ", ".join(f"{k} is {v.dtype}" for k, v in given.items())
        _fail(TypeError, fn, f"mixed dtypes ({listing}); convert them to one of float32, float64")


def shape(fn, name, a, expected, reason):
    """``a.shape == expected``, else a ValueError that says why that shape is expected."""
    if a.shape != tuple(expected):
        _fail(ValueError, fn, f"{name} must have shape {tuple(expected)} {reason}, got {a.shape}")


def choice(fn, name, value, options):
    """``value`` is one of ``options``."""
    if not isinstance(value, str) or value not in options:
        _fail(ValueError, fn, f"unknown {name} {value!r}; expected one of {', '.join(options)}")


def number_in(fn, name, value, low, high, low_open=False):
    """A real number in [low, high] (or (low, high] with ``low_open``)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        _fail(TypeError, fn, f"{name} must be a real number, got {type(value).__name__}")
    if not ((low < value if low_open else low <= value) and value <= high):
        bracket = "(" if low_open else "["
        _fail(ValueError, fn, f"{name} must be a number in {bracket}{low}, {high}], got {value!r}")


def finite(fn, **arrays):
    """Every given array is free of NaN and inf (meant for small arrays; large ones are checked
    inside the kernels at no extra pass)."""
    for name, a in arrays.items():
        a = None if a is None else to_host(a)
        if a is not None and not np.isfinite(a).all():
            where = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
            _fail(ValueError, fn, f"{name} contains NaN or inf (first at index {where})")


def nonfinite_result(fn, overflow=None, /, **arrays):
    """Called when a backend met NaN/inf: name the input that holds it (ValueError), or report an
    overflow (NonFiniteError; ``overflow``: its message after "fn: ", else a generic one)."""
    finite(fn, **arrays)
    raise NonFiniteError(f"{fn}: " + (overflow or "the result overflowed to inf or NaN although "
                                      "the inputs are finite; scale the inputs or weights down"))


def _device_extent(a):
    """(first, last + 1) byte address of a C-contiguous device array's memory, or None when it
    is not a device array. (Numba's simulator wraps a NumPy array: its host addresses.)"""
    wrapped = getattr(a, "_ary", None)
    if isinstance(wrapped, np.ndarray):
        start = wrapped.__array_interface__["data"][0]
        return start, start + wrapped.nbytes
    face = getattr(a, "__cuda_array_interface__", None)
    if face is None:
        return None
    start = face["data"][0]
    size = int(np.prod(face["shape"], dtype=np.int64)) * np.dtype(face["typestr"]).itemsize
    return start, start + size


def extent(a):
    """(first, last + 1) byte address of the memory of a C-contiguous host or device array, or
    None for anything else."""
    if isinstance(a, np.ndarray):
        if not a.flags.c_contiguous:
            return None
        start = a.__array_interface__["data"][0]
        return start, start + a.nbytes
    return _device_extent(a) if is_device_array(a) else None


def share_memory(a, b):
    """True when arrays ``a`` and ``b`` (host or device; None: never) may share memory: NumPy's
    bounds test for host arrays, overlapping address ranges for device arrays."""
    if a is None or b is None:
        return False
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return bool(np.may_share_memory(a, b))
    if is_device_array(a) and is_device_array(b):
        ea, eb = _device_extent(a), _device_extent(b)
        return ea is not None and eb is not None and ea[0] < eb[1] and eb[0] < ea[1] \
            and ea[0] != ea[1] and eb[0] != eb[1]
    return False


def disjoint(fn, written, others):
    """No array of ``written`` ({name: array} updated in place) shares memory with another of
    ``written`` or with one of ``others`` ({name: array or None}); else a ValueError naming
    both."""
    names = list(written)
    for i, name in enumerate(names):
        pairs = [(n, written[n]) for n in names[i + 1:]] + list(others.items())
        for other, b in pairs:
            if share_memory(written[name], b):
                _fail(ValueError, fn, f"{name} and {other} share memory; give each its own "
                                      "array (both are read or written while the other is "
                                      "written)")


def output(fn, name, out, shape, dtype, inputs):
    """``out`` is None or a writable C-contiguous array of ``shape`` and ``dtype`` that shares no
    memory with ``inputs`` (results are written while inputs are still read; device arrays are
    compared by their address ranges)."""
    if out is None:
        return None
    if is_device_array(out):
        out = _device_view(fn, name, out)
        if out.dtype != dtype:
            _fail(TypeError, fn, f"{name} must have dtype {dtype} (the inputs' dtype), got "
                                 f"{out.dtype}")
        if out.shape != tuple(shape):
            _fail(ValueError, fn, f"{name} must have shape {tuple(shape)}, got {out.shape}")
        for a in inputs:
            if share_memory(out, a):
                _fail(ValueError, fn, f"{name} shares memory with an input; give it its own "
                                      "array")
        return out
    if not isinstance(out, np.ndarray):
        _fail(TypeError, fn, f"{name} must be a NumPy array or None, got {type(out).__name__}")
    if out.dtype != dtype:
        _fail(TypeError, fn, f"{name} must have dtype {dtype} (the inputs' dtype), got {out.dtype}")
    if out.shape != tuple(shape):
        _fail(ValueError, fn, f"{name} must have shape {tuple(shape)}, got {out.shape}")
    if not (out.flags.writeable and out.flags.c_contiguous):
        _fail(TypeError, fn, f"{name} must be a writable C-contiguous array")
    for a in inputs:
        if isinstance(a, np.ndarray) and np.may_share_memory(out, a):
            _fail(ValueError, fn, f"{name} shares memory with an input; give it its own array")
    return out


def outputs(fn, out, specs, inputs):
    """``out`` is None or a tuple with one entry per (name, shape, dtype) in ``specs`` (a None
    spec: the entry must be None), each checked by ``output``; returns it as a tuple."""
    if out is None:
        return None
    if not isinstance(out, (tuple, list)) or len(out) != len(specs):
        names = ", ".join(name for name, _, _ in specs)
        _fail(TypeError, fn, f"out must be a tuple ({names}) of arrays or None, got {out!r:.80}")
    checked = []
    for entry, (name, shape, dtype) in zip(out, specs):
        if shape is None:
            if entry is not None:
                _fail(ValueError, fn, f"out's {name} must be None here (it is not computed)")
            checked.append(None)
        else:
            checked.append(output(fn, f"out's {name}", entry, shape, dtype, inputs))
    for i, a in enumerate(checked):
        for b in checked[i + 1:]:
            if share_memory(a, b):
                _fail(ValueError, fn, "the arrays of out share memory; give each its own")
    return tuple(checked)


def in_unit_interval(fn, name, a):
    """Every value of ``a`` lies in [0, 1] (0/1 labels or probabilities), else a ValueError
    naming ``name`` with how many values do not (NaN does not either) and the first of them.
    A device array is checked on a host copy. Its min and max first (two fast reductions; NaN
    fails both comparisons), the count only when they fail."""
    a = to_host(a)
    low, high = a.min(), a.max()
    if low >= 0 and high <= 1:
        return
    outside = ~((a >= 0) & (a <= 1))
    where = tuple(int(i) for i in np.argwhere(outside)[0])
    _fail(ValueError, fn, f"{name} must hold values in [0, 1] (labels or probabilities); "
                          f"{int(np.count_nonzero(outside))} of its {a.size} values are outside "
                          f"[0, 1] or NaN (first at index {where}: {float(a[where])!r})")


def class_labels(fn, name, y, n_rows, n_classes):
    """Integer class indices (n_rows,) in [0, n_classes) (device labels: checked on a copy)."""
    if np.dtype(y.dtype).kind not in "iu":
        _fail(TypeError, fn, f"{name} as class indices must have an integer dtype, got {y.dtype}")
    shape(fn, name, y, (n_rows,), "(one class index per row of Z)")
    y = to_host(y)
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= n_classes:
        bad = low if low < 0 else high
        _fail(ValueError, fn, f"{name} holds class index {bad}, outside [0, {n_classes}) for Z "
                              f"with {n_classes} columns")
