"""Stochastic depth and head dropout masks: independent per replica, deterministic per seed state, unbiased."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from efficientnet import blocks

KEEP = 0.5  # a keep probability far from 0 and 1: two replicas' masks of 64 draws almost surely differ


def stochastic_depth(seed=1):
    layer = blocks.StochasticDepth(KEEP, seed=seed)
    branch = tf.ones((64, 2, 2, 3))
    return layer, lambda training=True: layer([branch, tf.zeros_like(branch)], training=training)


def head_dropout(seed=1):
    layer = blocks.ReplicaDropout(1.0 - KEEP, seed=seed)
    inputs = tf.ones((64, 8))
    return layer, lambda training=True: layer(inputs, training=training)


LAYERS = {"stochastic_depth": stochastic_depth, "head_dropout": head_dropout}


@pytest.fixture(scope="module")
def strategy():
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        pytest.skip("needs two logical CPU devices (tests/conftest.py)")
    return tf.distribute.MirroredStrategy([d.name for d in devices[:2]])


def run_on_replicas(strategy, apply):
    """apply() on each replica inside one tf.function, as training/core/steps.py runs the train step.

    Not XLA-compiled here: XLA on this machine's logical CPU devices cannot reach replica 1's copy of any
    mirrored variable ("Trying to access resource ... located in device CPU:1 from device CPU:0", for a plain
    tf.Variable too); test_jit_compiled_draws_differ_per_replica_id covers the compiled draw.
    """

    @tf.function
    def replicated():
        return strategy.run(apply)

    return [t.numpy() for t in strategy.experimental_local_results(replicated())]


def in_replica(replica_id, apply):
    """apply() in a replica context whose id is a tensor, as in TPUStrategy's replicated computation."""
    with tf.distribute.ReplicaContext(tf.distribute.get_strategy(), replica_id_in_sync_group=replica_id):
        return apply()


def assert_valid_mask(out):
    np.testing.assert_allclose(np.unique(out), [0.0, 1.0 / KEEP], rtol=1e-6)


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_replicas_draw_different_masks(strategy, kind):
    with strategy.scope():
        layer, apply = LAYERS[kind]()
    first, second = run_on_replicas(strategy, apply)  # identical inputs on both replicas
    assert_valid_mask(first)
    assert_valid_mask(second)
    assert not np.array_equal(first, second)
    # The replicas advanced their copies of the (mirrored) seed state alike: it stays one checkpointable state.
    copies = [v.numpy() for v in strategy.experimental_local_results(layer.seed_generator.state.value)]
    np.testing.assert_array_equal(copies[0], copies[1])


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_replica_zero_draws_what_one_device_and_the_cross_replica_context_draw(strategy, kind):
    with strategy.scope():
        layer, apply = LAYERS[kind](seed=11)
        state = layer.seed_generator.state.numpy()
        cross_replica = apply().numpy()  # called outside strategy.run
    layer.seed_generator.state.assign(state)
    replica_zero = run_on_replicas(strategy, apply)[0]
    _, one_device = LAYERS[kind](seed=11)
    np.testing.assert_array_equal(replica_zero, one_device().numpy())
    np.testing.assert_array_equal(cross_replica, replica_zero)


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_same_seed_state_gives_same_masks_on_every_replica(strategy, kind):
    with strategy.scope():
        layer, apply = LAYERS[kind](seed=7)
    state = layer.seed_generator.state.numpy()
    before = run_on_replicas(strategy, apply)
    advanced = run_on_replicas(strategy, apply)
    layer.seed_generator.state.assign(state)  # what restoring training/core/loop.py's seed_states does
    resumed = run_on_replicas(strategy, apply)
    assert not np.array_equal(before[0], advanced[0])  # the state moves on between steps
    for replica in range(2):
        np.testing.assert_array_equal(resumed[replica], before[replica])


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_same_seed_gives_same_masks_without_strategy(kind):
    _, apply_a = LAYERS[kind](seed=3)
    _, apply_b = LAYERS[kind](seed=3)
    _, apply_c = LAYERS[kind](seed=4)
    np.testing.assert_array_equal(apply_a().numpy(), apply_b().numpy())
    assert not np.array_equal(apply_a().numpy(), apply_c().numpy())


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_seed_state_is_the_checkpointed_variable(kind):
    layer, _ = LAYERS[kind]()
    # training/core/loop.py seed_states selects by this name; the layer holds no weights (weight files unchanged).
    assert [v.path for v in layer.variables] == [layer.seed_generator.state.path]
    assert "seed_generator_state" in layer.seed_generator.state.path
    assert not layer.weights


