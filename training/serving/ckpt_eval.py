"""The work of the original's eval_ckpt_main.py on this project's inference: the top 5 classes of example images
and the top-1/top-5 accuracy of ImageNet validation files against a label file, printed as tensorflow/tpu
models/official/efficientnet/utils.py `EvalCkptDriver` prints them (commit 7dc921f846c9e4071f3884b768a7ddf521272a49
throughout), and the weights used written as a Keras weights file.

Each file reaches the network as --mode=predict feeds it (training/serving/predict.py: the bytes data/folders.py
`canonical_jpeg` gives, then the run's eval preprocessing); the model is the one training/serving/scoring.py
loads. Probabilities are the softmax of the float32 logits. Printed class indices are the model's minus
`offset` (1 with --include_background_label: the original's `label_offset`, utils.py:490), so that a 1001-class
model prints and scores the 1000 ImageNet labels 0..999 and its background class as -1.
"""

import json
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from training.errors import UserError, first_line
from training.serving import predict

TOP = 5  # utils.py:503-505 keeps the five most probable classes
_FILES_PER_READ = 256  # files read, decoded and classified together: an ImageNet glob is not held in memory
_STEP_EVERY = 100  # utils.py:568: a running accuracy line at every 100th image


def read_labels_map(path):
    """{index: name} of a labels map file as the original reads it (utils.py:529): a JSON object
    {"0": "tench, Tinca tinca", ...}."""
    try:
        with tf.io.gfile.GFile(path) as f:
            text = f.read()
    except (tf.errors.OpError, OSError) as e:
        raise UserError(f"--labels_map_file {path}: cannot read it ({first_line(e)})") from None
    try:
        mapping = json.loads(text)
        names = {int(key): str(value) for key, value in mapping.items()}
    except (ValueError, AttributeError, TypeError):
        raise UserError(
            f'--labels_map_file {path} is not a JSON object of class index to name ({{"0": "tench", ...}})'
        ) from None
    return names


def names_by_index(num_classes, offset, *, labels_map=None, class_names=None):
    """{printed index: name} for every class of a `num_classes` model: from a labels map (keyed by printed
    index) or from class names in model order (training/store/labels.py). The background class of a 1001-class
    model (printed -1) is "background" when the map has no entry for it; a map without a name for some other
    class is refused here, before any image is read (the original stops with a KeyError when it meets one)."""
    if labels_map is None:
        return {i - offset: class_names[i] for i in range(num_classes)}
    names = {**({-1: "background"} if offset else {}), **labels_map}
    missing = [i - offset for i in range(num_classes) if i - offset not in names]
    if missing:
        hint = "; drop --include_background_label?" if offset else ""
        if not offset and len(labels_map) == num_classes - 1:
            hint = "; its model has a background class 0: add --include_background_label"
        raise UserError(
            f"the labels map has no name for class {missing[0]} ({len(missing)} of the model's {num_classes} "
            f"classes missing){hint}"
        )
    return names


def probabilities(model, plan, paths):
    """Yields (path, float32 probabilities [classes]) for each image file in order, read in groups of
    _FILES_PER_READ; an unreadable or undecodable file is a UserError naming it."""
    for start in range(0, len(paths), _FILES_PER_READ):
        group = paths[start : start + _FILES_PER_READ]
        images, failed = predict.read_checked(group)
        if failed:
            raise UserError(f"{failed[0][0]}: {failed[0][1]}")
        batches = predict.pixels([images[p] for p in group], plan.image_size, plan.crop_fraction, plan.resize_method)
        rows = np.concatenate([tf.nn.softmax(tf.cast(model(b, training=False), tf.float32)).numpy() for b in batches])
        yield from zip(group, rows)


def top_classes(row, offset):
    """(printed indices, probabilities) of the TOP most probable classes, most probable first."""
    best = np.argsort(-row, kind="stable")[: min(TOP, len(row))]
    return [int(i) - offset for i in best], [float(row[i]) for i in best]


def example_lines(path, indices, probs, names):
    """The lines utils.py:533-536 prints for one image, trailing spaces included."""
    lines = [f"predicted class for image {path}: "]
    lines += [f"  -> top_{j} ({p * 100:4.2f}%): {names[i]}  " for j, (i, p) in enumerate(zip(indices, probs))]
    return lines


def eval_examples(model, plan, paths, names, offset, out=print):
    """runmode examples (utils.py:510-537): prints the top 5 of each image; returns [(indices, probabilities)]."""
    results = []
    for path, row in probabilities(model, plan, paths):
        indices, probs = top_classes(row, offset)
        for line in example_lines(path, indices, probs, names):
            out(line)
        results.append((indices, probs))
    return results


def read_label_file(path):
    """The labels of an ImageNet label file as the original reads it (utils.py:555): one integer a line."""
    try:
        with tf.io.gfile.GFile(path) as f:
            lines = f.read().splitlines()
    except (tf.errors.OpError, OSError) as e:
        raise UserError(f"--imagenet_eval_label {path}: cannot read it ({first_line(e)})") from None
    try:
        return [int(line) for line in lines if line.strip()]
    except ValueError:
        raise UserError(f"--imagenet_eval_label {path}: expected one integer label a line") from None


def eval_imagenet(model, plan, paths, labels, offset, out=print):
    """runmode imagenet (utils.py:539-574): top-1/top-5 of `paths` against `labels` (same order and length),
    a running line at images 0, 100, 200, ... and the final line; returns (top1, top5) in percent."""
    if len(labels) != len(paths):
        raise ValueError(f"{len(paths)} images but {len(labels)} labels")
    top1 = top5 = 0
    for i, ((_, row), label) in enumerate(zip(probabilities(model, plan, paths), labels)):
        indices, _ = top_classes(row, offset)
        top1 += label in indices[:1]
        top5 += label in indices[:TOP]
        if i % _STEP_EVERY == 0:
            out(f"Step {i}: top1_acc = {100 * top1 / (i + 1):4.2f}%  top5_acc = {100 * top5 / (i + 1):4.2f}%")
    top1, top5 = 100 * top1 / len(paths), 100 * top5 / len(paths)
    out(f"Final: top1_acc = {top1:4.2f}%  top5_acc = {top5:4.2f}%")
    return top1, top5


WEIGHTS_SUFFIX = ".weights.h5"


def weights_file_path(path):
    """Where --export_ckpt PATH writes: PATH itself when it ends in .weights.h5 (Keras requires the suffix),
    else PATH.weights.h5."""
    return path if path.endswith(WEIGHTS_SUFFIX) else path + WEIGHTS_SUFFIX


def save_weights_file(model, path):
    """Writes `model`'s weights as a Keras weights file (`weights_file_path`) that --init_checkpoint loads;
    returns its path. Saved locally first (h5py writes only local files), then copied and renamed into place,
    so the file is never half-written, on gs:// too."""
    final = weights_file_path(path)
    parent = os.path.dirname(final)
    if parent and not tf.io.gfile.isdir(parent):
        raise UserError(f"--export_ckpt {path}: no such folder {parent}")
    local_dir = tempfile.mkdtemp(prefix="export-ckpt-")
    try:
        local = os.path.join(local_dir, "model" + WEIGHTS_SUFFIX)
        model.save_weights(local)
        temporary = f"{final}.tmp-{os.getpid()}"
        tf.io.gfile.copy(local, temporary, overwrite=True)
        tf.io.gfile.rename(temporary, final, overwrite=True)
    finally:
        shutil.rmtree(local_dir, ignore_errors=True)
    return final
