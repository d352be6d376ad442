"""A run's model_dir as later commands see it: the config.json a training run writes, what eval/export/predict
take from it, whether a training command may resume it, and the class names kept beside it.
"""

import datetime
import json
import os

import tensorflow as tf

import tpu
from training.errors import UserError
from training.store import checkpoints, labels, logs, temporaries

CONFIG_FILE = "config.json"
# One line per resume that changed settings: {"step", "changed": {field: [before, now]}, "input_restarted"}.
HISTORY_FILE = "config_history.jsonl"


def _config_dict(config):
    return json.loads(config.to_json())


def write_config(config, model_dir):
    """model_dir/config.json, replaced by rename: a kill while writing leaves the previous one."""
    tf.io.gfile.makedirs(model_dir)
    tmp_path = temporaries.name(os.path.join(model_dir, CONFIG_FILE))
    with tf.io.gfile.GFile(tmp_path, "w") as f:
        f.write(json.dumps(_config_dict(config), indent=1, sort_keys=True) + "\n")
    tf.io.gfile.rename(tmp_path, os.path.join(model_dir, CONFIG_FILE), overwrite=True)


# What eval/export/predict take from the run whose checkpoints they read (its model_dir/config.json).
# The network a checkpoint holds always comes from the run; a flag saying otherwise is reported and ignored.
NETWORK_FIELDS = (
    "model.variant",
    "model.width_coefficient",
    "model.depth_coefficient",
    "model.num_classes",
    "model.dropout_rate",
    "model.survival_prob",
    "train.freeze_backbone",
)
# The data and evaluation settings it trained with come from the run unless the user sets them: evaluating a
# finished run needs no flag repeated, and a flag still chooses another resolution, crop, split or data.
# The train length fields let a --mode=eval sidecar know the run's final step.
RUN_FIELDS = (
    "model.image_size",
    "data.data_dir",
    "data.dataset",
    "data.tfds_data_dir",
    "data.cache_dir",
    "data.holdout_shards",
    "data.holdout_fraction",
    "data.include_background",
    "data.crop_fraction",
    "data.eval_split",
    "eval.batch_size",
    "train.steps",
    "train.epochs",
    "train.batch_size",
    "eval.in_training",
)


# A resumed run must keep what its checkpoints hold: the network, and the optimizer whose slots they store; and
# its resolution (the network trained at it; README "Reliability" promises the refusal).
RESUME_FIELDS = NETWORK_FIELDS + ("train.optimizer", "model.image_size")
# What the checkpointed training input position depends on (the per-worker batch, the record stream, the
# preprocessing, the shuffle buffer): a resume changing one of these starts a new input pipeline, reseeded by
# the step, instead of restoring an iterator of other shapes or another stream.
INPUT_FIELDS = tuple(
    f"data.{f}"
    for f in (
        "data_dir",
        "dataset",
        "tfds_data_dir",
        "cache_dir",
        "holdout_shards",
        "holdout_fraction",
        "include_background",
        "augment_name",
        "randaugment_num_layers",
        "randaugment_magnitude",
        "augment_on_device",
        "crop_fraction",
        "resize_method",
        "max_bad_fraction",
        "crop_area_range",
        "crop_aspect_ratio_range",
        "shuffle_buffer",
        "mixup_alpha",
    )
) + ("train.batch_size", "train.seed", "train.deterministic")
# Per-invocation settings that are not the run's (never listed as a change).
_NOT_COMPARED = ("runtime.model_dir",)
# Where the run's data was: predict reads no data (the class names are in model_dir), so it never opens it.
DATA_PLACES = ("data.data_dir", "data.dataset", "data.tfds_data_dir", "data.cache_dir")


def holds_trained_network(model_dir):
    """True when model_dir has a checkpoint of a training run (ckpt-N or archive/), not just a config.json
    (--mode=eval of published weights writes one)."""
    return (
        bool(model_dir)
        and tf.io.gfile.exists(os.path.join(model_dir, CONFIG_FILE))
        and (
            tf.train.latest_checkpoint(model_dir) is not None
            or tf.io.gfile.exists(checkpoints.archived_prefix(model_dir) + ".index")
        )
    )


def read_run_config(model_dir):
    with tf.io.gfile.GFile(os.path.join(model_dir, CONFIG_FILE)) as f:
        return json.load(f)


