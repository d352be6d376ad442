"""Checkpoints in model_dir: rotating ckpt-N files for resuming, and archive/ for the best by minival top-1.

- Rotating checkpoints hold model, optimizer (slots and step), EMA shadows and, where tf.data supports it, the
  input iterator position. tf.train.CheckpointManager writes the data files before it updates the
  `checkpoint` state file, so a crash mid-save leaves the previous checkpoint as the latest.
- A latest checkpoint that fails to restore (truncated or corrupt files) is skipped with a warning naming it
  and the older checkpoint that is used instead (tensorflow/tensorflow#61552).
- A `checkpoint` state file that is unreadable, empty or names only missing files is rebuilt from the ckpt-N
  files on disk (`repair_state`), so a damaged state file never silently restarts a run from step 0.
- Leftovers of killed writes (ckpt-N_temp/, archive.tmp-*, export.tmp-*, metrics.jsonl.tmp-*, config.json.tmp-*)
  are removed at the start of a training run that holds model_dir's lock and of an eval job beside it
  (`sweep_leftovers`); our temporaries name their writer (training/store/temporaries.py), and only those of writers
  that no longer run are removed, so neither process sweeps the other's live writes.
- archive/ holds the best checkpoint (model and EMA only) with best_eval.json. It is written into a temporary
  directory first and swapped in by rename, so a kill at any moment leaves either the old or the new best.
"""

import json
import os
import re

import tensorflow as tf
from absl import logging

from training.errors import UserError, first_line
from training.store import temporaries

ARCHIVE_DIR = "archive"
BEST_EVAL_FILE = "best_eval.json"
_ARCHIVE_PREFIX = "best"


STATE_FILE = "checkpoint"  # tf.train.CheckpointManager's state file
_CKPT_INDEX = re.compile(r"ckpt-(\d+)\.index$")
# What interrupted writes leave in model_dir: TF's checkpoint staging folders, our archive/export/metrics
# temporaries (replace_dir, export.export_saved_model, logs._append_line) and checks.check_writable_dir's probe.
_LEFTOVERS = (
    f"{ARCHIVE_DIR}.tmp-*",
    "export.tmp-*",
    "metrics.jsonl.tmp-*",
    "exports.jsonl.tmp-*",
    "metrics.csv.tmp-*",
    "train.log.tmp-*",
    "curves.png.tmp-*",
    f"{STATE_FILE}.tmp-*",
    "config.json.tmp-*",
    "config_history.jsonl.tmp-*",
)
# TF's own checkpoint staging folders and checks.check_writable_dir's probe (named before TensorFlow loads) carry
# no writer's identity; only the trainer writes them, and it sweeps them once it holds the lock.
_TRAINER_LEFTOVERS = ("ckpt-*_temp*", ".write-test-*")


class CheckpointError(UserError):
    """No usable checkpoint could be restored although some exist (one line, exit status 2)."""


def checkpoints_on_disk(directory):
    """The ckpt-N prefixes that have an index file in `directory`, oldest first."""
    found = []
    for path in tf.io.gfile.glob(os.path.join(directory, "ckpt-*.index")):
        match = _CKPT_INDEX.search(path)
        if match:
            found.append((int(match.group(1)), path[: -len(".index")]))
    return [prefix for _, prefix in sorted(found)]


