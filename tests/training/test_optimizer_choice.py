"""config.train.optimizer (training/core/state.py build_optimizer) and the config checks of the new fields."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from efficientnet import losses, optim
from tests.conftest import tiny_config
from tests.training.conftest import plan_of
from training import checks
from training.core import recipe
from training.core import state as state_lib
from training.errors import UserError

_SCHEDULE = recipe.Schedule(steps_per_epoch=10, total_steps=20, steps_per_eval=10)


def _state(tmp_path, **overrides):
    config = tiny_config(tmp_path / "run", str(tmp_path / "cache"), **overrides)
    checks.validate_config(config)
    return state_lib.build_state(
        dataclasses.replace(plan_of(config, 4), schedule=_SCHEDULE), tf.distribute.get_strategy(), log=lambda _: None
    )


def _one_step(state, seed=0):
    """One update with fixed random gradients (no data needed)."""
    rng = np.random.default_rng(seed)
    grads = [tf.constant(rng.normal(size=v.shape), v.dtype) for v in state.model.trainable_variables]
    state.optimizer.apply_gradients(zip(grads, state.model.trainable_variables))


@pytest.mark.parametrize(
    "name, kind, momentum",
    [
        ("rmsprop", optim.RMSPropTF, 0.8),
        ("momentum", optim.MomentumTF, 0.8),
        ("sgd", tf.keras.optimizers.SGD, 0.0),
        ("lars", optim.LARS, 0.8),
        ("adamw", tf.keras.optimizers.AdamW, None),
    ],
)
def test_each_optimizer_is_built_from_the_config(tmp_path, name, kind, momentum):
    state = _state(tmp_path, **{"train.optimizer": name, "train.momentum": 0.8})
    assert isinstance(state.optimizer, kind)
    if momentum is not None:
        assert state.optimizer.momentum == pytest.approx(momentum)  # plain gradient descent has none


def test_lars_adapts_all_but_batchnorm_and_biases_as_the_originals_skip_list(tmp_path):
    state = _state(tmp_path, **{"train.optimizer": "lars"})
    adapted = {v.path for v, on in zip(state.model.trainable_variables, state.optimizer._adapted) if on}
    skipped = {v.path for v, on in zip(state.model.trainable_variables, state.optimizer._adapted) if not on}
    assert adapted and all(path.endswith("kernel") for path in adapted)
    assert any(path.endswith("gamma") for path in skipped) and any(path.endswith("bias") for path in skipped)


def test_adamw_decays_all_but_batchnorm(tmp_path):
    state = _state(
        tmp_path, **{"train.optimizer": "adamw", "train.decoupled_weight_decay": 0.5, "train.warmup_epochs": 0.0}
    )
    decayed = {id(v) for v in losses.weight_decay_variables(state.model)}
    before = [v.numpy().copy() for v in state.model.trainable_variables]
    zeros = [tf.zeros_like(v) for v in state.model.trainable_variables]
    state.optimizer.apply_gradients(zip(zeros, state.model.trainable_variables))  # only the decay moves weights
    lr = float(state.learning_rate(0))
    for variable, old in zip(state.model.trainable_variables, before):
        expected = old * (1 - lr * 0.5) if id(variable) in decayed else old
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-6, atol=1e-7, err_msg=variable.path)
    assert len(decayed) < len(before)  # the tiny model has BatchNorm variables that were left alone


def test_adamw_slots_resume_from_a_checkpoint(tmp_path):
    overrides = {"train.optimizer": "adamw", "train.decoupled_weight_decay": 0.01}
    first = _state(tmp_path, **overrides)
    _one_step(first)
    _one_step(first, seed=1)
    prefix = tf.train.Checkpoint(model=first.model, optimizer=first.optimizer).write(str(tmp_path / "ckpt"))
    second = _state(tmp_path, **overrides)
    tf.train.Checkpoint(model=second.model, optimizer=second.optimizer).read(prefix).assert_consumed()
    assert second.step == 2
    for saved, restored in zip(first.optimizer.variables, second.optimizer.variables):
        np.testing.assert_array_equal(saved.numpy(), restored.numpy())
    _one_step(first, seed=2)
    _one_step(second, seed=2)  # the restored state takes exactly the step the original takes
    for a, b in zip(first.model.trainable_variables, second.model.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("train.optimizer", "adam", "optimizer='adam' is not one of rmsprop, momentum, sgd, lars, adamw"),
        ("train.adam_beta_2", 1.0, "adam_beta_2 must be in"),
        ("train.decoupled_weight_decay", -0.1, "decoupled_weight_decay must be >= 0"),
        ("data.crop_area_range", (0.5, 0.2), "crop_area_range must be"),
        ("data.crop_area_range", (0.5, 1.5), "crop_area_range must be"),
        ("data.crop_area_range", (0.0, 1.0), "crop_area_range must be"),
        ("data.crop_aspect_ratio_range", (2.0, 0.5), "crop_aspect_ratio_range must be"),
    ],
)
def test_bad_optimizer_and_crop_fields_are_one_line_errors(tmp_path, field, value, match):
    config = tiny_config(tmp_path, str(tmp_path))
    section, key = field.split(".")
    config[section][key] = value
    with pytest.raises(UserError, match=match) as info:
        checks.validate_config(config)
    assert "\n" not in str(info.value)


def test_crop_ranges_accept_the_lists_config_json_holds(tmp_path):
    config = tiny_config(tmp_path, str(tmp_path))
    config.data.crop_area_range = (0.25, 1.0)
    config.data.crop_aspect_ratio_range = (0.5, 2.0)
    checks.validate_config(config)
    checks._check_range_pair([0.25, 1.0], "crop_area_range", upper=1.0)
