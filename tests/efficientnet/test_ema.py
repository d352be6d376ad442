"""Tests for efficientnet.ema: tf.train.ExponentialMovingAverage oracle, MirroredStrategy, XLA."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from efficientnet import ema as ema_lib
from efficientnet import losses, optim


def _two_variables(seed=0):
    rng = np.random.default_rng(seed)
    return [
        tf.Variable(rng.standard_normal((3, 2)).astype(np.float32)),
        tf.Variable(rng.standard_normal((4,)).astype(np.float32)),
    ]


def _tiny_model(num_classes=3, seed=0):
    """Conv2D (with bias) -> BN -> swish -> pool -> Dense, plus a nested sub-model with a BN."""
    keras.utils.set_random_seed(seed)
    inner = keras.Sequential([keras.layers.Dense(4), keras.layers.BatchNormalization()], name="inner")
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.5)(x)
    x = keras.layers.Activation("swish")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = inner(x)
    outputs = keras.layers.Dense(num_classes)(x)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("decay, warmup", [(0.9999, True), (0.5, True), (0.9, False)])
def test_matches_tf_train_exponential_moving_average(decay, warmup):
    """25 steps; with decay 0.5 the min() switches from the warm-up term to decay at step 9."""
    variables = _two_variables()
    ours = ema_lib.ExponentialMovingAverage(variables, decay, warmup=warmup)
    step = tf.Variable(0, dtype=tf.int64)
    oracle = tf.train.ExponentialMovingAverage(decay, num_updates=step if warmup else None)
    rng = np.random.default_rng(1)
    for t in range(25):
        if t > 0:  # step 0 averages the initial values, so both start from the same shadow
            for v in variables:
                v.assign(v + rng.standard_normal(v.shape).astype(np.float32))
        step.assign(t)
        oracle.apply(variables)
        ours.apply(t)
        for v, shadow in zip(variables, ours.shadows):
            np.testing.assert_allclose(
                shadow.numpy(), oracle.average(v).numpy(), rtol=1e-6, atol=1e-7, err_msg=f"step {t}"
            )
    # The shadows lag the variables (a shadow that just copies the variable would fail here).
    assert not np.allclose(ours.shadows[0].numpy(), variables[0].numpy())


def test_decay_warmup_formula():
    avg = ema_lib.ExponentialMovingAverage(_two_variables(), 0.9999)
    for step in (0, 1, 10, 1000, 10**6):
        expected = min(0.9999, (1 + step) / (10 + step))
        assert float(avg.decay_at(step)) == pytest.approx(expected, rel=1e-6)
    flat = ema_lib.ExponentialMovingAverage(_two_variables(), 0.9999, warmup=False)
    assert float(flat.decay_at(0)) == pytest.approx(0.9999, rel=1e-7)


def test_ema_variables_are_trainables_plus_bn_statistics():
    model = _tiny_model()
    chosen = ema_lib.ema_variables(model)
    stats = [v for v in model.non_trainable_variables if v.path.endswith(("moving_mean", "moving_variance"))]
    assert len(stats) == 4  # two BatchNorm layers, one of them inside the nested model
    assert {id(v) for v in chosen} == {id(v) for v in model.trainable_variables + stats}
    assert len(chosen) == len(model.trainable_variables) + 4


def test_checkpoint_round_trip(tmp_path):
    variables = _two_variables()
    avg = ema_lib.ExponentialMovingAverage(variables, 0.9)
    for t in range(1, 4):
        variables[0].assign_add(tf.ones_like(variables[0]))
        avg.apply(t)
    path = tf.train.Checkpoint(ema=avg).save(str(tmp_path / "ckpt"))
    fresh = ema_lib.ExponentialMovingAverage(variables, 0.9)  # shadows = current values
    assert not np.allclose(fresh.shadows[0].numpy(), avg.shadows[0].numpy())
    tf.train.Checkpoint(ema=fresh).restore(path).assert_consumed()
    for a, b in zip(avg.shadows, fresh.shadows):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_swap_twice_restores_and_copy_to_assigns():
    variables = _two_variables()
    avg = ema_lib.ExponentialMovingAverage(variables, 0.5)
    raw = [v.numpy() for v in variables]
    for v in variables:
        v.assign(v * 3.0)
    avg.apply(100)
    model_values = [v.numpy() for v in variables]
    shadow_values = [s.numpy() for s in avg.shadows]
    # Hand-computed: shadow = raw - 0.5 · (raw - 3·raw) = 2·raw.
    np.testing.assert_allclose(shadow_values[0], 2.0 * raw[0], rtol=1e-6)
    with avg.swapped():
        for v, s in zip(variables, shadow_values):
            np.testing.assert_array_equal(v.numpy(), s)
        for s, m in zip(avg.shadows, model_values):
            np.testing.assert_array_equal(s.numpy(), m)
    for v, m in zip(variables, model_values):
        np.testing.assert_array_equal(v.numpy(), m)
    targets = [tf.Variable(tf.zeros_like(v)) for v in variables]
    avg.copy_to(targets)
    for t, s in zip(targets, shadow_values):
        np.testing.assert_array_equal(t.numpy(), s)


def _replica_values(strategy, variables):
    return [[part.numpy() for part in strategy.experimental_local_results(v)] for v in variables]


@pytest.mark.slow
def test_mirrored_two_replicas_with_per_replica_batchnorm_statistics():
    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs the two logical CPU devices from tests/conftest.py")
    # ReductionToOneDevice: several MirroredStrategy objects in one pytest process reuse the
    # same collective instance keys on CPU and then clash ("Shape mismatch in the collective").
    strategy = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )
    with strategy.scope():
        model = _tiny_model()
        tracked = [v.value for v in ema_lib.ema_variables(model)]
        opt = optim.RMSPropTF(0.05)
        opt.build(model.trainable_variables)
        avg = ema_lib.ExponentialMovingAverage(tracked, 0.9999)
    rng = np.random.default_rng(0)
    # Replica 1 sees shifted inputs, so its BatchNorm statistics differ from replica 0's.
    images = np.concatenate([rng.standard_normal((2, 6, 6, 2)), rng.standard_normal((2, 6, 6, 2)) * 3 + 5]).astype(
        np.float32
    )
    labels = np.array([0, 1, 2, 1], np.int32)
    dataset = tf.data.Dataset.from_tensors((images, labels)).repeat()
    iterator = iter(strategy.experimental_distribute_dataset(dataset))

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            per_example = losses.classification_loss(y, model(x, training=True), 3)
            loss = tf.reduce_sum(per_example) / 4.0
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        avg.apply(opt.iterations)

    train = tf.function(lambda batch: strategy.run(replica_step, args=batch))
    expected = _replica_values(strategy, tracked)  # numpy oracle, per replica
    for t in range(1, 5):
        train(next(iterator))
        d = min(0.9999, (1 + t) / (10 + t))
        current = _replica_values(strategy, tracked)
        expected = [[e - (1 - d) * (e - c) for e, c in zip(es, cs)] for es, cs in zip(expected, current)]
    got = _replica_values(strategy, avg.shadows)
    for e_parts, g_parts in zip(expected, got):
        for e, g in zip(e_parts, g_parts):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
    first_bn = next(layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    bn_mean = first_bn.moving_mean.value
    mean_parts = [p.numpy() for p in strategy.experimental_local_results(bn_mean)]
    assert not np.allclose(mean_parts[0], mean_parts[1])  # statistics really are per replica

    # Swap in the cross-replica context: every replica gets ITS OWN average, and back again.
    bn_index = next(i for i, v in enumerate(tracked) if v is bn_mean)
    shadow_parts = [p.numpy() for p in strategy.experimental_local_results(avg.shadows[bn_index])]
    with strategy.scope(), avg.swapped():
        swapped = [p.numpy() for p in strategy.experimental_local_results(bn_mean)]
        for s, w in zip(shadow_parts, swapped):
            np.testing.assert_array_equal(w, s)
    for m, w in zip(mean_parts, strategy.experimental_local_results(bn_mean)):
        np.testing.assert_array_equal(w.numpy(), m)


def _one_step_with_ema(images, labels, jit):
    """EMA shadows and variables after one RMSProp step with the EMA update inside the (XLA-compiled) step."""
    model = _tiny_model(seed=3)
    opt = optim.RMSPropTF(0.05)
    opt.build(model.trainable_variables)
    avg = ema_lib.ExponentialMovingAverage(ema_lib.ema_variables(model), 0.9999)
    decayed = losses.weight_decay_variables(model)

    @tf.function(jit_compile=jit)
    def step(x, y):
        with tf.GradientTape() as tape:
            per_example = losses.classification_loss(y, model(x, training=True), 3)
            loss = tf.reduce_mean(per_example) + losses.l2_loss(decayed, 1e-5)
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        avg.apply(opt.iterations)
        return loss

    step(tf.constant(images), labels)
    if jit:  # the step really went through XLA
        assert "HloModule" in step.experimental_get_compiler_ir(tf.constant(images), labels)(stage="hlo")
    return [s.numpy() for s in avg.shadows] + [v.numpy() for v in model.variables]


@pytest.mark.slow
def test_optimizer_and_ema_step_compiles_with_xla():
    """One full train step (loss + L2 + RMSPropTF + EMA) under jit_compile equals the plain one."""
    images = np.random.default_rng(0).standard_normal((2, 6, 6, 2)).astype(np.float32)
    labels = tf.constant([0, 2], tf.int32)
    results = [_one_step_with_ema(images, labels, jit) for jit in (False, True)]
    for plain, compiled in zip(*results):
        np.testing.assert_allclose(compiled, plain, rtol=1e-4, atol=1e-5)
    # Something moved: the shadows of the trained weights differ from the initial weights.
    fresh = _tiny_model(seed=3)
    assert not np.allclose(results[0][0], fresh.trainable_variables[0].numpy())


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ema_lib.ExponentialMovingAverage(_two_variables(), 1.5), "decay"),
        (lambda: ema_lib.ExponentialMovingAverage([], 0.9), "non-empty"),
        (lambda: ema_lib.ExponentialMovingAverage([tf.Variable([1, 2])], 0.9), "float"),
        (lambda: ema_lib.ExponentialMovingAverage([tf.constant([1.0])], 0.9), "expects variables"),
        (lambda: ema_lib.ExponentialMovingAverage(_two_variables() * 2, 0.9), "twice"),
        (lambda: ema_lib.ExponentialMovingAverage(_two_variables(), 0.9, warmup=1), "warmup"),
        (lambda: ema_lib.ema_variables(keras.Sequential([keras.layers.Dense(2)])), "no variables"),
        (lambda: ema_lib.ema_variables("model"), "keras.Model"),
        (lambda: ema_lib.ExponentialMovingAverage(_two_variables(), 0.9).copy_to(_two_variables()[:1]), "needs 2"),
    ],
)
def test_bad_input_raises_one_line_errors(make, match):
    with pytest.raises(ValueError, match=match) as info:
        make()
    assert "\n" not in str(info.value)
