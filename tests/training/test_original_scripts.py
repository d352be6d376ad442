"""training/session/original_scripts.py, in process: eval_ckpt_main's and export_model's requests (built by the
root scripts' own flag definitions) on this project's model_dir and on an original TF1 checkpoint. EMA and raw
weights each give their own model's probabilities; the .tflite files run in the TFLite interpreter against
Keras; every refusal is one line."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

import eval_ckpt_main
import export_model
from data import demo as demo_data
from tests.conftest import eval_probabilities, tiny_config
from tests.data.conftest import write_image
from tests.efficientnet.tpu_checkpoint_writer import write_tpu_checkpoint
from tests.training.conftest import plan_of
from training.errors import UserError
from training.serving import export, tflite
from training.session import original_scripts

pytestmark = pytest.mark.slow


def _request(script, kind, *args):
    """The request `script`'s flags give for the command line `args`."""
    flag_values = flags.FlagValues()
    script.define_flags(flag_values)
    flag_values([f"{script.__name__}.py", *args])
    return original_scripts.request_from_flags(kind, flag_values)


def _eval_request(*args):
    return _request(eval_ckpt_main, original_scripts.EvalCkptRequest, *args)


def _export_request(*args):
    return _request(export_model, original_scripts.ExportModelRequest, *args)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("example") / "panda.jpg")
    write_image(path, 77)
    return path


def _printed_top5(lines):
    """(indices as names "shape i" -> i, percentages) from the original's example lines."""
    names, percents = [], []
    for line in lines[1:]:
        head, name = line.strip().split(": ", 1)
        percents.append(float(head.split("(")[1].rstrip("%)")))
        names.append(name)
    return names, percents


def _check_top5(lines, probabilities, names):
    order = np.argsort(-probabilities)[:5]
    got_names, got_percents = _printed_top5(lines)
    assert got_names == [names[i] for i in order]
    np.testing.assert_allclose(got_percents, 100 * probabilities[order], atol=0.006)


def _default_labels_map(request, tmp_path):
    """`request` as if --labels_map_file were left at a default path where no file is (the real default,
    /tmp/labels_map.txt, may hold one on this machine)."""
    assert "labels_map_file" not in request.given
    return dataclasses.replace(request, labels_map_file=str(tmp_path / "labels_map.txt"))


def test_ema_and_raw_weights_of_our_run_each_give_their_models_top5(tiny_run, image, tmp_path):
    model_dir, raw, averaged = tiny_run
    results = {}
    for flag in ("--enable_ema=true", "--enable_ema=false"):
        lines = []
        request = _eval_request(f"--ckpt_dir={model_dir}", f"--example_img={image}", flag)
        summary = original_scripts.eval_ckpt(_default_labels_map(request, tmp_path), out=lines.append)
        assert lines[0] == f"predicted class for image {image}: " and len(lines) == 6
        results[flag] = (lines, summary["predictions"][0])
    names = {i: f"shape {i}" for i in range(8)}  # the run's class_names.txt: the labels map is left at its default
    _check_top5(results["--enable_ema=true"][0], eval_probabilities(averaged, [image])[0], names)
    _check_top5(results["--enable_ema=false"][0], eval_probabilities(raw, [image])[0], names)
    assert results["--enable_ema=true"][1] != results["--enable_ema=false"][1]


def test_labels_map_given_is_read_and_a_missing_given_one_refused(tiny_run, image, tmp_path):
    model_dir, _, averaged = tiny_run
    labels_map = tmp_path / "labels_map.json"
    labels_map.write_text(json.dumps({str(i): f"label {i}" for i in range(8)}))
    lines = []
    original_scripts.eval_ckpt(
        _eval_request(f"--ckpt_dir={model_dir}", f"--example_img={image}", f"--labels_map_file={labels_map}"),
        out=lines.append,
    )
    _check_top5(lines, eval_probabilities(averaged, [image])[0], {i: f"label {i}" for i in range(8)})
    missing = tmp_path / "labels_map.txt"
    with pytest.raises(UserError, match=f"--labels_map_file {missing}: no such file"):
        original_scripts.eval_ckpt(
            _eval_request(f"--ckpt_dir={model_dir}", f"--example_img={image}", f"--labels_map_file={missing}")
        )


def test_export_ckpt_writes_the_weights_used_and_they_reload(tiny_run, image, tmp_path):
    model_dir, raw, _ = tiny_run
    request = _eval_request(
        f"--ckpt_dir={model_dir}", f"--example_img={image}", "--enable_ema=false", f"--export_ckpt={tmp_path / 'raw'}"
    )
    summary = original_scripts.eval_ckpt(request, out=lambda line: None)
    assert summary["export_ckpt"] == str(tmp_path / "raw.weights.h5")
    again = original_scripts.eval_ckpt(
        _eval_request(f"--ckpt_dir={summary['export_ckpt']}", f"--example_img={image}"),
        base_config=tiny_config(tmp_path / "unused", str(tmp_path / "cache")),
        out=lambda line: None,
    )
    assert again["predictions"][0][0] == summary["predictions"][0][0]
    np.testing.assert_allclose(again["predictions"][0][1], summary["predictions"][0][1], atol=1e-6)
    np.testing.assert_allclose(
        sorted(again["predictions"][0][1], reverse=True),
        np.sort(eval_probabilities(raw, [image])[0])[::-1][:5],
        atol=1e-5,
    )


