"""`build_model`: an EfficientNet as a Keras functional model, from a variant name or a `Variant` row.

Contract (docs/architecture.md): input float NHWC pixels in [0, 255], normalized inside the model with constant ImageNet
statistics; output float32 LOGITS, also under a mixed_bfloat16 / mixed_float16 policy. Weighted layers carry
the Keras Applications names (stem_conv, block2b_project_conv, top_bn, predictions, ...; docs/recipe.md §2).

As a backbone: `build_model(include_top=False, pooling=...)` for the head map or a pooled embedding, and
`build_feature_model` for tensorflow/tpu's multi-scale endpoints (`endpoint_table`: reduction_1..5 at strides
2..32, features, head_1x1) as one dict; both take any spatial size (image_size=None) and channel count.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Tuple, Union

import keras

from efficientnet import blocks
from efficientnet.variants import CLASSIFIER_INITS, Variant, get_variant

ImageSize = Union[int, Sequence[Optional[int]], None, str]

# image_size's default: the variant's native resolution. None means any spatial size, (None, None).
NATIVE = "native"
POOLINGS = (None, "avg", "max")
CLASSIFIER_ACTIVATIONS = (None, "softmax")
FEATURES, HEAD_1X1 = "features", "head_1x1"


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One multi-scale output: its name, its stride from the input, its channels, and the layer whose output it is
    (in every model from `build_model` and `build_feature_model` of the same variant)."""

    name: str
    stride: int
    channels: int
    layer: str


