"""A run on TFRecord data takes its class count from the data, or refuses to start (training/session/startup.py
setup)."""

import os

import pytest

from data import sources
from tests.conftest import tiny_config
from tests.data import test_class_count as data_helpers
from training.errors import UserError
from training.session import startup
from training.store import labels, rundir


def _config(tmp_path, data_dir, **overrides):
    return tiny_config(
        tmp_path / "run",
        str(tmp_path / "unused_demo_cache"),
        **{
            "data.data_dir": data_dir,
            "data.holdout_shards": 1,
            "runtime.mode": "train",
            "train.batch_size": 2,
            **overrides,
        },
    )  # set-up plans the run: a batch must fit the few training images


def test_setup_reads_the_class_count_and_names_from_the_data(tmp_path):
    data_dir = data_helpers._write(tmp_path / "data", [3, 1, 2, 3, 2, 1], texts={1: "ant", 2: "bee", 3: "cow"})
    ctx = startup.setup(_config(tmp_path, data_dir))
    assert ctx.num_classes == 3 and ctx.config.model.num_classes == 3
    os.makedirs(ctx.model_dir)
    rundir.write_class_names(ctx.source, ctx.model_dir)  # what train() leaves beside the run for predict/export
    assert labels.class_names(None, 3, ctx.model_dir) == ["ant", "bee", "cow"]


def test_setup_refuses_data_whose_classes_cannot_be_read(tmp_path):
    data_dir = data_helpers._write(tmp_path / "data", [1, 2, 3], with_label=False)
    with pytest.raises(UserError) as info:
        startup.setup(_config(tmp_path, data_dir))
    assert "give --num_label_classes" in str(info.value) and "\n" not in str(info.value)
    assert not os.path.exists(tmp_path / "run")
    ctx = startup.setup(_config(tmp_path, data_dir, **{"model.num_classes": 5}))  # given: no pass over the labels
    assert ctx.num_classes == 5 and ctx.source.num_classes == 5


def test_labels_file_beside_the_shards_names_the_classes(tmp_path):
    data_dir = data_helpers._write(tmp_path / "data", [1, 2, 1])
    (tmp_path / "data" / sources.LABELS_FILE).write_text("left\nright\n")
    ctx = startup.setup(_config(tmp_path, data_dir))
    assert ctx.num_classes == 2 and ctx.source.class_names == ("left", "right")
