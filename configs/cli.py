"""The command line: one table of main.py's named flags, and the one rule that turns flags into a config.

Every named flag is a row of FLAGS: its name, the config field it sets, its type, its help, and how the default
shown by --help is found (the recipe's value in configs/base.py unless the row says otherwise). The table
holds our names and every flag of the original tensorflow/tpu models/official/efficientnet/main.py, so its
command lines run unchanged: the original's flags that mean something here set the same fields as ours
(--model_name=efficientnet-b4 is --model=b4); the ones that only tuned TF1 Estimator internals are accepted with
a one-line note that they have no effect; the ones naming a feature this project does not have are accepted at
the value that means "off" and refused otherwise.

No TensorFlow here: main.py resolves the config before TensorFlow loads, so bad flags fail in well under a second.
"""
import dataclasses
import difflib
import os
import re
import textwrap
from typing import Any, Callable, Optional

from absl import flags
from ml_collections import config_flags

from configs import base, demo

CONFIG_DIR = os.path.dirname(os.path.abspath(__file__))
BASE_CONFIG = os.path.join(CONFIG_DIR, "base.py")
SHOWN_FROM_RECIPE = object()  # the default --help shows is the field's value in configs/base.py


@dataclasses.dataclass(frozen=True)
class Flag:
    name: str
    field: Optional[str]            # "section.field" it sets; None: a flag of the original with no field here
    kind: str                       # string, integer, float, bool or enum
    help: str
    default: Any = SHOWN_FROM_RECIPE
    convert: Optional[Callable] = None  # flag value -> field value
    no_effect: Optional[str] = None     # why an original flag does nothing here (printed as a note when given)
    only: Any = None                    # an original flag of a feature we lack: the one value accepted ("off")


def _variant_name(value):
    """tensorflow/tpu's model names ("efficientnet-b4", "efficientnet-edgetpu-S", "efficientnet-x-tpu-b3") -> our
    variant keys ("b4", "edgetpu-s", "x-tpu-b3")."""
    key = value.strip().lower()
    return key[len("efficientnet-"):] if key.startswith("efficientnet-") else key


def _optimizer_name(value):
    """The original's --optimizer values (rmsprop, sgd, momentum, lars) are train.optimizer's names."""
    return value.strip().lower()


_TF1 = "a TF1 Estimator/TPUEstimator setting; tf.distribute and tf.data choose this themselves"

