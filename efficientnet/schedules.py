"""Learning-rate schedules of the EfficientNet recipe (tensorflow/tpu utils.py build_learning_rate).

* `scaled_learning_rate`: 0.016 per 256 images, scaled linearly with the global batch
  (0.256 at 4096, the paper's number; docs/recipe.md §5).
* `WarmupExponentialDecay`: linear warm-up from 0 for `warmup_epochs`, then
  `initial · decay_rate ^ floor(step / decay_steps)`. The decay exponent counts from step 0, not
  from the end of warm-up, so the rate steps DOWN at the end of warm-up (0.256 → 0.2409 at batch
  4096: 1,256,145 / 4096 = 306.676 steps per epoch, warm-up int(5 · 306.676) = 1533 steps, a decay
  every 736.02 steps). That is what the TPU code does (the warm-up is a tf.cond in front of an
  exponential decay of the raw global step) and what the published numbers used. Steps per epoch
  are a float there (main.py line 709 divides under `from __future__ import division`) and are not
  rounded here either: rounding them to 306 would end the warm-up at 1530 and decay every 734.4
  steps, up to 5.9 % below the original's rate.
* `WarmupCosineDecay`: the TPU code's "cosine" option, also counted from step 0.

All arithmetic is float32, like TF1's `tf.train.exponential_decay` that the TPU code called, so
the values agree with it bit for bit, including where float32 rounds step / decay_steps to just
below a whole number and the decay comes one step late, as it did on TPU (tested against
tf.compat.v1.train.exponential_decay at every step of whole runs).
"""

import math

import keras
import tensorflow as tf


def _check_positive(owner, name, value):
    """Raises ValueError unless `value` is a positive finite real number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{owner} {name} must be a positive number, got {value!r}")


def _check_non_negative(owner, name, value):
    """Raises ValueError unless `value` is a finite real number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{owner} {name} must be a number >= 0, got {value!r}")


def scaled_learning_rate(base_lr_per_256, global_batch_size):
    """Returns `base_lr_per_256 · global_batch_size / 256` (linear scaling, docs/recipe.md §5).

    Example: `scaled_learning_rate(0.016, 4096) == 0.256`.
    """
    _check_positive("scaled_learning_rate", "base_lr_per_256", base_lr_per_256)
    if isinstance(global_batch_size, bool) or not isinstance(global_batch_size, int) or (global_batch_size <= 0):
        raise ValueError(f"scaled_learning_rate global_batch_size must be a positive int, got {global_batch_size!r}")
    return base_lr_per_256 * global_batch_size / 256.0


def _warmup_steps(warmup_epochs, steps_per_epoch):
    # int() truncation as in tensorflow/tpu utils.py: warmup_steps = int(warmup_epochs * spe).
    return int(warmup_epochs * steps_per_epoch)


def _with_warmup(step, initial_learning_rate, warmup_steps, decayed):
    """Linear warm-up `initial · step / warmup_steps` before warmup_steps, then `decayed`."""
    if warmup_steps == 0:
        return decayed
    warmup_lr = initial_learning_rate * step / tf.constant(warmup_steps, tf.float32)
    # tf.where instead of tf.cond: both branches are cheap and it keeps the graph XLA/TPU friendly.
    return tf.where(step < float(warmup_steps), warmup_lr, decayed)


