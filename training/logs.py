"""What a run reports: metrics.jsonl, TensorBoard events, live progress lines and the final summary.

TensorBoard (`tensorboard --logdir MODEL_DIR/tensorboard`): one subdirectory per run of the curves, `train/`,
`minival/` and `validation/`, with the same tags (`loss`, `top_1`, `top_5`) so that TensorBoard overlays train
and eval curves; train/ also holds `learning_rate`, `images_per_sec`, `bad_records` and `epoch`, a grid of
augmented training images (`augmented_images`, at the start of every training process), the run's config
(`config`, text) and the model graph (once, at step 0). hparams of the config are written too when the
tensorboard package is importable (its hparams protos live there); everything else needs only TensorFlow.
"""
import contextlib
import json
import math
import os
import sys
import threading
import time

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from training import temporaries

TENSORBOARD_DIR = "tensorboard"

# tf.summary.scalar/image/text need the tensorboard package, which TF >= 2.20 no longer installs. The event
# files only need each plugin's name in the summary metadata (TF's own protos), so we write with core
# tf.summary.write and TensorBoard (installed wherever it is used) shows the same data.
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
    data_class=summary_pb2.DATA_CLASS_SCALAR).SerializeToString()
# The images plugin reads a string tensor [width, height, PNG bytes...]; the text plugin a string tensor.
_IMAGE_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="images"),
    data_class=summary_pb2.DATA_CLASS_BLOB_SEQUENCE).SerializeToString()
_TEXT_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text"),
    data_class=summary_pb2.DATA_CLASS_TENSOR).SerializeToString()


def image_grid(images, columns=4):
    """uint8 [rows*h, columns*w, 3]: a batch of [0, 255] float or uint8 images tiled row by row."""
    images = np.clip(np.asarray(images, np.float32), 0, 255).astype(np.uint8)
    count, height, width, channels = images.shape
    rows = math.ceil(count / columns)
    grid = np.zeros([rows * height, columns * width, channels], np.uint8)
    for i, image in enumerate(images):
        row, column = divmod(i, columns)
        grid[row * height:(row + 1) * height, column * width:(column + 1) * width] = image
    return grid


def _hparams_summary(config_dict):
    """The hparams plugin's summary of a flat {name: value} dict, or None without the tensorboard package."""
    try:
        from tensorboard.plugins.hparams import summary_v2 as hparams_summary  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    return hparams_summary.hparams_pb(config_dict)


def flat_config(config):
    """{"section.field": value} of a config's scalar fields (None becomes "None"): the run's hparams."""
    flat = {}
    for section, fields in json.loads(config.to_json()).items():
        for field, value in fields.items():
            flat[f"{section}.{field}"] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return flat


def _format_duration(seconds):
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def evaluation_record(step, split, metrics, *, ema=True, weights=None, image_size=None, crop_fraction=None):
    """The metrics.jsonl line of one evaluation: {"step", "split", "top_1", "top_5", "loss", ..., "ema"}, and
    "weights" (the file scored: published weights, or the checkpoint --mode=eval read) and the eval
    "image_size"/"crop_fraction" when given (--mode=eval says what it evaluated)."""
    record = {"step": int(step), "split": split, **{k: float(v) for k, v in metrics.items()}, "ema": ema}
    described = {"weights": weights, "image_size": image_size, "crop_fraction": crop_fraction}
    return {**record, **{k: v for k, v in described.items() if v is not None}}


def read_metrics(model_dir):
    """Every record of model_dir/metrics.jsonl (an empty list before the first evaluation)."""
    path = f"{model_dir}/metrics.jsonl"
    if not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _append_line(path, line):
    """Appends by rewriting into a temporary file and renaming it over the old one: a kill at any moment leaves
    the old or the new file, never half a line (the file is one short line per evaluation)."""
    existing = ""
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            existing = f.read()
    tmp_path = temporaries.name(path)
    with tf.io.gfile.GFile(tmp_path, "w") as f:
        f.write(existing + line + "\n")
    tf.io.gfile.rename(tmp_path, path, overwrite=True)