FLAGS = (
    # Ours (most keep the original's name).
    Flag("model", "model.variant", "string",
         "Variant: b0 ... b7, b8, l2, edgetpu-s/m/l, lite0 ... lite4, condconv-b0-4e/8e/8e-depth, "
         "x-b0 ... x-b7, h-b5 ... h-b7, x-tpu-b0 ... x-tpu-b7, h-tpu-b5 ... h-tpu-b7, x-gpu-b0 ... x-gpu-b7."),
    Flag("tpu", "runtime.tpu", "string", "Cloud TPU name, grpc://host:port, or 'local' on a TPU VM."),
    Flag("data_dir", "data.data_dir", "string",
         "ImageNet-format TFRecords (train-*-of-*, validation-*-of-*); with neither this nor --dataset: demo data."),
    Flag("dataset", "data.dataset", "string",
         "TensorFlow Datasets source instead of --data_dir, e.g. tfds:imagenet2012."),
    Flag("model_dir", "runtime.model_dir", "string",
         "Where checkpoints, metrics and the archive go (default runs/<model>-<time>)."),
    Flag("mode", "runtime.mode", "enum", "What to run (eval: see --eval_timeout)."),
    Flag("train_steps", "train.steps", "integer", "Training steps (default: train.epochs x steps per epoch)."),
    Flag("train_batch_size", "train.batch_size", "integer", "Global training batch."),
    Flag("eval_batch_size", "eval.batch_size", "integer", "Global evaluation batch."),
    Flag("steps_per_eval", "eval.steps_per_eval", "integer",
         "Training steps between minival evaluations (default: every eval.epochs_per_eval epochs)."),
    Flag("iterations_per_loop", "train.iterations_per_loop", "integer", "Training steps per host call."),
    Flag("image_size", "model.image_size", "integer", "Input resolution (default: the variant's)."),
    Flag("num_label_classes", "model.num_classes", "integer", "Classes (default: from the data)."),
    Flag("holdout_shards", "data.holdout_shards", "integer", "Train shards held out as minival."),
    Flag("augment_name", "data.augment_name", "string", "autoaugment, randaugment or none."),
    Flag("base_learning_rate", "train.base_learning_rate", "float",
         "Learning rate per 256 images (scaled linearly with the batch)."),
    Flag("lr_schedule", "train.lr_schedule", "string", "exponential (the recipe), cosine, poly or constant."),
    Flag("lr_warmup_epochs", "train.warmup_epochs", "float", "Linear learning-rate warm-up, in epochs."),
    Flag("lr_decay_epoch", "train.lr_decay_epochs", "float", "Epochs between exponential decays."),
    Flag("lr_decay_factor", "train.lr_decay_rate", "float", "Exponential decay factor."),
    Flag("moving_average_decay", "train.moving_average_decay", "float", "EMA decay."),
    Flag("weight_decay", "train.weight_decay", "float", "L2 weight decay."),
    Flag("label_smoothing", "train.label_smoothing", "float", "Label smoothing."),
    Flag("dropout_rate", "model.dropout_rate", "float", "Dropout before the classifier (default: the variant's)."),
    Flag("survival_prob", "model.survival_prob", "float", "Stochastic depth: survival probability of the last block."),
    Flag("width_coefficient", "model.width_coefficient", "float", "Width scaling (default: the variant's)."),
    Flag("depth_coefficient", "model.depth_coefficient", "float", "Depth scaling (default: the variant's)."),
    Flag("randaug_num_layers", "data.randaugment_num_layers", "integer", "RandAugment: ops per image."),
    Flag("randaug_magnitude", "data.randaugment_magnitude", "integer", "RandAugment: magnitude."),
    Flag("precision", "runtime.precision", "string",
         "float32, mixed_bfloat16 or mixed_float16 (with dynamic loss scaling); default by device: bfloat16 on "
         "TPUs and GPUs of compute capability 8.0+, float16 on 7.x, else float32."),
    Flag("use_bfloat16", "runtime.use_bfloat16", "bool",
         "The original's switch: true is --precision=mixed_bfloat16, false --precision=float32."),
    Flag("tflite", "runtime.export_tflite", "bool",
         "With the export, also write float32, dynamic-range int8 and full-integer int8 .tflite files, each "
         "checked against the Keras model on held-out images."),
    Flag("export_dir", "runtime.export_dir", "string",
         "Where to write the SavedModel: a new numeric version folder inside it (TF Serving's layout; "
         "--config.runtime.export_versioned=false: the folder itself)."),
    Flag("init_checkpoint", "runtime.init_checkpoint", "string", "Weights to start from, evaluate or export."),
    Flag("top_k", "runtime.predict_top_k", "integer", "--mode=predict: classes shown per image."),
    Flag("output", "runtime.predict_output", "string",
         "--mode=predict: also write the predictions to FILE.jsonl or FILE.csv (image paths are positional)."),
    Flag("seed", "train.seed", "integer", "Random seed."),
    Flag("deterministic", "train.deterministic", "bool", "Deterministic ops and input order (bit-exact resume)."),
    Flag("eval_timeout", "eval.timeout_seconds", "integer",
         "--mode=eval as a sidecar of a training job: stop after this many seconds without a new checkpoint."),
    # The original's names for the same fields, and its TPU resolver arguments.
    Flag("model_name", "model.variant", "string", "The original's --model, e.g. efficientnet-b4.",
         default="efficientnet-b0", convert=_variant_name),
    Flag("input_image_size", "model.image_size", "integer", "The original's --image_size."),
    Flag("tpu_zone", "runtime.tpu_zone", "string", "GCE zone of the TPU named by --tpu (default: from metadata)."),
    Flag("gcp_project", "runtime.gcp_project", "string", "GCP project of the TPU (default: from metadata)."),
    Flag("use_tpu", None, "bool", "The original's switch: false runs on the local devices even if --tpu is given; "
         "true without --tpu uses $TPU_NAME or the local TPU VM.", default=None),
    Flag("num_train_images", "data.num_train_images", "integer",
         "Train records including minival (default: counted); when given, checked against the count."),
    Flag("num_eval_images", "data.num_eval_images", "integer",
         "Validation records (default: counted); when given, checked against the count."),
    # The original's flags that tuned TF1 internals: accepted, no effect.
    Flag("transpose_input", None, "bool", "", default=True, no_effect=_TF1),
    Flag("skip_host_call", None, "bool", "", default=False,
         no_effect="TensorBoard scalars are written every --iterations_per_loop steps, outside the TPU loop"),
    Flag("use_cache", None, "bool", "", default=False, no_effect=_TF1),
    Flag("num_parallel_calls", None, "integer", "", default=64, no_effect="tf.data.AUTOTUNE sets the parallelism"),
    Flag("data_format", None, "string", "", default="channels_last", no_effect="the model is channels_last"),
    Flag("export_to_tpu", None, "bool", "", default=False, no_effect="the SavedModel serves on CPU/GPU"),
    Flag("log_step_count_steps", None, "integer", "", default=64,
         no_effect="progress is printed every --iterations_per_loop steps"),
    Flag("use_async_checkpointing", None, "bool", "", default=False, no_effect=_TF1),
    Flag("tpu_job_name", None, "string", "", default=None, no_effect=_TF1),
    Flag("num_replicas", None, "integer", "", default=32, no_effect="the replica count is the TPU's"),
    Flag("batch_norm_batch_size", None, "integer", "", default=128,
         no_effect="BatchNorm replica groups are --config.model.batchnorm_group_size"),
    Flag("archive_ckpt", None, "bool", "", default=True, no_effect="the best checkpoint is always archived"),
    Flag("eval_name", None, "string", "", default=None, no_effect="evaluations are named by their split"),
    Flag("lars_weight_decay", "train.lars_weight_decay", "float", "LARS weight decay (--optimizer=lars)."),
    Flag("lars_epsilon", "train.lars_epsilon", "float", "LARS epsilon (--optimizer=lars)."),
    Flag("bigtable_project", None, "string", "", default=None, no_effect="there is no Bigtable input here"),
    Flag("bigtable_table", None, "string", "", default="imagenet", no_effect="there is no Bigtable input here"),
    Flag("bigtable_train_prefix", None, "string", "", default="train_", no_effect="there is no Bigtable input here"),
    Flag("bigtable_eval_prefix", None, "string", "", default="validation_",
         no_effect="there is no Bigtable input here"),
    Flag("bigtable_column_family", None, "string", "", default="tfexample",
         no_effect="there is no Bigtable input here"),
    Flag("bigtable_column_qualifier", None, "string", "", default="example",
         no_effect="there is no Bigtable input here"),
    Flag("optimizer", "train.optimizer", "string",
         "rmsprop (the recipe: TF1 RMSProp), momentum (TF1 momentum with train.momentum), sgd (plain gradient "
         "descent), lars (the original's LARS) or adamw.", convert=_optimizer_name),
    Flag("mixup_alpha", "data.mixup_alpha", "float",
         "Mixup strength: Beta(alpha, alpha) blends of each replica's training batch with itself reversed, as "
         "the original; 0 (the recipe) is off."),
    # The original's flags of features this project does not have: only "off" is accepted.
    Flag("bigtable_instance", None, "string", "", default=None, only=None),
    Flag("batch_norm_momentum", None, "float", "", default=None, only=0.99),  # efficientnet/blocks.py's constant
    Flag("batch_norm_epsilon", None, "float", "", default=None, only=1e-3),
)
BY_NAME = {flag.name: flag for flag in FLAGS}


