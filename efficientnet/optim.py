"""RMSProp with the exact update rule of TF1 ``tf.train.RMSPropOptimizer``.

EfficientNet's published numbers were trained with the TF1 optimizer (tensorflow/tpu
models/official/efficientnet/utils.py ``build_optimizer``: decay 0.9, momentum 0.9, epsilon 1e-3).
Keras 3's ``keras.optimizers.RMSprop`` is a different algorithm in two ways that matter
(docs/recipe.md §5):

* it starts the mean-square accumulator at ZERO, so the first updates divide by sqrt((1-rho)·g²)
  and are about 3× (1/sqrt(0.1)) larger than TF1's, which starts it at ONE;
* it adds epsilon outside the square root (default 1e-7), TF1 adds it inside (1e-3 here), which
  caps the step for parameters with tiny gradients.

``RMSPropTF`` is a Keras 3 optimizer (so it works with ``optimizer.build``, ``apply_gradients``,
``tf.distribute`` and XLA) whose per-variable update is TF1's ApplyRMSProp kernel:

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
    """Raises ValueError unless ``value`` is a float in [0, 1) (or (0, 1) if not low_inclusive)."""
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

    Args:
        learning_rate: a float or a ``keras.optimizers.schedules.LearningRateSchedule`` (evaluated
            at ``optimizer.iterations``, i.e. the step count BEFORE this update, like TF1's
            global_step before ``minimize`` increments it).
        rho: discounting factor of the mean-square accumulator (TF1 ``decay``), default 0.9.
        momentum: momentum coefficient, default 0.9.
        epsilon: added to the accumulator inside the square root, default 1e-3.
        name: optimizer name.
        **kwargs: other ``keras.optimizers.Optimizer`` arguments (clipnorm, global_clipnorm,
            loss_scale_factor, ...). ``use_ema`` is refused: Keras' built-in average skips the
            BatchNorm statistics and has no warm-up; use ``efficientnet.ema`` instead.

    Gradients are summed across replicas by the Keras TF backend when ``apply_gradients`` runs in
    a replica context, so the caller divides the loss by the GLOBAL batch size.
    """

    def __init__(self, learning_rate=0.016, rho=0.9, momentum=0.9, epsilon=1e-3,
                 name="RMSPropTF", **kwargs):
        if kwargs.get("use_ema"):
            raise ValueError("RMSPropTF use_ema=True is not supported: use "
                             "efficientnet.ema.ExponentialMovingAverage (averages BatchNorm "
                             "statistics too, docs/recipe.md §5)")
        _check_fraction("rho", rho, low_inclusive=True)
        _check_fraction("momentum", momentum, low_inclusive=True)
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or epsilon <= 0:
            raise ValueError(f"RMSPropTF epsilon must be a positive float, got {epsilon!r}")
        if isinstance(learning_rate, (int, float)) and not isinstance(learning_rate, bool):
            if learning_rate < 0:
                raise ValueError(
                    f"RMSPropTF learning_rate must be >= 0, got {learning_rate!r}")
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
        if tf.distribute.has_strategy() and (
                tf.distribute.get_strategy() is not self._distribution_strategy):
            raise ValueError("RMSPropTF was created outside the current strategy.scope(); "
                             "create the optimizer inside the same scope as the model")
        super().build(var_list)
        # Ones, not zeros: TF1 RMSPropOptimizer._create_slots uses a ones initializer for "rms"
        # (docs/recipe.md §5); this is the main numeric difference from keras.optimizers.RMSprop.
        self._mean_squares = [
            self.add_variable_from_reference(v, name=_MS_SLOT, initializer="ones")
            for v in var_list]
        self._momentums = [
            self.add_variable_from_reference(v, name=_MOM_SLOT, initializer="zeros")
            for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        """Applies one TF1 ApplyRMSProp update to ``variable`` (dense gradients only)."""
        if isinstance(gradient, tf.IndexedSlices):
            # TF1 has a separate sparse kernel that only touches the gathered rows; silently
            # densifying would decay every row's accumulator instead, so refuse.
            raise NotImplementedError(
                f"RMSPropTF does not implement sparse (IndexedSlices) gradients; variable "
                f"{variable.name} got one. Convert it with tf.convert_to_tensor first if the "
                f"dense TF1 semantics are what you want.")
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        # One fused kernel per variable, tf.raw_ops.ResourceApplyRMSProp: it IS TF1's ApplyRMSProp
        # (tensorflow/core/kernels/training_ops.cc: ms += (g² - ms)(1 - rho); mom = momentum·mom +
        # lr·g / sqrt(ms + eps); var -= mom), so the oracle semantics hold by construction, and it
        # replaces ~12 graph ops per variable: tracing, graph optimisation and per-step dispatch of
        # B0's 213 variables were a measured cost (benchmarks/README.md). XLA (TPU) has a lowering.
        tf.raw_ops.ResourceApplyRMSProp(
            var=_handle(variable), ms=_handle(self._mean_squares[index]),
            mom=_handle(self._momentums[index]), lr=tf.cast(learning_rate, dtype),
            rho=tf.constant(self.rho, dtype), momentum=tf.constant(self.momentum, dtype),
            epsilon=tf.constant(self.epsilon, dtype), grad=tf.cast(gradient, dtype))

    def get_config(self):
        """Returns the constructor arguments (learning-rate schedules are serialized)."""
        config = super().get_config()
        config.update({"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon})
        return config
