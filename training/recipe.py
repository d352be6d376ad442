"""What a run's config derives: the variant row, the input size, crop and resize kernel, the input pipeline's
arguments, the run's length in steps and its learning-rate schedule.

The one place these are computed from the config, so that training, evaluation, export, predict and the sidecar
agree; training/state.py builds the model, optimizer and EMA from them. The numbers are the recipe's
(docs/recipe.md), the fields configs/base.py's.
"""
import dataclasses
import math

import efficientnet
from data import preprocessing
from efficientnet import schedules


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
    """The paper's schedule: 0.016 per 256 images, 5 warm-up epochs, x0.97 every 2.4 epochs (docs/recipe.md §5)."""
    initial = schedules.scaled_learning_rate(config.train.base_learning_rate, config.train.batch_size)
    if config.train.lr_schedule == "cosine":
        return schedules.WarmupCosineDecay(initial, schedule.steps_per_epoch, max(schedule.total_steps, 1),
                                           warmup_epochs=config.train.warmup_epochs)
    return schedules.WarmupExponentialDecay(
        initial, schedule.steps_per_epoch, warmup_epochs=config.train.warmup_epochs,
        decay_epochs=config.train.lr_decay_epochs, decay_rate=config.train.lr_decay_rate, staircase=True)


def eval_steps(num_examples, global_batch):
    """Eval steps that score every example once: the last batch is padded and masked."""
    return max(1, math.ceil(num_examples / global_batch))
