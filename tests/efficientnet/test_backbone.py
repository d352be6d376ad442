"""EfficientNet as a backbone: headless and pooled models, tensorflow/tpu's multi-scale endpoints, any spatial size,
any input channel count, and weights (Keras HDF5, original checkpoints with EMA shadows) loaded into them.

Oracles: keras.applications (notop/pooling shapes, and the logits of the published-layout weights), the
endpoint channels and strides of tensorflow/tpu's builders, the full model's own layers, numpy.
"""

import ast
import dataclasses
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from efficientnet import build_feature_model, build_model, custom_variant, endpoint_table, get_variant, load_weights
from efficientnet.loading import adapt_stem_kernel
from efficientnet.model import input_statistics
from efficientnet.variants import StageSpec
from tests.efficientnet.conftest import KERAS_APPS, keras_reference, random_pixels, write_keras2_h5
from tests.efficientnet.tpu_checkpoint_writer import write_tpu_checkpoint

# b0's code path (SE, residuals with stochastic depth, all seven stages) at a fraction of its width and depth.
SMALL = dataclasses.replace(custom_variant(width=0.25, depth=0.3, name="small"), num_classes=10)

# tensorflow/tpu at 7dc921f: the endpoint rule of efficientnet_model.py (Model.call) applied to the block strings
# of efficientnet_builder.py (b0; lite/efficientnet_lite_builder.py has the same strings) and of
# edgetpu/efficientnet_edgetpu_builder.py ('r1_k3_s11_e4_i24_o24_c1_noskip', 'r2_k3_s22_e8_i24_o32_c1',
# 'r4_k3_s22_e8_i32_o48_c1', 'r5_k5_s22_e8_i48_o96', 'r4_k5_s11_e8_i96_o144', 'r2_k5_s22_e8_i144_o192'): a level
# ends before each s22 stage and at the last block; the stem has stride 2. (stride, channels) per reduction_i.
ORIGINAL_REDUCTIONS = {
    "b0": [(2, 16), (4, 24), (8, 40), (16, 112), (32, 320)],
    "lite0": [(2, 16), (4, 24), (8, 40), (16, 112), (32, 320)],
    "edgetpu-s": [(2, 24), (4, 32), (8, 48), (16, 144), (32, 192)],
}


def _randomize(model, seed=0):
    """Distinct values in every variable (BN statistics included), so a swapped layer changes the outputs."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        shape = tuple(w.shape)
        if w.path.endswith(("gamma", "moving_variance")):
            w.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))
        elif w.path.endswith(("beta", "moving_mean", "bias")):
            w.assign(rng.normal(0.0, 0.2, shape).astype("float32"))
        else:
            w.assign((w.numpy() * rng.uniform(0.6, 1.4, shape)).astype("float32"))


def _close(actual, expected, rtol=1e-5):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * max(1.0, np.abs(expected).max()))


@pytest.fixture(scope="module")
def classifier():
    """SMALL as a 64-px classifier with random weights: the source of every load below."""
    model = build_model(SMALL, image_size=64)
    _randomize(model)
    return model


@pytest.fixture(scope="module")
def classifier_file(classifier, tmp_path_factory):
    path = tmp_path_factory.mktemp("small") / "small.weights.h5"
    classifier.save_weights(path)
    return path


def _layer_outputs(model, names, images):
    """The outputs of `model`'s layers `names` on `images` (the oracle for the feature model)."""
    probe = keras.Model(model.input, {n: model.get_layer(n).output for n in names})
    outputs = probe(images, training=False)
    return [outputs[n].numpy() for n in names]


