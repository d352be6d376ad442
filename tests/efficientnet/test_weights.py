"""Tests for efficientnet.weights: parity with Keras Applications through both file layouts, and errors."""

import h5py
import keras
import numpy as np
import pytest

from efficientnet import build_model, load_weights
from efficientnet.loading import CLASSIFIER_LAYERS, weighted_layers
from tests.efficientnet.conftest import keras_reference, random_pixels, write_keras2_h5

# Measured max |softmax difference| per case is printed (run with -s) and recorded in the report.
PARITY_TOLERANCE = 1e-5


def _softmax(logits):
    return keras.ops.softmax(keras.ops.convert_to_tensor(logits)).numpy()


def _check_parity(variant, image_size, tmp_path):
    reference = keras_reference(variant, image_size)
    ours = build_model(variant, image_size=image_size)
    normalization = next(l.name for l in reference.layers if isinstance(l, keras.layers.Normalization))
    assert set(weighted_layers(ours)) == {l.name for l in reference.layers if l.weights} - {normalization}
    x = random_pixels(image_size)
    expected_logits = reference(x, training=False).numpy()
    keras3_file, keras2_file = tmp_path / "ref.weights.h5", tmp_path / "ref_keras2.h5"
    reference.save_weights(keras3_file)
    write_keras2_h5(reference, keras2_file)
    errors, logit_errors = {}, {}
    for label, path in (("keras3", keras3_file), ("keras2", keras2_file)):
        for w in ours.weights:  # scramble, so that the second load is not checked against the first
            w.assign(np.zeros(w.shape, w.dtype))
        result = load_weights(ours, path)
        assert result.ignored == (normalization,) and not result.skipped
        logits = ours(x, training=False).numpy()
        errors[label] = float(np.abs(_softmax(logits) - _softmax(expected_logits)).max())
        logit_errors[label] = float(np.abs(logits - expected_logits).max())
        # Logits too: with random weights softmax can be nearly flat, which would hide differences. A wrong layer
        # gives O(1) relative differences; float32 rounding through b7's 55 blocks reaches ~1e-4.
        np.testing.assert_allclose(logits, expected_logits, rtol=1e-3, atol=1e-3 * np.abs(expected_logits).max())
    print(
        f"parity {variant}@{image_size}: max |softmax diff| {errors}, max |logit diff| {logit_errors}, logits spread "
        f"{np.ptp(expected_logits):.3g}"
    )
    assert max(errors.values()) <= PARITY_TOLERANCE


