r"""The original's checkpoint evaluator, with its flags: the top 5 classes of an image, or top-1/top-5 on ImageNet
validation files.

    python eval_ckpt_main.py --model_name=efficientnet-b0 --ckpt_dir=efficientnet-b0 --example_img=panda.jpg \
        --labels_map_file=labels_map.json
    python eval_ckpt_main.py --runmode=imagenet --ckpt_dir=runs/b0 --imagenet_eval_glob='val/ILSVRC2012*.JPEG' \
        --imagenet_eval_label=val_labels.txt --num_images=-1

Flags, defaults and output lines are tensorflow/tpu models/official/efficientnet/eval_ckpt_main.py's (lines
35-55 at 7dc921f846c9e4071f3884b768a7ddf521272a49); the work is training/session/original_scripts.py
`eval_ckpt` on the project's loading and preprocessing. A mistake is one line "error: ..." and exit status 2.
"""

import os
import sys

# As main.py: TensorFlow's C++ INFO/WARNING lines would drown the output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402  (after the environment is set)

from training.session import original_scripts  # noqa: E402  (no TensorFlow until the work starts)


def define_flags(flag_values):
    """The original's flags (eval_ckpt_main.py:35-55), same names and defaults, on `flag_values`."""
    flags.DEFINE_string(
        "model_name",
        "efficientnet-b0",
        "Model name to eval (efficientnet-b0 ... or this project's b0 ...).",
        flag_values=flag_values,
    )
    flags.DEFINE_string("runmode", "examples", "Running mode: examples or imagenet.", flag_values=flag_values)
    flags.DEFINE_string(
        "imagenet_eval_glob",
        None,
        "Imagenet eval image glob, such as /imagenet/ILSVRC2012*.JPEG (sorted).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "imagenet_eval_label",
        None,
        "Imagenet eval label file path, one integer label a line, such as "
        "/imagenet/ILSVRC2012_validation_ground_truth.txt.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "ckpt_dir",
        "/tmp/ckpt/",
        "The weights: a directory of original TF1 checkpoints (its latest), a model_dir of this project (its best, "
        "else latest checkpoint), a checkpoint prefix, or a Keras .h5 file.",
        flag_values=flag_values,
    )
    flags.DEFINE_boolean(
        "enable_ema",
        True,
        "Enable exponential moving average (false: the raw trained variables).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "export_ckpt",
        None,
        "Write the weights used (EMA or raw) to PATH.weights.h5 (PATH when it ends so), a Keras weights file "
        "main.py --init_checkpoint loads. The original wrote a TF1 checkpoint of the eval graph.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "example_img", "/tmp/panda.jpg", "Filepath for a single example image.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "labels_map_file",
        "/tmp/labels_map.txt",
        'Labels map from label id to its meaning, JSON {"0": "tench, Tinca tinca", ...}. Left at its default and '
        "missing: the model's class names (ImageNet's for 1000/1001 classes).",
        flag_values=flag_values,
    )
    flags.DEFINE_bool(
        "include_background_label",
        False,
        "Whether to include background as label #0 (printed and scored indices are the model's minus 1).",
        flag_values=flag_values,
    )
    flags.DEFINE_bool(
        "advprop_preprocessing",
        False,
        "Whether to use AdvProp preprocessing (not implemented here: true is refused).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "num_images", 5000, "Number of images to eval. Use -1 to eval all images.", flag_values=flag_values
    )


def request(flag_values):
    """The parsed flags as the request training/session/original_scripts.py runs."""
    return original_scripts.request_from_flags(original_scripts.EvalCkptRequest, flag_values)


def main(argv):
    del argv
    logging.set_verbosity(logging.ERROR)  # as the original (eval_ckpt_main.py:103)
    sys.exit(original_scripts.run_command(original_scripts.eval_ckpt, request(flags.FLAGS)))


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    app.run(main, flags_parser=lambda argv: original_scripts.parse_flags(argv, flags.FLAGS))
