"""Child process of tests/efficientnet/test_batchnorm_groups.py: N logical CPU devices (N = argv[1]; the count is
fixed before TensorFlow's runtime starts, so it cannot share the test process), MirroredStrategy over them, and
BatchNormActivation with replica groups: per-replica outputs, moving statistics, XLA-compiled group moments, and
the summed gradients of a tiny network. Writes an .npz to argv[2]; the parent holds the oracles."""

import sys

import keras
import numpy as np
import tensorflow as tf

from efficientnet import blocks

PER_REPLICA = 2
SHAPE = (5, 4, 3)  # height, width, channels


def inputs(replicas):
    """Different scale and offset per replica, so that group statistics differ from per-replica ones."""
    rng = np.random.default_rng(replicas)
    x = rng.normal(size=(replicas * PER_REPLICA, *SHAPE)).astype(np.float32)
    scale = np.repeat(np.arange(1, replicas + 1, dtype=np.float32), PER_REPLICA)[:, None, None, None]
    return x * scale + scale, rng.integers(0, 3, size=replicas * PER_REPLICA)


def group_sizes(replicas):
    return sorted({g for g in (1, 2, replicas // 2, replicas) if replicas % g == 0})


def loss_fn(labels, logits, global_batch):
    return tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)) / float(
        global_batch
    )


def _per_replica(strategy, array):
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(array[ctx.replica_id_in_sync_group * PER_REPLICA :][:PER_REPLICA])
    )


def _gathered(strategy, values):
    return np.concatenate([v.numpy() for v in strategy.experimental_local_results(values)])


def make_model(group_size=1, synchronized=False):
    layer = (
        keras.layers.BatchNormalization(momentum=0.99, epsilon=1e-3, synchronized=True)
        if synchronized
        else blocks.BatchNormActivation(group_size=group_size)
    )
    model = keras.Sequential(
        [
            keras.Input(SHAPE),
            keras.layers.Conv2D(4, 3, padding="same", name="conv"),
            layer,
            keras.layers.Activation("swish"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, name="dense"),
        ]
    )
    rng = np.random.default_rng(7)
    model.set_weights(
        [
            rng.normal(size=w.shape).astype(np.float32) * 0.5 if w.name in ("kernel", "bias") else w.numpy()
            for w in model.weights
        ]
    )
    return model


def gradients(strategy, model, x, y):
    def step(images, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True), len(x))
        return tape.gradient(loss, model.trainable_variables)

    grads = strategy.run(tf.function(step), args=(_per_replica(strategy, x), _per_replica(strategy, y)))
    return [strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None).numpy() for g in grads]


def main(replicas, path):
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * replicas
    )
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(devices, cross_device_ops=tf.distribute.ReductionToOneDevice())
    x, y = inputs(replicas)
    results = {}
    for g in group_sizes(replicas):
        with strategy.scope():
            layer = blocks.BatchNormActivation(group_size=g)
            layer.build((None, *SHAPE))
        out = strategy.run(
            tf.function(lambda v, layer=layer: layer(v, training=True)), args=(_per_replica(strategy, x),)
        )
        results[f"out_{g}"] = _gathered(strategy, out)
        results[f"moving_mean_{g}"] = layer.moving_mean.numpy()
        results[f"moving_variance_{g}"] = layer.moving_variance.numpy()
        compiled = tf.function(lambda v, g=g: tf.stack(blocks.group_moments(v, [0, 1, 2], g)), jit_compile=True)
        results[f"xla_moments_{g}"] = np.stack(
            strategy.experimental_local_results(strategy.run(compiled, args=(_per_replica(strategy, x),)))
        )
        with strategy.scope():
            model = make_model(g)
        results[f"grads_{g}"] = np.concatenate([v.ravel() for v in gradients(strategy, model, x, y)])
    with strategy.scope():
        synced = make_model(synchronized=True)
    results["grads_keras_sync"] = np.concatenate([v.ravel() for v in gradients(strategy, synced, x, y)])
    np.savez(path, **results)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
