"""Data helpers: one-hot labels, mini-batches, and the bundled handwritten-digits data set."""
import numbers

import numpy as np


def one_hot(y, n_classes=None, dtype=np.float32):
    """Y (n, n_classes) with Y[i, y[i]] = 1, from integer class indices y (n,)."""
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(f"one_hot: y must be 1-D integer class indices, got shape {y.shape} and "
                         f"dtype {y.dtype}")
    if n_classes is not None and (not isinstance(n_classes, numbers.Integral)
                                  or isinstance(n_classes, bool) or n_classes < 1):
        raise ValueError(f"one_hot: n_classes must be an integer >= 1 or None, got {n_classes!r}")
    n_classes = int(y.max()) + 1 if n_classes is None and y.size else int(n_classes or 0)
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"one_hot: labels must be in [0, {n_classes}), got [{y.min()}, {y.max()}]")
    try:
        Y = np.zeros((y.shape[0], n_classes), dtype)
    except (ValueError, MemoryError):
        raise ValueError(f"one_hot: {y.shape[0]} rows of {n_classes} classes (the largest label "
                         f"+ 1) do not fit in memory; check the labels or give n_classes") from None
    Y[np.arange(y.shape[0]), y] = 1
    return Y


def minibatch_indices(n, batch_size, seed=0, fold_single_row=False):
    """Yield the rows of each mini-batch of n samples: a slice per batch with ``seed=None`` (the
    data's order), else index arrays of a seeded permutation of range(n) cut into pieces of
    ``batch_size``; the last batch may be smaller. ``fold_single_row``: a last batch of one row
    is joined to the one before (batch normalization needs two rows)."""
    if (not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool)
            or batch_size < 1):
        raise ValueError(f"minibatches: batch_size must be an integer >= 1, got {batch_size!r}")
    if seed is not None and (not isinstance(seed, numbers.Integral) or isinstance(seed, bool)
                             or seed < 0):
        raise ValueError(f"minibatches: seed must be an integer >= 0 or None, got {seed!r}")
    order = None if seed is None else np.random.default_rng(seed).permutation(n)
    starts = list(range(0, n, batch_size))
    if fold_single_row and len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    for start, stop in zip(starts, starts[1:] + [n]):
        rows = slice(start, stop)
        yield rows if order is None else order[rows]


def minibatches(X, y, batch_size, seed=0):
    """Yield (X_batch, y_batch): shuffle the rows (seeded; ``seed=None`` keeps the order), then
    partition them into batches of ``batch_size``; the last batch may be smaller."""
    if len(y) != X.shape[0]:
        raise ValueError(f"minibatches: X has {X.shape[0]} rows but y has {len(y)}")
    for rows in minibatch_indices(X.shape[0], batch_size, seed):
        yield X[rows], y[rows]


def load_digits(test_size=0.2, seed=0, dtype=np.float32):
    """The 8x8 handwritten digits bundled with scikit-learn (1797 images, 10 classes, no
    download): (X_train, y_train, X_test, y_test), X of shape (n, 64), split with stratification
    and standardized with the training set's per-pixel mean and standard deviation."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise ImportError("load_digits needs scikit-learn: pip install 'fastnn[examples]'") \
            from None
    X, y = sklearn_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test_size,
                                                        random_state=seed, stratify=y)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    std[std == 0] = 1.0
    X_train, X_test = ((X_train - mean) / std).astype(dtype), ((X_test - mean) / std).astype(dtype)
    return X_train, y_train, X_test, y_test