def inherit_run_settings(config, user_fields=(), *, needs_data=True):
    """For a mode that scores a training run's weights (eval, export, predict: configs/base.py MODE_TABLE): the
    network it trained (always) and its data and evaluation settings (unless in user_fields, the "section.field"
    names the user set; the data's places only when the mode reads data); returns the notes."""
    if not holds_trained_network(config.runtime.model_dir):
        return []
    trained, notes = read_run_config(config.runtime.model_dir), []
    for dotted in NETWORK_FIELDS + RUN_FIELDS:
        section, field = dotted.split(".")
        if field not in trained.get(section, {}) or (not needs_data and dotted in DATA_PLACES):
            continue
        value = trained[section][field]
        if dotted in user_fields and dotted in RUN_FIELDS:
            continue
        if dotted in user_fields and config[section][field] != value:
            notes.append(
                f"note: using {dotted}={value} of the run in {config.runtime.model_dir} (its checkpoints "
                f"hold that network), not {config[section][field]}"
            )
        config[section][field] = value
    return notes


def resume_changes(config, model_dir, variant_resolution):
    """[("section.field", value in config.json, value now)] for every field a resume of model_dir would change;
    [] for a fresh run (no checkpoint, or no readable config.json). variant_resolution: the resolution an unset
    model.image_size stands for (the variant's row)."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not tf.io.gfile.exists(path) or checkpoints.latest_step(model_dir) is None:
        return []
    try:
        with tf.io.gfile.GFile(path) as f:
            trained = json.load(f)
    except ValueError:  # cut short by a kill while an older version wrote it in place: nothing to compare
        return []
    now, changes = _config_dict(config), []
    for section, fields in now.items():
        for field, value in fields.items():
            dotted = f"{section}.{field}"
            if dotted in _NOT_COMPARED or field not in trained.get(section, {}):
                continue
            before = trained[section][field]
            if dotted == "model.image_size":  # None stands for the variant's resolution
                before, value = before or variant_resolution, value or variant_resolution
            if before != value:
                changes.append((dotted, before, value))
    return changes


def check_resumable(config, model_dir, variant_resolution):
    """Refuses a training command whose network, optimizer or resolution differs from the checkpoints it would
    resume, before anything is written (config.json included); returns the other changes (`resume_changes`)."""
    changes = resume_changes(config, model_dir, variant_resolution)
    refused = [f"{dotted}: {before!r} -> {now!r}" for dotted, before, now in changes if dotted in RESUME_FIELDS]
    if refused:
        raise UserError(
            f"{model_dir} holds checkpoints of another network or optimizer ({'; '.join(refused)}); "
            "resume it with its own settings or train into another --model_dir"
        )
    for dotted, before, now in changes:
        # float16's loss scale lives in the optimizer's checkpoint (state.py with_loss_scaling): its checkpoints
        # and the others' are not interchangeable. float32 <-> mixed_bfloat16 keep the same checkpoint.
        if dotted == "runtime.precision" and tpu.loss_scaled(before) != tpu.loss_scaled(now):
            raise UserError(
                f"{model_dir} was trained in {before} and this command would resume it in {now} (chosen by "
                f"device unless --precision is given); float16's checkpoints hold a loss scale the others "
                f"do not: resume with --precision={before} or train into another --model_dir"
            )
    return changes


def restarts_input(changes):
    """The changed fields that make a resume start its input pipeline afresh (INPUT_FIELDS)."""
    return [dotted for dotted, _, _ in changes if dotted in INPUT_FIELDS]


def resume_note(model_dir, step, changes):
    """The one line a resume with changed settings prints."""
    listed = "; ".join(f"{dotted}: {before!r} -> {now!r}" for dotted, before, now in changes)
    note = f"note: resuming {model_dir} at step {step} with changed settings ({listed})"
    restarted = restarts_input(changes)
    if restarted:
        note += (
            f"; the input pipeline starts afresh, reseeded by the step ({', '.join(restarted)} changed what "
            "the checkpointed input position means)"
        )
    return note


def record_start(config, model_dir, step, changes):
    """After a successful restore (or a fresh start): the changes appended to config_history.jsonl, then
    config.json rewritten with the settings this run uses now."""
    if changes:
        line = json.dumps(
            {
                "step": step,
                "changed": {dotted: [before, now] for dotted, before, now in changes},
                "input_restarted": bool(restarts_input(changes)),
                "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            }
        )
        # By rename, as metrics.jsonl: a kill leaves the old or the new file.
        logs._append_line(os.path.join(model_dir, HISTORY_FILE), line)  # pylint: disable=protected-access
    write_config(config, model_dir)


def write_class_names(source, model_dir):
    """model_dir/class_names.txt, one per line in label order: --mode=predict prints them."""
    if source is not None and source.class_names:
        with tf.io.gfile.GFile(os.path.join(model_dir, labels.CLASS_NAMES_FILE), "w") as f:
            f.write("\n".join(source.class_names) + "\n")
