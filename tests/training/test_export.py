"""training/serving/export.py and training/serving/tflite.py: the SavedModel's signatures, class names and input checks
(in a fresh process, as a server would load it), and the .tflite files run by the TFLite interpreter against Keras.

One export of the tiny network (a classifier with large random weights, so that the probabilities are far from uniform
and the argmax means something) is shared by the module."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from data import sources
from tests.conftest import tiny_config
from tests.training.conftest import plan_of
from training.errors import UserError
from training.serving import export, tflite
from training.store import labels

NUM_CLASSES = 8


def _weights(config, path):
    """A float32 tiny model with a peaked classifier, saved as a Keras weights file (exported as stored)."""
    model = plan_of(config, NUM_CLASSES).network.inference().build()
    head = model.get_layer("predictions")
    rng = np.random.default_rng(0)
    head.set_weights([rng.normal(scale=3.0, size=w.shape).astype(w.dtype) for w in head.get_weights()])
    model.save_weights(path)
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory, demo_cache):
    tmp = tmp_path_factory.mktemp("export")
    config = tiny_config(
        tmp / "run",
        demo_cache,
        **{"runtime.export_tflite": True, "runtime.tflite_check_images": 64, "runtime.tflite_calibration_images": 32},
    )
    model = _weights(config, str(tmp / "tiny.weights.h5"))
    source = sources.get_source(cache_dir=demo_cache)
    lines = []
    export_dir = export.export_saved_model(
        plan_of(config, NUM_CLASSES), str(tmp / "tiny.weights.h5"), str(tmp / "served"), source=source, log=lines.append
    )
    return config, model, source, export_dir, lines


def _validation_jpegs(source, count):
    records = tf.data.TFRecordDataset(source.files("validation")).take(count)
    feature = {"image/encoded": tf.io.FixedLenFeature([], tf.string)}
    return [tf.io.parse_single_example(r, feature)["image/encoded"].numpy() for r in records]


_SERVER = """
import json, sys
import numpy as np, tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
jpegs = list(np.load(sys.argv[2], allow_pickle=True))
images = np.load(sys.argv[3])
serve_images = loaded.signatures["serving_images"]
first = serve_images(images=tf.constant(images))
by_bytes = loaded.signatures["serving_default"](image_bytes=tf.constant(jpegs))
bad = {"rank 3": images[0], "rank 5": images[None], "size 16": images[:, :16, :16],
       "size 64": np.zeros([2, 64, 64, 3], np.float32), "3 channels missing": images[..., :1],
       "NaN": np.where(np.arange(images.size).reshape(images.shape) == 7, np.nan, images).astype(np.float32),
       "Inf": np.full_like(images, np.inf)}
outcome = {}
for name, batch in bad.items():
    try:
        serve_images(images=tf.constant(batch))
        outcome[name] = "answered"
    except tf.errors.InvalidArgumentError as e:
        outcome[name] = "rejected: " + ("names the shape" if "must be float32" in str(e) else
                                        "names NaN" if "NaN or Inf" in str(e) else "other")
try:
    loaded.signatures["serving_default"](image_bytes=tf.constant([b"not an image"]))
    outcome["undecodable"] = "answered"
except tf.errors.InvalidArgumentError:
    outcome["undecodable"] = "rejected"
again = serve_images(images=tf.constant(images))["probabilities"].numpy()
names = [n.decode() for n in loaded.signatures["class_names"]()["class_names"].numpy()]
np.savez(sys.argv[4], p_images=first["probabilities"].numpy(), p_bytes=by_bytes["probabilities"].numpy(),
         classes=first["classes"].numpy(), top_k_classes=first["top_k_classes"].numpy(),
         top_k_probabilities=first["top_k_probabilities"].numpy(), again=again)
