"""SavedModel export from the best EMA weights, written with Keras' export archive (keras.export.ExportArchive).

The archive tracks the Keras model, so every weight is saved as a variable of the SavedModel and converters
(TFLite) find them; a hand-written tf.Module that only held the model as an attribute lost them (a 0.25 MB
TFLite file with NaN outputs).

Signatures (all outputs float32 unless said):
- serving_default: image_bytes string[None] (JPEG, PNG, GIF or BMP files as they are). The eval preprocessing
  runs in the graph: center crop with the run's crop fraction, resize with the run's kernel (bicubic;
  bilinear for EdgeTPU/Lite).
- serving_images: images float32[None, size, size, 3], pixels in [0, 255]; no preprocessing.
  Both return probabilities [N, classes], classes int32[N] (the argmax, as the original's export),
  top_k_classes int32[N, k] and top_k_probabilities [N, k], k = min(5, classes).
- class_names: no inputs -> class_names string[classes], the name of class i at i.
- serving_features: images as serving_images -> features float32[N, head filters]: the pooled embedding before
  the classifier (tensorflow/tpu's `pooled_features`: the global average of the 1x1 head conv's output).

A headless export (config.runtime.export_headless, for embedding use) holds only the backbone: serving_default
(image bytes, preprocessed as above) and serving_features, both returning `features`; no classifier, no class
names, no TFLite files.

For export_model.py's --endpoint_name, `build_endpoint_archive` holds one endpoint of the classifier (a feature
map or the pooled features) under the signature the TFLite converter reads; it is a converter's input, not an
export of its own.

Class names travel as the asset file `assets/class_names.txt` (one name per line, line i = class i; the
ImageNet names for 1000/1001-class models, the data's names otherwise, see training/store/labels.py `class_names`);
the class_names signature reads it through a lookup table, so a client needs nothing but the SavedModel.

Bad requests fail that call with InvalidArgumentError and the server keeps serving: undecodable bytes, and for
serving_images a batch of the wrong rank or size, or holding NaN/Inf (checked in the graph: the converters keep
only the model, the checks are not part of a .tflite file).

Where: a run's export goes to a new numeric version folder, export_dir/<version>/ (default export_dir: model_dir/
export), the layout TF Serving's --model_base_path watches (it serves the highest version); the version is the
Unix time in seconds, as the original's Estimator export_saved_model named its folders (tensorflow/tpu
models/official/efficientnet/main.py at 7dc921f, line 657), or one above the highest version already there.
config.runtime.export_versioned=false writes into export_dir itself, replacing what is there. Each export is
recorded in model_dir/exports.jsonl (folder, version, weights). `export_saved_model` writes into the folder
it is given.

The export is written into a temporary directory and renamed into place, so the target is always either the
previous complete export or the new complete one (a killed export's temporary is not a number: TF Serving
ignores it; the next export removes it). With config.runtime.export_tflite, the .tflite files
(training/serving/tflite.py) are written into its `tflite/` folder before the rename.
"""

import contextlib
import os
import shutil
import tempfile
import time

import keras
import tensorflow as tf

import efficientnet
from data import preprocessing
from training.errors import UserError, first_line
from training.serving import scoring, tflite
from training.store import checkpoints, labels, temporaries

CLASS_NAMES_ASSET = "class_names.txt"
TOP_K = 5


def checked_images(images, size):
    """images, after in-graph checks that fail the call (InvalidArgumentError) for a batch that is not
    [N, size, size, 3] or holds NaN/Inf. The checks use the run-time shape: a rank-3 batch would otherwise reach
    the first convolution and abort the whole process (oneDNN check failure), other sizes would be answered."""
    shape = tf.shape(images)
    padded = tf.concat([shape, tf.zeros([4], tf.int32)], axis=0)  # rank < 4 still has 3 entries to compare
    shape_ok = tf.logical_and(tf.equal(tf.size(shape), 4), tf.reduce_all(tf.equal(padded[1:4], [size, size, 3])))
    shape_check = tf.debugging.Assert(shape_ok, [f"images must be float32 [N, {size}, {size}, 3]; got shape", shape])
    with tf.control_dependencies([shape_check]):
        finite_check = tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(images)), ["images hold NaN or Inf values"])
    with tf.control_dependencies([finite_check]):
        return tf.ensure_shape(tf.identity(images), [None, size, size, 3])


