"""training/store/logs.py's TensorBoard layout (read back from the event files) and the progress lines of a run."""

import glob
import io
import os
import time

import numpy as np
import pytest
import tensorflow as tf

from configs import demo
from tests.conftest import tiny_config
from training.session import run
from training.store import logs


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
    log.evaluation(logs.evaluation_record(3, "minival", {"top_1": 0.4, "top_5": 0.9, "loss": 2.5, "num_examples": 10}))
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


def _hparams_plugin_data(content):
    """{name: python value} decoded from HParamsPluginData bytes by a parser built from its .proto's field
    numbers (tensorboard/plugins/hparams/plugin_data.proto), independent of the encoder in training/store/logs.py."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, struct_pb2  # noqa: F401

    file = descriptor_pb2.FileDescriptorProto(
        name="hparams_test.proto", package="hparams_test", syntax="proto3", dependency=["google/protobuf/struct.proto"]
    )
    entry = descriptor_pb2.DescriptorProto(name="HparamsEntry", options=descriptor_pb2.MessageOptions(map_entry=True))
    entry.field.add(name="key", number=1, type=9, label=1)
    entry.field.add(name="value", number=2, type=11, label=1, type_name=".google.protobuf.Value")
    start = file.message_type.add(name="SessionStartInfo")
    start.nested_type.append(entry)
    start.field.add(name="hparams", number=1, type=11, label=3, type_name=".hparams_test.SessionStartInfo.HparamsEntry")
    data = file.message_type.add(name="HParamsPluginData")
    data.field.add(name="version", number=1, type=5, label=1)
    data.field.add(name="session_start_info", number=3, type=11, label=1, type_name=".hparams_test.SessionStartInfo")
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(struct_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    parsed = message_factory.GetMessageClass(pool.FindMessageTypeByName("hparams_test.HParamsPluginData"))()
    parsed.ParseFromString(content)
    values = {}
    for name, value in parsed.session_start_info.hparams.items():
        values[name] = getattr(value, value.WhichOneof("kind"))
    return values


def test_config_is_written_as_text_and_as_hparams_without_the_tensorboard_package(tmp_path):
    with pytest.raises(ImportError):  # the README's install does not bring it; nothing here needs it
        import tensorboard  # noqa: F401
    log = logs.RunLog(str(tmp_path), stream=io.StringIO())
    log.run_config(0, demo.get_config())
    tags, _ = _events(tmp_path / logs.TENSORBOARD_DIR / "train")
    assert tags["config"] == [(0, "text")] and tags[logs.HPARAMS_TAG] == [(0, "hparams")]
    path = glob.glob(str(tmp_path / logs.TENSORBOARD_DIR / "train" / "events.out.tfevents.*"))[0]
    value = next(
        v for e in tf.compat.v1.train.summary_iterator(path) for v in e.summary.value if v.tag == logs.HPARAMS_TAG
    )
    hparams = _hparams_plugin_data(value.metadata.plugin_data.content)
    assert hparams == logs.flat_config(demo.get_config()) | {
        k: float(v)
        for k, v in logs.flat_config(demo.get_config()).items()
        if isinstance(v, int) and not isinstance(v, bool)
    }
    assert hparams["train.batch_size"] == 32.0 and hparams["data.augment_name"] == "none"
    assert hparams["runtime.export_at_end"] is True and hparams["model.image_size"] == 64.0


def test_busy_says_in_the_status_line_every_few_seconds_what_it_is_doing():
    stream = io.StringIO()
    log = logs.RunLog("unused", stream=stream, heartbeat_seconds=0.05, terminal=True)
    with log.busy("evaluating on minival"):
        deadline = time.monotonic() + 30  # a busy machine delays the heartbeat thread: wait for 3 notices
        while stream.getvalue().count("\r\x1b[K") < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    written = stream.getvalue()
    time.sleep(0.2)
    assert stream.getvalue() == written  # nothing after the body ended
    notices = stream.getvalue().split("\r\x1b[K")[1:]
    assert len(notices) >= 3 and all(n.startswith("... still evaluating on minival (") for n in notices)
    assert "\n" not in stream.getvalue()  # in place: no line per heartbeat


def test_progress_line_has_epoch_train_top_1_elapsed_and_eta():
    stream = io.StringIO()
    log = logs.RunLog("unused", stream=stream, terminal=False)
    log.progress(101, 1001, epoch=0.5, images_per_sec=100.0, loss=2.0, top_1=0.25, learning_rate=0.1, seconds_left=450)
    log.progress(1, 1001, epoch=0.0, images_per_sec=1.0, loss=2.0, learning_rate=0.1)
    first, second = stream.getvalue().splitlines()
    assert first.startswith("step 101/1001  epoch 0.50  100.0 images/s  loss 2.0000  top-1 0.250  lr 0.10000")
    assert first.endswith("elapsed 0:00  eta 7:30") and second.endswith("eta ?")


def test_train_log_keeps_everything_shown_across_restarts_with_a_line_per_start(tmp_path):
    for start in range(2):
        log = logs.RunLog(str(tmp_path), stream=io.StringIO(), terminal=True, progress_seconds=3600)
        log.message(f"before the lock {start}")  # shown before model_dir is ours: kept, written at start_file
        log.start_file(f"train started ({start})")
        log.progress(3, 6, epoch=0.1, images_per_sec=1.0, loss=2.0, top_1=0.5, learning_rate=0.1)
        log.progress(4, 6, epoch=0.1, images_per_sec=1.0, loss=2.0, top_1=0.5, learning_rate=0.1)  # throttled
        log.message(f"after {start}")
    lines = (tmp_path / logs.TRAIN_LOG).read_text().splitlines()
    assert [line.split(": ", 1)[1] for line in lines if line.startswith("===== ")] == [
        "train started (0)",
        "train started (1)",
    ]
    assert [line for line in lines if not line.startswith("===== ")] == [
        "before the lock 0",
        lines[2],
        "after 0",
        "before the lock 1",
        lines[6],
        "after 1",
    ]
    assert lines[2].startswith("step 3/6") and lines[6].startswith("step 3/6") and "\r" not in lines[2]


def test_metrics_csv_has_the_training_curves_and_curves_png_is_drawn_at_each_evaluation(tmp_path):
    log = logs.RunLog(str(tmp_path), stream=io.StringIO())
    for step in (3, 6):
        log.training(
            step,
            {
                "loss": 2.0 / step,
                "top_1": step / 10,
                "learning_rate": 0.01,
                "images_per_sec": 50.0,
                "bad_records": 0,
                "epoch": step / 12,
            },
        )
    log.training(
        6, {"loss": 0.25, "top_1": 0.7, "learning_rate": 0.01, "images_per_sec": 50.0, "bad_records": 0, "epoch": 0.5}
    )  # step 6 redone after a restart: the later row wins
    log.evaluation(logs.evaluation_record(6, "minival", {"top_1": 0.4, "top_5": 0.9, "loss": 2.5, "num_examples": 8}))
    rows = (tmp_path / logs.METRICS_CSV).read_text().splitlines()
    assert rows[0] == "step,epoch,loss,top_1,learning_rate,images_per_sec" and rows[1] == "3,0.25,0.666667,0.3,0.01,50"
    assert logs.read_csv(str(tmp_path))["top_1"] == [0.3, 0.7]
    png = (tmp_path / logs.CURVES_PNG).read_bytes()
    image = tf.io.decode_png(png).numpy()
    assert image.shape[:2] == (360, 1200) and image.std() > 10  # three panels drawn, not a blank picture


def test_without_matplotlib_curves_png_is_skipped_with_one_note(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    stream = io.StringIO()
    log = logs.RunLog(str(tmp_path), stream=stream)
    log.training(3, {"loss": 2.0, "top_1": 0.1, "learning_rate": 0.01, "images_per_sec": 5.0, "epoch": 0.1})
    for step in (3, 6):
        log.evaluation(
            logs.evaluation_record(step, "minival", {"top_1": 0.4, "top_5": 0.9, "loss": 2.5, "num_examples": 8})
        )
    notes = [line for line in stream.getvalue().splitlines() if line.startswith("note:")]
    assert notes == ['note: curves.png not drawn: matplotlib is not installed (pip install -e ".[plots]")']
    assert not (tmp_path / logs.CURVES_PNG).exists() and (tmp_path / "metrics.jsonl").exists()


@pytest.mark.slow
def test_a_run_writes_tensorboard_and_says_what_it_is_doing(tmp_path, demo_cache, capsys):
    """ImageNet-like loops (iterations_per_loop 30 > the run's steps): the first step, then a short call, give
    a line with the time left long before the first host loop ends."""
    config = tiny_config(
        tmp_path / "run",
        demo_cache,
        **{
            "train.steps": 30,
            "train.iterations_per_loop": 30,
            "eval.steps_per_eval": 30,
            "runtime.mode": "train",
            "eval.in_training": True,
        },
    )
    run.run(config)
    out = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("... still ")]
    assert (
        out[0] == f"data: the generated demo data in {demo_cache}/v1 (train 1,120, minival 160, validation 320 "
        "images; 8 classes)"
    )
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
    assert {
        "loss",
        "top_1",
        "epoch",
        "learning_rate",
        "images_per_sec",
        "bad_records",
        "config",
        "augmented_images",
    } <= set(train)
    assert train["loss"] == [(30, "scalars")] and train["augmented_images"] == [(0, "images")]
    assert {"loss", "top_1", "top_5"} <= set(minival) and minival["top_1"][0][0] == 30
    assert {logs.TRAIN_LOG, logs.METRICS_CSV, logs.CURVES_PNG} <= set(os.listdir(tmp_path / "run"))
    logged = (tmp_path / "run" / logs.TRAIN_LOG).read_text().splitlines()
    assert logged[0].startswith("===== ") and logged[0].endswith(": train started (pid {})".format(os.getpid()))
    assert [line for line in logged[1:] if not line.startswith(("step ", "... still "))] == [
        line for line in out if not line.startswith("step ")
    ]