@pytest.mark.parametrize("training", [False, None])
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_inference_is_identity(kind, training):
    layer, apply = LAYERS[kind]()
    state = layer.seed_generator.state.numpy()
    np.testing.assert_array_equal(apply(training=training).numpy(), 1.0)
    np.testing.assert_array_equal(layer.seed_generator.state.numpy(), state)  # no draw at inference


# StochasticDepth's mean and one draw per sample: test_model.py; its bfloat16 mean: the mixed-precision test.
def test_dropout_is_inverted_and_unbiased_per_unit():
    layer = blocks.ReplicaDropout(0.3, seed=5)
    out = layer(tf.fill((2000, 10), 2.0), training=True).numpy()
    np.testing.assert_allclose(np.unique(out), [0.0, 2.0 / 0.7], rtol=1e-6)
    assert abs(np.mean(out > 0) - 0.7) < 0.015  # 20000 independent units: sd ≈ 0.0032
    assert abs(out.mean() - 2.0) < 0.05
    assert len({tuple(row) for row in out[:50] > 0}) > 40  # masks differ between samples


def test_dropout_noise_shape_shares_one_draw_along_its_unit_axes():
    layer = blocks.ReplicaDropout(0.5, noise_shape=(None, 1, 4), seed=2)
    out = layer(tf.ones((300, 3, 4)), training=True).numpy()
    assert np.all(out == out[:, :1, :])
    assert 0 < np.mean(out > 0) < 1


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_jit_compiled_draws_differ_per_replica_id(kind):
    layer, apply = LAYERS[kind](seed=9)
    compiled = tf.function(lambda replica_id: in_replica(replica_id, apply), jit_compile=True)
    state = layer.seed_generator.state.numpy()
    first = compiled(tf.constant(0)).numpy()
    layer.seed_generator.state.assign(state)
    again = compiled(tf.constant(0)).numpy()
    layer.seed_generator.state.assign(state)
    other = compiled(tf.constant(1)).numpy()
    assert_valid_mask(first)
    assert_valid_mask(other)
    np.testing.assert_array_equal(again, first)
    assert not np.array_equal(other, first)
    # (XLA's stateless uniform is not bit-equal to the TF CPU kernel's, so no comparison with an eager draw.)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_keeps_the_compute_dtype_the_keep_rate_and_the_mean(policy):
    depth = blocks.StochasticDepth(0.7, seed=5, dtype=policy)
    dropout = blocks.ReplicaDropout(0.3, seed=6, dtype=policy)
    n = 4_000_000  # keep-rate sd ≈ 0.00023, mean sd ≈ 0.00033: resolves the 0.5% bias of a bfloat16 draw
    branch = tf.ones((n, 1, 1, 1))
    depth_out = depth([branch, tf.zeros_like(branch)], training=True)
    dropout_out = dropout(tf.ones((n, 1)), training=True)
    for out in (depth_out, dropout_out):
        assert out.dtype == keras.DTypePolicy(policy).compute_dtype
        values = out.numpy().astype(np.float64)
        # 1/0.7 at the compute precision: 8 significant bits in bfloat16, 11 in float16.
        np.testing.assert_allclose(np.unique(values), [0.0, 1 / 0.7], rtol=2**-8)
        assert abs(np.mean(values > 0) - 0.7) < 0.0025  # 0.7 in bfloat16 is 0.6992
        assert abs(values.mean() - 1.0) < 0.0025


def test_model_head_uses_the_replica_aware_dropout(built):
    head = built("b0").get_layer("top_dropout")
    assert isinstance(head, blocks.ReplicaDropout) and isinstance(head, keras.layers.Dropout)
    assert head.rate == 0.2
