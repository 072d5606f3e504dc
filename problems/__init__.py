"""Problem bindings: datasets to networks, metrics, regularizers, experiments and figures."""
