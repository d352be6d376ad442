"""The fused training-mode BatchNorm of BatchNormActivation against Keras' own BatchNormalization (the oracle):
outputs, moving statistics (Keras averages the biased batch variance) and gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from efficientnet import blocks


def _pair(channels, seed):
    rng = np.random.default_rng(seed)
    ours = blocks.BatchNormActivation(activation=None)
    oracle = keras.layers.BatchNormalization(momentum=blocks.BATCH_NORM_MOMENTUM, epsilon=blocks.BATCH_NORM_EPSILON)
    for layer in (ours, oracle):
        layer.build((None, 3, 3, channels))
    values = {
        "gamma": rng.uniform(0.5, 1.5, channels),
        "beta": rng.uniform(-1, 1, channels),
        "moving_mean": rng.uniform(-1, 1, channels),
        "moving_variance": rng.uniform(0.5, 2, channels),
    }
    for name, value in values.items():
        getattr(ours, name).assign(value.astype("float32"))
        getattr(oracle, name).assign(value.astype("float32"))
    return ours, oracle


@pytest.mark.parametrize("shape", [(4, 7, 5, 6), (2, 1, 1, 3)])
def test_fused_training_step_matches_keras_batchnorm(shape):
    ours, oracle = _pair(shape[-1], seed=1)
    x = tf.constant(np.random.default_rng(2).standard_normal(shape).astype("float32") * 3.0 + 1.0)
    weights = tf.constant(np.random.default_rng(3).standard_normal(shape).astype("float32"))
    grads = []
    for layer in (ours, oracle):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * weights)
        grads.append(tape.gradient(loss, [x, layer.gamma, layer.beta]))
        layer.outputs_for_test = y.numpy()
    np.testing.assert_allclose(ours.outputs_for_test, oracle.outputs_for_test, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.moving_mean.numpy(), oracle.moving_mean.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ours.moving_variance.numpy(), oracle.moving_variance.numpy(), rtol=1e-6, atol=1e-7)
    for a, b in zip(*grads):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)  # gradients are O(1) here


def test_training_graph_uses_the_fused_kernel():
    ours, _ = _pair(4, seed=0)
    graph = (
        tf.function(lambda x: ours(x, training=True))
        .get_concrete_function(tf.TensorSpec((2, 3, 3, 4), tf.float32))
        .graph
    )
    assert "FusedBatchNormV3" in {op.type for op in graph.get_operations()}
