"""Regression: data/autoaugment.py (restructured for throughput) against the frozen previous implementation
(tests/data/reference_autoaugment_v1.py), which the PIL and known-value tests in test_autoaugment.py validated.
Every op, several levels (including fractional and extrapolated RandAugment magnitudes), both signs, on images
that exercise the edge cases (non-square, constant, narrow range, one flat channel, photo content); then
whole AutoAugment and RandAugment draws over many seeds. Results must be bit-identical."""
import numpy as np
import pytest

from data import autoaugment as current
from tests.data import reference_autoaugment_v1 as reference

RNG = np.random.default_rng(42)
_Y, _X = np.mgrid[0:37, 0:53]
IMAGES = {
    "random_nonsquare": RNG.integers(0, 256, size=(24, 32, 3), dtype=np.uint8),
    "smooth_photo": np.stack([_Y * 6, _X * 4 + 10, (_X + _Y) * 2 + 30], -1).clip(0, 255).astype(np.uint8),
    "noisy_photo": np.clip(RNG.normal(110, 45, size=(29, 31, 3)), 0, 255).astype(np.uint8),
    "constant": np.full((9, 13, 3), 77, np.uint8),
    "narrow_range": RNG.integers(100, 104, size=(17, 11, 3), dtype=np.uint8),
    "one_flat_channel": np.concatenate([np.full((6, 7, 1), 5, np.uint8),
                                        RNG.integers(0, 256, size=(6, 7, 2), dtype=np.uint8)], -1),
    "two_values": np.where(RNG.random((8, 8, 3)) < 0.9, 255, 3).astype(np.uint8),
}
LEVELS = (0, 1, 3, 5.5, 8, 10, 17)


@pytest.mark.parametrize("name", current.OP_NAMES)
def test_every_op_bit_identical_to_previous_implementation(name):
    for image_name, image in IMAGES.items():
        for level in LEVELS:
            for negate in (False, True):
                got = current.apply_op(image, name, level, negate, seed=(5, 6)).numpy()
                want = reference.apply_op(image, name, level, negate, seed=(5, 6)).numpy()
                np.testing.assert_array_equal(got, want, err_msg=f"{name} level {level} negate {negate} {image_name}")


def test_autoaugment_and_randaugment_bit_identical_to_previous_implementation():
    image = IMAGES["noisy_photo"]
    outputs = set()
    for seed in range(80):  # enough draws to hit every sub-policy and both coin outcomes many times
        got = current.distort_with_autoaugment(image, (seed, 3)).numpy()
        np.testing.assert_array_equal(got, reference.distort_with_autoaugment(image, (seed, 3)).numpy(),
                                      err_msg=f"autoaugment seed {seed}")
        outputs.add(got.tobytes())
    assert len(outputs) > 20  # the draws really differ
    for seed in range(30):
        np.testing.assert_array_equal(current.distort_with_randaugment(image, 2, 9, (seed, 4)).numpy(),
                                      reference.distort_with_randaugment(image, 2, 9, (seed, 4)).numpy(),
                                      err_msg=f"randaugment seed {seed}")
