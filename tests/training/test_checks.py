"""training/checks.py: every bad config value is a one-line UserError before any heavy work."""

import pytest

from configs import demo, imagenet
from training import checks
from training.errors import UserError


def _config(**overrides):
    config = demo.get_config()
    for dotted, value in overrides.items():
        section, field = dotted.split("__")
        config[section][field] = value
    return config


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"model__variant": "b9"}, "unknown model 'b9'"),
        ({"runtime__mode": "fit"}, "mode='fit' is not one of"),
        ({"data__augment_name": "mixup"}, "augment_name='mixup'"),
        ({"train__lr_schedule": "linear"}, "lr_schedule='linear'"),
        ({"model__classifier_init": "glorot"}, "classifier_init='glorot' is not one of original, zeros"),
        ({"train__batch_size": 0}, "train.batch_size must be positive"),
        ({"eval__batch_size": -8}, "eval.batch_size must be positive"),
        ({"train__steps": -1}, "train_steps must be >= 0"),
        ({"runtime__tensorboard_images": -1}, "tensorboard_images must be >= 0"),
        ({"runtime__progress_seconds": -1.0}, "progress_seconds must be >= 0"),
        ({"runtime__tflite_check_images": 0}, "tflite_check_images must be a positive integer"),
        ({"train__iterations_per_loop": 0}, "iterations_per_loop must be positive"),
        ({"train__base_learning_rate": float("nan")}, "base_learning_rate must be positive"),
        ({"model__image_size": 16}, "image_size must be at least 32"),
        ({"model__width_coefficient": -1.0}, "width_coefficient must be positive"),
        ({"data__holdout_shards": -3}, "holdout_shards must be >= 0"),
        ({"train__label_smoothing": 1.0}, "label_smoothing must be in [0, 1)"),
        ({"train__moving_average_decay": 1.5}, "moving_average_decay must be in [0, 1)"),
        ({"model__survival_prob": 0.0}, "survival_prob must be > 0"),
        ({"model__dropout_rate": 1.0}, "dropout_rate must be in [0, 1)"),
        ({"train__weight_decay": -1e-5}, "weight_decay must be >= 0"),
        ({"data__dataset": "imagenet2012"}, "--dataset must look like tfds:NAME"),
        ({"data__dataset": "tfds:mnist", "data__data_dir": "/data"}, "either --data_dir"),
        ({"runtime__precision": "float16"}, "precision='float16' is not one of float32, mixed_bfloat16"),
        (
            {"runtime__precision": "mixed_float16", "runtime__use_bfloat16": True},
            "--precision=mixed_float16 contradicts --use_bfloat16=true (which means mixed_bfloat16)",
        ),
        ({"runtime__precision": "mixed_bfloat16", "runtime__use_bfloat16": False}, "contradicts --use_bfloat16=false"),
        ({"train__loss_scale_initial": 0.0}, "loss_scale_initial must be positive"),
    ],
)
def test_bad_values_are_one_line_user_errors(overrides, message):
    with pytest.raises(UserError) as info:
        checks.validate_config(_config(**overrides))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("get_config", [demo.get_config, imagenet.get_config])
def test_shipped_configs_are_valid(get_config):
    checks.validate_config(get_config())


def test_precision_and_use_bfloat16_that_agree_are_accepted():
    checks.validate_config(_config(runtime__precision="mixed_bfloat16", runtime__use_bfloat16=True))
    checks.validate_config(_config(runtime__precision="float32", runtime__use_bfloat16=False))


@pytest.mark.parametrize(
    "precision,use_bfloat16,expected",
    [
        (None, None, None),  # chosen by device (tpu/strategy.py)
        (None, True, "mixed_bfloat16"),
        (None, False, "float32"),
        ("mixed_float16", None, "mixed_float16"),
        ("float32", False, "float32"),
    ],
)
def test_the_requested_precision_is_precision_else_what_use_bfloat16_means(precision, use_bfloat16, expected):
    config = _config(runtime__precision=precision, runtime__use_bfloat16=use_bfloat16)
    assert checks.requested_precision(config.runtime) == expected


def test_batch_must_divide_over_replicas():
    checks.check_batch_divides(64, 8, "train_batch_size")
    with pytest.raises(UserError, match="train_batch_size=60 is not divisible by the 8 replicas"):
        checks.check_batch_divides(60, 8, "train_batch_size")
