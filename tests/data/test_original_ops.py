"""data/autoaugment.py and data/preprocessing.py against the independent port of tensorflow/tpu's pixels
(tests/data/original_port.py): every op at levels 0..10 (AutoAugment constants) and RandAugment magnitudes 10,
17, 23, 28 (RandAugment constants), both signs, on photo-like images; whole AutoAugment/RandAugment draws;
eval preprocessing for several JPEG sizes and both resize kernels; train preprocessing given the same crop
window and flip. Eagerly and inside tf.data. Every comparison is exact (max difference 0)."""

import numpy as np
import pytest
import tensorflow as tf

from data import autoaugment as aa
from data import preprocessing
from tests.data import original_port as port

IMAGES = {"photo_48x64": port.photo_like(48, 64, 1), "photo_37x29": port.photo_like(37, 29, 2)}
AA_LEVELS = tuple(range(11))
RA_MAGNITUDES = (10, 17, 23, 28)
AA_CONSTS = {"translate_const": 250.0, "cutout_const": 100.0}
RA_CONSTS = {"translate_const": 100.0, "cutout_const": 40.0}


def _cases(name):
    """(level, constants, port constants, negative) for one op: levels 0..10 and the RandAugment magnitudes."""
    signs = (False, True) if name in port.SIGNED_OPS else (False,)
    for level in AA_LEVELS:
        for negative in signs:
            yield level, AA_CONSTS, port.AUTOAUGMENT_CONSTS, negative
    for level in RA_MAGNITUDES:
        for negative in signs:
            yield level, RA_CONSTS, port.RANDAUGMENT_CONSTS, negative


def _port_op(image, name, level, consts, negative, seed):
    center = aa.cutout_center(tf.shape(image), tf.cast(seed, tf.int64)).numpy() if name == "Cutout" else None
    return port.apply(image, name, level, negative, consts, center)


def max_difference(a, b):
    return int(np.abs(np.asarray(a).astype(np.int64) - np.asarray(b).astype(np.int64)).max())


@pytest.mark.parametrize("name", aa.OP_NAMES)
def test_each_op_equals_the_original_eagerly(name):
    for image_name, image in IMAGES.items():
        for level, consts, port_consts, negative in _cases(name):
            got = aa.apply_op(image, name, level, negative, seed=(level, 7), **consts).numpy()
            want = _port_op(image, name, level, port_consts, negative, (level, 7))
            assert max_difference(got, want) == 0, f"{name} level {level} negative {negative} {image_name}"


@pytest.mark.slow
def test_each_op_equals_the_original_inside_tf_data():
    image = IMAGES["photo_48x64"]
    cases = [
        (name, level, consts, port_consts, negative)
        for name in aa.OP_NAMES
        for level, consts, port_consts, negative in _cases(name)
        if level in (0, 3, 10, 17, 23, 28)
    ]

    def all_ops(x):
        return [
            aa.apply_op(x, name, level, negative, seed=(level, 7), **consts)
            for name, level, consts, _, negative in cases
        ]

    outputs = next(iter(tf.data.Dataset.from_tensors(image).map(all_ops)))
    for (name, level, _, port_consts, negative), got in zip(cases, outputs):
        want = _port_op(image, name, level, port_consts, negative, (level, 7))
        assert max_difference(got, want) == 0, f"tf.data {name} level {level} negative {negative}"


def test_level_to_arg_is_the_originals_float64_map():
    # int(2.3 * 110) = int(252.99999999999997) = 252 in float64 (float32 arithmetic would give 253).
    assert aa.level_to_arg("SolarizeAdd", 23) == 252 == port.level_to_arg("SolarizeAdd", 23, port.RANDAUGMENT_CONSTS)
    assert aa.level_to_arg("Cutout", 23, cutout_const=100.0) == 229
    assert aa.level_to_arg("Cutout", 23, cutout_const=40.0) == 92
    assert [aa.level_to_arg("Solarize", m) % 256 for m in (10, 17, 28)] == [0, 179, 204]
    assert [aa.level_to_arg("Posterize", m) for m in (10, 17, 23, 28)] == [4, 6, 9, 11]
    for name in aa.OP_NAMES:
        for level in AA_LEVELS + RA_MAGNITUDES + (5.5, 0.3):
            want = port.level_to_arg(name, level, port.RANDAUGMENT_CONSTS)
            assert aa.level_to_arg(name, level, **RA_CONSTS) == (0.0 if want is None else want), (name, level)


