"""--mode=predict: the top classes with probabilities for image files, folders and globs.

Every argument is expanded (a folder: its image files, recursively, hidden names left out; a glob: its
matches) and every file read and checked before the model is built, so a typo costs no model build. A file
that cannot be read or decoded gets its own one-line error on stderr; the others are still predicted, and the
run reports the failures (main.py then exits with status 2). Each file reaches the network as training fed it:
the bytes data/folders.py `canonical_jpeg` gives (PNG, GIF, BMP and CMYK as RGB JPEG), then the eval
preprocessing. Results are printed one block per file and, with --output, written as JSON lines or CSV
(replaced by rename, never half-written). Class names: training/store/labels.py.
"""

import csv
import io
import json
import os
import sys

import numpy as np
import tensorflow as tf

from data import folders, preprocessing
from training.errors import UserError, first_line
from training.serving import scoring
from training.store import checkpoints, labels

OUTPUT_FORMATS = (".jsonl", ".csv")
_BATCH = 32  # images per model call


def _is_glob(argument):
    return any(char in argument for char in "*?[")


def _folder_images(directory):
    found = []
    for root, subdirs, files in tf.io.gfile.walk(directory):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in sorted(files) if not f.startswith(".") and folders.is_image_name(f)]
    return found


def expand(arguments):
    """(image files in argument order, [(argument, error)]) for files, folders and globs."""
    paths, failed = [], []
    for argument in arguments:
        if _is_glob(argument):
            matches = sorted(tf.io.gfile.glob(argument))
            paths += [m for m in matches if not tf.io.gfile.isdir(m)]
            if not matches:
                failed.append((argument, "no file matches this pattern"))
        elif tf.io.gfile.isdir(argument):
            images = _folder_images(argument)
            paths += images
            if not images:
                failed.append((argument, f"folder holds no image files ({' '.join(folders.IMAGE_EXTENSIONS)})"))
        elif tf.io.gfile.exists(argument):
            paths.append(argument)
        else:
            failed.append((argument, "no such file or folder"))
    return paths, failed


def read_checked(paths):
    """({path: JPEG bytes as training would see them}, [(path, error)]): every file read and fully decoded."""
    images, failed = {}, []
    for path in paths:
        try:
            data = tf.io.gfile.GFile(path, "rb").read()
        except (tf.errors.OpError, OSError) as e:
            failed.append((path, f"cannot read it ({first_line(e)})"))
            continue
        try:
            images[path] = folders.canonical_jpeg(tf.constant(data)).numpy()
        except tf.errors.InvalidArgumentError:
            failed.append((path, "not a decodable JPEG/PNG/GIF/BMP image (or truncated)"))
    return images, failed


def pixels(encoded, size, crop_fraction, resize_method):
    """Batches of eval pixels of the encoded images, in order (the eval preprocessing: center crop, resize with
    the run's kernel)."""
    return (
        tf.data.Dataset.from_tensor_slices(tf.constant(encoded, tf.string))
        .map(
            lambda data: preprocessing.preprocess_for_eval(
                data, size, crop_fraction=crop_fraction, resize_method=resize_method
            )
        )
        .batch(_BATCH)
    )


def _read_images(paths, size, crop_fraction, resize_method):
    """The eval pixels of image files, stacked (every file must be readable)."""
    images, failed = read_checked(paths)
    if failed:
        raise UserError(f"{failed[0][0]}: {failed[0][1]}")
    return tf.concat(list(pixels([images[p] for p in paths], size, crop_fraction, resize_method)), axis=0)


def check_request(image_arguments, top_k, output):
    """The command's own mistakes, before anything is read: one UserError line."""
    if not image_arguments:
        raise UserError(
            "--mode=predict needs image files, folders or globs as positional arguments: python "
            "main.py --mode=predict --init_checkpoint=WEIGHTS photo.jpg photos/ 'more/*.png'"
        )
    if not isinstance(top_k, int) or top_k < 1:
        raise UserError(f"--top_k must be a positive integer, got {top_k!r}")
    if output:
        if not output.lower().endswith(OUTPUT_FORMATS):
            raise UserError(f"--output must end in {' or '.join(OUTPUT_FORMATS)}, got {output}")
        parent = os.path.dirname(output)
        if parent and not tf.io.gfile.isdir(parent):
            raise UserError(f"--output: no such folder {parent}")


def _output_text(path, results, failed):
    if path.lower().endswith(".jsonl"):
        lines = [
            json.dumps(
                {"path": p, "top_k": [{"class": n, "probability": round(q, 6)} for n, q in top]}, ensure_ascii=False
            )
            for p, top in results
        ]
        lines += [json.dumps({"path": p, "error": e}, ensure_ascii=False) for p, e in failed]
        return "".join(line + "\n" for line in lines)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "rank", "class", "probability", "error"])
    for p, top in results:
        writer.writerows([p, rank, n, f"{q:.6f}", ""] for rank, (n, q) in enumerate(top, 1))
    writer.writerows([p, "", "", "", e] for p, e in failed)
    return buffer.getvalue()


def _write_output(path, results, failed):
    temporary = f"{path}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(temporary, "w") as f:
        f.write(_output_text(path, results, failed))
    tf.io.gfile.rename(temporary, path, overwrite=True)


def predict(plan, source, weights_path, image_arguments, *, top_k, output=None):
    """Returns {"predictions": [(path, [(class name, probability), ...])], "failed": [(path, error)]} and
    prints them (errors on stderr, one line each)."""
    check_request(image_arguments, top_k, output)
    paths, failed = expand(image_arguments)
    images, unreadable = read_checked(paths)
    failed += unreadable
    for path, error in failed:
        print(f"error: {path}: {error}", file=sys.stderr, flush=True)
    if not images:
        raise UserError(f"no image to predict: {len(failed)} of the arguments failed (above)")
    num_classes = plan.num_classes or scoring.stored_num_classes(weights_path)
    model = scoring.inference_model(plan.network.inference(num_classes), weights_path)
    names = labels.class_names(source, num_classes, plan.model_dir)
    readable = [p for p in paths if p in images]
    batches = pixels([images[p] for p in readable], plan.image_size, plan.crop_fraction, plan.resize_method)
    rows = np.concatenate([tf.nn.softmax(tf.cast(model(b, training=False), tf.float32)).numpy() for b in batches])
    results = []
    for path, row in zip(readable, rows):
        best = np.argsort(-row, kind="stable")[: min(top_k, num_classes)]
        results.append((path, [(names[i], float(row[i])) for i in best]))
        print(path + "\n" + "\n".join(f"  {p:7.2%}  {name}" for name, p in results[-1][1]), flush=True)
    if output:
        _write_output(output, results, failed)
    return {"predictions": results, "failed": failed}


def predict_run(ctx, image_files):
    """--mode=predict: the weights of --init_checkpoint (or model_dir's best) on each image file, folder or glob;
    {"predictions": [...], "failed": [(path, error)]}."""
    weights = ctx.config.runtime.init_checkpoint or checkpoints.find_weights(ctx.model_dir)
    if not weights:
        raise UserError("--mode=predict needs --init_checkpoint (a .h5 file or checkpoint) or --model_dir")
    return predict(
        ctx.plan,
        ctx.source,
        weights,
        list(image_files),
        top_k=ctx.config.runtime.predict_top_k,
        output=ctx.config.runtime.predict_output,
    )