class FlagError(ValueError):
    """A flag value that cannot be used: main.py prints it as one line, exit status 2."""


def field_value(config, dotted):
    section, field = dotted.split(".")
    return config[section][field]


def set_field(config, dotted, value):
    section, field = dotted.split(".")
    config[section][field] = value  # a locked config accepts new values of existing, typed fields


def shown_default(flag):
    """The default --help shows: the recipe's value (configs/base.py) or the original's."""
    return field_value(base.get_config(), flag.field) if flag.default is SHOWN_FROM_RECIPE else flag.default


def help_text(flag, demo_config):
    """The row's help; for the original's flags without an effect, what they did and why they do nothing."""
    if flag.no_effect:
        return f"Accepted for tensorflow/tpu command lines; no effect ({flag.no_effect})."
    if flag.field is None and flag.name != "use_tpu":
        accepted = "when not given" if flag.only is None else f"at {flag.only!r} only"
        return f"Accepted for tensorflow/tpu command lines {accepted} (not available here)."
    text = flag.help
    if flag.field and flag.default is SHOWN_FROM_RECIPE:
        demo_value = field_value(demo_config, flag.field)
        if demo_value != shown_default(flag):
            text += f" Demo config (no data given): {demo_value}."
    return text


# --- the config rule --------------------------------------------------------------------------------------

