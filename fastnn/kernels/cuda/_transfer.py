"""Host and device arrays in and out of the CUDA kernels.

A kernel accepts NumPy arrays (copied to the device and back), Numba device arrays (used as they
are) and any object with ``__cuda_array_interface__``, such as CuPy arrays or PyTorch CUDA tensors
(viewed with ``cuda.as_cuda_array``, no copy). It returns NumPy arrays when every array argument
was a host array, and Numba device arrays when any was a device array. Device arrays must be
C-contiguous (the kernels see them as flat buffers). Shapes and dtypes are taken from the Numba
views (a PyTorch tensor's own ``dtype`` and ``size`` are not NumPy's).

``out=`` buffers of any kind are written into and returned as given (a host ``out`` gets the
result copied in). Arguments updated in place (running statistics, optimizer state) are updated
where they live: a host array gets its new values copied back once the kernels succeeded.

What a call's kernels find and compute goes into its record (``Record``, one small float64
device array): NaN/inf met, class labels out of range, and the numbers it returns (a loss, a
count). ``finish`` reads the record (which waits for the GPU) and raises on a count. Inside
``deferred_checks`` (the backend's ``kernel_scope``, which a model's training step enters), calls
on device arrays share one record that is read once, when the scope is left, and return their
numbers as ``Pending`` values read then: one wait per step instead of one per kernel call.
"""
import contextlib

import numpy as np
from numba import cuda

from fastnn.errors import NonFiniteError
from fastnn.kernels.base import OutermostScope, device_view, is_device_array
from fastnn.kernels.cuda import _scratch
from fastnn.kernels.cuda._device import require_gpu
from fastnn.kernels.cuda._scratch import BAD_LABELS, FIRST_VALUE, NONFINITE, RECORD_SIZE


def flat(d):
    """The 1-D view of a C-contiguous device array."""
    return d.reshape(d.size)


class Record:
    """The device record of one call or one deferred scope: counts in slots NONFINITE and
    BAD_LABELS, values stored by kernels from slot FIRST_VALUE on (``reserve``), and its host
    copy once read (``read``; final once no kernel writes the record any more)."""

    def __init__(self):
        self.device = _scratch.record()
        self.used = FIRST_VALUE
        self.host = None
        self.final = False

    def reserve(self, n):
        """The first of n value slots taken for a call, or None when the record is full."""
        if self.used + n > RECORD_SIZE:
            return None
        first, self.used = self.used, self.used + n
        return first

    def read(self, final):
        """Copy the record to the host (waits for the GPU); ``final``: no kernel writes it
        again, so later reads use this copy."""
        self.host, self.final = self.device.copy_to_host(), final
        return self.host

    def value(self, slot):
        """The value in ``slot`` (read now unless the record was read for good)."""
        return float((self.host if self.final else self.read(False))[slot])

    def check(self):
        """Raise on what the kernels counted (in the copy last read): ValueError for class
        labels out of range, NonFiniteError for NaN/inf met or a value that is not finite."""
        host = self.host
        if host[BAD_LABELS]:
            raise ValueError("y holds class labels outside [0, C), the columns of the logits")
        if host[NONFINITE] or not np.isfinite(host[FIRST_VALUE:self.used]).all():
            raise NonFiniteError("NaN or inf in a kernel of this training step")

    def release(self):
        """Give the device array back for a later call (its counts were read as zero)."""
        _scratch.give_back(self.device)
        self.device = None


class Pending:
    """A number kernels left in a record (a loss, a count): ``float()`` or ``int()`` of it reads
    the record, which costs nothing more once its scope has ended (the scope read it). Sums of
    pending numbers and numbers, their multiples and quotients by a number are pending too (a
    loss plus its L2 term); formatting reads the value.
    """

    __slots__ = ("terms", "constant")

    def __init__(self, terms, constant=0.0):
        self.terms, self.constant = tuple(terms), constant  # ((record, slot, scale), ...)

    def __float__(self):
        return self.constant + sum(scale * record.value(slot)
                                   for record, slot, scale in self.terms)

    def __int__(self):
        return round(float(self))

    def __add__(self, other):
        if isinstance(other, Pending):
            return Pending(self.terms + other.terms, self.constant + other.constant)
        return Pending(self.terms, self.constant + float(other))

    __radd__ = __add__

    def __mul__(self, factor):
        factor = float(factor)
        return Pending([(r, slot, scale * factor) for r, slot, scale in self.terms],
                       self.constant * factor)

    __rmul__ = __mul__

    def __truediv__(self, divisor):
        return self * (1.0 / float(divisor))

    def __format__(self, spec):
        return format(float(self), spec)

    def __repr__(self):
        return f"Pending({float(self)!r})"


