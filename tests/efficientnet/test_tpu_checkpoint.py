"""Tests for efficientnet.tpu_checkpoint: tensorflow/tpu TF1 checkpoints written with TF1's own naming."""

import dataclasses
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from efficientnet import build_model, get_variant, load_weights
from efficientnet.loading import CLASSIFIER_LAYERS, weighted_layers
from efficientnet.tpu_checkpoint import checkpoint_names, resolve_checkpoint
from efficientnet.variants import StageSpec
from tests.efficientnet.conftest import random_pixels
from tests.efficientnet.tpu_checkpoint_writer import write_tpu_checkpoint

SIZE = 32

# Every block type in one small model: MBConv with and without expansion, with SE (b0's block1a / block2a) and
# without, fused with and without expansion, a "noskip" stage and a residual stage.
MIXED_STAGES = (
    StageSpec(3, 1, 1, 32, 16, 1),  # MBConv e1 + SE
    StageSpec(3, 2, 4, 16, 16, 2, se_ratio=None, fused=True, id_skip=False),  # fused e4, noskip
    StageSpec(3, 1, 1, 16, 16, 2, se_ratio=None, fused=True),  # fused e1 + residual
    StageSpec(5, 2, 6, 16, 24, 2),  # MBConv e6 + SE
    StageSpec(3, 1, 3, 24, 24, 1, se_ratio=None),  # MBConv e3, no SE
)
MIXED = dataclasses.replace(
    get_variant("b0"), name="mixed", stages=MIXED_STAGES, width_coefficient=0.5, head_filters=256, num_classes=10
)