@pytest.mark.parametrize("variant", sorted(ORIGINAL_REDUCTIONS))
def test_endpoints_have_the_original_strides_and_channels(variant):
    table = endpoint_table(variant)
    assert [e.name for e in table] == [f"reduction_{i}" for i in range(1, 6)] + ["features", "head_1x1"]
    assert [(e.stride, e.channels) for e in table[:5]] == ORIGINAL_REDUCTIONS[variant]
    assert (table[5].stride, table[5].channels) == ORIGINAL_REDUCTIONS[variant][-1]  # features: the last block
    assert (table[6].stride, table[6].channels) == (32, 1280)
    model = build_feature_model(variant, image_size=64)
    shapes = {name: tuple(t.shape) for name, t in model.output.items()}
    assert shapes == {e.name: (None, 64 // e.stride, 64 // e.stride, e.channels) for e in table}


def test_custom_stage_table_endpoints_follow_the_rule_on_its_own_blocks():
    # The rule reads the blocks: a stride-1 stage after a stride-2 one extends that level, and a stride-2 last
    # stage ends the last one (width and depth 1: the filters are the table's).
    stages = (
        StageSpec(3, 1, 1, 32, 16, 1),
        StageSpec(3, 2, 6, 16, 24, 2),
        StageSpec(5, 1, 6, 24, 40, 3),
        StageSpec(3, 2, 6, 40, 80, 2),
    )
    variant = dataclasses.replace(custom_variant(width=1.0, depth=1.0, name="cut"), stages=stages)
    table = endpoint_table(variant)
    assert [(e.name, e.stride, e.channels, e.layer) for e in table] == [
        ("reduction_1", 2, 16, "block1a_project_bn"),
        ("reduction_2", 4, 40, "block3c_add"),
        ("reduction_3", 8, 80, "block4b_add"),
        ("features", 8, 80, "block4b_add"),
        ("head_1x1", 8, 1280, "top_bn"),
    ]
    outputs = build_feature_model(variant, image_size=32).output
    assert {k: tuple(v.shape[1:]) for k, v in outputs.items()} == {
        e.name: (32 // e.stride, 32 // e.stride, e.channels) for e in table
    }


def _keras_notop_shape(variant, pooling, input_shape):
    keras.backend.clear_session()
    return tuple(
        KERAS_APPS[variant](include_top=False, weights=None, input_shape=input_shape, pooling=pooling).output.shape
    )


@pytest.mark.parametrize("variant", ["b0", *(pytest.param(f"b{i}", marks=pytest.mark.slow) for i in range(1, 8))])
def test_notop_and_pooling_shapes_equal_keras_applications(variant):
    # Every variant's feature map at an odd size and at any size; the poolings on b0 only: they act on the last
    # map whatever the variant, and each build of b4-b7 costs seconds.
    for pooling in (None, "avg", "max") if variant == "b0" else (None,):
        ours = build_model(variant, image_size=123, include_top=False, pooling=pooling)
        assert tuple(ours.output.shape) == _keras_notop_shape(variant, pooling, (123, 123, 3))
    ours = build_model(variant, image_size=None, include_top=False)
    assert tuple(ours.output.shape) == _keras_notop_shape(variant, None, (None, None, 3))


def test_softmax_classifier_is_the_softmax_of_the_logits(classifier, classifier_file):
    probabilities = build_model(SMALL, image_size=64, classifier_activation="softmax")
    load_weights(probabilities, classifier_file)
    images = random_pixels(64)
    expected = tf.nn.softmax(classifier(images, training=False)).numpy()
    _close(probabilities(images, training=False), expected)
    assert probabilities.output.dtype == "float32"


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(include_top=True, pooling="avg"),
        dict(include_top=False, pooling="mean"),
        dict(include_top=False, classifier_activation="softmax"),
        dict(classifier_activation="sigmoid"),
        dict(input_channels=0),
        dict(input_channels=True),
        dict(image_size="big"),
        dict(image_size=(32, 0)),
    ],
)
def test_bad_head_and_input_options_are_value_errors(kwargs):
    with pytest.raises(ValueError):
        build_model(SMALL, **kwargs)


@pytest.mark.parametrize("endpoints", [[], ["reduction_9"], ["features", "features"]])
def test_bad_endpoint_names_are_value_errors(endpoints):
    with pytest.raises(ValueError, match="endpoints must be"):
        build_feature_model(SMALL, endpoints=endpoints)


def test_feature_model_equals_the_full_models_layers_with_weights_from_its_file(classifier, classifier_file):
    features = build_feature_model(SMALL, image_size=64)
    result = load_weights(features, classifier_file)
    assert result.ignored == ("predictions",) and not result.skipped
    images = random_pixels(64)
    table = endpoint_table(SMALL)
    expected = _layer_outputs(classifier, [e.layer for e in table], images)
    got = features(images, training=False)
    for endpoint, want in zip(table, expected):
        _close(got[endpoint.name], want)


def test_original_checkpoint_ema_shadows_load_into_pooled_and_truncated_models(classifier, tmp_path):
    ema = build_model(SMALL, image_size=64)
    _randomize(ema, seed=3)
    prefix = write_tpu_checkpoint(classifier, tmp_path, ema_model=ema, scope="efficientnet-small")
    images = random_pixels(64)
    pooled = build_model(SMALL, image_size=64, include_top=False, pooling="avg")
    result = load_weights(pooled, prefix)
    assert result.from_ema == len(pooled.weights) and result.ignored == ("head/dense/bias", "head/dense/kernel")
    _close(pooled(images, training=False), _layer_outputs(ema, ["avg_pool"], images)[0])
    early = build_feature_model(SMALL, image_size=64, endpoints=["reduction_2", "reduction_1"])
    result = load_weights(early, prefix)
    assert result.from_ema == len(early.weights) and any(n.startswith("head/conv2d") for n in result.ignored)
    got = early(images, training=False)
    want = _layer_outputs(ema, [e.layer for e in endpoint_table(SMALL)[:2]], images)
    _close(got["reduction_1"], want[0])
    _close(got["reduction_2"], want[1])


def test_every_parameter_receives_a_gradient_through_each_endpoint(classifier_file):
    variant = dataclasses.replace(SMALL, survival_prob=1.0)  # no dropped residual branch hides a gradient
    model = build_feature_model(variant, image_size=64)
    load_weights(model, classifier_file)
    images = tf.constant(random_pixels(64))
    rng = np.random.default_rng(0)
    reached = set()
    for name in model.output:
        upstream = keras.Model(model.input, model.output[name]).trainable_weights
        with tf.GradientTape() as tape:
            out = model(images, training=True)[name]
            # A random projection: the plain sum of a BatchNorm output has zero gradient before its BN.
            loss = tf.reduce_sum(out * rng.normal(size=out.shape).astype("float32"))
        gradients = tape.gradient(loss, upstream)
        dead = [w.path for w, g in zip(upstream, gradients) if g is None or not np.any(g.numpy())]
        assert not dead, f"{name}: no gradient for {dead[:3]}"
        reached |= {w.path for w in upstream}
    assert reached == {w.path for w in model.trainable_weights}


def test_any_size_model_on_two_sizes_equals_fixed_size_models(classifier_file):
    anywhere = build_feature_model(SMALL, image_size=None)
    load_weights(anywhere, classifier_file)
    for size in ((32, 32), (45, 38)):
        fixed = build_feature_model(SMALL, image_size=size)
        load_weights(fixed, classifier_file)
        images = np.random.default_rng(size[0]).uniform(0, 255, (2, *size, 3)).astype("float32")
        got, want = anywhere(images, training=False), fixed(images, training=False)
        for name in want:
            assert got[name].shape == want[name].shape
            _close(got[name], want[name])
    for size in ((32, 32), (45, 38)):  # last: training updates the BN statistics the comparisons above used
        trained = anywhere(random_pixels(size[0])[:, :, : size[1]], training=True)  # stochastic depth, dynamic shape
        assert trained["head_1x1"].shape[1:3] == (-(-size[0] // 32), -(-size[1] // 32))


@pytest.fixture(scope="module")
def keras_b0():
    """keras.applications' B0 at 32 px with calibrated random weights, and its weights in the published layout."""
    return keras_reference("b0", 32)


def test_one_channel_model_from_published_weights_matches_rgb_on_the_replicated_image(keras_b0, tmp_path):
    write_keras2_h5(keras_b0, tmp_path / "b0.h5")
    grey_model = build_model("b0", image_size=32, input_channels=1)
    result = load_weights(grey_model, tmp_path / "b0.h5")
    assert not result.adapted and not result.skipped
    rgb_model = build_model("b0", image_size=32)
    load_weights(rgb_model, tmp_path / "b0.h5")
    grey = random_pixels(32)[..., :1]
    # The RGB model on the replicated image, from the same file. Not keras_b0 itself: with random weights B0's
    # logits reach 1e12, and Keras' own normalization ops (Normalization + Rescaling) then differ from ours by
    # up to 1 % in some draws; that the RGB model equals keras.applications is tested in test_model.py.
    expected = rgb_model(np.repeat(grey, 3, axis=-1), training=False).numpy()
    _close(grey_model(grey, training=False), expected, rtol=1e-4)


def test_stem_kernel_rule_for_other_channel_counts():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 3, 8))
    np.testing.assert_array_equal(adapt_stem_kernel(kernel, 2), kernel[:, :, :2] * 1.5)
    np.testing.assert_array_equal(
        adapt_stem_kernel(kernel, 4), np.concatenate([kernel, kernel[:, :, :1]], axis=2) * 0.75
    )
    np.testing.assert_array_equal(adapt_stem_kernel(kernel, 3), kernel)
    mean, stddev = input_statistics("b0", 4)
    assert mean == get_variant("b0").mean_rgb + get_variant("b0").mean_rgb[:1] and len(stddev) == 4
    assert input_statistics("b0", 1) == (get_variant("b0").mean_rgb, get_variant("b0").stddev_rgb)


@pytest.mark.parametrize("source", ["h5", "tpu"])
def test_six_channel_model_on_two_rgb_copies_equals_the_rgb_model(classifier, classifier_file, source, tmp_path):
    path = classifier_file if source == "h5" else write_tpu_checkpoint(classifier, tmp_path, scope="efficientnet-s")
    model = build_model(SMALL, image_size=64, input_channels=6)
    result = load_weights(model, path)
    assert result.adapted == ("stem_conv",)
    images = random_pixels(64)
    _close(model(np.concatenate([images, images], axis=-1), training=False), classifier(images, training=False))


@pytest.mark.slow
def test_feature_model_under_mirrored_strategy_and_mixed_bfloat16(classifier_file):
    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs the two logical CPU devices from tests/conftest.py")
    strategy = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        with strategy.scope():
            model = build_feature_model(SMALL, image_size=None, batchnorm_group_size=2)
    finally:
        keras.config.set_dtype_policy(previous)
    load_weights(model, classifier_file)  # outside the scope: assigning a mirrored variable sets every replica
    images = tf.constant(random_pixels(32, batch=4))
    dataset = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(images))

    @tf.function
    def step(batch):
        def replica(x):
            with tf.GradientTape() as tape:
                out = model(x, training=True)
                loss = tf.add_n([tf.reduce_mean(tf.cast(v, tf.float32) ** 2) for v in out.values()])
            return loss, tape.gradient(loss, model.trainable_variables), out

        return strategy.run(replica, args=(batch,))

    loss, gradients, out = step(next(iter(dataset)))
    local = strategy.experimental_local_results
    assert all(t.dtype == tf.bfloat16 for t in local(out["reduction_3"]))
    assert [tuple(t.shape) for t in local(out["head_1x1"])] == [(2, 1, 1, SMALL.head_width)] * 2
    assert all(np.isfinite(v.numpy()) for v in local(loss))
    assert all(g is not None for g in gradients)


