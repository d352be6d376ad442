"""BatchNorm over replica groups (efficientnet/blocks.py group_moments, tensorflow/tpu utils.py
TpuBatchNormalization) on 4 and 8 logical CPU devices under MirroredStrategy, in a child process each
(tests/efficientnet/batchnorm_groups_child.py). Oracles: numpy statistics over each group's examples; the
gradient of the same network on one device, one group's examples at a time (a group is one BatchNorm batch);
Keras' synchronized BatchNormalization for the all-replicas extreme."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from efficientnet import blocks
from tests.efficientnet import batchnorm_groups_child as groups

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EPSILON = 1e-3


def _run_child(replicas, tmp_path):
    out = tmp_path / f"groups_{replicas}.npz"
    run = subprocess.run(
        [sys.executable, "-m", "tests.efficientnet.batchnorm_groups_child", str(replicas), str(out)],
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return np.load(out)


@pytest.fixture(scope="module", params=[4, 8], ids=["4_replicas", "8_replicas"])
def child(request, tmp_path_factory):
    return request.param, _run_child(request.param, tmp_path_factory.mktemp("bn"))


def _numpy_group_stats(x, replicas, group):
    """Mean and E[x²] − E[x]² over the examples of each group, float64, one row per group."""
    groups = x.reshape(replicas // group, -1, x.shape[-1]).astype(np.float64)
    mean = groups.mean(axis=1)
    return mean, (groups**2).mean(axis=1) - mean**2


@pytest.mark.slow
def test_group_statistics_equal_numpy_over_the_groups_examples(child):
    replicas, results = child
    x, _ = groups.inputs(replicas)
    per_replica = len(x) // replicas
    for g in groups.group_sizes(replicas):
        mean, variance = _numpy_group_stats(x, replicas, g)
        examples_per_group = per_replica * g
        expected = np.concatenate(
            [
                (x[i * examples_per_group : (i + 1) * examples_per_group] - mean[i]) / np.sqrt(variance[i] + EPSILON)
                for i in range(len(mean))
            ]
        )
        np.testing.assert_allclose(results[f"out_{g}"], expected, rtol=1e-4, atol=1e-4, err_msg=f"group {g}")
        # Each replica keeps the moving statistics of its own group; the checkpoint holds replica 0's (group 0),
        # as TPU replicas kept theirs.
        np.testing.assert_allclose(results[f"moving_mean_{g}"], 0.01 * mean[0], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(results[f"moving_variance_{g}"], 0.99 + 0.01 * variance[0], rtol=1e-5)
        replica_group = np.arange(replicas) // g
        moments = results[f"xla_moments_{g}"]  # [replica, (mean, variance), channel], compiled by XLA
        np.testing.assert_allclose(moments[:, 0], mean[replica_group], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(moments[:, 1], variance[replica_group], rtol=1e-4, atol=1e-5)
    assert not np.allclose(results["out_1"], results[f"out_{replicas}"], atol=1e-2)  # the groups matter here


def _one_device_gradient(replicas, group):
    """Sum over groups of the gradient on one device of the same network on that group's examples (one batch)."""
    x, y = groups.inputs(replicas)
    model = groups.make_model(1)
    size = len(x) // (replicas // group)
    total = 0.0
    for start in range(0, len(x), size):
        with tf.GradientTape() as tape:
            loss = groups.loss_fn(y[start : start + size], model(x[start : start + size], training=True), len(x))
        total = total + np.concatenate([g.numpy().ravel() for g in tape.gradient(loss, model.trainable_variables)])
    return total


@pytest.mark.slow
def test_training_gradients_equal_one_batch_per_group_and_keras_sync_at_the_extreme(child):
    replicas, results = child
    for g in groups.group_sizes(replicas):
        np.testing.assert_allclose(
            results[f"grads_{g}"], _one_device_gradient(replicas, g), rtol=2e-4, atol=2e-5, err_msg=f"group {g}"
        )
    np.testing.assert_allclose(results[f"grads_{replicas}"], results["grads_keras_sync"], rtol=2e-4, atol=2e-5)
    assert not np.allclose(results["grads_1"], results[f"grads_{replicas}"], atol=1e-4)


def test_group_size_must_divide_the_replicas():
    strategy = tf.distribute.get_strategy()
    assert strategy.num_replicas_in_sync == 1  # one replica: local moments whatever the group size
    x = tf.constant(groups.inputs(1)[0])
    mean, variance = blocks.group_moments(x, [0, 1, 2], 8)
    np.testing.assert_allclose(mean.numpy(), x.numpy().mean(axis=(0, 1, 2)), rtol=1e-5)
    with pytest.raises(ValueError, match="positive int"):
        blocks.BatchNormActivation(group_size=0)


def test_groups_under_a_bfloat16_policy_compute_float32_statistics():
    """mixed_bfloat16 (the TPU policy): the layer's statistics are float32 over the group; the output is bfloat16."""
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        pytest.skip("needs the two logical CPU devices configured in tests/conftest.py")
    x, _ = groups.inputs(2)
    strategy = tf.distribute.MirroredStrategy([d.name for d in devices[:2]])
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        with strategy.scope():
            layer = blocks.BatchNormActivation(group_size=2)
            layer.build((None, *x.shape[1:]))
        values = strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(x[ctx.replica_id_in_sync_group * 2 :][:2], tf.bfloat16)
        )
        out = strategy.run(tf.function(lambda v: layer(v, training=True)), args=(values,))
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)
    results = strategy.experimental_local_results(out)
    assert all(r.dtype == tf.bfloat16 for r in results)
    as_bf16 = tf.cast(tf.cast(x, tf.bfloat16), tf.float32).numpy()
    mean, variance = _numpy_group_stats(as_bf16, 2, 2)
    expected = (as_bf16 - mean[0]) / np.sqrt(variance[0] + EPSILON)
    got = np.concatenate([tf.cast(r, tf.float32).numpy() for r in results])
    np.testing.assert_allclose(got, expected, rtol=2e-2, atol=2e-2)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.01 * mean[0], rtol=1e-3, atol=1e-6)
