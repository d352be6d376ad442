"""TFLite files of an export (config.runtime.export_tflite): float32, dynamic-range int8 and full-integer int8.

Each is converted from the SavedModel's `serving_images` signature (images float32 [N, size, size, 3] in
[0, 255] -> probabilities, classes, top_k_classes, top_k_probabilities; the SavedModel's in-graph input checks
are not converted) and written to `tflite/` inside the export:

- `float32.tflite`: the float network.
- `dynamic_range_int8.tflite`: int8 weights, float activations, same float input and outputs.
- `full_integer_int8.tflite`: int8 weights and activations, calibrated on training images; uint8 input (the
  pixels, with the input tensor's quantization scale and zero point: about 1 and 0 for [0, 255] pixels) and
  uint8 outputs (probabilities and top_k_probabilities quantized, classes int32), for integer-only hardware
  such as the Edge TPU.
- `check.json`: each file run by the TFLite interpreter on held-out images (eval preprocessing; the validation
  split, else minival) against the Keras model: the largest probability difference and the top-1 agreement
  rate, plus the file size. The same figures are printed.

The original (tensorflow/tpu models/official/efficientnet/lite and edgetpu) shipped float and int8 TFLite
files of its Lite and EdgeTPU models; this does the same for every variant. `write_file` converts and writes one
file of one kind (the original's export_model.py writes one), calibrated, if full-integer, on `StreamedImages`.
"""

import contextlib
import dataclasses
import json
import os
import re
import warnings

import numpy as np
import tensorflow as tf

from data import pipeline
from training import checks
from training.errors import UserError, startup_lines_filtered

TFLITE_DIR = "tflite"
CHECK_FILE = "check.json"
KINDS = ("float32", "dynamic_range_int8", "full_integer_int8")
SIGNATURE = "serving_images"
_BATCH = 32  # images per interpreter and Keras call while checking
# What the converter and the interpreter print on file descriptor 2 whatever happens: the converter's settings
# line of a full-integer conversion (fully_quantize: 0, inference_type: ...), the interpreter's "INFO: Created
# TensorFlow Lite XNNPACK delegate for CPU." and the lines of tf.lite.Interpreter's deprecation warning when a
# warnings filter does not catch it first.
_NOISE = re.compile(
    r"^fully_quantize: \d|XNNPACK delegate for CPU|tf\.lite\.Interpreter is deprecated"
    r"|^\s*TF 2\.20\. Please use the LiteRT|^\s*See the \[migration guide\]|^\s*for details\.\s*$"
    r"|^\s*$|warnings\.warn\(_INTERPRETER_DELETION_WARNING\)"
)


@contextlib.contextmanager
def quiet():
    """The TFLite notices above filtered from stderr (other lines, and errors, still show, before the error a
    failure raises), and the deprecation warning of tf.lite.Interpreter silenced: LiteRT is used when installed."""
    with warnings.catch_warnings(), startup_lines_filtered(_NOISE):
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        yield


def check_can_convert(config, source):
    """Fails before any work when the TFLite export cannot run."""
    checks.check_tflite_counts(config)  # validate_config checked them at start; a caller may have changed them
    if source is None:
        raise UserError(
            "the TFLite export needs data (--data_dir, --dataset or the demo data): training images "
            "calibrate the int8 model and held-out images check every file"
        )


