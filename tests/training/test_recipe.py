"""training/core/recipe.py's run length and learning rate against the original's arithmetic.

The oracle is an independent implementation of tensorflow/tpu main.py + utils.build_learning_rate ("exponential"):
steps_per_epoch = num_train_images / train_batch_size as a Python float (main.py:709), the decay from TF1's own
tf.compat.v1.train.exponential_decay on the raw global step with decay_steps = steps_per_epoch · decay_epochs
(utils.py:47-49), and the warm-up initial_lr · float(step) / float(int(warmup_epochs · steps_per_epoch)) below
that step (utils.py:72-78).
"""

import numpy as np
import pytest
import tensorflow as tf

from configs import base
from training.core import recipe
from training.errors import UserError

IMAGENET_TRAIN = 1_281_167
MINIVAL = 25_022


def _original_learning_rates(
    base_lr, batch, num_train_images, steps, warmup_epochs=5, decay_epochs=2.4, decay_factor=0.97
):
    """tensorflow/tpu's learning rate at each of `steps` (int64 numpy vector), float32."""
    initial_lr = base_lr * (batch / 256.0)  # main.py:434
    steps_per_epoch = num_train_images / batch
    global_step = tf.constant(steps, tf.int64)
    decayed = tf.compat.v1.train.exponential_decay(
        initial_lr, global_step, steps_per_epoch * decay_epochs, decay_factor, staircase=True
    )()
    warmup_steps = int(warmup_epochs * steps_per_epoch)
    warmup_lr = initial_lr * tf.cast(global_step, tf.float32) / tf.cast(warmup_steps, tf.float32)
    return np.where(steps < warmup_steps, warmup_lr.numpy(), decayed.numpy())


def _config(batch, epochs=350.0):
    config = base.get_config()
    config.train.batch_size = batch
    config.train.epochs = epochs
    return config


@pytest.mark.parametrize("batch", [4096, 2048, 1024, 1000])  # 1000 does not divide 1,256,145 (1256.145 per epoch)
def test_every_step_of_a_run_has_the_original_learning_rate(batch):
    num_train = IMAGENET_TRAIN - MINIVAL
    config = _config(batch)
    schedule = recipe.Schedule.from_config(config, num_train)
    assert schedule.steps_per_epoch == num_train / batch
    steps = np.arange(schedule.total_steps, dtype=np.int64)
    ours = recipe.learning_rate_schedule(config, schedule)(tf.constant(steps)).numpy()
    expected = _original_learning_rates(config.train.base_learning_rate, batch, num_train, steps)
    np.testing.assert_array_equal(ours, expected)


def test_batch_4096_warmup_and_decay_lengths():
    schedule = recipe.Schedule.from_config(_config(4096), IMAGENET_TRAIN - MINIVAL)
    rate = recipe.learning_rate_schedule(_config(4096), schedule)
    assert rate.warmup_steps == 1533 and rate.decay_steps == pytest.approx(736.0225, abs=1e-4)
    assert schedule.total_steps == int(350 * 1_256_145 / 4096) == 107_336


def test_epoch_specified_length_truncates_like_the_original_train_steps_default():
    """main.py:117-121: --train_steps defaults to 218949, "approximately 350 epochs at batch size 2048" of
    1,281,167 images: int(350 · 1281167 / 2048)."""
    schedule = recipe.Schedule.from_config(_config(2048), IMAGENET_TRAIN)
    assert schedule.total_steps == 218_949


def test_eval_and_head_only_lengths_use_the_float_epoch():
    config = _config(1000, epochs=3.0)
    config.eval.epochs_per_eval = 0.5
    config.train.freeze_backbone_epochs = 1.5
    schedule = recipe.Schedule.from_config(config, 2500)  # 2.5 steps per epoch
    assert (schedule.total_steps, schedule.steps_per_eval, schedule.head_only_steps) == (7, 1, 4)


def test_fewer_images_than_one_batch_is_refused():
    with pytest.raises(ValueError, match="fewer than one global batch"):
        recipe.Schedule.from_config(_config(4096), 4095)


@pytest.mark.parametrize("cores, group", [(1, 1), (8, 1), (16, 8), (32, 8), (64, 8), (128, 16), (256, 32), (2048, 256)])
def test_tpu_batchnorm_groups_follow_the_original_rule(cores, group):
    """utils.py:147-151: per core up to 8 shards, else max(8, num_shards // 8). A v3-32 slice at batch 4096
    normalizes over 8 cores · 128 images = 1,024."""
    assert recipe.tpu_batchnorm_group_size(cores) == group


def test_batchnorm_group_setting_under_other_strategies():
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        pytest.skip("needs the two logical CPU devices configured in tests/conftest.py")
    mirrored = tf.distribute.MirroredStrategy([d.name for d in devices[:2]])
    config = base.get_config()
    expected = {"auto": 1, "all": 2, "1": 1, "2": 2}
    for setting, size in expected.items():
        config.model.batchnorm_group_size = setting
        assert recipe.batchnorm_group_size(config, mirrored) == size, setting
        assert recipe.batchnorm_group_size(config, None) == 1, setting  # inference-only network
    config.model.batchnorm_group_size = "3"
    with pytest.raises(UserError, match="does not divide the 2 replicas"):
        recipe.batchnorm_group_size(config, mirrored)


class _Counts:
    """A data source of given split sizes that fails when a split it must not be asked for is counted."""

    num_classes = 10

    def __init__(self, forbidden=(), **counts):
        self.counts, self.forbidden = counts, forbidden

    def num_examples(self, split):
        assert split not in self.forbidden, f"the plan counted the {split} split"
        return self.counts.get(split, 0)


def test_the_plan_resolves_what_the_config_derives_once():
    config = base.get_config()
    config.model.variant = "lite0"
    plan = recipe.make_plan(config, source=_Counts(train=1_000_000, minival=50))
    assert (plan.image_size, plan.num_classes, plan.resize_method) == (224, 10, "bilinear")  # lite0's row
    assert plan.crop_fraction == pytest.approx(224 / (224 + 32))
    for settings in (plan.train_input, plan.eval_input):
        assert (settings.image_size, settings.crop_fraction, settings.resize_method) == (
            224,
            plan.crop_fraction,
            "bilinear",
        )
    assert plan.train_input.training and not plan.eval_input.training
    assert plan.step.augment_name == plan.train_input.augment_name == "autoaugment"
    assert plan.selection_split == "minival" and plan.checkpoint_steps == plan.schedule.steps_per_eval
    config.model.image_size, config.data.crop_fraction = 192, 0.9
    overridden = recipe.make_plan(config, source=_Counts(train=1_000_000))
    assert (overridden.image_size, overridden.crop_fraction, overridden.selection_split) == (192, 0.9, "validation")
    with pytest.raises(AttributeError):  # frozen: nothing downstream changes what set-up resolved
        plan.crop_fraction = 0.5


def test_only_training_and_the_eval_job_beside_it_plan_a_schedule():
    config = base.get_config()
    config.runtime.mode = "eval"
    assert recipe.make_plan(config, source=_Counts(forbidden=("train", "minival"))).schedule is None
    followed = recipe.make_plan(config, source=_Counts(train=4096 * 3, minival=10), follows_training=True)
    assert followed.schedule.total_steps == int(350 * 3) and followed.selection_split == "minival"
    config.runtime.mode = "train"
    with pytest.raises(UserError, match="fewer than one global batch"):
        recipe.make_plan(config, source=_Counts(train=100))
