"""export_model.py as a command: the original's flags and defaults, one float .tflite file of this project's
model_dir that the TFLite interpreter runs in agreement with Keras, and one-line refusals (the original's own
message for --quantize without --data_dir) before TensorFlow loads."""

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

import export_model
from tests.conftest import run_script, tiny_config, without_tensorflow
from tests.data.conftest import write_image
from tests.training.conftest import plan_of
from training.serving import export, tflite
from training.session import original_scripts


def test_the_flags_and_defaults_are_the_originals():
    flag_values = flags.FlagValues()
    export_model.define_flags(flag_values)
    flag_values(["export_model.py"])
    # tensorflow/tpu export_model.py:28-43 at 7dc921f; --image_size is 224 whatever the model (line 39)
    assert original_scripts.request_from_flags(original_scripts.ExportModelRequest, flag_values) == (
        original_scripts.ExportModelRequest(
            model_name=None,
            ckpt_dir=None,
            enable_ema=True,
            data_dir=None,
            output_tflite=None,
            quantize=True,
            num_steps=2000,
            image_size=224,
            batch_size=1,
            endpoint_name=None,
            output_saved_model_dir=None,
        )
    )


@pytest.mark.slow
def test_float_file_runs_in_the_interpreter_and_agrees_with_keras(tiny_run, tmp_path):
    model_dir, _, averaged = tiny_run
    path = str(tmp_path / "b0_float.tflite")
    process = run_script(
        "export_model.py",
        [
            "--model_name=efficientnet-b0",
            f"--ckpt_dir={model_dir}",
            f"--output_tflite={path}",
            "--quantize=False",
            "--image_size=32",
        ],
        timeout=300,
    )
    assert process.returncode == 0, process.stderr[-2000:]
    assert process.stdout.splitlines()[-1] == f"tflite model written to {path}"
    assert "export-model-" not in process.stdout  # the temporary SavedModel the converter reads is not named
    images = []
    for i in range(6):
        write_image(str(tmp_path / f"{i}.jpg"), 90 + i)
        images.append(
            export.eval_preprocessing(plan_of(tiny_config(model_dir, "x"), 8))(
                tf.io.read_file(str(tmp_path / f"{i}.jpg"))
            )
        )
    images = np.stack(images)
    with open(path, "rb") as f:
        probabilities, classes = tflite.run_file(f.read(), images)
    expected = tf.nn.softmax(averaged(images, training=False)).numpy()
    np.testing.assert_array_equal(classes, expected.argmax(axis=1))
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--model_name=efficientnet-lite0", "--ckpt_dir=ckpt", "--output_tflite=lite0_quant.tflite"],
            "error: Post training quantization requires data_dir flag to point to the calibration dataset. To export "
            "a float model, set --quantize=False.\n",
        ),
        (["--ckpt_dir=ckpt", "--output_tflite=x.tflite"], "error: --model_name is required\n"),
        (["--model_name=lite0", "--output_tflite=x.tflite", "--quantize=false"], "error: --ckpt_dir is required\n"),
        (["--model_name=lite0", "--ckpt_dir=c", "--quantize=false"], "error: --output_tflite is required\n"),
        (["--quantize=maybe"], "error: flag --quantize=maybe: "),
        (
            ["--model_name=lite0", "--ckpt_dir=c", "--output_tflite=x", "--quantize=false", "--image_size=16"],
            "error: --image_size must be at least 32 (the network downsamples 32x), got 16\n",
        ),
    ],
)
def test_bad_command_lines_are_one_line_before_tensorflow_loads(args, message, tmp_path):
    process = run_script("export_model.py", args, timeout=120, env=without_tensorflow(tmp_path))
    assert (process.returncode, process.stdout) == (2, "")
    assert process.stderr.startswith(message) and process.stderr.count("\n") == 1, process.stderr
