"""Tests for efficientnet.schedules against hand-computed values and TF1/Keras decay oracles."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from efficientnet import schedules

# docs/recipe.md §3/§5: 1,281,167 training images minus the 25,022 minival holdout, batch 4096; a float, as the
# original's main.py computes it.
STEPS_PER_EPOCH = 1_256_145 / 4096  # 306.676...
PEAK = 0.256


def _recipe():
    return schedules.WarmupExponentialDecay(PEAK, STEPS_PER_EPOCH)


def test_steps_per_epoch_and_scaled_rate():
    assert STEPS_PER_EPOCH == pytest.approx(306.676, abs=1e-3)
    assert schedules.scaled_learning_rate(0.016, 4096) == pytest.approx(0.256, rel=1e-12)
    assert schedules.scaled_learning_rate(0.016, 2048) == pytest.approx(0.128, rel=1e-12)
    assert schedules.scaled_learning_rate(0.016, 256) == pytest.approx(0.016, rel=1e-12)


def test_warmup_and_decay_lengths_come_from_the_unrounded_epoch():
    schedule = _recipe()
    assert schedule.warmup_steps == 1533  # int(5 · 306.676), not 5 · 306 = 1530
    assert schedule.decay_steps == pytest.approx(736.0225, abs=1e-4)  # 2.4 · 306.676, not 734.4


@pytest.mark.parametrize(
    "step, expected",
    [
        (0, 0.0),  # warm-up starts from zero
        (766, 0.256 * 766 / 1533),  # middle of warm-up (int(5 · 306.676) = 1533 steps)
        (1532, 0.256 * 1532 / 1533),  # last warm-up step
        (1533, 0.256 * 0.97**2),  # first step after: floor(1533 / 736.02) = 2
        (2000, 0.256 * 0.97**2),  # floor(2000 / 736.02) = 2
        (2208, 0.256 * 0.97**2),  # 3 · 736.02 = 2208.07: still two decays
        (2209, 0.256 * 0.97**3),  # ... and the third one here
        (100_000, 0.256 * 0.97**135),  # deep in training: floor(100000 / 736.02) = 135
    ],
)
def test_exponential_recipe_values_by_hand(step, expected):
    # rel 1e-5: float32(0.97) is 0.97 + 3e-8, so 0.97^135 in float32 is off by ~135 · 3e-8.
    assert float(_recipe()(step)) == pytest.approx(expected, rel=1e-5, abs=1e-9)


def test_end_of_warmup_steps_down_to_02409():
    """docs/recipe.md §5: right after warm-up the rate is 0.256 · 0.97² ≈ 0.2409, not 0.256."""
    assert float(_recipe()(1533)) == pytest.approx(0.2409, abs=5e-5)


def test_decay_part_matches_tf1_and_keras_exponential_decay():
    steps = [1533, 1534, 2208, 2209, 3680, 11040, 11041, 50_000, 107_335]
    keras_decay = keras.optimizers.schedules.ExponentialDecay(
        PEAK, decay_steps=STEPS_PER_EPOCH * 2.4, decay_rate=0.97, staircase=True
    )
    schedule = _recipe()
    for step in steps:
        ours = float(schedule(step))
        tf1 = float(tf.compat.v1.train.exponential_decay(PEAK, step, STEPS_PER_EPOCH * 2.4, 0.97, staircase=True)())
        assert ours == tf1, step  # both float32: identical
        assert ours == pytest.approx(float(keras_decay(step)), rel=1e-6), step


def test_continuous_decay_when_not_staircase():
    schedule = schedules.WarmupExponentialDecay(PEAK, STEPS_PER_EPOCH, staircase=False)
    step = 5000
    assert float(schedule(step)) == pytest.approx(0.256 * 0.97 ** (step / (STEPS_PER_EPOCH * 2.4)), rel=1e-5)


def test_no_warmup_when_zero_epochs():
    schedule = schedules.WarmupExponentialDecay(PEAK, STEPS_PER_EPOCH, warmup_epochs=0)
    assert float(schedule(0)) == pytest.approx(PEAK)


def test_cosine_values_by_hand():
    total = int(350 * STEPS_PER_EPOCH)
    schedule = schedules.WarmupCosineDecay(PEAK, STEPS_PER_EPOCH, total_steps=total)
    assert float(schedule(0)) == 0.0
    assert float(schedule(766)) == pytest.approx(0.256 * 766 / 1533, rel=1e-6)
    for step in (1533, 50_000, total - 1):
        expected = 0.5 * PEAK * (1 + np.cos(np.pi * step / total))
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-4, abs=1e-7)
    assert float(schedule(total)) == pytest.approx(0.0, abs=1e-9)
    assert float(schedule(total + 5000)) == pytest.approx(0.0, abs=1e-9)  # clamped, not rising


def test_works_with_variable_step_inside_tf_function():
    step = tf.Variable(0, dtype=tf.int64)
    schedule = _recipe()
    rate = tf.function(lambda: schedule(step))
    values = []
    for value in (0, 766, 1533):
        step.assign(value)
        values.append(float(rate()))
    assert values == pytest.approx([0.0, 0.256 * 766 / 1533, 0.256 * 0.97**2], rel=2e-6)


@pytest.mark.parametrize(
    "schedule",
    [
        schedules.WarmupExponentialDecay(0.1, 10.5, warmup_epochs=2, decay_epochs=1.5, decay_rate=0.5, staircase=False),
        schedules.WarmupCosineDecay(0.1, 10, total_steps=1000, warmup_epochs=3),
    ],
)
def test_config_round_trip(schedule):
    clone = type(schedule).from_config(schedule.get_config())
    assert clone.get_config() == schedule.get_config()
    revived = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert type(revived) is type(schedule)
    for step in (0, 7, 21, 400):
        assert float(revived(step)) == float(schedule(step))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: schedules.scaled_learning_rate(0.0, 4096), "base_lr_per_256"),
        (lambda: schedules.scaled_learning_rate(0.016, 0), "global_batch_size"),
        (lambda: schedules.scaled_learning_rate(0.016, 40.5), "global_batch_size"),
        (lambda: schedules.WarmupExponentialDecay(-0.1, 306), "initial_learning_rate"),
        (lambda: schedules.WarmupExponentialDecay(0.1, 0), "steps_per_epoch"),
        (lambda: schedules.WarmupExponentialDecay(0.1, 306, warmup_epochs=-1), "warmup_epochs"),
        (lambda: schedules.WarmupExponentialDecay(0.1, 306, decay_epochs=0), "decay_epochs"),
        (lambda: schedules.WarmupExponentialDecay(0.1, 306, decay_rate=0), "decay_rate"),
        (lambda: schedules.WarmupExponentialDecay(0.1, 306, decay_rate=1.5), "decay_rate"),
        (lambda: schedules.WarmupCosineDecay(0.1, 306, total_steps=0), "total_steps"),
    ],
)
def test_bad_arguments_raise_one_line_errors(make, match):
    with pytest.raises(ValueError, match=match) as info:
        make()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda warmup: schedules.WarmupExponentialDecay(0.1, 100, warmup_epochs=warmup),
        lambda warmup: schedules.WarmupCosineDecay(0.1, 100, total_steps=250, warmup_epochs=warmup),
    ],
)
def test_warmup_longer_than_the_run_warns_for_both_schedules(make):
    long_warmup = make(5)  # 500 warm-up steps in a 250-step run: the rate ends at 0.1 * 249 / 500
    message = schedules.warmup_not_reached(long_warmup, 250)
    assert "never reaches its peak 0.1 (last step 0.0498)" in message and "\n" not in message
    assert float(long_warmup(249)) == pytest.approx(0.1 * 249 / 500)
    assert schedules.warmup_not_reached(make(2.5), 250) is not None  # ends with the warm-up: peak never used
    assert schedules.warmup_not_reached(make(2), 250) is None
    assert schedules.warmup_not_reached(long_warmup, 0) is None  # evaluation-only schedules


def _original_poly(initial_lr, steps, steps_per_epoch, total_steps, warmup_epochs):
    """tensorflow/tpu utils.py:55-67 + 72-78 with TF1's own polynomial_decay on a vector of global steps."""
    global_step = tf.constant(steps, tf.int64)
    warmup_steps = int(steps_per_epoch * warmup_epochs)
    decay_steps = tf.maximum(tf.constant(1, tf.int64), global_step - warmup_steps)
    lr = tf.compat.v1.train.polynomial_decay(
        initial_lr, decay_steps, total_steps - warmup_steps + 1, end_learning_rate=0.1, power=2.0
    )()
    warmup_lr = initial_lr * tf.cast(global_step, tf.float32) / tf.cast(warmup_steps, tf.float32)
    return np.where(steps < warmup_steps, warmup_lr.numpy(), lr.numpy())


