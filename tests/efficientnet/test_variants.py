"""Tests for efficientnet.variants: the scaling table, rounding, custom rows and errors."""

import dataclasses

import pytest

from data import preprocessing
from efficientnet import VARIANTS, Variant, custom_variant, get_variant
from efficientnet.variants import B0_STAGES

# docs/recipe.md §1: width, depth, resolution, dropout, eval crop fraction (3 decimals).
TABLE = {
    "b0": (1.0, 1.0, 224, 0.2, 0.875),
    "b1": (1.0, 1.1, 240, 0.2, 0.882),
    "b2": (1.1, 1.2, 260, 0.3, 0.890),
    "b3": (1.2, 1.4, 300, 0.3, 0.904),
    "b4": (1.4, 1.8, 380, 0.4, 0.922),
    "b5": (1.6, 2.2, 456, 0.4, 0.934),
    "b6": (1.8, 2.6, 528, 0.5, 0.943),
    "b7": (2.0, 3.1, 600, 0.5, 0.949),
    "b8": (2.2, 3.6, 672, 0.5, 0.954),
    "l2": (4.3, 5.3, 800, 0.5, 0.962),
}


@pytest.mark.parametrize("name", sorted(TABLE))
def test_table_rows(name):
    v = VARIANTS[name]
    width, depth, resolution, dropout, crop = TABLE[name]
    assert (v.name, v.width_coefficient, v.depth_coefficient, v.resolution, v.dropout_rate) == (
        name,
        width,
        depth,
        resolution,
        dropout,
    )
    # The eval crop the pipeline derives from the row's resolution. The table rounds to 3 decimals; b8's
    # 672/704 = 0.9545 is listed as 0.954 (as published), so b8/l2 get a looser tolerance than b0-b7.
    assert preprocessing.default_crop_fraction(v.resolution) == pytest.approx(
        crop, abs=2e-3 if name in ("b8", "l2") else 5e-4
    )
    assert v.survival_prob == 0.8 and v.activation == "swish" and v.stages == B0_STAGES


def test_b0_stage_table():
    rows = [
        (s.kernel_size, s.strides, s.expand_ratio, s.input_filters, s.output_filters, s.repeats, s.se_ratio)
        for s in B0_STAGES
    ]
    assert rows == [
        (3, 1, 1, 32, 16, 1, 0.25),
        (3, 2, 6, 16, 24, 2, 0.25),
        (5, 2, 6, 24, 40, 2, 0.25),
        (3, 2, 6, 40, 80, 3, 0.25),
        (5, 1, 6, 80, 112, 3, 0.25),
        (5, 2, 6, 112, 192, 4, 0.25),
        (3, 1, 6, 192, 320, 1, 0.25),
    ]
    assert not any(s.fused for s in B0_STAGES)


def test_rows_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        VARIANTS["b0"].resolution = 300
    with pytest.raises(dataclasses.FrozenInstanceError):
        B0_STAGES[0].repeats = 2


def test_round_filters_and_repeats():
    # Stem/head widths of Keras' EfficientNetB4 / B7 (3x3x3x48 stem, 1792 head; 64 / 2560) and the
    # "never lose more than 10%" branch: 16 · 1.1 = 17.6 -> 16 (≥ 0.9 · 17.6), 112 · 1.1 = 123.2 -> 120.
    b4, b7, b2 = VARIANTS["b4"], VARIANTS["b7"], VARIANTS["b2"]
    assert (b4.round_filters(32), b4.round_filters(1280)) == (48, 1792)
    assert (b7.round_filters(32), b7.round_filters(1280)) == (64, 2560)
    assert (b2.round_filters(16), b2.round_filters(112)) == (16, 120)
    assert dataclasses.replace(b2, width_coefficient=0.1).round_filters(32) == 8  # never below the divisor
    assert [b7.round_repeats(r) for r in (1, 2, 3, 4)] == [4, 7, 10, 13]


def test_get_variant():
    assert get_variant("b3") is VARIANTS["b3"]
    assert get_variant("EfficientNet-B3") is VARIANTS["b3"]
    custom = custom_variant(width=1.3)
    assert get_variant(custom) is custom
    with pytest.raises(ValueError, match=r"unknown EfficientNet variant 'b9'; valid: b0, b1, .*, b8, l2"):
        get_variant("b9")
    with pytest.raises(ValueError, match="name or a Variant"):
        get_variant(3)


def test_custom_variant_from_phi():
    v = custom_variant(1)
    assert v.width_coefficient == pytest.approx(1.1) and v.depth_coefficient == pytest.approx(1.2)
    assert v.resolution == 256  # 224 · 1.15 = 257.6, nearest multiple of 8
    zero = custom_variant(0)
    assert (zero.width_coefficient, zero.depth_coefficient, zero.resolution) == (1.0, 1.0, 224)
    assert custom_variant(3, name="mine", dropout_rate=0.3).name == "mine"
    # Compound scaling roughly doubles the FLOPs per phi step: 1.2 · 1.1² · 1.15² ≈ 1.92.
    assert 1.2 * 1.1**2 * 1.15**2 == pytest.approx(1.92, abs=0.01)


def test_custom_variant_explicit():
    v = custom_variant(width=1.5, depth=2.0, resolution=320, dropout_rate=0.4)
    assert (v.width_coefficient, v.depth_coefficient, v.resolution, v.dropout_rate) == (1.5, 2.0, 320, 0.4)
    assert custom_variant(depth=1.5).width_coefficient == 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(width=0), "width_coefficient must be a positive"),
        (dict(depth=-1.0), "depth_coefficient must be a positive"),
        (dict(width=float("nan")), "width_coefficient"),
        (dict(resolution=0), "resolution must be a positive int"),
        (dict(resolution=224.5), "resolution must be a positive int"),
        (dict(dropout_rate=1.0), "dropout_rate"),
        (dict(phi=1, width=1.2), "either phi or explicit width"),
        (dict(phi=float("inf")), "phi must be a finite number"),
    ],
)
def test_custom_variant_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        custom_variant(**kwargs)


def test_variant_validation():
    with pytest.raises(ValueError, match="activation"):
        Variant("x", 1.0, 1.0, 224, 0.2, activation="gelu")
    with pytest.raises(ValueError, match="survival_prob"):
        Variant("x", 1.0, 1.0, 224, 0.2, survival_prob=0.0)


def test_resize_method_per_family():
    # tensorflow/tpu main.py: BILINEAR for "efficientnet-lite*" and "efficientnet-edgetpu*", bicubic otherwise.
    for name, row in VARIANTS.items():
        expected = "bilinear" if name.startswith(("lite", "edgetpu")) else "bicubic"
        assert row.resize_method == expected, name
    assert custom_variant(1).resize_method == "bicubic"
    with pytest.raises(ValueError, match="resize_method must be one of"):
        dataclasses.replace(VARIANTS["b0"], resize_method="area")
