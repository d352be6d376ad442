"""The EfficientNet family as data: the B0 stage table and the per-variant scaling rows.

Everything the model builder needs to know about a variant lives in a frozen `Variant` row; everything it needs
to know about a stage lives in a frozen `StageSpec` row. Rows are transformed with `dataclasses.replace`, never
mutated. Numbers come from docs/recipe.md §1 (scaling table) and §2 (B0 stages); their origin is tensorflow/tpu
models/official/efficientnet/efficientnet_builder.py.

EdgeTPU S/M/L and Lite0-4 (docs/recipe.md §1) are further rows of the same tables: their own stage tables
(`EDGETPU_STAGES`, `LITE_STAGES`) and the fields that B0-B7 leave at their defaults (activation, no SE, fused
MBConv, unscaled stem/head, inception-style mean/std, 1001 classes). Their numbers come from tensorflow/tpu
models/official/efficientnet/edgetpu/efficientnet_edgetpu_builder.py and lite/efficientnet_lite_builder.py.

EfficientNet-X/H (x-b0..b7, h-b5..b7, x-tpu-*, h-tpu-*, x-gpu-*) are rows too: B0's stage table with the block
options of tensorflow/tpu models/official/efficientnet/tpu/efficientnet_x_builder.py (space-to-depth, fused
convs that keep squeeze-excite, a per-stage activation), ReLU elsewhere, and a per-variant `se_coefficient`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Optional, Tuple, Union

# ImageNet statistics on the [0, 255] pixel scale (docs/recipe.md §2: [0.485, 0.456, 0.406]·255, [0.229, 0.224,
# 0.225]·255). Kept as exact products so that they match what the Keras application computes.
IMAGENET_MEAN_RGB = (0.485 * 255.0, 0.456 * 255.0, 0.406 * 255.0)
IMAGENET_STDDEV_RGB = (0.229 * 255.0, 0.224 * 255.0, 0.225 * 255.0)


# Inception-style statistics of EdgeTPU and Lite: (x - 127) / 128 maps [0, 255] to about [-1, 1] and suits
# post-training quantization (tensorflow/tpu edgetpu/ and lite/ builders, MEAN_RGB / STDDEV_RGB).
INCEPTION_MEAN_RGB = (127.0, 127.0, 127.0)
INCEPTION_STDDEV_RGB = (128.0, 128.0, 128.0)

# Activations the builder knows by name: swish for B0-B7, relu for EdgeTPU and EfficientNet-X, relu6 for Lite.
ACTIVATIONS = ("swish", "relu", "relu6")

# Image resize kernels of the input pipeline (both with tf.compat.v1 semantics, data/preprocessing.py).
RESIZE_METHODS = ("bicubic", "bilinear")

# A new classifier kernel's initialization (build_model classifier_init): the original's uniform
# ±1/sqrt(classes), or zeros for a fine-tuning head (configs/finetune.py says why).
CLASSIFIER_INITS = ("original", "zeros")


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """One stage of MBConv blocks, in B0 units (before width/depth scaling).

    Only the first block of a stage has `strides` and the `input_filters -> output_filters` change; the
    remaining `repeats - 1` blocks map output_filters to output_filters with stride 1 (docs/recipe.md §2).
    `se_ratio` None or 0 means no squeeze-excite. `fused` marks a fused MBConv (EdgeTPU): one kxk conv replaces
    the 1x1 expand conv and the kxk depthwise conv (blocks.fused_mbconv_block). `id_skip` False removes the
    residual connection from every block of the stage (tensorflow/tpu's "noskip"; EdgeTPU's first stage, whose
    declared input_filters differ from the stem's width). `condconv` marks a stage whose expand, depthwise and
    project convs are conditionally parameterized (tensorflow/tpu's "_cc" block option; the variant's
    `condconv_num_experts` says how many experts).

    EfficientNet-X's block options (tensorflow/tpu efficientnet_builder.py BlockDecoder, lines 84-88 at 7dc921f):
    `fused_conv` is the original's "f1": inside an ordinary MBConv block one kxk conv at the block's stride
    replaces the 1x1 expand conv and the kxk depthwise conv, and squeeze-excite stays (efficientnet_model.py
    lines 214-222 and 362-365); it is not `fused` (the original's "c1", EdgeTPU's block without depthwise conv
    or squeeze-excite). `space_to_depth` is the original's "d": 1 on a stride-1 first stage makes its first
    block start with a learned space-to-depth, a 2x2 stride-2 conv to four times the stage's input width, and
    the whole stage runs at four times its widths with kernels ceil(k/2); 2 on the stride-2 stage after it
    drops that stage's stride, which the space-to-depth already took (efficientnet_model.py lines 553-576).
    `activation` is the original's "a" (a0 relu, a1 swish, efficientnet_builder.py lines 87-88); None means
    the variant's.
    """

    kernel_size: int
    strides: int
    expand_ratio: int
    input_filters: int
    output_filters: int
    repeats: int
    se_ratio: Optional[float] = 0.25
    fused: bool = False
    id_skip: bool = True
    condconv: bool = False
    fused_conv: bool = False
    space_to_depth: int = 0
    activation: Optional[str] = None

    def __post_init__(self):
        if self.activation is not None and self.activation not in ACTIVATIONS:
            raise ValueError(f"stage activation must be None or one of {ACTIVATIONS}, got {self.activation!r}")
        if self.fused_conv and (self.fused or self.condconv):
            # No published variant combines the "f1" option with "c1" or "_cc"; the builder has no such block.
            raise ValueError("a fused_conv stage cannot also be fused or condconv: no such block is built")
        if self.space_to_depth not in (0, 1, 2):
            raise ValueError(f"space_to_depth must be 0, 1 or 2 (the original's d0/d1/d2), got {self.space_to_depth!r}")
        if self.space_to_depth and (self.fused or self.condconv):
            raise ValueError("a space_to_depth stage cannot be fused or condconv: no such block is built")
        # The original's Model._build has branches for d1 on a stride-2 stage and d2 on a stride-1 one
        # (efficientnet_model.py lines 556-576 at 7dc921f) that no published variant uses; only EfficientNet-X's
        # two (d1 on its stride-1 first stage, d2 on the stride-2 stage after it) are built here.
        if self.space_to_depth and self.strides != self.space_to_depth:  # d1 needs stride 1, d2 stride 2
            raise ValueError(
                f"space_to_depth={self.space_to_depth} is built on a stride-{self.space_to_depth} stage only "
                f"(as in EfficientNet-X), got strides={self.strides}"
            )
        if self.fused and self.condconv:
            # tensorflow/tpu's fused block (MBConvBlockWithoutDepthwise) builds plain tf.layers.Conv2D and
            # ignores the "_cc" option; no published variant combines the two.
            raise ValueError("a fused stage has no CondConv variant; got fused=True with condconv=True")
        if self.fused and self.se_ratio:
            # tensorflow/tpu's fused block (MBConvBlockWithoutDepthwise) has no squeeze-excite.
            raise ValueError(f"a fused stage has no squeeze-excite; got se_ratio={self.se_ratio!r}, expected None")


# The B0 stage table (docs/recipe.md §2).
B0_STAGES: Tuple[StageSpec, ...] = (
    StageSpec(kernel_size=3, strides=1, expand_ratio=1, input_filters=32, output_filters=16, repeats=1),
    StageSpec(kernel_size=3, strides=2, expand_ratio=6, input_filters=16, output_filters=24, repeats=2),
    StageSpec(kernel_size=5, strides=2, expand_ratio=6, input_filters=24, output_filters=40, repeats=2),
    StageSpec(kernel_size=3, strides=2, expand_ratio=6, input_filters=40, output_filters=80, repeats=3),
    StageSpec(kernel_size=5, strides=1, expand_ratio=6, input_filters=80, output_filters=112, repeats=3),
    StageSpec(kernel_size=5, strides=2, expand_ratio=6, input_filters=112, output_filters=192, repeats=4),
    StageSpec(kernel_size=3, strides=1, expand_ratio=6, input_filters=192, output_filters=320, repeats=1),
)

# Lite: the B0 table without squeeze-excite, which many mobile accelerators run poorly (tensorflow/tpu
# lite/efficientnet_lite_builder.py, use_se=False).
LITE_STAGES: Tuple[StageSpec, ...] = tuple(dataclasses.replace(stage, se_ratio=None) for stage in B0_STAGES)

# EdgeTPU: six stages, the first three fused, no squeeze-excite (tensorflow/tpu edgetpu/
# efficientnet_edgetpu_builder.py: 'r1_k3_s11_e4_i24_o24_c1_noskip', 'r2_k3_s22_e8_i24_o32_c1',
# 'r4_k3_s22_e8_i32_o48_c1', 'r5_k5_s22_e8_i48_o96', 'r4_k5_s11_e8_i96_o144', 'r2_k5_s22_e8_i144_o192').
# The first stage declares 24 input filters although the stem gives 32: its fused conv expands to 24 * 4 = 96
# from the stem's 32 channels, and "noskip" keeps the shapes from meeting in a residual.
EDGETPU_STAGES: Tuple[StageSpec, ...] = (
    StageSpec(
        kernel_size=3,
        strides=1,
        expand_ratio=4,
        input_filters=24,
        output_filters=24,
        repeats=1,
        se_ratio=None,
        fused=True,
        id_skip=False,
    ),
    StageSpec(
        kernel_size=3,
        strides=2,
        expand_ratio=8,
        input_filters=24,
        output_filters=32,
        repeats=2,
        se_ratio=None,
        fused=True,
    ),
    StageSpec(
        kernel_size=3,
        strides=2,
        expand_ratio=8,
        input_filters=32,
        output_filters=48,
        repeats=4,
        se_ratio=None,
        fused=True,
    ),
    StageSpec(kernel_size=5, strides=2, expand_ratio=8, input_filters=48, output_filters=96, repeats=5, se_ratio=None),
    StageSpec(kernel_size=5, strides=1, expand_ratio=8, input_filters=96, output_filters=144, repeats=4, se_ratio=None),
    StageSpec(
        kernel_size=5, strides=2, expand_ratio=8, input_filters=144, output_filters=192, repeats=2, se_ratio=None
    ),
)

# CondConv: the B0 table with CondConv in the last three stages (tensorflow/tpu condconv/
# efficientnet_condconv_builder.py: 'r3_k5_s11_e6_i80_o112_se0.25_cc', 'r4_k5_s22_e6_i112_o192_se0.25_cc',
# 'r1_k3_s11_e6_i192_o320_se0.25_cc'; the first four stages are B0's).
CONDCONV_STAGES: Tuple[StageSpec, ...] = B0_STAGES[:4] + tuple(
    dataclasses.replace(stage, condconv=True) for stage in B0_STAGES[4:]
)


# EfficientNet-X (version 1) and EfficientNet-H (version 2, the "-h-" names): tensorflow/tpu
# models/official/efficientnet/tpu/efficientnet_x_builder.py lines 81-100 at 7dc921f, version 1:
# 'r1_k3_s11_e1_i32_o16_se0.25_d1_a0', 'r2_k3_s22_e6_i16_o24_se0.25_f1_d2_a1', 'r2_k5_s22_e6_i24_o40_se0.25_f1_a1',
# 'r3_k3_s22_e6_i40_o80_se0.25_a0', 'r3_k5_s11_e6_i80_o112_se0.25_a0', 'r4_k5_s22_e6_i112_o192_se0.25_a0',
# 'r1_k3_s11_e6_i192_o320_se0.25_a0'; version 2 expands by 4 instead of 6 in the second to fourth stages.
# Kernels, strides, widths and repeats are B0's.
_X_OPTIONS = (
    dict(space_to_depth=1, activation="relu"),
    dict(fused_conv=True, space_to_depth=2, activation="swish"),
    dict(fused_conv=True, activation="swish"),
    dict(activation="relu"),
    dict(activation="relu"),
    dict(activation="relu"),
    dict(activation="relu"),
)
X_STAGES: Tuple[StageSpec, ...] = tuple(
    dataclasses.replace(stage, **options) for stage, options in zip(B0_STAGES, _X_OPTIONS)
)
H_STAGES: Tuple[StageSpec, ...] = tuple(
    dataclasses.replace(stage, expand_ratio=4) if index in (1, 2, 3) else stage for index, stage in enumerate(X_STAGES)
)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row of the scaling table plus the architecture-wide settings that a variant may change.

    Attributes:
      name: short name, e.g. "b0".
      width_coefficient: multiplier for every filter count (then rounded, see `round_filters`).
      depth_coefficient: multiplier for every stage's repeats (then ceil'ed, see `round_repeats`).
      resolution: native square input size in pixels.
      dropout_rate: dropout before the classifier.
      survival_prob: stochastic-depth survival probability of the last block (0.8 for every size, docs/recipe.md §2).
      stages: the B0-unit stage table this variant scales.
      stem_filters / head_filters: B0-unit widths of the stem conv and the 1x1 head conv.
      scale_stem_and_head: False (Lite) keeps the stem and head widths AND the repeats of the first and last
        stage unscaled, as tensorflow/tpu's fix_head_stem does (efficientnet_model.py).
      activation: one of ACTIVATIONS.
      depth_divisor: filter counts are rounded to multiples of this.
      mean_rgb / stddev_rgb: input normalization on the [0, 255] scale.
      num_classes: default classifier width (1001 for EdgeTPU: class 0 is "background").
      condconv_num_experts: experts of every CondConv layer (stages with `condconv`); None for variants
        without CondConv stages.
      se_coefficient: multiplies every stage's se_ratio (EfficientNet-X: 4 for b0, 2 for b1, 1 above, so
        B0-sized X models squeeze less), as tensorflow/tpu efficientnet_model.py lines 254-256 at 7dc921f.
      resize_method: the input pipeline's resize kernel, one of RESIZE_METHODS: "bicubic" for B0-B7/B8/L2,
        "bilinear" for EdgeTPU and Lite (tensorflow/tpu models/official/efficientnet/main.py picks
        ResizeMethod.BILINEAR for "efficientnet-lite*" and "efficientnet-edgetpu*" names, "for easier
        post-quantization", in training, eval and the serving export alike).
    """

    name: str
    width_coefficient: float
    depth_coefficient: float
    resolution: int
    dropout_rate: float
    survival_prob: float = 0.8
    stages: Tuple[StageSpec, ...] = B0_STAGES
    stem_filters: int = 32
    head_filters: int = 1280
    scale_stem_and_head: bool = True
    activation: str = "swish"
    depth_divisor: int = 8
    mean_rgb: Tuple[float, float, float] = IMAGENET_MEAN_RGB
    stddev_rgb: Tuple[float, float, float] = IMAGENET_STDDEV_RGB
    num_classes: int = 1000
    resize_method: str = "bicubic"
    condconv_num_experts: Optional[int] = None
    se_coefficient: float = 1

    def __post_init__(self):
        _check_positive("width_coefficient", self.width_coefficient)
        _check_positive("se_coefficient", self.se_coefficient)
        _check_positive("depth_coefficient", self.depth_coefficient)
        if not isinstance(self.resolution, int) or isinstance(self.resolution, bool) or self.resolution <= 0:
            raise ValueError(f"resolution must be a positive int, got {self.resolution!r}")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate!r}")
        if not 0.0 < self.survival_prob <= 1.0:
            raise ValueError(f"survival_prob must be in (0, 1], got {self.survival_prob!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {self.num_classes!r}")
        if self.resize_method not in RESIZE_METHODS:
            raise ValueError(f"resize_method must be one of {RESIZE_METHODS}, got {self.resize_method!r}")
        if not self.stages:
            raise ValueError(f"variant {self.name!r} has no stages")
        for index, stage in enumerate(self.stages):
            # The original's stem becomes the first endpoint when the first block has space-to-depth
            # (efficientnet_model.py lines 646-648 at 7dc921f): d1 belongs to the first stage, d2 right after it.
            if stage.space_to_depth == 1 and index != 0:
                raise ValueError(f"variant {self.name!r}: space_to_depth=1 is built on the first stage only")
            if stage.space_to_depth == 2 and (index == 0 or self.stages[index - 1].space_to_depth != 1):
                raise ValueError(
                    f"variant {self.name!r}: a space_to_depth=2 stage must follow the space_to_depth=1 stage"
                )
        experts = self.condconv_num_experts
        if any(stage.condconv for stage in self.stages) and (
            isinstance(experts, bool) or not isinstance(experts, int) or experts < 1
        ):
            raise ValueError(
                f"variant {self.name!r} has CondConv stages: condconv_num_experts must be a positive "
                f"int, got {experts!r}"
            )

    def round_filters(self, filters: int) -> int:
        """Scales a B0-unit filter count by the width coefficient, rounded to the divisor (docs/recipe.md §2)."""
        scaled = filters * self.width_coefficient
        divisor = self.depth_divisor
        rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
        if rounded < 0.9 * scaled:  # never round down by more than 10% (tensorflow/tpu efficientnet_model.py)
            rounded += divisor
        return int(rounded)

    def round_repeats(self, repeats: int) -> int:
        """Scales a stage's repeats by the depth coefficient, rounding up (docs/recipe.md §2)."""
        return int(math.ceil(self.depth_coefficient * repeats))

    def stage_repeats(self, stage_index: int) -> int:
        """Blocks in stage `stage_index` (0-based): scaled, except the first and last stage of a fixed-stem/head
        variant (Lite; tensorflow/tpu efficientnet_model.py keeps their num_repeat under fix_head_stem)."""
        stage = self.stages[stage_index]
        if not self.scale_stem_and_head and stage_index in (0, len(self.stages) - 1):
            return stage.repeats
        return self.round_repeats(stage.repeats)

    @property
    def stem_width(self) -> int:
        """Output filters of the stem conv: round_filters(stem_filters), or stem_filters unscaled (Lite)."""
        return self.round_filters(self.stem_filters) if self.scale_stem_and_head else self.stem_filters

    @property
    def head_width(self) -> int:
        """Output filters of the 1x1 head conv: round_filters(head_filters), or head_filters unscaled (Lite)."""
        return self.round_filters(self.head_filters) if self.scale_stem_and_head else self.head_filters


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _row(name, width, depth, resolution, dropout) -> Variant:
    return Variant(
        name=name, width_coefficient=width, depth_coefficient=depth, resolution=resolution, dropout_rate=dropout
    )


