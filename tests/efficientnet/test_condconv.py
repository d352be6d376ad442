"""Tests for EfficientNet-CondConv: the CondConv layers against the original's per-example formula, the routing,
the rows of the table with their published parameter counts, and a training run that evaluates and exports."""

import math
import re

import numpy as np
import pytest
import tensorflow as tf

from efficientnet import blocks, build_model, get_variant, load_weights, tpu_checkpoint
from efficientnet.summary import count_macs, count_trainable_params
from efficientnet.variants import B0_STAGES, StageSpec, Variant
from tests.efficientnet.family_counts import B0_BLOCKS, analytic_params, decode_block

RNG = np.random.RandomState(0)


def _routing(batch, experts):
    return tf.constant(RNG.uniform(0, 1, (batch, experts)).astype("float32"))


def _per_example(features, experts, routing, expert_shape, convolve):
    """tensorflow/tpu condconv_layers.py's call: each example's kernel = routing · experts, reshaped to the
    expert shape, applied to that example alone (tf.split over the batch, one conv per example)."""
    kernels = tf.matmul(routing, experts)
    outputs = [convolve(features[i : i + 1], tf.reshape(kernels[i], expert_shape)) for i in range(features.shape[0])]
    return tf.concat(outputs, 0).numpy()


@pytest.mark.parametrize("kernel,strides,side", [(1, 1, 7), (1, 2, 7), (1, 2, 8), (3, 1, 6), (3, 2, 7), (5, 2, 8)])
def test_condconv2d_equals_the_per_example_convolution(kernel, strides, side):
    layer = blocks.CondConv2D(6, kernel, strides, num_experts=3)
    features = tf.constant(RNG.normal(size=(4, side, side, 5)).astype("float32"))
    routing = _routing(4, 3)
    out = layer([features, routing]).numpy()
    expected = _per_example(
        features,
        layer.condconv_kernel,
        routing,
        (kernel, kernel, 5, 6),
        lambda x, k: tf.nn.convolution(x, k, strides=strides, padding="SAME"),
    )
    assert out.shape == expected.shape == (4, -(-side // strides), -(-side // strides), 6)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel,strides,side", [(3, 1, 7), (3, 2, 8), (5, 2, 7), (5, 1, 6)])
def test_depthwise_condconv_equals_the_per_example_depthwise_convolution(kernel, strides, side):
    layer = blocks.DepthwiseCondConv2D(kernel, strides, num_experts=4)
    features = tf.constant(RNG.normal(size=(3, side, side, 6)).astype("float32"))
    routing = _routing(3, 4)
    out = layer([features, routing]).numpy()
    expected = _per_example(
        features,
        layer.depthwise_condconv_kernel,
        routing,
        (kernel, kernel, 6, 1),
        lambda x, k: tf.nn.depthwise_conv2d(x, k, (1, strides, strides, 1), "SAME"),
    )
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_layers_take_any_batch_size_in_a_traced_function():
    conv = blocks.CondConv2D(4, 3, 2, num_experts=2)
    depthwise = blocks.DepthwiseCondConv2D(3, 1, num_experts=2)
    spec = (tf.TensorSpec([None, 9, 9, 3]), tf.TensorSpec([None, 2]))
    traced = tf.function(lambda x, r: depthwise([conv([x, r]), r]), input_signature=spec)
    for batch in (1, 5):
        features, routing = tf.constant(RNG.normal(size=(batch, 9, 9, 3)).astype("float32")), _routing(batch, 2)
        np.testing.assert_allclose(
            traced(features, routing).numpy(), depthwise([conv([features, routing]), routing]).numpy(), atol=1e-5
        )
        assert traced(features, routing).shape == (batch, 5, 5, 4)


def test_routing_is_the_sigmoid_of_a_dense_layer_on_the_spatial_mean():
    layer = blocks.CondConvRouting(3)
    features = RNG.normal(size=(2, 5, 4, 6)).astype("float32")
    out = layer(features).numpy()
    expected = 1 / (1 + np.exp(-(features.mean(axis=(1, 2)) @ layer.kernel.numpy() + layer.bias.numpy())))
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    assert np.all(layer.bias.numpy() == 0)  # tf.layers.Dense's zero bias; Glorot-uniform kernel
    limit = math.sqrt(6 / (6 + 3))
    assert np.all(np.abs(layer.kernel.numpy()) <= limit)


def test_each_expert_is_drawn_like_a_plain_conv_kernel():
    init = blocks.CondConvKernelInitializer((3, 3, 64, 32))
    kernel = init((8, 3 * 3 * 64 * 32)).numpy()
    stddev = math.sqrt(2.0 / (3 * 3 * 32))  # fan_out of one expert, untruncated normal
    assert kernel.shape == (8, 18432)
    for expert in kernel:  # 18,432 draws each: the sample std is within 3 % of the target
        assert abs(expert.std() / stddev - 1) < 0.03 and abs(expert.mean()) < 0.05 * stddev
    with pytest.raises(ValueError, match="experts"):
        init((8, 100))


# tensorflow/tpu condconv/README.md: parameter counts of the published checkpoints, in millions.
PUBLISHED = {"condconv-b0-4e": (4, 1.0, 13.3), "condconv-b0-8e": (8, 1.0, 24.0), "condconv-b0-8e-depth": (8, 1.1, 39.7)}


def _condconv_extra(experts, depth):
    """Weights CondConv adds to B0 (at this depth) in the original's builder: the "_cc" stages' expand, depthwise
    and project kernels once per extra expert, plus each block's routing Dense (kernel and bias)."""
    extra = 0
    for b in [decode_block(s) for s in B0_BLOCKS[4:]]:  # the three stages marked "_cc"
        for j in range(math.ceil(depth * b["repeats"])):
            cin = b["inp"] if j == 0 else b["out"]
            expanded = cin * b["expand"]
            kernels = cin * expanded + b["kernel"] ** 2 * expanded + expanded * b["out"]
            extra += (experts - 1) * kernels + cin * experts + experts
    return extra


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_parameter_counts_match_independent_count_and_published(name):
    experts, depth, published = PUBLISHED[name]
    count = count_trainable_params(build_model(name, image_size=32))
    base = analytic_params("b0") if depth == 1.0 else count_trainable_params(build_model("b1", image_size=32))
    assert count == base + _condconv_extra(experts, depth)
    assert round(count / 1e6, 1) == pytest.approx(published)


def test_multiply_adds_match_the_published_ones_as_b0_does():
    """MACs by efficientnet.summary (the per-example conv, the kernel mixing, the routing) against the
    original's README (B0 391M, CondConv 402M / 413M / 614M): off by the same factor as B0's own count."""
    b0_ratio = count_macs(build_model("b0")) / 391e6
    for name, published in (("condconv-b0-4e", 402e6), ("condconv-b0-8e", 413e6), ("condconv-b0-8e-depth", 614e6)):
        assert count_macs(build_model(name)) / published == pytest.approx(b0_ratio, abs=0.002)


def test_rows_of_the_table():
    for name, (experts, depth, _) in PUBLISHED.items():
        v = get_variant("efficientnet-" + name)
        assert (v.width_coefficient, v.depth_coefficient, v.resolution, v.dropout_rate, v.condconv_num_experts) == (
            1.0,
            depth,
            224,
            0.25,
            experts,
        )
        assert v.mean_rgb == (127.0,) * 3 and v.stddev_rgb == (128.0,) * 3 and v.resize_method == "bicubic"
        assert [stage.condconv for stage in v.stages] == [False] * 4 + [True] * 3
    model = build_model("condconv-b0-4e", image_size=32)
    assert isinstance(model.get_layer("block5a_expand_conv"), blocks.CondConv2D)
    assert isinstance(model.get_layer("block7a_dwconv"), blocks.DepthwiseCondConv2D)
    assert isinstance(model.get_layer("block4c_dwconv"), tf.keras.layers.DepthwiseConv2D)
    assert "block4c_routing" not in {layer.name for layer in model.layers}


def test_invalid_rows_are_refused():
    with pytest.raises(ValueError, match="condconv_num_experts"):
        Variant(
            name="cc",
            width_coefficient=1.0,
            depth_coefficient=1.0,
            resolution=32,
            dropout_rate=0.2,
            stages=(StageSpec(3, 1, 1, 32, 16, 1, condconv=True),),
        )
    with pytest.raises(ValueError, match="fused"):
        StageSpec(3, 1, 4, 24, 24, 1, se_ratio=None, fused=True, condconv=True)
    assert B0_STAGES[4].condconv is False


def _small(experts=2):
    return Variant(
        name="cc-small",
        width_coefficient=0.25,
        depth_coefficient=0.25,
        resolution=32,
        dropout_rate=0.0,
        stages=get_variant("condconv-b0-4e").stages,
        condconv_num_experts=experts,
    )


def test_weight_files_round_trip_and_original_checkpoints_are_refused(tmp_path):
    source, target = build_model(_small(), num_classes=4), build_model(_small(), num_classes=4)
    path = str(tmp_path / "cc.weights.h5")
    source.save_weights(path)
    load_weights(target, path)
    images = RNG.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(target(images).numpy(), source(images).numpy())
    with pytest.raises(ValueError, match="tensorflow/tpu CondConv checkpoints is not implemented"):
        tpu_checkpoint.checkpoint_names(target)
    with pytest.raises(
        ValueError, match=re.escape("nothing was changed: layer 'block5a_routing': expected shapes [(24, 3)")
    ):
        load_weights(build_model(_small(experts=3), num_classes=4), path)


@pytest.mark.slow
def test_a_small_condconv_network_learns_a_batch():
    """Gradients reach the experts and the routing: plain Keras training steps fit 8 random images."""
    # Seeded: unseeded, the initial weights came from whatever the earlier tests left in Keras' global generator,
    # and one such draw ended at 0.27 of the first loss. Seeds 0-9 end at 0.00-0.06 with oneDNN on, 0-3 at
    # 0.00-0.08 with it off.
    tf.keras.utils.set_random_seed(0)
    model = build_model(_small(), num_classes=4, survival_prob=1.0)
    images = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    labels = np.arange(8) % 4
    model.compile(
        optimizer=tf.keras.optimizers.Adam(1e-2), loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    experts_before = model.get_layer("block5a_expand_conv").condconv_kernel.numpy().copy()
    routing_before = model.get_layer("block5a_routing").kernel.numpy().copy()
    losses = model.fit(images, labels, epochs=25, batch_size=8, verbose=0).history["loss"]
    assert losses[-1] < 0.25 * losses[0]  # training-mode losses: BatchNorm on the batch's own statistics
    assert not np.array_equal(model.get_layer("block5a_expand_conv").condconv_kernel.numpy(), experts_before)
    assert not np.array_equal(model.get_layer("block5a_routing").kernel.numpy(), routing_before)
