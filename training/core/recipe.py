"""The run plan: what a run's config derives, resolved once at set-up and passed down.

`make_plan` reads the config and gives the frozen `Plan`: the variant row, the network's settings, the input
size, crop and resize kernel, both pipelines' settings, the train step's settings, the run's length in steps,
the checkpoint cadence, the selection split and what the mode needs. Training, evaluation, export, predict and
the sidecar read these values from the plan and never from the config again, so they agree. The numbers are the
recipe's (docs/recipe.md), the fields configs/base.py's.
"""

import dataclasses
import math

import tensorflow as tf

import efficientnet
from configs import base
from data import pipeline, preprocessing
from efficientnet import schedules
from training.core import steps
from training.errors import UserError


def variant(config):
    """The config's row of the scaling table, with width/depth replaced when the config overrides them."""
    row = efficientnet.get_variant(config.model.variant)
    changes = {
        field: config.model[field]
        for field in ("width_coefficient", "depth_coefficient")
        if config.model[field] is not None
    }
    return dataclasses.replace(row, **changes) if changes else row


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
        raise UserError(
            f"model.batchnorm_group_size {size} does not divide the {replicas} replicas; set "
            "--config.model.batchnorm_group_size to a divisor, all or 1"
        )
    return size


@dataclasses.dataclass(frozen=True)
class Network:
    """What builds the network (efficientnet.build_model): the row and the run's settings of it.

    batchnorm_group_size: the training network's BatchNorm groups; `inference()` is the same network with
    per-replica statistics, for scoring and export (a network that only infers never computes them).
    """

    variant: efficientnet.Variant
    num_classes: int
    image_size: int
    dropout_rate: float
    survival_prob: float
    batchnorm_group_size: int
    classifier_init: str

    def inference(self, num_classes=None):
        """This network for inference, with `num_classes` classes if given (published weights' own count)."""
        return dataclasses.replace(self, batchnorm_group_size=1, num_classes=num_classes or self.num_classes)

    def build(self):
        """The Keras model (under the current strategy scope and dtype policy)."""
        return efficientnet.build_model(
            self.variant,
            num_classes=self.num_classes,
            image_size=self.image_size,
            dropout_rate=self.dropout_rate,
            survival_prob=self.survival_prob,
            batchnorm_group_size=self.batchnorm_group_size,
            classifier_init=self.classifier_init,
        )


def crop_fraction(config, image_size):
    """Eval center-crop fraction: config.data.crop_fraction, else the published-era image_size / (image_size + 32)
    (data/preprocessing.py holds the rule; docs/recipe.md §1)."""
    if config.data.crop_fraction is not None:
        return config.data.crop_fraction
    return preprocessing.default_crop_fraction(image_size)


def augments_on_device(config):
    """config.data.augment_on_device resolved: only with an augmentation (None is off; configs/base.py says why)."""
    return bool(config.data.augment_on_device) and config.data.augment_name != "none"


def input_settings(config, training, image_size, crop, resize_method):
    """The pipeline settings (data/pipeline.py InputSettings) of the config, for training or for evaluation."""
    data = config.data
    return pipeline.InputSettings(
        image_size=image_size,
        training=training,
        crop_fraction=crop,
        resize_method=resize_method,
        max_bad_fraction=data.max_bad_fraction,
        deterministic=config.train.deterministic and training,
        augment_name=data.augment_name,
        randaugment_num_layers=data.randaugment_num_layers,
        randaugment_magnitude=data.randaugment_magnitude,
        area_range=tuple(data.crop_area_range),
        aspect_ratio_range=tuple(data.crop_aspect_ratio_range),
        uint8_wraparound=True,  # the original's Solarize/Posterize on uint8 (data/autoaugment.py cites the lines)
        shuffle_buffer=data.shuffle_buffer,
        augment_on_device=augments_on_device(config) and training,
        mixup_alpha=data.mixup_alpha if training else 0.0,
    )


