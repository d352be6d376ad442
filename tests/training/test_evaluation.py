"""training/core/evaluation.py: the one best-checkpoint rule the trainer and the eval job share, and the one
evaluation record."""

import json

import keras
import numpy as np
import tensorflow as tf

from configs import tiny
from efficientnet import ema as ema_lib
from tests.training.conftest import plan_of
from training.core import evaluation
from training.store import checkpoints, logs


def _model_and_ema(value):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="zeros")])
    model.layers[0].kernel.assign(np.full((2, 1), value, np.float32))
    return model, ema_lib.ExponentialMovingAverage(ema_lib.ema_variables(model))


def _record(step, top_1):
    return logs.evaluation_record(step, "minival", {"top_1": top_1, "top_5": 1.0, "loss": 1.0, "num_examples": 4})


def _archived_kernel(model_dir):
    reader = tf.train.load_checkpoint(checkpoints.archived_prefix(model_dir))
    return [
        reader.get_tensor(k)
        for k in reader.get_variable_to_shape_map()
        if k.startswith("model/") and k.endswith("VARIABLE_VALUE") and "kernel" in k
    ][0]


def test_only_a_higher_top_1_replaces_the_best_and_archives_its_weights(tmp_path):
    selector = evaluation.BestSelector(str(tmp_path), "minival")
    assert selector.best is None
    assert selector.consider(_record(10, 0.5), str(tmp_path), *_model_and_ema(1.0))
    assert not selector.consider(_record(20, 0.5), str(tmp_path), *_model_and_ema(2.0))  # a tie keeps the first
    assert not selector.consider(_record(30, 0.4), str(tmp_path), *_model_and_ema(3.0))
    assert selector.best["step"] == 10 and selector.evals_since_best == 2
    np.testing.assert_array_equal(_archived_kernel(str(tmp_path)), np.full((2, 1), 1.0))
    assert selector.consider(_record(40, 0.6), str(tmp_path), *_model_and_ema(4.0))
    assert selector.evals_since_best == 0
    np.testing.assert_array_equal(_archived_kernel(str(tmp_path)), np.full((2, 1), 4.0))
    assert json.loads((tmp_path / "archive" / checkpoints.BEST_EVAL_FILE).read_text())["step"] == 40


def test_a_restart_takes_the_archived_record_back_without_writing_it_again(tmp_path):
    """Killed after archiving, before the metrics line: the same step's record is the best again, unarchived."""
    evaluation.BestSelector(str(tmp_path), "minival").consider(_record(10, 0.5), str(tmp_path), *_model_and_ema(1.0))
    for step, top_1 in ((20, 0.3), (30, 0.2)):  # metrics.jsonl after the best: early stopping counts them
        logs.RunLog(str(tmp_path)).evaluation(_record(step, top_1))
    restarted = evaluation.BestSelector(str(tmp_path), "minival")
    assert restarted.best["step"] == 10 and restarted.evals_since_best == 2
    assert restarted.consider(_record(10, 0.5), str(tmp_path), *_model_and_ema(9.0))
    np.testing.assert_array_equal(_archived_kernel(str(tmp_path)), np.full((2, 1), 1.0))  # not rewritten


def test_a_record_that_names_its_weights_states_its_input(tmp_path):
    config = tiny.get_config()
    config.runtime.model_dir = str(tmp_path)
    plan = plan_of(config, 8)
    metrics = {"top_1": 0.5, "top_5": 1.0, "loss": 1.0, "num_examples": 4}
    in_training = evaluation.record(plan, 4, "minival", metrics)
    named = evaluation.record(plan, 4, "validation", metrics, weights="archive/best")
    assert "image_size" not in in_training and "weights" not in in_training and in_training["ema"] is True
    assert (named["weights"], named["image_size"], named["crop_fraction"]) == (
        "archive/best",
        plan.image_size,
        plan.crop_fraction,
    )
    assert evaluation.record(plan, 0, "validation", metrics, weights="w.h5", ema=False)["ema"] is False
