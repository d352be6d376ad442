"""training/serving/tflite.py's one-file writer (`write_file`) and its streamed calibration images
(`StreamedImages`), as export_model.py uses them: a float32 and a full-integer file of a tiny SavedModel, run by
the TFLite interpreter."""

import os

import numpy as np
import pytest

from data import sources
from tests.conftest import tiny_config
from tests.training.conftest import plan_of
from training.serving import export, tflite

pytestmark = pytest.mark.slow

NUM_CLASSES = 8


@pytest.fixture(scope="module")
def saved(tmp_path_factory, demo_cache):
    """(plan, Keras model, source, SavedModel directory) of a tiny network with a peaked classifier."""
    tmp = tmp_path_factory.mktemp("tflite")
    plan = plan_of(tiny_config(tmp / "run", demo_cache), NUM_CLASSES)
    model = plan.network.inference().build()
    head = model.get_layer("predictions")
    rng = np.random.default_rng(0)
    head.set_weights([rng.normal(scale=3.0, size=w.shape).astype(w.dtype) for w in head.get_weights()])
    model.save_weights(str(tmp / "tiny.weights.h5"))
    source = sources.get_source(cache_dir=demo_cache)
    directory = export.export_saved_model(
        plan, str(tmp / "tiny.weights.h5"), str(tmp / "saved"), source=source, log=lambda line: None
    )
    return plan, model, source, directory


def test_streamed_images_are_the_sampled_images_on_every_pass(saved):
    plan, _, source, _ = saved
    stream = tflite.StreamedImages(plan, source, "validation", 40)
    first, second = np.stack(list(stream)), np.stack(list(stream))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, tflite.sample_images(plan, source, "validation", 40))
    assert first.shape == (40, plan.image_size, plan.image_size, 3)


def test_write_file_writes_one_float_file_that_agrees_with_keras(saved, tmp_path):
    plan, model, source, directory = saved
    path = str(tmp_path / "model.tflite")
    size = tflite.write_file(directory, "float32", path)
    assert os.path.getsize(path) == size > 0
    assert os.listdir(tmp_path) == ["model.tflite"]  # no temporary left beside it
    images = tflite.sample_images(plan, source, "validation", 16)
    with open(path, "rb") as f:
        probabilities, classes = tflite.run_file(f.read(), images)
    expected = tflite.keras_probabilities(model, images)
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)
    np.testing.assert_array_equal(classes, expected.argmax(axis=1))


def test_write_file_writes_a_full_integer_file_calibrated_on_streamed_images(saved, tmp_path):
    plan, _, source, directory = saved
    path = str(tmp_path / "quant.tflite")
    tflite.write_file(directory, "full_integer_int8", path, tflite.StreamedImages(plan, source, "validation", 20))
    with open(path, "rb") as f:
        runner = tflite.interpreter_class()(model_content=f.read()).get_signature_runner(tflite.SIGNATURE)
    assert runner.get_input_details()["images"]["dtype"] == np.uint8
    assert runner.get_output_details()["probabilities"]["dtype"] == np.uint8