def test_imagenet_runmode_takes_the_sorted_globs_first_files(tiny_run, tmp_path):
    model_dir, _, averaged = tiny_run
    paths = [str(tmp_path / "val" / f"ILSVRC2012_val_{i:08d}.JPEG") for i in range(7)]
    for i, path in enumerate(reversed(paths)):  # written in the reverse order: the glob is sorted
        write_image(path, 500 + i)
    order = np.argsort(-eval_probabilities(averaged, paths[:5]), axis=1)
    labels = [int(order[i, 0 if i < 3 else 6]) for i in range(5)] + [0, 0]  # 3 hits at top-1, then 2 misses
    (tmp_path / "labels.txt").write_text("".join(f"{label}\n" for label in labels))
    args = [
        f"--ckpt_dir={model_dir}",
        "--runmode=imagenet",
        f"--imagenet_eval_glob={tmp_path / 'val' / '*.JPEG'}",
        f"--imagenet_eval_label={tmp_path / 'labels.txt'}",
    ]
    lines = []
    summary = original_scripts.eval_ckpt(_eval_request(*args, "--num_images=5"), out=lines.append)
    assert (summary["top1"], summary["top5"]) == (60.0, 60.0)
    assert lines == ["Step 0: top1_acc = 100.00%  top5_acc = 100.00%", "Final: top1_acc = 60.00%  top5_acc = 60.00%"]
    (tmp_path / "labels.txt").write_text("1\n2\n")
    with pytest.raises(UserError, match="has 2 labels, fewer than the 7 images"):
        original_scripts.eval_ckpt(_eval_request(*args, "--num_images=-1"))


def test_original_checkpoint_directory_loads_its_latest_checkpoint_ema_or_raw(tmp_path, image, capsys):
    config = tiny_config(tmp_path / "unused", str(tmp_path / "cache"))
    network = plan_of(config, 5).network.inference()
    raw, averaged = network.build(), network.build()
    for model, scale in ((raw, 2.0), (averaged, 4.0)):
        head = model.get_layer("predictions")
        head.set_weights([np.random.default_rng(7).normal(scale=scale, size=w.shape) for w in head.get_weights()])
    write_tpu_checkpoint(averaged, str(tmp_path / "ckpt"), step=100)  # an older checkpoint...
    write_tpu_checkpoint(raw, str(tmp_path / "ckpt"), ema_model=averaged, step=200)  # ...and the latest
    names = {i: f"class {i}" for i in range(5)}  # 5 classes, no names: the project numbers them
    for flag, model in (("--enable_ema=true", averaged), ("--enable_ema=false", raw)):
        lines = []
        original_scripts.eval_ckpt(
            _default_labels_map(
                _eval_request(f"--ckpt_dir={tmp_path / 'ckpt'}", f"--example_img={image}", flag), tmp_path
            ),
            base_config=tiny_config(tmp_path / "unused", str(tmp_path / "cache")),
            out=lines.append,
        )
        _check_top5(lines, eval_probabilities(model, [image])[0], names)
    assert "ExponentialMovingAverage" not in capsys.readouterr().out
    write_tpu_checkpoint(raw, str(tmp_path / "no_shadows"))
    original_scripts.eval_ckpt(
        _eval_request(f"--ckpt_dir={tmp_path / 'no_shadows'}", f"--example_img={image}"),
        base_config=tiny_config(tmp_path / "unused", str(tmp_path / "cache")),
        out=lambda line: None,
    )
    assert "holds no ExponentialMovingAverage shadows; its raw weights are used" in capsys.readouterr().out
    os.remove(tmp_path / "ckpt" / "checkpoint")
    with pytest.raises(UserError, match=f"^--ckpt_dir {tmp_path / 'ckpt'}: no checkpoint in that directory$"):
        original_scripts.eval_ckpt(_eval_request(f"--ckpt_dir={tmp_path / 'ckpt'}", f"--example_img={image}"))


def test_refusals_are_one_line(tiny_run, image, tmp_path):
    model_dir, _, _ = tiny_run
    for args, message in (
        ([f"--ckpt_dir={tmp_path / 'nothing'}"], "no such directory, checkpoint or .h5 file"),
        ([f"--ckpt_dir={model_dir}", f"--example_img={tmp_path / 'none.jpg'}"], "no such file"),
        (["--advprop_preprocessing"], "not implemented"),
        (["--runmode=train"], "must specify runmode: examples or imagenet"),
        (["--runmode=imagenet"], "needs --imagenet_eval_glob"),
        (["--model_name=efficientnet-b9"], "unknown --model_name .*efficientnet-b0, efficientnet-b1"),
    ):
        with pytest.raises(UserError, match=message) as error:
            original_scripts.eval_ckpt(_eval_request(*args))
        assert "\n" not in str(error.value)
    with pytest.raises(UserError, match="Post training quantization requires data_dir") as error:
        original_scripts.export_model(_export_request("--model_name=b0", "--ckpt_dir=x", "--output_tflite=y"))
    assert "\n" not in str(error.value)