def _read_state(directory):
    """The parsed state file, or None when it is unreadable or empty (TF's own warnings about it silenced: the
    caller says what it does instead)."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        return tf.train.get_checkpoint_state(directory)
    except ValueError:  # parses, but names no checkpoint (an empty file)
        return None
    finally:
        logger.setLevel(level)


def repair_state(directory, log=print):
    """Rebuilds a damaged `checkpoint` state file from the ckpt-N files in `directory`, with a warning.

    Without this, TensorFlow ignores an unreadable state file (the run restarts from step 0 and overwrites the
    rotation) and raises a traceback for an empty one. No files at all: an unreadable state file is removed
    (nothing to resume), a readable one naming only missing files is an error (the user deleted them?).
    """
    path = os.path.join(directory, STATE_FILE)
    if not tf.io.gfile.exists(path):
        return
    state = _read_state(directory)
    listed = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path] if state else []
    if any(tf.io.gfile.exists(p + ".index") for p in listed):
        return
    on_disk = checkpoints_on_disk(directory)
    problem = f"names only missing checkpoints ({', '.join(listed)})" if state else "is unreadable or empty"
    if on_disk:
        log(f"warning: {path} {problem}; resuming from the checkpoint files on disk, latest {on_disk[-1]}")
        _write_state(directory, on_disk)
    elif state is None:
        log(f"warning: {path} {problem} and there are no checkpoint files; removed it, starting from step 0")
        tf.io.gfile.remove(path)
    else:
        raise CheckpointError(
            f"{path} {problem} and {directory} has no ckpt-N files; restore them, or delete {path} to train from step 0"
        )


def _write_state(directory, prefixes):
    """The state file CheckpointManager writes (text CheckpointState: names relative to `directory`, and the
    timestamps without which the manager leaves them out of its rotation and of `checkpoints`), written by
    rename so that a kill leaves the old or the new one."""
    lines = [f'model_checkpoint_path: "{os.path.basename(prefixes[-1])}"']
    lines += [f'all_model_checkpoint_paths: "{os.path.basename(p)}"' for p in prefixes]
    lines += [f"all_model_checkpoint_timestamps: {tf.io.gfile.stat(p + '.index').mtime_nsec / 1e9}" for p in prefixes]
    tmp_path = temporaries.name(os.path.join(directory, STATE_FILE))
    with tf.io.gfile.GFile(tmp_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    tf.io.gfile.rename(tmp_path, os.path.join(directory, STATE_FILE), overwrite=True)


def latest_step(directory):
    """N of the newest ckpt-N in `directory` (state file or files on disk), None when there is none."""
    state = _read_state(directory) if tf.io.gfile.exists(os.path.join(directory, STATE_FILE)) else None
    prefixes = ([state.model_checkpoint_path] if state else []) + checkpoints_on_disk(directory)[-1:]
    steps = [int(p.rsplit("-", 1)[1]) for p in prefixes if p.rsplit("-", 1)[-1].isdigit()]
    return max(steps) if steps else None


def sweep_leftovers(model_dir, log=print, holds_lock=True):
    """Removes what killed writes left in model_dir: temporaries whose writer no longer runs, and with
    `holds_lock` (the trainer) TF's checkpoint staging folders as well."""
    recover_archive(model_dir)  # archive.old-* may be the only copy of the best: put it back first
    patterns = _LEFTOVERS + (
        (f"{ARCHIVE_DIR}.old-*",) if tf.io.gfile.exists(os.path.join(model_dir, ARCHIVE_DIR)) else ()
    )
    found = temporaries.dead_temporaries(model_dir, patterns)
    if holds_lock:
        found += [p for pattern in _TRAINER_LEFTOVERS for p in tf.io.gfile.glob(os.path.join(model_dir, pattern))]
    for path in found:
        temporaries.remove(path)
    if found:
        log(
            f"removed {len(found)} leftover(s) of interrupted writes: "
            f"{', '.join(sorted(os.path.basename(p) for p in found))}"
        )


class Checkpoints:
    """Saves and restores the training checkpoint of one model_dir."""

    def __init__(self, checkpoint, directory, *, max_to_keep, restore_from=None):
        """restore_from: the part of `checkpoint` to restore (default: all of it)."""
        self._checkpoint = checkpoint
        self._restore_from = restore_from
        self.manager = tf.train.CheckpointManager(
            checkpoint, directory, max_to_keep=max_to_keep, checkpoint_name="ckpt"
        )
        self._current = None  # the path of the checkpoint this process restored or saved last

    def restore_latest(self):
        """Restores the newest checkpoint that reads back; returns its path, or None for a fresh start."""
        # A state file without timestamps (written by hand) leaves `checkpoints` empty but names the latest.
        candidates = list(reversed(self.manager.checkpoints)) or [p for p in [self.manager.latest_checkpoint] if p]
        failures = []
        for path in candidates:
            try:
                status = (self._restore_from or self._checkpoint).restore(path)
                status.assert_existing_objects_matched()
                if self._restore_from is not None:
                    status.expect_partial()
            # A truncated data file surfaces as IndexError ("Read less bytes than requested") from the reader.
            except (tf.errors.OpError, ValueError, AssertionError, IndexError) as e:
                failures.append((path, first_line(e)))
                continue
            for bad_path, reason in failures:
                logging.warning("checkpoint %s is unusable (%s); resuming from %s instead", bad_path, reason, path)
                print(f"warning: checkpoint {bad_path} is unusable; resuming from {path} instead", flush=True)
            self._current = path
            return path
        if failures:
            raise CheckpointError(
                "no checkpoint in {} could be restored: {}".format(
                    self.manager.directory, "; ".join(f"{p}: {r}" for p, r in failures)
                )
            )
        return None

    def save(self, step):
        """Writes ckpt-<step>, unless it is the checkpoint this process restored or wrote last: a SIGTERM at a
        saved boundary must not rewrite a good checkpoint during the grace period (a kill mid-write would
        damage it)."""
        if self._current and self._current.rsplit("-", 1)[-1] == str(step):
            return self._current
        # Deleted under the run (before or during this save): TF would recreate it holding one checkpoint and
        # nothing else of the run, or fail in SaveV2 with NotFoundError.
        deleted = UserError(
            f"{self.manager.directory} was deleted while the run wrote to it; the checkpoint of "
            f"step {step} was not saved"
        )
        if self._current and not tf.io.gfile.isdir(self.manager.directory):  # it held our last checkpoint
            raise deleted
        try:
            self._current = self.manager.save(checkpoint_number=step)
        except tf.errors.NotFoundError:
            if tf.io.gfile.isdir(self.manager.directory):
                raise
            raise deleted from None
        return self._current


