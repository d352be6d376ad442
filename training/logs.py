"""What a run reports: metrics.jsonl, TensorBoard scalars, a live progress line and the final summary."""
import json
import os
import sys
import time

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

# tf.summary.scalar needs the tensorboard package, which TF >= 2.20 no longer installs. The event files only
# need the scalars plugin's metadata, which TF's own protos carry, so we write with core tf.summary.write and
# TensorBoard (installed wherever it is used) shows the same scalars.
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
    data_class=summary_pb2.DATA_CLASS_SCALAR).SerializeToString()


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
    tmp_path = f"{path}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(tmp_path, "w") as f:
        f.write(existing + line + "\n")
    tf.io.gfile.rename(tmp_path, path, overwrite=True)


class RunLog:
    """Writes metrics.jsonl and TensorBoard events in model_dir (chief only) and prints progress lines.

    Non-chief workers of a multi-worker run pass enabled=False: they print nothing and write nothing, so one
    model_dir holds one consistent record.
    """

    def __init__(self, model_dir, *, enabled=True, stream=None):
        self._model_dir = model_dir
        self._enabled = enabled
        self._stream = stream or sys.stdout
        self._writer = None  # created on first use: --mode=predict writes nothing into model_dir
        self._start_time = None
        self._start_step = None

    def scalars(self, step, values, prefix=""):
        """TensorBoard scalars at `step`, e.g. {"loss": 2.3, "learning_rate": 0.1}."""
        if not self._enabled:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self._model_dir)
        with self._writer.as_default(step=int(step)):
            for name, value in values.items():
                tf.summary.write(prefix + name, tf.constant(float(value), tf.float32), metadata=_SCALAR_METADATA)
        self._writer.flush()

    def evaluation(self, record):
        """Appends an evaluation record (see `evaluation_record`) to metrics.jsonl, TensorBoard and the terminal."""
        if not self._enabled:
            return record
        step, split = record["step"], record["split"]
        metrics = {k: v for k, v in record.items()
                   if k not in ("step", "split", "ema", "weights", "image_size", "crop_fraction")}
        _append_line(f"{self._model_dir}/metrics.jsonl", json.dumps(record))
        self.scalars(step, {k: v for k, v in metrics.items() if k != "num_examples"}, prefix=f"{split}/")
        self.message(f"eval {split} at step {step}: top-1 {metrics['top_1']:.4f}  top-5 {metrics['top_5']:.4f}  "
                     f"loss {metrics['loss']:.4f}  ({int(metrics['num_examples'])} images)")
        return record

    def recorded(self, step, split):
        """True when metrics.jsonl already holds an evaluation of `split` at `step` (a resumed run)."""
        return any(r["step"] == step and r["split"] == split for r in read_metrics(self._model_dir))

    def progress(self, step, total_steps, images_per_sec, loss, learning_rate):
        """One line per host loop: step/total, images/s, loss, learning rate and the time left."""
        now = time.monotonic()
        if self._start_time is None:
            self._start_time, self._start_step = now, step
        done = step - self._start_step
        eta = (now - self._start_time) / done * (total_steps - step) if done > 0 else float("nan")
        eta_text = _format_duration(eta) if eta == eta else "?"
        self.message(f"step {step}/{total_steps}  {images_per_sec:,.1f} images/s  loss {loss:.4f}  "
                     f"lr {learning_rate:.5f}  eta {eta_text}")

    def message(self, text):
        if self._enabled:
            print(text, file=self._stream, flush=True)
