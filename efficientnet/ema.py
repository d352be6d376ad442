"""Exponential moving average of model weights AND BatchNorm statistics (docs/recipe.md §5).

The TPU recipe (tensorflow/tpu main.py) keeps `tf.train.ExponentialMovingAverage(0.9999,
num_updates=global_step)` of every trainable variable plus every BatchNorm moving mean/variance
(utils.py `get_ema_vars`) and evaluates/exports with the averages; evaluating the raw weights
instead costs about 3 top-1 points (tensorflow/tpu#408). Keras' optimizer `use_ema` averages
trainables only, with no warm-up, so this module provides the TF1 behaviour:

    decay_t = min(decay, (1 + step) / (10 + step))      (warm-up, TF1 num_updates)
    shadow  <- shadow - (1 - decay_t) · (shadow - value)

Distribution: create the average inside `strategy.scope()`. The shadows are ON_WRITE mirrored
variables with aggregation NONE, so an `apply` inside `strategy.run` updates each replica's
shadow from that replica's own variable with no communication. Trainable weights are identical on
all replicas, so their shadows stay identical; Keras 3 BatchNorm moving statistics are per-replica
(each replica assigns its own batch statistics, like per-core BN on TPU), and each replica's shadow
averages its own statistics. Checkpoints store replica 0's values of both the model variables and
the shadows, so a restored model and its averages are consistent. `swap`/`copy_to` also work
replica by replica.
"""

import contextlib

import keras
import tensorflow as tf

from efficientnet import model_walk


def _as_tf_variable(variable):
    """Returns the tf.Variable behind a Keras 3 variable (the variable itself otherwise)."""
    if isinstance(variable, keras.Variable):
        return variable.value
    return variable


def ema_variables(model):
    """Variables the TPU recipe averages: trainables + every BatchNorm moving mean/variance.

    model: a built `keras.Model` (or layer).

    Returns `model.trainable_variables` followed by (moving_mean, moving_variance) of every
    `keras.layers.BatchNormalization` in the model, without duplicates (tensorflow/tpu utils.py
    `get_ema_vars`).
    """
    model_walk.check_built(model, "ema_variables")
    result, seen = [], set()
    candidates = list(model.trainable_variables)
    for layer in model_walk.batchnorm_layers(model):
        candidates += [layer.moving_mean, layer.moving_variance]
    for variable in candidates:
        if id(variable) not in seen:
            seen.add(id(variable))
            result.append(variable)
    return result


class _Untracked:
    """Holds the model's variables out of checkpoint tracking (they belong to the model)."""

    def __init__(self, items):
        self.items = tuple(items)


def _check_variables(variables):
    """Validates the list passed to ExponentialMovingAverage and returns it as tf.Variables."""
    variables = list(variables) if variables is not None else []
    if not variables:
        raise ValueError("ExponentialMovingAverage needs a non-empty list of variables, got none")
    tf_vars, seen = [], set()
    for variable in variables:
        tf_var = _as_tf_variable(variable)
        if not isinstance(tf_var, tf.Variable):
            raise ValueError(
                f"ExponentialMovingAverage expects variables, got {type(variable).__name__}: {variable!r:.80}"
            )
        if not tf_var.dtype.is_floating:
            raise ValueError(
                f"ExponentialMovingAverage can only average float variables, {tf_var.name} is {tf_var.dtype.name}"
            )
        if id(tf_var) in seen:
            raise ValueError(f"ExponentialMovingAverage got variable {tf_var.name} twice")
        seen.add(id(tf_var))
        tf_vars.append(tf_var)
    return tf_vars


