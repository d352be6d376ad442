"""Tests for data/autoaugment.py: every op eagerly and in tf.data, known values, PIL where PIL is the oracle.
Exact equality with the original's ops is tested in test_original_ops.py."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageEnhance, ImageOps

from data import autoaugment as aa

RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)  # non-square catches height/width mix-ups


def test_op_names_and_policy_tables():
    assert len(aa.OP_NAMES) == 16 and len(set(aa.OP_NAMES)) == 16
    assert len(aa.POLICY_V0) == 25
    for sub_policy in aa.POLICY_V0:
        assert len(sub_policy) == 2
        for name, prob, level in sub_policy:
            assert name in aa.OP_NAMES and 0.0 <= prob <= 1.0 and 0 <= level <= 10


@pytest.mark.parametrize("name", aa.OP_NAMES)
def test_each_op_eager_shape_dtype(name):
    for level in (0, 5, 10):
        out = aa.apply_op(IMAGE, name, level, negate=level == 5, seed=(3, 4))
        assert out.dtype == tf.uint8 and out.shape == IMAGE.shape
        again = aa.apply_op(IMAGE, name, level, negate=level == 5, seed=(3, 4))
        np.testing.assert_array_equal(out.numpy(), again.numpy())  # deterministic given its arguments


@pytest.mark.slow
def test_every_op_inside_tf_data_matches_eager():
    def all_ops(image):
        return {name: aa.apply_op(image, name, 7, negate=True, seed=(1, 2)) for name in aa.OP_NAMES}

    graph_out = next(iter(tf.data.Dataset.from_tensors(IMAGE).map(all_ops)))
    for name in aa.OP_NAMES:
        eager = aa.apply_op(IMAGE, name, 7, negate=True, seed=(1, 2))
        np.testing.assert_array_equal(graph_out[name].numpy(), eager.numpy(), err_msg=name)


def test_invert_solarize_posterize_known_values():
    values = np.array([0, 1, 63, 64, 127, 128, 200, 255], np.uint8)
    image = np.tile(values[None, :, None], (2, 1, 3))
    invert = aa.apply_op(image, "Invert", 3).numpy()[0, :, 0]
    np.testing.assert_array_equal(invert, [255, 254, 192, 191, 128, 127, 55, 0])
    # Level 5 → threshold int(0.5·256) = 128: values >= 128 are inverted.
    solarize = aa.apply_op(image, "Solarize", 5).numpy()[0, :, 0]
    np.testing.assert_array_equal(solarize, [0, 1, 63, 64, 127, 127, 55, 0])
    # Level 10 → threshold 256, which the original's uint8 comparison wraps to 0: everything inverted, like
    # level 0; the corrected option inverts nothing.
    np.testing.assert_array_equal(aa.apply_op(image, "Solarize", 10).numpy(), 255 - image)
    np.testing.assert_array_equal(aa.apply_op(image, "Solarize", 10, uint8_wraparound=False).numpy(), image)
    np.testing.assert_array_equal(aa.apply_op(image, "Solarize", 0).numpy(), 255 - image)
    # Level 5 → int(0.5·4) = 2 bits kept.
    posterize = aa.apply_op(image, "Posterize", 5).numpy()[0, :, 0]
    np.testing.assert_array_equal(posterize, [0, 0, 0, 64, 64, 128, 192, 192])
    # Level 0 → 0 bits: TF clamps the uint8 shift of 8 to 7, so the top bit survives (tensorflow/tpu on TF).
    np.testing.assert_array_equal(aa.apply_op(image, "Posterize", 0).numpy()[0, :, 0], [0, 0, 0, 0, 0, 128, 128, 128])
    # SolarizeAdd level 10 → +110 below 128, saturating.
    added = aa.apply_op(image, "SolarizeAdd", 10).numpy()[0, :, 0]
    np.testing.assert_array_equal(added, [110, 111, 173, 174, 237, 128, 200, 255])


def test_rotate_zero_is_identity_and_ninety_matches_numpy():
    np.testing.assert_array_equal(aa.apply_op(IMAGE, "Rotate", 0).numpy(), IMAGE)
    square = RNG.integers(0, 256, size=(9, 9, 3), dtype=np.uint8)
    # Level 30 → 90° counter-clockwise (as displayed, rows downwards), like np.rot90 with k=1.
    np.testing.assert_array_equal(aa.apply_op(square, "Rotate", 30).numpy(), np.rot90(square, k=1))
    np.testing.assert_array_equal(aa.apply_op(square, "Rotate", 30, negate=True).numpy(), np.rot90(square, k=-1))


def test_translate_and_shear_conventions_with_fill_128():
    # TranslateX by +4 px moves the content left and fills the right edge with 128 (tensorflow/tpu).
    out = aa.apply_op(IMAGE, "TranslateX", 10, translate_const=4).numpy()
    np.testing.assert_array_equal(out[:, :-4], IMAGE[:, 4:])
    assert (out[:, -4:] == 128).all()
    out = aa.apply_op(IMAGE, "TranslateY", 10, negate=True, translate_const=3).numpy()
    np.testing.assert_array_equal(out[3:], IMAGE[:-3])
    assert (out[:3] == 128).all()
    # ShearX level 0 is the identity; at level 10 row y is shifted by round(0.3·y).
    np.testing.assert_array_equal(aa.apply_op(IMAGE, "ShearX", 0).numpy(), IMAGE)
    sheared = aa.apply_op(IMAGE, "ShearX", 10).numpy()
    np.testing.assert_array_equal(sheared[10, :20], IMAGE[10, 3:23])


def test_equalize_constant_image_unchanged_and_matches_pil():
    constant = np.full((8, 8, 3), 77, np.uint8)
    np.testing.assert_array_equal(aa.apply_op(constant, "Equalize", 5).numpy(), constant)
    photo = np.clip(RNG.normal(100, 30, size=(40, 50, 3)), 0, 255).astype(np.uint8)
    expected = np.asarray(ImageOps.equalize(Image.fromarray(photo)))
    np.testing.assert_array_equal(aa.apply_op(photo, "Equalize", 5).numpy(), expected)


def test_autocontrast_matches_pil():
    low_contrast = RNG.integers(60, 140, size=(16, 16, 3), dtype=np.uint8)
    expected = np.asarray(ImageOps.autocontrast(Image.fromarray(low_contrast)))
    np.testing.assert_allclose(aa.apply_op(low_contrast, "AutoContrast", 5).numpy(), expected, atol=1)


@pytest.mark.parametrize(
    "name,enhancer",
    [("Color", ImageEnhance.Color), ("Brightness", ImageEnhance.Brightness), ("Sharpness", ImageEnhance.Sharpness)],
)
def test_enhance_ops_match_pil_within_rounding(name, enhancer):
    level = 3  # factor 0.3·1.8 + 0.1 = 0.64
    expected = np.asarray(enhancer(Image.fromarray(IMAGE)).enhance(0.64)).astype(int)
    got = aa.apply_op(IMAGE, name, level).numpy().astype(int)
    assert np.abs(got - expected).max() <= 2, name  # PIL rounds, tensorflow/tpu truncates


def test_contrast_uses_tpu_grey_level():
    # tensorflow/tpu blends with min(h·w/256, 255) (here 24·32/256 = 3), not the mean intensity.
    factor = 0.64
    expected = np.clip(3.0 + factor * (IMAGE.astype(np.float32) - 3.0), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(aa.apply_op(IMAGE, "Contrast", 3).numpy(), expected)


def test_cutout_fills_a_square_with_128():
    image = np.zeros((40, 40, 3), np.uint8)
    out = aa.apply_op(image, "Cutout", 1, cutout_const=50, seed=(7, 8)).numpy()  # half size int(0.1·50) = 5
    rows, cols = np.nonzero(out[:, :, 0] == 128)
    assert 0 < len(rows) <= 100
    assert rows.max() - rows.min() < 10 and cols.max() - cols.min() < 10


SEEDS = [[0, 0], [7, 8], [-3, 2**40 + 7], [2**62, -(2**61)], [-1, -1], [123456789, 42]]


def _host_draws(seed):
    """The host path's draws for one int64 seed [2]: (uniform [5], fold_in 1 and 2, cutout centre on 300×400)."""
    return (
        aa.uniform(seed, 5, portable=False),
        aa.fold_in(seed, 1, portable=False),
        aa.fold_in(seed, 2, portable=False),
        aa.cutout_center(tf.constant([300, 400]), seed, portable=False),
    )