@keras.saving.register_keras_serializable(package="efficientnet")
class WarmupExponentialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up followed by staircase exponential decay counted from step 0.

    initial_learning_rate: peak rate (e.g. `scaled_learning_rate(0.016, 4096)`).
    steps_per_epoch: training steps per epoch, a float: images after the minival holdout / batch.
    warmup_epochs: epochs of linear warm-up from 0 (0 disables it). Default 5.
    decay_epochs: epochs between decays (may be fractional). Default 2.4.
    decay_rate: multiplicative factor per decay period, in (0, 1]. Default 0.97.
    staircase: decay in discrete steps (True, the recipe) or continuously.
    """

    def __init__(
        self, initial_learning_rate, steps_per_epoch, warmup_epochs=5, decay_epochs=2.4, decay_rate=0.97, staircase=True
    ):
        owner = "WarmupExponentialDecay"
        _check_positive(owner, "initial_learning_rate", initial_learning_rate)
        _check_positive(owner, "steps_per_epoch", steps_per_epoch)
        _check_non_negative(owner, "warmup_epochs", warmup_epochs)
        _check_positive(owner, "decay_epochs", decay_epochs)
        _check_positive(owner, "decay_rate", decay_rate)
        if decay_rate > 1:
            raise ValueError(f"{owner} decay_rate must be in (0, 1], got {decay_rate!r}")
        if not isinstance(staircase, bool):
            raise ValueError(f"{owner} staircase must be a bool, got {staircase!r}")
        self.initial_learning_rate = initial_learning_rate
        self.steps_per_epoch = steps_per_epoch
        self.warmup_epochs = warmup_epochs
        self.decay_epochs = decay_epochs
        self.decay_rate = decay_rate
        self.staircase = staircase
        # Not rounded: tensorflow/tpu utils.py passes steps_per_epoch * decay_epochs (736.02 at
        # batch 4096) straight to exponential_decay.
        self.decay_steps = steps_per_epoch * decay_epochs
        self.warmup_steps = _warmup_steps(warmup_epochs, steps_per_epoch)

    def __call__(self, step):
        """Returns the float32 learning rate at `step` (int or float tensor/variable)."""
        step = tf.cast(step, tf.float32)
        initial = tf.constant(self.initial_learning_rate, tf.float32)
        exponent = step / tf.constant(self.decay_steps, tf.float32)
        if self.staircase:
            exponent = tf.floor(exponent)
        decayed = initial * tf.pow(tf.constant(self.decay_rate, tf.float32), exponent)
        return _with_warmup(step, initial, self.warmup_steps, decayed)

    def get_config(self):
        """Returns the constructor arguments."""
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "steps_per_epoch": self.steps_per_epoch,
            "warmup_epochs": self.warmup_epochs,
            "decay_epochs": self.decay_epochs,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
        }


@keras.saving.register_keras_serializable(package="efficientnet")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up followed by `0.5 · initial · (1 + cos(pi · step / total_steps))`.

    As in tensorflow/tpu utils.py ("cosine"), the cosine runs over the raw step from 0, and the
    warm-up overrides its start. Unlike the TPU code, the step is clamped to `total_steps` so
    that training past the end keeps the rate at 0 instead of climbing back up the cosine.

    initial_learning_rate: peak rate.
    steps_per_epoch: training steps per epoch, a float (only used for the warm-up length).
    total_steps: step at which the rate reaches 0.
    warmup_epochs: epochs of linear warm-up from 0 (0 disables it). Default 5.
    """

    def __init__(self, initial_learning_rate, steps_per_epoch, total_steps, warmup_epochs=5):
        owner = "WarmupCosineDecay"
        _check_positive(owner, "initial_learning_rate", initial_learning_rate)
        _check_positive(owner, "steps_per_epoch", steps_per_epoch)
        _check_positive(owner, "total_steps", total_steps)
        _check_non_negative(owner, "warmup_epochs", warmup_epochs)
        self.initial_learning_rate = initial_learning_rate
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = total_steps
        self.warmup_epochs = warmup_epochs
        # A warm-up longer than total_steps is allowed, as for WarmupExponentialDecay: the rate then rises
        # linearly for the whole run and never reaches its peak. Both are reported by
        # `warmup_not_reached` (a one-line warning at the start of training), not refused, so that a
        # short smoke run of a long recipe still starts.
        self.warmup_steps = _warmup_steps(warmup_epochs, steps_per_epoch)

    def __call__(self, step):
        """Returns the float32 learning rate at `step` (int or float tensor/variable)."""
        step = tf.cast(step, tf.float32)
        initial = tf.constant(self.initial_learning_rate, tf.float32)
        total = tf.constant(self.total_steps, tf.float32)
        progress = tf.minimum(step, total) / total
        decayed = 0.5 * initial * (1.0 + tf.cos(math.pi * progress))
        return _with_warmup(step, initial, self.warmup_steps, decayed)

    def get_config(self):
        """Returns the constructor arguments."""
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "warmup_epochs": self.warmup_epochs,
        }


