"""eval_ckpt_main.py as a command: the original's flags and defaults, its output lines on this project's model_dir
(top 5 against a plain Keras call on the same pixels), and one-line refusals before TensorFlow loads."""

import json

import numpy as np
import pytest
from absl import flags

import eval_ckpt_main
from tests.conftest import eval_probabilities, run_script, without_tensorflow
from tests.data.conftest import write_image
from training.session import original_scripts


def test_the_flags_and_defaults_are_the_originals():
    flag_values = flags.FlagValues()
    eval_ckpt_main.define_flags(flag_values)
    flag_values(["eval_ckpt_main.py"])
    request = original_scripts.request_from_flags(original_scripts.EvalCkptRequest, flag_values)
    # tensorflow/tpu eval_ckpt_main.py:35-55 at 7dc921f
    assert request == original_scripts.EvalCkptRequest(
        model_name="efficientnet-b0",
        runmode="examples",
        ckpt_dir="/tmp/ckpt/",
        enable_ema=True,
        export_ckpt=None,
        example_img="/tmp/panda.jpg",
        labels_map_file="/tmp/labels_map.txt",
        include_background_label=False,
        advprop_preprocessing=False,
        num_images=5000,
        imagenet_eval_glob=None,
        imagenet_eval_label=None,
    )
    flag_values(["eval_ckpt_main.py", "--noenable_ema", "--labels_map_file=m.json", "--num_images=-1"])
    request = original_scripts.request_from_flags(original_scripts.EvalCkptRequest, flag_values)
    assert (request.enable_ema, request.num_images) == (False, -1)
    assert request.given == {"enable_ema", "labels_map_file", "num_images"}


@pytest.mark.slow
def test_examples_prints_the_originals_lines_with_the_models_top_5(tiny_run, tmp_path):
    model_dir, raw, _ = tiny_run
    image = str(tmp_path / "panda.jpg")
    write_image(image, 41)
    labels_map = tmp_path / "labels_map.json"
    labels_map.write_text(json.dumps({str(i): f"label {i}" for i in range(8)}))
    process = run_script(
        "eval_ckpt_main.py",
        [
            f"--ckpt_dir={model_dir}",
            f"--example_img={image}",
            f"--labels_map_file={labels_map}",
            "--enable_ema=false",
            f"--export_ckpt={tmp_path / 'w'}",
        ],
        timeout=300,
    )
    assert process.returncode == 0, process.stderr[-2000:]
    assert process.stderr == ""  # TensorFlow's start-up notices are filtered
    expected = eval_probabilities(raw, [image])[0]
    order = np.argsort(-expected)[:5]
    lines = process.stdout.splitlines()
    assert lines[0] == f"weights written to {tmp_path / 'w.weights.h5'} (python main.py --init_checkpoint loads them)"
    assert lines[1] == f"predicted class for image {image}: "
    for j, (line, index) in enumerate(zip(lines[2:], order)):
        head, name = line.split("): ")
        assert head.startswith(f"  -> top_{j} (") and name == f"label {index}  "
        assert abs(float(head.split("(")[1].rstrip("%")) - 100 * expected[index]) < 0.006
    assert len(lines) == 7


@pytest.mark.slow
def test_imagenet_with_a_background_label_scores_the_models_index_minus_one(tiny_run, tmp_path):
    model_dir, _, averaged = tiny_run
    paths = [str(tmp_path / f"ILSVRC2012_val_{i:08d}.JPEG") for i in range(4)]
    for i, path in enumerate(paths):
        write_image(path, 60 + i)
    top = np.argsort(-eval_probabilities(averaged, paths), axis=1)
    labels = [top[0, 0] - 1, top[1, 3] - 1, top[2, 6] - 1, top[3, 0]]  # hit, top-5 only, miss, miss (no shift)
    (tmp_path / "labels.txt").write_text("".join(f"{label}\n" for label in labels))
    process = run_script(
        "eval_ckpt_main.py",
        [
            "--runmode=imagenet",
            f"--ckpt_dir={model_dir}",
            f"--imagenet_eval_glob={tmp_path / '*.JPEG'}",
            f"--imagenet_eval_label={tmp_path / 'labels.txt'}",
            "--include_background_label",
        ],
        timeout=300,
    )
    assert process.returncode == 0, process.stderr[-2000:]
    assert process.stdout.splitlines() == [
        "Step 0: top1_acc = 100.00%  top5_acc = 100.00%",
        "Final: top1_acc = 25.00%  top5_acc = 50.00%",
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--bogus"], "error: Unknown command line flag 'bogus'"),
        (["--runmode=train"], "error: must specify runmode: examples or imagenet (--runmode=train)"),
        (["--advprop_preprocessing"], "error: --advprop_preprocessing is not implemented here"),
        (["--num_images=many"], "error: flag --num_images=many: invalid literal for int() with base 10: 'many'"),
        (["photo.jpg"], "error: unexpected arguments photo.jpg (eval_ckpt_main.py takes flags only)"),
    ],
)
def test_bad_flags_are_one_line_before_tensorflow_loads(args, message, tmp_path):
    process = run_script("eval_ckpt_main.py", args, timeout=120, env=without_tensorflow(tmp_path))
    assert process.returncode == 2 and process.stdout == ""
    assert process.stderr.count("\n") == 1 and process.stderr.startswith(message), process.stderr


def test_the_tensorflow_stand_in_fails_a_command_that_loads_tensorflow(tmp_path):
    """Positive control for the check above: a valid command line reaches the work, which imports TensorFlow."""
    process = run_script(
        "eval_ckpt_main.py", ["--ckpt_dir=/nonexistent"], timeout=120, env=without_tensorflow(tmp_path)
    )
    assert process.returncode != 0 and "tensorflow was imported" in process.stderr
