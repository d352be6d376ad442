"""Shared fixtures for the efficientnet tests: one cache of built models and Keras-application references."""

import h5py
import keras
import numpy as np
import pytest

from efficientnet import build_model
from efficientnet.model import NATIVE

# Keras Applications constructors: the independent oracle for names, parameter counts and numerics.
KERAS_APPS = {f"b{i}": getattr(keras.applications, f"EfficientNetB{i}") for i in range(8)}
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


@pytest.fixture(scope="session")
def built():
    """built(variant, image_size=NATIVE, **kwargs) -> our model, built once per argument set for the session."""
    cache = {}

    def get(variant, image_size=NATIVE, **kwargs):
        key = (variant, image_size, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = build_model(variant, image_size=image_size, **kwargs)
        return cache[key]

    return get


def keras_reference(variant: str, image_size: int, seed: int = 0) -> keras.Model:
    """Keras Applications EfficientNet (logits output) with randomized, calibrated BatchNorm.

    Its Normalization layer is set to mean and std² (it divides by sqrt(variance); docs/recipe.md §2 quirk), so
    with weights=None it normalizes exactly as our model does. BN gamma/beta are randomized and the moving
    statistics set to the batch statistics of the test input (`random_pixels(image_size)`, stochastic depth
    off), so that every BN variable differs per channel (a wrong order of a BN layer's four same-shaped weights
    would change the outputs) while activations stay well scaled through the deep stack: with statistics from
    other images, the 2x2 maps of a 33-pixel input made activations grow to 1e5 and float32 noise with them.
    Build it under the dtype policy wanted for the comparison (tests use float64 for the deep variants).
    """
    model = KERAS_APPS[variant](weights=None, input_shape=(image_size, image_size, 3), classifier_activation=None)
    rng = np.random.default_rng(seed)
    # Found by type: Keras auto-names it normalization_1, ... when several applications are built.
    normalization = next(l for l in model.layers if isinstance(l, keras.layers.Normalization))
    normalization.set_weights([IMAGENET_MEAN, IMAGENET_STD**2, np.array(0)])
    normalization.finalize_state()  # Keras 3 copies the adapt variables into the used constants only here
    batch_norms = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    for layer in batch_norms:
        n = layer.gamma.shape[0]
        layer.gamma.assign(rng.uniform(0.5, 1.5, n))
        layer.beta.assign(rng.normal(0, 0.2, n))
        layer.momentum = 0.0  # moving statistics := this batch's statistics
    drops = [l for l in model.layers if isinstance(l, keras.layers.Dropout)]
    rates = [l.rate for l in drops]
    for layer in drops:
        layer.rate = 0.0
    model(random_pixels(image_size), training=True)
    for layer, rate in zip(drops, rates):
        layer.rate = rate
    for layer in batch_norms:
        layer.momentum = 0.99
    return model


def write_keras2_h5(model: keras.Model, path) -> None:
    """Writes `model`'s weights in the Keras 2 HDF5 layout of the published files (docs/recipe.md §2)."""
    with h5py.File(path, "w") as h5:
        h5.attrs["layer_names"] = [layer.name.encode("utf8") for layer in model.layers]
        h5.attrs["backend"] = b"tensorflow"
        for layer in model.layers:
            group = h5.create_group(layer.name)
            names = [f"{layer.name}/{w.name}:0" for w in layer.weights]
            group.attrs["weight_names"] = [n.encode("utf8") for n in names]
            for name, weight in zip(names, layer.weights):
                group.create_dataset(name, data=np.asarray(weight.numpy()))


def random_pixels(image_size: int, batch: int = 2, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (batch, image_size, image_size, 3)).astype("float32")