@keras.saving.register_keras_serializable(package="efficientnet")
class WarmupPolynomialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """tensorflow/tpu utils.py's "poly" schedule (lines 55-67), recommended there with LARS: after the linear
    warm-up, TF1's polynomial_decay of the steps since the warm-up (at least 1) over
    total_steps − warmup_steps + 1 steps, from the peak down to end_learning_rate (an absolute rate, 0.1 in the
    original) with exponent `power` (2 in the original), then held there.

    initial_learning_rate: peak rate.
    steps_per_epoch: training steps per epoch, a float (warm-up length).
    total_steps: the run's length in steps.
    warmup_epochs: epochs of linear warm-up from 0 (0 disables it).
    end_learning_rate: the rate the decay ends at.
    power: the polynomial's exponent.
    """

    def __init__(self, initial_learning_rate, steps_per_epoch, total_steps, warmup_epochs, end_learning_rate, power):
        owner = "WarmupPolynomialDecay"
        _check_positive(owner, "initial_learning_rate", initial_learning_rate)
        _check_positive(owner, "steps_per_epoch", steps_per_epoch)
        _check_positive(owner, "total_steps", total_steps)
        _check_non_negative(owner, "warmup_epochs", warmup_epochs)
        _check_non_negative(owner, "end_learning_rate", end_learning_rate)
        _check_positive(owner, "power", power)
        self.initial_learning_rate = initial_learning_rate
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = total_steps
        self.warmup_epochs = warmup_epochs
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.warmup_steps = _warmup_steps(warmup_epochs, steps_per_epoch)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        initial = tf.constant(self.initial_learning_rate, tf.float32)
        end = tf.constant(self.end_learning_rate, tf.float32)
        # The original's int64 max(1, step − warmup_steps) and denominator, here exact in float32 (< 2**24).
        since_warmup = tf.maximum(step - float(self.warmup_steps), 1.0)
        length = tf.constant(float(max(self.total_steps - self.warmup_steps + 1, 1)), tf.float32)
        progress = tf.minimum(since_warmup, length) / length
        decayed = (initial - end) * tf.pow(1.0 - progress, tf.constant(self.power, tf.float32)) + end
        return _with_warmup(step, initial, self.warmup_steps, decayed)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "warmup_epochs": self.warmup_epochs,
            "end_learning_rate": self.end_learning_rate,
            "power": self.power,
        }


@keras.saving.register_keras_serializable(package="efficientnet")
class WarmupConstant(keras.optimizers.schedules.LearningRateSchedule):
    """tensorflow/tpu utils.py's "constant" schedule (lines 53-54): the peak rate after the linear warm-up."""

    def __init__(self, initial_learning_rate, steps_per_epoch, warmup_epochs):
        _check_positive("WarmupConstant", "initial_learning_rate", initial_learning_rate)
        _check_positive("WarmupConstant", "steps_per_epoch", steps_per_epoch)
        _check_non_negative("WarmupConstant", "warmup_epochs", warmup_epochs)
        self.initial_learning_rate = initial_learning_rate
        self.steps_per_epoch = steps_per_epoch
        self.warmup_epochs = warmup_epochs
        self.warmup_steps = _warmup_steps(warmup_epochs, steps_per_epoch)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        initial = tf.constant(self.initial_learning_rate, tf.float32)
        return _with_warmup(step, initial, self.warmup_steps, initial + 0.0 * step)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "steps_per_epoch": self.steps_per_epoch,
            "warmup_epochs": self.warmup_epochs,
        }


def warmup_not_reached(schedule, total_steps):
    """A one-line warning when the warm-up of `schedule` is not shorter than a run of `total_steps`
    (the last update then uses less than the peak rate), else None. Either schedule class."""
    if total_steps <= 0 or schedule.warmup_steps < total_steps:
        return None
    last = float(schedule(total_steps - 1))
    return (
        f"warning: the warm-up ({schedule.warmup_steps} steps, {schedule.warmup_epochs:g} epochs) is not "
        f"shorter than the run ({total_steps} steps): the learning rate never reaches its peak "
        f"{schedule.initial_learning_rate:.4g} (last step {last:.4g}); shorten train.warmup_epochs"
    )
