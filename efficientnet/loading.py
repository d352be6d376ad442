"""What both weight readers share (efficientnet.weights for Keras HDF5 files, efficientnet.tpu_checkpoint for the
original TF1 checkpoints): the result record, the model's weighted layers by name, and the all-or-nothing error.

It imports neither reader, so the readers depend on it and never on each other's module.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, List, Tuple

import keras

# Pass as skip_mismatch_layers to load everything but the classifier.
CLASSIFIER_LAYERS = ("predictions",)


@dataclasses.dataclass(frozen=True)
class LoadResult:
    """What `load_weights` did: layers assigned, layers left as they were, file layers (HDF5) or scope-relative
    variables (TF checkpoint) not used, and how many variables came from an ExponentialMovingAverage shadow."""

    loaded: Tuple[str, ...]
    skipped: Tuple[str, ...]
    ignored: Tuple[str, ...]
    from_ema: int = 0


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
