"""training/logs.py's TensorBoard layout (read back from the event files) and the progress lines of a run."""
import glob
import io
import os
import time

import numpy as np
import pytest
import tensorflow as tf

from configs import demo
from tests.training.conftest import tiny_config
from training import logs, run


def _events(folder):
    """{tag: [(step, plugin name)]} and the number of graph events of every event file in `folder`."""
    tags, graphs = {}, 0
    for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            graphs += bool(event.graph_def)
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append((event.step, value.metadata.plugin_data.plugin_name))
    return tags, graphs


def test_train_and_eval_runs_are_subdirectories_with_the_same_tags(tmp_path):
    log = logs.RunLog(str(tmp_path), stream=io.StringIO())
    log.scalars(3, {"loss": 2.0, "top_1": 0.5, "epoch": 0.25})
    log.evaluation(logs.evaluation_record(3, "minival", {"top_1": 0.4, "top_5": 0.9, "loss": 2.5,
                                                         "num_examples": 10}))
    train, _ = _events(tmp_path / logs.TENSORBOARD_DIR / "train")
    minival, _ = _events(tmp_path / logs.TENSORBOARD_DIR / "minival")
    assert train == {"loss": [(3, "scalars")], "top_1": [(3, "scalars")], "epoch": [(3, "scalars")]}
    assert minival == {"loss": [(3, "scalars")], "top_1": [(3, "scalars")], "top_5": [(3, "scalars")]}
    assert not glob.glob(str(tmp_path / "events.out.tfevents.*"))  # nothing left at the top level


def test_image_grid_is_readable_back_from_the_event_file(tmp_path):
    images = np.stack([np.full([4, 6, 3], 40 * i, np.float32) for i in range(5)])
    grid = logs.image_grid(images, columns=2)
    assert grid.shape == (12, 12, 3) and grid.dtype == np.uint8
    assert grid[4, 6, 0] == 120 and grid[8, 0, 0] == 160 and grid[8, 6, 0] == 0  # image 3, image 4, padding
    log = logs.RunLog(str(tmp_path), stream=io.StringIO())
    log.images(7, "augmented_images", grid)
    path = glob.glob(str(tmp_path / logs.TENSORBOARD_DIR / "train" / "events.out.tfevents.*"))[0]
    values = [v for e in tf.compat.v1.train.summary_iterator(path) for v in e.summary.value]
    blobs = tf.make_ndarray(values[0].tensor)
    assert values[0].metadata.plugin_data.plugin_name == "images"
    assert [int(blobs[0]), int(blobs[1])] == [12, 12]  # width, height
    np.testing.assert_array_equal(tf.io.decode_png(blobs[2]).numpy(), grid)


def test_config_is_written_as_text_and_hparams_only_with_tensorboard(tmp_path):
    log = logs.RunLog(str(tmp_path), stream=io.StringIO())
    log.run_config(0, demo.get_config())
    tags, _ = _events(tmp_path / logs.TENSORBOARD_DIR / "train")
    assert tags["config"] == [(0, "text")]
    try:
        import tensorboard  # noqa: F401
        assert any(plugin == "hparams" for values in tags.values() for _, plugin in values)
    except ImportError:
        assert set(tags) == {"config"}


def test_busy_says_every_few_seconds_what_it_is_doing():
    stream = io.StringIO()
    log = logs.RunLog("unused", stream=stream, heartbeat_seconds=0.05)
    with log.busy("evaluating on minival"):
        time.sleep(0.3)
    time.sleep(0.1)
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 3 and all(line.startswith("... still evaluating on minival (") for line in lines)
    assert stream.getvalue() == "\n".join(lines) + "\n"  # nothing after the body ended


def test_progress_line_has_epoch_elapsed_and_eta():
    stream = io.StringIO()
    log = logs.RunLog("unused", stream=stream)
    log.progress(101, 1001, epoch=0.5, images_per_sec=100.0, loss=2.0, learning_rate=0.1, seconds_per_step=0.5)
    log.progress(1, 1001, epoch=0.0, images_per_sec=1.0, loss=2.0, learning_rate=0.1)
    first, second = stream.getvalue().splitlines()
    assert first.startswith("step 101/1001  epoch 0.50  100.0 images/s") and first.endswith("elapsed 0:00  eta 7:30")
    assert second.endswith("eta ?")


@pytest.mark.slow
def test_a_run_writes_tensorboard_and_says_what_it_is_doing(tmp_path, demo_cache, capsys):
    """ImageNet-like loops (iterations_per_loop 30 > the run's steps): the first step, then a short call, give
    a line with the time left long before the first host loop ends."""
    config = tiny_config(tmp_path / "run", demo_cache, **{"train.steps": 30, "train.iterations_per_loop": 30,
                                                          "eval.steps_per_eval": 30, "runtime.mode": "train"})
    run.run(config)
    out = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("... still ")]
    tracing = next(i for i, line in enumerate(out) if "tracing and compiling the train step" in line)
    assert out[tracing + 1].startswith("first step done in ")
    step_lines = [line for line in out if line.startswith("step ") and " eta " in line]
    assert step_lines[0].startswith("step 4/30  epoch ") and not step_lines[0].endswith("eta ?")  # 1 + 30 // 10
    assert step_lines[-1].startswith("step 30/30") and " elapsed " in step_lines[-1]
    assert any(line.startswith("evaluating on minival (160 images); elapsed ") for line in out)
    board = tmp_path / "run" / logs.TENSORBOARD_DIR
    train, graphs = _events(board / "train")
    minival, _ = _events(board / "minival")
    assert graphs == 1
    assert {"loss", "top_1", "epoch", "learning_rate", "images_per_sec", "bad_records", "config",
            "augmented_images"} <= set(train)
    assert train["loss"] == [(30, "scalars")] and train["augmented_images"] == [(0, "images")]
    assert {"loss", "top_1", "top_5"} <= set(minival) and minival["top_1"][0][0] == 30
