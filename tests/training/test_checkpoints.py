"""training/store/checkpoints.py: the rotating checkpoints when model_dir disappears under a running run (eager,
fast)."""

import shutil

import pytest
import tensorflow as tf

from training.errors import UserError
from training.store import checkpoints


def test_a_save_into_a_deleted_model_dir_is_one_line_naming_it(tmp_path):
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    saver = checkpoints.Checkpoints(tf.train.Checkpoint(v=tf.Variable(1.0)), str(model_dir), max_to_keep=2)
    assert saver.save(2).endswith("ckpt-2")
    shutil.rmtree(model_dir)  # the user's `rm -rf` while training runs
    with pytest.raises(UserError) as error:
        saver.save(4)
    assert "\n" not in str(error.value)
    expected = f"{model_dir} was deleted while the run wrote to it; the checkpoint of step 4 was not saved"
    assert expected in str(error.value)
