"""Run configs: one ml_collections ConfigDict per run (see configs/base.py for the schema).

FLAG_FIELDS maps main.py's named flags (the original tensorflow/tpu names where it had one) onto config
fields; everything else is overridden as --config.section.field=value.
"""
FLAG_FIELDS = {
    "model": "model.variant",
    "image_size": "model.image_size",
    "num_label_classes": "model.num_classes",
    "data_dir": "data.data_dir",
    "dataset": "data.dataset",
    "holdout_shards": "data.holdout_shards",
    "augment_name": "data.augment_name",
    "train_steps": "train.steps",
    "train_batch_size": "train.batch_size",
    "iterations_per_loop": "train.iterations_per_loop",
    "base_learning_rate": "train.base_learning_rate",
    "moving_average_decay": "train.moving_average_decay",
    "weight_decay": "train.weight_decay",
    "label_smoothing": "train.label_smoothing",
    "seed": "train.seed",
    "deterministic": "train.deterministic",
    "eval_batch_size": "eval.batch_size",
    "steps_per_eval": "eval.steps_per_eval",
    "mode": "runtime.mode",
    "model_dir": "runtime.model_dir",
    "tpu": "runtime.tpu",
    "use_bfloat16": "runtime.use_bfloat16",
    "export_dir": "runtime.export_dir",
    "init_checkpoint": "runtime.init_checkpoint",
}


def apply_flag_overrides(config, flag_values):
    """Sets config fields from the flags the user gave (a value of None means the flag was not given)."""
    for flag_name, value in flag_values.items():
        if value is None:
            continue
        section, field = FLAG_FIELDS[flag_name].split(".")
        config[section][field] = value  # a locked config accepts new values of existing, typed fields
    return config
