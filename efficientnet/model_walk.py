"""Finding the BatchNorm layers of a built Keras model: what EMA averages and what weight decay skips."""

import keras


def check_built(model, caller):
    """ValueError unless `model` is a Keras layer/model whose variables exist."""
    if not isinstance(model, keras.layers.Layer):
        raise ValueError(f"{caller} expects a keras.Model or keras.layers.Layer, got {type(model).__name__}")
    if not model.variables:
        raise ValueError(
            f"{caller}: model {model.name!r} has no variables; build it (call it on an input or "
            "model.build(shape)) first"
        )


def batchnorm_layers(model):
    """Every keras.layers.BatchNormalization inside `model` (nested models and custom layers included), once."""
    # Keras 3 has no public recursive layer walk; _flatten_layers is what Model.layers uses.
    return [
        layer
        for layer in model._flatten_layers(include_self=True, recursive=True)  # pylint: disable=protected-access
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
