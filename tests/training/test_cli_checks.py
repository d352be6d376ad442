"""The original's --num_train_images/--num_eval_images are checked against the records counted; what
eval/export/predict take from a run's model_dir."""

import io
import os

from configs import base
from tests.conftest import tiny_config
from training.session import startup
from training.store import logs, rundir


def test_image_counts_given_are_checked_against_the_data(tmp_path, demo_cache, monkeypatch):
    config = tiny_config(
        tmp_path / "run",
        demo_cache,
        **{"runtime.mode": "train", "data.num_train_images": 1000, "data.num_eval_images": 320},
    )
    stream, run_log = io.StringIO(), logs.RunLog
    monkeypatch.setattr(
        startup.logs,
        "RunLog",
        lambda model_dir, enabled, **kwargs: run_log(model_dir, enabled=enabled, stream=stream, **kwargs),
    )
    ctx = startup.setup(config)
    counted = ctx.source.num_examples("train") + ctx.source.num_examples("minival")
    data_line, *warnings = stream.getvalue().splitlines()
    assert data_line.startswith("data: the generated demo data in ")  # the run's first line names its data
    assert warnings == [
        f"warning: --num_train_images=1000 but the data has {counted} (train + minival); using the {counted} records"
    ]
    assert ctx.source.num_examples("validation") == 320  # the right count gives no warning


def _run_dir(path, with_checkpoint):
    """A model_dir whose config.json says 64 px, holdout 2, b2; with or without a checkpoint beside it."""
    import json  # pylint: disable=import-outside-toplevel

    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from configs import demo  # pylint: disable=import-outside-toplevel

    written = json.loads(demo.get_config().to_json())
    written["model"].update(variant="b2", image_size=64, num_classes=8)
    written["data"]["cache_dir"] = str(path / "demo_data")
    path.mkdir()
    (path / "config.json").write_text(json.dumps(written))
    if with_checkpoint:
        tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(1.0)), str(path), 1, checkpoint_name="ckpt").save(
            checkpoint_number=5
        )
    return str(path)


def _config(*args):
    import ml_collections  # pylint: disable=import-outside-toplevel

    from tests.conftest import resolve_command_line  # pylint: disable=import-outside-toplevel

    config, _, user_fields = resolve_command_line(list(args))
    return ml_collections.ConfigDict(config), user_fields


def test_a_runs_settings_are_inherited_only_from_a_trained_run(tmp_path):
    trained, untrained = _run_dir(tmp_path / "trained", True), _run_dir(tmp_path / "untrained", False)
    config, user_fields = _config("--mode=eval", f"--model_dir={untrained}", "--model=b0")
    assert rundir.inherit_run_settings(config, user_fields) == [] and config.model.image_size is None

    config, user_fields = _config("--mode", "eval", f"--model_dir={trained}", "--model=b0")
    notes = rundir.inherit_run_settings(config, user_fields)
    assert (config.model.variant, config.model.image_size, config.data.holdout_shards) == ("b2", 64, 2)
    assert config.data.cache_dir == os.path.join(trained, "demo_data")
    assert notes == [
        f"note: using model.variant=b2 of the run in {trained} (its checkpoints hold that network), not b0"
    ]

    config, user_fields = _config("--mode=eval", f"--model_dir={trained}", "--image_size=96", "--holdout_shards=0")
    rundir.inherit_run_settings(config, user_fields)
    assert (config.model.image_size, config.data.holdout_shards, config.model.num_classes) == (96, 0, 8)

    config, user_fields = _config("--mode=predict", f"--model_dir={trained}")
    rundir.inherit_run_settings(config, user_fields, needs_data=base.MODE_TABLE["predict"].needs_data)
    assert config.model.image_size == 64 and config.data.cache_dir is None  # predict never opens the run's data