def given_overrides(flag_values):
    """{"section.field": value} of the --config.section.field=... overrides on the command line (any spelling)."""
    return {name[len("config."):]: flag_values[name].value for name in flag_values
            if name.startswith("config.") and flag_values[name].present}


def given_flags(flag_values):
    """The named flags on the command line, in table order: [(Flag, value)]."""
    return [(flag, flag_values[flag.name].value) for flag in FLAGS if flag_values[flag.name].present]


def _apply(config, overrides, flags_given):
    """Sets the overrides, then the named flags, on `config`; returns (config, notes)."""
    notes, set_by = [], {}
    for dotted, value in overrides.items():
        set_field(config, dotted, value)
    for flag, value in flags_given:
        if flag.no_effect:
            notes.append(f"note: --{flag.name} has no effect here ({flag.no_effect})")
            continue
        if flag.field is None and flag.name != "use_tpu":
            if (value.lower() if isinstance(value, str) else value) != flag.only:
                raise FlagError(f"--{flag.name}={value} is not available here (only {flag.only!r}, the default)")
            continue
        if flag.name == "use_tpu":
            continue  # below, once --tpu is known
        value = flag.convert(value) if flag.convert and value is not None else value
        if flag.field in set_by and set_by[flag.field][1] != value:
            other = set_by[flag.field][0]
            raise FlagError(f"--{other}={set_by[flag.field][1]} and --{flag.name}={value} set the same thing; "
                            "give one")
        set_by[flag.field] = (flag.name, value)
        set_field(config, flag.field, value)
    given = dict((f.name, v) for f, v in flags_given)
    notes += _apply_use_tpu(config, given.get("use_tpu"))
    if given.get("num_label_classes") == 1001 and "data.include_background" not in overrides:
        # tensorflow/tpu main.py `main`: include_background_label = (num_label_classes == 1001), label 0 kept
        config.data.include_background = True
    return config, notes


def _apply_use_tpu(config, use_tpu):
    """tensorflow/tpu main.py builds its TPU resolver when --tpu or --use_tpu is set and runs on TPU only when
    --use_tpu is true; here --tpu alone chooses the TPU, so only the two explicit cases change anything."""
    if use_tpu is False and config.runtime.tpu:
        tpu, config.runtime.tpu = config.runtime.tpu, None
        return [f"note: --use_tpu=false: running on the local devices, not on TPU {tpu!r}"]
    if use_tpu and not config.runtime.tpu:
        config.runtime.tpu = os.environ.get("TPU_NAME") or "local"
    return []


