"""Mixup (data/mixup.py) against the original's formula (tensorflow/tpu imagenet_input.py mixup), eagerly and in
tf.data, and the weights' distribution against Beta(alpha, alpha) folded onto [0.5, 1]."""

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

from data import mixup
from training.core.recipe import recipe_input_settings


def original_mixup(images, labels, weights):
    """The original's blend, in numpy: each example with the mirrored one of the same batch, images and one-hot
    labels alike (mix_weight already max(w, 1 - w))."""
    w = weights.reshape(-1, 1)
    return (
        images * w.reshape(-1, 1, 1, 1) + images[::-1] * (1 - w.reshape(-1, 1, 1, 1)),
        labels * w + labels[::-1] * (1 - w),
    )


def test_blend_equals_the_original_formula_eagerly_and_in_tf_data():
    rng = np.random.RandomState(0)
    images = rng.uniform(0, 255, (5, 4, 3, 3)).astype("float32")
    labels = np.eye(4, dtype="float32")[[0, 1, 2, 3, 1]]
    weights = rng.uniform(0.5, 1, 5).astype("float32")
    want_images, want_labels = original_mixup(images, labels, weights)
    got_images, got_labels = mixup.mix_batch(tf.constant(images), tf.constant(labels), tf.constant(weights))
    np.testing.assert_allclose(got_images.numpy(), want_images, rtol=1e-6)
    np.testing.assert_allclose(got_labels.numpy(), want_labels, rtol=1e-6)
    np.testing.assert_allclose(got_labels.numpy().sum(axis=1), 1, rtol=1e-6)  # still distributions
    dataset = tf.data.Dataset.from_tensors((images, labels, weights)).map(mixup.mix_batch)
    in_data_images, in_data_labels = next(iter(dataset))
    np.testing.assert_allclose(in_data_images.numpy(), want_images, rtol=1e-6)
    np.testing.assert_allclose(in_data_labels.numpy(), want_labels, rtol=1e-6)


def test_blend_compiles_with_xla():
    images, labels = tf.random.uniform((4, 8, 8, 3)), tf.one_hot([0, 1, 2, 0], 3)
    weights = tf.constant([0.5, 0.9, 1.0, 0.7])
    eager = mixup.mix_batch(images, labels, weights)
    compiled = tf.function(mixup.mix_batch, jit_compile=True)(images, labels, weights)
    for a, b in zip(eager, compiled):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-4)


def _folded_beta_cdf(x, alpha, steps=200_000):
    """P(max(B, 1 - B) <= x) = P(1 - x <= B <= x) for B ~ Beta(alpha, alpha), x in [0.5, 1): midpoint quadrature
    of the pdf over [1 - x, x], where it has no singularity."""
    log_norm = math.lgamma(2 * alpha) - 2 * math.lgamma(alpha)
    edges = np.linspace(1 - x, x, steps + 1)
    mid = (edges[:-1] + edges[1:]) / 2
    pdf = np.exp(log_norm + (alpha - 1) * (np.log(mid) + np.log1p(-mid)))
    return float(np.sum(pdf) * ((2 * x - 1) / steps))


@pytest.mark.parametrize("alpha", [0.2, 1.0])
def test_weights_follow_the_folded_beta_distribution(alpha):
    seeds = tf.stack([tf.fill([4000], tf.constant(7, tf.int64)), tf.range(4000, dtype=tf.int64)], axis=1)
    draws = tf.data.Dataset.from_tensor_slices(seeds).map(lambda s: mixup.mix_weight(s, alpha)).batch(4000)
    weights = next(iter(draws)).numpy()
    assert weights.min() >= 0.5 and weights.max() <= 1.0
    for x in (0.6, 0.75, 0.9, 0.99):  # 4,000 draws: the empirical CDF within 0.03 of the exact one (~4 sigma)
        assert abs(np.mean(weights <= x) - _folded_beta_cdf(x, alpha)) < 0.03, x
    # The draw is a function of the seed: the same seed gives the same weight, another seed another.
    again = mixup.mix_weight(seeds[3], alpha).numpy()
    assert again == weights[3] and mixup.mix_weight(seeds[4], alpha).numpy() != again


def test_bad_alpha_is_refused():
    for alpha in (-0.1, float("nan"), float("inf"), True, "0.2"):
        with pytest.raises(ValueError, match="mixup_alpha must be a finite number >= 0"):
            mixup.check_alpha(alpha)
    with pytest.raises(ValueError, match="needs mixup_alpha > 0"):
        mixup.mix_weight(tf.constant([1, 2], tf.int64), 0.0)


def test_the_train_step_trains_on_the_blended_batch_of_the_pipeline(tmp_path):
    """The pipeline's weights and the step's inputs: training/steps.step_inputs on a real pipeline batch equals
    the original's blend of that batch's images and one-hot labels with those weights."""
    from data import pipeline, sources
    from training.core import steps

    source = sources.get_source()
    batch = next(
        iter(
            pipeline.make_dataset(
                source,
                "train",
                recipe_input_settings(32, True, augment_name="none", mixup_alpha=0.4),
                batch_size=6,
                seed=3,
            )
        )
    )
    weights = batch["mixup_weights"].numpy()
    assert weights.shape == (6,) and weights.min() >= 0.5 and len(set(weights.tolist())) == 6
    cfg = steps.StepConfig(
        num_classes=source.num_classes,
        global_batch_size=6,
        label_smoothing=0.1,
        weight_decay=1e-5,
        jit_compile=False,
        augment_on_device=False,
        augment_name="none",
        randaugment_num_layers=2,
        randaugment_magnitude=10,
        mixup=True,
    )
    images, labels = steps.step_inputs(batch, cfg)
    onehot = np.eye(source.num_classes, dtype="float32")[batch["labels"].numpy()]
    want_images, want_labels = original_mixup(batch["images"].numpy(), onehot, weights)
    np.testing.assert_allclose(images.numpy(), want_images, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(labels.numpy(), want_labels, rtol=1e-6)
    unmixed = steps.step_inputs(batch, dataclasses.replace(cfg, mixup=False))
    np.testing.assert_array_equal(unmixed[1].numpy(), batch["labels"].numpy())
