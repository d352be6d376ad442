"""efficientnet.optim against the original's optimizers (tensorflow/tpu utils.py build_optimizer): RMSPropTF and
MomentumTF against TF1's tf.compat.v1.train.RMSPropOptimizer / MomentumOptimizer, plain gradient descent against
GradientDescentOptimizer, LARS against an independent numpy port of lars_optimizer.py's formulas."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from efficientnet import optim, schedules

SHAPES = [(3, 4), (5,)]
RTOL = 1e-6
ATOL = 1e-7


def _gradients(num_steps, seed=0):
    """Per-step gradients of very different magnitudes (the epsilon-inside-sqrt regime too)."""
    rng = np.random.default_rng(seed)
    scales = [1.0, 1e-3, 30.0]
    return [
        [(rng.standard_normal(s) * scales[(i + k) % 3]).astype(np.float32) for k, s in enumerate(SHAPES)]
        for i in range(num_steps)
    ]


def _initial_values(seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in SHAPES]


class _TableSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate read from a table at the optimizer's step (a changing rate)."""

    def __init__(self, table):
        self.table = list(table)

    def __call__(self, step):
        return tf.gather(tf.constant(self.table, tf.float32), tf.cast(step, tf.int32))

    def get_config(self):
        return {"table": self.table}


def _run_tf1(make, learning_rates, grads):
    """A TF1 optimizer made by `make(learning_rate_fn)`, step by step at `learning_rates`; the variable values
    after every step."""
    step = {"i": 0}
    oracle = make(lambda: learning_rates[step["i"]])
    variables = [tf.Variable(v) for v in _initial_values()]
    history = []
    for i, step_grads in enumerate(grads):
        step["i"] = i
        oracle.apply_gradients(zip([tf.constant(g) for g in step_grads], variables))
        history.append([v.numpy() for v in variables])
    return history


def _run_oracle(learning_rates, grads):
    """TF1 RMSProp, step by step; returns the variable values after every step."""
    return _run_tf1(
        lambda lr: tf.compat.v1.train.RMSPropOptimizer(lr, decay=0.9, momentum=0.9, epsilon=1e-3), learning_rates, grads
    )


def _run_ours(learning_rate, grads):
    variables = [tf.Variable(v) for v in _initial_values()]
    opt = optim.RMSPropTF(learning_rate)
    history = []
    for step_grads in grads:
        opt.apply_gradients(zip([tf.constant(g) for g in step_grads], variables))
        history.append([v.numpy() for v in variables])
    return history, opt


def _assert_histories_close(ours, oracle):
    assert len(ours) == len(oracle)
    for step, (a_vars, b_vars) in enumerate(zip(ours, oracle)):
        for a, b in zip(a_vars, b_vars):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=f"step {step}")


def test_matches_tf1_rmsprop_constant_learning_rate():
    grads = _gradients(12)
    ours, _ = _run_ours(0.05, grads)
    oracle = _run_oracle([0.05] * 12, grads)
    _assert_histories_close(ours, oracle)
    # The variables really moved (a no-op optimizer would also "match" a no-op oracle).
    assert not np.allclose(ours[-1][0], _initial_values()[0])


def test_matches_tf1_rmsprop_changing_learning_rate():
    table = [0.0, 0.01, 0.02, 0.2, 0.1, 0.05, 0.3, 0.001, 0.07, 0.07, 0.5, 0.02]
    grads = _gradients(len(table), seed=3)
    ours, opt = _run_ours(_TableSchedule(table), grads)
    _assert_histories_close(ours, _run_oracle(table, grads))
    assert int(opt.iterations.numpy()) == len(table)


def test_first_step_differs_from_keras_rmsprop():
    """Documents why RMSPropTF exists: Keras starts ms at 0, so its first step is larger."""
    g = np.array([0.5, -2.0], np.float32)
    ours = tf.Variable([0.0, 0.0])
    keras_var = tf.Variable([0.0, 0.0])
    optim.RMSPropTF(0.1).apply_gradients([(tf.constant(g), ours)])
    keras.optimizers.RMSprop(0.1, rho=0.9, momentum=0.9, epsilon=1e-3).apply_gradients([(tf.constant(g), keras_var)])
    # Independent hand computation of TF1's first step: ms = 1 + 0.1(g² - 1).
    expected = -0.1 * g / np.sqrt(1.0 + 0.1 * (g * g - 1.0) + 1e-3)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-6)
    assert np.all(np.abs(keras_var.numpy()) > 1.5 * np.abs(ours.numpy()))


