"""What both weight readers share (efficientnet.weights for Keras HDF5 files, efficientnet.tpu_checkpoint for the
original TF1 checkpoints): the result record, the model's weighted layers by name, and the all-or-nothing error.

It imports neither reader, so the readers depend on it and never on each other's module.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, List, Tuple

import keras
import numpy as np

# Pass as skip_mismatch_layers to load everything but the classifier.
CLASSIFIER_LAYERS = ("predictions",)
# The one layer whose weights depend on the input channel count.
STEM_LAYER = "stem_conv"


@dataclasses.dataclass(frozen=True)
class LoadResult:
    """What `load_weights` did: layers assigned, layers left as they were, file layers (HDF5) or scope-relative
    variables (TF checkpoint) not used, how many variables came from an ExponentialMovingAverage shadow, and the
    layers loaded through `adapt_stem_kernel` (the stem of a model with other than 3 input channels)."""

    loaded: Tuple[str, ...]
    skipped: Tuple[str, ...]
    ignored: Tuple[str, ...]
    from_ema: int = 0
    adapted: Tuple[str, ...] = ()


def stem_adapts(layer_name: str, stored_shape, expected_shape) -> bool:
    """Whether a stored RGB stem kernel (kh, kw, 3, F) loads, adapted, into an expected (kh, kw, C, F), C != 3."""
    stored_shape, expected_shape = tuple(stored_shape), tuple(expected_shape)
    return (
        layer_name == STEM_LAYER
        and len(stored_shape) == len(expected_shape) == 4
        and stored_shape[2] == 3
        and stored_shape[:2] + stored_shape[3:] == expected_shape[:2] + expected_shape[3:]
    )


def adapt_stem_kernel(kernel: np.ndarray, input_channels: int) -> np.ndarray:
    """An RGB stem kernel (kh, kw, 3, F) for `input_channels` inputs: input channel i takes the RGB kernel slice
    i mod 3, all scaled by 3 / input_channels (timm's rule for pretrained weights with more or fewer channels).

    When every channel carries the same picture the stem's response keeps its scale; an input of k copies of
    the RGB image (6, 9, ... channels, normalized with the same cycle of statistics, model.input_statistics)
    gives exactly the RGB model's output. A 1-channel model does not use this: it broadcasts the grey value to
    RGB before its unchanged stem (model.input_statistics).
    """
    kernel = np.asarray(kernel)
    return kernel[:, :, [i % 3 for i in range(input_channels)], :] * (3.0 / input_channels)


def weighted_layers(model: keras.Model) -> Dict[str, keras.layers.Layer]:
    """Layers of `model` (nested models flattened) that own weights, by name, in model order."""
    found: Dict[str, keras.layers.Layer] = {}
    for layer in _flatten(model):
        if layer.weights:
            if layer.name in found:
                raise ValueError(f"model {model.name!r} has two weighted layers named {layer.name!r}")
            found[layer.name] = layer
    return found


def _flatten(model: keras.Model) -> Iterable[keras.layers.Layer]:
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _flatten(layer)
        else:
            yield layer


def raise_if_problems(problems: List[str]) -> None:
    """One ValueError for every mismatch found while planning a load (nothing has been assigned yet)."""
    if problems:
        more = f" (and {len(problems) - 1} more mismatched layers)" if len(problems) > 1 else ""
        raise ValueError(f"cannot load weights, nothing was changed: {problems[0]}{more}")


def set_backbone_trainable(model: keras.Model, trainable: bool) -> None:
    """Freezes (False) or unfreezes (True) every layer but the classifier (CLASSIFIER_LAYERS)."""
    for layer in model.layers:
        if layer.name not in CLASSIFIER_LAYERS:
            layer.trainable = trainable
