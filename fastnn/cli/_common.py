"""What the jobs share: ``OptionError`` (a bad argument, named), ``prepare_out`` (the output
folder, checked before any work), ``have_matplotlib`` (plots are skipped, with a note, when
it is missing), and for the jobs on the user's data ``check_test_size``, ``evaluate_part``
and ``scores_text``."""
import numbers
import os
import tempfile

import numpy as np

__all__ = ["OptionError", "check_test_size", "evaluate_part", "have_matplotlib", "prepare_out",
           "scores_text"]


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


def check_test_size(test_size):
    """``OptionError`` (test_size) unless a number in (0, 1); returns it as a float."""
    if not (isinstance(test_size, numbers.Real) and not isinstance(test_size, bool)
            and 0.0 < test_size < 1.0):
        raise OptionError("test_size", f"test_size must be a number in (0, 1), got "
                                       f"{test_size!r}")
    return float(test_size)


def evaluate_part(model, part):
    """The scores of ``model`` on a ``fastnn.tabular.Dataset`` (a test part): ``evaluate``'s
    dict, and for multi-label models "exact_match" (the fraction of rows with every label
    right)."""
    scores = model.evaluate(part.X, part.y, return_dict=True)
    if part.schema.task == "multilabel":
        n = len(part.y)  # (one label: predict and y are (n,))
        right = model.predict(part.X).reshape(n, -1) == np.reshape(part.y, (n, -1))
        scores["exact_match"] = float(np.mean(np.all(right, axis=1)))
    return scores


def scores_text(task, scores):
    """'test accuracy 0.9667, test loss 0.0812' and the like, from ``evaluate_part``."""
    if task == "regression":
        return (f"test R^2 {scores['r2']:.4f}, MAE {scores['mae']:.4g}, test loss (MSE) "
                f"{scores['loss']:.4g}")
    text = f"test accuracy {scores['accuracy']:.4f}"
    if task == "multilabel":
        text += (f" (over every label of every row; all labels right in "
                 f"{scores['exact_match']:.4f} of the rows)")
    return text + f", test loss {scores['loss']:.4f}"
