"""Validation of a run's config before any heavy work: every problem is one line and a UserError."""

import math
import os
import uuid

import efficientnet
from configs import base
from training.errors import UserError

# data/sources.py SPLITS, repeated here: this module runs before TensorFlow (which data/ imports) loads.
SPLITS = ("train", "minival", "validation")


def _require(condition, message):
    if not condition:
        raise UserError(message)


def _check_choice(value, choices, name):
    _require(value in choices, f"{name}={value!r} is not one of {', '.join(choices)}")


def implied_precision(use_bfloat16):
    """What the original's --use_bfloat16 means here: true mixed_bfloat16, false float32 (None: not given)."""
    if use_bfloat16 is None:
        return None
    return "mixed_bfloat16" if use_bfloat16 else "float32"


def requested_precision(runtime):
    """The precision a command asks for (--precision, else --use_bfloat16's); None: chosen by device."""
    return runtime.precision or implied_precision(runtime.use_bfloat16)


def _check_precision(config):
    """--precision, and the original's --use_bfloat16 beside it only when they agree."""
    runtime = config.runtime
    _check_positive(config, ["train.loss_scale_initial", "train.loss_scale_growth_steps"])
    if runtime.precision is None:
        return
    _check_choice(runtime.precision, base.PRECISIONS, "precision")
    implied = implied_precision(runtime.use_bfloat16)
    _require(
        implied in (None, runtime.precision),
        f"--precision={runtime.precision} contradicts --use_bfloat16={str(runtime.use_bfloat16).lower()} "
        f"(which means {implied}); give one of them",
    )


def _check_positive(config, fields):
    for field in fields:
        section, key = field.split(".")
        value = config[section][key]
        if value is not None:
            _require(
                isinstance(value, (int, float)) and math.isfinite(value) and value > 0,
                f"{field} must be positive, got {value!r}",
            )


def _check_non_negative(value, name):
    _require(
        isinstance(value, (int, float)) and math.isfinite(value) and value >= 0,
        f"{name} must be a finite number >= 0, got {value!r}",
    )


def _check_fraction(value, name, *, allow_one=False):
    upper_ok = value <= 1 if allow_one else value < 1
    _require(0 <= value and upper_ok, f"{name} must be in [0, 1{']' if allow_one else ')'}, got {value!r}")


def _check_range_pair(value, name, upper=math.inf):
    """A (low, high) pair of numbers with 0 < low <= high <= upper (config.json stores it as a list)."""
    ok = (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    )
    _require(
        ok and 0 < value[0] <= value[1] <= upper,
        f"{name} must be (low, high) with 0 < low <= high{' <= 1' if upper == 1 else ''}, got {value!r}",
    )


def check_tflite_counts(config):
    """The image counts of the TFLite export (training/serving/tflite.py) are positive integers."""
    for field in ("tflite_calibration_images", "tflite_check_images"):
        value = config.runtime[field]
        _require(
            not isinstance(value, bool) and isinstance(value, int) and value >= 1,
            f"--config.runtime.{field} must be a positive integer, got {value!r}",
        )