class RunLog:
    """Writes metrics.jsonl and TensorBoard events in model_dir (chief only) and prints progress lines.

    Non-chief workers of a multi-worker run pass enabled=False: they print nothing and write nothing, so one
    model_dir holds one consistent record.
    heartbeat_seconds: while a long call runs inside `busy()`, a line every this many seconds says it still does.
    """

    def __init__(self, model_dir, *, enabled=True, stream=None, heartbeat_seconds=10.0):
        self._model_dir = model_dir
        self._enabled = enabled
        self._stream = stream or sys.stdout
        self._writers = {}  # per TensorBoard run, created on first use: --mode=predict writes nothing
        self._start_time = time.monotonic()
        self._heartbeat_seconds = heartbeat_seconds

    def _writer(self, run):
        if run not in self._writers:
            self._writers[run] = tf.summary.create_file_writer(os.path.join(self._model_dir, TENSORBOARD_DIR, run))
        return self._writers[run]

    def scalars(self, step, values, run="train"):
        """TensorBoard scalars of `run` (train, minival, validation) at `step`, e.g. {"loss": 2.3}."""
        if not self._enabled:
            return
        with self._writer(run).as_default(step=int(step)):
            for name, value in values.items():
                tf.summary.write(name, tf.constant(float(value), tf.float32), metadata=_SCALAR_METADATA)
        self._writer(run).flush()

    def images(self, step, tag, grid, run="train"):
        """One uint8 [h, w, 3] image (e.g. image_grid of augmented samples) in TensorBoard's images tab."""
        if not self._enabled:
            return
        height, width = grid.shape[:2]
        tensor = tf.stack([tf.constant(str(width)), tf.constant(str(height)), tf.io.encode_png(grid)])
        with self._writer(run).as_default(step=int(step)):
            tf.summary.write(tag, tensor, metadata=_IMAGE_METADATA)
        self._writer(run).flush()

    def run_config(self, step, config, run="train"):
        """The config as text (always) and as hparams (when the tensorboard package is importable)."""
        if not self._enabled:
            return
        text = "```\n" + json.dumps(json.loads(config.to_json()), indent=1, sort_keys=True) + "\n```"
        with self._writer(run).as_default(step=int(step)):
            tf.summary.write("config", tf.constant(text), metadata=_TEXT_METADATA)
            hparams = _hparams_summary(flat_config(config))
            if hparams is not None:
                tf.summary.experimental.write_raw_pb(hparams.SerializeToString(), step=int(step))
        self._writer(run).flush()

    def graph(self, graph_def, run="train"):
        """The model graph in TensorBoard's graphs tab (tf.summary.graph is core TensorFlow)."""
        if not self._enabled:
            return
        with self._writer(run).as_default():
            tf.summary.graph(graph_def)
        self._writer(run).flush()

    def evaluation(self, record):
        """Appends an evaluation record (see `evaluation_record`) to metrics.jsonl, TensorBoard and the terminal."""
        if not self._enabled:
            return record
        step, split = record["step"], record["split"]
        metrics = {k: v for k, v in record.items()
                   if k not in ("step", "split", "ema", "weights", "image_size", "crop_fraction")}
        _append_line(f"{self._model_dir}/metrics.jsonl", json.dumps(record))
        self.scalars(step, {k: v for k, v in metrics.items() if k != "num_examples"}, run=split)
        self.message(f"eval {split} at step {step}: top-1 {metrics['top_1']:.4f}  top-5 {metrics['top_5']:.4f}  "
                     f"loss {metrics['loss']:.4f}  ({int(metrics['num_examples'])} images)")
        return record

    def recorded(self, step, split):
        """True when metrics.jsonl already holds an evaluation of `split` at `step` (a resumed run)."""
        return any(r["step"] == step and r["split"] == split for r in read_metrics(self._model_dir))

    def progress(self, step, total_steps, *, epoch, images_per_sec, loss, learning_rate, seconds_per_step=None):
        """One line per host loop: step/total, epoch, images/s, loss, learning rate, time elapsed and left.

        seconds_per_step: the training speed the time left is projected with (None: not measured yet, e.g. the
        first host loop, whose time is mostly tracing and compilation).
        """
        eta = _format_duration(seconds_per_step * (total_steps - step)) if seconds_per_step else "?"
        self.message(f"step {step}/{total_steps}  epoch {epoch:.2f}  {images_per_sec:,.1f} images/s  "
                     f"loss {loss:.4f}  lr {learning_rate:.5f}  elapsed {self.elapsed()}  eta {eta}")

    def elapsed(self):
        return _format_duration(time.monotonic() - self._start_time)

    @contextlib.contextmanager
    def busy(self, what):
        """While the body runs, prints "... still <what> (elapsed)" every heartbeat_seconds: the terminal never
        stays silent through a long tracing, host loop, evaluation or export."""
        if not self._enabled or not self._heartbeat_seconds:
            yield
            return
        done, start = threading.Event(), time.monotonic()

        def beat():
            while not done.wait(self._heartbeat_seconds):
                self.message(f"... still {what} ({_format_duration(time.monotonic() - start)})")

        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def message(self, text):
        if self._enabled:
            print(text, file=self._stream, flush=True)