def test_tensorflow_converts_python_ints_to_uint8_modulo_256():
    # Where the original's Solarize/Posterize quirks come from: a Python int handed to a uint8 op wraps.
    image = tf.constant([[[0, 100, 255]]], tf.uint8)
    np.testing.assert_array_equal((image < 256).numpy(), [[[False, False, False]]])  # 256 → 0
    np.testing.assert_array_equal(tf.bitwise.right_shift(image, -3).numpy(), [[[0, 0, 1]]])  # 253 → clamped 7


def test_corrected_solarize_and_posterize_are_an_explicit_option():
    image = IMAGES["photo_48x64"]
    np.testing.assert_array_equal(aa.apply_op(image, "Solarize", 10).numpy(), 255 - image)  # the original's
    np.testing.assert_array_equal(aa.apply_op(image, "Solarize", 10, uint8_wraparound=False).numpy(), image)
    np.testing.assert_array_equal(aa.apply_op(image, "Posterize", 28).numpy(), image & 128)
    np.testing.assert_array_equal(aa.apply_op(image, "Posterize", 28, uint8_wraparound=False).numpy(), image)
    np.testing.assert_array_equal(aa.apply_op(image, "Posterize", 0, uint8_wraparound=False).numpy(), image & 128)


def _autoaugment_by_port(image, seed):
    """The original's AutoAugment with the project's draws for `seed` (sub-policy, coins, signs)."""
    draws = tf.random.stateless_uniform([5], seed).numpy()
    choice = min(int(draws[0] * np.float32(25)), 24)
    for slot, (name, prob, level) in enumerate(aa.POLICY_V0[choice]):
        if draws[1 + slot] < np.float32(prob):
            op_seed = tf.random.experimental.stateless_fold_in(seed, slot + 1)
            image = _port_op(image, name, level, port.AUTOAUGMENT_CONSTS, bool(draws[3 + slot] < 0.5), op_seed)
    return image


def _randaugment_by_port(image, num_layers, magnitude, seed):
    for layer in range(num_layers):
        layer_seed = tf.random.experimental.stateless_fold_in(seed, layer + 1)
        draws = tf.random.stateless_uniform([2], layer_seed).numpy()
        name = aa.OP_NAMES[min(int(draws[0] * np.float32(16)), 15)]
        image = _port_op(image, name, float(magnitude), port.RANDAUGMENT_CONSTS, bool(draws[1] < 0.5), layer_seed)
    return image


def test_autoaugment_and_randaugment_draws_equal_the_original():
    image = IMAGES["photo_48x64"]
    applied = set()
    for s in range(40):
        seed = tf.constant([s, 3], tf.int64)
        got = aa.distort_with_autoaugment(image, seed).numpy()
        assert max_difference(got, _autoaugment_by_port(image, seed)) == 0, f"autoaugment seed {s}"
        applied.add(got.tobytes())
    assert len(applied) > 15
    for s, magnitude in zip(range(24), RA_MAGNITUDES * 6):
        seed = tf.constant([s, 4], tf.int64)
        got = aa.distort_with_randaugment(image, 2, magnitude, seed).numpy()
        assert max_difference(got, _randaugment_by_port(image, 2, magnitude, seed)) == 0, f"randaugment {s}"


# ---------------------------------------------------------------------------------------------- preprocessing

JPEGS = {
    "500x375": port.jpeg_bytes(port.photo_like(375, 500, 3)),
    "375x500": port.jpeg_bytes(port.photo_like(500, 375, 4)),
    "224x224": port.jpeg_bytes(port.photo_like(224, 224, 5)),
    "17x9": port.jpeg_bytes(port.photo_like(9, 17, 6)),
    "1200x900": port.jpeg_bytes(port.photo_like(900, 1200, 7)),
    "gray_500x375": port.jpeg_bytes(port.photo_like(375, 500, 8)[:, :, :1]),
}