@pytest.mark.slow
def test_the_readme_example_runs_and_prints_the_shapes_it_shows(capsys):
    readme = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
    with open(readme, encoding="utf-8") as f:
        section = f.read().split("## EfficientNet as a backbone\n", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    shown = ast.literal_eval(
        "".join(line.lstrip("# ") for line in code.splitlines() if line.startswith("# {") or line.startswith("#  '"))
    )
    exec(compile(code, "README.md", "exec"), {})  # pylint: disable=exec-used
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert ast.literal_eval(printed) == shown


def test_input_tensor_as_keras_applications():
    pixels = keras.Input((40, 36, 1), name="pixels")
    scaled = keras.layers.Rescaling(255.0)(pixels)  # layers before the network: the model starts at their input
    ours = build_feature_model(SMALL, input_tensor=scaled)
    assert ours.inputs == [pixels] and tuple(ours.output["reduction_2"].shape[1:3]) == (10, 9)  # ⌈40/4⌉, ⌈36/4⌉
    rgb = keras.Input((40, 36, 3))
    reference = KERAS_APPS["b0"](include_top=False, weights=None, input_tensor=rgb, pooling="avg")
    assert tuple(build_model("b0", input_tensor=rgb, include_top=False, pooling="avg").output.shape) == tuple(
        reference.output.shape
    )
    with pytest.raises(ValueError, match="leave image_size and input_channels out"):
        build_model(SMALL, input_tensor=rgb, image_size=40)
    with pytest.raises(ValueError, match="4-D Keras tensor"):
        build_model(SMALL, input_tensor=np.zeros((1, 8, 8, 3)))