class DeferredChecks(OutermostScope):
    """A context manager (one object serves every thread; scopes nest): kernel calls on device
    arrays made inside share the scope's record, do not wait to check it and return their
    numbers as ``Pending`` values; leaving the scope without an exception reads the record once
    and raises (``Record.check``) on what it counted. The scope's calls still copy host arrays
    back (checked first) and return results."""

    def record(self):
        """The record of the innermost scope of this thread, or None outside any (or while
        ``suspended``)."""
        return getattr(self._local, "record", None)

    @contextlib.contextmanager
    def suspended(self):
        """A context inside which calls check at once, as outside any scope (an update that
        cannot be undone later, as ``fastnn.optim.Optimizer.step``'s)."""
        local = self._local
        saved, local.record = getattr(local, "record", None), None
        try:
            yield
        finally:
            local.record = saved

    def begin(self, local):
        local.record = Record()

    def end(self, local, exc_type):
        record, local.record = local.record, None
        if exc_type is None:
            record.read(final=True)
            record.check()
            record.release()
        # (a record that counted, or whose scope failed, is dropped)


deferred_checks = DeferredChecks()


class DeviceCall:
    """The transfers of one kernel call: ``read`` inputs, ``update`` in-place arguments,
    ``output`` buffers, then ``finish`` (raise on a count, copy back, return results) and
    ``number`` (the numbers it computed)."""

    def __init__(self, *arrays, deferrable=True, values=0):
        """``deferrable=False``: check at ``finish`` even inside ``deferred_checks`` (a call
        that must undo its writes on NaN/inf, as the in-place optimizer updates do). ``values``:
        how many numbers the call computes (its kernels store them in ``values_out``)."""
        require_gpu()
        self.on_host = not any(is_device_array(a) for a in arrays if a is not None)
        shared = None if self.on_host or not deferrable else deferred_checks.record()
        self.first = None if shared is None else shared.reserve(values)
        self.deferred = self.first is not None  # (checked when the scope is left)
        self.record = shared if self.deferred else Record()
        if not self.deferred:
            self.first = self.record.reserve(values)
        self.bad = self.record.device  # the counts (slot NONFINITE: NaN/inf; BAD_LABELS)
        self.values_out = self.bad[self.first:self.first + values] if values else None
        self._copy_back = []  # (device array, host array updated in place)
        self._given = {}      # id(device array) -> the ``out`` buffer it stands for

    def read(self, a, name="array"):
        """An input on the device (None stays None)."""
        return None if a is None else device_view(a, name)

    def update(self, a, name="array"):
        """An argument updated in place, on the device; a host one is copied back by finish."""
        d = device_view(a, name)
        if not is_device_array(a):
            self._copy_back.append((d, a))
        return d

    def output(self, out, shape, dtype, name="out"):
        """The device array a result is written to: ``out``'s memory when given, else new."""
        if out is None:
            return cuda.device_array(shape, dtype)
        on_device = is_device_array(out)
        if on_device:
            view = device_view(out, name)
        elif isinstance(out, np.ndarray) and out.flags.writeable and out.flags.c_contiguous:
            view = out
        else:
            raise TypeError(f"{name} must be a writable C-contiguous NumPy array or a device "
                            f"array, got {type(out).__name__}")
        if tuple(view.shape) != tuple(shape):
            raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(view.shape)}")
        if np.dtype(view.dtype) != np.dtype(dtype):
            raise TypeError(f"{name} must have dtype {np.dtype(dtype)}, got {view.dtype}")
        d = view if on_device else cuda.device_array(shape, dtype)
        self._given[id(d)] = out
        return d

    def check(self):
        """Raise on what the kernels counted (waits for them): ``Record.check``."""
        self.record.read(final=not self.deferred)
        self.record.check()

    def finish(self, *results):
        """``check``, copy in-place host arguments back, and return the results (one or a tuple;
        None stays None) as NumPy arrays, device arrays or the ``out`` buffers given. A record of
        its own, read with zero counts, goes back for a later call: this call launches nothing
        more (its numbers are then read with ``number``)."""
        if not self.deferred or self._copy_back:  # (host arrays get only checked values)
            self.check()
        if not self.deferred:
            self.record.release()
        self.bad = self.values_out = None
        for d, host in self._copy_back:
            d.copy_to_host(host)
        returned = tuple(self._returned(d) for d in results)
        return returned[0] if len(returned) == 1 else returned

    def number(self, i, scale=1.0):
        """scale * the call's i-th value (after ``finish``): a float, or a ``Pending`` one
        inside ``deferred_checks``."""
        slot = self.first + i
        if self.deferred:
            return Pending([(self.record, slot, scale)])
        return scale * float(self.record.host[slot])

    def _returned(self, d):
        if d is None:
            return None
        out = self._given.get(id(d))
        if out is None:
            return d.copy_to_host() if self.on_host else d
        if not is_device_array(out):
            d.copy_to_host(out)
        return out


def split_out(out, count, name="out"):
    """The ``out=`` of a kernel with ``count`` results: None, or a tuple/list of that many
    buffers (each None or an array)."""
    if out is None:
        return (None,) * count
    if not isinstance(out, (tuple, list)) or len(out) != count:
        raise TypeError(f"{name} must be a tuple of {count} arrays (or None), got "
                        f"{type(out).__name__}")
    return tuple(out)
