"""Tests for the EdgeTPU and Lite rows: parameter counts, structure, the fused block, normalization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from efficientnet import blocks, build_model, get_variant
from efficientnet.summary import count_trainable_params
from tests.efficientnet.family_counts import FAMILY, analytic_params

# Published parameter counts in millions (the READMEs of tensorflow/tpu's efficientnet, edgetpu and lite), with the
# decimals they are given to.
PUBLISHED = {
    "b0": (5.288548, 6),
    "edgetpu-s": (5.44, 2),
    "edgetpu-m": (6.90, 2),
    "edgetpu-l": (10.59, 2),
    "lite0": (4.652, 3),
    "lite1": (5.417, 3),
    "lite2": (6.092, 3),
    "lite3": (8.197, 3),
    "lite4": (13.007, 3),
}


@pytest.mark.parametrize("name", list(FAMILY))
def test_parameter_counts_match_independent_count_and_published(name):
    model = build_model(name, image_size=32, num_classes=1000)  # the count does not depend on the image size
    count = count_trainable_params(model)
    assert count == analytic_params(name)
    published, decimals = PUBLISHED[name]
    assert round(count / 1e6, decimals) == pytest.approx(published)
    if name.startswith("edgetpu"):  # 1001 classes by default: one more classifier row and bias
        head = model.get_layer("predictions").kernel.shape[0]
        assert count_trainable_params(build_model(name, image_size=32)) == count + head + 1


def test_rows_of_the_table():
    # (width, depth, resolution, dropout, classes, activation) from the tensorflow/tpu edgetpu/ and lite/ builders.
    expected = {
        "edgetpu-s": (1.0, 1.0, 224, 0.2, 1001, "relu"),
        "edgetpu-m": (1.0, 1.1, 240, 0.2, 1001, "relu"),
        "edgetpu-l": (1.2, 1.4, 300, 0.3, 1001, "relu"),
        "lite0": (1.0, 1.0, 224, 0.2, 1000, "relu6"),
        "lite1": (1.0, 1.1, 240, 0.2, 1000, "relu6"),
        "lite2": (1.1, 1.2, 260, 0.3, 1000, "relu6"),
        "lite3": (1.2, 1.4, 280, 0.3, 1000, "relu6"),
        "lite4": (1.4, 1.8, 300, 0.3, 1000, "relu6"),
    }
    for name, row in expected.items():
        v = get_variant(name)
        assert (
            v.width_coefficient,
            v.depth_coefficient,
            v.resolution,
            v.dropout_rate,
            v.num_classes,
            v.activation,
        ) == row
        assert v.mean_rgb == (127.0,) * 3 and v.stddev_rgb == (128.0,) * 3
        assert not any(stage.se_ratio for stage in v.stages)
    assert get_variant("efficientnet-edgetpu-S") is get_variant("edgetpu-s")
    assert get_variant("EfficientNet-Lite3").name == "lite3"


@pytest.fixture(scope="module")
def edgetpu_m():
    return build_model("edgetpu-m", image_size=64)


def test_edgetpu_structure(edgetpu_m):
    names = [layer.name for layer in edgetpu_m.layers]
    # Stages 1-3 fused (no depthwise), 4-6 MBConv; stage 1 repeats ceil(1.1 * 1) = 2, both without residual.
    assert not any(n.startswith(("block1", "block2", "block3")) and n.endswith("dwconv") for n in names)
    assert "block4a_dwconv" in names and "block1b_project_bn" in names and "block1c_project_bn" not in names
    assert "block1a_add" not in names and "block1b_add" not in names  # "noskip"
    assert "block2b_add" in names and "block2a_add" not in names
    # The first fused conv expands the stem's 32 channels to 24 * 4 = 96 with a 3x3 kernel.
    assert tuple(edgetpu_m.get_layer("block1a_expand_conv").kernel.shape) == (3, 3, 32, 96)
    assert not any("_se_" in n for n in names)
    assert edgetpu_m.get_layer("stem_bn").activation_name == "relu"
    assert edgetpu_m.output.shape[-1] == 1001


def test_lite_fixed_stem_head_and_first_last_stage():
    model = build_model("lite4", image_size=32)
    names = {layer.name for layer in model.layers}
    assert model.get_layer("stem_conv").kernel.shape[-1] == 32 and model.get_layer("top_conv").kernel.shape[-1] == 1280
    # First and last stage keep one block (b4 has two); the others scale: ceil(1.8 * 2) = 4.
    assert "block1b_project_bn" not in names and "block7b_project_bn" not in names
    assert "block2d_project_bn" in names and "block2e_project_bn" not in names
    assert tuple(model.get_layer("block1a_dwconv").kernel.shape) == (3, 3, 32, 1)  # stem's 32 channels
    assert model.get_layer("block1a_project_conv").kernel.shape[-1] == 24  # round_filters(16 * 1.4)
    assert not any("_se_" in n for n in names) and model.get_layer("top_bn").activation_name == "relu6"


def test_inception_normalization_inside_the_model():
    model = build_model("lite0", image_size=32)
    normalize = model.get_layer("input_normalization")
    pixels = np.array([[[[0.0, 127.0, 255.0]]]], "float32")
    np.testing.assert_allclose(normalize(pixels).numpy(), [[[[-127 / 128, 0.0, 1.0]]]], rtol=1e-6)


def _bn_inference(x, layer):
    scale = layer.gamma.numpy() / np.sqrt(layer.moving_variance.numpy() + layer.epsilon)
    return x * scale + (layer.beta.numpy() - layer.moving_mean.numpy() * scale)


@pytest.mark.parametrize("strides, size", [(2, 9), (2, 8), (1, 8)])
def test_fused_block_matches_tf_ops_with_stride_on_projection(strides, size):
    """Oracle: tf.nn ops in tensorflow/tpu's order (3x3 stride-1 conv, BN, ReLU, 1x1 strided conv, BN)."""
    config = blocks.MBConvConfig(
        input_filters=8,
        output_filters=8,
        kernel_size=3,
        strides=strides,
        expand_ratio=4,
        se_ratio=None,
        activation="relu",
        fused=True,
    )
    inputs = keras.Input((size, size, 8))
    model = keras.Model(inputs, blocks.mbconv_block(inputs, config, "blk_"))
    rng = np.random.default_rng(0)
    for w in model.weights:
        w.assign(
            rng.uniform(0.5, 1.5, w.shape).astype("float32")
            if "variance" in w.path or "gamma" in w.path
            else rng.normal(0, 0.3, w.shape).astype("float32")
        )
    x = tf.constant(rng.normal(size=(2, size, size, 8)).astype("float32"))
    expand, project = model.get_layer("blk_expand_conv"), model.get_layer("blk_project_conv")
    hidden = tf.nn.relu(_bn_inference(tf.nn.conv2d(x, expand.kernel, 1, "SAME"), model.get_layer("blk_expand_bn")))
    expected = _bn_inference(tf.nn.conv2d(hidden, project.kernel, strides, "SAME"), model.get_layer("blk_project_bn"))
    if strides == 1:
        expected = expected + x  # residual (stochastic depth is the identity at inference)
    got = model(x, training=False).numpy()
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-4)
    if strides == 2:
        # The other placement (stride on the 3x3): "same" padding centres its taps on the same pixels for an odd
        # map, but one pixel later for an even one (224 -> 112 at the EdgeTPU stem), so the test can tell them apart.
        other = tf.nn.relu(_bn_inference(tf.nn.conv2d(x, expand.kernel, 2, "SAME"), model.get_layer("blk_expand_bn")))
        other = _bn_inference(tf.nn.conv2d(other, project.kernel, 1, "SAME"), model.get_layer("blk_project_bn"))
        difference = np.abs(got - other.numpy()).max()
        assert difference > 1e-2 if size % 2 == 0 else difference < 1e-4
