"""Weight initializers: W (n_in, n_out) drawn from a seeded NumPy Generator.

- "zeros": all zeros (breaks symmetry for nothing: every unit learns the same thing).
- "random": N(0, scale^2), scale given (the course's np.random.randn(...) * 0.01).
- "he": N(0, 2 / n_in), for ReLU layers.
- "lecun": N(0, 1 / n_in); the course calls it "Xavier".
- "glorot": N(0, 2 / (n_in + n_out)); PyTorch's and Keras' "Xavier"/"Glorot" normal.
"""
import numpy as np

INITIALIZERS = ("zeros", "random", "he", "lecun", "glorot")


def std(name, n_in, n_out, scale=0.01):
    """Standard deviation of the named initializer for a (n_in, n_out) weight."""
    check(name)
    return {"zeros": 0.0, "random": scale, "he": np.sqrt(2.0 / n_in),
            "lecun": np.sqrt(1.0 / n_in), "glorot": np.sqrt(2.0 / (n_in + n_out))}[name]


def initialize(name, shape, rng, dtype=np.float32, scale=0.01):
    """A weight array of ``shape`` (n_in, n_out) drawn with the named initializer."""
    sigma = std(name, shape[0], shape[1], scale)
    if sigma == 0.0:
        return np.zeros(shape, dtype)
    return (rng.standard_normal(shape) * sigma).astype(dtype)


def check(name):
    """Raise ValueError unless ``name`` is a known initializer."""
    if name not in INITIALIZERS:
        raise ValueError(f"unknown initializer {name!r}; expected one of {', '.join(INITIALIZERS)}")
