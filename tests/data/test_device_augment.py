"""data/device_augment.py: the batched augmentation equals the host path (data/autoaugment.py) image by image, on
the same seeds, eagerly and compiled with XLA (the TPU's compiler; here on CPU)."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from data import autoaugment, device_augment, pipeline, preprocessing, sources
from training.core.recipe import recipe_input_settings

HEIGHT, WIDTH = 24, 32  # not square: a swapped axis shows
LEVELS = (0, 1, 2, 3, 5, 7, 8, 9, 10, 9.5, 17, 23, 28)  # 9.5: fractional translations; 17-28: RandAugment's


def _photo_like(rng, count, height, width):
    """Half smooth gradients with noise (narrow histograms: AutoContrast and Equalize act), half uniform noise."""
    images = rng.integers(0, 256, size=(count, height, width, 3))
    rows, cols = np.mgrid[0:height, 0:width]
    ramp = np.stack([cols * 200 // width + 20, rows * 150 // height + 50, (rows + cols) * 60 // (height + width)], -1)
    images[::2] = np.clip(ramp + rng.integers(0, 40, size=(len(images[::2]), height, width, 3)), 0, 255)
    return images.astype(np.uint8)


@pytest.fixture(scope="module")
def every_op():
    """Image i gets entry i: every op at every level of LEVELS with both signs, plus "not applied"."""
    entries = [
        (name, level, negate) for name in autoaugment.OP_NAMES for level in LEVELS for negate in (False, True)
    ] + [(device_augment.IDENTITY, 0, False)]
    rng = np.random.default_rng(0)
    images = _photo_like(rng, len(entries), HEIGHT, WIDTH)
    seeds = rng.integers(-(2**40), 2**40, size=(len(entries), 2))
    centers = np.stack([autoaugment.cutout_center([HEIGHT, WIDTH], tf.constant(s, tf.int64)).numpy() for s in seeds])
    return entries, images, seeds, centers.astype(np.int32)


def _host_ops(entries, images, seeds, hparams, uint8_wraparound=True):
    return np.stack(
        [
            image
            if name is None
            else autoaugment.apply_op(
                image, name, level, negate, seed=seed, uint8_wraparound=uint8_wraparound, **hparams
            ).numpy()
            for (name, level, negate), image, seed in zip(entries, images, seeds)
        ]
    )


def _mismatches(got, expected, entries):
    return sorted(
        {
            f"{name} level {level} negate {negate}: {int(np.sum(g != e))} values"
            for (name, level, negate), g, e in zip(entries, got, expected)
            if not np.array_equal(g, e)
        }
    )


@pytest.mark.parametrize(
    "hparams",
    [autoaugment.AUTOAUGMENT_HPARAMS, autoaugment.RANDAUGMENT_HPARAMS],
    ids=["autoaugment_consts", "randaugment_consts"],
)
def test_every_op_level_and_sign_equals_the_host_op_eagerly_and_under_xla(every_op, hparams):
    entries, images, seeds, centers = every_op
    expected = _host_ops(entries, images, seeds, hparams)
    cands = device_augment.compile_candidates(entries, HEIGHT, WIDTH, hparams)
    index = np.arange(len(entries), dtype=np.int32)
    eager = device_augment.apply_candidates(tf.constant(images), index, centers, cands).numpy()
    assert _mismatches(eager, expected, entries) == []
    compiled = tf.function(lambda i, x, c: device_augment.apply_candidates(i, x, c, cands), jit_compile=True)
    assert _mismatches(compiled(images, index, centers).numpy(), expected, entries) == []
    changed = {name for (name, level, _), e, i in zip(entries, expected, images) if not np.array_equal(e, i)}
    assert changed == set(autoaugment.OP_NAMES)  # every op did something somewhere: the comparison has teeth


def test_intended_solarize_and_posterize_without_the_wraparound(every_op):
    entries, images, seeds, centers = every_op
    picked = [i for i, (name, _, _) in enumerate(entries) if name in ("Solarize", "Posterize")]
    entries, images, seeds, centers = [entries[i] for i in picked], images[picked], seeds[picked], centers[picked]
    hparams = autoaugment.RANDAUGMENT_HPARAMS
    cands = device_augment.compile_candidates(entries, HEIGHT, WIDTH, hparams, uint8_wraparound=False)
    got = device_augment.apply_candidates(
        tf.constant(images), np.arange(len(entries), dtype=np.int32), centers, cands
    ).numpy()
    expected = _host_ops(entries, images, seeds, hparams, uint8_wraparound=False)
    assert _mismatches(got, expected, entries) == []
    assert not np.array_equal(expected, _host_ops(entries, images, seeds, hparams))


def _host(images, seeds, name, layers, magnitude):
    return np.stack(
        [preprocessing.augment(image, seed, name, layers, magnitude).numpy() for image, seed in zip(images, seeds)]
    )


@pytest.mark.parametrize(
    "name, layers, magnitude, size",
    [
        ("autoaugment", 2, 10, 40),
        ("randaugment", 2, 10, 40),
        ("randaugment", 3, 28, 40),
        ("randaugment", 1, 0, 40),
        ("randaugment", 2, 17.5, 40),
        ("autoaugment", 2, 10, 224),
        ("randaugment", 2, 10, 7),
    ],
)  # 7²·3 < 256 values
def test_policy_batch_equals_host_path_eagerly_and_under_xla(name, layers, magnitude, size):
    rng = np.random.default_rng(size + layers)
    count = 64 if size < 100 else 12
    images, seeds = _photo_like(rng, count, size, size), rng.integers(-(2**40), 2**40, size=(count, 2))
    expected = _host(images, seeds, name, layers, magnitude)
    eager = device_augment.augment_batch(images, seeds, name, layers, magnitude).numpy()
    np.testing.assert_array_equal(eager, expected)
    compiled = tf.function(lambda i, s: device_augment.augment_batch(i, s, name, layers, magnitude), jit_compile=True)
    np.testing.assert_array_equal(compiled(images, seeds).numpy(), expected)
    if magnitude > 0:
        assert np.mean(np.any(expected != images, axis=(1, 2, 3))) > 0.5  # most images changed


def test_random_draws_are_tensorflows_and_xla_draws_the_same():
    """autoaugment.uniform is tf.random.stateless_uniform bit for bit, and it, fold_in and cutout_center give
    the same numbers compiled with XLA (XLA's own float32 stateless_uniform does not)."""
    seeds = tf.constant(np.random.default_rng(3).integers(-(2**62), 2**62, size=(64, 2)), tf.int64)

    def draws(seed):
        folded = autoaugment.fold_in(seed, 2)
        return autoaugment.uniform(seed, 5), folded, autoaugment.cutout_center([224, 200], folded)

    compiled = tf.function(draws, jit_compile=True)
    for seed in seeds:
        np.testing.assert_array_equal(autoaugment.uniform(seed, 5), tf.random.stateless_uniform([5], seed))
        for mine, xla in zip(draws(seed), compiled(seed)):
            np.testing.assert_array_equal(mine, xla)


def test_pipeline_ships_the_augmentation_input_and_seeds(id_tfrecord_dir):
    """augment_on_device: the host ships uint8 + seeds; augmenting them gives the host-augmented batch."""
    source = sources.get_source(data_dir=id_tfrecord_dir, holdout_shards=1)
    settings = recipe_input_settings(16, True, deterministic=True, shuffle_buffer=8, augment_name="autoaugment")
    host = next(iter(pipeline.make_dataset(source, "train", settings, batch_size=6, seed=4)))
    on_device = dataclasses.replace(settings, augment_on_device=True)
    device = next(iter(pipeline.make_dataset(source, "train", on_device, batch_size=6, seed=4)))
    assert device["images"].dtype == tf.uint8 and device["augment_seeds"].shape == (6, 2)
    np.testing.assert_array_equal(device["labels"].numpy(), host["labels"].numpy())
    augmented = device_augment.finish_batch(device["images"], device["augment_seeds"], "autoaugment")
    np.testing.assert_array_equal(augmented.numpy(), host["images"].numpy())


def test_flip_batch_flips_as_the_host_eagerly_and_under_xla():
    """The flip left to the step: each image flipped exactly when preprocessing.random_flip, with the flip seed
    train_crop derives next to the augmentation seed, flips it on the host."""
    rng = np.random.default_rng(5)
    images = _photo_like(rng, 64, HEIGHT, WIDTH)
    keys = rng.integers(-(2**31), 2**31, size=64)
    crop_seeds = [preprocessing.derived_seeds(tf.constant([key, 7], tf.int64), 3) for key in keys]
    augment_seeds = tf.constant([seeds[2].numpy() for seeds in crop_seeds], tf.int64)
    expected = np.stack(
        [preprocessing.random_flip(image, seeds[1]).numpy() for image, seeds in zip(images, crop_seeds)]
    )
    assert 10 < np.sum(np.any(expected != images, axis=(1, 2, 3))) < 54  # both decisions occur
    np.testing.assert_array_equal(device_augment.flip_batch(images, augment_seeds).numpy(), expected)
    compiled = tf.function(device_augment.flip_batch, jit_compile=True)
    np.testing.assert_array_equal(compiled(images, augment_seeds).numpy(), expected)


def test_bad_inputs():
    seeds = tf.zeros([2, 2], tf.int64)
    with pytest.raises(ValueError, match="expects uint8"):
        device_augment.augment_batch(tf.zeros([2, 16, 16, 3]), seeds, "autoaugment")
    with pytest.raises(ValueError, match="static height and width"):
        tf.function(lambda i: device_augment.augment_batch(i, seeds, "autoaugment")).get_concrete_function(
            tf.TensorSpec([2, None, None, 3], tf.uint8)
        )
    with pytest.raises(ValueError, match="autoaugment or randaugment"):
        device_augment.augment_batch(tf.zeros([2, 16, 16, 3], tf.uint8), seeds, "none")
    with pytest.raises(ValueError, match="num_layers"):
        device_augment.augment_batch(tf.zeros([2, 16, 16, 3], tf.uint8), seeds, "randaugment", -1)