def _edgetpu(name, width, depth, resolution, dropout) -> Variant:
    """An EdgeTPU row: ReLU, fused early stages, inception mean/std, 1001 classes (tensorflow/tpu edgetpu/),
    bilinear resizing (tensorflow/tpu main.py)."""
    return Variant(
        name=name,
        width_coefficient=width,
        depth_coefficient=depth,
        resolution=resolution,
        dropout_rate=dropout,
        stages=EDGETPU_STAGES,
        activation="relu",
        mean_rgb=INCEPTION_MEAN_RGB,
        stddev_rgb=INCEPTION_STDDEV_RGB,
        num_classes=1001,
        resize_method="bilinear",
    )


def _lite(name, width, depth, resolution, dropout) -> Variant:
    """A Lite row: ReLU6, no SE, stem/head fixed, inception mean/std (tensorflow/tpu lite/), bilinear resizing
    (tensorflow/tpu main.py)."""
    return Variant(
        name=name,
        width_coefficient=width,
        depth_coefficient=depth,
        resolution=resolution,
        dropout_rate=dropout,
        stages=LITE_STAGES,
        activation="relu6",
        scale_stem_and_head=False,
        mean_rgb=INCEPTION_MEAN_RGB,
        stddev_rgb=INCEPTION_STDDEV_RGB,
        resize_method="bilinear",
    )