def fields_given(flag_values):
    """The "section.field" names the user set, by a named flag or a --config override."""
    named = {flag.field for flag, _ in given_flags(flag_values) if flag.field and not flag.no_effect}
    if flag_values["use_tpu"].present:
        named.add("runtime.tpu")
    return named | set(given_overrides(flag_values))


def preset_name(config):
    """The one rule for the starting config when no --config is given, decided on the parsed values:
    training without data (neither --data_dir nor --dataset) is the CPU-sized demo; everything else (training
    on data, and eval/export/predict, which take a run's settings from its model_dir or published weights at
    the variant's resolution) starts from the paper's recipe."""
    has_data = bool(config.data.data_dir or config.data.dataset)
    trains = base.MODE_TABLE.get(config.runtime.mode, base.Mode()).trains  # an unknown mode: validate_config says so
    return "demo" if not has_data and trains else "imagenet"


def resolve(flag_values):
    """(config, notes): the run's config from parsed flags. With --config=FILE that file with the overrides
    (absl applied them); otherwise (main.py parsed against configs/base.py, the schema) the preset chosen by
    `preset_name` with the same overrides. Named flags apply last."""
    from configs import demo, imagenet  # pylint: disable=import-outside-toplevel
    overrides, flags_given = given_overrides(flag_values), given_flags(flag_values)
    if config_flags.get_config_filename(flag_values["config"]) != BASE_CONFIG:  # the user's --config=FILE
        return _apply(flag_values.config, {}, flags_given)
    probe, _ = _apply(base.get_config(), overrides, flags_given)
    preset = {"demo": demo, "imagenet": imagenet}[preset_name(probe)].get_config()
    return _apply(preset, overrides, flags_given)


def unknown_field_message(override):
    """One line for a mistyped --config.section.field, with the nearest field names as suggestions."""
    name = override.split("=", 1)[0].lstrip("-")
    dotted = name[len("config."):] if name.startswith("config.") else name
    known = [f"{section}.{field}" for section, fields in base.get_config().items() for field in fields]
    close = difflib.get_close_matches(dotted, known, n=2)
    hint = f"; did you mean {' or '.join('--config.' + c for c in close)}?" if close else ""
    return f"unknown config field --config.{dotted}{hint} (python main.py --help_config lists them)"


def describe_fields(config=None, preset=None):
    """--help_config: every config field with the default of `config` (the preset the same command line would
    use; default: configs/base.py, the recipe) and its comment in configs/base.py, choices spelled out."""
    comments = _base_comments()
    config = config or base.get_config()
    lines = [f"# defaults of {preset or 'configs/base.py (the recipe)'}, the named flags and overrides given applied"]
    for section, fields in config.items():
        for field, value in fields.items():
            comment = comments.get(f"{section}.{field}", "")
            lines.append(f"--config.{section}.{field}={value!r}" + (f"    # {comment}" if comment else ""))
    return "\n".join(lines)


def _spelled_out(comment):
    """"one of MODES" -> "one of train, eval, ...": the choices by value, not by their name in base.py."""
    return re.sub(r"\bone of ([A-Z_]+)\b",
                  lambda m: "one of " + ", ".join(getattr(base, m.group(1), (m.group(1),))), comment)


def _base_comments():
    """"section.field" -> its comment in configs/base.py, choices spelled out.

    A comment ending a field's line is that field's, with the comment-only lines below it aligned to it
    (continuations); comment-only lines at another indentation belong to the field that follows them."""
    comments, section, last, last_column, above = {}, None, None, None, []
    with open(BASE_CONFIG, encoding="utf-8") as f:
        for line in f:
            code, _, comment = line.partition("#")
            comment, stripped = comment.strip(), code.strip()
            match = re.match(r"def _(\w+)\(", stripped)
            name = stripped.split("=", 1)[0].strip() if "=" in stripped else ""
            if match:
                section, last, above = match.group(1), None, []
            elif section and name.isidentifier() and stripped.endswith(","):
                last, last_column = f"{section}.{name}", len(code) if comment else None
                comments[last] = " ".join(above + ([comment] if comment else []))
                above = []
            elif not stripped and comment and last and len(code) == last_column:
                comments[last] = f"{comments[last]} {comment}".strip()
            elif not stripped and comment and section:
                above.append(comment)
                last = None
            else:
                last, above = None, []
    return {field: _spelled_out(text) for field, text in comments.items()}


