"""Names shared by the public API, the validators and every backend."""

#: Activations a dense layer can fuse after its product; a CPU kernel receives the index.
ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid")
LINEAR, RELU, TANH, SIGMOID = range(len(ACTIVATIONS))
