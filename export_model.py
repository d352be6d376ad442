r"""The original's exporter, with its flags: one .tflite file (full-integer int8, or float32 with --quantize=false)
and optionally this project's SavedModel, from a checkpoint.

    python export_model.py --model_name=efficientnet-lite0 --ckpt_dir=efficientnet-lite0 \
        --data_dir=/path/to/representative_dataset/ --output_tflite=efficientnet-lite0_quant.tflite
    python export_model.py --model_name=efficientnet-lite0 --ckpt_dir=efficientnet-lite0 \
        --output_tflite=efficientnet-lite0_float.tflite --quantize=False

Flags and defaults are tensorflow/tpu models/official/efficientnet/export_model.py's (lines 28-43 at
7dc921f846c9e4071f3884b768a7ddf521272a49, --model_name, --ckpt_dir and --output_tflite required as its lines
161-163 mark them); the work is training/session/original_scripts.py `export_model` on the project's loading,
SavedModel export and TFLite converter. A mistake is one line "error: ..." and exit status 2.
"""

import os
import sys

# As main.py: TensorFlow's C++ INFO/WARNING lines would drown the output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402  (after the environment is set)

from training.session import original_scripts  # noqa: E402  (no TensorFlow until the work starts)


def define_flags(flag_values):
    """The original's flags (export_model.py:28-43), same names and defaults, on `flag_values`."""
    flags.DEFINE_string(
        "model_name",
        None,
        "Model name to eval (efficientnet-lite0 ... or this project's lite0 ...).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "ckpt_dir",
        None,
        "Path to the training checkpoint: a directory of original TF1 checkpoints (its latest), a model_dir of "
        "this project (its best, else latest checkpoint), a checkpoint prefix, or a Keras .h5 file.",
        flag_values=flag_values,
    )
    flags.DEFINE_boolean(
        "enable_ema",
        True,
        "Enable exponential moving average (false: the raw trained variables).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "data_dir",
        None,
        "Image dataset directory for post training quantization: ImageNet-format TFRecords or a folder of images "
        "per class (its validation images, else its training images).",
        flag_values=flag_values,
    )
    flags.DEFINE_string("output_tflite", None, "Path to output tflite file.", flag_values=flag_values)
    flags.DEFINE_bool(
        "quantize",
        True,
        "Quantize model to uint8 before exporting tflite model: full-integer int8 with uint8 input and output.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "num_steps",
        2000,
        "Number of post-training quantization calibration steps to run (of --batch_size images each).",
        flag_values=flag_values,
    )
    # 224 whatever --model_name says, as the original's flag (export_model.py:39): its command lines export the
    # same input size here.
    flags.DEFINE_integer("image_size", 224, "Size of the input image.", flag_values=flag_values)
    flags.DEFINE_integer("batch_size", 1, "Batch size of the calibration input.", flag_values=flag_values)
    flags.DEFINE_string(
        "endpoint_name",
        None,
        "Endpoint name: the .tflite file outputs this endpoint (reduction_1..5, features, head_1x1, "
        "pooled_features) instead of the probabilities.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "output_saved_model_dir",
        None,
        "Directory in which to save the saved_model (this project's SavedModel and its signatures).",
        flag_values=flag_values,
    )


def main(argv):
    del argv
    logging.set_verbosity(logging.ERROR)
    request = original_scripts.request_from_flags(original_scripts.ExportModelRequest, flags.FLAGS)
    sys.exit(original_scripts.run_command(original_scripts.export_model, request))


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    app.run(main, flags_parser=lambda argv: original_scripts.parse_flags(argv, flags.FLAGS))