@pytest.mark.parametrize("batch", [4096, 1000])
def test_poly_schedule_equals_the_original_at_every_step(batch):
    steps_per_epoch = 1_256_145 / batch
    total = int(350 * steps_per_epoch)
    initial = schedules.scaled_learning_rate(0.016, batch)
    schedule = schedules.WarmupPolynomialDecay(initial, steps_per_epoch, total, 5, end_learning_rate=0.1, power=2.0)
    steps = np.arange(total + 10, dtype=np.int64)  # past the end: held at the end rate
    np.testing.assert_array_equal(
        schedule(tf.constant(steps)).numpy(), _original_poly(initial, steps, steps_per_epoch, total, 5)
    )


def test_constant_schedule_is_the_peak_after_the_warmup():
    schedule = schedules.WarmupConstant(0.256, STEPS_PER_EPOCH, 5)
    steps = np.arange(4000, dtype=np.int64)
    warmup = 0.256 * tf.cast(steps, tf.float32) / tf.cast(1533, tf.float32)
    expected = np.where(steps < 1533, warmup.numpy(), np.float32(0.256))
    np.testing.assert_array_equal(schedule(tf.constant(steps)).numpy(), expected)
    assert float(schedules.WarmupConstant(0.1, 10, 0)(7)) == pytest.approx(0.1)
