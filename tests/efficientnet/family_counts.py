"""An independent parameter count of the EfficientNet families from tensorflow/tpu's block strings and scaling
rules (docs/recipe.md §2, fix_head_stem for Lite; for EfficientNet-X/H the rules of the original's Model._build
and MBConvBlock): the oracle of tests/efficientnet/test_family.py, test_condconv.py and test_effx.py, written
without the project's builder."""

import math
import re

# tensorflow/tpu block strings (efficientnet_builder.py / edgetpu/ / lite/ builders), parsed by decode_block,
# independent of efficientnet.variants.
B0_BLOCKS = [
    "r1_k3_s11_e1_i32_o16_se0.25",
    "r2_k3_s22_e6_i16_o24_se0.25",
    "r2_k5_s22_e6_i24_o40_se0.25",
    "r3_k3_s22_e6_i40_o80_se0.25",
    "r3_k5_s11_e6_i80_o112_se0.25",
    "r4_k5_s22_e6_i112_o192_se0.25",
    "r1_k3_s11_e6_i192_o320_se0.25",
]
EDGETPU_BLOCKS = [
    "r1_k3_s11_e4_i24_o24_c1_noskip",
    "r2_k3_s22_e8_i24_o32_c1",
    "r4_k3_s22_e8_i32_o48_c1",
    "r5_k5_s22_e8_i48_o96",
    "r4_k5_s11_e8_i96_o144",
    "r2_k5_s22_e8_i144_o192",
]
# name: (blocks, width, depth, SE used, stem/head fixed)
FAMILY = {
    "b0": (B0_BLOCKS, 1.0, 1.0, True, False),
    "edgetpu-s": (EDGETPU_BLOCKS, 1.0, 1.0, False, False),
    "edgetpu-m": (EDGETPU_BLOCKS, 1.0, 1.1, False, False),
    "edgetpu-l": (EDGETPU_BLOCKS, 1.2, 1.4, False, False),
    "lite0": (B0_BLOCKS, 1.0, 1.0, False, True),
    "lite1": (B0_BLOCKS, 1.0, 1.1, False, True),
    "lite2": (B0_BLOCKS, 1.1, 1.2, False, True),
    "lite3": (B0_BLOCKS, 1.2, 1.4, False, True),
    "lite4": (B0_BLOCKS, 1.4, 1.8, False, True),
}
# Published parameter counts at 1000 classes, in millions. timm results/results-imagenet.csv (param_count, 2
# decimals): tf_efficientnet_es/em/el 5.44 / 6.90 / 10.59, tf_efficientnet_lite0..4 4.65 / 5.42 / 6.09 / 8.20 /
# 13.01 (lite4 from the task brief; its row was beyond the stored excerpt). d-li14/efficientnet-lite.pytorch
# README (3 decimals): 4.652M, 5.417M, 6.092M, 8.197M, 13.007M. b0: docs/recipe.md §1 (exact).


def decode_block(block_string):
    fields = dict(re.match(r"([a-z]+)(.*)", part).groups() for part in block_string.split("_"))
    return dict(
        repeats=int(fields["r"]),
        kernel=int(fields["k"]),
        stride=int(fields["s"][0]),
        expand=int(fields["e"]),
        inp=int(fields["i"]),
        out=int(fields["o"]),
        se=float(fields.get("se", 0)),
        fused=fields.get("c") == "1",
        fused_conv=fields.get("f") == "1",
        space2depth=int(fields.get("d", 0)),
        activation={"0": "relu", "1": "swish"}.get(fields.get("a"), None),
    )


def _round_filters(filters, width):
    scaled = filters * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * scaled else rounded


def _block_params(cin, inp, out, kernel, expand, se, fused):
    """Trainable weights of one TPU block (conv kernels, BN gamma/beta, SE convs with bias)."""
    total, channels = 0, cin
    if expand != 1:
        channels = inp * expand
        total += (kernel * kernel if fused else 1) * cin * channels + 2 * channels
    if not fused:
        total += kernel * kernel * channels + 2 * channels
        if se:
            reduced = max(1, int(inp * se))
            total += channels * reduced + reduced + reduced * channels + channels
    return total + channels * out + 2 * out