def replace_dir(tmp_dir, final_dir):
    """Moves tmp_dir to final_dir, keeping the old final_dir until the new one is in place."""
    old_dir = temporaries.name(final_dir, "old")
    if tf.io.gfile.exists(final_dir):
        tf.io.gfile.rename(final_dir, old_dir)
    tf.io.gfile.rename(tmp_dir, final_dir)
    if tf.io.gfile.exists(old_dir):
        tf.io.gfile.rmtree(old_dir)


def archive_best(model_dir, model, ema, record):
    """Writes archive/ (model + EMA weights and best_eval.json) for the evaluation `record`."""
    final_dir = os.path.join(model_dir, ARCHIVE_DIR)
    tmp_dir = temporaries.name(final_dir)
    tf.io.gfile.makedirs(tmp_dir)
    tf.train.Checkpoint(model=model, ema=ema).write(os.path.join(tmp_dir, _ARCHIVE_PREFIX))
    with tf.io.gfile.GFile(os.path.join(tmp_dir, BEST_EVAL_FILE), "w") as f:
        json.dump(record, f, indent=1)
    replace_dir(tmp_dir, final_dir)
    return final_dir


def recover_archive(model_dir):
    """Puts back archive/ if a kill fell between the two renames of `replace_dir` (only archive.old-* left); a
    live writer's archive.old-* is its own, between those renames, and stays."""
    final_dir = os.path.join(model_dir, ARCHIVE_DIR)
    if tf.io.gfile.exists(final_dir):
        return
    leftovers = sorted(d for d in tf.io.gfile.glob(f"{final_dir}.old-*") if not temporaries.writer_alive(d))
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


def checkpoint_prefix(path):
    """The checkpoint prefix a user's `path` names: itself (checked), or the best/latest checkpoint of a
    directory; a UserError naming --init_checkpoint otherwise."""
    if tf.io.gfile.isdir(path):
        prefix = find_weights(path)
        if prefix is None:
            raise UserError(f"--init_checkpoint {path}: no checkpoint in that directory")
        return prefix
    if not tf.io.gfile.exists(path + ".index"):
        raise UserError(f"--init_checkpoint {path}: no such file or checkpoint (looked for {path}.index)")
    return path


def weights_name(model_dir, prefix):
    """How an evaluation record names the weights it scored: relative to model_dir for the run's own
    checkpoints (e.g. "archive/best", "ckpt-400": runs can be moved and compared), else the path as given."""
    base = model_dir.rstrip("/") + "/"
    return prefix[len(base) :] if prefix.startswith(base) else prefix


def find_weights(model_dir, path=None):
    """The checkpoint prefix to evaluate or export: the one `path` names if given (checkpoint_prefix), else
    model_dir's archive/, else its latest ckpt-N (None when there is neither)."""
    if path:
        return checkpoint_prefix(path)
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


def checkpoint_step(prefix):
    """N of a ckpt-N prefix (0 for other names)."""
    tail = prefix.rsplit("-", 1)[-1] if "ckpt-" in prefix else ""
    return int(tail) if tail.isdigit() else 0
