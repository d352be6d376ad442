"""An independent parameter count of the EfficientNet families from tensorflow/tpu's block strings and scaling
rules (docs/recipe.md §2, fix_head_stem for Lite): the oracle of tests/efficientnet/test_family.py and
test_condconv.py, written without the project's builder."""

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
