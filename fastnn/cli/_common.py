"""What the jobs share: ``OptionError`` (a bad argument, named), ``prepare_out`` (the output
folder, checked before any work) and ``have_matplotlib`` (plots are skipped, with a note, when
it is missing)."""
import os
import tempfile

__all__ = ["OptionError", "have_matplotlib", "prepare_out"]


class OptionError(ValueError):
    """A bad argument of a job, found before any work; ``name`` is the argument's keyword (the
    command line's option ``--name``, with "-" for "_")."""

    def __init__(self, name, message):
        super().__init__(message)
        self.name = name


def prepare_out(out, files=(), name="out"):
    """Make the folder ``out`` (with its parents) and check that the ``files`` can be written in
    it; ``OptionError`` (named ``name``) saying why not: ``out`` is a file, a parent is a file,
    the folder is not writable, one of ``files`` is a folder. Returns ``out``."""
    out = os.fspath(out)
    if not out:
        raise OptionError(name, "the output folder must be named, got ''")
    if os.path.exists(out) and not os.path.isdir(out):
        raise OptionError(name, f"{out!r} exists and is not a folder")
    try:
        os.makedirs(out, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".fastnn-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise OptionError(name, f"cannot write into the folder {out!r}: "
                                f"{error.strerror or error}") from None
    for file in files:
        path = os.path.join(out, file)
        if os.path.isdir(path):
            raise OptionError(name, f"{path!r} is a folder, where the file {file} is to be "
                                    f"written")
    return out


def have_matplotlib():
    """Whether matplotlib can be imported (the plots are skipped, with a note, when not)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True
