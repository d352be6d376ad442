"""`build_model`: an EfficientNet as a Keras functional model, from a variant name or a `Variant` row.

Contract (docs/architecture.md): input float NHWC pixels in [0, 255], normalized inside the model with constant ImageNet
statistics; output float32 LOGITS, also under a mixed_bfloat16 / mixed_float16 policy. Weighted layers carry
the Keras Applications names (stem_conv, block2b_project_conv, top_bn, predictions, ...; docs/recipe.md §2).
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Tuple, Union

import keras

from efficientnet import blocks
from efficientnet.variants import Variant, get_variant

ImageSize = Union[int, Sequence[int], None]


def build_model(variant: Union[str, Variant], *, num_classes: Optional[int] = None, image_size: ImageSize = None,
                include_top: bool = True, dropout_rate: Optional[float] = None,
                survival_prob: Optional[float] = None, batchnorm_group_size: int = 1,
                name: Optional[str] = None) -> keras.Model:
    """Builds an EfficientNet.

    Args:
      variant: "b0".."b7", "b8", "l2", "edgetpu-s/m/l", "lite0".."lite4" (see `get_variant`) or a `Variant`
        (e.g. from `custom_variant`).
      num_classes: classifier width; default the variant's (1000; 1001 for EdgeTPU). Ignored when include_top
        is False.
      image_size: input side (int) or (height, width); default the variant's native resolution.
      include_top: True -> global average pool, dropout, Dense logits (float32). False -> the top activation map
        (N, H/32, W/32, head filters) in the compute dtype, as Keras Applications with pooling=None and
        tensorflow/tpu's features; add your own pooling for a pooled feature vector.
      dropout_rate: dropout before the classifier; default the variant's (0 removes the layer).
      survival_prob: stochastic-depth keep probability of the last block, ramped linearly from 1 at the first
        block (docs/recipe.md §2); default the variant's 0.8. 1 disables stochastic depth.
      batchnorm_group_size: in training, BatchNorm statistics over this many consecutive replicas together
        (blocks.group_moments): 1 per replica (the default), the replica count for synchronized BatchNorm.
      name: model name; default "efficientnet-<variant name>".
    """
    v = get_variant(variant)
    num_classes = v.num_classes if num_classes is None else num_classes
    height, width = _image_shape(image_size if image_size is not None else v.resolution)
    dropout_rate = v.dropout_rate if dropout_rate is None else dropout_rate
    survival_prob = v.survival_prob if survival_prob is None else survival_prob
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate!r}")
    if not 0.0 < survival_prob <= 1.0:
        raise ValueError(f"survival_prob must be in (0, 1], got {survival_prob!r}")
    if include_top and (isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1):
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")

    inputs = keras.Input(shape=(height, width, 3), dtype=keras.config.dtype_policy().variable_dtype, name="images")
    x = blocks.InputNormalization(v.mean_rgb, v.stddev_rgb, name="input_normalization")(inputs)
    x = blocks.conv2d(v.stem_width, 3, 2, "stem_conv")(x)
    x = blocks.batch_norm("stem_bn", v.activation, batchnorm_group_size)(x)
    for prefix, config in block_configs(v, survival_prob=survival_prob, batchnorm_group_size=batchnorm_group_size):
        x = blocks.mbconv_block(x, config, prefix)
    x = blocks.conv2d(v.head_width, 1, 1, "top_conv")(x)
    x = blocks.batch_norm("top_bn", v.activation, batchnorm_group_size)(x)
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            # Not keras.layers.Dropout, which drops the same units on every replica (blocks.ReplicaDropout).
            x = blocks.ReplicaDropout(dropout_rate, name="top_dropout")(x)
        # Classifier at the variables' precision: float32 logits (and loss) under mixed precision (docs/recipe.md §5).
        x = keras.layers.Dense(num_classes, kernel_initializer=blocks.DenseKernelInitializer(),
                               dtype=keras.config.dtype_policy().variable_dtype, name="predictions")(x)
    return keras.Model(inputs, x, name=name or f"efficientnet-{v.name}")


def block_configs(variant: Union[str, Variant], *, survival_prob: Optional[float] = None,
                  batchnorm_group_size: int = 1) -> List[Tuple[str, blocks.MBConvConfig]]:
    """The scaled MBConv blocks of a variant as (name prefix, config), in order.

    Prefixes follow Keras Applications: "block{stage}{letter}_" with the letter counting blocks within the
    stage. Block i of N keeps its residual branch with p = 1 - (1 - survival_prob)·i/N (i from 0; docs/recipe.md §2).
    """
    v = get_variant(variant)
    survival_prob = v.survival_prob if survival_prob is None else survival_prob
    scaled = []
    for stage_index, stage in enumerate(v.stages, start=1):
        for j in range(v.stage_repeats(stage_index - 1)):
            first = j == 0
            scaled.append((f"block{stage_index}{_block_letter(j)}_", blocks.MBConvConfig(
                input_filters=v.round_filters(stage.input_filters if first else stage.output_filters),
                output_filters=v.round_filters(stage.output_filters),
                kernel_size=stage.kernel_size,
                strides=stage.strides if first else 1,
                expand_ratio=stage.expand_ratio,
                se_ratio=stage.se_ratio,
                activation=v.activation,
                batchnorm_group_size=batchnorm_group_size,
                fused=stage.fused,
                id_skip=stage.id_skip)))
    total = len(scaled)
    drop = 1.0 - survival_prob
    return [(prefix, dataclasses.replace(config, survival_prob=1.0 - drop * i / total))
            for i, (prefix, config) in enumerate(scaled)]


def _block_letter(index: int) -> str:
    """0 -> "a", 25 -> "z", 26 -> "aa": Keras' chr(97 + j) for the first 26, spreadsheet style after."""
    letters = ""
    index += 1
    while index > 0:
        index, rem = divmod(index - 1, 26)
        letters = chr(97 + rem) + letters
    return letters


def _image_shape(image_size) -> Tuple[int, int]:
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    try:
        height, width = (int(s) for s in image_size)
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be an int or (height, width), got {image_size!r}") from None
    if height < 1 or width < 1 or (height, width) != tuple(image_size):
        raise ValueError(f"image_size must be positive ints, got {image_size!r}")
    return height, width

