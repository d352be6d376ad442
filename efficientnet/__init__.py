"""EfficientNet B0-B7 (and b8, l2, EdgeTPU S/M/L, Lite0-4, CondConv, EfficientNet-X/H) for TensorFlow 2 / Keras 3:
variants, model builder, weight loading (Keras HDF5 files and the original tensorflow/tpu checkpoints).

The package depends on nothing else in the project (docs/architecture.md): it never imports data/, tpu/, training/ or
configs/. The scaling table (`VARIANTS`, `get_variant`, ...) imports without TensorFlow, so command-line tools
can validate a variant name before paying for the TensorFlow import; `build_model`, `build_feature_model` (the
multi-scale backbone), `endpoint_table` and `load_weights` load TensorFlow on first use (PEP 562 module __getattr__).
"""

import importlib

from efficientnet.variants import VARIANTS, Variant, custom_variant, get_variant

_LAZY = {
    "build_model": "efficientnet.model",
    "build_feature_model": "efficientnet.model",
    "endpoint_table": "efficientnet.model",
    "load_weights": "efficientnet.weights",
}

__all__ = [
    "VARIANTS",
    "Variant",
    "build_feature_model",
    "build_model",
    "custom_variant",
    "endpoint_table",
    "get_variant",
    "load_weights",
]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'efficientnet' has no attribute {name!r}")
