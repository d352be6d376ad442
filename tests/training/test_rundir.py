"""training/rundir.py: a training command may resume a model_dir only with the network and optimizer its
checkpoints hold (fast: no model is built; an index file stands for the checkpoint)."""
import pytest

from configs import tiny
from training import rundir
from training.errors import UserError


@pytest.fixture()
def trained_dir(tmp_path):
    rundir.write_config(tiny.get_config(), str(tmp_path))
    (tmp_path / "ckpt-4.index").write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize("section, field, value", [
    ("model", "num_classes", 5), ("model", "variant", "b1"), ("train", "optimizer", "adamw")])
def test_a_resume_with_another_network_or_optimizer_is_refused_before_anything_is_written(trained_dir, section,
                                                                                           field, value):
    before = (trained_dir / rundir.CONFIG_FILE).read_bytes()
    config = tiny.get_config()
    config[section][field] = value
    with pytest.raises(UserError, match=f"another network or optimizer \\({section}.{field}: "):
        rundir.check_resumable(config, str(trained_dir))
    assert (trained_dir / rundir.CONFIG_FILE).read_bytes() == before


def test_the_same_settings_and_a_fresh_directory_resume(trained_dir, tmp_path_factory):
    config = tiny.get_config()
    config.train.steps = 12  # the run's length is not part of what checkpoints hold
    rundir.check_resumable(config, str(trained_dir))
    rundir.check_resumable(config, str(tmp_path_factory.mktemp("fresh")))
