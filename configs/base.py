"""The one config schema of a run, filled in with the paper's ImageNet-on-TPU recipe.

Every hyperparameter of a run lives here; main.py's named flags and `--config.a.b=value` override fields, and
the resolved config is written to model_dir/config.json at start. Fields that are None are resolved at run
time from the data or the hardware (each says how). Sources of the numbers: docs/recipe.md §1, §3, §5
(tensorflow/tpu models/official/efficientnet main.py and utils.py).
"""
import dataclasses

import ml_collections
from ml_collections import config_dict


@dataclasses.dataclass(frozen=True)
class Mode:
    """What one --mode does and needs; training/session/run.py maps each to its handler.

    trains: writes checkpoints (under model_dir's lock); evaluates_in_training: what an unset eval.in_training
    means (whether the training job itself evaluates minival and archives the best); final_phase: after training,
    scores the archived best
    on data.eval_split and exports it; scores_stored: reads weights already written (a run's model_dir or
    published weights given as --init_checkpoint) and takes the network from them; needs_run: needs a model_dir
    holding a trained network unless published weights are given; needs_data: opens the data source (the demo
    data when none is given; without it, one only when given: predict classifies the files it is given, and
    takes only the network of a run, not its data's place); first_split: the split read first, checked at start so
    that unreadable data fails before any work ("eval": data.eval_split); takes_files: positional image files,
    whose results it prints itself (no summary line after them); follows_training: can run as the evaluation job
    beside a training job (training/session/sidecar.py says when).
    """
    trains: bool = False
    evaluates_in_training: bool = False
    final_phase: bool = False
    scores_stored: bool = False
    needs_run: bool = False
    needs_data: bool = True
    first_split: str = None
    takes_files: bool = False
    follows_training: bool = False


MODE_TABLE = {
    # The original's --mode=train only trains and checkpoints, and its --mode=eval job beside it evaluates each
    # checkpoint (tensorflow/tpu models/official/efficientnet/main.py at 7dc921f, lines 771-839).
    "train": Mode(trains=True, first_split="train"),
    "eval": Mode(scores_stored=True, needs_run=True, first_split="eval", follows_training=True),
    "train_and_eval": Mode(trains=True, evaluates_in_training=True, final_phase=True, first_split="train"),
    "export": Mode(scores_stored=True, needs_run=True),
    "predict": Mode(scores_stored=True, needs_data=False, takes_files=True),
}
MODES = tuple(MODE_TABLE)
AUGMENTATIONS = ("autoaugment", "randaugment", "none")
LR_SCHEDULES = ("exponential", "cosine", "poly", "constant")  # tensorflow/tpu utils.py build_learning_rate
# The first four as tensorflow/tpu's (training/core/state.py builds them).
OPTIMIZERS = ("rmsprop", "momentum", "sgd", "lars", "adamw")
# Keras dtype policies a run trains in (tpu/strategy.py picks one by device); mixed_float16 scales the loss.
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def _model():
    return ml_collections.ConfigDict(dict(
        variant="b0",                                   # a key of efficientnet.VARIANTS
        width_coefficient=config_dict.placeholder(float),  # None: the variant's; set for a custom row
        depth_coefficient=config_dict.placeholder(float),  # None: the variant's
        image_size=config_dict.placeholder(int),        # None: the variant's resolution
        num_classes=config_dict.placeholder(int),       # None: from the data source
        dropout_rate=config_dict.placeholder(float),    # None: the variant's (0.2 for b0 ... 0.5 for b7)
        survival_prob=0.8,                              # stochastic depth, every size (docs/recipe.md §2)
        classifier_init="original",                     # a new classifier's kernel: the original's uniform
                                                        # ±1/sqrt(classes), or "zeros" (configs/finetune.py)
        # BatchNorm statistics in training over groups of this many replicas: "auto" is the original's rule on
        # TPU (per core up to 8 cores, else groups of max(8, cores // 8); tensorflow/tpu utils.py) and per
        # replica on other strategies; "all" synchronizes every replica; a number is the group size (1: per
        # replica), which must divide the replica count.
        batchnorm_group_size="auto",
    ))