def interpreter_class():
    """LiteRT's interpreter (package ai-edge-litert) when installed, else tf.lite.Interpreter (deprecated in
    TF 2.20 but still working in 2.21)."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
    except ImportError:
        Interpreter = tf.lite.Interpreter  # pylint: disable=invalid-name
    return Interpreter


def iter_images(plan, source, split, count):
    """The first `count` images of `split`, eval-preprocessed, one float32 [size, size, 3] array at a time."""
    settings = dataclasses.replace(plan.eval_input, deterministic=True)
    dataset = pipeline.make_dataset(source, split, settings, batch_size=min(count, _BATCH))
    total = 0
    for batch in dataset:
        for image in batch["images"].numpy()[batch["mask"].numpy() > 0][: count - total]:
            yield image.astype(np.float32)
            total += 1
        if total >= count:
            return


def sample_images(plan, source, split, count):
    """float32 [min(count, examples), size, size, 3]: the first images of `split`, eval-preprocessed."""
    images = list(iter_images(plan, source, split, count))
    if not images:
        raise UserError(f"the TFLite export found no readable {split} images")
    return np.stack(images)


class StreamedImages:
    """`iter_images` as a representative dataset for `convert` that reads the split again on every pass instead
    of holding the images (2000 calibration images at 224 px are 1.2 GB as float32). The caller checks that the
    split has images: an empty pass would reach the converter as an empty dataset."""

    def __init__(self, plan, source, split, count):
        self._args = (plan, source, split, count)

    def __iter__(self):
        return iter_images(*self._args)


def convert(saved_model_dir, kind, representative=None, signature=SIGNATURE):
    """The .tflite bytes of `kind` (one of KINDS) converted from the SavedModel's `signature` (its input named
    "images"); full_integer_int8 needs `representative` images (any iterable of [size, size, 3] arrays)."""
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[signature])
    if kind != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if kind == "full_integer_int8":
        converter.representative_dataset = lambda: ({"images": image[None]} for image in representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    return converter.convert()


def write_file(saved_model_dir, kind, path, representative=None, signature=SIGNATURE):
    """Converts one file of `kind` (`convert`, its notices filtered) and writes it to `path` by rename: a kill
    leaves no half-written file. Returns the number of bytes written."""
    with quiet():
        content = convert(saved_model_dir, kind, representative, signature)
    temporary = f"{path}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(temporary, "wb") as f:
        f.write(content)
    tf.io.gfile.rename(temporary, path, overwrite=True)
    return len(content)


def _quantize(values, details):
    scale, zero_point = details["quantization"]
    if details["dtype"] == np.float32 or not scale:
        return values.astype(details["dtype"])
    info = np.iinfo(details["dtype"])
    return np.clip(np.round(values / scale + zero_point), info.min, info.max).astype(details["dtype"])


def _dequantize(values, details):
    scale, zero_point = details["quantization"]
    if values.dtype == np.float32 or not scale:
        return values.astype(np.float32)
    return (values.astype(np.float32) - zero_point) * scale


def run_file(content, images):
    """(probabilities float32 [N, classes], classes int32 [N]) of a .tflite file for float pixels `images`
    (quantized for a uint8 input, dequantized from a uint8 output)."""
    runner = interpreter_class()(model_content=content).get_signature_runner(SIGNATURE)
    input_details, output_details = runner.get_input_details()["images"], runner.get_output_details()["probabilities"]
    probabilities, classes = [], []
    for start in range(0, len(images), _BATCH):
        out = runner(images=_quantize(images[start : start + _BATCH], input_details))
        probabilities.append(_dequantize(out["probabilities"], output_details))
        classes.append(out["classes"])
    return np.concatenate(probabilities), np.concatenate(classes)


def keras_probabilities(model, images):
    return np.concatenate(
        [
            tf.nn.softmax(tf.cast(model(images[i : i + _BATCH], training=False), tf.float32)).numpy()
            for i in range(0, len(images), _BATCH)
        ]
    )


def compare(content, reference, images, resolution=0.0):
    """{"max_probability_difference", "top1_agreement", "near_ties", "top1_agreement_without_near_ties"} of a
    .tflite file against reference probabilities.

    resolution: the file's probability step (1/256 for uint8 outputs, 0 for float ones). An image whose two
    highest reference probabilities are closer than that is a near tie: the quantized network cannot keep them
    apart, and its argmax takes the lower class index, so an undertrained model, whose probabilities are all
    close, can agree on no image at all while its probabilities differ from the Keras model's by under 1/256.
    """
    got, classes = run_file(content, images)
    # Top-1 from the file's own `classes` output (the argmax before the output is quantized).
    agree = classes == reference.argmax(axis=1)
    top_two = np.sort(reference, axis=1)[:, -2:] if reference.shape[1] > 1 else np.zeros([len(reference), 2])
    near_tie = (top_two[:, 1] - top_two[:, 0]) < resolution
    clear = agree[~near_tie]
    return {
        "max_probability_difference": float(np.max(np.abs(got - reference))),
        "top1_agreement": float(np.mean(agree)),
        "near_ties": int(near_tie.sum()),
        "top1_agreement_without_near_ties": float(np.mean(clear)) if clear.size else None,
    }


def resolution(content):
    """The probability step of a .tflite file's `probabilities` output: its quantization scale (0: float)."""
    runner = interpreter_class()(model_content=content).get_signature_runner(SIGNATURE)
    details = runner.get_output_details()["probabilities"]
    return 0.0 if details["dtype"] == np.float32 else float(details["quantization"][0])


def _check_line(kind, size, split, figures):
    text = (
        f"tflite: {kind}.tflite {size / 2**20:.2f} MiB; against the Keras model on the {split} images: max "
        f"probability difference {figures['max_probability_difference']:.2e}, top-1 agreement "
        f"{figures['top1_agreement']:.2%}"
    )
    if figures["near_ties"]:
        rest = figures["top1_agreement_without_near_ties"]
        text += (
            f" ({figures['near_ties']} near ties, images whose two highest Keras probabilities differ by less "
            f"than the file's step of {figures['resolution']:.4f}: its argmax takes the lower class there"
            + (f"; {rest:.2%} on the other images)" if rest is not None else ")")
        )
    return text


def _held_out_split(source):
    return "validation" if source.num_examples("validation") > 0 else "minival"


def write_tflite_files(saved_model_dir, model, plan, source, log=print):
    """Converts, checks and writes the three files and check.json into saved_model_dir/tflite; returns the
    check record."""
    runtime = plan.config.runtime
    split = _held_out_split(source)
    log(
        f"tflite: reading up to {runtime.tflite_calibration_images} training and {runtime.tflite_check_images} "
        f"{split} images"
    )
    representative = sample_images(plan, source, "train", runtime.tflite_calibration_images)
    held_out = sample_images(plan, source, split, runtime.tflite_check_images)
    log(
        f"tflite: {len(representative)} training images calibrate the full-integer file; every file is checked "
        f"on {len(held_out)} {split} images"
        + (
            ""
            if len(held_out) == runtime.tflite_check_images
            else " (all the split's readable images: fewer than asked)"
        )
    )
    reference = keras_probabilities(model, held_out)
    out_dir = os.path.join(saved_model_dir, TFLITE_DIR)
    tf.io.gfile.makedirs(out_dir)
    record = {"split": split, "images": int(len(held_out)), "calibration_images": int(len(representative)), "files": {}}
    for kind in KINDS:
        log(f"tflite: converting {kind}")
        with quiet():
            content = convert(saved_model_dir, kind, representative)
            step = resolution(content)
            figures = {
                "file": f"{kind}.tflite",
                "bytes": len(content),
                "resolution": step,
                **compare(content, reference, held_out, step),
            }
        with tf.io.gfile.GFile(os.path.join(out_dir, f"{kind}.tflite"), "wb") as f:
            f.write(content)
        record["files"][kind] = figures
        log(_check_line(kind, len(content), split, figures))
    with tf.io.gfile.GFile(os.path.join(out_dir, CHECK_FILE), "w") as f:
        f.write(json.dumps(record, indent=1) + "\n")
    return record