def test_slots_start_at_one_and_zero():
    variables = [tf.Variable(v) for v in _initial_values()]
    opt = optim.RMSPropTF(0.1)
    opt.build(variables)
    for ms, mom, var in zip(opt._mean_squares, opt._momentums, variables):
        np.testing.assert_array_equal(ms.numpy(), np.ones(var.shape, np.float32))
        np.testing.assert_array_equal(mom.numpy(), np.zeros(var.shape, np.float32))


def test_config_round_trip_with_schedule():
    schedule = schedules.WarmupExponentialDecay(0.256, steps_per_epoch=306)
    opt = optim.RMSPropTF(schedule, rho=0.8, momentum=0.7, epsilon=1e-4, clipnorm=2.0)
    config = opt.get_config()
    clone = optim.RMSPropTF.from_config(config)
    assert (clone.rho, clone.momentum, clone.epsilon, clone.clipnorm) == (0.8, 0.7, 1e-4, 2.0)
    assert isinstance(clone._learning_rate, schedules.WarmupExponentialDecay)
    assert clone._learning_rate.get_config() == schedule.get_config()
    # Also through Keras' generic (de)serialization, which needs the registration.
    revived = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert isinstance(revived, optim.RMSPropTF) and revived.rho == 0.8


def test_checkpoint_restore_continues_identically(tmp_path):
    grads = _gradients(6, seed=5)
    variables = [tf.Variable(v) for v in _initial_values()]
    opt = optim.RMSPropTF(0.05)
    for step_grads in grads[:3]:
        opt.apply_gradients(zip([tf.constant(g) for g in step_grads], variables))
    path = tf.train.Checkpoint(optimizer=opt, variables=variables).save(str(tmp_path / "ckpt"))

    fresh_vars = [tf.Variable(tf.zeros(s)) for s in SHAPES]
    fresh = optim.RMSPropTF(0.05)
    fresh.build(fresh_vars)
    tf.train.Checkpoint(optimizer=fresh, variables=fresh_vars).restore(path).assert_consumed()
    assert int(fresh.iterations.numpy()) == 3
    np.testing.assert_array_equal(fresh._momentums[0].numpy(), opt._momentums[0].numpy())
    for step_grads in grads[3:]:
        opt.apply_gradients(zip([tf.constant(g) for g in step_grads], variables))
        fresh.apply_gradients(zip([tf.constant(g) for g in step_grads], fresh_vars))
    for a, b in zip(variables, fresh_vars):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_mirrored_strategy_two_replicas_matches_summed_gradient_oracle():
    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs the two logical CPU devices from tests/conftest.py")
    # ReductionToOneDevice: several MirroredStrategy objects in one pytest process reuse the
    # same collective instance keys on CPU and then clash ("Shape mismatch in the collective").
    strategy = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )
    init = _initial_values()
    targets = [np.stack([np.full(s, 1.0, np.float32), np.full(s, -3.0, np.float32)]) for s in SHAPES]
    with strategy.scope():
        variables = [tf.Variable(v) for v in init]
        opt = optim.RMSPropTF(0.05)
        opt.build(variables)

    def replica_step():
        rid = tf.distribute.get_replica_context().replica_id_in_sync_group
        with tf.GradientTape() as tape:
            loss = tf.add_n([0.5 * tf.reduce_sum(tf.square(v - tf.gather(t, rid))) for v, t in zip(variables, targets)])
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))

    train = tf.function(lambda: strategy.run(replica_step))
    oracle_vars = [tf.Variable(v) for v in init]
    oracle = tf.compat.v1.train.RMSPropOptimizer(0.05, decay=0.9, momentum=0.9, epsilon=1e-3)
    for _ in range(5):
        train()
        # Gradients are all-reduced with SUM: Σ_r (w - t_r).
        summed = [2.0 * v - t[0] - t[1] for v, t in zip(oracle_vars, targets)]
        oracle.apply_gradients(zip(summed, oracle_vars))
    for v, o in zip(variables, oracle_vars):
        for replica_value in strategy.experimental_local_results(v):
            np.testing.assert_allclose(replica_value.numpy(), o.numpy(), rtol=RTOL, atol=ATOL)


