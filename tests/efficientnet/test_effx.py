"""Tests for EfficientNet-X/H: the rows against the original's table, every variant's blocks against the original's
rewriting rules, parameter counts against an independent count, the space-to-depth and fused blocks against
tf.nn ops in the original's order, per-block activations, squeeze-excite widths, weight files, the original's
checkpoint names, and a small network that learns.

The original: tensorflow/tpu models/official/efficientnet/tpu/efficientnet_x_builder.py and efficientnet_model.py
at 7dc921f846c9e4071f3884b768a7ddf521272a49."""

import dataclasses
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from efficientnet import blocks, build_feature_model, build_model, get_variant, load_weights
from efficientnet.model import block_configs, endpoint_table
from efficientnet.summary import count_trainable_params
from efficientnet.tpu_checkpoint import checkpoint_names
from efficientnet.variants import H_STAGES, X_STAGES, StageSpec, Variant
from tests.efficientnet.conftest import random_pixels
from tests.efficientnet.family_counts import X_FAMILY, x_analytic_params, x_blocks
from tests.efficientnet.tpu_checkpoint_writer import write_tpu_checkpoint

RNG = np.random.RandomState(0)


@pytest.mark.parametrize("name", list(X_FAMILY))
def test_rows_and_blocks_follow_the_original(name):
    """Every row: the original's (width, depth, resolution, dropout, se_coefficient), and every block as the
    original's Model._build rewrites it (widths x4 and kernels ceil(k/2) in the space-to-depth stage, the next
    stage's stride dropped, a0/a1 activations, squeeze-excite widths), without building the network."""
    v = get_variant(name)
    width, depth, resolution, dropout, se_coefficient = X_FAMILY[name]
    assert (v.width_coefficient, v.depth_coefficient, v.resolution, v.dropout_rate, v.se_coefficient) == (
        width,
        depth,
        resolution,
        dropout,
        se_coefficient,
    )
    assert (v.activation, v.num_classes, v.survival_prob, v.resize_method) == ("relu", 1000, 0.8, "bicubic")
    assert v.mean_rgb == pytest.approx((123.675, 116.28, 103.53)) and v.stddev_rgb == pytest.approx(
        (58.395, 57.12, 57.375)
    )
    assert v.stages == (H_STAGES if "-h-" in name else X_STAGES)
    ours = [
        (c.input_filters, c.output_filters, c.kernel_size, c.strides, c.expand_ratio, c.fused_conv)
        + (c.space_to_depth, c.activation, c.se_filters, c.has_residual)
        for _, c in block_configs(v)
    ]
    original = [
        (b["inp"], b["out"], b["kernel"], b["stride"], b["expand"], b["fused_conv"])
        + (b["space2depth"] == 1, b["activation"], b["se"], b["residual"])
        for b in x_blocks(name)
    ]
    assert ours == original


def test_no_residual_where_the_nominal_widths_meet_but_the_channels_do_not():
    """At a quarter width the second stage's first block declares 8 -> 8 filters but receives the 32 channels
    (8 x 4) of the space-to-depth stage; the original's residual test looks at the channels, so there is none."""
    configs = dict(block_configs(_small()))
    first = configs["block2a_"]
    assert (first.input_filters, first.output_filters, first.strides) == (8, 8, 1) and not first.has_residual
    assert configs["block1a_"].output_filters == 32


# Built here: both block-string versions, se_coefficient 4 / 2 / 1, a space-to-depth stage with a repeat
# (depth 1.09 and 1.1), widths that round (1.05, 1.1, 1.92). The others are counted by the independent formula
# (README) and their blocks checked above; building all 30 takes minutes.
BUILT = ["efficientnet-x-b0", "efficientnet-x-b1", "efficientnet-x-b2", "efficientnet-x-tpu-b1", "efficientnet-h-b5"]


@pytest.mark.parametrize("name", BUILT)
def test_parameter_counts_equal_the_independent_count(built, name):
    model = built(name, image_size=32)  # the count does not depend on the image size
    assert count_trainable_params(model) == x_analytic_params(name)
    assert model.output.shape[-1] == 1000