print(json.dumps({"outcome": outcome, "names": names}))
"""


@pytest.mark.slow
def test_saved_model_serves_checks_inputs_and_survives_bad_calls_in_a_fresh_process(exported, tmp_path):
    config, model, source, export_dir, _ = exported
    jpegs = _validation_jpegs(source, 4)
    images = np.stack([export.eval_preprocessing(plan_of(config))(j).numpy() for j in jpegs])
    expected = tf.nn.softmax(model(images, training=False)).numpy()
    np.save(tmp_path / "jpegs.npy", np.array(jpegs, dtype=object), allow_pickle=True)
    np.save(tmp_path / "images.npy", images)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _SERVER,
            export_dir,
            str(tmp_path / "jpegs.npy"),
            str(tmp_path / "images.npy"),
            str(tmp_path / "out.npz"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-2000:]  # a bad call must not kill the process
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["outcome"] == {
        "rank 3": "rejected: names the shape",
        "rank 5": "rejected: names the shape",
        "size 16": "rejected: names the shape",
        "size 64": "rejected: names the shape",
        "3 channels missing": "rejected: names the shape",
        "NaN": "rejected: names NaN",
        "Inf": "rejected: names NaN",
        "undecodable": "rejected",
    }
    assert report["names"] == list(source.class_names)
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_allclose(out["p_images"], expected, atol=1e-5)
    np.testing.assert_allclose(out["p_bytes"], expected, atol=1e-5)
    np.testing.assert_array_equal(out["again"], out["p_images"])  # the next good call after the bad ones
    np.testing.assert_array_equal(out["classes"], expected.argmax(axis=1))  # argmax [N], as the original
    order = np.argsort(-expected, axis=1)[:, :5]
    np.testing.assert_array_equal(out["top_k_classes"], order)
    np.testing.assert_allclose(out["top_k_probabilities"], np.take_along_axis(expected, order, 1), atol=1e-5)


@pytest.mark.slow
def test_class_names_asset_and_progress_lines(exported):
    _, _, source, export_dir, lines = exported
    with open(os.path.join(export_dir, "assets", export.CLASS_NAMES_ASSET), encoding="utf-8") as f:
        assert f.read().splitlines() == list(source.class_names)
    assert any(line.startswith("export: tracing") for line in lines)
    assert sum(line.startswith("tflite: converting") for line in lines) == 3
    assert not [p for p in os.listdir(os.path.dirname(export_dir)) if ".tmp-" in p]


@pytest.mark.slow
def test_tflite_files_match_the_keras_model_in_the_interpreter(exported):
    config, model, source, export_dir, _ = exported
    folder = os.path.join(export_dir, tflite.TFLITE_DIR)
    with open(os.path.join(folder, tflite.CHECK_FILE)) as f:
        check = json.load(f)
    assert check["split"] == "validation" and check["images"] == 64 and check["calibration_images"] == 32
    images = tflite.sample_images(plan_of(config), source, "validation", 64)
    expected = tflite.keras_probabilities(model, images)
    contents = {}
    for kind in tflite.KINDS:
        with open(os.path.join(folder, f"{kind}.tflite"), "rb") as f:
            contents[kind] = f.read()
        assert check["files"][kind]["bytes"] == len(contents[kind])
    # The float file computes what Keras computes, up to float32 rounding in other kernels.
    probabilities, classes = tflite.run_file(contents["float32"], images)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    np.testing.assert_array_equal(classes, expected.argmax(axis=1))
    assert check["files"]["float32"]["max_probability_difference"] <= 1e-5
    # int8 files: smaller, integer input/output where promised, and close to the float model.
    interpreter = tflite.interpreter_class()(model_content=contents["full_integer_int8"])
    assert interpreter.get_input_details()[0]["dtype"] == np.uint8
    assert len(contents["dynamic_range_int8"]) < len(contents["float32"])
    for kind in ("dynamic_range_int8", "full_integer_int8"):
        probabilities, classes = tflite.run_file(contents[kind], images)
        agreement = float(np.mean(classes == expected.argmax(axis=1)))
        assert agreement == pytest.approx(check["files"][kind]["top1_agreement"])
        top_two = np.sort(expected, axis=1)[:, -2:]
        step = check["files"][kind]["resolution"]
        assert check["files"][kind]["near_ties"] == int(np.sum(top_two[:, 1] - top_two[:, 0] < step))
        assert agreement >= 0.8, kind
        assert np.max(np.abs(probabilities - expected)) < 0.2, kind
    assert check["files"]["full_integer_int8"]["resolution"] == pytest.approx(1 / 256)
    assert check["files"]["float32"]["resolution"] == 0.0


def test_tflite_export_refuses_before_any_work_without_data_or_with_bad_counts(tmp_path):
    config = tiny_config(tmp_path, str(tmp_path), **{"runtime.export_tflite": True})
    with pytest.raises(UserError, match="needs data"):
        tflite.check_can_convert(config, None)
    config.runtime.tflite_check_images = 0
    with pytest.raises(UserError, match="tflite_check_images must be a positive integer"):
        tflite.check_can_convert(config, object())


def test_quantization_round_trip_of_pixels():
    details = {"dtype": np.uint8, "quantization": (1.0, 0)}
    pixels = np.array([0.0, 0.4, 127.6, 255.0, 300.0], np.float32)
    np.testing.assert_array_equal(tflite._quantize(pixels, details), [0, 0, 128, 255, 255])
    out = {"dtype": np.uint8, "quantization": (1 / 256, 0)}
    np.testing.assert_allclose(tflite._dequantize(np.array([0, 128, 255], np.uint8), out), [0, 0.5, 255 / 256])


@pytest.mark.slow
def test_imagenet_names_travel_with_a_1000_class_export_and_a_failed_export_changes_nothing(
    tmp_path, demo_cache, monkeypatch
):
    config = tiny_config(tmp_path / "run", demo_cache, **{"runtime.model_dir": None})
    plan_of(config, 1000).network.inference().build().save_weights(str(tmp_path / "w.weights.h5"))
    export_dir = export.export_saved_model(
        plan_of(config, 1000), str(tmp_path / "w.weights.h5"), str(tmp_path / "served"), log=lambda line: None
    )
    with open(os.path.join(export_dir, "assets", export.CLASS_NAMES_ASSET), encoding="utf-8") as f:
        names = f.read().splitlines()
    assert names == labels.imagenet_class_names(1000) and names[0] == "tench, Tinca tinca"
    before = {name: open(os.path.join(export_dir, name), "rb").read() for name in ("saved_model.pb",)}

    def broken(*args, **kwargs):
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(tflite, "write_tflite_files", broken)
    config.runtime.export_tflite = True
    with pytest.raises(RuntimeError, match="converter crashed"):
        export.export_saved_model(
            plan_of(config, 1000),
            str(tmp_path / "w.weights.h5"),
            export_dir,
            class_names=names,
            source=object(),
            log=lambda line: None,
        )
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p or ".old-" in p]
    assert {name: open(os.path.join(export_dir, name), "rb").read() for name in before} == before
    assert not os.path.exists(os.path.join(export_dir, tflite.TFLITE_DIR))


def _dense_of(model, features):
    """The classifier applied by hand (numpy) to pooled features: the oracle that they are its input."""
    kernel, bias = model.get_layer("predictions").get_weights()
    return np.asarray(features) @ kernel + bias


@pytest.mark.slow
def test_serving_features_are_the_pooled_input_of_the_classifier(exported):
    config, model, source, export_dir, _ = exported
    images = np.stack([export.eval_preprocessing(plan_of(config))(j).numpy() for j in _validation_jpegs(source, 3)])
    loaded = tf.saved_model.load(export_dir)
    features = loaded.signatures["serving_features"](images=tf.constant(images))["features"]
    assert features.dtype == tf.float32 and features.shape == (3, model.get_layer("top_conv").filters)
    np.testing.assert_allclose(_dense_of(model, features), model(images, training=False).numpy(), atol=1e-4)
    with pytest.raises(tf.errors.InvalidArgumentError, match="must be float32"):
        loaded.signatures["serving_features"](images=tf.constant(images[:, :16]))


@pytest.mark.slow
def test_headless_export_from_mode_export_serves_pooled_features_only(tmp_path, demo_cache):
    weights = str(tmp_path / "published.weights.h5")
    config = tiny_config(
        None,
        demo_cache,
        **{
            "runtime.model_dir": None,
            "runtime.mode": "export",
            "runtime.init_checkpoint": weights,
            "runtime.export_headless": True,
            "runtime.export_dir": str(tmp_path / "served"),
            "runtime.export_versioned": False,  # the explicit option: into export_dir itself
        },
    )
    model = _weights(config, weights)
    from training.session import run  # pylint: disable=import-outside-toplevel

    run.run(config)
    loaded = tf.saved_model.load(str(tmp_path / "served"))
    assert set(loaded.signatures) == {"serving_default", "serving_features"}
    assert not os.path.exists(tmp_path / "served" / "assets" / export.CLASS_NAMES_ASSET)
    jpegs = _validation_jpegs(sources.get_source(cache_dir=demo_cache), 2)
    images = np.stack([export.eval_preprocessing(plan_of(config))(j).numpy() for j in jpegs])
    by_bytes = loaded.signatures["serving_default"](image_bytes=tf.constant(jpegs))["features"].numpy()
    by_images = loaded.signatures["serving_features"](images=tf.constant(images))["features"].numpy()
    np.testing.assert_allclose(by_bytes, by_images, atol=1e-5)
    np.testing.assert_allclose(_dense_of(model, by_images), model(images, training=False).numpy(), atol=1e-4)


def test_headless_export_with_tflite_is_refused_before_anything_is_written(tmp_path):
    config = tiny_config(tmp_path, str(tmp_path), **{"runtime.export_tflite": True, "runtime.export_headless": True})
    with pytest.raises(ValueError, match="headless export has no TFLite"):
        export.export_saved_model(
            plan_of(config, NUM_CLASSES),
            str(tmp_path / "none.weights.h5"),
            str(tmp_path / "served"),
            log=lambda line: None,
        )
    assert sorted(os.listdir(tmp_path)) == []


def test_tflite_notices_are_filtered_from_stderr_and_real_lines_kept_also_before_a_failure(capfd):
    def noisy(fail):
        with tflite.quiet():
            os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
            os.write(
                2, b"fully_quantize: 0, inference_type: 6, input_inference_type: UINT8, output_inference_type: UINT8\n"
            )
            os.write(2, b"a real problem\n")
            if fail:
                raise RuntimeError("conversion failed")

    noisy(False)
    with pytest.raises(RuntimeError):
        noisy(True)
    assert capfd.readouterr().err == "a real problem\na real problem\n"


def test_near_ties_are_counted_and_left_out_of_the_second_agreement(monkeypatch):
    reference = np.array([[0.5, 0.3, 0.2], [0.34, 0.33, 0.33], [0.1, 0.2, 0.7]], np.float32)
    got = np.array([[0.5, 0.3, 0.2], [0.33, 0.33, 0.33], [0.1, 0.2, 0.7]], np.float32)
    monkeypatch.setattr(tflite, "run_file", lambda content, images: (got, np.array([0, 0, 1])))
    figures = tflite.compare(b"", reference, None, resolution=1 / 64)
    assert figures["near_ties"] == 1  # row 1: 0.34 - 0.33 < 1/64
    assert figures["top1_agreement"] == pytest.approx(2 / 3)
    assert figures["top1_agreement_without_near_ties"] == pytest.approx(1 / 2)  # rows 0 and 2: row 2 disagrees
    line = tflite._check_line("full_integer_int8", 2**20, "validation", {**figures, "resolution": 1 / 64})
    assert "1 near ties" in line and "50.00% on the other images" in line


def test_a_new_version_is_the_time_or_one_above_the_highest_and_dead_temporaries_go(tmp_path):
    for name in ("5", "17", "notes", "18.tmp-otherhost~1~2~3"):
        (tmp_path / name).mkdir()
    assert export.version_dir(str(tmp_path), now=10) == f"{tmp_path}/18"  # a clock behind the last version
    assert export.version_dir(str(tmp_path), now=1_800_000_000) == f"{tmp_path}/1800000000"
    dead = tmp_path / "19.tmp-x"  # no writer identity: an interrupted export of an earlier version
    dead.mkdir()
    export._sweep_dead_temporaries(str(tmp_path))  # pylint: disable=protected-access
    assert not dead.exists() and (tmp_path / "18.tmp-otherhost~1~2~3").exists()  # another host's: too young