def validate_config(config):
    """Raises UserError for the first bad value found; returns nothing when the config is usable."""
    _require(
        config.model.variant in efficientnet.VARIANTS,
        f"unknown model {config.model.variant!r}; choose one of {', '.join(efficientnet.VARIANTS)}",
    )
    _check_choice(config.runtime.mode, base.MODES, "mode")
    _check_choice(config.data.augment_name, base.AUGMENTATIONS, "augment_name")
    if config.data.resize_method is not None:
        _check_choice(config.data.resize_method, efficientnet.variants.RESIZE_METHODS, "resize_method")
    _check_choice(config.train.lr_schedule, base.LR_SCHEDULES, "lr_schedule")
    _check_choice(config.train.optimizer, base.OPTIMIZERS, "optimizer")
    _check_choice(config.model.classifier_init, efficientnet.variants.CLASSIFIER_INITS, "classifier_init")
    _check_range_pair(config.data.crop_area_range, "crop_area_range", upper=1.0)
    _check_range_pair(config.data.crop_aspect_ratio_range, "crop_aspect_ratio_range")
    _check_positive(
        config,
        [
            "train.batch_size",
            "eval.batch_size",
            "train.iterations_per_loop",
            "train.base_learning_rate",
            "train.epochs",
            "eval.epochs_per_eval",
            "eval.steps_per_eval",
            "model.image_size",
            "model.num_classes",
            "model.width_coefficient",
            "model.depth_coefficient",
            "runtime.checkpoints_to_keep",
            "runtime.checkpoint_steps",
            "data.shuffle_buffer",
            "train.epsilon",
            "train.lr_decay_epochs",
        ],
    )
    check_tflite_counts(config)
    group = str(config.model.batchnorm_group_size)
    _require(
        group in ("auto", "all") or (group.isdigit() and int(group) >= 1),
        f"model.batchnorm_group_size must be auto, all or a positive integer, got {group!r}",
    )
    _require(
        config.runtime.progress_seconds >= 0,
        f"--config.runtime.progress_seconds must be >= 0, got {config.runtime.progress_seconds}",
    )
    _require(
        config.runtime.tensorboard_images >= 0,
        f"--config.runtime.tensorboard_images must be >= 0, got {config.runtime.tensorboard_images}",
    )
    _require(
        config.train.steps is None or config.train.steps >= 0, f"train_steps must be >= 0, got {config.train.steps}"
    )
    _require(
        config.model.image_size is None or config.model.image_size >= 32,
        f"image_size must be at least 32 (the network downsamples 32x), got {config.model.image_size}",
    )
    _require(config.data.holdout_shards >= 0, f"holdout_shards must be >= 0, got {config.data.holdout_shards}")
    _check_non_negative(config.train.warmup_epochs, "warmup_epochs")
    _require(config.eval.early_stopping_evals >= 0, "early_stopping_evals must be >= 0")
    _check_non_negative(config.train.freeze_backbone_epochs, "freeze_backbone_epochs")
    _check_data(config.data)
    _check_precision(config)
    # keras.utils.set_random_seed (deterministic runs) and the tf.data seeds take 0 <= seed < 2**32.
    _require(0 <= config.train.seed < 2**32, f"seed must be in [0, 2**32), got {config.train.seed}")
    _require(
        not (config.train.freeze_backbone and config.train.freeze_backbone_epochs),
        "give either freeze_backbone (the whole run) or freeze_backbone_epochs (a head warm-up), not both",
    )
    _check_fraction(config.train.label_smoothing, "label_smoothing")
    _check_fraction(config.train.moving_average_decay, "moving_average_decay")
    _check_fraction(config.train.rmsprop_decay, "rmsprop_decay")
    _check_fraction(config.train.momentum, "momentum")
    _check_fraction(config.train.adam_beta_1, "adam_beta_1")
    _check_fraction(config.train.adam_beta_2, "adam_beta_2")
    _require(config.train.adam_epsilon > 0, f"adam_epsilon must be > 0, got {config.train.adam_epsilon}")
    _require(
        config.train.decoupled_weight_decay >= 0,
        f"decoupled_weight_decay must be >= 0, got {config.train.decoupled_weight_decay}",
    )
    _check_fraction(config.train.lr_decay_rate, "lr_decay_rate", allow_one=True)
    _check_fraction(config.model.survival_prob, "survival_prob", allow_one=True)
    _require(config.model.survival_prob > 0, "survival_prob must be > 0")
    if config.model.dropout_rate is not None:
        _check_fraction(config.model.dropout_rate, "dropout_rate")
    _check_fraction(config.data.max_bad_fraction, "max_bad_fraction", allow_one=True)
    if config.data.holdout_fraction is not None:
        _check_fraction(config.data.holdout_fraction, "holdout_fraction")
    _require(config.train.weight_decay >= 0, f"weight_decay must be >= 0, got {config.train.weight_decay}")
    _require(
        not (config.data.data_dir and config.data.dataset),
        "give either --data_dir (TFRecords) or --dataset (tfds:NAME), not both",
    )
    if config.data.dataset:
        _require(
            config.data.dataset.startswith("tfds:"), f"--dataset must look like tfds:NAME, got {config.data.dataset!r}"
        )


def _check_data(data):
    """The data fields that would otherwise fail only when the pipeline is built (for eval: after training)."""
    _check_choice(data.eval_split, SPLITS, "eval_split")
    _check_non_negative(data.mixup_alpha, "mixup_alpha")
    if data.crop_fraction is not None:
        _require(
            isinstance(data.crop_fraction, (int, float)) and 0 < data.crop_fraction <= 1,
            f"crop_fraction must be in (0, 1], got {data.crop_fraction!r}",
        )
    _require(
        data.randaugment_num_layers >= 0, f"randaugment_num_layers must be >= 0, got {data.randaugment_num_layers}"
    )
    _check_non_negative(data.randaugment_magnitude, "randaugment_magnitude")


def check_writable_dir(path):
    """Fails before any work when a local model_dir cannot hold what the run writes (a regular file, a
    read-only or full disk): otherwise that shows only after training or a whole evaluation. Object stores
    (gs://...) have no such probe: their errors surface at the first write, one line (main.py)."""
    if "://" in path:
        return
    _require(not os.path.exists(path) or os.path.isdir(path), f"--model_dir {path} exists and is not a directory")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing) or "."
    probe = os.path.join(existing, f".write-test-{uuid.uuid4().hex[:8]}")
    try:
        with open(probe, "w") as f:
            f.write("x")
        os.remove(probe)
    except OSError as e:
        raise UserError(f"cannot write to {existing}: {e.strerror or e}") from None


def check_batch_divides(batch_size, num_replicas, name):
    """Global batches are split evenly over replicas; a remainder would change the recipe silently."""
    _require(
        batch_size % num_replicas == 0, f"{name}={batch_size} is not divisible by the {num_replicas} replicas in sync"
    )
