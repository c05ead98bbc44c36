"""Files written whole or not at all.

``atomic_write(path)`` gives a temporary file in the target's folder; when the ``with`` block ends
without an exception the file is flushed, fsynced and renamed over ``path`` (``os.replace``, atomic
on POSIX and Windows), and the folder is fsynced. A reader, or a process killed at any moment, sees
the old file or the new one, never a part. On an exception the temporary file is removed and the
old file is untouched. A process killed while writing leaves its temporary file
(``.NAME.PID.XXXX.tmp``); the next ``atomic_write`` of that path removes those of dead processes.

``save_figure(fig, path)`` saves a matplotlib figure that way (the learning curves, the plots of
``fastnn.tune``).
"""
import contextlib
import os
import tempfile

__all__ = ["atomic_write", "save_figure"]

_UMASK = os.umask(0)  # read once at import: os.umask can only be read by setting it
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside ``path`` in ``mode`` ("wb" or "w"; text is UTF-8 with
    newlines as written) and move it onto ``path`` once the block succeeds."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write: mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    prefix = f".{os.path.basename(path)}."
    _remove_stale(folder, prefix)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f"{prefix}{os.getpid()}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # the permissions open() would give, not mkstemp's 0600
        text = {} if mode == "wb" else {"encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, mode, **text) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def save_figure(fig, path, dpi=100):
    """``fig.savefig`` into ``path`` whole or not at all (``atomic_write``), in the format of the
    path's extension (PNG without one)."""
    kind = os.path.splitext(os.fspath(path))[1][1:].lower() or "png"
    with atomic_write(path) as f:
        fig.savefig(f, format=kind, dpi=dpi)


def _remove_stale(folder, prefix):
    """Remove the temporary files ``prefix``PID.*.tmp in ``folder`` left by dead processes."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid = name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # (another user's process, or no way to tell: keep its file)
    return True


def _fsync_folder(folder):
    """Make the rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
