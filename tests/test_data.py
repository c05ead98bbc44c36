"""fastnn.data: one_hot, minibatches, load_digits."""
import numpy as np
import pytest

from fastnn.data import load_digits, minibatches, one_hot


def test_one_hot():
    Y = one_hot(np.array([2, 0, 1, 2]), 4)
    np.testing.assert_array_equal(Y, [[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])
    assert Y.dtype == np.float32
    assert one_hot(np.array([1, 0])).shape == (2, 2)
    with pytest.raises(ValueError, match="labels must be in"):
        one_hot(np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="integer class indices"):
        one_hot(np.array([0.0, 1.0]))


def test_minibatches_shuffle_then_partition():
    X = np.arange(23)[:, None] * np.ones((1, 2))
    y = np.arange(23)
    batches = list(minibatches(X, y, 5, seed=1))
    assert [len(b[1]) for b in batches] == [5, 5, 5, 5, 3]  # the last batch is smaller
    seen = np.concatenate([b[1] for b in batches])
    assert sorted(seen) == list(range(23)) and list(seen) != list(range(23))  # shuffled
    for Xb, yb in batches:
        np.testing.assert_array_equal(Xb[:, 0], yb)  # rows stay paired with their labels
    again = np.concatenate([b[1] for b in minibatches(X, y, 5, seed=1)])
    np.testing.assert_array_equal(seen, again)  # seeded
    in_order = np.concatenate([b[1] for b in minibatches(X, y, 5, seed=None)])
    np.testing.assert_array_equal(in_order, y)
    with pytest.raises(ValueError, match="batch_size"):
        list(minibatches(X, y, 0))


def test_load_digits_is_a_standardized_stratified_split():
    pytest.importorskip("sklearn")
    X_train, y_train, X_test, y_test = load_digits()
    assert X_train.shape == (1437, 64) and X_test.shape == (360, 64)
    assert X_train.dtype == np.float32
    assert set(np.unique(y_train)) == set(range(10)) == set(np.unique(y_test))
    np.testing.assert_allclose(X_train.mean(axis=0), 0, atol=1e-5)
    stds = X_train.std(axis=0)
    assert np.all((np.abs(stds - 1) < 1e-4) | (stds == 0))
