"""Warm starts from a classifier run (this project's checkpoint, its EMA weights) into the headless and the
multi-scale models of efficientnet (training/core/warm_start.py)."""

import numpy as np
import pytest
import tensorflow as tf

import efficientnet
from efficientnet import ema as ema_lib
from training.core import warm_start

TINY = efficientnet.custom_variant(width=0.1, depth=0.1, resolution=32, name="tiny")


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    """(EMA averages by variable path, checkpoint prefix) of a 5-class classifier whose averages differ from its
    raw weights, saved as the trainer saves it (model and ema)."""
    trained = efficientnet.build_model(TINY, num_classes=5)
    ema = ema_lib.ExponentialMovingAverage(ema_lib.ema_variables(trained))
    rng = np.random.default_rng(0)
    for shadow in ema.shadows:
        shadow.assign(shadow + rng.normal(0.0, 0.1, shadow.shape).astype("float32"))
    averages = {v.path: s.numpy() for v, s in zip(ema_lib.ema_variables(trained), ema.shadows)}
    prefix = tf.train.Checkpoint(model=trained, ema=ema).write(str(tmp_path_factory.mktemp("run") / "ckpt-1"))
    return averages, prefix


@pytest.mark.parametrize("target", ["features", "pooled"])
def test_a_classifier_runs_ema_weights_warm_start_a_backbone(classifier_run, target):
    averages, prefix = classifier_run
    model = (
        efficientnet.build_feature_model(TINY)
        if target == "features"
        else efficientnet.build_model(TINY, include_top=False, pooling="avg")
    )
    message = warm_start.warm_start(model, prefix, lambda classes: efficientnet.build_model(TINY, num_classes=classes))
    assert "EMA weights" in message
    assert model.weights and all(w.path in averages for w in model.weights)
    for w in model.weights:
        np.testing.assert_array_equal(w.numpy(), averages[w.path], err_msg=w.path)