def _data():
    return ml_collections.ConfigDict(dict(
        data_dir=config_dict.placeholder(str),          # ImageNet-format TFRecords or class folders (local or gs://)
        dataset=config_dict.placeholder(str),           # or "tfds:NAME"; neither: the built-in demo data
        tfds_data_dir=config_dict.placeholder(str),
        cache_dir=config_dict.placeholder(str),         # where the demo data is generated
        holdout_shards=20,                              # minival: train shards 0-19 of 1024 = 25,022 images
        holdout_fraction=config_dict.placeholder(float),  # tfds/folders: share of train held out (None: shards/1024)
        include_background=False,                       # True keeps label 0 as background (1001 classes)
        augment_name="autoaugment",                     # one of AUGMENTATIONS
        randaugment_num_layers=2,                       # RandAugment: ops applied to each image
        randaugment_magnitude=10,                       # RandAugment: the ops' strength
        # Run AutoAugment/RandAugment in the train step (inside the XLA step on TPU) instead of on the input hosts,
        # bit-identical images (data/device_augment.py). None: off, because its cost on a TPU is unmeasured; turn
        # it on where the hosts are the bottleneck (benchmarks/README.md, "host vCPUs per TPU chip").
        augment_on_device=config_dict.placeholder(bool),
        crop_fraction=config_dict.placeholder(float),   # None: image_size / (image_size + 32)
        resize_method=config_dict.placeholder(str),     # "bicubic"/"bilinear"; None: the variant's (bilinear
                                                        # for EdgeTPU/Lite as tensorflow/tpu main.py, else bicubic)
        max_bad_fraction=0.01,                          # stop if more than 1% of records are undecodable
        eval_split="validation",                        # what --mode=eval scores
        num_train_images=config_dict.placeholder(int),  # None: counted; set: checked against train + minival
        num_eval_images=config_dict.placeholder(int),   # None: counted; set: checked against validation
        # Random-crop sampler of the training preprocessing (tensorflow/tpu preprocessing.py
        # `distorted_bounding_box_crop`): share of the image area and width/height ratio of the crop.
        crop_area_range=(0.08, 1.0),
        crop_aspect_ratio_range=(3.0 / 4.0, 4.0 / 3.0),
        shuffle_buffer=10_000,                          # training records (encoded) shuffled per input pipeline;
                                                        # the buffer is part of each checkpoint
        mixup_alpha=0.0,                                # the original's --mixup_alpha: Beta(alpha, alpha) mixup
                                                        # of each replica's training batch (data/mixup.py); 0: off
    ))


def _train():
    return ml_collections.ConfigDict(dict(
        batch_size=4096,                 # global; per-replica batches are derived and must divide exactly
        epochs=350.0,                    # the maintainers' length for every size at 4096 (tensorflow/tpu#546)
        steps=config_dict.placeholder(int),  # None: epochs x steps_per_epoch (minival excluded)
        iterations_per_loop=1000,        # train steps per host call (one tf.function call)
        base_learning_rate=0.016,        # per 256 images, scaled linearly: 0.256 at 4096
        lr_schedule="exponential",       # one of LR_SCHEDULES
        warmup_epochs=5.0,
        lr_decay_epochs=2.4,
        lr_decay_rate=0.97,
        rmsprop_decay=0.9,
        momentum=0.9,
        epsilon=1e-3,
        weight_decay=1e-5,               # L2 on every trainable variable except BatchNorm
        optimizer="rmsprop",             # one of OPTIMIZERS: "rmsprop" (the recipe) uses rmsprop_decay,
                                         # momentum, epsilon above; "momentum" is TF1's MomentumOptimizer with
                                         # `momentum`; "sgd" is plain gradient descent; "lars" is the original's
                                         # LARS with `momentum` and the lars_* fields; "adamw" is keras AdamW
                                         # with the adam_* fields and decoupled_weight_decay (on the variables
                                         # weight_decay covers; weight_decay=0 leaves only that one)
        lars_weight_decay=1e-5,          # tensorflow/tpu main.py --lars_weight_decay (in LARS' update, beside
                                         # the loss's weight_decay L2, as the original adds both)
        lars_epsilon=0.0,                # main.py --lars_epsilon
        lars_eeta=0.001,                 # lars_optimizer.py's trust coefficient (no flag in the original)
        poly_end_learning_rate=0.1,      # lr_schedule "poly": the absolute rate it decays to (utils.py)
        poly_power=2.0,                  # ... and its exponent (utils.py)
        adam_beta_1=0.9,
        adam_beta_2=0.999,
        adam_epsilon=1e-7,
        decoupled_weight_decay=0.0,
        # mixed_float16 only: the dynamic loss scale starts here, halves at every step with non-finite
        # gradients (the step is skipped) and doubles after this many finite ones (Keras LossScaleOptimizer's
        # defaults, as NVIDIA's and Model Garden's float16 runs use).
        loss_scale_initial=2.0**15,
        loss_scale_growth_steps=2000,
        label_smoothing=0.1,
        moving_average_decay=0.9999,     # EMA with (1 + t) / (10 + t) warm-up
        seed=0,
        deterministic=False,             # op determinism + deterministic input order (exact resume)
        freeze_backbone=False,           # fine-tuning: train only the classifier, the whole run
        freeze_backbone_epochs=0.0,      # fine-tuning: train only the classifier for this many epochs first
                                         # (a warm-up of the new head), then every layer
    ))