def test_jit_compiled_steps_match_tf1():
    grads = _gradients(3, seed=7)
    variables = [tf.Variable(v) for v in _initial_values()]
    opt = optim.RMSPropTF(0.05)
    opt.build(variables)

    @tf.function(jit_compile=True)
    def step(g0, g1):
        opt.apply_gradients(zip([g0, g1], variables))

    ours = []
    for g0, g1 in grads:
        step(tf.constant(g0), tf.constant(g1))
        ours.append([v.numpy() for v in variables])
    _assert_histories_close(ours, _run_oracle([0.05] * 3, grads))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rho": 1.0}, "rho"),
        ({"momentum": -0.1}, "momentum"),
        ({"epsilon": 0.0}, "epsilon"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"use_ema": True}, "use_ema"),
    ],
)
def test_bad_arguments_raise_one_line_errors(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        optim.RMSPropTF(**kwargs)
    assert "\n" not in str(info.value)


def test_sparse_gradients_are_refused():
    table = tf.Variable(tf.ones((4, 2)))
    opt = optim.RMSPropTF(0.1)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.gather(table, [1, 3]))
    grad = tape.gradient(loss, table)
    assert isinstance(grad, tf.IndexedSlices)
    with pytest.raises(NotImplementedError, match="IndexedSlices"):
        opt.apply_gradients([(grad, table)])


def test_optimizer_created_outside_the_strategy_scope_is_refused():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    opt = optim.RMSPropTF(0.1)
    with strategy.scope():
        variables = [tf.Variable(tf.ones(2))]
        with pytest.raises(ValueError, match="strategy.scope") as info:
            opt.build(variables)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ the original's other optimizers

TABLE = [0.0, 0.01, 0.02, 0.2, 0.1, 0.05, 0.3, 0.001, 0.07, 0.07, 0.5, 0.02]


def _run(optimizer, grads):
    variables = [tf.Variable(v) for v in _initial_values()]
    history = []
    for step_grads in grads:
        optimizer.apply_gradients(zip([tf.constant(g) for g in step_grads], variables))
        history.append([v.numpy() for v in variables])
    return history


@pytest.mark.parametrize(
    "ours, tf1",
    [
        (lambda lr: optim.MomentumTF(lr, momentum=0.9), lambda lr: tf.compat.v1.train.MomentumOptimizer(lr, 0.9)),
        (lambda lr: keras.optimizers.SGD(lr, momentum=0.0), lambda lr: tf.compat.v1.train.GradientDescentOptimizer(lr)),
    ],
    ids=["momentum", "sgd"],
)
def test_momentum_and_sgd_equal_tf1_exactly(ours, tf1):
    grads = _gradients(len(TABLE), seed=5)
    got = _run(ours(_TableSchedule(TABLE)), grads)
    expected = _run_tf1(tf1, TABLE, grads)
    for a_vars, b_vars in zip(got, expected):
        for a, b in zip(a_vars, b_vars):
            np.testing.assert_array_equal(a, b)
    assert not np.allclose(got[-1][0], _initial_values()[0])


def test_tf1_momentum_differs_from_keras_sgd_when_the_rate_changes():
    grads = _gradients(len(TABLE), seed=5)
    ours = _run(optim.MomentumTF(_TableSchedule(TABLE), momentum=0.9), grads)
    keras_sgd = _run(keras.optimizers.SGD(_TableSchedule(TABLE), momentum=0.9), grads)
    assert not np.allclose(ours[-1][0], keras_sgd[-1][0], rtol=1e-3)


def _numpy_lars(grads, excluded, momentum=0.9, weight_decay=1e-4, eeta=0.001, epsilon=0.0):
    """lars_optimizer.py compute_lr + ApplyMomentum(lr=1, grad=g'·scaled_lr), in float64."""
    weights = [v.astype(np.float64) for v in _initial_values()]
    accums = [np.zeros_like(w) for w in weights]
    history = []
    for step, step_grads in enumerate(grads):
        for k, g in enumerate(step_grads):
            g, w, lr = g.astype(np.float64), weights[k], TABLE[step]
            if k not in excluded:
                w_norm, g_norm = np.linalg.norm(w), np.linalg.norm(g)
                trust = eeta * w_norm / (g_norm + weight_decay * w_norm + epsilon) if w_norm > 0 and g_norm > 0 else 1.0
                lr, g = lr * trust, g + weight_decay * w
            accums[k] = momentum * accums[k] + g * lr
            weights[k] = w - accums[k]
        history.append([w.copy() for w in weights])
    return history