def _randomize(model, seed):
    """Distinct values in every variable (BN statistics included), so a swapped name changes the outputs."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        shape = tuple(w.shape)
        if w.path.endswith(("gamma", "moving_variance")):
            w.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))
        elif w.path.endswith(("beta", "moving_mean", "bias")):
            w.assign(rng.normal(0.0, 0.2, shape).astype("float32"))
        else:
            w.assign((w.numpy() * rng.uniform(0.6, 1.4, shape)).astype("float32"))


def _logits(model):
    return model(random_pixels(SIZE), training=False).numpy()


def _snapshot(model):
    return [w.numpy().copy() for w in model.weights]


def _assert_unchanged(model, snapshot):
    for w, before in zip(model.weights, snapshot):
        np.testing.assert_array_equal(w.numpy(), before)


@pytest.fixture(scope="module", params=["b0-small", "edgetpu-small", "mixed"])
def source(request, tmp_path_factory):
    """(variant, raw model, EMA model, checkpoint prefix): raw values in the variables, EMA values in shadows."""
    base = {"b0-small": get_variant("b0"), "edgetpu-small": get_variant("edgetpu-s"), "mixed": MIXED}[request.param]
    variant = (
        dataclasses.replace(base, width_coefficient=base.width_coefficient * 0.5, depth_coefficient=0.5)
        if request.param != "mixed"
        else base
    )
    raw, ema = build_model(variant, image_size=SIZE), build_model(variant, image_size=SIZE)
    _randomize(raw, 1)
    _randomize(ema, 2)
    prefix = write_tpu_checkpoint(
        raw, tmp_path_factory.mktemp(request.param), ema_model=ema, scope=f"efficientnet-{request.param}"
    )
    return variant, raw, ema, prefix


def test_ema_shadows_win_and_outputs_match(source):
    variant, raw, ema, prefix = source
    fresh = build_model(variant, image_size=SIZE)
    result = load_weights(fresh, prefix)
    assert set(result.loaded) == set(weighted_layers(fresh)) and not result.skipped and not result.ignored
    assert result.from_ema == len(fresh.weights)
    expected = _logits(ema)
    np.testing.assert_allclose(_logits(fresh), expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    assert np.abs(_logits(raw) - expected).max() > 1e-2 * np.abs(expected).max()  # the two sources differ
    for a, b in zip(ema.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_raw_weights_with_use_ema_false(source):
    variant, raw, _, prefix = source
    fresh = build_model(variant, image_size=SIZE)
    assert load_weights(fresh, prefix, use_ema=False).from_ema == 0
    for a, b in zip(raw.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_checkpoint_without_shadows_loads_raw_values(tmp_path):
    model = build_model(MIXED, image_size=SIZE)
    _randomize(model, 3)
    prefix = write_tpu_checkpoint(model, tmp_path, scope="efficientnet-mixed")
    fresh = build_model(MIXED, image_size=SIZE)
    assert load_weights(fresh, prefix).from_ema == 0
    np.testing.assert_allclose(_logits(fresh), _logits(model), rtol=1e-5, atol=1e-6)


def test_directory_prefix_and_index_file_resolve_alike(source):
    _, _, _, prefix = source
    directory = prefix.rsplit("/", 1)[0]
    assert prefix.endswith("model.ckpt-218949")
    assert resolve_checkpoint(directory) == prefix == resolve_checkpoint(prefix + ".index")
    assert resolve_checkpoint(prefix + ".data-00000-of-00001") == prefix


def test_b0_names_follow_tpu_numbering(built):
    # Pins from the TPU naming (docs/recipe.md §2 and the task): blocks_N counts blocks over stages; an
    # expand_ratio 1 block has no expand conv, so its names shift down by one.
    names = {layer: [n for _, n in pairs] for layer, pairs in checkpoint_names(built("b0")).items()}
    assert names["stem_conv"] == ["stem/conv2d/kernel"]
    assert names["block1a_bn"][0] == "blocks_0/tpu_batch_normalization/gamma"
    assert names["block1a_project_conv"] == ["blocks_0/conv2d/kernel"]
    assert names["block1a_project_bn"][3] == "blocks_0/tpu_batch_normalization_1/moving_variance"
    assert names["block2a_expand_conv"] == ["blocks_1/conv2d/kernel"]
    assert names["block2a_dwconv"] == ["blocks_1/depthwise_conv2d/depthwise_kernel"]
    assert names["block2a_bn"][1] == "blocks_1/tpu_batch_normalization_1/beta"
    assert names["block2a_se_reduce"] == ["blocks_1/se/conv2d/kernel", "blocks_1/se/conv2d/bias"]
    assert names["block2a_se_expand"] == ["blocks_1/se/conv2d_1/kernel", "blocks_1/se/conv2d_1/bias"]
    assert names["block2a_project_conv"] == ["blocks_1/conv2d_1/kernel"]
    assert names["block2a_project_bn"][2] == "blocks_1/tpu_batch_normalization_2/moving_mean"
    assert names["block7a_project_conv"] == ["blocks_15/conv2d_1/kernel"]
    assert names["top_bn"][0] == "head/tpu_batch_normalization/gamma"
    assert names["predictions"] == ["head/dense/kernel", "head/dense/bias"]


@pytest.fixture(scope="module")
def mixed_pair(tmp_path_factory):
    """A mixed model with EMA shadows and a fresh target of the same architecture."""
    model = build_model(MIXED, image_size=SIZE)
    _randomize(model, 4)
    return model, build_model(MIXED, image_size=SIZE), tmp_path_factory


def _write(mixed_pair, name, **kwargs):
    model, _, factory = mixed_pair
    return write_tpu_checkpoint(model, factory.mktemp(name), ema_model=model, scope="efficientnet-mixed", **kwargs)


def test_missing_variable_fails_naming_it_and_changes_nothing(mixed_pair):
    target = mixed_pair[1]
    prefix = _write(mixed_pair, "missing", drop={"blocks_5/tpu_batch_normalization_1/moving_mean"})
    snapshot = _snapshot(target)
    with pytest.raises(
        ValueError,
        match=r"nothing was changed: variable 'efficientnet-mixed/blocks_5/"
        r"tpu_batch_normalization_1/moving_mean' \(layer 'block4a_bn', expected "
        r"shape \(48,\)\) is missing",
    ):
        load_weights(target, prefix)
    _assert_unchanged(target, snapshot)


def test_wrong_shape_fails_naming_both_shapes_and_changes_nothing(mixed_pair):
    target = mixed_pair[1]
    expected = tuple(target.get_layer("block2b_expand_conv").kernel.shape)
    bad = np.zeros(expected[:-1] + (expected[-1] + 8,), "float32")
    prefix = _write(mixed_pair, "shape", replace={"blocks_2/conv2d/kernel": bad})
    snapshot = _snapshot(target)
    with pytest.raises(
        ValueError,
        match=rf"variable 'efficientnet-mixed/blocks_2/conv2d/kernel/"
        rf"ExponentialMovingAverage' \(layer 'block2b_expand_conv'\): expected shape "
        rf"{re.escape(str(expected))}, .* has {re.escape(str(bad.shape))}",
    ):
        load_weights(target, prefix)
    _assert_unchanged(target, snapshot)


def test_classifier_mismatch_and_skip(mixed_pair):
    model = mixed_pair[0]
    prefix = _write(mixed_pair, "classes")
    other = build_model(MIXED, image_size=SIZE, num_classes=7)
    classifier_before = other.get_layer("predictions").kernel.numpy().copy()
    with pytest.raises(ValueError, match=r"head/dense/kernel.*expected shape \(128, 7\).* has \(128, 10\)"):
        load_weights(other, prefix)
    result = load_weights(other, prefix, skip_mismatch_layers=CLASSIFIER_LAYERS)
    assert result.skipped == ("predictions",) and set(result.ignored) == {"head/dense/kernel", "head/dense/bias"}
    np.testing.assert_array_equal(other.get_layer("predictions").kernel.numpy(), classifier_before)
    np.testing.assert_array_equal(
        other.get_layer("top_bn").moving_variance.numpy(), model.get_layer("top_bn").moving_variance.numpy()
    )


def test_notop_model_and_notop_checkpoint(mixed_pair):
    model = mixed_pair[0]
    full, notop_file = (
        _write(mixed_pair, "full"),
        _write(mixed_pair, "notop", drop={"head/dense/kernel", "head/dense/bias"}),
    )
    notop = build_model(MIXED, image_size=SIZE, include_top=False)
    assert set(load_weights(notop, full).ignored) == {"head/dense/kernel", "head/dense/bias"}
    result = load_weights(notop, notop_file)
    assert not result.ignored and not result.skipped
    features = keras.Model(model.input, model.get_layer("top_bn").output)
    np.testing.assert_allclose(
        notop(random_pixels(SIZE)).numpy(), features(random_pixels(SIZE)).numpy(), rtol=1e-5, atol=1e-5
    )
    with pytest.raises(ValueError, match=r"head/dense/kernel' \(layer 'predictions'.* is missing"):
        load_weights(build_model(MIXED, image_size=SIZE), notop_file)


def test_other_architecture_is_refused(mixed_pair):
    # Same conv shapes, no SE: the checkpoint's SE weights would be silently dropped.
    prefix = _write(mixed_pair, "with_se")
    no_se = dataclasses.replace(MIXED, stages=tuple(dataclasses.replace(s, se_ratio=None) for s in MIXED_STAGES))
    target = build_model(no_se, image_size=SIZE)
    snapshot = _snapshot(target)
    with pytest.raises(
        ValueError,
        match=r"weights that 'efficientnet-mixed' as built here does not use, e.g. "
        r"'blocks_0/se/conv2d/bias'",
    ):
        load_weights(target, prefix)
    _assert_unchanged(target, snapshot)


def test_path_and_format_errors(mixed_pair, tmp_path):
    target = mixed_pair[1]
    with pytest.raises(FileNotFoundError, match=r"model.ckpt-5 \(expected .*model.ckpt-5.index"):
        load_weights(target, tmp_path / "model.ckpt-5")
    with pytest.raises(FileNotFoundError, match="no checkpoint in directory"):
        load_weights(target, tmp_path)
    tf2 = tf.train.Checkpoint(v=tf.Variable(1.0)).write(str(tmp_path / "tf2" / "ckpt"))
    with pytest.raises(ValueError, match="not a tensorflow/tpu EfficientNet checkpoint"):
        load_weights(target, tf2)
    (tmp_path / "junk.index").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable TF checkpoint"):
        load_weights(target, tmp_path / "junk")
    prefix = _write(mixed_pair, "scope")
    with pytest.raises(ValueError, match=r"variable 'efficientnet-b0/stem/conv2d/kernel'.* is missing"):
        load_weights(target, prefix, scope="efficientnet-b0")
    with pytest.raises(ValueError, match=r"\['predictionz'\]"):
        load_weights(target, prefix, skip_mismatch_layers=("predictionz",))
    with pytest.raises(ValueError, match="applies to TF checkpoints"):
        load_weights(target, tmp_path / "w.h5", scope="efficientnet-b0")


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, scope", [("b0", "efficientnet-b0"), ("edgetpu-s", "efficientnet-edgetpu-S"), ("lite0", "efficientnet-lite0")]
)
def test_full_size_variants_load_from_a_checkpoint_directory(name, scope, tmp_path):
    # The published layouts: full block count (blocks_0..blocks_15 for b0), the real scope names, loaded through
    # the directory's `checkpoint` state file.
    raw, ema = build_model(name, image_size=SIZE), build_model(name, image_size=SIZE)
    _randomize(raw, 5)
    _randomize(ema, 6)
    write_tpu_checkpoint(raw, tmp_path, scope=scope, ema_model=ema)
    fresh = build_model(name, image_size=SIZE)
    result = load_weights(fresh, tmp_path)
    assert result.from_ema == len(fresh.weights) and not result.ignored
    for a, b in zip(ema.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