def _condconv(name, width, depth, resolution, dropout, experts) -> Variant:
    """A CondConv row: B0's stages with CondConv in the last three, inception mean/std (tensorflow/tpu condconv/
    efficientnet_condconv_builder.py: MEAN_RGB 127, STDDEV_RGB 128), bicubic resizing (main.py picks bilinear
    only for Lite and EdgeTPU names)."""
    return Variant(
        name=name,
        width_coefficient=width,
        depth_coefficient=depth,
        resolution=resolution,
        dropout_rate=dropout,
        stages=CONDCONV_STAGES,
        mean_rgb=INCEPTION_MEAN_RGB,
        stddev_rgb=INCEPTION_STDDEV_RGB,
        condconv_num_experts=experts,
    )


def _x(name, width, depth, resolution, dropout, se_coefficient) -> Variant:
    """An EfficientNet-X/H row: version 2 block strings for the "h-" names (efficientnet_x_builder.py lines
    125-130 at 7dc921f), ReLU as the global activation with the stages' own (lines 115, 82-100), ImageNet
    mean/std (lines 31-32), momentum 0.99 / epsilon 1e-3 and 1000 classes (lines 104-110) as B0, bicubic
    resizing (main.py picks bilinear only for Lite and EdgeTPU names)."""
    return Variant(
        name=name,
        width_coefficient=width,
        depth_coefficient=depth,
        resolution=resolution,
        dropout_rate=dropout,
        stages=H_STAGES if name.startswith("h-") else X_STAGES,
        activation="relu",
        se_coefficient=se_coefficient,
    )