def analytic_params(name, num_classes=1000):
    """Independent count from the TPU block strings and rules (docs/recipe.md §2, fix_head_stem for Lite)."""
    strings, width, depth, use_se, fixed = FAMILY[name]
    decoded = [decode_block(s) for s in strings]
    stem = 32 if fixed else _round_filters(32, width)
    head = 1280 if fixed else _round_filters(1280, width)
    total, cin = 27 * stem + 2 * stem, stem
    for index, b in enumerate(decoded):
        repeats = b["repeats"] if fixed and index in (0, len(decoded) - 1) else math.ceil(depth * b["repeats"])
        inp, out = _round_filters(b["inp"], width), _round_filters(b["out"], width)
        for j in range(repeats):
            total += _block_params(
                cin, inp if j == 0 else out, out, b["kernel"], b["expand"], b["se"] if use_se else 0, b["fused"]
            )
            cin = out
    return total + cin * head + 2 * head + head * num_classes + num_classes


# EfficientNet-X/H: tensorflow/tpu models/official/efficientnet/tpu/efficientnet_x_builder.py at 7dc921f, block
# strings of version 1 (lines 82-90) and version 2 (lines 92-100, names with "-h-", lines 125-130).
X_V1_BLOCKS = [
    "r1_k3_s11_e1_i32_o16_se0.25_d1_a0",
    "r2_k3_s22_e6_i16_o24_se0.25_f1_d2_a1",
    "r2_k5_s22_e6_i24_o40_se0.25_f1_a1",
    "r3_k3_s22_e6_i40_o80_se0.25_a0",
    "r3_k5_s11_e6_i80_o112_se0.25_a0",
    "r4_k5_s22_e6_i112_o192_se0.25_a0",
    "r1_k3_s11_e6_i192_o320_se0.25_a0",
]
X_V2_BLOCKS = [
    "r1_k3_s11_e1_i32_o16_se0.25_d1_a0",
    "r2_k3_s22_e4_i16_o24_se0.25_f1_d2_a1",
    "r2_k5_s22_e4_i24_o40_se0.25_f1_a1",
    "r3_k3_s22_e4_i40_o80_se0.25_a0",
    "r3_k5_s11_e6_i80_o112_se0.25_a0",
    "r4_k5_s22_e6_i112_o192_se0.25_a0",
    "r1_k3_s11_e6_i192_o320_se0.25_a0",
]
# The original's model name: (width, depth, resolution, dropout, se_coefficient), efficientnet_x_params (lines
# 37-70).
X_FAMILY = {
    "efficientnet-x-b0": (1.0, 1.0, 224, 0.2, 4),
    "efficientnet-x-b1": (1.0, 1.1, 240, 0.2, 2),
    "efficientnet-x-b2": (1.1, 1.2, 260, 0.3, 1),
    "efficientnet-x-b3": (1.2, 1.4, 300, 0.3, 1),
    "efficientnet-x-b4": (1.4, 1.8, 380, 0.4, 1),
    "efficientnet-x-b5": (1.6, 2.2, 456, 0.4, 1),
    "efficientnet-x-b6": (1.8, 2.6, 528, 0.5, 1),
    "efficientnet-x-b7": (2.0, 3.1, 600, 0.5, 1),
    "efficientnet-h-b5": (1.92, 2.2, 456, 0.4, 1),
    "efficientnet-h-b6": (2.16, 2.6, 528, 0.5, 1),
    "efficientnet-h-b7": (2.4, 3.1, 600, 0.5, 1),
    "efficientnet-x-tpu-b0": (1.0, 1.0, 224, 0.2, 4),
    "efficientnet-x-tpu-b1": (1.05, 1.09, 229, 0.2, 2),
    "efficientnet-x-tpu-b2": (1.13, 1.29, 244, 0.3, 1),
    "efficientnet-x-tpu-b3": (1.27, 1.62, 263, 0.3, 1),
    "efficientnet-x-tpu-b4": (1.54, 2.38, 299, 0.4, 1),
    "efficientnet-x-tpu-b5": (1.96, 2.76, 332, 0.4, 1),
    "efficientnet-x-tpu-b6": (2.75, 3.01, 328, 0.5, 1),
    "efficientnet-x-tpu-b7": (3.26, 3.44, 350, 0.5, 1),
    "efficientnet-h-tpu-b5": (2.3, 2.76, 332, 0.4, 1),
    "efficientnet-h-tpu-b6": (3, 3.01, 328, 0.5, 1),
    "efficientnet-h-tpu-b7": (3.6, 3.44, 350, 0.5, 1),
    "efficientnet-x-gpu-b0": (1.0, 1.0, 224, 0.2, 4),
    "efficientnet-x-gpu-b1": (1.05, 1.09, 229, 0.2, 2),
    "efficientnet-x-gpu-b2": (1.13, 1.24, 237, 0.3, 1),
    "efficientnet-x-gpu-b3": (1.31, 1.63, 255, 0.3, 1),
    "efficientnet-x-gpu-b4": (1.63, 2.4, 282, 0.4, 1),
    "efficientnet-x-gpu-b5": (1.94, 3.29, 306, 0.4, 1),
    "efficientnet-x-gpu-b6": (2.25, 4.28, 328, 0.5, 1),
    "efficientnet-x-gpu-b7": (2.58, 5.46, 350, 0.5, 1),
}


