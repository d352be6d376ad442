"""What a run's config derives: the variant row, the input size, crop and resize kernel, the input pipeline's
arguments, the run's length in steps and its learning-rate schedule.

The one place these are computed from the config, so that training, evaluation, export, predict and the sidecar
agree; training/core/state.py builds the model, optimizer and EMA from them. The numbers are the recipe's
(docs/recipe.md), the fields configs/base.py's.
"""
import dataclasses
import math

import tensorflow as tf

import efficientnet
from data import preprocessing
from efficientnet import schedules
from training.errors import UserError


def variant(config):
    """The config's row of the scaling table, with width/depth replaced when the config overrides them."""
    row = efficientnet.get_variant(config.model.variant)
    changes = {field: config.model[field] for field in ("width_coefficient", "depth_coefficient")
               if config.model[field] is not None}
    return dataclasses.replace(row, **changes) if changes else row


def image_size(config):
    return config.model.image_size or variant(config).resolution


def crop_fraction(config):
    """Eval center-crop fraction: config.data.crop_fraction, else the published-era image_size / (image_size + 32)
    (data/preprocessing.py holds the rule; docs/recipe.md §1)."""
    if config.data.crop_fraction is not None:
        return config.data.crop_fraction
    return preprocessing.default_crop_fraction(image_size(config))


def resize_method(config):
    """The input pipeline's resize kernel: config.data.resize_method, else the variant row's (bilinear for
    EdgeTPU and Lite, bicubic otherwise)."""
    return config.data.resize_method or variant(config).resize_method


def tpu_batchnorm_group_size(num_replicas):
    """The original's BatchNorm group on a TPU slice of `num_replicas` cores (tensorflow/tpu utils.py:147-151):
    per core up to 8 cores, else max(8, cores // 8) cores: 8 up to 64 cores, 16 on 128, 256 on 2048."""
    return 1 if num_replicas <= 8 else max(8, num_replicas // 8)


def batchnorm_group_size(config, strategy):
    """How many replicas share their BatchNorm statistics in training (config.model.batchnorm_group_size) under
    `strategy`; 1 when strategy is None (a network that only infers never computes batch statistics)."""
    if strategy is None:
        return 1
    replicas = strategy.num_replicas_in_sync
    setting = str(config.model.batchnorm_group_size)
    if setting == "auto":
        # The original's rule is the TPU's; other strategies keep per-replica statistics (their default so far).
        size = tpu_batchnorm_group_size(replicas) if isinstance(strategy, tf.distribute.TPUStrategy) else 1
    else:
        size = replicas if setting == "all" else int(setting)
    if replicas % size:  # the original raises here too (utils.py:132-134)
        raise UserError(f"model.batchnorm_group_size {size} does not divide the {replicas} replicas; set "
                        "--config.model.batchnorm_group_size to a divisor, all or 1")
    return size


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
                      deterministic=config.train.deterministic, mixup_alpha=data.mixup_alpha)
    return kwargs


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How long the run is, in steps, with the epoch length it was derived from.

    steps_per_epoch: training images (minival excluded) / global batch, a float as in the original (main.py
      divides with `from __future__ import division`, line 709): the learning rate's warm-up and decay lengths
      come from it unrounded (efficientnet/schedules.py).
    total_steps, steps_per_eval, head_only_steps: whole steps. An epoch-specified length truncates
      epochs · steps_per_epoch, as the original's --train_steps default does (main.py line 118: 218949 =
      int(350 · 1281167 / 2048)).
    head_only_steps: the first steps train only the classifier (config.train.freeze_backbone_epochs).
    """
    steps_per_epoch: float
    total_steps: int
    steps_per_eval: int
    head_only_steps: int = 0

    @classmethod
    def from_config(cls, config, num_train_examples):
        if num_train_examples < config.train.batch_size:
            raise ValueError(f"the training split has {num_train_examples} images, fewer than one global batch "
                             f"of {config.train.batch_size}")
        steps_per_epoch = num_train_examples / config.train.batch_size
        total = config.train.steps
        if total is None:
            total = int(config.train.epochs * steps_per_epoch)
        per_eval = config.eval.steps_per_eval or max(1, int(config.eval.epochs_per_eval * steps_per_epoch))
        head_only = min(total, int(round(config.train.freeze_backbone_epochs * steps_per_epoch)))
        return cls(steps_per_epoch, total, min(per_eval, max(total, 1)), head_only)


def learning_rate_schedule(config, schedule):
    """config.train.lr_schedule after the linear warm-up: the paper's exponential decay (0.016 per 256 images,
    5 warm-up epochs, x0.97 every 2.4 epochs; docs/recipe.md §5), or the original's cosine, poly or constant."""
    train = config.train
    initial = schedules.scaled_learning_rate(train.base_learning_rate, train.batch_size)
    total = max(schedule.total_steps, 1)
    if train.lr_schedule == "cosine":
        return schedules.WarmupCosineDecay(initial, schedule.steps_per_epoch, total, warmup_epochs=train.warmup_epochs)
    if train.lr_schedule == "poly":
        return schedules.WarmupPolynomialDecay(initial, schedule.steps_per_epoch, total, train.warmup_epochs,
                                               train.poly_end_learning_rate, train.poly_power)
    if train.lr_schedule == "constant":
        return schedules.WarmupConstant(initial, schedule.steps_per_epoch, train.warmup_epochs)
    return schedules.WarmupExponentialDecay(
        initial, schedule.steps_per_epoch, warmup_epochs=train.warmup_epochs,
        decay_epochs=train.lr_decay_epochs, decay_rate=train.lr_decay_rate, staircase=True)


def eval_steps(num_examples, global_batch):
    """Eval steps that score every example once: the last batch is padded and masked."""
    return max(1, math.ceil(num_examples / global_batch))