def test_the_stem_is_b0s_and_the_space_to_depth_block_takes_the_first_reduction(built):
    """The stem stays a 3x3 stride-2 conv (efficientnet_model.py lines 517-529); the first block's 2x2
    stride-2 conv takes the next halving, so the second stage runs at stride 1 and the levels are B0's strides,
    the first being the stem's output (lines 646-648)."""
    model = built("efficientnet-x-b1", image_size=64)
    stem = model.get_layer("stem_conv")
    assert tuple(stem.kernel.shape) == (3, 3, 3, 32) and stem.strides == (2, 2)
    s2d = model.get_layer("block1a_space2depth_conv")
    assert tuple(s2d.kernel.shape) == (2, 2, 32, 128) and s2d.strides == (2, 2)
    assert tuple(model.get_layer("block1a_dwconv").kernel.shape) == (2, 2, 128, 1)  # ceil(3 / 2)
    assert tuple(model.get_layer("block1b_dwconv").kernel.shape) == (2, 2, 64, 1)
    assert "block1b_space2depth_conv" not in {layer.name for layer in model.layers}
    # The second stage's fused 3x3 conv at stride 1 on the 64 channels (16 x 4) of the space-to-depth stage.
    fused = model.get_layer("block2a_expand_conv")
    assert tuple(fused.kernel.shape) == (3, 3, 64, 96) and fused.strides == (1, 1)
    assert model.get_layer("block3a_expand_conv").strides == (2, 2)
    table = endpoint_table("x-b1")
    assert [(e.stride, e.channels) for e in table[:5]] == [(2, 32), (4, 24), (8, 40), (16, 112), (32, 320)]
    assert table[0].layer == "stem_bn"
    features = build_feature_model("x-b1", image_size=64, endpoints=[e.name for e in table[:5]])
    for e in table[:5]:
        assert tuple(features.output[e.name].shape[1:]) == (64 // e.stride, 64 // e.stride, e.channels)


def test_space_to_depth_conv_with_a_permutation_kernel_is_space_to_depth():
    """The original's space-to-depth is a learned 2x2 stride-2 conv to four times the channels: with the kernel
    that moves input channel c at offset (dy, dx) to output channel (2 dy + dx) C + c, it is exactly
    tf.nn.space_to_depth (block size 2)."""
    channels = 5
    config = blocks.MBConvConfig(4 * channels, 8, 2, 1, 1, se_ratio=1.0, activation="relu", space_to_depth=True)
    inputs = keras.Input((6, 8, channels))
    model = keras.Model(inputs, blocks.mbconv_block(inputs, config, "blk_"))
    conv = model.get_layer("blk_space2depth_conv")
    kernel = np.zeros((2, 2, channels, 4 * channels), "float32")
    for dy in range(2):
        for dx in range(2):
            for c in range(channels):
                kernel[dy, dx, c, (2 * dy + dx) * channels + c] = 1.0
    conv.kernel.assign(kernel)
    x = tf.constant(RNG.normal(size=(2, 6, 8, channels)).astype("float32"))
    np.testing.assert_allclose(conv(x).numpy(), tf.nn.space_to_depth(x, 2).numpy(), rtol=1e-6, atol=1e-6)


def _bn(x, layer):
    scale = layer.gamma.numpy() / np.sqrt(layer.moving_variance.numpy() + layer.epsilon)
    return x * scale + (layer.beta.numpy() - layer.moving_mean.numpy() * scale)


def _se(x, model, prefix, act):
    """tensorflow/tpu MBConvBlock._call_se: spatial mean, 1x1 reduce + bias, the block's activation, 1x1 expand
    + bias, sigmoid gate."""
    reduce, expand = model.get_layer(prefix + "se_reduce"), model.get_layer(prefix + "se_expand")
    squeezed = tf.reduce_mean(x, (1, 2), keepdims=True)
    reduced = act(tf.nn.conv2d(squeezed, reduce.kernel, 1, "SAME") + reduce.bias)
    return x * tf.sigmoid(tf.nn.conv2d(reduced, expand.kernel, 1, "SAME") + expand.bias)


def _randomized_block(config, size, channels):
    inputs = keras.Input((size, size, channels))
    model = keras.Model(inputs, blocks.mbconv_block(inputs, config, "blk_"))
    rng = np.random.default_rng(0)
    for w in model.weights:
        w.assign(
            rng.uniform(0.5, 1.5, w.shape).astype("float32")
            if "variance" in w.path or "gamma" in w.path
            else rng.normal(0, 0.3, w.shape).astype("float32")
        )
    x = tf.constant(rng.normal(size=(2, size, size, channels)).astype("float32"))
    return model, x


@pytest.mark.parametrize("strides, size", [(2, 9), (2, 8), (1, 8)])
def test_fused_conv_block_matches_tf_ops_in_the_original_order(strides, size):
    """The "f1" block (efficientnet_model.py lines 362-365, 375-394): kxk conv at the block's stride, BN, swish,
    squeeze-excite, 1x1 projection, BN, residual at stride 1."""
    config = blocks.MBConvConfig(8, 8, 3, strides, 4, se_ratio=0.5, activation="swish", fused_conv=True)
    model, x = _randomized_block(config, size, 8)
    assert config.se_filters == 4 and model.get_layer("blk_se_reduce").filters == 4
    assert not any(layer.name.endswith("dwconv") for layer in model.layers)
    fused, project = model.get_layer("blk_expand_conv"), model.get_layer("blk_project_conv")
    h = tf.nn.silu(_bn(tf.nn.conv2d(x, fused.kernel, strides, "SAME"), model.get_layer("blk_expand_bn")))
    h = _se(h, model, "blk_", tf.nn.silu)
    expected = _bn(tf.nn.conv2d(h, project.kernel, 1, "SAME"), model.get_layer("blk_project_bn"))
    if strides == 1:
        expected = expected + x
    np.testing.assert_allclose(model(x, training=False).numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size", [8, 7])
def test_space_to_depth_block_matches_tf_ops_in_the_original_order(size):
    """The "d1" block (efficientnet_model.py lines 355-360, 366-373): 2x2 stride-2 conv to input_filters, BN,
    ReLU, (no expansion at e1) 2x2 depthwise at stride 1, BN, ReLU, squeeze-excite of int(16 * 1.0) // 4 = 4
    channels, projection, BN; no residual."""
    config = blocks.MBConvConfig(16, 8, 2, 1, 1, se_ratio=1.0, activation="relu", space_to_depth=True)
    model, x = _randomized_block(config, size, 4)
    assert model.get_layer("blk_se_reduce").filters == 4 and not config.has_residual
    s2d, dw = model.get_layer("blk_space2depth_conv"), model.get_layer("blk_dwconv")
    h = tf.nn.relu(_bn(tf.nn.conv2d(x, s2d.kernel, 2, "SAME"), model.get_layer("blk_space2depth_bn")))
    h = tf.nn.relu(_bn(tf.nn.depthwise_conv2d(h, dw.kernel, (1, 1, 1, 1), "SAME"), model.get_layer("blk_bn")))
    h = _se(h, model, "blk_", tf.nn.relu)
    project = model.get_layer("blk_project_conv")
    expected = _bn(tf.nn.conv2d(h, project.kernel, 1, "SAME"), model.get_layer("blk_project_bn"))
    assert expected.shape[1] == (size + 1) // 2
    np.testing.assert_allclose(model(x, training=False).numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)


def _blocks_in_order(model):
    """{block prefix: [its layers]} in model order."""
    found = {}
    for layer in model.layers:
        match = re.match(r"^(block\d+[a-z]+)_", layer.name)
        if match:
            found.setdefault(match.group(1), []).append(layer)
    return found


@pytest.mark.parametrize("name", ["efficientnet-x-b1", "efficientnet-h-b5"])
def test_activation_of_every_block_and_of_stem_and_head(built, name):
    """a0 is ReLU and a1 swish (efficientnet_builder.py lines 87-88); the stem, the head and blocks without an
    "a" option use the global relu_fn (efficientnet_x_builder.py line 115, efficientnet_model.py lines
    163-164); squeeze-excite uses its block's activation."""
    model = built(name, image_size=32)
    assert model.get_layer("stem_bn").activation_name == "relu" and model.get_layer("top_bn").activation_name == "relu"
    layers_per_block = list(_blocks_in_order(model).values())
    expected = [b["activation"] for b in x_blocks(name)]
    assert len(layers_per_block) == len(expected)
    for layers, activation in zip(layers_per_block, expected):
        names = {
            layer.name: layer.activation_name
            for layer in layers
            if isinstance(layer, (blocks.BatchNormActivation, blocks.SqueezeExciteReduce))
            and not layer.name.endswith("project_bn")  # the projection has no activation
        }
        assert set(names.values()) == {activation}, names
    assert {"swish", "relu"} == set(expected)


def test_squeeze_excite_width_follows_se_coefficient(built):
    """int(input_filters * (0.25 * se_coefficient)) (efficientnet_model.py lines 254-256), a quarter of it in the
    space-to-depth block (lines 260-262): x-b0 (coefficient 4) squeezes to 16 where b0 squeezes to 4."""
    widths = {
        name: {
            layer.name: layer.filters
            for layer in built(name, image_size=32).layers
            if isinstance(layer, blocks.SqueezeExciteReduce)
        }
        for name in ("b0", "efficientnet-x-b0", "efficientnet-x-b1", "efficientnet-x-b2")
    }
    assert widths["b0"]["block2a_se_reduce"] == int(16 * 0.25) == 4
    assert widths["efficientnet-x-b0"]["block2a_se_reduce"] == int(16 * (0.25 * 4)) == 16
    assert widths["efficientnet-x-b0"]["block1a_se_reduce"] == int(128 * (0.25 * 4)) // 4 == 32
    assert widths["efficientnet-x-b1"]["block1b_se_reduce"] == int(64 * (0.25 * 2)) == 32
    assert widths["efficientnet-x-b1"]["block6a_se_reduce"] == int(112 * (0.25 * 2)) == 56
    assert widths["efficientnet-x-b2"]["block6a_se_reduce"] == int(120 * 0.25) == 30
    for name in ("efficientnet-x-b0", "efficientnet-x-b1", "efficientnet-x-b2"):
        assert list(widths[name].values()) == [b["se"] for b in x_blocks(name)]


def test_unbuilt_space_to_depth_and_fused_combinations_are_refused():
    with pytest.raises(ValueError, match="space_to_depth=1 is built on a stride-1 stage only"):
        StageSpec(3, 2, 1, 32, 16, 1, space_to_depth=1)
    with pytest.raises(ValueError, match="space_to_depth=2 is built on a stride-2 stage only"):
        StageSpec(3, 1, 6, 16, 24, 2, space_to_depth=2)
    with pytest.raises(ValueError, match="fused_conv stage cannot also be fused"):
        StageSpec(3, 2, 6, 16, 24, 2, se_ratio=None, fused=True, fused_conv=True)
    with pytest.raises(ValueError, match="stage activation"):
        StageSpec(3, 1, 1, 32, 16, 1, activation="gelu")
    row = dict(name="s2d", width_coefficient=1.0, depth_coefficient=1.0, resolution=32, dropout_rate=0.2)
    with pytest.raises(ValueError, match="must follow the space_to_depth=1 stage"):
        Variant(**row, stages=X_STAGES[1:])
    with pytest.raises(ValueError, match="space_to_depth=1 is built on the first stage only"):
        Variant(**row, stages=X_STAGES[3:4] + X_STAGES[:1])
    with pytest.raises(ValueError, match="se_coefficient must be a positive"):
        Variant(**row, se_coefficient=0)
    with pytest.raises(ValueError, match="unknown EfficientNet variant 'efficientnet-x-b8'"):
        get_variant("efficientnet-x-b8")


def _small(depth=0.3):
    """x-b1's blocks at a quarter width: 8 blocks (the space-to-depth stage without a repeat) at depth 0.3."""
    return dataclasses.replace(
        get_variant("x-b1"), name="x-small", width_coefficient=0.25, depth_coefficient=depth, dropout_rate=0.0
    )


def test_weight_files_round_trip(tmp_path):
    source = build_model(_small(), num_classes=4, image_size=32)
    target = build_model(_small(), num_classes=4, image_size=32)
    path = str(tmp_path / "x.weights.h5")
    source.save_weights(path)
    load_weights(target, path)
    images = random_pixels(32)
    np.testing.assert_array_equal(target(images, training=False).numpy(), source(images, training=False).numpy())


def test_checkpoint_names_are_the_originals():
    """The names tensorflow/tpu's graph gives the first two X blocks (read from the variables the original's
    build_model creates for efficientnet-x-b0 under tf.compat.v1): the space-to-depth conv and BN in a nested
    scope, the fused conv numbered as a plain conv."""
    names = {
        layer: [relative for _, relative in pairs]
        for layer, pairs in checkpoint_names(build_model(_small(), image_size=32)).items()
    }
    assert names["block1a_space2depth_conv"] == ["blocks_0/space2depth/conv2d/kernel"]
    assert names["block1a_space2depth_bn"][0] == "blocks_0/space2depth/tpu_batch_normalization/gamma"
    assert names["block1a_dwconv"] == ["blocks_0/depthwise_conv2d/depthwise_kernel"]
    assert names["block1a_bn"][0] == "blocks_0/tpu_batch_normalization/gamma"
    assert names["block1a_se_reduce"] == ["blocks_0/se/conv2d/kernel", "blocks_0/se/conv2d/bias"]
    assert names["block1a_project_conv"] == ["blocks_0/conv2d/kernel"]
    assert names["block1a_project_bn"][0] == "blocks_0/tpu_batch_normalization_1/gamma"
    assert names["block2a_expand_conv"] == ["blocks_1/conv2d/kernel"]
    assert names["block2a_expand_bn"][0] == "blocks_1/tpu_batch_normalization/gamma"
    assert names["block2a_se_expand"] == ["blocks_1/se/conv2d_1/kernel", "blocks_1/se/conv2d_1/bias"]
    assert names["block2a_project_conv"] == ["blocks_1/conv2d_1/kernel"]
    assert names["block2a_project_bn"][0] == "blocks_1/tpu_batch_normalization_1/gamma"


def test_original_checkpoints_load(tmp_path):
    """A checkpoint written with TF1's own naming mechanism (tests/efficientnet/tpu_checkpoint_writer.py) loads
    completely, shadows first, and the outputs follow."""
    raw, ema = build_model(_small(depth=1.1), image_size=32), build_model(_small(depth=1.1), image_size=32)
    rng = np.random.default_rng(3)
    for w in ema.weights:
        w.assign((w.numpy() + rng.uniform(0.1, 0.2, w.shape)).astype("float32"))
    write_tpu_checkpoint(raw, tmp_path, scope="efficientnet-x-b1", ema_model=ema)
    fresh = build_model(_small(depth=1.1), image_size=32)
    result = load_weights(fresh, tmp_path)
    assert result.from_ema == len(fresh.weights) and not result.ignored
    images = random_pixels(32)
    np.testing.assert_allclose(fresh(images, training=False).numpy(), ema(images, training=False).numpy(), atol=1e-5)


@pytest.mark.slow
def test_a_small_x_network_learns_a_batch():
    """Gradients reach the space-to-depth conv and the fused convs: plain Keras training steps fit 8 images."""
    model = build_model(_small(), num_classes=4, image_size=32, survival_prob=1.0)
    images = RNG.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    labels = np.arange(8) % 4
    model.compile(
        optimizer=tf.keras.optimizers.Adam(1e-2), loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    watched = ("block1a_space2depth_conv", "block2a_expand_conv", "block3a_expand_conv")
    before = {name: model.get_layer(name).kernel.numpy().copy() for name in watched}
    losses = model.fit(images, labels, epochs=25, batch_size=8, verbose=0).history["loss"]
    assert losses[-1] < 0.25 * losses[0]  # training-mode losses: BatchNorm on the batch's own statistics
    for name in watched:
        assert not np.array_equal(model.get_layer(name).kernel.numpy(), before[name]), name
