"""What a run reports: metrics.jsonl, metrics.csv, curves.png, train.log, TensorBoard events and progress.

TensorBoard (`tensorboard --logdir MODEL_DIR/tensorboard`): one subdirectory per run of the curves, `train/`,
`minival/` and `validation/`, with the same tags (`loss`, `top_1`, `top_5`) so that TensorBoard overlays train
and eval curves; train/ also holds `learning_rate`, `images_per_sec`, `bad_records` and `epoch`, a grid of
augmented training images (`augmented_images`, at the start of every training process), the run's config
(`config`, text, and as hparams) and the model graph (once, at step 0). Everything is written with TensorFlow
alone: the tensorboard package is needed only to view it.
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
from google.protobuf import struct_pb2
from tensorflow.core.framework import summary_pb2

from training.store import progress as progress_lib
from training.store import temporaries

TENSORBOARD_DIR = "tensorboard"
TRAIN_LOG = "train.log"
METRICS_CSV = "metrics.csv"
EXPORTS_FILE = "exports.jsonl"
CSV_COLUMNS = ("step", "epoch", "loss", "top_1", "learning_rate", "images_per_sec")
CURVES_PNG = "curves.png"
HPARAMS_TAG = "_hparams_/session_start_info"

# tf.summary.scalar/image/text need the tensorboard package, which TF >= 2.20 no longer installs. The event
# files only need each plugin's name in the summary metadata (TF's own protos), so we write with core
# tf.summary.write and TensorBoard (installed wherever it is used) shows the same data.
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"), data_class=summary_pb2.DATA_CLASS_SCALAR
).SerializeToString()
# The images plugin reads a string tensor [width, height, PNG bytes...]; the text plugin a string tensor.
_IMAGE_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="images"),
    data_class=summary_pb2.DATA_CLASS_BLOB_SEQUENCE,
).SerializeToString()
_TEXT_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text"), data_class=summary_pb2.DATA_CLASS_TENSOR
).SerializeToString()


def image_grid(images, columns=4):
    """uint8 [rows*h, columns*w, 3]: a batch of [0, 255] float or uint8 images tiled row by row."""
    images = np.clip(np.asarray(images, np.float32), 0, 255).astype(np.uint8)
    count, height, width, channels = images.shape
    rows = math.ceil(count / columns)
    grid = np.zeros([rows * height, columns * width, channels], np.uint8)
    for i, image in enumerate(images):
        row, column = divmod(i, columns)
        grid[row * height : (row + 1) * height, column * width : (column + 1) * width] = image
    return grid


def _length_delimited(field, payload):
    """One protobuf wire-format field of type 2 (bytes, string or message): key, varint length, payload."""

    def varint(n):
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)

    return varint(field << 3 | 2) + varint(len(payload)) + payload


def hparams_summary(config_dict):
    """TensorBoard's hparams summary of a flat {name: value} dict, built without the tensorboard package.

    The hparams plugin reads a summary tagged "_hparams_/session_start_info" whose metadata names the plugin
    "hparams" and whose content is a serialized HParamsPluginData (tensorboard/plugins/hparams/plugin_data.proto:
    version = 1 left at 0, session_start_info = 3; SessionStartInfo.hparams = 1, a map<string,
    google.protobuf.Value>, i.e. repeated entries with key = 1 and value = 2). Only struct_pb2.Value comes from
    protobuf itself; the two messages around it are encoded here field by field.
    """
    entries = b""
    for name, value in sorted(config_dict.items()):
        proto = struct_pb2.Value()
        if isinstance(value, bool):
            proto.bool_value = value
        elif isinstance(value, (int, float)):
            proto.number_value = float(value)
        else:
            proto.string_value = str(value)
        entries += _length_delimited(
            1, _length_delimited(1, name.encode()) + _length_delimited(2, proto.SerializeToString())
        )
    content = _length_delimited(3, entries)  # HParamsPluginData{session_start_info: {hparams: entries}}
    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="hparams", content=content)
    )
    summary = summary_pb2.Summary()
    # The plugin needs only the metadata; an empty float vector is the smallest valid tensor to carry it.
    summary.value.add(tag=HPARAMS_TAG, metadata=metadata, tensor=tf.make_tensor_proto([], tf.float32))
    return summary


def flat_config(config):
    """{"section.field": value} of a config's scalar fields (None becomes "None"): the run's hparams."""
    flat = {}
    for section, fields in json.loads(config.to_json()).items():
        for field, value in fields.items():
            flat[f"{section}.{field}"] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return flat


_format_duration = progress_lib.format_duration


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


def _append_text(path, text):
    """Appends to a local file in place; on remote filesystems (gs://, which cannot append) by rewriting."""
    if "://" not in path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
        return
    _append_line(path, text[:-1] if text.endswith("\n") else text)


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


class _AppendingStream:
    """The stream of train.log's Display: each write appended to the file (nothing kept open across writes)."""

    def __init__(self, path):
        self._path = path

    def write(self, text):
        _append_text(self._path, text)

    def flush(self):
        pass


class RunLog:
    """Writes metrics.jsonl, metrics.csv, curves.png, train.log and TensorBoard events in model_dir (chief only)
    and shows the run's progress (training/store/progress.py).

    Non-chief workers of a multi-worker run pass enabled=False: they print nothing and write nothing, so one
    model_dir holds one consistent record.
    heartbeat_seconds: while a long call runs inside `busy()`, a notice every this many seconds says it still
    does (on a stream that is not a terminal, at most once a minute).
    progress_seconds: on a stream that is not a terminal, the least time between two progress lines.
    terminal: whether `stream` is a terminal (None: ask it).
    """

    def __init__(
        self, model_dir, *, enabled=True, stream=None, heartbeat_seconds=10.0, progress_seconds=0.0, terminal=None
    ):
        self._model_dir = model_dir
        self._enabled = enabled
        self._writers = {}  # per TensorBoard run, created on first use: --mode=predict writes nothing
        self._start_time = time.monotonic()
        self._heartbeat_seconds = heartbeat_seconds
        self._progress_seconds = progress_seconds
        self._screen = progress_lib.Display(stream or sys.stdout, progress_seconds, terminal=terminal)
        self._file = None  # train.log's Display once `start_file` opened it; lines before are kept in _early
        self._early = []
        self._curves_note = False  # the note that curves.png is not drawn was shown

    def start_file(self, description):
        """Opens model_dir/train.log for appending (called once the run holds model_dir): a line marking this
        start, then every line shown since the run began, then everything shown from now on."""
        if not self._enabled or self._file is not None:
            return
        path = os.path.join(self._model_dir, TRAIN_LOG)
        self._file = progress_lib.Display(_AppendingStream(path), self._progress_seconds, terminal=False)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        _append_text(path, "".join([f"===== {stamp}: {description}\n"] + [line + "\n" for line in self._early]))
        self._early = []

    def _to_file(self, text):
        if self._file is not None:
            self._file.message(text)
        else:
            self._early.append(text)

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

    def training(self, step, values):
        """A host loop's train figures: TensorBoard scalars and a row of metrics.csv (CSV_COLUMNS)."""
        if not self._enabled:
            return
        self.scalars(step, values)
        path = os.path.join(self._model_dir, METRICS_CSV)
        header = "" if tf.io.gfile.exists(path) else ",".join(CSV_COLUMNS) + "\n"
        row = {"step": int(step), **{k: float(v) for k, v in values.items()}}
        _append_text(
            path, header + ",".join(f"{row[c]:.6g}" if c != "step" else str(row[c]) for c in CSV_COLUMNS) + "\n"
        )

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
        """The config as text and as hparams (TensorBoard's HPARAMS tab)."""
        if not self._enabled:
            return
        text = "``\n" + json.dumps(json.loads(config.to_json()), indent=1, sort_keys=True) + "\n``"
        with self._writer(run).as_default(step=int(step)):
            tf.summary.write("config", tf.constant(text), metadata=_TEXT_METADATA)
            tf.summary.experimental.write_raw_pb(
                hparams_summary(flat_config(config)).SerializeToString(), step=int(step)
            )
        self._writer(run).flush()

    def graph(self, graph_def, run="train"):
        """The model graph in TensorBoard's graphs tab (tf.summary.graph is core TensorFlow)."""
        if not self._enabled:
            return
        with self._writer(run).as_default():
            tf.summary.graph(graph_def)
        self._writer(run).flush()

    def evaluation(self, record):
        """Appends an evaluation record (see `evaluation_record`) to metrics.jsonl, TensorBoard and the terminal,
        and draws curves.png again."""
        if not self._enabled:
            return record
        step, split = record["step"], record["split"]
        metrics = {
            k: v
            for k, v in record.items()
            if k not in ("step", "split", "ema", "weights", "image_size", "crop_fraction")
        }
        _append_line(f"{self._model_dir}/metrics.jsonl", json.dumps(record))
        self.scalars(step, {k: v for k, v in metrics.items() if k != "num_examples"}, run=split)
        self.message(
            f"eval {split} at step {step}: top-1 {metrics['top_1']:.4f}  top-5 {metrics['top_5']:.4f}  "
            f"loss {metrics['loss']:.4f}  ({int(metrics['num_examples'])} images)"
        )
        self.draw_curves()
        return record

    def exported(self, record):
        """Appends an export's record (its folder, version and weights) to model_dir/exports.jsonl."""
        if self._enabled and tf.io.gfile.isdir(self._model_dir):
            _append_line(f"{self._model_dir}/{EXPORTS_FILE}", json.dumps(record))
        return record

    def draw_curves(self):
        """model_dir/curves.png from metrics.csv and metrics.jsonl; without matplotlib one note, once."""
        if not self._enabled or not tf.io.gfile.exists(os.path.join(self._model_dir, METRICS_CSV)):
            return
        from training.store import curves  # pylint: disable=import-outside-toplevel  (matplotlib only when drawing)

        try:
            png = curves.draw(read_csv(self._model_dir), read_metrics(self._model_dir))
        except curves.MatplotlibMissing as e:
            if not self._curves_note:
                self._curves_note = True
                self.message(f"note: {CURVES_PNG} not drawn: {e}")
            return
        tmp_path = temporaries.name(os.path.join(self._model_dir, CURVES_PNG))
        with tf.io.gfile.GFile(tmp_path, "wb") as f:
            f.write(png)
        tf.io.gfile.rename(tmp_path, os.path.join(self._model_dir, CURVES_PNG), overwrite=True)

    def recorded(self, step, split):
        """True when metrics.jsonl already holds an evaluation of `split` at `step` (a resumed run)."""
        return any(r["step"] == step and r["split"] == split for r in read_metrics(self._model_dir))

    def progress(self, step, total_steps, *, epoch, images_per_sec, loss, learning_rate, top_1=None, seconds_left=None):
        """The status after a host loop: step/total, epoch, images/s, loss, train top-1, learning rate, time
        elapsed and left (seconds_left: evaluations and export included; None: not measured yet, e.g. the first
        host loop, whose time is mostly tracing and compilation)."""
        if not self._enabled:
            return
        eta = _format_duration(seconds_left) if seconds_left is not None else "?"
        accuracy = f"  top-1 {top_1:.3f}" if top_1 is not None else ""
        text = (
            f"step {step}/{total_steps}  epoch {epoch:.2f}  {images_per_sec:,.1f} images/s  loss {loss:.4f}"
            f"{accuracy}  lr {learning_rate:.5f}  elapsed {self.elapsed()}  eta {eta}"
        )
        last = step >= total_steps
        self._screen.status(text, force=last)
        if self._file is not None:
            self._file.status(text, force=last)
        else:
            self._early.append(text)
        if last:
            self._screen.end_status()

    def elapsed(self):
        return _format_duration(time.monotonic() - self._start_time)

    @contextlib.contextmanager
    def busy(self, what):
        """While the body runs, a "... still <what> (elapsed)" notice every heartbeat_seconds: the screen never
        stays silent through a long tracing, host loop, evaluation or export."""
        if not self._enabled or not self._heartbeat_seconds:
            yield
            return
        done, start = threading.Event(), time.monotonic()

        def beat():
            while not done.wait(self._heartbeat_seconds):
                text = f"... still {what} ({_format_duration(time.monotonic() - start)})"
                self._screen.heartbeat(text)
                if self._file is not None:
                    self._file.heartbeat(text)

        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def message(self, text):
        if self._enabled:
            self._screen.message(text)
            self._to_file(text)

    def close(self):
        """Ends the terminal's status line, so that what follows starts on a line of its own."""
        self._screen.end_status()


def read_csv(model_dir):
    """metrics.csv as {column: [values]} (later rows of a step redone after a restart replace earlier ones)."""
    with tf.io.gfile.GFile(os.path.join(model_dir, METRICS_CSV)) as f:
        lines = [line.strip().split(",") for line in f if line.strip()]
    by_step = {}
    for row in lines[1:]:
        if len(row) == len(lines[0]):  # a line cut by a kill mid-write is skipped
            by_step[int(row[0])] = [float(x) for x in row]
    rows = [by_step[step] for step in sorted(by_step)]
    return {name: [row[i] for row in rows] for i, name in enumerate(lines[0])}