def outputs(model, images, top_k):
    """The serving outputs of a float32 batch (see the module docstring)."""
    probabilities = tf.nn.softmax(tf.cast(model(images, training=False), tf.float32))
    top = tf.math.top_k(probabilities, k=top_k)
    return {
        "probabilities": probabilities,
        "classes": tf.argmax(probabilities, axis=-1, output_type=tf.int32),
        "top_k_classes": top.indices,
        "top_k_probabilities": top.values,
    }


def pooled_features(model):
    """The classifier's pooled features as a model on the same variables: its `avg_pool` output."""
    return keras.Model(model.input, model.get_layer("avg_pool").output, name=f"{model.name}-pooled-features")


def feature_outputs(features, images):
    """The serving output of the pooled-features model: {"features": float32 [N, head filters]}."""
    return {"features": tf.cast(features(images, training=False), tf.float32)}


def eval_preprocessing(plan):
    """bytes -> float32 [size, size, 3]: the eval preprocessing of the run (its crop fraction and resize kernel:
    bicubic, bilinear for EdgeTPU/Lite)."""
    size, crop, method = plan.image_size, plan.crop_fraction, plan.resize_method
    return lambda data: preprocessing.preprocess_for_eval(data, size, crop_fraction=crop, resize_method=method)


def _names_table(names_file, num_classes):
    initializer = tf.lookup.TextFileInitializer(
        names_file,
        tf.int64,
        tf.lookup.TextFileIndex.LINE_NUMBER,
        tf.string,
        tf.lookup.TextFileIndex.WHOLE_LINE,
        vocab_size=num_classes,
    )
    return tf.lookup.StaticHashTable(initializer, default_value="")


def build_archive(model, plan, num_classes, names_file):
    """The export archive of `model` with the three signatures of the module docstring."""
    size, top_k = plan.image_size, min(TOP_K, num_classes)
    preprocess = eval_preprocessing(plan)
    table = _names_table(names_file, num_classes)

    def serve_bytes(image_bytes):
        images = tf.map_fn(preprocess, image_bytes, fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))
        return outputs(model, images, top_k)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(table)
    archive.add_endpoint("serving_default", serve_bytes, [tf.TensorSpec([None], tf.string, name="image_bytes")])
    archive.add_endpoint(
        "serving_images",
        lambda images: outputs(model, checked_images(images, size), top_k),
        [tf.TensorSpec([None, size, size, 3], tf.float32, name="images")],
    )
    archive.add_endpoint(
        "class_names", lambda: {"class_names": table.lookup(tf.range(num_classes, dtype=tf.int64))}, []
    )
    features = pooled_features(model)
    archive.add_endpoint(
        "serving_features",
        lambda images: feature_outputs(features, checked_images(images, size)),
        [tf.TensorSpec([None, size, size, 3], tf.float32, name="images")],
    )
    return archive


def build_headless_archive(model, plan):
    """The export archive of `model`'s backbone alone: serving_default on bytes and serving_features on pixels,
    both returning the pooled features (the module docstring)."""
    size, preprocess = plan.image_size, eval_preprocessing(plan)
    features = pooled_features(model)

    def serve_bytes(image_bytes):
        images = tf.map_fn(preprocess, image_bytes, fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))
        return feature_outputs(features, images)

    archive = keras.export.ExportArchive()
    archive.track(features)
    archive.add_endpoint("serving_default", serve_bytes, [tf.TensorSpec([None], tf.string, name="image_bytes")])
    archive.add_endpoint(
        "serving_features",
        lambda images: feature_outputs(features, checked_images(images, size)),
        [tf.TensorSpec([None, size, size, 3], tf.float32, name="images")],
    )
    return archive


