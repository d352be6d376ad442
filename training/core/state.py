"""Everything a training run carries between steps: model, optimizer (with its step counter), EMA shadows.

Built once under the strategy's scope from the run plan (training/core/recipe.py); for training only (scoring
and export load their model through training/serving/scoring.py). Checkpointed together so that a restart
continues with the same step, learning rate, optimizer slots and averages.
"""

import dataclasses

import keras
import tensorflow as tf

from efficientnet import ema as ema_lib
from efficientnet import losses, optim, schedules
from training.core import recipe, warm_start


@dataclasses.dataclass
class TrainState:
    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    ema: ema_lib.ExponentialMovingAverage
    learning_rate: keras.optimizers.schedules.LearningRateSchedule

    @property
    def step(self):
        return int(self.optimizer.iterations.numpy())


def build_optimizer(config, learning_rate, model):
    """config.train.optimizer, created under the caller's strategy scope.

    "rmsprop" is the recipe: TF1 RMSProp (efficientnet.optim.RMSPropTF). "momentum", "sgd" and "lars" are the
    original's other choices (tensorflow/tpu utils.py build_optimizer): TF1's MomentumOptimizer with
    train.momentum (optim.MomentumTF), plain gradient descent (keras SGD without momentum: w -= lr · g, TF1's
    GradientDescentOptimizer), and its LARS (optim.LARS, which leaves BatchNorm and biases unadapted as the
    original's skip list does). "adamw" is keras.optimizers.AdamW; its decoupled decay skips the variables the
    recipe's L2 skips (BatchNorm), and with decoupled_weight_decay 0 it is Adam. Each keeps its own slots in the
    checkpoint: resume with the optimizer the run started with.
    """
    train = config.train
    decayed = {id(v) for v in losses.weight_decay_variables(model)}
    if train.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.0)
    if train.optimizer == "momentum":
        return optim.MomentumTF(learning_rate, momentum=train.momentum)
    if train.optimizer == "lars":
        optimizer = optim.LARS(
            learning_rate,
            momentum=train.momentum,
            weight_decay=train.lars_weight_decay,
            eeta=train.lars_eeta,
            epsilon=train.lars_epsilon,
        )
        # The original's skip list ['batch_normalization', 'bias', 'beta', 'gamma'] (utils.py:106-111).
        optimizer.exclude_from_adaptation(
            [v for v in model.trainable_variables if id(v) not in decayed or v.name == "bias"]
        )
        return optimizer
    if train.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(
            learning_rate,
            weight_decay=train.decoupled_weight_decay,
            beta_1=train.adam_beta_1,
            beta_2=train.adam_beta_2,
            epsilon=train.adam_epsilon,
        )
        optimizer.exclude_from_weight_decay(var_list=[v for v in model.trainable_variables if id(v) not in decayed])
        return optimizer
    return optim.RMSPropTF(learning_rate, rho=train.rmsprop_decay, momentum=train.momentum, epsilon=train.epsilon)


def with_loss_scaling(optimizer, model, train):
    """`optimizer` wrapped in dynamic loss scaling (optim.LossScaleOptimizer, starting at
    train.loss_scale_initial) when `model` computes in float16, whose range flushes small gradients to zero;
    `optimizer` itself otherwise (float32 and bfloat16 need none)."""
    if model.dtype_policy.compute_dtype != "float16":
        return optimizer
    return optim.LossScaleOptimizer(
        optimizer, initial_scale=train.loss_scale_initial, dynamic_growth_steps=train.loss_scale_growth_steps
    )


def build_state(plan, strategy, init_checkpoint=None, log=print):
    """Creates model, optimizer and EMA of `plan` (its network and schedule) under `strategy`, with every
    variable built before the first step.

    init_checkpoint: pretrained weights to start from (training/core/warm_start.py), loaded before the EMA shadows
    are created so that the average starts at them. config.train.freeze_backbone trains the classifier only
    (optimizer slots and EMA shadows then exist for it alone). With config.train.freeze_backbone_epochs they
    cover every layer: the Trainer freezes the backbone for the first steps and unfreezes it after.
    """
    config, schedule = plan.config, plan.schedule
    with strategy.scope():
        model = plan.network.build()
    if init_checkpoint:
        log(warm_start.warm_start(model, init_checkpoint, lambda classes: plan.network.inference(classes).build()))
    if config.train.freeze_backbone:
        warm_start.freeze_backbone(model)
    with strategy.scope():
        learning_rate = recipe.learning_rate_schedule(config, schedule)
        warning = schedules.warmup_not_reached(learning_rate, schedule.total_steps)
        if warning:
            log(warning)
        optimizer = with_loss_scaling(build_optimizer(config, learning_rate, model), model, config.train)
        optimizer.build(model.trainable_variables)
        ema = ema_lib.ExponentialMovingAverage(ema_lib.ema_variables(model), decay=config.train.moving_average_decay)
    return TrainState(model=model, optimizer=optimizer, ema=ema, learning_rate=learning_rate)


def current_learning_rate(state):
    return float(state.learning_rate(tf.cast(state.optimizer.iterations, tf.float32)))


def loss_scale(state):
    """The dynamic loss scale of a float16 run (with_loss_scaling); None for a run without one."""
    if not isinstance(state.optimizer, optim.LossScaleOptimizer):
        return None
    return float(state.optimizer.dynamic_scale.numpy())
