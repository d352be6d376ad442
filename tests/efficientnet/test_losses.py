"""Tests for efficientnet.losses against Keras/TF1 cross-entropy and tf.nn.l2_loss oracles."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from efficientnet import losses

NUM_CLASSES = 5


def _batch(seed=0, batch=6):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((batch, NUM_CLASSES)) * 4).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, batch).astype(np.int32)
    return labels, logits


def _small_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((6, 6, 3)),
            keras.layers.Conv2D(4, 3, use_bias=True),
            keras.layers.BatchNormalization(),
            keras.layers.Conv2D(4, 1, use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(NUM_CLASSES),
        ]
    )


@pytest.mark.parametrize("smoothing", [0.1, 0.0, 0.3])
def test_matches_keras_and_tf1_cross_entropy(smoothing):
    labels, logits = _batch()
    ours = losses.classification_loss(labels, logits, NUM_CLASSES, label_smoothing=smoothing)
    assert ours.dtype == tf.float32 and ours.shape == (6,)
    onehot = tf.one_hot(labels, NUM_CLASSES)
    keras_loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing, reduction=None)(
        onehot, logits
    )
    tf1_loss = tf.compat.v1.losses.softmax_cross_entropy(
        onehot, logits, label_smoothing=smoothing, reduction=tf.compat.v1.losses.Reduction.NONE
    )
    np.testing.assert_allclose(ours.numpy(), keras_loss.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.numpy(), tf1_loss.numpy(), rtol=1e-5, atol=1e-6)


def test_default_smoothing_is_01_by_hand():
    """Two classes, logits (0, 0): target (0.95, 0.05), log-softmax ln 0.5 for both -> ln 2."""
    loss = losses.classification_loss([0], [[0.0, 0.0]], 2)
    assert float(loss[0]) == pytest.approx(np.log(2.0), rel=1e-6)
    # Confident and right: 4 wrong classes × 0.02 target × ~20 nats ≈ 1.6 smoothed, ~0 plain.
    logits = np.full((1, NUM_CLASSES), -10.0, np.float32)
    logits[0, 2] = 10.0
    smoothed = float(losses.classification_loss([2], logits, NUM_CLASSES)[0])
    plain = float(losses.classification_loss([2], logits, NUM_CLASSES, label_smoothing=0.0)[0])
    assert plain < 1e-6 and smoothed > 1.0


def test_bfloat16_logits_are_computed_in_float32():
    labels, logits = _batch(seed=1)
    low = tf.cast(logits, tf.bfloat16)
    ours = losses.classification_loss(labels, low, NUM_CLASSES)
    assert ours.dtype == tf.float32
    reference = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1, reduction=None)(
        tf.one_hot(labels, NUM_CLASSES), tf.cast(low, tf.float32)
    )
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=1e-5, atol=1e-6)


def test_soft_labels_are_smoothed_too():
    labels, logits = _batch(seed=2)
    rng = np.random.default_rng(3)
    soft = rng.random((6, NUM_CLASSES)).astype(np.float32)
    soft /= soft.sum(axis=1, keepdims=True)
    ours = losses.classification_loss(soft, logits, NUM_CLASSES)
    reference = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1, reduction=None)(
        soft, logits
    )
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=1e-5, atol=1e-6)


def test_weight_decay_variables_exclude_batchnorm_only():
    model = _small_model()
    chosen = losses.weight_decay_variables(model)
    expected = [v for v in model.trainable_variables if "batch_normalization" not in v.path]
    assert [id(v) for v in chosen] == [id(v) for v in expected]
    names = sorted(v.path.split("/")[-1] for v in chosen)
    assert names == ["bias", "bias", "kernel", "kernel", "kernel"]  # conv + dense biases kept
    assert len(model.trainable_variables) - len(chosen) == 4  # two BN gamma/beta pairs


def test_l2_loss_matches_tf_nn_l2_loss_and_numpy():
    model = _small_model()
    chosen = losses.weight_decay_variables(model)
    ours = losses.l2_loss(chosen, 1e-5)
    assert ours.dtype == tf.float32
    oracle = 1e-5 * tf.add_n([tf.nn.l2_loss(v) for v in chosen])
    by_hand = 1e-5 * sum(0.5 * np.sum(np.square(v.numpy().astype(np.float64))) for v in chosen)
    assert float(ours) == pytest.approx(float(oracle), rel=1e-6)
    assert float(ours) == pytest.approx(by_hand, rel=1e-6)
    assert float(ours) > 0


def test_l2_loss_of_bfloat16_values_accumulates_in_float32():
    values = [tf.constant(np.full((1000,), 0.01, np.float32), tf.bfloat16)]
    exact = 0.5 * 1000 * float(tf.cast(values[0][0], tf.float32)) ** 2
    assert float(losses.l2_loss(values, 1.0)) == pytest.approx(exact, rel=1e-6)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: losses.classification_loss([0, 5], np.zeros((2, 5), np.float32), 5), "label 5"),
        (lambda: losses.classification_loss([-1], np.zeros((1, 5), np.float32), 5), "label -1"),
        (lambda: losses.classification_loss([0], np.zeros((1, 4), np.float32), 5), "logits"),
        (lambda: losses.classification_loss([0], np.zeros((1, 5), np.float32), 1), "num_classes"),
        (lambda: losses.classification_loss([0], np.zeros((1, 5), np.float32), 5, 1.0), "label_smoothing"),
        (lambda: losses.classification_loss([[0]], np.zeros((1, 5), np.float32), 5), "labels"),
        (lambda: losses.l2_loss([tf.ones(2)], -1e-5), "weight_decay"),
        (lambda: losses.l2_loss([], 1e-5), "non-empty"),
        (lambda: losses.weight_decay_variables(keras.Sequential([keras.layers.Dense(2)])), "no variables"),
    ],
)
def test_bad_input_raises_one_line_errors(make, match):
    with pytest.raises(ValueError, match=match) as info:
        make()
    assert "\n" not in str(info.value)