# The scaling table (docs/recipe.md §1). l2 is also used at 475; 800 is its native size. EdgeTPU and Lite rows:
# (width, depth, resolution, dropout) from efficientnet_edgetpu_params / efficientnet_lite_params of
# tensorflow/tpu; Lite4 keeps dropout 0.3 (not b4's 0.4) and Lite3 runs at 280 (not b3's 300).
VARIANTS: Mapping[str, Variant] = {
    v.name: v
    for v in (
        _row("b0", 1.0, 1.0, 224, 0.2),
        _row("b1", 1.0, 1.1, 240, 0.2),
        _row("b2", 1.1, 1.2, 260, 0.3),
        _row("b3", 1.2, 1.4, 300, 0.3),
        _row("b4", 1.4, 1.8, 380, 0.4),
        _row("b5", 1.6, 2.2, 456, 0.4),
        _row("b6", 1.8, 2.6, 528, 0.5),
        _row("b7", 2.0, 3.1, 600, 0.5),
        _row("b8", 2.2, 3.6, 672, 0.5),
        _row("l2", 4.3, 5.3, 800, 0.5),
        _edgetpu("edgetpu-s", 1.0, 1.0, 224, 0.2),
        _edgetpu("edgetpu-m", 1.0, 1.1, 240, 0.2),
        _edgetpu("edgetpu-l", 1.2, 1.4, 300, 0.3),
        _lite("lite0", 1.0, 1.0, 224, 0.2),
        _lite("lite1", 1.0, 1.1, 240, 0.2),
        _lite("lite2", 1.1, 1.2, 260, 0.3),
        _lite("lite3", 1.2, 1.4, 280, 0.3),
        _lite("lite4", 1.4, 1.8, 300, 0.3),
        # (width, depth, resolution, dropout, experts) from efficientnet_condconv_params.
        _condconv("condconv-b0-4e", 1.0, 1.0, 224, 0.25, 4),
        _condconv("condconv-b0-8e", 1.0, 1.0, 224, 0.25, 8),
        _condconv("condconv-b0-8e-depth", 1.0, 1.1, 224, 0.25, 8),
        # (width, depth, resolution, dropout, se_coefficient) from efficientnet_x_params (tensorflow/tpu
        # models/official/efficientnet/tpu/efficientnet_x_builder.py lines 37-70 at 7dc921f). The original's
        # get_model_input_size has no branch for "efficientnet-h-*" names (model_builder_factory.py lines
        # 44-64: they fall through to efficientnet_builder's table and fail), so its main.py needs
        # --input_image_size for them; here the table's resolution is their default as for every row.
        _x("x-b0", 1.0, 1.0, 224, 0.2, 4),
        _x("x-b1", 1.0, 1.1, 240, 0.2, 2),
        _x("x-b2", 1.1, 1.2, 260, 0.3, 1),
        _x("x-b3", 1.2, 1.4, 300, 0.3, 1),
        _x("x-b4", 1.4, 1.8, 380, 0.4, 1),
        _x("x-b5", 1.6, 2.2, 456, 0.4, 1),
        _x("x-b6", 1.8, 2.6, 528, 0.5, 1),
        _x("x-b7", 2.0, 3.1, 600, 0.5, 1),
        _x("h-b5", 1.92, 2.2, 456, 0.4, 1),
        _x("h-b6", 2.16, 2.6, 528, 0.5, 1),
        _x("h-b7", 2.4, 3.1, 600, 0.5, 1),
        _x("x-tpu-b0", 1.0, 1.0, 224, 0.2, 4),
        _x("x-tpu-b1", 1.05, 1.09, 229, 0.2, 2),
        _x("x-tpu-b2", 1.13, 1.29, 244, 0.3, 1),
        _x("x-tpu-b3", 1.27, 1.62, 263, 0.3, 1),
        _x("x-tpu-b4", 1.54, 2.38, 299, 0.4, 1),
        _x("x-tpu-b5", 1.96, 2.76, 332, 0.4, 1),
        _x("x-tpu-b6", 2.75, 3.01, 328, 0.5, 1),
        _x("x-tpu-b7", 3.26, 3.44, 350, 0.5, 1),
        _x("h-tpu-b5", 2.3, 2.76, 332, 0.4, 1),
        _x("h-tpu-b6", 3.0, 3.01, 328, 0.5, 1),
        _x("h-tpu-b7", 3.6, 3.44, 350, 0.5, 1),
        _x("x-gpu-b0", 1.0, 1.0, 224, 0.2, 4),
        _x("x-gpu-b1", 1.05, 1.09, 229, 0.2, 2),
        _x("x-gpu-b2", 1.13, 1.24, 237, 0.3, 1),
        _x("x-gpu-b3", 1.31, 1.63, 255, 0.3, 1),
        _x("x-gpu-b4", 1.63, 2.4, 282, 0.4, 1),
        _x("x-gpu-b5", 1.94, 3.29, 306, 0.4, 1),
        _x("x-gpu-b6", 2.25, 4.28, 328, 0.5, 1),
        _x("x-gpu-b7", 2.58, 5.46, 350, 0.5, 1),
    )
}