@pytest.mark.parametrize("excluded", [set(), {1}], ids=["all_adapted", "second_excluded"])
def test_lars_equals_the_originals_formulas(excluded):
    grads = _gradients(len(TABLE), seed=9)
    variables = [tf.Variable(v) for v in _initial_values()]
    lars = optim.LARS(_TableSchedule(TABLE), momentum=0.9, weight_decay=1e-4, eeta=0.001, epsilon=0.0)
    lars.exclude_from_adaptation([variables[k] for k in excluded])
    got = []
    for step_grads in grads:
        lars.apply_gradients(zip([tf.constant(g) for g in step_grads], variables))
        got.append([v.numpy() for v in variables])
    for step, (a_vars, b_vars) in enumerate(zip(got, _numpy_lars(grads, excluded))):
        for a, b in zip(a_vars, b_vars):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, err_msg=f"step {step}")
    plain = _run(optim.MomentumTF(_TableSchedule(TABLE), momentum=0.9), grads)
    assert not np.allclose(got[-1][0], plain[-1][0], rtol=1e-3)  # the trust ratio acts


def test_lars_trust_ratio_is_one_for_zero_weights_or_gradients():
    variable = tf.Variable(np.zeros(3, np.float32))
    lars = optim.LARS(0.5, momentum=0.0, weight_decay=0.1)
    lars.apply_gradients([(tf.constant([1.0, -2.0, 0.5]), variable)])
    np.testing.assert_allclose(variable.numpy(), -0.5 * np.array([1.0, -2.0, 0.5]), rtol=1e-6)


def test_lars_exclusion_after_build_is_refused_and_config_round_trips():
    variable = tf.Variable(np.ones(2, np.float32))
    lars = optim.LARS(0.1, momentum=0.8, weight_decay=1e-5, eeta=0.002, epsilon=1e-9)
    lars.build([variable])
    with pytest.raises(ValueError, match="before the optimizer is built"):
        lars.exclude_from_adaptation([variable])
    clone = optim.LARS.from_config(lars.get_config())
    assert (clone.momentum, clone.lars_weight_decay, clone.eeta, clone.lars_epsilon) == (0.8, 1e-5, 0.002, 1e-9)
    with pytest.raises(ValueError, match="momentum"):
        optim.MomentumTF(0.1, momentum=1.5)


def _scaled_pair(initial_scale, growth_steps, learning_rate=0.05, strategy=None):
    """(variables under dynamic loss scaling, LossScaleOptimizer, the same variables under the bare RMSPropTF,
    that optimizer), from the same initial values."""
    scope = strategy.scope() if strategy is not None else tf.init_scope()
    with scope:
        scaled_vars = [tf.Variable(v) for v in _initial_values()]
        scaled = optim.LossScaleOptimizer(
            optim.RMSPropTF(learning_rate), initial_scale=initial_scale, dynamic_growth_steps=growth_steps
        )
        scaled.build(scaled_vars)
    plain_vars = [tf.Variable(v) for v in _initial_values()]
    plain = optim.RMSPropTF(learning_rate)
    plain.build(plain_vars)
    return scaled_vars, scaled, plain_vars, plain


def test_loss_scaling_changes_no_finite_step_and_grows_the_scale():
    """Gradients of a loss scaled by a power of two are exactly scale x the true ones, so unscaling is exact: on
    finite steps the wrapped optimizer equals the bare one bit for bit, while the scale doubles every
    `growth_steps` steps."""
    scaled_vars, scaled, plain_vars, plain = _scaled_pair(
        2.0**10, growth_steps=3, learning_rate=_TableSchedule([0.05, 0.02, 0.08, 0.01, 0.05, 0.03, 0.07])
    )
    for step_grads in _gradients(7):
        scale = float(scaled.dynamic_scale.numpy())
        scaled.apply_gradients(zip([tf.constant(g * scale) for g in step_grads], scaled_vars))
        plain.apply_gradients(zip([tf.constant(g) for g in step_grads], plain_vars))
    for a, b in zip(scaled_vars, plain_vars):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert float(scaled.dynamic_scale.numpy()) == 2.0**12  # doubled after steps 3 and 6
    assert int(scaled.iterations.numpy()) == 7


