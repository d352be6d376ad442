"""Checkpoints in model_dir: rotating ckpt-N files for resuming, and archive/ for the best by minival top-1.

- Rotating checkpoints hold model, optimizer (slots and step), EMA shadows and, where tf.data supports it, the
  input iterator position. tf.train.CheckpointManager writes the data files before it updates the
  `checkpoint` state file, so a crash mid-save leaves the previous checkpoint as the latest.
- A latest checkpoint that fails to restore (truncated or corrupt files) is skipped with a warning naming it
  and the older checkpoint that is used instead (tensorflow/tensorflow#61552).
- archive/ holds the best checkpoint (model and EMA only) with best_eval.json. It is written into a temporary
  directory first and swapped in by rename, so a kill at any moment leaves either the old or the new best.
"""
import json
import os
import uuid

import tensorflow as tf
from absl import logging

from training.errors import first_line

ARCHIVE_DIR = "archive"
BEST_EVAL_FILE = "best_eval.json"
_ARCHIVE_PREFIX = "best"


class CheckpointError(RuntimeError):
    """No usable checkpoint could be restored although some exist."""


class Checkpoints:
    """Saves and restores the training checkpoint of one model_dir."""

    def __init__(self, checkpoint, directory, *, max_to_keep):
        self._checkpoint = checkpoint
        self.manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep,
                                                  checkpoint_name="ckpt")

    def restore_latest(self):
        """Restores the newest checkpoint that reads back; returns its path, or None for a fresh start."""
        candidates = list(reversed(self.manager.checkpoints))
        failures = []
        for path in candidates:
            try:
                self._checkpoint.restore(path).assert_existing_objects_matched()
            # A truncated data file surfaces as IndexError ("Read less bytes than requested") from the reader.
            except (tf.errors.OpError, ValueError, AssertionError, IndexError) as e:
                failures.append((path, first_line(e)))
                continue
            for bad_path, reason in failures:
                logging.warning("checkpoint %s is unusable (%s); resuming from %s instead", bad_path, reason, path)
                print(f"warning: checkpoint {bad_path} is unusable; resuming from {path} instead", flush=True)
            return path
        if failures:
            raise CheckpointError("no checkpoint in {} could be restored: {}".format(
                self.manager.directory, "; ".join(f"{p}: {r}" for p, r in failures)))
        return None

    def save(self, step):
        return self.manager.save(checkpoint_number=step)


def replace_dir(tmp_dir, final_dir):
    """Moves tmp_dir to final_dir, keeping the old final_dir until the new one is in place."""
    old_dir = f"{final_dir}.old-{uuid.uuid4().hex[:8]}"
    if tf.io.gfile.exists(final_dir):
        tf.io.gfile.rename(final_dir, old_dir)
    tf.io.gfile.rename(tmp_dir, final_dir)
    if tf.io.gfile.exists(old_dir):
        tf.io.gfile.rmtree(old_dir)


def archive_best(model_dir, model, ema, record):
    """Writes archive/ (model + EMA weights and best_eval.json) for the evaluation `record`."""
    final_dir = os.path.join(model_dir, ARCHIVE_DIR)
    tmp_dir = f"{final_dir}.tmp-{uuid.uuid4().hex[:8]}"
    tf.io.gfile.makedirs(tmp_dir)
    tf.train.Checkpoint(model=model, ema=ema).write(os.path.join(tmp_dir, _ARCHIVE_PREFIX))
    with tf.io.gfile.GFile(os.path.join(tmp_dir, BEST_EVAL_FILE), "w") as f:
        json.dump(record, f, indent=1)
    replace_dir(tmp_dir, final_dir)
    return final_dir


def recover_archive(model_dir):
    """Puts back archive/ if a kill fell between the two renames of `replace_dir` (only archive.old-* left)."""
    final_dir = os.path.join(model_dir, ARCHIVE_DIR)
    if tf.io.gfile.exists(final_dir):
        return
    leftovers = sorted(tf.io.gfile.glob(f"{final_dir}.old-*"))
    complete = [d for d in leftovers if tf.io.gfile.exists(os.path.join(d, BEST_EVAL_FILE))]
    if complete:
        tf.io.gfile.rename(complete[-1], final_dir)
        logging.warning("restored %s from %s left by an interrupted archive update", final_dir, complete[-1])


def read_best(model_dir):
    """The best_eval.json record of model_dir's archive, or None when nothing is archived yet."""
    recover_archive(model_dir)
    path = os.path.join(model_dir, ARCHIVE_DIR, BEST_EVAL_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def archived_prefix(model_dir):
    return os.path.join(model_dir, ARCHIVE_DIR, _ARCHIVE_PREFIX)


def find_weights(model_dir, path=None):
    """The checkpoint prefix to evaluate or export: `path` if given, else archive/, else the latest ckpt-N."""
    if path:
        if tf.io.gfile.isdir(path):
            return tf.train.latest_checkpoint(path) or (
                archived_prefix(path) if tf.io.gfile.exists(archived_prefix(path) + ".index") else None)
        return path
    recover_archive(model_dir)
    if tf.io.gfile.exists(archived_prefix(model_dir) + ".index"):
        return archived_prefix(model_dir)
    return tf.train.latest_checkpoint(model_dir)


def restore_weights(prefix, model, ema):
    """Restores model and EMA from a training or archive checkpoint; every model/EMA variable must match."""
    status = tf.train.Checkpoint(model=model, ema=ema).read(prefix)
    status.expect_partial()  # a training checkpoint also holds optimizer slots and the iterator
    status.assert_existing_objects_matched()


def remove_tree(path):
    if tf.io.gfile.exists(path):
        tf.io.gfile.rmtree(path)
