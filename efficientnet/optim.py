"""RMSProp with the exact update rule of TF1 `tf.train.RMSPropOptimizer`.

EfficientNet's published numbers were trained with the TF1 optimizer (tensorflow/tpu
models/official/efficientnet/utils.py `build_optimizer`: decay 0.9, momentum 0.9, epsilon 1e-3).
Keras 3's `keras.optimizers.RMSprop` is a different algorithm in two ways that matter
(docs/recipe.md §5):

* it starts the mean-square accumulator at ZERO, so the first updates divide by sqrt((1-rho)·g²)
  and are about 3× (1/sqrt(0.1)) larger than TF1's, which starts it at ONE;
* it adds epsilon outside the square root (default 1e-7), TF1 adds it inside (1e-3 here), which
  caps the step for parameters with tiny gradients.

`RMSPropTF` is a Keras 3 optimizer (so it works with `optimizer.build`, `apply_gradients`,
`tf.distribute` and XLA) whose per-variable update is TF1's ApplyRMSProp kernel:

    ms  <- ms + (1 - rho) * (g² - ms)                 (ms starts at 1)
    mom <- momentum * mom + lr * g / sqrt(ms + epsilon)
    w   <- w - mom
"""

import keras
import tensorflow as tf

# TF1 names its two slots "rms" and "momentum" (tensorflow/python/training/rmsprop.py); we keep
# the names so checkpoints are readable side by side.
_MS_SLOT = "rms"
_MOM_SLOT = "momentum"


def _check_fraction(name, value, low_inclusive):
    """Raises ValueError unless `value` is a float in [0, 1) (or (0, 1) if not low_inclusive)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"RMSPropTF {name} must be a float, got {value!r}")
    if not ((0.0 <= value if low_inclusive else 0.0 < value) and value < 1.0):
        bound = "[0, 1)" if low_inclusive else "(0, 1)"
        raise ValueError(f"RMSPropTF {name} must be in {bound}, got {value!r}")


def _handle(variable):
    """The resource handle of a (Keras or tf) variable; inside strategy.extended.update, the local one."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle


