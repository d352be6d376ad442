"""Tests for data/preprocessing.py: crop geometry, encoded vs decoded inputs, ranges, seeds, errors."""
import numpy as np
import pytest
import tensorflow as tf

from data import autoaugment
from data import preprocessing

RNG = np.random.default_rng(1)
# Smooth content so JPEG round trips stay close to the original pixels.
_Y, _X = np.mgrid[0:60, 0:80]
PHOTO = np.stack([_Y * 4, _X * 3, (_X + _Y) * 2], axis=-1).clip(0, 255).astype(np.uint8)


def test_center_crop_window_matches_reference_arithmetic():
    # REFERENCE.md §3: side = int(fraction·min(h, w)), offsets ((h − side) + 1) // 2; 224/(224+32) = 0.875.
    window = preprocessing.center_crop_window(tf.constant([375, 500, 3]), 224 / 256).numpy()
    side = int(0.875 * 375)  # 328
    np.testing.assert_array_equal(window, [(375 - side + 1) // 2, (500 - side + 1) // 2, side, side])
    assert preprocessing.default_crop_fraction(224) == 0.875
    assert abs(preprocessing.default_crop_fraction(600) - 600 / 632) < 1e-12


def test_random_crop_window_stays_inside_with_reference_ranges():
    shape = tf.constant([375, 500, 3])
    areas, ratios = [], []
    for seed in range(40):
        top, left, height, width = preprocessing.random_crop_window(shape, tf.constant([seed, 9]), 0.875).numpy()
        assert top >= 0 and left >= 0 and top + height <= 375 and left + width <= 500
        areas.append(height * width / (375 * 500))
        ratios.append(width / height)
    assert min(areas) >= 0.08 - 0.01 and max(areas) <= 1.0
    assert min(ratios) >= 0.75 - 0.02 and max(ratios) <= 4 / 3 + 0.02
    assert len(set(areas)) > 20  # really random across seeds


def test_random_crop_falls_back_to_center_crop_when_sampler_gives_up():
    # A 2×60 strip: no window of aspect 3/4..4/3 covers ≥ 8% of it, so the sampler returns the whole image.
    shape = tf.constant([2, 60, 3])
    window = preprocessing.random_crop_window(shape, tf.constant([1, 2]), 0.5).numpy()
    np.testing.assert_array_equal(window, preprocessing.center_crop_window(shape, 0.5).numpy())


def test_eval_on_uint8_matches_crop_then_bicubic():
    out = preprocessing.preprocess_for_eval(PHOTO, 32, crop_fraction=0.5)
    side = int(0.5 * 60)
    top, left = (60 - side + 1) // 2, (80 - side + 1) // 2
    expected = tf.image.resize(PHOTO[top:top + side, left:left + side], [32, 32], method="bicubic")
    np.testing.assert_allclose(out.numpy(), np.clip(expected.numpy(), 0, 255), atol=1e-4)
    assert out.dtype == tf.float32 and out.shape == (32, 32, 3)


def test_eval_accepts_jpeg_and_png_bytes():
    decoded = preprocessing.preprocess_for_eval(PHOTO, 24).numpy()
    png = tf.io.encode_png(PHOTO)
    np.testing.assert_allclose(preprocessing.preprocess_for_eval(png, 24).numpy(), decoded, atol=1e-4)
    jpeg = tf.io.encode_jpeg(PHOTO, quality=100)
    from_jpeg = preprocessing.preprocess_for_eval(jpeg, 24).numpy()
    assert np.abs(from_jpeg - decoded).mean() < 3.0  # lossy codec, same geometry


def test_train_output_range_shape_and_seed_determinism():
    jpeg = tf.io.encode_jpeg(PHOTO)
    for augment in preprocessing.AUGMENT_NAMES:
        first = preprocessing.preprocess_for_train(jpeg, 28, tf.constant([5, 6]), augment_name=augment)
        again = preprocessing.preprocess_for_train(jpeg, 28, tf.constant([5, 6]), augment_name=augment)
        assert first.dtype == tf.float32 and first.shape == (28, 28, 3)
        assert float(tf.reduce_min(first)) >= 0.0 and float(tf.reduce_max(first)) <= 255.0
        np.testing.assert_array_equal(first.numpy(), again.numpy())
    crops = {preprocessing.preprocess_for_train(PHOTO, 28, tf.constant([s, 0]), augment_name="none")
             .numpy().tobytes() for s in range(6)}
    assert len(crops) > 4


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(ValueError, match="augment_name must be one of autoaugment, randaugment, none"):
        preprocessing.preprocess_for_train(PHOTO, 28, tf.constant([0, 0]), augment_name="mixup")
    with pytest.raises(ValueError, match="crop_fraction must be in"):
        preprocessing.preprocess_for_eval(PHOTO, 28, crop_fraction=1.5)
    with pytest.raises(ValueError, match="image_size must be a positive int"):
        preprocessing.preprocess_for_eval(PHOTO, 0)
    with pytest.raises(ValueError, match="uint8"):
        preprocessing.preprocess_for_eval(PHOTO.astype(np.float32), 28)


def test_train_augmented_path_equals_flip_before_rounding():
    # preprocess_for_train flips after the uint8 rounding (cheaper); it must equal the reference order
    # resize → clip → flip (float) → round → augment, composed here from the public pieces.
    jpeg = tf.io.encode_jpeg(PHOTO)
    for index in range(6):
        seed = tf.constant([index, 3], tf.int64)
        crop_seed, flip_seed, augment_seed = [tf.random.experimental.stateless_fold_in(seed, i) for i in range(3)]
        cropped = preprocessing.decode_and_crop(
            jpeg, lambda shape: preprocessing.random_crop_window(shape, crop_seed, preprocessing.default_crop_fraction(28)))
        resized = tf.clip_by_value(tf.image.resize(cropped, [28, 28], method="bicubic"), 0.0, 255.0)
        flipped = tf.image.stateless_random_flip_left_right(resized, flip_seed)
        expected = autoaugment.distort_with_autoaugment(tf.cast(tf.round(flipped), tf.uint8), augment_seed)
        got = preprocessing.preprocess_for_train(jpeg, 28, seed, augment_name="autoaugment")
        np.testing.assert_array_equal(got.numpy(), tf.cast(expected, tf.float32).numpy())