def _table_key(name: str) -> str:
    key = name.strip().lower()
    return key[len("efficientnet-") :] if key.startswith("efficientnet-") else key


def get_variant(name_or_variant: Union[str, Variant]) -> Variant:
    """Returns the Variant for "b0".."b7", "b8", "l2", "edgetpu-s/m/l", "lite0".."lite4", "condconv-b0-4e",
    "condconv-b0-8e", "condconv-b0-8e-depth", "x-b0".."x-b7", "h-b5".."h-b7", "x-tpu-b0".."x-tpu-b7",
    "h-tpu-b5".."h-tpu-b7", "x-gpu-b0".."x-gpu-b7" (also with the tensorflow/tpu prefix, e.g. "efficientnet-b0",
    "efficientnet-edgetpu-S", "efficientnet-x-tpu-b3"; any case), or a Variant as is."""
    if isinstance(name_or_variant, Variant):
        return name_or_variant
    if not isinstance(name_or_variant, str):
        raise ValueError(f"variant must be a name or a Variant, got {type(name_or_variant).__name__}")
    key = _table_key(name_or_variant)
    if key not in VARIANTS:
        raise ValueError(f"unknown EfficientNet variant {name_or_variant!r}; valid: {', '.join(VARIANTS)}")
    return VARIANTS[key]