def endpoint_layers(variant):
    """{tensorflow/tpu endpoint name: the layer of our classifier whose output it is}: the multi-scale maps of
    efficientnet.endpoint_table (reduction_1..5, features, head_1x1) and `pooled_features`, the embedding the
    classifier reads. tensorflow/tpu efficientnet_model.py Model.call (lines 639-704 at 7dc921f) names these and
    more; its stem, block_N, the blocks' expansion outputs, global_pool and head are not exposed here."""
    layers = {endpoint.name: endpoint.layer for endpoint in efficientnet.endpoint_table(variant)}
    layers["pooled_features"] = "avg_pool"
    return layers


def endpoint_model(model, variant, name):
    """The classifier's endpoint `name` (`endpoint_layers`) as a model on the same variables; UserError for a
    name this project does not expose."""
    layers = endpoint_layers(variant)
    if name not in layers:
        raise UserError(f"endpoint {name!r} is not available here; the endpoints are {', '.join(layers)}")
    return keras.Model(model.input, model.get_layer(layers[name]).output, name=f"{model.name}-{name}")


def build_endpoint_archive(model, plan, name):
    """The export archive of one endpoint of `model` under tflite.SIGNATURE, the signature the TFLite converter
    reads: images float32 [N, size, size, 3] in [0, 255] -> {name: the endpoint's output as float32}."""
    size, endpoint = plan.image_size, endpoint_model(model, plan.network.variant, name)
    archive = keras.export.ExportArchive()
    archive.track(endpoint)
    archive.add_endpoint(
        tflite.SIGNATURE,
        lambda images: {name: tf.cast(endpoint(images, training=False), tf.float32)},
        [tf.TensorSpec([None, size, size, 3], tf.float32, name="images")],
    )
    return archive


def _check_names(class_names, num_classes):
    if len(class_names) != num_classes or any("\n" in name or "\r" in name for name in class_names):
        raise ValueError(f"need {num_classes} one-line class names, got {len(class_names)}")


def export_saved_model(
    plan, weights_prefix, export_dir, *, num_classes=None, class_names=None, source=None, log=print, use_ema=True
):
    """Writes the SavedModel of `weights_prefix`'s EMA weights to export_dir; returns export_dir.

    num_classes: the weights' class count when it is not the plan's (published weights exported as stored).
    use_ema: False exports the raw trained variables instead (training/serving/scoring.py `load_weights`).

    class_names: one per class (default: training/store/labels.py `class_names` of the run's model_dir).
    source: the data source; needed with config.runtime.export_tflite (calibration and check images).
    log: a logs.RunLog (progress lines, and a line every few seconds during the long calls) or a callable
      taking each line.
    """
    busy = getattr(log, "busy", lambda what: contextlib.nullcontext())
    log = getattr(log, "message", log)
    config, num_classes = plan.config, num_classes or plan.num_classes
    headless = config.runtime.export_headless
    if headless and config.runtime.export_tflite:
        raise ValueError(
            "a headless export has no TFLite files (they are checked on class probabilities); drop "
            "runtime.export_tflite or runtime.export_headless"
        )
    if config.runtime.export_tflite:
        tflite.check_can_convert(config, source)
    if not headless:
        class_names = class_names or labels.class_names(source, num_classes, config.runtime.model_dir)
        _check_names(class_names, num_classes)
    log(f"export: loading {weights_prefix}")
    model = scoring.inference_model(plan.network.inference(num_classes), weights_prefix, use_ema=use_ema)
    export_dir = export_dir.rstrip("/")
    tmp_dir = temporaries.name(export_dir)
    names_dir = tempfile.mkdtemp(prefix="export-names-")
    try:
        if headless:
            log("export: tracing the serving signatures and writing the SavedModel (headless: pooled features)")
            archive = build_headless_archive(model, plan)
        else:
            names_file = os.path.join(names_dir, CLASS_NAMES_ASSET)
            with open(names_file, "w", encoding="utf-8") as f:
                f.write("\n".join(class_names) + "\n")
            log(f"export: tracing the serving signatures and writing the SavedModel ({num_classes} classes)")
            archive = build_archive(model, plan, num_classes, names_file)
        with busy("writing the SavedModel"):
            archive.write_out(tmp_dir, verbose=False)
        if config.runtime.export_tflite:
            with busy("writing the TFLite files"):
                tflite.write_tflite_files(tmp_dir, model, plan, source, log=log)
    except BaseException:
        checkpoints.remove_tree(tmp_dir)
        raise
    finally:
        shutil.rmtree(names_dir, ignore_errors=True)
    checkpoints.replace_dir(tmp_dir, export_dir)
    log(f"export: SavedModel written to {export_dir}")
    return export_dir


