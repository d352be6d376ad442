"""Fine-tuning from a 1000-class model on mock CIFAR-10 (tfds.testing.mock_data, no network), then predict."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from configs import transfer
from tests.training.conftest import TINY_MODEL, plan_of
from training.core import recipe
from training.core import state as state_lib
from training.serving import scoring
from training.session import run

pytestmark = pytest.mark.slow


def _cifar_config(model_dir, **fields):
    config = transfer.get_config("cifar10")
    for dotted, value in {
        **TINY_MODEL,
        "train.batch_size": 8,
        "eval.batch_size": 8,
        "train.steps": 2,
        "train.iterations_per_loop": 2,
        "eval.steps_per_eval": 2,
        "data.holdout_fraction": 0.25,
        "data.augment_name": "none",
        "runtime.model_dir": str(model_dir),
        **fields,
    }.items():
        section, field = dotted.split(".")
        config[section][field] = value
    return config


def test_fine_tune_from_a_1000_class_model_replaces_the_head_and_keeps_the_backbone(tmp_path):
    source_config = _cifar_config(tmp_path / "unused")
    source = plan_of(source_config).network.inference(1000).build()
    source.save_weights(str(tmp_path / "imagenet.weights.h5"))

    with tfds.testing.mock_data(num_examples=16):
        config = _cifar_config(
            tmp_path / "run",
            **{
                "runtime.init_checkpoint": str(tmp_path / "imagenet.weights.h5"),
                "train.freeze_backbone": True,
                "runtime.mode": "train",
            },
        )
        run.run(config)
        tuned = scoring.inference_model(
            plan_of(config).network.inference(10), tf.train.latest_checkpoint(str(tmp_path / "run"))
        )

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
    ((path, top),) = result["predictions"]
    assert path.endswith("cat.jpg") and len(top) == 5
    assert {name for name, _ in top} <= set(tfds.builder("cifar10").info.features["label"].names)
    assert all(a[1] >= b[1] for a, b in zip(top, top[1:])) and 0 < sum(p for _, p in top) <= 1.0001


def _backbone_values(model):
    return {v.path: v.numpy() for layer in model.layers if layer.name != "predictions" for v in layer.weights}


def _untouched_mean_squares(config, prefix):
    """{variable path: whether RMSProp's mean-square slot still holds its initial 1} in a training checkpoint."""
    state = state_lib.build_state(
        dataclasses.replace(plan_of(config, 10), schedule=recipe.Schedule(1, 4, 4)), tf.distribute.get_strategy()
    )
    tf.train.Checkpoint(model=state.model, optimizer=state.optimizer).read(prefix).expect_partial()
    return {
        variable.path: bool(np.all(slot.numpy() == 1.0))
        for variable, slot in zip(state.optimizer._trainable_variables, state.optimizer._mean_squares)
    }


def test_head_warm_up_trains_the_classifier_first_then_every_layer(tmp_path):
    source_config = _cifar_config(tmp_path / "unused")
    source = plan_of(source_config).network.inference(1000).build()
    source.save_weights(str(tmp_path / "imagenet.weights.h5"))
    pretrained = _backbone_values(source)

    with tfds.testing.mock_data(num_examples=16):  # the mock train split: 2 steps of 8 images per epoch
        config = _cifar_config(
            tmp_path / "run",
            **{
                "runtime.init_checkpoint": str(tmp_path / "imagenet.weights.h5"),
                "runtime.mode": "train",
                "train.freeze_backbone_epochs": 1.0,
                "train.steps": 4,
                "runtime.checkpoint_steps": 2,
                "eval.steps_per_eval": 4,
            },
        )
        run.run(config)
    after_warm_up = scoring.inference_model(plan_of(config).network.inference(10), str(tmp_path / "run" / "ckpt-2"))
    at_end = scoring.inference_model(plan_of(config).network.inference(10), str(tmp_path / "run" / "ckpt-4"))

    for path, value in _backbone_values(after_warm_up).items():  # the EMA of unchanged weights is the weights
        np.testing.assert_array_equal(value, pretrained[path], err_msg=path)
    changed = [p for p, v in _backbone_values(at_end).items() if not np.array_equal(v, pretrained[p])]
    assert len(changed) > len(pretrained) // 2
    assert not np.array_equal(
        after_warm_up.get_layer("predictions").kernel.numpy(), at_end.get_layer("predictions").kernel.numpy()
    )
    # RMSProp's slots of the frozen layers were not decayed by zero gradients during the warm-up.
    warm_up_slots = _untouched_mean_squares(config, str(tmp_path / "run" / "ckpt-2"))
    assert {path for path, untouched in warm_up_slots.items() if not untouched} == {
        "predictions/kernel",
        "predictions/bias",
    }
    end_slots = _untouched_mean_squares(config, str(tmp_path / "run" / "ckpt-4"))
    assert sum(not untouched for untouched in end_slots.values()) > len(end_slots) // 2