def custom_variant(
    phi: Optional[float] = None,
    *,
    width: Optional[float] = None,
    depth: Optional[float] = None,
    resolution: Optional[int] = None,
    dropout_rate: float = 0.2,
    name: Optional[str] = None,
) -> Variant:
    """Builds a Variant from the compound coefficient `phi` or from explicit coefficients.

    With `phi`: depth = 1.2**phi, width = 1.1**phi, resolution = 224 * 1.15**phi rounded to the nearest
    multiple of 8 (the paper's rule, docs/recipe.md §1; the published b1-b7 sizes were hand-picked and do not follow
    it exactly). Giving `phi` together with width/depth/resolution is ambiguous and a ValueError.
    Without `phi`: unspecified values default to b0's (width 1.0, depth 1.0, resolution 224).
    """
    explicit = {"width": width, "depth": depth, "resolution": resolution}
    if phi is not None:
        given = [k for k, v in explicit.items() if v is not None]
        if given:
            raise ValueError(f"give either phi or explicit {'/'.join(given)}, not both (phi={phi!r})")
        if isinstance(phi, bool) or not isinstance(phi, (int, float)) or not math.isfinite(phi):
            raise ValueError(f"phi must be a finite number, got {phi!r}")
        width, depth = 1.1**phi, 1.2**phi
        resolution = max(8, int(round(224 * 1.15**phi / 8.0)) * 8)
        name = name or f"custom-phi{phi:g}"
    else:
        width = 1.0 if width is None else width
        depth = 1.0 if depth is None else depth
        resolution = 224 if resolution is None else resolution
        name = name or f"custom-w{width:g}-d{depth:g}-r{resolution}"
    return Variant(
        name=name, width_coefficient=width, depth_coefficient=depth, resolution=resolution, dropout_rate=dropout_rate
    )