def test_a_step_with_non_finite_gradients_is_skipped_halves_the_scale_and_still_counts():
    """The weights and slots are untouched by the overflowed step, the scale halves, and the step counter moves
    on (as tf.keras 2's LossScaleOptimizer): the next step uses the learning rate of its own step number."""
    table = _TableSchedule([0.05, 0.5, 0.02, 0.3])
    scaled_vars, scaled, plain_vars, plain = _scaled_pair(2.0**8, growth_steps=100, learning_rate=table)
    grads = _gradients(4)
    for step, step_grads in enumerate(grads):
        if step == 1:
            slots = [v.numpy().copy() for v in scaled.inner_optimizer.variables]
            weights = [v.numpy().copy() for v in scaled_vars]
            overflowed = [np.full_like(step_grads[0], np.inf), step_grads[1]]
            scaled.apply_gradients(zip([tf.constant(g) for g in overflowed], scaled_vars))
            for before, v in zip(weights, scaled_vars):
                np.testing.assert_array_equal(before, v.numpy())
            # The inner optimizer's variables are its iterations (moved on) and its slots (untouched).
            changed = [
                v.path
                for before, v in zip(slots, scaled.inner_optimizer.variables)
                if not np.array_equal(before, v.numpy())
            ]
            assert changed == [scaled.inner_optimizer.iterations.path]
            assert float(scaled.dynamic_scale.numpy()) == 2.0**7
            plain.iterations.assign_add(1)  # the bare optimizer skips step 1 the same way
        else:
            scale = float(scaled.dynamic_scale.numpy())
            scaled.apply_gradients(zip([tf.constant(g * scale) for g in step_grads], scaled_vars))
            plain.apply_gradients(zip([tf.constant(g) for g in step_grads], plain_vars))
        assert int(scaled.iterations.numpy()) == step + 1
    for a, b in zip(scaled_vars, plain_vars):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_loss_scaling_under_two_replicas_skips_and_counts_once():
    """MirroredStrategy (the merge_call path of Keras' LossScaleOptimizer): one replica's overflow reaches both
    through the all-reduce; the step is skipped on both, counted once, and the scale halves once."""
    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs the two logical CPU devices from tests/conftest.py")
    strategy = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )
    scaled_vars, scaled, _, _ = _scaled_pair(2.0**4, growth_steps=100, strategy=strategy)

    def replica_step(poison):
        rid = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.float32)
        with tf.GradientTape() as tape:
            loss = tf.add_n([tf.reduce_sum(v) for v in scaled_vars]) * (1.0 + rid * poison)
            scaled_loss = scaled.scale_loss(loss)
        scaled.apply_gradients(zip(tape.gradient(scaled_loss, scaled_vars), scaled_vars))

    train = tf.function(lambda poison: strategy.run(replica_step, args=(poison,)))
    before = [strategy.experimental_local_results(v)[0].numpy().copy() for v in scaled_vars]
    train(tf.constant(np.inf, tf.float32))  # replica 1's gradients are infinite
    for v, b in zip(scaled_vars, before):
        for replica_value in strategy.experimental_local_results(v):
            np.testing.assert_array_equal(replica_value.numpy(), b)
    assert int(scaled.iterations.numpy()) == 1
    assert float(scaled.dynamic_scale.numpy()) == 2.0**3
    train(tf.constant(0.0, tf.float32))
    assert int(scaled.iterations.numpy()) == 2
    for v, b in zip(scaled_vars, before):
        values = [r.numpy() for r in strategy.experimental_local_results(v)]
        np.testing.assert_array_equal(values[0], values[1])
        assert not np.array_equal(values[0], b)


def test_the_loss_scale_is_checkpointed_and_a_restore_continues_identically(tmp_path):
    scaled_vars, scaled, _, _ = _scaled_pair(2.0**6, growth_steps=2)
    grads = _gradients(6)
    for step_grads in grads[:3]:  # finite, overflowed, finite: the scale and its count have both moved
        scale = float(scaled.dynamic_scale.numpy())
        given = [g * scale for g in step_grads] if step_grads is not grads[1] else [g * np.nan for g in step_grads]
        scaled.apply_gradients(zip([tf.constant(g) for g in given], scaled_vars))
    path = tf.train.Checkpoint(v=scaled_vars, optimizer=scaled).save(str(tmp_path / "ckpt"))
    fresh_vars, fresh, _, _ = _scaled_pair(2.0**15, growth_steps=2)
    tf.train.Checkpoint(v=fresh_vars, optimizer=fresh).restore(path).assert_consumed()
    assert float(fresh.dynamic_scale.numpy()) == float(scaled.dynamic_scale.numpy()) == 2.0**5
    assert int(fresh.step_counter.numpy()) == int(scaled.step_counter.numpy()) == 1
    for step_grads in grads[3:]:
        for opt, variables in ((scaled, scaled_vars), (fresh, fresh_vars)):
            scale = float(opt.dynamic_scale.numpy())
            opt.apply_gradients(zip([tf.constant(g * scale) for g in step_grads], variables))
    assert float(fresh.dynamic_scale.numpy()) == 2.0**7  # doubled after the 1st and 3rd of these steps
    for a, b in zip(scaled_vars, fresh_vars):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
