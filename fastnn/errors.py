"""The exceptions fastnn raises besides Python's TypeError and ValueError (for bad arguments).

``FloatingPointError``
    ``NonFiniteError``: NaN or inf appeared in a computation (a kernel's result overflowed although
    its inputs were finite, or a model met NaN/inf in its parameters or activations).
        ``TrainingDivergedError``: the same during ``fit`` or ``train_on_batch``; the model keeps
        the parameters, optimizer state and running statistics of the last good step.

Both are exported as ``fastnn.NonFiniteError`` and ``fastnn.TrainingDivergedError``. Catching
``FloatingPointError`` (or ``ArithmeticError``) catches both.
"""

__all__ = ["NonFiniteError", "TrainingDivergedError"]


class NonFiniteError(FloatingPointError):
    """NaN or inf met in a computation. (A backend raises it bare as a signal; the public kernel
    API turns it into a ValueError naming the input that holds NaN/inf, or into a
    NonFiniteError with a message when the result overflowed from finite inputs.)"""


class TrainingDivergedError(NonFiniteError):
    """The loss, a gradient or an update became NaN or inf in training; the model keeps the
    state of the last good step."""