@pytest.mark.parametrize("variant, image_size", [("b0", 224), ("b4", 380)])
def test_parity_with_keras_applications(variant, image_size, tmp_path):
    # b0 at 224 has only even maps; b4 at 380 has a 95x95 map into a stride-2 5x5 depthwise conv.
    _check_parity(variant, image_size, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("variant", [f"b{i}" for i in range(8)])
def test_parity_all_variants_odd_maps(variant, tmp_path):
    # 129 -> 65 -> 33 -> 17 -> 9 -> 5: every stride-2 conv, stem included, sees an odd input, where explicit
    # padding and "same" padding could disagree. (33 would too, but its 2x2 late maps leave 8 values per BN
    # channel, and the calibrated reference then amplifies float32 rounding to 1e-2 on b7.)
    _check_parity(variant, 129, tmp_path)


@pytest.fixture(scope="module")
def source_file(tmp_path_factory):
    """A Keras 3 weight file of a b0 (the size does not change the weights) and the model that wrote it."""
    model = build_model("b0", image_size=32)
    path = tmp_path_factory.mktemp("weights") / "b0.weights.h5"
    model.save_weights(path)
    return path, model


@pytest.fixture(scope="module")
def target():
    return build_model("b0", image_size=32)


def _snapshot(model):
    return [w.numpy().copy() for w in model.weights]


def _assert_unchanged(model, snapshot):
    for w, before in zip(model.weights, snapshot):
        np.testing.assert_array_equal(w.numpy(), before)


def _copy_without(source, dest, drop_layer=None, reshape_layer=None):
    """Copies a Keras 3 weight file, deleting one layer's vars or replacing its first variable's shape."""
    with h5py.File(source, "r") as src, h5py.File(dest, "w") as dst:
        for key in src:
            src.copy(src[key], dst, name=key)

        def edit(name, obj):
            if name.endswith("/vars") and obj.attrs.get("name") in (drop_layer, reshape_layer):
                return name

        found = dst["layers"].visititems(edit)
        group = dst["layers"][found]
        if group.attrs["name"] == drop_layer:
            for key in list(group):
                del group[key]
        else:
            shape = group["0"].shape
            del group["0"]
            group["0"] = np.zeros(shape[:-1] + (shape[-1] + 8,), "float32")


def test_round_trip_loads_every_layer(source_file, target):
    path, model = source_file
    result = load_weights(target, path)
    assert set(result.loaded) == set(weighted_layers(target)) and not result.skipped and not result.ignored
    for a, b in zip(model.weights, target.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_missing_layer_fails_and_changes_nothing(source_file, target, tmp_path):
    bad = tmp_path / "missing.weights.h5"
    _copy_without(source_file[0], bad, drop_layer="block3b_dwconv")
    snapshot = _snapshot(target)
    with pytest.raises(
        ValueError,
        match=r"layer 'block3b_dwconv' \(expected shapes \[\(5, 5, 240, 1\)\]\) is "
        r"missing",
    ):
        load_weights(target, bad)
    _assert_unchanged(target, snapshot)


def test_wrong_shape_fails_naming_both_shapes_and_changes_nothing(source_file, target, tmp_path):
    bad = tmp_path / "shape.weights.h5"
    _copy_without(source_file[0], bad, reshape_layer="top_conv")
    snapshot = _snapshot(target)
    with pytest.raises(
        ValueError,
        match=r"layer 'top_conv': expected shapes \[\(1, 1, 320, 1280\)\], .* has "
        r"\[\(1, 1, 320, 1288\)\]",
    ):
        load_weights(target, bad)
    _assert_unchanged(target, snapshot)


def test_skip_mismatch_layers_for_a_new_classifier(source_file):
    path, model = source_file
    ten_classes = build_model("b0", image_size=32, num_classes=10)
    classifier_before = ten_classes.get_layer("predictions").kernel.numpy().copy()
    with pytest.raises(ValueError, match="predictions"):
        load_weights(ten_classes, path)
    result = load_weights(ten_classes, path, skip_mismatch_layers=CLASSIFIER_LAYERS)
    assert result.skipped == ("predictions",)
    np.testing.assert_array_equal(ten_classes.get_layer("predictions").kernel.numpy(), classifier_before)
    np.testing.assert_array_equal(
        ten_classes.get_layer("top_bn").moving_variance.numpy(), model.get_layer("top_bn").moving_variance.numpy()
    )


def test_notop_model_ignores_file_classifier(source_file):
    notop = build_model("b0", image_size=32, include_top=False)
    result = load_weights(notop, source_file[0])
    assert result.ignored == ("predictions",)


def test_a_deeper_variants_file_is_refused_naming_its_extra_blocks(target, tmp_path):
    deeper = tmp_path / "b1.weights.h5"
    build_model("b1", image_size=32).save_weights(deeper)  # b0's layers are a subset of b1's, same shapes
    snapshot = _snapshot(target)
    with pytest.raises(
        ValueError,
        match=r"has 54 block layers that 'efficientnet-b0' lacks \(block2c_\w+, .*another "
        r"\(deeper\) variant",
    ):
        load_weights(target, deeper)
    _assert_unchanged(target, snapshot)


def test_unknown_skip_name(source_file, target):
    with pytest.raises(ValueError, match=r"\['predictionz'\]"):
        load_weights(target, source_file[0], skip_mismatch_layers=("predictionz",))


def test_file_errors(target, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.h5"):
        load_weights(target, tmp_path / "nowhere.h5")
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        load_weights(target, text)
    empty = tmp_path / "empty.h5"
    h5py.File(empty, "w").close()
    with pytest.raises(ValueError, match="not a Keras weight file"):
        load_weights(target, empty)
    # Anything that is not .h5 is read as a tensorflow/tpu checkpoint (tests in test_tpu_checkpoint.py).
    with pytest.raises(FileNotFoundError, match=r"model.ckpt-100 \(expected .*model.ckpt-100.index"):
        load_weights(target, tmp_path / "model.ckpt-100")


def test_keras3_bfloat16_datasets_are_read_as_float32(tmp_path):
    from efficientnet.weights import read_h5_weights

    layer = keras.layers.Dense(3, dtype="bfloat16", name="predictions")
    model = keras.Sequential([keras.Input((4,)), layer])
    model.save_weights(tmp_path / "bf16.weights.h5")
    with h5py.File(tmp_path / "bf16.weights.h5", "r") as h5:
        kernel = read_h5_weights(h5)["predictions"][0]
    assert kernel.dtype == np.float32
    np.testing.assert_array_equal(kernel, np.asarray(layer.kernel.numpy(), "float32"))
