"""A run's model_dir as later commands see it: the config.json a training run writes, what eval/export/predict
take from it, whether a training command may resume it, and the class names kept beside it.
"""
import datetime
import json
import os

import tensorflow as tf

from training import checkpoints, labels
from training.errors import UserError

CONFIG_FILE = "config.json"


def default_model_dir(config):
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join("runs", f"{config.model.variant}-{stamp}")


def write_config(config, model_dir):
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(os.path.join(model_dir, CONFIG_FILE), "w") as f:
        f.write(json.dumps(json.loads(config.to_json()), indent=1, sort_keys=True) + "\n")


# What eval/export/predict take from the run whose checkpoints they read (its model_dir/config.json).
# The network a checkpoint holds always comes from the run; a flag saying otherwise is reported and ignored.
NETWORK_FIELDS = ("model.variant", "model.width_coefficient", "model.depth_coefficient", "model.num_classes",
                   "model.dropout_rate", "model.survival_prob", "train.freeze_backbone")
# The data and evaluation settings it trained with come from the run unless the user sets them: evaluating a
# finished run needs no flag repeated, and a flag still chooses another resolution, crop, split or data.
# The train length fields let a --mode=eval sidecar know the run's final step.
RUN_FIELDS = ("model.image_size", "data.data_dir", "data.dataset", "data.tfds_data_dir", "data.cache_dir",
               "data.holdout_shards", "data.holdout_fraction", "data.include_background", "data.crop_fraction",
               "data.eval_split", "eval.batch_size", "train.steps", "train.epochs", "train.batch_size",
               "eval.in_training")


# A resumed run must keep what its checkpoints hold: the network, and the optimizer whose slots they store.
RESUME_FIELDS = NETWORK_FIELDS + ("train.optimizer",)
# Where the run's data was: predict reads no data (the class names are in model_dir), so it never opens it.
DATA_PLACES = ("data.data_dir", "data.dataset", "data.tfds_data_dir", "data.cache_dir")


def holds_trained_network(model_dir):
    """True when model_dir has a checkpoint of a training run (ckpt-N or archive/), not just a config.json
    (--mode=eval of published weights writes one)."""
    return bool(model_dir) and tf.io.gfile.exists(os.path.join(model_dir, CONFIG_FILE)) and (
        tf.train.latest_checkpoint(model_dir) is not None
        or tf.io.gfile.exists(checkpoints.archived_prefix(model_dir) + ".index"))


def read_run_config(model_dir):
    with tf.io.gfile.GFile(os.path.join(model_dir, CONFIG_FILE)) as f:
        return json.load(f)


def inherit_run_settings(config, user_fields=()):
    """For eval/export/predict on a training run's model_dir: the network it trained (always) and its data and
    evaluation settings (unless in user_fields, the "section.field" names the user set); returns the notes."""
    if config.runtime.mode not in ("eval", "export", "predict") or not holds_trained_network(config.runtime.model_dir):
        return []
    trained, notes = read_run_config(config.runtime.model_dir), []
    for dotted in NETWORK_FIELDS + RUN_FIELDS:
        section, field = dotted.split(".")
        if field not in trained.get(section, {}) or (config.runtime.mode == "predict" and dotted in DATA_PLACES):
            continue
        value = trained[section][field]
        if dotted in user_fields and dotted in RUN_FIELDS:
            continue
        if dotted in user_fields and config[section][field] != value:
            notes.append(f"note: using {dotted}={value} of the run in {config.runtime.model_dir} (its checkpoints "
                         f"hold that network), not {config[section][field]}")
        config[section][field] = value
    return notes


def check_resumable(config, model_dir):
    """Refuses a training command whose network differs from the checkpoints it would resume, before anything
    is written: the run (config.json included) stays exactly as it was."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not tf.io.gfile.exists(path) or checkpoints.latest_step(model_dir) is None:
        return
    try:
        with tf.io.gfile.GFile(path) as f:
            trained = json.load(f)
    except ValueError:  # cut short by a kill while it was written: rewritten below, nothing to compare
        return
    changed = []
    for dotted in RESUME_FIELDS:
        section, field = dotted.split(".")
        if field in trained.get(section, {}) and trained[section][field] != config[section][field]:
            changed.append(f"{dotted}: {trained[section][field]!r} -> {config[section][field]!r}")
    if changed:
        raise UserError(f"{model_dir} holds checkpoints of another network or optimizer ({'; '.join(changed)}); "
                        "resume it with its own settings or train into another --model_dir")


def write_class_names(source, model_dir):
    """model_dir/class_names.txt, one per line in label order: --mode=predict prints them."""
    if source is not None and source.class_names:
        with tf.io.gfile.GFile(os.path.join(model_dir, labels.CLASS_NAMES_FILE), "w") as f:
            f.write("\n".join(source.class_names) + "\n")
