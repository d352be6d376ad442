"""training/state.py build_state: model.classifier_init decides a new classifier, a weights file's own wins."""
import numpy as np
import pytest
import tensorflow as tf

from configs import finetune
from tests.training.conftest import tiny_config
from training import checks, recipe, state as state_lib
from training.errors import UserError


def _state(tmp_path, init, init_checkpoint=None, num_classes=4):
    config = tiny_config(tmp_path / "run", str(tmp_path / "cache"), **{"model.classifier_init": init})
    return state_lib.build_state(config, num_classes, recipe.Schedule(1, 4, 4), tf.distribute.get_strategy(),
                                 init_checkpoint=init_checkpoint, log=lambda _: None)


def _pretrained(tmp_path, num_classes):
    config = tiny_config(tmp_path / "unused", str(tmp_path / "cache"))
    source = state_lib.build_model(config, num_classes)
    path = str(tmp_path / f"pretrained{num_classes}.weights.h5")
    source.save_weights(path)
    return source, path


def test_zeros_gives_a_new_head_of_zeros_over_the_pretrained_backbone(tmp_path):
    source, path = _pretrained(tmp_path, 1000)
    model = _state(tmp_path, "zeros", path).model
    dense = model.get_layer("predictions")
    assert dense.kernel.shape[-1] == 4
    assert not np.any(dense.kernel.numpy()) and not np.any(dense.bias.numpy())
    np.testing.assert_array_equal(model.get_layer("top_conv").kernel.numpy(),
                                  source.get_layer("top_conv").kernel.numpy())


def test_a_matching_head_in_the_weights_file_is_loaded_whatever_the_option(tmp_path):
    source, path = _pretrained(tmp_path, 4)
    dense = _state(tmp_path, "zeros", path).model.get_layer("predictions")
    np.testing.assert_array_equal(dense.kernel.numpy(), source.get_layer("predictions").kernel.numpy())


def test_original_keeps_the_reference_uniform_init(tmp_path):
    kernel = _state(tmp_path, "original").model.get_layer("predictions").kernel.numpy()
    assert np.abs(kernel).max() <= 0.5 and np.abs(kernel).max() > 0.25  # U(+-1/sqrt(4))


def test_an_unknown_init_is_refused(tmp_path):
    config = tiny_config(tmp_path / "run", str(tmp_path / "cache"), **{"model.classifier_init": "he"})
    with pytest.raises(UserError, match="classifier_init"):
        checks.validate_config(config)


def test_the_finetune_preset_is_valid():
    checks.validate_config(finetune.get_config())