@pytest.mark.parametrize("method", preprocessing.RESIZE_METHODS)
def test_eval_preprocessing_equals_the_original(method):
    for size in (224, 240):
        for name, data in JPEGS.items():
            got = preprocessing.preprocess_for_eval(tf.constant(data), size, resize_method=method).numpy()
            want = port.preprocess_for_eval(data, size, method)
            assert np.abs(got - want).max() == 0.0, f"{name} at {size} {method}"
    # Not clipped: bicubic overshoot reaches the network, as in the original.
    sharp = port.jpeg_bytes(
        np.kron(np.indices((8, 8)).sum(0) % 2 * 255, np.ones((16, 16)))[:, :, None].astype(np.uint8)
    )
    out = preprocessing.preprocess_for_eval(tf.constant(sharp), 100, resize_method="bicubic").numpy()
    assert out.min() < 0.0 and out.max() > 255.0


@pytest.mark.slow
def test_eval_preprocessing_inside_tf_data_equals_the_original():
    names = list(JPEGS)
    for method in preprocessing.RESIZE_METHODS:
        dataset = tf.data.Dataset.from_tensor_slices([JPEGS[n] for n in names]).map(
            lambda data, m=method: preprocessing.preprocess_for_eval(data, 224, resize_method=m)
        )
        for name, got in zip(names, dataset):
            assert np.abs(got.numpy() - port.preprocess_for_eval(JPEGS[name], 224, method)).max() == 0.0, name


def _port_train(data, size, seed, method, augment_name, magnitude=10):
    """The original's preprocess_for_train given the project's sampled window and flip decision for `seed`."""
    seed = tf.constant(seed, tf.int64)
    crop_seed, flip_seed, augment_seed = [tf.random.experimental.stateless_fold_in(seed, i) for i in range(3)]
    window = preprocessing.sample_crop_window(tf.image.extract_jpeg_shape(data), crop_seed).numpy()
    probe = tf.reshape(tf.range(2), [1, 2, 1])
    flip = bool(tf.image.stateless_random_flip_left_right(probe, flip_seed).numpy()[0, 0, 0] == 1)
    augment = {
        "none": None,
        "autoaugment": lambda x: _autoaugment_by_port(x, augment_seed),
        "randaugment": lambda x: _randaugment_by_port(x, 2, magnitude, augment_seed),
    }[augment_name]
    return port.preprocess_for_train(data, size, window, flip, method, augment)


TRAIN_JPEGS = dict(
    JPEGS,
    strip_60x2=port.jpeg_bytes(port.photo_like(2, 60, 9)),
    gray_strip_60x2=port.jpeg_bytes(port.photo_like(2, 60, 10)[:, :, :1]),
)


@pytest.mark.parametrize("method", preprocessing.RESIZE_METHODS)
def test_train_preprocessing_equals_the_original_given_the_window_and_flip(method):
    cases = [("none", 10), ("autoaugment", 10), ("randaugment", 10), ("randaugment", 28)]
    for name in ("500x375", "gray_500x375", "17x9", "strip_60x2", "gray_strip_60x2"):
        data = TRAIN_JPEGS[name]
        for index, (augment_name, magnitude) in enumerate(cases):
            seed = [index, 11]
            got = preprocessing.preprocess_for_train(
                tf.constant(data),
                64,
                seed,
                augment_name,
                randaugment_num_layers=2,
                randaugment_magnitude=magnitude,
                resize_method=method,
            )
            want = _port_train(data, 64, seed, method, augment_name, magnitude)
            assert np.abs(got.numpy() - want).max() == 0.0, f"{name} {augment_name} {magnitude} {method}"


