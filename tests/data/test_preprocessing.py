"""Tests for data/preprocessing.py: crop geometry, encoded vs decoded inputs, ranges, seeds, errors."""

import numpy as np
import pytest
import tensorflow as tf

from data import autoaugment, preprocessing
from tests.data.conftest import png_bomb

RNG = np.random.default_rng(1)
# Smooth content so JPEG round trips stay close to the original pixels.
_Y, _X = np.mgrid[0:60, 0:80]
PHOTO = np.stack([_Y * 4, _X * 3, (_X + _Y) * 2], axis=-1).clip(0, 255).astype(np.uint8)


def test_center_crop_window_matches_reference_arithmetic():
    # tensorflow/tpu _decode_and_center_crop: side = int(fraction·min(h, w)), offsets ((h − side) + 1) // 2.
    window = preprocessing.center_crop_window(tf.constant([375, 500, 3]), 224 / 256).numpy()
    side = int(0.875 * 375)  # 328
    np.testing.assert_array_equal(window, [(375 - side + 1) // 2, (500 - side + 1) // 2, side, side])
    assert preprocessing.default_crop_fraction(224) == 0.875
    assert abs(preprocessing.default_crop_fraction(600) - 600 / 632) < 1e-12


def test_random_crop_window_stays_inside_with_reference_ranges():
    shape = tf.constant([375, 500, 3])
    areas, ratios = [], []
    for seed in range(40):
        window, fallback = preprocessing.random_crop_window(shape, tf.constant([seed, 9]), 0.875)
        top, left, height, width = window.numpy()
        assert not fallback
        assert top >= 0 and left >= 0 and top + height <= 375 and left + width <= 500
        areas.append(height * width / (375 * 500))
        ratios.append(width / height)
    assert min(areas) >= 0.08 - 0.01 and max(areas) <= 1.0
    assert min(ratios) >= 0.75 - 0.02 and max(ratios) <= 4 / 3 + 0.02
    assert len(set(areas)) > 20  # really random across seeds


def test_random_crop_falls_back_to_center_crop_when_sampler_gives_up():
    # A 2×60 strip: no window of aspect 3/4..4/3 covers ≥ 8% of it, so the sampler returns the whole image.
    shape = tf.constant([2, 60, 3])
    window, fallback = preprocessing.random_crop_window(shape, tf.constant([1, 2]), 0.5)
    np.testing.assert_array_equal(window.numpy(), preprocessing.center_crop_window(shape, 0.5).numpy())
    assert fallback


def test_crop_ranges_are_arguments():
    shape = tf.constant([375, 500, 3])
    for seed in range(10):
        window = preprocessing.sample_crop_window(
            shape, tf.constant([seed, 1]), area_range=(0.5, 0.6), aspect_ratio_range=(1.0, 1.0)
        ).numpy()
        assert 0.5 - 0.01 <= window[2] * window[3] / (375 * 500) <= 0.6 + 0.01
        assert abs(window[3] / window[2] - 1.0) < 0.02
    with pytest.raises(ValueError, match="area_range must satisfy"):
        preprocessing.preprocess_for_train(PHOTO, 28, tf.constant([0, 0]), "none", area_range=(0.5, 1.5))
    with pytest.raises(ValueError, match="aspect_ratio_range must be a pair"):
        preprocessing.preprocess_for_train(PHOTO, 28, tf.constant([0, 0]), "none", aspect_ratio_range=0.75)


def test_eval_on_uint8_matches_crop_then_compat_v1_resize():
    side = int(0.5 * 60)
    top, left = (60 - side + 1) // 2, (80 - side + 1) // 2
    crop = PHOTO[None, top : top + side, left : left + side]
    for method, oracle in (
        ("bicubic", tf.compat.v1.image.resize_bicubic),
        ("bilinear", tf.compat.v1.image.resize_bilinear),
    ):
        out = preprocessing.preprocess_for_eval(PHOTO, 32, crop_fraction=0.5, resize_method=method)
        np.testing.assert_array_equal(out.numpy(), oracle(crop, [32, 32])[0].numpy())
        assert out.dtype == tf.float32 and out.shape == (32, 32, 3)
    with pytest.raises(ValueError, match="resize_method must be one of bicubic, bilinear"):
        preprocessing.preprocess_for_eval(PHOTO, 32, resize_method="area")


def test_eval_accepts_jpeg_and_png_bytes():
    decoded = preprocessing.preprocess_for_eval(PHOTO, 24).numpy()
    png = tf.io.encode_png(PHOTO)
    np.testing.assert_array_equal(preprocessing.preprocess_for_eval(png, 24).numpy(), decoded)
    jpeg = tf.io.encode_jpeg(PHOTO, quality=100)
    from_jpeg = preprocessing.preprocess_for_eval(jpeg, 24).numpy()
    assert np.abs(from_jpeg - decoded).mean() < 3.0  # lossy codec, same geometry


def test_train_output_range_shape_and_seed_determinism():
    jpeg = tf.io.encode_jpeg(PHOTO)
    for augment in preprocessing.AUGMENT_NAMES:
        first, again = (
            preprocessing.preprocess_for_train(
                jpeg, 28, tf.constant([5, 6]), augment_name=augment, randaugment_num_layers=2, randaugment_magnitude=10
            )
            for _ in range(2)
        )
        assert first.dtype == tf.float32 and first.shape == (28, 28, 3)
        if augment != "none":  # augmented pixels are whole numbers in [0, 255]; "none" is not clipped
            assert float(tf.reduce_min(first)) >= 0.0 and float(tf.reduce_max(first)) <= 255.0
            np.testing.assert_array_equal(first.numpy(), np.floor(first.numpy()))
        np.testing.assert_array_equal(first.numpy(), again.numpy())
    crops = {
        preprocessing.preprocess_for_train(PHOTO, 28, tf.constant([s, 0]), augment_name="none").numpy().tobytes()
        for s in range(6)
    }
    assert len(crops) > 4


@pytest.mark.parametrize("seed", [[0, 0], [5, 6], [-3, 2**40 + 7], [2**62, -(2**61)]])
def test_derived_seeds_equal_tensorflows_fold_in(seed):
    # One random draw instead of three: it must give exactly what TensorFlow's own fold_in gives, for the
    # pipeline's int64 seeds (seed, position) and int32 ones.
    for dtype in (tf.int64, tf.int32) if max(abs(v) for v in seed) < 2**31 else (tf.int64,):
        parent = tf.constant(seed, dtype)
        expected = [tf.random.experimental.stateless_fold_in(parent, i).numpy() for i in range(3)]
        got = [derived.numpy() for derived in preprocessing.derived_seeds(parent, 3)]
        np.testing.assert_array_equal(got, expected)


def test_random_flip_equals_tensorflows_stateless_flip_eagerly_and_in_tf_data():
    # The pipeline's flip leaves out the public function's wrapping; every decision must stay TensorFlow's.
    image = tf.constant(PHOTO[:4, :5])
    seeds = tf.constant([[index * 7919 - 40, 2**33 + index] for index in range(64)], tf.int64)
    decisions = []
    for seed in seeds:
        expected = tf.image.stateless_random_flip_left_right(image, seed)
        np.testing.assert_array_equal(preprocessing.random_flip(image, seed).numpy(), expected.numpy())
        decisions.append(not np.array_equal(expected.numpy(), PHOTO[:4, :5]))
    assert 16 < sum(decisions) < 48  # both outcomes occur
    traced = tf.data.Dataset.from_tensor_slices(seeds).map(lambda seed: preprocessing.random_flip(image, seed))
    for seed, got in zip(seeds, traced):
        np.testing.assert_array_equal(got.numpy(), tf.image.stateless_random_flip_left_right(image, seed).numpy())


def test_random_crop_window_in_a_graph_falls_back_only_when_the_sampler_gives_up():
    # In a graph the center window is a branch taken only on fallback (data/branches.py); both sides must give
    # what eager execution gives.
    shapes = tf.constant([[2, 60, 3], [375, 500, 3], [2, 60, 1], [80, 90, 3]])
    windows = tf.data.Dataset.from_tensor_slices(shapes).map(
        lambda shape: preprocessing.random_crop_window(shape, tf.constant([1, 2]), 0.5)
    )
    fallbacks = []
    for shape, (window, fallback) in zip(shapes, windows):
        eager_window, eager_fallback = preprocessing.random_crop_window(shape, tf.constant([1, 2]), 0.5)
        np.testing.assert_array_equal(window.numpy(), eager_window.numpy())
        assert bool(fallback) == bool(eager_fallback)
        fallbacks.append(bool(fallback))
    assert fallbacks[0] and not fallbacks[1] and not fallbacks[2]  # the strip falls back, grayscale never does


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(ValueError, match="augment_name must be one of autoaugment, randaugment, none"):
        preprocessing.preprocess_for_train(PHOTO, 28, tf.constant([0, 0]), augment_name="mixup")
    with pytest.raises(ValueError, match="crop_fraction must be in"):
        preprocessing.preprocess_for_eval(PHOTO, 28, crop_fraction=1.5)
    with pytest.raises(ValueError, match="image_size must be a positive int"):
        preprocessing.preprocess_for_eval(PHOTO, 0)
    with pytest.raises(ValueError, match="uint8"):
        preprocessing.preprocess_for_eval(PHOTO.astype(np.float32), 28)


def test_train_augmented_path_equals_flip_before_truncation():
    # preprocess_for_train flips after the uint8 cast (cheaper); it must equal the original's order
    # resize → flip (float) → clip → truncate → augment, composed here from the public pieces.
    jpeg = tf.io.encode_jpeg(PHOTO)
    for index in range(6):
        seed = tf.constant([index, 3], tf.int64)
        crop_seed, flip_seed, augment_seed = [tf.random.experimental.stateless_fold_in(seed, i) for i in range(3)]
        cropped, _ = preprocessing.decode_and_crop(
            jpeg,
            lambda shape, crop_seed=crop_seed: preprocessing.random_crop_window(
                shape, crop_seed, preprocessing.default_crop_fraction(28)
            ),
        )
        resized = tf.compat.v1.image.resize_bicubic(cropped[None], [28, 28])[0]
        flipped = tf.image.stateless_random_flip_left_right(resized, flip_seed)
        truncated = tf.cast(tf.clip_by_value(flipped, 0.0, 255.0), tf.uint8)
        expected = autoaugment.distort_with_autoaugment(truncated, augment_seed)
        got = preprocessing.preprocess_for_train(jpeg, 28, seed, augment_name="autoaugment")
        np.testing.assert_array_equal(got.numpy(), tf.cast(expected, tf.float32).numpy())


def test_a_decompression_bomb_fails_before_decoding_and_small_images_pass():
    bomb = png_bomb(20_000)  # 400 megapixels
    assert len(bomb) < 2_000_000
    with pytest.raises(tf.errors.InvalidArgumentError, match="exceeds the pixel limit of 100,000,000"):
        preprocessing.preprocess_for_eval(tf.constant(bomb), 32)
    small = tf.io.encode_png(tf.zeros([7, 5, 3], tf.uint8))
    assert int(preprocessing.header_pixels(small)) == 35
    assert preprocessing.preprocess_for_eval(small, 32).shape == (32, 32, 3)


@pytest.mark.parametrize(
    "header, pixels",
    [
        (b"GIF89a" + (30_000).to_bytes(2, "little") + (20_000).to_bytes(2, "little"), 600_000_000),
        (b"BM" + bytes(16) + (12_000).to_bytes(4, "little") + (-9_000).to_bytes(4, "little", signed=True), 108_000_000),
        (b"not an image", 0),
        (b"", 0),
    ],
)
def test_header_pixels_read_gif_and_bmp_headers_without_decoding(header, pixels):
    assert int(preprocessing.header_pixels(tf.constant(header + bytes(8)))) == pixels
