"""Fine-tuning from a 1000-class model on mock CIFAR-10 (tfds.testing.mock_data, no network), then predict."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from configs import transfer
from tests.training.conftest import TINY_MODEL
from training import export, run, state as state_lib

pytestmark = pytest.mark.slow


def _cifar_config(model_dir, **fields):
    config = transfer.get_config("cifar10")
    for dotted, value in {**TINY_MODEL, "train.batch_size": 8, "eval.batch_size": 8, "train.steps": 2,
                          "train.iterations_per_loop": 2, "eval.steps_per_eval": 2, "data.holdout_fraction": 0.25,
                          "data.augment_name": "none",
                          "runtime.model_dir": str(model_dir), **fields}.items():
        section, field = dotted.split(".")
        config[section][field] = value
    return config


def test_fine_tune_from_a_1000_class_model_replaces_the_head_and_keeps_the_backbone(tmp_path):
    source_config = _cifar_config(tmp_path / "unused")
    source = state_lib.build_model(source_config, 1000)
    source.save_weights(str(tmp_path / "imagenet.weights.h5"))

    with tfds.testing.mock_data(num_examples=16):
        config = _cifar_config(tmp_path / "run", **{"runtime.init_checkpoint": str(tmp_path / "imagenet.weights.h5"),
                                                  "train.freeze_backbone": True, "runtime.mode": "train"})
        run.run(config)
        tuned = export.load_inference_model(config, 10, tf.train.latest_checkpoint(str(tmp_path / "run")))

        assert tuned.get_layer("predictions").kernel.shape == (tuned.get_layer("predictions").kernel.shape[0], 10)
        backbone = [layer for layer in source.layers if layer.weights and layer.name != "predictions"]
        assert len(backbone) > 10
        for layer in backbone:
            for expected, got in zip(layer.get_weights(), tuned.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(got, expected, err_msg=layer.name)

        image = tf.io.encode_jpeg(tf.cast(tf.random.uniform([40, 50, 3], 0, 255), tf.uint8)).numpy()
        (tmp_path / "cat.jpg").write_bytes(image)
        predicting = _cifar_config(tmp_path / "run", **{"runtime.mode": "predict"})
        result = run.run(predicting, image_files=[str(tmp_path / "cat.jpg")])
    (path, top), = result["predictions"]
    assert path.endswith("cat.jpg") and len(top) == 5
    assert {name for name, _ in top} <= set(tfds.builder("cifar10").info.features["label"].names)
    assert all(a[1] >= b[1] for a, b in zip(top, top[1:])) and 0 < sum(p for _, p in top) <= 1.0001