def build_model(
    variant: Union[str, Variant],
    *,
    num_classes: Optional[int] = None,
    image_size: ImageSize = NATIVE,
    input_channels: int = 3,
    input_tensor=None,
    include_top: bool = True,
    pooling: Optional[str] = None,
    classifier_activation: Optional[str] = None,
    dropout_rate: Optional[float] = None,
    survival_prob: Optional[float] = None,
    batchnorm_group_size: int = 1,
    classifier_init: str = "original",
    name: Optional[str] = None,
) -> keras.Model:
    """Builds an EfficientNet.

    variant: "b0".."b7", "b8", "l2", "edgetpu-s/m/l", "lite0".."lite4", "condconv-b0-4e", "x-b0", "h-b5",
      "x-tpu-b3", "x-gpu-b1", ... (see `get_variant`) or a `Variant`
      (e.g. from `custom_variant`).
    num_classes: classifier width; default the variant's (1000; 1001 for EdgeTPU). Ignored when include_top
      is False.
    image_size: input side (int) or (height, width); "native" (default) the variant's resolution; None (or None
      entries) any spatial size: every layer takes maps of any size, strides and "same" padding included.
    input_channels: channels of the input pixels (see `input_statistics` for their normalization and
      efficientnet.loading.adapt_stem_kernel for 3-channel weights loaded into other counts).
    input_tensor: a Keras tensor [N, H, W, C] (a keras.Input, or the output of layers on one) to use as the
      input, as Keras Applications' argument: its shape sets the image size and channels (image_size and
      input_channels then stay at their defaults) and the model's inputs are its source inputs.
    include_top: True -> global average pool, dropout, Dense (float32). False -> tensorflow/tpu's
      `head_1x1` endpoint (after the 1x1 head conv, BN and activation: N, H/32, W/32, head filters; 1280 for
      b0) in the compute dtype, as Keras Applications with include_top=False; `pooling` reduces it.
    pooling: with include_top False: None (the map), "avg" (tensorflow/tpu's `pooled_features`, the embedding
      a classifier head reads) or "max": (N, head filters).
    classifier_activation: None (logits, the training contract) or "softmax"; with include_top only.
    dropout_rate: dropout before the classifier; default the variant's (0 removes the layer).
    survival_prob: stochastic-depth keep probability of the last block, ramped linearly from 1 at the first
      block (docs/recipe.md §2); default the variant's 0.8. 1 disables stochastic depth.
    batchnorm_group_size: in training, BatchNorm statistics over this many consecutive replicas together
      (blocks.group_moments): 1 per replica (the default), the replica count for synchronized BatchNorm.
    classifier_init: the classifier kernel's initialization: "original" (uniform in ±1/sqrt(num_classes),
      tensorflow/tpu efficientnet_model.py dense_kernel_initializer) or "zeros" (a new head for fine-tuning
      that starts at uniform probabilities; configs/finetune.py). The bias starts at zero either way.
    name: model name; default "efficientnet-<variant name>".
    """
    v = get_variant(variant)
    if classifier_init not in CLASSIFIER_INITS:
        raise ValueError(f"classifier_init must be one of {', '.join(CLASSIFIER_INITS)}; got {classifier_init!r}")
    num_classes = v.num_classes if num_classes is None else num_classes
    dropout_rate = v.dropout_rate if dropout_rate is None else dropout_rate
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate!r}")
    if include_top and (isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1):
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    _check_head_options(include_top, pooling, classifier_activation)
    images, inputs = _model_input(v, image_size, input_channels, input_tensor)
    x = _trunk(images, v, survival_prob, batchnorm_group_size, head=True)[HEAD_1X1]
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            # Not keras.layers.Dropout, which drops the same units on every replica (blocks.ReplicaDropout).
            x = blocks.ReplicaDropout(dropout_rate, name="top_dropout")(x)
        # Classifier at the variables' precision: float32 logits (and loss) under mixed precision (docs/recipe.md §5).
        x = keras.layers.Dense(
            num_classes,
            kernel_initializer=blocks.DenseKernelInitializer() if classifier_init == "original" else "zeros",
            activation=classifier_activation,
            dtype=keras.config.dtype_policy().variable_dtype,
            name="predictions",
        )(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return keras.Model(inputs, x, name=name or f"efficientnet-{v.name}")


def build_feature_model(
    variant: Union[str, Variant],
    *,
    endpoints: Optional[Sequence[str]] = None,
    image_size: ImageSize = NATIVE,
    input_channels: int = 3,
    input_tensor=None,
    survival_prob: Optional[float] = None,
    batchnorm_group_size: int = 1,
    name: Optional[str] = None,
) -> keras.Model:
    """A multi-scale feature extractor: a model whose output is a dict {endpoint name: map} (see `endpoints`).

    Layers, names and weights are those of `build_model(variant)`, so the same weight files and checkpoints load
    (efficientnet.load_weights). Outputs are in the compute dtype (bfloat16 under mixed_bfloat16).

    endpoints: names from `endpoints(variant)` ("reduction_1".."reduction_5", "features", "head_1x1");
      default all of them. Without "head_1x1" the model has no head conv, and no block after the last
      requested endpoint.
    image_size, input_channels, input_tensor, survival_prob, batchnorm_group_size, name: as in `build_model`.
    """
    v = get_variant(variant)
    table = {e.name: e for e in endpoint_table(v)}
    wanted = list(table) if endpoints is None else list(endpoints)
    unknown = [e for e in wanted if e not in table]
    if unknown or not wanted or len(set(wanted)) != len(wanted):
        raise ValueError(f"endpoints must be distinct names among {list(table)}, got {endpoints!r}")
    images, inputs = _model_input(v, image_size, input_channels, input_tensor)
    found = _trunk(images, v, survival_prob, batchnorm_group_size, head=HEAD_1X1 in wanted)
    return keras.Model(inputs, {e: found[e] for e in wanted}, name=name or f"efficientnet-{v.name}-features")


def endpoint_table(variant: Union[str, Variant]) -> List[Endpoint]:
    """The variant's endpoints in order, by tensorflow/tpu's rule (efficientnet_model.py, Model.call, lines
    641-678 at 7dc921f): a level `reduction_i` ends at the last block before a stride-2 block, and at the last
    block; `features` is the last block's output; `head_1x1` the 1x1 head conv after its BN and activation.
    When the first block starts with space-to-depth (EfficientNet-X), the stem's output is `reduction_1` and
    that block ends no level (lines 646-648)."""
    v = get_variant(variant)
    configs = block_configs(v)
    table, stride = [], 2  # the stem conv has stride 2
    for idx, (prefix, config) in enumerate(configs):
        if idx == 0 and config.space_to_depth:
            table.append(Endpoint("reduction_1", stride, v.stem_width, "stem_bn"))
        stride *= config.strides * (2 if config.space_to_depth else 1)  # the space-to-depth conv halves too
        if idx == 0 and config.space_to_depth:
            continue  # as the original's elif: that block ends no level
        if idx == len(configs) - 1 or configs[idx + 1][1].strides > 1:
            table.append(
                Endpoint(
                    f"reduction_{len(table) + 1}", stride, config.output_filters, _block_output_layer(prefix, config)
                )
            )
    last = table[-1]
    return table + [
        Endpoint(FEATURES, last.stride, last.channels, last.layer),
        Endpoint(HEAD_1X1, last.stride, v.head_width, "top_bn"),
    ]


def endpoints(variant: Union[str, Variant]) -> List[str]:
    """The endpoint names of a variant, in order (see `endpoint_table`)."""
    return [e.name for e in endpoint_table(variant)]


def input_statistics(variant: Union[str, Variant], input_channels: int) -> Tuple[Tuple[float, ...], ...]:
    """(mean, stddev) per normalized channel for `input_channels` input channels.

    3: the variant's RGB statistics. 1: a grey value stands for R = G = B, so it is normalized with each of the
    three RGB statistics (a broadcast to 3 normalized channels) and feeds the unchanged RGB stem: the model on a
    grey image is exactly the 3-channel model on that image replicated into RGB. (Summing the stem kernel over
    RGB instead cannot be exact with ImageNet statistics: the means differ per channel and "same" padding adds
    zeros after the normalization, so no single mean/std for the grey channel reproduces the border pixels.)
    Other counts: channel i takes the statistics of RGB channel i mod 3, the same cycle as the stem kernel's
    adaptation (efficientnet.loading.adapt_stem_kernel).
    """
    v = get_variant(variant)
    if isinstance(input_channels, bool) or not isinstance(input_channels, int) or input_channels < 1:
        raise ValueError(f"input_channels must be a positive int, got {input_channels!r}")
    count = 3 if input_channels == 1 else input_channels
    return (tuple(v.mean_rgb[i % 3] for i in range(count)), tuple(v.stddev_rgb[i % 3] for i in range(count)))


def image_input(variant: Union[str, Variant], image_size: ImageSize = NATIVE, input_channels: int = 3):
    """The symbolic input pixels [N, H, W, input_channels] at the variables' precision."""
    v = get_variant(variant)
    input_statistics(v, input_channels)  # validates input_channels
    if isinstance(image_size, str):
        if image_size != NATIVE:
            raise ValueError(
                f'image_size must be "native", None, a positive int or (height, width), got {image_size!r}'
            )
        image_size = v.resolution
    height, width = _image_shape(image_size)
    return keras.Input(
        shape=(height, width, input_channels), dtype=keras.config.dtype_policy().variable_dtype, name="images"
    )


def _model_input(v: Variant, image_size, input_channels, input_tensor):
    """(the image tensor the network starts from, the model's inputs)."""
    if input_tensor is None:
        images = image_input(v, image_size, input_channels)
        return images, images
    if not keras.backend.is_keras_tensor(input_tensor) or len(input_tensor.shape) != 4:
        raise ValueError(f"input_tensor must be a 4-D Keras tensor [N, H, W, C], got {input_tensor!r}")
    if not (isinstance(image_size, str) and image_size == NATIVE) or input_channels != 3:
        raise ValueError("input_tensor sets the image size and channels: leave image_size and input_channels out")
    input_statistics(v, input_tensor.shape[-1])  # validates the channel count
    return input_tensor, keras.utils.get_source_inputs(input_tensor)


def _trunk(inputs, v: Variant, survival_prob, batchnorm_group_size, head: bool):
    """Normalization, stem, blocks (and the 1x1 head conv when `head`) on `inputs`: {endpoint name: tensor}."""
    survival_prob = v.survival_prob if survival_prob is None else survival_prob
    if not 0.0 < survival_prob <= 1.0:
        raise ValueError(f"survival_prob must be in (0, 1], got {survival_prob!r}")
    mean, stddev = input_statistics(v, inputs.shape[-1])
    x = blocks.InputNormalization(mean, stddev, name="input_normalization")(inputs)
    x = blocks.conv2d(v.stem_width, 3, 2, "stem_conv")(x)
    x = blocks.batch_norm("stem_bn", v.activation, batchnorm_group_size)(x)
    by_layer = {"stem_bn": x}
    for prefix, config in block_configs(v, survival_prob=survival_prob, batchnorm_group_size=batchnorm_group_size):
        x = blocks.mbconv_block(x, config, prefix)
        by_layer[_block_output_layer(prefix, config)] = x
    if head:
        x = blocks.conv2d(v.head_width, 1, 1, "top_conv")(x)
        by_layer["top_bn"] = blocks.batch_norm("top_bn", v.activation, batchnorm_group_size)(x)
    return {e.name: by_layer[e.layer] for e in endpoint_table(v) if e.layer in by_layer}


def _block_output_layer(prefix: str, config: blocks.MBConvConfig) -> str:
    """The layer whose output is the block's: the residual sum when there is one, else the projection BN."""
    return prefix + ("add" if config.has_residual else "project_bn")


def _check_head_options(include_top, pooling, classifier_activation) -> None:
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if classifier_activation not in CLASSIFIER_ACTIVATIONS:
        raise ValueError(
            f"classifier_activation must be one of {CLASSIFIER_ACTIVATIONS}, got {classifier_activation!r}"
        )
    if include_top and pooling is not None:
        raise ValueError(f"pooling={pooling!r} applies to include_top=False; the classifier always average-pools")
    if not include_top and classifier_activation is not None:
        raise ValueError(f"classifier_activation={classifier_activation!r} needs include_top=True")


def block_configs(
    variant: Union[str, Variant], *, survival_prob: Optional[float] = None, batchnorm_group_size: int = 1
) -> List[Tuple[str, blocks.MBConvConfig]]:
    """The scaled MBConv blocks of a variant as (name prefix, config), in order.

    Prefixes follow Keras Applications: "block{stage}{letter}_" with the letter counting blocks within the
    stage. Block i of N keeps its residual branch with p = 1 - (1 - survival_prob)·i/N (i from 0; docs/recipe.md §2).
    """
    v = get_variant(variant)
    survival_prob = v.survival_prob if survival_prob is None else survival_prob
    scaled = []
    for stage_index, stage in enumerate(v.stages, start=1):
        # Space-to-depth (tensorflow/tpu efficientnet_model.py lines 553-576 at 7dc921f): a d1 stage (stride 1)
        # runs at four times its scaled widths with kernels ceil(k/2), its first block starting with the 2x2
        # stride-2 space-to-depth conv; a d2 stage (stride 2) takes its input already reduced and drops the
        # stride of its first block. The widths are scaled first and multiplied after, as there.
        factor = 4 if stage.space_to_depth == 1 else 1
        kernel_size = (stage.kernel_size + 1) // 2 if factor > 1 else stage.kernel_size
        first_strides = 1 if stage.space_to_depth == 2 else stage.strides
        # se_coefficient scales the ratio before it meets the filters: int(filters * (ratio * coefficient)),
        # efficientnet_model.py lines 254-256.
        se_ratio = stage.se_ratio * v.se_coefficient if stage.se_ratio else stage.se_ratio
        for j in range(v.stage_repeats(stage_index - 1)):
            first = j == 0
            scaled.append(
                (
                    f"block{stage_index}{_block_letter(j)}_",
                    blocks.MBConvConfig(
                        input_filters=factor * v.round_filters(stage.input_filters if first else stage.output_filters),
                        output_filters=factor * v.round_filters(stage.output_filters),
                        kernel_size=kernel_size,
                        strides=first_strides if first else 1,
                        expand_ratio=stage.expand_ratio,
                        se_ratio=se_ratio,
                        activation=stage.activation or v.activation,
                        batchnorm_group_size=batchnorm_group_size,
                        fused=stage.fused,
                        # The first block of a d2 stage receives four times its nominal input_filters (the
                        # space-to-depth stage's output): the original's residual test compares the actual
                        # channels (efficientnet_model.py lines 387-390) and never adds one there.
                        id_skip=stage.id_skip and not (first and stage.space_to_depth == 2),
                        num_experts=v.condconv_num_experts if stage.condconv else 0,
                        fused_conv=stage.fused_conv,
                        space_to_depth=first and stage.space_to_depth == 1,
                    ),
                )
            )
    total = len(scaled)
    drop = 1.0 - survival_prob
    return [
        (prefix, dataclasses.replace(config, survival_prob=1.0 - drop * i / total))
        for i, (prefix, config) in enumerate(scaled)
    ]


def _block_letter(index: int) -> str:
    """0 -> "a", 25 -> "z", 26 -> "aa": Keras' chr(97 + j) for the first 26, spreadsheet style after."""
    letters = ""
    index += 1
    while index > 0:
        index, rem = divmod(index - 1, 26)
        letters = chr(97 + rem) + letters
    return letters


def _image_shape(image_size) -> Tuple[Optional[int], Optional[int]]:
    """(height, width) from an int, a pair, or None; None entries mean any size."""
    if image_size is None or (isinstance(image_size, int) and not isinstance(image_size, bool)):
        image_size = (image_size, image_size)
    try:
        height, width = (None if s is None else _positive_int(s) for s in image_size)
    except (TypeError, ValueError):
        raise ValueError(
            f'image_size must be "native", None, a positive int or (height, width), got {image_size!r}'
        ) from None
    return height, width


def _positive_int(value) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(value)
    return int(value)