def x_blocks(model_name):
    """The blocks the original builds for an EfficientNet-X/H name, each a dict: `cin` (the channels that
    actually arrive), `inp` / `out` / `kernel` / `stride` / `space2depth` after Model._build's rewriting
    (efficientnet_model.py lines 532-583 at 7dc921f), `expand`, `fused_conv`, `activation` ("relu" for a0,
    "swish" for a1, the global relu otherwise), `se` (the squeeze-excite width of MBConvBlock._build, lines
    253-263) and `residual` (MBConvBlock.call's test on the strides and the actual channels, lines 387-390)."""
    width, depth, _, _, se_coefficient = X_FAMILY[model_name]
    strings = X_V2_BLOCKS if "-h-" in model_name else X_V1_BLOCKS
    built, cin = [], _round_filters(32, width)
    for b in map(decode_block, strings):
        inp, out = _round_filters(b["inp"], width), _round_filters(b["out"], width)
        args = dict(b, inp=inp, out=out, repeats=math.ceil(depth * b["repeats"]))
        if b["space2depth"]:
            factor = 4 // (b["stride"] * b["stride"])
            args.update(inp=inp * factor, out=out * factor)
            if factor > 1:
                args["kernel"] = (b["kernel"] + 1) // 2
            if b["stride"] == 2:
                stage = [dict(args, stride=1)]
                args = dict(args, stride=1, space2depth=0, inp=inp, out=out, kernel=b["kernel"])
            elif b["space2depth"] == 1:
                stage = [dict(args)]
                args["space2depth"] = 2
            else:
                stage = [dict(args)]
        else:
            stage = [dict(args)]
        stage += [dict(args, inp=args["out"], stride=1) for _ in range(args["repeats"] - 1)]
        for block in stage:
            reduced = int(block["inp"] * (block["se"] * se_coefficient))
            block["se"] = max(1, reduced // 4 if block["space2depth"] == 1 else reduced)
            block["activation"] = block["activation"] or "relu"
            block["cin"] = cin
            block["residual"] = block["stride"] == 1 and cin == block["out"]
            cin = block["out"]
        built += stage
    return built


def x_analytic_params(model_name, num_classes=1000):
    """Independent trainable-parameter count of an EfficientNet-X/H name: conv kernels (no bias), BatchNorm
    gamma and beta, squeeze-excite convs with bias, the classifier with bias."""
    width = X_FAMILY[model_name][0]
    stem, head = _round_filters(32, width), _round_filters(1280, width)
    total = 3 * 3 * 3 * stem + 2 * stem
    for b in x_blocks(model_name):
        channels = b["cin"]
        if b["space2depth"] == 1:  # the 2x2 stride-2 conv to the block's input filters, then BN
            total += 2 * 2 * channels * b["inp"] + 2 * b["inp"]
            channels = b["inp"]
        filters = b["inp"] * b["expand"]
        if b["fused_conv"]:
            total += b["kernel"] ** 2 * channels * filters + 2 * filters
            channels = filters
        else:
            if b["expand"] != 1:
                total += channels * filters + 2 * filters
                channels = filters
            total += b["kernel"] ** 2 * channels + 2 * channels
        total += channels * b["se"] + b["se"] + b["se"] * filters + filters
        total += channels * b["out"] + 2 * b["out"]
    last = x_blocks(model_name)[-1]["out"]
    return total + last * head + 2 * head + head * num_classes + num_classes
