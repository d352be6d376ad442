"""Everything a training run carries between steps: model, optimizer (with its step counter), EMA shadows.

Built once under the strategy's scope from the config; checkpointed together so that a restart continues
with the same step, learning rate, optimizer slots and averages.
"""
import dataclasses
import math

import keras
import tensorflow as tf

import efficientnet
from efficientnet import ema as ema_lib
from efficientnet import losses, optim, schedules
from training import warm_start


@dataclasses.dataclass
class TrainState:
    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    ema: ema_lib.ExponentialMovingAverage
    learning_rate: keras.optimizers.schedules.LearningRateSchedule

    @property
    def step(self):
        return int(self.optimizer.iterations.numpy())


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How long the run is, in steps, with the epoch length it was derived from.

    head_only_steps: the first steps train only the classifier (config.train.freeze_backbone_epochs).
    """
    steps_per_epoch: int
    total_steps: int
    steps_per_eval: int
    head_only_steps: int = 0

    @classmethod
    def from_config(cls, config, num_train_examples):
        steps_per_epoch = num_train_examples // config.train.batch_size
        if steps_per_epoch < 1:
            raise ValueError(f"the training split has {num_train_examples} images, fewer than one global batch "
                             f"of {config.train.batch_size}")
        total = config.train.steps
        if total is None:
            total = int(config.train.epochs * steps_per_epoch)
        per_eval = config.eval.steps_per_eval or max(1, int(config.eval.epochs_per_eval * steps_per_epoch))
        head_only = min(total, int(round(config.train.freeze_backbone_epochs * steps_per_epoch)))
        return cls(steps_per_epoch, total, min(per_eval, max(total, 1)), head_only)


def learning_rate_schedule(config, schedule):
    """The paper's schedule: 0.016 per 256 images, 5 warm-up epochs, x0.97 every 2.4 epochs (docs/recipe.md §5)."""
    initial = schedules.scaled_learning_rate(config.train.base_learning_rate, config.train.batch_size)
    if config.train.lr_schedule == "cosine":
        return schedules.WarmupCosineDecay(initial, schedule.steps_per_epoch, max(schedule.total_steps, 1),
                                           warmup_epochs=config.train.warmup_epochs)
    return schedules.WarmupExponentialDecay(
        initial, schedule.steps_per_epoch, warmup_epochs=config.train.warmup_epochs,
        decay_epochs=config.train.lr_decay_epochs, decay_rate=config.train.lr_decay_rate, staircase=True)


def variant(config):
    """The config's row of the scaling table, with width/depth replaced when the config overrides them."""
    row = efficientnet.get_variant(config.model.variant)
    changes = {field: config.model[field] for field in ("width_coefficient", "depth_coefficient")
               if config.model[field] is not None}
    return dataclasses.replace(row, **changes) if changes else row


def build_model(config, num_classes):
    """The network of the config (built under the current strategy scope and dtype policy)."""
    return efficientnet.build_model(
        variant(config), num_classes=num_classes, image_size=image_size(config),
        dropout_rate=config.model.dropout_rate, survival_prob=config.model.survival_prob,
        sync_batchnorm=config.model.sync_batchnorm)


def image_size(config):
    return config.model.image_size or variant(config).resolution


def crop_fraction(config):
    """Eval center-crop fraction: resolution / (resolution + 32) unless the config says otherwise."""
    if config.data.crop_fraction is not None:
        return config.data.crop_fraction
    size = image_size(config)
    return size / (size + 32)


def resize_method(config):
    """The input pipeline's resize kernel: config.data.resize_method, else the variant row's (bilinear for
    EdgeTPU and Lite, bicubic otherwise)."""
    return config.data.resize_method or variant(config).resize_method


def pipeline_kwargs(config, training):
    """The data.pipeline.make_dataset arguments the config decides, for training or for evaluation: the one place
    where the input side of the recipe is read from the config."""
    data = config.data
    kwargs = {"image_size": image_size(config), "training": training, "crop_fraction": crop_fraction(config),
              "resize_method": resize_method(config), "max_bad_fraction": data.max_bad_fraction}
    if training:
        kwargs.update(augment_name=data.augment_name, randaugment_num_layers=data.randaugment_num_layers,
                      randaugment_magnitude=data.randaugment_magnitude, area_range=tuple(data.crop_area_range),
                      aspect_ratio_range=tuple(data.crop_aspect_ratio_range), shuffle_buffer=data.shuffle_buffer,
                      deterministic=config.train.deterministic)
    return kwargs


def build_optimizer(config, learning_rate, model):
    """config.train.optimizer, created under the caller's strategy scope.

    "rmsprop" is the recipe: TF1 RMSProp (efficientnet.optim.RMSPropTF). "sgd" is SGD with train.momentum
    (keras.optimizers.SGD, the TF1 MomentumOptimizer update up to the learning-rate factoring). "adamw" is
    keras.optimizers.AdamW; its decoupled decay skips the variables the recipe's L2 skips (BatchNorm), and with
    decoupled_weight_decay 0 it is Adam. Each keeps its own slots in the checkpoint: resume with the optimizer
    the run started with.
    """
    train = config.train
    if train.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=train.momentum)
    if train.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=train.decoupled_weight_decay,
                                           beta_1=train.adam_beta_1, beta_2=train.adam_beta_2,
                                           epsilon=train.adam_epsilon)
        decayed = {id(v) for v in losses.weight_decay_variables(model)}
        optimizer.exclude_from_weight_decay(var_list=[v for v in model.trainable_variables
                                                      if id(v) not in decayed])
        return optimizer
    return optim.RMSPropTF(learning_rate, rho=train.rmsprop_decay, momentum=train.momentum, epsilon=train.epsilon)


def build_state(config, num_classes, schedule, strategy, init_checkpoint=None, log=print):
    """Creates model, optimizer and EMA under `strategy`, with every variable built before the first step.

    init_checkpoint: pretrained weights to start from (training/warm_start.py), loaded before the EMA shadows
    are created so that the average starts at them. config.train.freeze_backbone trains the classifier only
    (optimizer slots and EMA shadows then exist for it alone). With config.train.freeze_backbone_epochs they
    cover every layer: the Trainer freezes the backbone for the first steps and unfreezes it after.
    """
    with strategy.scope():
        model = build_model(config, num_classes)
    if init_checkpoint:
        log(warm_start.warm_start(model, init_checkpoint, lambda classes: build_model(config, classes)))
    if config.train.freeze_backbone:
        warm_start.freeze_backbone(model)
    with strategy.scope():
        learning_rate = learning_rate_schedule(config, schedule)
        warning = schedules.warmup_not_reached(learning_rate, schedule.total_steps)
        if warning:
            log(warning)
        optimizer = build_optimizer(config, learning_rate, model)
        optimizer.build(model.trainable_variables)
        ema = ema_lib.ExponentialMovingAverage(ema_lib.ema_variables(model),
                                               decay=config.train.moving_average_decay)
    return TrainState(model=model, optimizer=optimizer, ema=ema, learning_rate=learning_rate)


def eval_steps(num_examples, global_batch):
    """Eval steps that score every example once: the last batch is padded and masked."""
    return max(1, math.ceil(num_examples / global_batch))


def current_learning_rate(state):
    return float(state.learning_rate(tf.cast(state.optimizer.iterations, tf.float32)))