# --- --help ------------------------------------------------------------------------------------------------

# What each --mode runs (--help prints these; training/session/run.py MODE_HANDLERS is the code).
MODE_HELP = {
    "train": "train and checkpoint only (resuming from model_dir), as the original's training job; a "
             "--mode=eval job beside it evaluates (--config.eval.in_training=true: evaluate minival here)",
    "train_and_eval": "train, evaluating the EMA weights on minival and archiving the best, then score the "
                      "archived best on the validation split and export it when --export_dir or "
                      "runtime.export_at_end is set (the demo config sets it)",
    "eval": "beside (or after) a --mode=train job: evaluate each new checkpoint of model_dir, keep the best, "
            "stop after the last step (or --eval_timeout s without one) and score it on data.eval_split; on a "
            "run that evaluated itself, or published weights (--init_checkpoint): score once",
    "export": "write model_dir's best (or --init_checkpoint) as a SavedModel (--tflite: also .tflite files)",
    "predict": "classify the image files, folders and globs given after the flags with model_dir's best or "
               "--init_checkpoint (--top_k, --output)",
}

# --help's groups in order; the original's flags that only keep its command lines working come last.
HELP_GROUPS = (
    ("the recipe", ("model", "image_size", "train_steps", "train_batch_size", "base_learning_rate", "lr_schedule",
                    "lr_warmup_epochs", "lr_decay_epoch", "lr_decay_factor", "optimizer", "lars_weight_decay",
                    "lars_epsilon", "moving_average_decay", "weight_decay", "label_smoothing", "dropout_rate",
                    "survival_prob", "width_coefficient", "depth_coefficient", "augment_name", "randaug_num_layers",
                    "randaug_magnitude", "precision", "use_bfloat16", "seed", "deterministic")),
    ("data", ("data_dir", "dataset", "num_label_classes", "holdout_shards")),
    ("run control", ("mode", "model_dir", "eval_batch_size", "steps_per_eval", "iterations_per_loop",
                     "init_checkpoint", "export_dir", "tflite", "top_k", "output", "eval_timeout")),
    ("TPU", ("tpu", "tpu_zone", "gcp_project", "use_tpu")),
)
COMPATIBILITY_GROUP = "compatibility flags of tensorflow/tpu main.py (its names for the fields above, and its " \
                      "flags without an effect here)"

USAGE = """usage: python main.py [--mode=MODE] [flags] [IMAGE_FILES ...]

  IMAGE_FILES (positional arguments): the image files, folders and globs --mode=predict classifies, e.g.
    python main.py --mode=predict --model_dir=runs/mine photo.jpg photos/ 'more/*.png' --top_k=3
  (no other mode takes any)

example (the paper's B4 on ImageNet TFRecords on a Cloud TPU):
  python main.py --model=b4 --tpu=NAME --data_dir=gs://BUCKET/imagenet --model_dir=gs://BUCKET/runs/b4
with no flags at all: the CPU-sized demo (configs/demo.py) on generated demo data.

--config=FILE picks a preset (e.g. configs/transfer.py:cifar10); --config.section.field=value sets any field
(--help_config lists them with this command line's defaults); --helpfull adds absl's own flags."""


def help_groups():
    """[(title, [Flag])]: --help's groups; every named flag is in exactly one (the original's last)."""
    grouped = [(title, [BY_NAME[name] for name in names]) for title, names in HELP_GROUPS]
    listed = {name for _, names in HELP_GROUPS for name in names}
    return grouped + [(COMPATIBILITY_GROUP, [flag for flag in FLAGS if flag.name not in listed])]