def test_a_model_name_other_than_the_runs_is_noted_and_the_runs_network_used(tiny_run, image, capsys):
    model_dir, _, _ = tiny_run
    original_scripts.eval_ckpt(
        _eval_request("--model_name=efficientnet-b3", f"--ckpt_dir={model_dir}", f"--example_img={image}"),
        out=lambda line: None,
    )
    assert "note: using model.variant=b0 of the run" in capsys.readouterr().out


def _run_tflite(path, images):
    with open(path, "rb") as f:
        return tflite.run_file(f.read(), images)


def test_float_export_agrees_with_the_keras_model_and_writes_the_saved_model(tiny_run, image, tmp_path):
    model_dir, _, averaged = tiny_run
    path, saved = str(tmp_path / "float.tflite"), str(tmp_path / "saved")
    lines = []
    summary = original_scripts.export_model(
        _export_request(
            "--model_name=efficientnet-b0",
            f"--ckpt_dir={model_dir}",
            f"--output_tflite={path}",
            "--quantize=false",
            "--image_size=32",
            f"--output_saved_model_dir={saved}",
        ),
        out=lines.append,
    )
    assert lines[-1] == f"tflite model written to {path}" and summary["bytes"] == os.path.getsize(path)
    pixels = np.stack([export.eval_preprocessing(plan_of(tiny_config(model_dir, "x"), 8))(open(image, "rb").read())])
    probabilities, classes = _run_tflite(path, pixels)
    expected = tf.nn.softmax(averaged(pixels, training=False)).numpy()
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)
    assert classes[0] == expected[0].argmax()
    loaded = tf.saved_model.load(saved)
    assert {"serving_default", "serving_images", "serving_features", "class_names"} <= set(loaded.signatures)


def test_quantized_export_of_an_original_checkpoint_calibrates_on_data_of_other_classes(tmp_path, demo_cache):
    # The recipe's minival of 20 shards, more than the demo data's 16: calibration holds nothing out.
    config = tiny_config(tmp_path / "unused", demo_cache, **{"data.holdout_shards": 20})
    model = plan_of(config, 5).network.inference().build()
    write_tpu_checkpoint(model, str(tmp_path / "ckpt"), ema_model=model)
    path = str(tmp_path / "quant.tflite")
    original_scripts.export_model(
        _export_request(
            "--model_name=efficientnet-b0",
            f"--ckpt_dir={tmp_path / 'ckpt'}",
            f"--output_tflite={path}",
            f"--data_dir={demo_data.ensure_demo_data(demo_cache)}",  # 8 classes; the weights have 5
            "--num_steps=4",
            "--batch_size=2",
            "--image_size=32",
        ),
        base_config=config,
        out=lambda line: None,
    )
    with open(path, "rb") as f:
        runner = tflite.interpreter_class()(model_content=f.read()).get_signature_runner(tflite.SIGNATURE)
    assert runner.get_input_details()["images"]["dtype"] == np.uint8
    assert runner.get_output_details()["probabilities"]["shape"].tolist() == [1, 5]


def test_endpoint_export_holds_that_endpoint_of_the_raw_weights(tiny_run, image, tmp_path):
    model_dir, raw, _ = tiny_run
    path = str(tmp_path / "endpoint.tflite")
    args = ["--model_name=b0", f"--ckpt_dir={model_dir}", f"--output_tflite={path}", "--quantize=false"]
    original_scripts.export_model(
        _export_request(*args, "--image_size=32", "--endpoint_name=reduction_2", "--enable_ema=false"),
        out=lambda line: None,
    )
    plan = plan_of(tiny_config(model_dir, "x"), 8)
    pixels = np.stack([export.eval_preprocessing(plan)(open(image, "rb").read())])
    with open(path, "rb") as f:
        runner = tflite.interpreter_class()(model_content=f.read()).get_signature_runner(tflite.SIGNATURE)
    got = runner(images=pixels)["reduction_2"]
    layer = export.endpoint_layers(plan.network.variant)["reduction_2"]
    expected = tf.keras.Model(raw.input, raw.get_layer(layer).output)(pixels, training=False).numpy()
    assert got.shape == expected.shape == (1, 8, 8, expected.shape[-1])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    with pytest.raises(
        UserError, match="'stem' is not available here; the endpoints are reduction_1, .*pooled_features"
    ):
        original_scripts.export_model(_export_request(*args, "--image_size=32", "--endpoint_name=stem"))