class ExponentialMovingAverage(tf.Module):
    """Shadow copies of `variables` updated by `apply(step)`; saved by tf.train.Checkpoint.

    variables: variables to average (e.g. `ema_variables(model)`), Keras or tf.Variables.
    decay: the final decay, in [0, 1]. Default 0.9999 (docs/recipe.md §5).
    warmup: use `min(decay, (1 + step) / (10 + step))` (TF1 `num_updates`). Default True.
    name: module name (checkpoint keys are "shadows/0", "shadows/1", ... under the attribute
        the caller gives this object).

    Shadows start at the variables' current values (TF1 starts them at the initial values, which
    is the same thing when the average is created before training).
    """

    def __init__(self, variables, decay=0.9999, *, warmup=True, name="ema"):
        super().__init__(name=name)
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not (0.0 <= decay <= 1.0):
            raise ValueError(f"ExponentialMovingAverage decay must be a float in [0, 1], got {decay!r}")
        if not isinstance(warmup, bool):
            raise ValueError(f"ExponentialMovingAverage warmup must be a bool, got {warmup!r}")
        tf_vars = _check_variables(variables)
        self._check_strategy(tf_vars)
        self.decay = float(decay)
        self.warmup = warmup
        self._strategy = tf.distribute.get_strategy()
        self._averaged = _Untracked(tf_vars)
        with tf.init_scope():
            # aggregation NONE: replica-local updates, see the module docstring.
            self.shadows = [
                tf.Variable(
                    v.read_value(), trainable=False, name=_shadow_name(v), aggregation=tf.VariableAggregation.NONE
                )
                for v in tf_vars
            ]

    @staticmethod
    def _check_strategy(tf_vars):
        """Distributed variables need their shadows created in the same strategy's scope."""
        distributed = any(isinstance(v, tf.distribute.DistributedValues) for v in tf_vars)
        if distributed and not tf.distribute.has_strategy():
            raise ValueError(
                "ExponentialMovingAverage: the variables are distributed; create "
                "the average inside the same strategy.scope() as the model"
            )

    @property
    def averaged_variables(self):
        """The model variables being averaged (tf.Variables), in the order given."""
        return self._averaged.items

    @tf.autograph.experimental.do_not_convert
    def decay_at(self, step):
        """The float32 decay used at `step`: min(decay, (1+step)/(10+step)) with warm-up."""
        decay = tf.constant(self.decay, tf.float32)
        if not self.warmup:
            return decay
        step = tf.cast(step, tf.float32)
        # Same expression as TF1 ExponentialMovingAverage with num_updates (docs/recipe.md §5).
        return tf.minimum(decay, (1.0 + step) / (10.0 + step))

    # No autograph: the loop is over Python lists and builds one update per variable. Converting it
    # cost ~9 s of B0's train-step tracing (cProfile, benchmarks/README.md) for no graph change.
    @tf.autograph.experimental.do_not_convert
    def apply(self, step):
        """Moves every shadow toward its variable; call after the optimizer step.

        step: the global step AFTER the optimizer update (`optimizer.iterations` once
            `apply_gradients` has run, 1 on the first update). tensorflow/tpu main.py runs
            `ema.apply` under a control dependency on `minimize`, which has already
            incremented global_step. Ignored when `warmup` is False.

        Works eagerly, inside tf.function (also jit_compile=True), and inside `strategy.run`.
        """
        complement = {}
        for variable, shadow in self._pairs():
            if shadow.dtype not in complement:  # one cast per dtype, not one per variable
                complement[shadow.dtype] = tf.cast(1.0 - self.decay_at(step), shadow.dtype)
            # (shadow - value) * (1 - decay): TF1 assign_moving_average's order of operations.
            shadow.assign_sub((shadow - variable) * complement[shadow.dtype])

    def copy_to(self, variables=None):
        """Assigns the averages to `variables` (default: the averaged variables themselves)."""
        targets = self.averaged_variables if variables is None else _check_variables(variables)
        if len(targets) != len(self.shadows):
            raise ValueError(
                f"ExponentialMovingAverage.copy_to needs {len(self.shadows)} "
                f"variables (one per shadow), got {len(targets)}"
            )
        for target, shadow in self._pairs(targets):
            if tuple(target.shape) != tuple(shadow.shape):
                raise ValueError(
                    f"ExponentialMovingAverage.copy_to: {target.name} has shape "
                    f"{tuple(target.shape)}, its shadow {tuple(shadow.shape)}"
                )
            target.assign(tf.cast(shadow, target.dtype))

    def swap(self):
        """Exchanges model values and averages in place; calling it again undoes it.

        Use it around evaluation/export (or use `swapped()`). A checkpoint written while
        swapped stores the exchanged values, so swap back before saving.
        """
        for variable, shadow in self._pairs():
            saved = tf.identity(variable.read_value())
            variable.assign(shadow.read_value())
            shadow.assign(saved)

    @contextlib.contextmanager
    def swapped(self):
        """Context manager: the model holds the averages inside the block, its own values after."""
        self.swap()
        try:
            yield self
        finally:
            self.swap()

    @tf.autograph.experimental.do_not_convert
    def _pairs(self, targets=None):
        """(variable, shadow) pairs to update: replica-local components in cross-replica context.

        In a replica context (inside strategy.run), reading/assigning a mirrored variable already
        touches only the local copy. Anywhere else (cross-replica context, or outside any scope)
        the same ops would read replica 0 and broadcast (or write replica 0 only), which would
        overwrite the other replicas' own BatchNorm statistics, so we go through each replica's
        component explicitly (a single component when nothing is distributed).
        """
        targets = self.averaged_variables if targets is None else targets
        if tf.distribute.has_strategy() and not tf.distribute.in_cross_replica_context():
            return list(zip(targets, self.shadows))
        pairs = []
        for target, shadow in zip(targets, self.shadows):
            target_parts = self._strategy.experimental_local_results(target)
            shadow_parts = self._strategy.experimental_local_results(shadow)
            if len(target_parts) != len(shadow_parts):
                raise ValueError(
                    f"ExponentialMovingAverage: {target.name} has "
                    f"{len(target_parts)} replicas, its shadow "
                    f"{len(shadow_parts)}; create both under the same strategy"
                )
            pairs.extend(zip(target_parts, shadow_parts))
        return pairs


def _shadow_name(variable):
    # TF1 names shadows <variable>/ExponentialMovingAverage (docs/recipe.md §2).
    return variable.name.split(":")[0] + "/ExponentialMovingAverage"