def test_grayscale_jpeg_never_falls_back_to_the_center_crop():
    # The sampler gives up on a 2×60 strip and returns the whole image: an RGB JPEG falls back to the center
    # crop (resized bicubically even for bilinear variants), a grayscale one keeps the whole image.
    for name, expect_fallback in (("strip_60x2", True), ("gray_strip_60x2", False)):
        shape = tf.image.extract_jpeg_shape(TRAIN_JPEGS[name])
        window = preprocessing.sample_crop_window(shape, tf.constant([0, 1], tf.int64))
        np.testing.assert_array_equal(window.numpy(), [0, 0, 2, 60])
        assert bool(preprocessing.falls_back(shape, tf.constant([2, 60, -1]))) == expect_fallback, name
        _, fallback = preprocessing.random_crop_window(shape, tf.constant([0, 1], tf.int64), 0.875)
        assert bool(fallback) == expect_fallback, name
    bilinear = preprocessing.preprocess_for_train(
        tf.constant(TRAIN_JPEGS["strip_60x2"]), 64, [0, 1], "none", resize_method="bilinear"
    ).numpy()
    center = port.preprocess_for_eval(TRAIN_JPEGS["strip_60x2"], 64, "bicubic")
    assert np.abs(bilinear - center).max() == 0.0 or np.abs(bilinear - center[:, ::-1]).max() == 0.0


@pytest.mark.slow
def test_train_preprocessing_inside_tf_data_equals_the_original():
    names = ["500x375", "gray_500x375", "strip_60x2"]
    for augment_name in ("none", "randaugment"):
        dataset = tf.data.Dataset.from_tensor_slices([TRAIN_JPEGS[n] for n in names]).map(
            lambda data, a=augment_name: preprocessing.preprocess_for_train(
                data, 64, [5, 6], a, randaugment_num_layers=2, randaugment_magnitude=17, resize_method="bilinear"
            )
        )
        for name, got in zip(names, dataset):
            want = _port_train(TRAIN_JPEGS[name], 64, [5, 6], "bilinear", augment_name, 17)
            assert np.abs(got.numpy() - want).max() == 0.0, f"tf.data {name} {augment_name}"


def _kernel_sources(transform, height, width):
    """The transform kernel's own choice of source pixel: ImageProjectiveTransformV3 (the kernel behind the
    original's tf.contrib.image.transform), NEAREST, on an image whose values are the positions 1..h·w."""
    positions = np.arange(1, height * width + 1, dtype=np.int32).reshape(1, height, width, 1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=positions,
        transforms=tf.reshape(tf.constant(transform, tf.float32), [1, 8]),
        output_shape=[height, width],
        fill_value=0.0,
        interpolation="NEAREST",
        fill_mode="CONSTANT",
    ).numpy()[0, :, :, 0]


def _policy_transforms(height, width):
    """Every transform Rotate, ShearX and ShearY give at levels 0..30 in steps of 0.5 (AutoAugment's 0..10 and
    RandAugment's magnitudes), both signs, and translations by fractional pixels (_translate's kernel path)."""
    for level in np.arange(0.0, 30.5, 0.5):
        for sign in (1.0, -1.0):
            degrees = sign * np.float32(aa.level_to_arg("Rotate", level))
            yield aa.rotate_transform(tf.constant(degrees, tf.float32), height, width).numpy()
            shear = sign * np.float32(aa.level_to_arg("ShearX", level))
            yield np.array([1, shear, 0, 0, 1, 0, 0, 0], np.float32)
            yield np.array([1, 0, 0, shear, 1, 0, 0, 0], np.float32)
            yield np.array([1, 0, sign * (level * 7.3 + 0.5), 0, 1, sign * level * 2.1, 0, 0], np.float32)


@pytest.mark.parametrize("height, width", [(224, 224), (299, 331), (17, 600)])
def test_transform_sources_equal_the_kernels_for_every_policy_transform(height, width):
    rng = np.random.default_rng(height)
    linear, shifts = rng.uniform(-1.5, 1.5, (40, 2, 2)), rng.uniform(-50.0, 50.0, (40, 2, 1))
    # Rows [a0 a1 a2], [b0 b1 b2], then c0 = c1 = 0.
    random_affine = np.pad(np.concatenate([linear, shifts], -1).reshape(40, 6), [[0, 0], [0, 2]]).astype(np.float32)
    for transform in [*_policy_transforms(height, width), *random_affine]:
        got = aa.transform_sources(tf.constant(transform), height, width).numpy()
        np.testing.assert_array_equal(got, _kernel_sources(transform, height, width), err_msg=str(transform))
