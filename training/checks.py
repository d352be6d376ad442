"""Validation of a run's config before any heavy work: every problem is one line and a UserError."""
import math

import efficientnet
from configs import base
from training.errors import UserError


def _require(condition, message):
    if not condition:
        raise UserError(message)


def _check_choice(value, choices, name):
    _require(value in choices, f"{name}={value!r} is not one of {', '.join(choices)}")


def _check_positive(config, fields):
    for field in fields:
        section, key = field.split(".")
        value = config[section][key]
        if value is not None:
            _require(isinstance(value, (int, float)) and math.isfinite(value) and value > 0,
                     f"{field} must be positive, got {value!r}")


def _check_fraction(value, name, *, allow_one=False):
    upper_ok = value <= 1 if allow_one else value < 1
    _require(0 <= value and upper_ok, f"{name} must be in [0, 1{']' if allow_one else ')'}, got {value!r}")


def _check_range_pair(value, name, upper=math.inf):
    """A (low, high) pair of numbers with 0 < low <= high <= upper (config.json stores it as a list)."""
    ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    _require(ok and 0 < value[0] <= value[1] <= upper,
             f"{name} must be (low, high) with 0 < low <= high{' <= 1' if upper == 1 else ''}, got {value!r}")


def validate_config(config):
    """Raises UserError for the first bad value found; returns nothing when the config is usable."""
    _require(config.model.variant in efficientnet.VARIANTS,
             f"unknown model {config.model.variant!r}; choose one of {', '.join(efficientnet.VARIANTS)}")
    _check_choice(config.runtime.mode, base.MODES, "mode")
    _check_choice(config.data.augment_name, base.AUGMENTATIONS, "augment_name")
    if config.data.resize_method is not None:
        _check_choice(config.data.resize_method, efficientnet.variants.RESIZE_METHODS, "resize_method")
    _check_choice(config.train.lr_schedule, base.LR_SCHEDULES, "lr_schedule")
    _check_choice(config.train.optimizer, base.OPTIMIZERS, "optimizer")
    _check_range_pair(config.data.crop_area_range, "crop_area_range", upper=1.0)
    _check_range_pair(config.data.crop_aspect_ratio_range, "crop_aspect_ratio_range")
    _check_positive(config, [
        "train.batch_size", "eval.batch_size", "train.iterations_per_loop", "train.base_learning_rate",
        "train.epochs", "eval.epochs_per_eval", "eval.steps_per_eval", "model.image_size",
        "model.num_classes", "model.width_coefficient", "model.depth_coefficient", "runtime.checkpoints_to_keep",
        "runtime.checkpoint_steps", "data.shuffle_buffer", "train.epsilon", "train.lr_decay_epochs"])
    _require(config.train.steps is None or config.train.steps >= 0,
             f"train_steps must be >= 0, got {config.train.steps}")
    _require(config.model.image_size is None or config.model.image_size >= 32,
             f"image_size must be at least 32 (the network downsamples 32x), got {config.model.image_size}")
    _require(config.data.holdout_shards >= 0, f"holdout_shards must be >= 0, got {config.data.holdout_shards}")
    _require(config.train.warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {config.train.warmup_epochs}")
    _require(config.eval.early_stopping_evals >= 0, "early_stopping_evals must be >= 0")
    _require(config.train.freeze_backbone_epochs >= 0,
             f"freeze_backbone_epochs must be >= 0, got {config.train.freeze_backbone_epochs}")
    _require(not (config.train.freeze_backbone and config.train.freeze_backbone_epochs),
             "give either freeze_backbone (the whole run) or freeze_backbone_epochs (a head warm-up), not both")
    _check_fraction(config.train.label_smoothing, "label_smoothing")
    _check_fraction(config.train.moving_average_decay, "moving_average_decay")
    _check_fraction(config.train.rmsprop_decay, "rmsprop_decay")
    _check_fraction(config.train.momentum, "momentum")
    _check_fraction(config.train.adam_beta_1, "adam_beta_1")
    _check_fraction(config.train.adam_beta_2, "adam_beta_2")
    _require(config.train.adam_epsilon > 0, f"adam_epsilon must be > 0, got {config.train.adam_epsilon}")
    _require(config.train.decoupled_weight_decay >= 0,
             f"decoupled_weight_decay must be >= 0, got {config.train.decoupled_weight_decay}")
    _check_fraction(config.train.lr_decay_rate, "lr_decay_rate", allow_one=True)
    _check_fraction(config.model.survival_prob, "survival_prob", allow_one=True)
    _require(config.model.survival_prob > 0, "survival_prob must be > 0")
    if config.model.dropout_rate is not None:
        _check_fraction(config.model.dropout_rate, "dropout_rate")
    _check_fraction(config.data.max_bad_fraction, "max_bad_fraction", allow_one=True)
    if config.data.holdout_fraction is not None:
        _check_fraction(config.data.holdout_fraction, "holdout_fraction")
    _require(config.train.weight_decay >= 0, f"weight_decay must be >= 0, got {config.train.weight_decay}")
    _require(not (config.data.data_dir and config.data.dataset),
             "give either --data_dir (TFRecords) or --dataset (tfds:NAME), not both")
    if config.data.dataset:
        _require(config.data.dataset.startswith("tfds:"),
                 f"--dataset must look like tfds:NAME, got {config.data.dataset!r}")


def check_batch_divides(batch_size, num_replicas, name):
    """Global batches are split evenly over replicas; a remainder would change the recipe silently."""
    _require(batch_size % num_replicas == 0,
             f"{name}={batch_size} is not divisible by the {num_replicas} replicas in sync")
