"""training/serving/scoring.py `load_weights(use_ema=...)`: the EMA averages or the raw trained variables, from our
checkpoints and from original tensorflow/tpu TF1 checkpoints, on checkpoints where the two differ; a Keras file,
which holds one set of weights, refused for raw."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from efficientnet import ema as ema_lib
from tests.conftest import tiny_config
from tests.efficientnet.tpu_checkpoint_writer import write_tpu_checkpoint
from tests.training.conftest import plan_of
from training.errors import UserError
from training.serving import scoring

NUM_CLASSES = 5


def _network(tmp_path):
    return plan_of(tiny_config(tmp_path / "run", str(tmp_path / "cache")), NUM_CLASSES).network.inference()


def _two_models(network):
    """Two differently initialized models of `network`: the raw weights and the averages to store."""
    models = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        models.append(network.build())
    return models


def _assert_holds(model, expected):
    for got, want in zip(ema_lib.ema_variables(model), ema_lib.ema_variables(expected)):
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=got.path)


def _differ(a, b):
    return any(not np.array_equal(x.numpy(), y.numpy()) for x, y in zip(a.weights, b.weights))


def test_our_checkpoint_loads_its_averages_or_its_raw_variables(tmp_path):
    network = _network(tmp_path)
    raw, averaged = _two_models(network)
    ema = ema_lib.ExponentialMovingAverage(ema_lib.ema_variables(raw))
    for shadow, value in zip(ema.shadows, ema_lib.ema_variables(averaged)):
        shadow.assign(value)
    prefix = tf.train.Checkpoint(model=raw, ema=ema).write(str(tmp_path / "ckpt-4"))
    assert _differ(raw, averaged)

    with_ema = scoring.inference_model(network, prefix)  # the default: the averages
    without = scoring.inference_model(network, prefix, use_ema=False)
    _assert_holds(with_ema, averaged)
    _assert_holds(without, raw)


def test_original_checkpoint_loads_its_shadows_or_its_raw_variables(tmp_path):
    network = _network(tmp_path)
    raw, averaged = _two_models(network)
    write_tpu_checkpoint(raw, str(tmp_path / "original"), ema_model=averaged)
    assert _differ(raw, averaged)

    _assert_holds(scoring.inference_model(network, str(tmp_path / "original")), averaged)
    _assert_holds(scoring.inference_model(network, str(tmp_path / "original"), use_ema=False), raw)


def test_a_keras_file_has_no_raw_weights_to_choose(tmp_path):
    network = _network(tmp_path)
    model = network.build()
    path = str(tmp_path / "tiny.weights.h5")
    model.save_weights(path)
    _assert_holds(scoring.inference_model(network, path), model)
    with pytest.raises(UserError) as error:
        scoring.inference_model(network, path, use_ema=False)
    assert "\n" not in str(error.value) and "one set of weights" in str(error.value)