def _eval():
    return ml_collections.ConfigDict(dict(
        batch_size=1024,                             # global
        steps_per_eval=config_dict.placeholder(int), # None: every epochs_per_eval epochs
        epochs_per_eval=5.0,
        early_stopping_evals=0,                      # stop after N evaluations without a better top-1; 0: never
        # True: the training job evaluates minival every steps_per_eval steps and archives the best; False: it only
        # saves checkpoints and a --mode=eval job beside it evaluates them (the original's pairing). None: by mode
        # (MODE_TABLE evaluates_in_training: train_and_eval evaluates, train does not).
        in_training=config_dict.placeholder(bool),
        timeout_seconds=config_dict.placeholder(int),  # sidecar: stop after this long without a new checkpoint
    ))


def _runtime():
    return ml_collections.ConfigDict(dict(
        mode="train_and_eval",                       # one of MODES
        model_dir=config_dict.placeholder(str),
        tpu=config_dict.placeholder(str),            # TPU name, grpc://host:port or "local"
        tpu_zone=config_dict.placeholder(str),       # zone of a TPU given by name (None: the VM's metadata)
        gcp_project=config_dict.placeholder(str),    # its GCP project (None: the VM's metadata)
        use_bfloat16=config_dict.placeholder(bool),  # the original's switch: true mixed_bfloat16, false float32
        # float32, mixed_bfloat16 or mixed_float16 (with dynamic loss scaling); None: by device, see
        # tpu/strategy.py (TPU and GPUs from compute capability 8.0 bfloat16, 7.x float16, else float32).
        # Written resolved into config.json: a resume in or out of float16 is refused (its checkpoints differ).
        precision=config_dict.placeholder(str),
        jit_compile=config_dict.placeholder(bool),   # None: XLA on TPU/GPU, not on CPU (docs/recipe.md §7)
        checkpoints_to_keep=3,
        checkpoint_steps=config_dict.placeholder(int),  # None: at every evaluation (steps_per_eval)
        export_dir=config_dict.placeholder(str),       # train_and_eval exports here at the end when set
        export_at_end=False,                            # ... or to model_dir/export when this is True
        export_versioned=True,                          # into a new export_dir/<version>/ (TF Serving's layout);
                                                        # False: into export_dir itself, replacing it
        # The export also writes float32, dynamic-range int8 and full-integer int8 .tflite files into its
        # tflite/ folder, each checked against the Keras model (training/serving/tflite.py).
        export_tflite=False,
        export_headless=False,                          # True: the export serves pooled features only, no classifier
        tflite_calibration_images=100,                  # training images calibrating the full-integer int8 file
        tflite_check_images=500,                        # held-out images every .tflite file is checked on
        progress_seconds=30.0,                          # output that is not a terminal: a progress line at most
                                                        # this often (a terminal's status line shows every one)
        tensorboard_images=16,                          # augmented training images shown at each start; 0: none
        predict_top_k=5,                                # --mode=predict: classes printed per image
        predict_output=config_dict.placeholder(str),    # --mode=predict: also write FILE.jsonl or FILE.csv
        init_checkpoint=config_dict.placeholder(str),  # pretrained weights (.h5, ours, tensorflow/tpu) to
                                                        # start training from; or what eval/export/predict read
    ))


def get_config():
    """The paper's recipe: EfficientNet trained on ImageNet on a Cloud TPU at global batch 4096."""
    config = ml_collections.ConfigDict()
    config.model = _model()
    config.data = _data()
    config.train = _train()
    config.eval = _eval()
    config.runtime = _runtime()
    return config