def test_host_draws_equal_tensorflows_philox_eagerly_and_in_tf_data():
    # The host takes the Philox key from one kernel instead of TensorFlow's spelled-out scrambling; every number
    # must stay the one TensorFlow's alg="philox" functions (and the portable path, which the device runs) give.
    seeds = tf.constant(SEEDS, tf.int64)
    traced = tf.data.Dataset.from_tensor_slices(seeds).map(_host_draws)
    for seed, in_graph in zip(seeds, traced):
        expected = (
            tf.random.stateless_uniform([5], seed, alg="philox"),
            tf.random.experimental.stateless_fold_in(seed, 1, alg="philox"),
            tf.random.experimental.stateless_fold_in(seed, 2, alg="philox"),
            tf.random.stateless_uniform([2], seed, 0, 2**31 - 1, tf.int32, alg="philox") % [300, 400],
        )
        portable = (aa.uniform(seed, 5), aa.fold_in(seed, 1), aa.fold_in(seed, 2), aa.cutout_center([300, 400], seed))
        for got in (_host_draws(seed), in_graph, portable):
            for value, want in zip(got, expected):
                np.testing.assert_array_equal(value.numpy(), want.numpy())


def test_autoaugment_and_randaugment_deterministic_and_varied():
    outputs = []
    for seed in range(12):
        out = aa.distort_with_autoaugment(IMAGE, (seed, 1))
        again = aa.distort_with_autoaugment(IMAGE, (seed, 1))
        np.testing.assert_array_equal(out.numpy(), again.numpy())
        outputs.append(out.numpy())
    assert len({o.tobytes() for o in outputs}) > 3
    ra = [aa.distort_with_randaugment(IMAGE, 2, 10, (s, 2)).numpy() for s in range(6)]
    assert all(o.shape == IMAGE.shape and o.dtype == np.uint8 for o in ra)
    assert len({o.tobytes() for o in ra}) > 2


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown augmentation op 'Blur'"):
        aa.apply_op(IMAGE, "Blur", 3)
    with pytest.raises(ValueError, match="uint8"):
        aa.apply_op(IMAGE.astype(np.float32), "Invert", 3)
    with pytest.raises(ValueError, match="level must be a Python number >= 0"):
        aa.apply_op(IMAGE, "Rotate", -1)
    with pytest.raises(ValueError, match="level must be a Python number >= 0"):
        aa.apply_op(IMAGE, "Rotate", tf.constant(3.0))
    with pytest.raises(ValueError, match="magnitude must be a Python number >= 0"):
        aa.distort_with_randaugment(IMAGE, 2, -1, (0, 0))
    with pytest.raises(ValueError, match="num_layers"):
        aa.distort_with_randaugment(IMAGE, -1, 10, (0, 0))
