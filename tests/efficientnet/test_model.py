"""Tests for efficientnet.model and efficientnet.blocks."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from efficientnet import blocks, build_model, custom_variant, get_variant
from efficientnet.loading import weighted_layers
from efficientnet.model import block_configs
from tests.efficientnet.conftest import random_pixels

# Keras EfficientNetBx(weights=None) trainable counts, 1000 classes (docs/recipe.md §1).
TRAINABLE_PARAMS = {
    "b0": 5_288_548,
    "b1": 7_794_184,
    "b2": 9_109_994,
    "b3": 12_233_232,
    "b4": 19_341_616,
    "b5": 30_389_784,
    "b6": 43_040_704,
    "b7": 66_347_960,
}


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("variant", ["b0", "b1", "b2", "b3", "b4"])
def test_trainable_params_exact(built, variant):
    assert trainable_count(built(variant)) == TRAINABLE_PARAMS[variant]


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["b5", "b6", "b7"])
def test_trainable_params_exact_large(built, variant):
    assert trainable_count(built(variant)) == TRAINABLE_PARAMS[variant]


# Names that must exist (and a few that must not) per variant: stage repeats are ceil(depth · B0 repeats),
# letters count blocks within a stage (docs/recipe.md §2).
NAME_PINS = {
    "b0": (
        [
            "stem_conv",
            "stem_bn",
            "block1a_dwconv",
            "block1a_se_reduce",
            "block2b_project_conv",
            "block6d_expand_bn",
            "block7a_project_bn",
            "top_conv",
            "top_bn",
            "predictions",
        ],
        ["block1a_expand_conv", "block1b_dwconv", "block6e_dwconv", "block7b_dwconv"],
    ),
    "b4": (
        ["block1b_project_conv", "block2d_se_expand", "block6h_dwconv", "block7b_project_bn"],
        ["block1c_dwconv", "block6i_dwconv", "block7c_dwconv"],
    ),
    "b7": (
        ["block1d_dwconv", "block2g_expand_conv", "block5j_se_reduce", "block6m_project_conv", "block7d_project_bn"],
        ["block1e_dwconv", "block6n_dwconv"],
    ),
}


@pytest.mark.parametrize("variant", ["b0", "b4", pytest.param("b7", marks=pytest.mark.slow)])
def test_layer_name_pins(built, variant):
    model = built(variant)
    names = set(weighted_layers(model))
    present, absent = NAME_PINS[variant]
    assert set(present) <= names
    assert not set(absent) & names


def test_weighted_layer_names_equal_keras_b0(built):
    keras_model = keras.applications.EfficientNetB0(weights=None)
    # Keras' normalization layer holds the input mean/variance, which our model keeps as constants. Its name
    # gets a counter ("normalization_3") when other Keras models were built earlier in the process.
    keras_names = {l.name for l in keras_model.layers if l.weights and not isinstance(l, keras.layers.Normalization)}
    assert set(weighted_layers(built("b0"))) == keras_names


def test_batchnorm_layers_are_keras_batchnorm_with_tf_constants(built):
    model = built("b0")
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert len(bns) == 49  # stem + 16 blocks · (2 or 3) + top, as in Keras' B0
    assert all(l.momentum == 0.99 and l.epsilon == 1e-3 and not l.synchronized for l in bns)


def test_batchnorm_group_size_reaches_every_batchnorm_and_survives_serialization():
    model = build_model("b0", image_size=32, batchnorm_group_size=4)
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert len(bns) == 49 and all(l.group_size == 4 for l in bns)
    clone = keras.Model.from_config(model.get_config())
    assert all(l.group_size == 4 for l in clone.layers if isinstance(l, keras.layers.BatchNormalization))


def test_classifier_init_is_the_originals_uniform_or_zeros():
    bound = 1.0 / np.sqrt(10)  # tensorflow/tpu efficientnet_model.py dense_kernel_initializer: ±1/sqrt(classes)
    small = custom_variant(width=0.1, depth=0.1, resolution=32, name="small")
    original = build_model(small, num_classes=10).get_layer("predictions").kernel.numpy()
    assert np.abs(original).max() <= bound and np.abs(original).max() > 0.9 * bound
    zeros = build_model(small, num_classes=10, classifier_init="zeros").get_layer("predictions")
    assert not np.any(zeros.kernel.numpy()) and not np.any(zeros.bias.numpy())
    with pytest.raises(ValueError, match="classifier_init must be one of original, zeros; got 'glorot'"):
        build_model(small, classifier_init="glorot")


def test_logits_output_and_no_softmax(built):
    model = built("b0", image_size=64)
    logits = model(random_pixels(64), training=False).numpy()
    assert logits.shape == (2, 1000) and logits.dtype == np.float32
    assert not np.allclose(logits.sum(axis=1), 1.0)  # logits, not probabilities


def test_include_top_false_returns_top_activation_map():
    model = build_model("b0", image_size=64, include_top=False)
    assert model.output.shape == (None, 2, 2, 1280)
    assert "predictions" not in [l.name for l in model.layers]


def test_stochastic_depth_schedule(built):
    model = built("b0")
    n = 16  # B0 blocks
    expected = {
        prefix: 1.0 - 0.2 * i / n
        for i, prefix in enumerate(
            [f"block{s}{c}_" for s, reps in zip(range(1, 8), [1, 2, 2, 3, 3, 4, 1]) for c in "abcd"[:reps]]
        )
    }
    drops = {l.name[: -len("add")]: l.survival_prob for l in model.layers if isinstance(l, blocks.StochasticDepth)}
    # Residual blocks only: stride 1 and in == out (the first block of each stage has none).
    assert sorted(drops) == sorted(p for p in expected if p[-2] != "a")
    for prefix, p in drops.items():
        assert p == pytest.approx(expected[prefix], abs=1e-12)
    assert drops["block6d_"] == pytest.approx(1 - 0.2 * 14 / 16)  # block index 14 of 16


def test_survival_and_dropout_overrides():
    model = build_model("b0", image_size=32, dropout_rate=0.0, survival_prob=1.0)
    assert "top_dropout" not in [l.name for l in model.layers]
    assert all(l.survival_prob == 1.0 for l in model.layers if isinstance(l, blocks.StochasticDepth))
    model = build_model("b0", image_size=32, dropout_rate=0.35, survival_prob=0.5)
    assert model.get_layer("top_dropout").rate == 0.35
    assert model.get_layer("block6d_add").survival_prob == pytest.approx(1 - 0.5 * 14 / 16)
    assert build_model("b4", image_size=32).get_layer("top_dropout").rate == 0.4  # the variant's default


def test_stochastic_depth_identity_at_inference_and_unbiased_in_training():
    tf.random.set_seed(0)
    layer = blocks.StochasticDepth(0.7)
    branch = tf.ones((4000, 2, 2, 3))
    shortcut = tf.zeros_like(branch)
    np.testing.assert_array_equal(layer([branch, shortcut], training=False).numpy(), branch.numpy())
    out = layer([branch, shortcut], training=True).numpy()
    per_sample = out[:, 0, 0, 0]
    assert np.all(out == per_sample[:, None, None, None])  # one draw per sample
    values = np.unique(per_sample)
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / 0.7, rel=1e-6)
    kept = np.mean(per_sample > 0)
    assert abs(kept - 0.7) < 0.03  # binomial sd ≈ 0.007
    assert abs(per_sample.mean() - 1.0) < 0.05


@pytest.mark.parametrize("size", [95, 96])
def test_same_padding_matches_explicit_keras_padding(size):
    # The Keras-application rule (imagenet_utils.correct_pad) as an independent oracle: an odd map pads k//2 on
    # both sides, an even one k//2 - 1 before and k//2 after.
    k = 5
    before = k // 2 if size % 2 else k // 2 - 1
    x = tf.random.stateless_normal((1, size, size, 4), seed=[1, 2])
    same = keras.layers.DepthwiseConv2D(k, strides=2, padding="same", use_bias=False)
    valid = keras.layers.DepthwiseConv2D(k, strides=2, padding="valid", use_bias=False)
    y_same = same(x)
    valid.build(x.shape)
    valid.set_weights(same.get_weights())
    y_valid = valid(tf.pad(x, [[0, 0], [before, k // 2], [before, k // 2], [0, 0]]))
    assert y_same.shape[1] == (size + 1) // 2
    np.testing.assert_allclose(y_same.numpy(), y_valid.numpy(), atol=1e-6)


def test_b4_map_sizes_at_native_resolution(built):
    model = built("b4")
    # 380 -> 190 -> 95 (odd, into the stride-2 5x5 of block3a) -> 48 -> 24 -> 12.
    assert model.get_layer("block3a_expand_bn").output.shape[1] == 95
    assert model.get_layer("block3a_dwconv").output.shape[1:3] == (48, 48)
    assert model.get_layer("top_conv").output.shape[1:3] == (12, 12)


def test_mixed_bfloat16_policy_gives_float32_logits():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_model("b0", image_size=32, num_classes=10)
        features = build_model("b0", image_size=32, include_top=False)
    finally:
        keras.config.set_dtype_policy(previous)
    assert model.get_layer("stem_conv").compute_dtype == "bfloat16"
    logits = model(random_pixels(32), training=True)
    assert logits.dtype == tf.float32 and logits.shape == (2, 10)
    assert np.all(np.isfinite(logits.numpy()))
    assert features.output.dtype == "bfloat16"
    assert all(w.dtype == "float32" for w in model.weights)


def test_initializers():
    model = build_model("b0", image_size=32)
    top = model.get_layer("top_conv").kernel.numpy()  # 1x1, 1280 outputs
    assert top.std() == pytest.approx(np.sqrt(2 / 1280), rel=0.02)
    dw = model.get_layer("block6b_dwconv").kernel.numpy()  # 5x5 depthwise: fan_out = 25 (tensorflow/tpu)
    assert dw.std() == pytest.approx(np.sqrt(2 / 25), rel=0.03)
    assert np.abs(dw).max() > 2 * np.sqrt(2 / 25)  # untruncated normal
    dense = model.get_layer("predictions").kernel.numpy()
    limit = 1 / np.sqrt(1000)
    assert np.abs(dense).max() <= limit and np.abs(dense).max() > 0.99 * limit
    assert dense.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)
    assert not model.get_layer("predictions").bias.numpy().any()


def test_training_forward_runs_and_updates_bn():
    model = build_model("b0", image_size=32, num_classes=3)
    before = model.get_layer("stem_bn").moving_mean.numpy().copy()
    out = model(random_pixels(32, batch=4), training=True)
    assert out.shape == (4, 3)
    assert not np.allclose(before, model.get_layer("stem_bn").moving_mean.numpy())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(variant="b9"), "unknown EfficientNet variant 'b9'; valid: b0, b1"),
        (dict(variant="b0", num_classes=0), "num_classes"),
        (dict(variant="b0", image_size=-3), "image_size"),
        (dict(variant="b0", image_size=(32,)), "image_size"),
        (dict(variant="b0", dropout_rate=1.0), "dropout_rate"),
        (dict(variant="b0", survival_prob=0.0), "survival_prob"),
    ],
)
def test_bad_arguments_are_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_model(kwargs.pop("variant"), **kwargs)


def test_variant_hooks():
    base = custom_variant(width=0.5, depth=0.5, resolution=32)
    relu = build_model(dataclasses.replace(base, activation="relu"))
    assert relu.get_layer("stem_bn").activation_name == "relu"
    no_se = dataclasses.replace(base, stages=tuple(dataclasses.replace(s, se_ratio=None) for s in base.stages))
    assert not any("_se_" in l.name for l in build_model(no_se).layers)
    # Fused stages and a fixed stem/head are built now (EdgeTPU / Lite); a fused stage with SE is a user error.
    fused_stage = dataclasses.replace(base.stages[1], fused=True, se_ratio=None)
    fused = build_model(dataclasses.replace(base, stages=(base.stages[0], fused_stage) + base.stages[2:]))
    assert "block2a_dwconv" not in [l.name for l in fused.layers]
    assert fused.get_layer("block2a_expand_conv").kernel.shape[:2] == (3, 3)
    with pytest.raises(ValueError, match="fused stage has no squeeze-excite"):
        dataclasses.replace(base.stages[0], fused=True)
    wide = dataclasses.replace(no_se, width_coefficient=2.0)  # SE + fixed stem mismatch widths, as in TPU
    fixed = build_model(dataclasses.replace(wide, scale_stem_and_head=False))
    assert fixed.get_layer("stem_conv").kernel.shape[-1] == 32 and fixed.get_layer("top_conv").kernel.shape[-1] == 1280
    assert build_model(wide).get_layer("stem_conv").kernel.shape[-1] == 64


def test_block_configs_b4_widths():
    # Widths of b4 as found in Keras' EfficientNetB4 (stem 48, stage outputs 24/32/56/112/160/272/448).
    configs = dict(block_configs(get_variant("b4")))
    assert [configs[f"block{s}a_"].output_filters for s in range(1, 8)] == [24, 32, 56, 112, 160, 272, 448]
    assert configs["block1a_"].input_filters == 48 and len(configs) == 32