def recipe_input_settings(image_size, training, **changes):
    """The recipe's pipeline settings (configs/base.py) at `image_size`, with `changes` (any InputSettings field):
    for tools and tests that build a pipeline outside a run (benchmarks/, tests/data/)."""
    config = base.get_config()
    crop = changes.pop("crop_fraction", None) or crop_fraction(config, image_size)
    method = changes.pop("resize_method", None) or efficientnet.get_variant(config.model.variant).resize_method
    return dataclasses.replace(input_settings(config, training, image_size, crop, method), **changes)


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
            raise ValueError(
                f"the training split has {num_train_examples} images, fewer than one global batch "
                f"of {config.train.batch_size}"
            )
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
        return schedules.WarmupPolynomialDecay(
            initial,
            schedule.steps_per_epoch,
            total,
            train.warmup_epochs,
            train.poly_end_learning_rate,
            train.poly_power,
        )
    if train.lr_schedule == "constant":
        return schedules.WarmupConstant(initial, schedule.steps_per_epoch, train.warmup_epochs)
    return schedules.WarmupExponentialDecay(
        initial,
        schedule.steps_per_epoch,
        warmup_epochs=train.warmup_epochs,
        decay_epochs=train.lr_decay_epochs,
        decay_rate=train.lr_decay_rate,
        staircase=True,
    )


def eval_steps(num_examples, global_batch):
    """Eval steps that score every example once: the last batch is padded and masked."""
    return max(1, math.ceil(num_examples / global_batch))


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything a run derives from its config, resolved once (`make_plan`); `config` is the locked config
    itself, for the fields read as they are (optimizer, paths, export options).

    schedule: the run's length (training, and an eval job beside training; None otherwise).
    checkpoint_steps: steps between checkpoints.
    selection_split: where the best checkpoint is chosen (minival, else validation; None without a schedule:
      nothing is selected).
    """

    config: object
    mode: base.Mode
    model_dir: str
    network: Network
    crop_fraction: float
    resize_method: str
    train_input: pipeline.InputSettings
    eval_input: pipeline.InputSettings
    step: steps.StepConfig
    schedule: Schedule
    checkpoint_steps: int
    selection_split: str

    @property
    def image_size(self):
        return self.network.image_size

    @property
    def num_classes(self):
        return self.network.num_classes

    def eval_settings(self):
        """What an evaluation record states about the input it scored."""
        return {"image_size": self.image_size, "crop_fraction": self.crop_fraction}


def selection_split(source):
    """Model selection uses the minival holdout; without one, the validation split (optimistic, warned)."""
    return "minival" if source.num_examples("minival") > 0 else "validation"


def make_plan(config, *, source=None, strategy=None, jit_compile=False, follows_training=False):
    """The plan of `config` (its model.num_classes set, or taken from `source`) for a run under `strategy` (its
    replicas decide the BatchNorm groups; None: one device) reading `source` (None: no data).

    follows_training: an eval job beside a training job (training/session/sidecar.py), which needs the training
    run's length and selection split too; a training mode always has them.
    """
    row = variant(config)
    image_size = config.model.image_size or row.resolution
    num_classes = config.model.num_classes or (source.num_classes if source is not None else None)
    network = Network(
        variant=row,
        num_classes=num_classes,
        image_size=image_size,
        dropout_rate=config.model.dropout_rate,
        survival_prob=config.model.survival_prob,
        batchnorm_group_size=batchnorm_group_size(config, strategy),
        classifier_init=config.model.classifier_init,
    )
    crop, method = crop_fraction(config, image_size), config.data.resize_method or row.resize_method
    train, mode = config.train, base.MODE_TABLE[config.runtime.mode]
    step = steps.StepConfig(
        num_classes=num_classes,
        global_batch_size=train.batch_size,
        label_smoothing=train.label_smoothing,
        weight_decay=train.weight_decay,
        jit_compile=bool(jit_compile),
        augment_on_device=augments_on_device(config),
        augment_name=config.data.augment_name,
        randaugment_num_layers=config.data.randaugment_num_layers,
        randaugment_magnitude=config.data.randaugment_magnitude,
        mixup=config.data.mixup_alpha > 0,
    )
    planned = (mode.trains or follows_training) and source is not None  # without data: a network to build only
    schedule = _schedule(config, source) if planned else None
    checkpoint_steps = schedule and (config.runtime.checkpoint_steps or schedule.steps_per_eval)
    return Plan(
        config=config,
        mode=mode,
        model_dir=config.runtime.model_dir,
        network=network,
        crop_fraction=crop,
        resize_method=method,
        train_input=input_settings(config, True, image_size, crop, method),
        eval_input=input_settings(config, False, image_size, crop, method),
        step=step,
        schedule=schedule,
        checkpoint_steps=checkpoint_steps,
        selection_split=selection_split(source) if schedule is not None else None,
    )


def _schedule(config, source):
    """The run's Schedule; a training split without enough images for one batch is a UserError."""
    try:
        return Schedule.from_config(config, source.num_examples("train"))
    except ValueError as e:
        raise UserError(str(e)) from None
