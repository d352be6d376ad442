"""data/device_augment.py: the batched augmentation equals the host path image by image, on the same seeds."""
import numpy as np
import pytest
import tensorflow as tf

from data import autoaugment, device_augment, pipeline, preprocessing, sources

SIZE = 16
BATCH = 12


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    images = tf.constant(rng.integers(0, 256, size=(BATCH, SIZE, SIZE, 3)), tf.uint8)
    seeds = tf.constant(rng.integers(0, 2**31, size=(BATCH, 2)), tf.int64)
    return images, seeds


def _host(images, seeds, name, layers=2, magnitude=10):
    return np.stack([preprocessing.augment(image, seed, name, layers, magnitude).numpy()
                     for image, seed in zip(images, seeds)])


@pytest.mark.parametrize("name, layers, magnitude", [("autoaugment", 2, 10), ("randaugment", 2, 10),
                                                     ("randaugment", 3, 5), ("randaugment", 1, 0)])
def test_batch_equals_host_path_eagerly_and_in_a_graph(name, layers, magnitude):
    images, seeds = _batch(layers + magnitude)
    expected = _host(images, seeds, name, layers, magnitude)
    eager = device_augment.augment_batch(images, seeds, name, layers, magnitude).numpy()
    graph = tf.function(lambda i, s: device_augment.augment_batch(i, s, name, layers, magnitude))(images, seeds)
    np.testing.assert_array_equal(eager, expected)
    np.testing.assert_array_equal(graph.numpy(), expected)
    assert not np.array_equal(expected, images.numpy())  # the augmentation did something


def test_every_op_and_level_through_the_batched_path():
    """RandAugment with one layer applies the op its seed draws: seeds chosen so that every op of OP_NAMES is
    drawn in the batch, at several magnitudes; each image equals the host path's."""
    rng = np.random.default_rng(5)
    images = tf.constant(rng.integers(0, 256, size=(64, SIZE, SIZE, 3)), tf.uint8)
    seeds = tf.constant(rng.integers(0, 2**31, size=(64, 2)), tf.int64)
    drawn = {int(tf.minimum(tf.cast(tf.random.stateless_uniform(
        [2], tf.random.experimental.stateless_fold_in(seed, 1))[0] * 16, tf.int32), 15)) for seed in seeds}
    assert drawn == set(range(len(autoaugment.OP_NAMES)))
    batched = tf.function(lambda i, s, m: device_augment.augment_batch(i, s, "randaugment", 1, m))
    for magnitude in (0, 3, 7, 10):
        np.testing.assert_array_equal(batched(images, seeds, magnitude).numpy(),
                                      _host(images, seeds, "randaugment", 1, magnitude))


@pytest.mark.xfail(strict=True, reason="Rotate/Shear (ImageProjectiveTransformV3), Translate/Cutout (dynamic "
                   "shapes) do not compile with XLA; see data/device_augment.py")
def test_batch_compiles_with_xla_and_equals_host_path():
    images, seeds = _batch(1)
    compiled = tf.function(lambda i, s: device_augment.augment_batch(i, s, "autoaugment"), jit_compile=True)
    np.testing.assert_array_equal(compiled(images, seeds).numpy(), _host(images, seeds, "autoaugment"))


def test_pipeline_ships_the_augmentation_input_and_seeds(id_tfrecord_dir):
    """augment_on_device: the host ships uint8 + seeds; augmenting them gives the host-augmented batch."""
    source = sources.get_source(data_dir=id_tfrecord_dir, holdout_shards=1)
    common = dict(batch_size=6, image_size=SIZE, training=True, seed=4, deterministic=True, shuffle_buffer=8,
                  augment_name="autoaugment")
    host = next(iter(pipeline.make_dataset(source, "train", **common)))
    device = next(iter(pipeline.make_dataset(source, "train", augment_on_device=True, **common)))
    assert device["images"].dtype == tf.uint8 and device["augment_seeds"].shape == (6, 2)
    np.testing.assert_array_equal(device["labels"].numpy(), host["labels"].numpy())
    augmented = device_augment.augment_batch(device["images"], device["augment_seeds"], "autoaugment")
    np.testing.assert_array_equal(augmented.numpy(), host["images"].numpy())


def test_bad_inputs_and_tpu_refusal():
    with pytest.raises(ValueError, match="expects uint8"):
        device_augment.augment_batch(tf.zeros([2, SIZE, SIZE, 3]), tf.zeros([2, 2], tf.int64), "autoaugment")
    with pytest.raises(ValueError, match="not available on TPU"):
        device_augment.check_supported(on_tpu=True)
    device_augment.check_supported(on_tpu=False)
