"""training/store/rundir.py: a training command may resume a model_dir only with the network and optimizer its
checkpoints hold (fast: no model is built; an index file stands for the checkpoint)."""

import json

import pytest
import tensorflow as tf

from configs import tiny
from efficientnet import variants
from tests.conftest import tiny_config
from training.errors import UserError
from training.store import rundir


def _resolution(config):
    return variants.get_variant(config.model.variant).resolution


@pytest.fixture()
def trained_dir(tmp_path):
    rundir.write_config(tiny.get_config(), str(tmp_path))
    (tmp_path / "ckpt-4.index").write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize(
    "section, field, value", [("model", "num_classes", 5), ("model", "variant", "b1"), ("train", "optimizer", "adamw")]
)
def test_a_resume_with_another_network_or_optimizer_is_refused_before_anything_is_written(
    trained_dir, section, field, value
):
    before = (trained_dir / rundir.CONFIG_FILE).read_bytes()
    config = tiny.get_config()
    config[section][field] = value
    with pytest.raises(UserError, match=f"another network or optimizer \\({section}.{field}: "):
        rundir.check_resumable(config, str(trained_dir), _resolution(config))
    assert (trained_dir / rundir.CONFIG_FILE).read_bytes() == before


def test_the_same_settings_and_a_fresh_directory_resume(trained_dir, tmp_path_factory):
    config = tiny.get_config()
    config.train.steps = 12  # the run's length is not part of what checkpoints hold
    rundir.check_resumable(config, str(trained_dir), _resolution(config))
    rundir.check_resumable(config, str(tmp_path_factory.mktemp("fresh")), _resolution(config))


def test_a_resume_at_another_resolution_is_refused_and_the_variants_own_counts_as_unchanged(trained_dir):
    before = (trained_dir / rundir.CONFIG_FILE).read_bytes()
    config = tiny.get_config()
    config.model.image_size = 64
    with pytest.raises(UserError, match="model.image_size: 32 -> 64"):
        rundir.check_resumable(config, str(trained_dir), _resolution(config))
    assert (trained_dir / rundir.CONFIG_FILE).read_bytes() == before
    assert not (trained_dir / rundir.HISTORY_FILE).exists()
    unset = tiny.get_config()
    unset.model.image_size = None  # b0's own 224 against a config.json saying 224
    stated = tiny.get_config()
    stated.model.image_size = 224
    rundir.write_config(stated, str(trained_dir))
    assert rundir.check_resumable(unset, str(trained_dir), _resolution(unset)) == []


def test_every_changed_field_is_listed_and_input_fields_restart_the_input(trained_dir):
    config = tiny.get_config()
    config.train.batch_size, config.train.base_learning_rate, config.data.shuffle_buffer = 16, 0.5, 64
    changes = rundir.check_resumable(config, str(trained_dir), _resolution(config))
    assert sorted(changes) == [
        ("data.shuffle_buffer", 10_000, 64),
        ("train.base_learning_rate", 0.016, 0.5),
        ("train.batch_size", 8, 16),
    ]
    assert sorted(rundir.restarts_input(changes)) == ["data.shuffle_buffer", "train.batch_size"]
    assert rundir.restarts_input([("train.base_learning_rate", 0.016, 0.5)]) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "changed", [{"train.batch_size": 16}, {"data.augment_name": "autoaugment"}, {"data.shuffle_buffer": 64}]
)
def test_a_resume_with_other_input_settings_restarts_the_input_and_records_the_change(
    tmp_path, demo_cache, capsys, changed
):
    from training.session import run  # pylint: disable=import-outside-toplevel  (builds models)

    common = {"runtime.mode": "train", "data.augment_name": "none"}
    run.run(tiny_config(tmp_path, demo_cache, **common))
    capsys.readouterr()
    run.run(
        tiny_config(tmp_path, demo_cache, **{**common, **changed, "train.steps": 9, "train.base_learning_rate": 0.5})
    )
    out = capsys.readouterr().out
    ((dotted, now),) = changed.items()
    assert f"note: resuming {tmp_path} at step 6 with changed settings" in out
    assert "train.base_learning_rate: 0.016 -> 0.5" in out and "the input pipeline starts afresh" in out
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-9")
    saved = rundir.read_run_config(str(tmp_path))
    section, field = dotted.split(".")
    assert saved[section][field] == now and saved["train"]["steps"] == 9
    history = [json.loads(line) for line in (tmp_path / rundir.HISTORY_FILE).read_text().splitlines()]
    assert len(history) == 1 and history[0]["step"] == 6 and history[0]["input_restarted"]
    assert history[0]["changed"]["train.steps"] == [6, 9] and history[0]["changed"][dotted][1] == now


@pytest.mark.slow
def test_a_resume_with_other_hyperparameters_keeps_the_input_position_and_notes_them(tmp_path, demo_cache, capsys):
    from training.session import run  # pylint: disable=import-outside-toplevel

    run.run(tiny_config(tmp_path, demo_cache, **{"runtime.mode": "train"}))
    capsys.readouterr()
    run.run(
        tiny_config(
            tmp_path, demo_cache, **{"runtime.mode": "train", "train.steps": 9, "train.base_learning_rate": 0.5}
        )
    )
    out = capsys.readouterr().out
    assert (
        "with changed settings (train.steps: 6 -> 9; train.base_learning_rate: 0.016 -> 0.5)" in out
        or "with changed settings (train.base_learning_rate: 0.016 -> 0.5; train.steps: 6 -> 9)" in out
    )
    assert "starts afresh" not in out
    history = [json.loads(line) for line in (tmp_path / rundir.HISTORY_FILE).read_text().splitlines()]
    assert history[0]["changed"] == {"train.steps": [6, 9], "train.base_learning_rate": [0.016, 0.5]}
    assert not history[0]["input_restarted"]


def test_every_data_field_is_classified_for_a_resume():
    """A new data field must say whether a resume that changes it restarts the input pipeline: all of them do
    except these three, which neither shape the training elements nor their order."""
    from configs import base

    unclassified = {f"data.{field}" for field in base.get_config().data} - set(rundir.INPUT_FIELDS)
    assert unclassified == {"data.eval_split", "data.num_train_images", "data.num_eval_images"}