def help_lines(flag_values):
    """The text of --help: usage, what each mode does, then the named flags by group with their defaults."""
    lines = [USAGE, "", "--mode:"]
    for mode, text in MODE_HELP.items():
        lines += textwrap.wrap(f"{mode:<15} {text}", width=110, initial_indent="  ", subsequent_indent=" " * 18)
    for title, group in help_groups():
        lines += ["", f"{title}:"]
        for flag in group:
            absl_flag = flag_values[flag.name]
            name = f"--[no]{flag.name}" if flag.kind == "bool" else f"--{flag.name}"
            default = "" if absl_flag.default is None else f" (default: {absl_flag.default_as_str})"
            lines += textwrap.wrap(f"{name}: {absl_flag.help}{default}", width=110, initial_indent="  ",
                                   subsequent_indent="    ")
    return "\n".join(lines)


def preset_label(flag_values, config):
    """The name --help_config gives the config `resolve` returned for this command line."""
    filename = config_flags.get_config_filename(flag_values["config"])
    if filename != BASE_CONFIG:
        return filename
    name = preset_name(config)
    return {"demo": "configs/demo.py (training without data)", "imagenet": "configs/imagenet.py (the recipe)"}[name]


_DEFINE = {"string": flags.DEFINE_string, "integer": flags.DEFINE_integer, "float": flags.DEFINE_float,
           "bool": flags.DEFINE_bool}


# The command line ml_collections scans for --config.* overrides. It reads it (and any --flagfile in it) as
# soon as --config is defined, so it stays empty until read_flags fills it: a missing flagfile is then absl's
# one-line error, not a traceback at import.
_ARGV = []


def define_flags(flag_values, argv=None):
    """Defines --config, --help_config and every row of FLAGS on `flag_values` (main.py: absl's global flags;
    tests pass their own).

    argv: the list ml_collections scans for the --config.* overrides, filled before parsing (default _ARGV).
    """
    config_flags.DEFINE_config_file(
        "config", None, "Config file, e.g. configs/transfer.py:cifar10. Default: configs/demo.py to "
        "train without data, else configs/imagenet.py (the recipe); --help_config lists every field.",
        flag_values=flag_values, lock_config=True, sys_argv=_ARGV if argv is None else argv)
    flags.DEFINE_bool("help_config", False, "List every config field with its default and comment, and exit.",
                      flag_values=flag_values)
    demo_config = demo.get_config()
    for flag in FLAGS:
        default, text = shown_default(flag), help_text(flag, demo_config)
        if flag.kind == "enum":
            flags.DEFINE_enum(flag.name, default, base.MODES, text, flag_values=flag_values)
        else:
            _DEFINE[flag.kind](flag.name, default, text, flag_values=flag_values)



def bad_override(argv):
    """The first --config.section.field on the command line that names no field of the schema, else None."""
    known = {f"{section}.{field}" for section, fields in base.get_config().items() for field in fields}
    for arg in argv[1:]:
        name = arg.split("=", 1)[0].lstrip("-")
        name = name[2:] if name.startswith("noconfig.") else name
        if name.startswith("config.") and name[len("config."):] not in known:
            return arg
    return None


def with_schema_config(argv, flag_values):
    """argv with --config=configs/base.py first when the user gave no --config: ml_collections registers the
    --config.* override flags only while parsing a --config. The schema is a neutral start; the rule choosing
    the preset (configs/cli.py `resolve`) runs on the parsed values. The test for a user's --config is
    ml_collections' own (after --flagfile expansion), so it holds for every spelling it accepts."""
    expanded = flag_values.read_flags_from_files(argv, force_gnu=False)
    if any(re.match(r"^-{1,2}config(=|$)", arg) for arg in expanded[1:]):
        return argv
    return argv[:1] + [f"--config={BASE_CONFIG}"] + argv[1:]


def read_flags(argv, flag_values, scanned=None):
    """Parses argv into flag_values (defined by `define_flags` with `scanned` as its argv list, default _ARGV);
    returns the positional arguments. Raises absl's and ml_collections' errors as they are."""
    (scanned if scanned is not None else _ARGV)[:] = argv
    return flag_values(with_schema_config(argv, flag_values))