@keras.saving.register_keras_serializable(package="efficientnet")
class RMSPropTF(keras.optimizers.Optimizer):
    """RMSProp with TF1 semantics (accumulator initialized to one, epsilon inside the sqrt).

    learning_rate: a float or a `keras.optimizers.schedules.LearningRateSchedule` (evaluated
        at `optimizer.iterations`, i.e. the step count BEFORE this update, like TF1's
        global_step before `minimize` increments it).
    rho: discounting factor of the mean-square accumulator (TF1 `decay`), default 0.9.
    momentum: momentum coefficient, default 0.9.
    epsilon: added to the accumulator inside the square root, default 1e-3.
    name: optimizer name.
    **kwargs: other `keras.optimizers.Optimizer` arguments (clipnorm, global_clipnorm,
        loss_scale_factor, ...). `use_ema` is refused: Keras' built-in average skips the
        BatchNorm statistics and has no warm-up; use `efficientnet.ema` instead.

    Gradients are summed across replicas by the Keras TF backend when `apply_gradients` runs in
    a replica context, so the caller divides the loss by the GLOBAL batch size.
    """

    def __init__(self, learning_rate=0.016, rho=0.9, momentum=0.9, epsilon=1e-3, name="RMSPropTF", **kwargs):
        if kwargs.get("use_ema"):
            raise ValueError(
                "RMSPropTF use_ema=True is not supported: use "
                "efficientnet.ema.ExponentialMovingAverage (averages BatchNorm "
                "statistics too, docs/recipe.md §5)"
            )
        _check_fraction("rho", rho, low_inclusive=True)
        _check_fraction("momentum", momentum, low_inclusive=True)
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or epsilon <= 0:
            raise ValueError(f"RMSPropTF epsilon must be a positive float, got {epsilon!r}")
        if isinstance(learning_rate, (int, float)) and not isinstance(learning_rate, bool):
            if learning_rate < 0:
                raise ValueError(f"RMSPropTF learning_rate must be >= 0, got {learning_rate!r}")
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.rho = float(rho)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)

    def build(self, var_list):
        """Creates the "rms" (ones) and "momentum" (zeros) slots for every variable."""
        if self.built:
            return
        # The Keras TF backend all-reduces and merges through the strategy captured in
        # __init__; an optimizer made outside the scope would silently skip that machinery.
        if tf.distribute.has_strategy() and (tf.distribute.get_strategy() is not self._distribution_strategy):
            raise ValueError(
                "RMSPropTF was created outside the current strategy.scope(); "
                "create the optimizer inside the same scope as the model"
            )
        super().build(var_list)
        # Ones, not zeros: TF1 RMSPropOptimizer._create_slots uses a ones initializer for "rms"
        # (docs/recipe.md §5); this is the main numeric difference from keras.optimizers.RMSprop.
        self._mean_squares = [self.add_variable_from_reference(v, name=_MS_SLOT, initializer="ones") for v in var_list]
        self._momentums = [self.add_variable_from_reference(v, name=_MOM_SLOT, initializer="zeros") for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        """Applies one TF1 ApplyRMSProp update to `variable` (dense gradients only)."""
        if isinstance(gradient, tf.IndexedSlices):
            # TF1 has a separate sparse kernel that only touches the gathered rows; silently
            # densifying would decay every row's accumulator instead, so refuse.
            raise NotImplementedError(
                f"RMSPropTF does not implement sparse (IndexedSlices) gradients; variable "
                f"{variable.name} got one. Convert it with tf.convert_to_tensor first if the "
                f"dense TF1 semantics are what you want."
            )
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        # One fused kernel per variable, tf.raw_ops.ResourceApplyRMSProp: it IS TF1's ApplyRMSProp
        # (tensorflow/core/kernels/training_ops.cc: ms += (g² - ms)(1 - rho); mom = momentum·mom +
        # lr·g / sqrt(ms + eps); var -= mom), so the oracle semantics hold by construction, and it
        # replaces ~12 graph ops per variable: tracing, graph optimisation and per-step dispatch of
        # B0's 213 variables were a measured cost (benchmarks/README.md). XLA (TPU) has a lowering.
        tf.raw_ops.ResourceApplyRMSProp(
            var=_handle(variable),
            ms=_handle(self._mean_squares[index]),
            mom=_handle(self._momentums[index]),
            lr=tf.cast(learning_rate, dtype),
            rho=tf.constant(self.rho, dtype),
            momentum=tf.constant(self.momentum, dtype),
            epsilon=tf.constant(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )

    def get_config(self):
        """Returns the constructor arguments (learning-rate schedules are serialized)."""
        config = super().get_config()
        config.update({"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon})
        return config


def _check_momentum(owner, momentum):
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0.0 <= momentum < 1.0:
        raise ValueError(f"{owner} momentum must be in [0, 1), got {momentum!r}")


def _momentum_slots(optimizer, var_list):
    """The zero-initialized "momentum" slot of each variable (TF1's name for MomentumOptimizer's accumulator)."""
    return [optimizer.add_variable_from_reference(v, name=_MOM_SLOT, initializer="zeros") for v in var_list]


def _dense(owner, gradient, variable):
    if isinstance(gradient, tf.IndexedSlices):
        raise NotImplementedError(
            f"{owner} does not implement sparse (IndexedSlices) gradients; variable {variable.name} got one"
        )
    return tf.cast(gradient, variable.dtype)


@keras.saving.register_keras_serializable(package="efficientnet")
class MomentumTF(keras.optimizers.Optimizer):
    """TF1 `tf.train.MomentumOptimizer` (tensorflow/tpu utils.py build_optimizer "momentum"):

        accum <- momentum · accum + g
        w     <- w - lr · accum

    Keras' SGD keeps v <- momentum · v - lr · g instead, which differs once the learning rate changes
    between steps (the schedule's warm-up and decays). Slot "momentum", zeros. Gradients are summed across
    replicas as for RMSPropTF: divide the loss by the global batch.
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, name="MomentumTF", **kwargs):
        _check_momentum("MomentumTF", momentum)
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum = float(momentum)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums = _momentum_slots(self, var_list)

    def update_step(self, gradient, variable, learning_rate):
        """One ResourceApplyMomentum, TF1's own kernel (training_ops.cc ApplyMomentum)."""
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyMomentum(
            var=_handle(variable),
            accum=_handle(self._momentums[index]),
            lr=tf.cast(learning_rate, dtype),
            grad=_dense("MomentumTF", gradient, variable),
            momentum=tf.constant(self.momentum, dtype),
        )

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum})
        return config


@keras.saving.register_keras_serializable(package="efficientnet")
class LARS(keras.optimizers.Optimizer):
    """Layer-wise Adaptive Rate Scaling as tensorflow/tpu lars_optimizer.py (You, Gitman, Ginsburg 2017), per
    variable w with gradient g, unless excluded (the original skips names containing batch_normalization,
    bias, beta or gamma: utils.py build_optimizer; `exclude_from_adaptation`):

        trust = eeta · ‖w‖ / (‖g‖ + weight_decay · ‖w‖ + epsilon)   (1 where ‖w‖ or ‖g‖ is 0)
        g'    = g + weight_decay · w
        accum <- momentum · accum + lr · trust · g'
        w     <- w - accum

    An excluded variable gets accum <- momentum · accum + lr · g (no decay, no trust ratio). The original
    applies this through TF1's ApplyMomentum with learning rate 1 and gradient lr · trust · g'; so does this.
    """

    def __init__(
        self, learning_rate=0.01, momentum=0.9, weight_decay=1e-4, eeta=0.001, epsilon=0.0, name="LARS", **kwargs
    ):
        _check_momentum("LARS", momentum)
        for field, value in (("weight_decay", weight_decay), ("eeta", eeta), ("epsilon", epsilon)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"LARS {field} must be a number >= 0, got {value!r}")
        # Keras' own weight_decay argument is the decoupled kind; LARS' decay enters the gradient instead.
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum = float(momentum)
        self.lars_weight_decay = float(weight_decay)
        self.eeta = float(eeta)
        self.lars_epsilon = float(epsilon)
        self._excluded_keys = set()

    def exclude_from_adaptation(self, var_list):
        """Variables updated by plain momentum (no trust ratio, no decay); call before `build`."""
        if self.built:
            raise ValueError("LARS.exclude_from_adaptation must be called before the optimizer is built")
        self._excluded_keys.update(self._var_key(v) for v in var_list)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums = _momentum_slots(self, var_list)
        self._adapted = [self._var_key(v) not in self._excluded_keys for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        gradient = _dense("LARS", gradient, variable)
        learning_rate = tf.cast(learning_rate, dtype)
        if self._adapted[index]:
            weights = tf.convert_to_tensor(variable)
            w_norm, g_norm = tf.norm(weights, ord=2), tf.norm(gradient, ord=2)
            ratio = self.eeta * w_norm / (g_norm + self.lars_weight_decay * w_norm + self.lars_epsilon)
            trust = tf.where(w_norm > 0, tf.where(g_norm > 0, ratio, 1.0), 1.0)
            learning_rate = learning_rate * trust
            gradient = gradient + self.lars_weight_decay * weights
        tf.raw_ops.ResourceApplyMomentum(
            var=_handle(variable),
            accum=_handle(self._momentums[index]),
            lr=tf.constant(1.0, dtype),
            grad=gradient * learning_rate,
            momentum=tf.constant(self.momentum, dtype),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "weight_decay": self.lars_weight_decay,
                "eeta": self.eeta,
                "epsilon": self.lars_epsilon,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="efficientnet")
class LossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """Keras' dynamic loss scaling (for float16 training), with a skipped step still counted as a step.

    As Keras': the loss is multiplied by the scale before differentiation, the gradients divided by it after;
    a step with non-finite gradients is skipped (weights and slots untouched) and halves the scale, and
    `dynamic_growth_steps` finite steps in a row double it. The scale and that count are optimizer variables,
    so a checkpoint holds them. One difference: Keras 3 leaves `iterations` unchanged on a skipped step, while
    tf.keras 2's LossScaleOptimizer incremented it there too (its do_not_apply_fn), as TF1's global step did.
    Here step N is always the N-th batch, so the learning-rate schedule, the EMA's warm-up, the checkpoint and
    evaluation steps and the checkpointed input position stay in step with the data whatever the scale did.
    """

    def _stateful_handle_non_finite_grads(self):
        super()._stateful_handle_non_finite_grads()
        self.iterations.assign_add(1)