def _check_writable_parent(path):
    """Fails before any work when the export's parent directory cannot be created."""
    parent = os.path.dirname(os.path.abspath(path)) if "://" not in path else path.rsplit("/", 1)[0]
    try:
        tf.io.gfile.makedirs(parent)
    except (tf.errors.OpError, OSError) as e:
        raise UserError(f"cannot write the export to {path}: {first_line(e)}") from None
    if tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path):
        raise UserError(f"cannot write the export to {path}: it exists and is not a directory")


def version_dir(export_dir, now=None):
    """export_dir/<version> for a new export: the Unix time in seconds, or one more than the highest version
    already in export_dir (two exports within a second, or a clock set back)."""
    existing = [int(n.rstrip("/")) for n in tf.io.gfile.listdir(export_dir) if n.rstrip("/").isdigit()] or [0]
    version = max(int(time.time() if now is None else now), max(existing) + 1)
    return f"{export_dir.rstrip('/')}/{version}"


def _sweep_dead_temporaries(export_dir):
    """Removes the temporaries of killed exports in export_dir (a live writer's stay)."""
    for path in temporaries.dead_temporaries(export_dir, ("*.tmp-*", "*.old-*")):
        temporaries.remove(path)


def export_run(ctx, weights_prefix=None):
    """Exports the run's archived best (or the given checkpoint) to config.runtime.export_dir (default
    model_dir/export); returns the directory (None on a non-chief worker, which writes nothing)."""
    prefix = checkpoints.find_weights(ctx.model_dir, weights_prefix)
    if prefix is None:
        raise UserError(f"no checkpoint to export in {ctx.model_dir} (looked for archive/ and ckpt-N)")
    return _export(ctx, prefix, ctx.num_classes)


def export_published(ctx, path):
    """Exports a .h5 file or an original tensorflow/tpu checkpoint as stored, with its own class count."""
    stored = scoring.stored_num_classes(path)
    if ctx.num_classes not in (None, stored):
        raise UserError(
            f"--init_checkpoint {path} has {stored} classes, not {ctx.num_classes}; "
            "drop --num_label_classes or use the data those weights were trained on"
        )
    return _export(ctx, path, stored)


def _export(ctx, weights, num_classes):
    export_dir = ctx.config.runtime.export_dir or os.path.join(ctx.model_dir, "export")
    if not ctx.is_chief:
        return None
    _check_writable_parent(export_dir)
    versioned = ctx.config.runtime.export_versioned
    if versioned:
        tf.io.gfile.makedirs(export_dir)
        _sweep_dead_temporaries(export_dir)
    target = version_dir(export_dir) if versioned else export_dir
    try:
        written = export_saved_model(ctx.plan, weights, target, num_classes=num_classes, source=ctx.source, log=ctx.log)
    except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError, AssertionError) as e:
        raise UserError(f"cannot export {weights}: {first_line(e)}") from None
    version = int(os.path.basename(written)) if versioned else None
    ctx.log.exported({"export_dir": written, "version": version, "weights": weights})
    return written
