"""EfficientNet B0-B7 (and b8, l2) for TensorFlow 2 / Keras 3: variants, model builder, weight loading.

The package depends on nothing else in the project (DESIGN.md): it never imports data/, tpu/, training/ or
configs/.
"""
from efficientnet.model import build_model
from efficientnet.variants import VARIANTS, Variant, custom_variant, get_variant
from efficientnet.weights import load_weights

__all__ = ["VARIANTS", "Variant", "build_model", "custom_variant", "get_variant", "load_weights"]
