"""configs/finetune.py: the fine-tuning preset is a valid, locked config that differs from configs/short.py only in
the new classifier's initialization, the weight averaging and the learning rate."""

import pytest

from configs import finetune, short
from training import checks


def test_finetune_preset_is_short_with_a_zero_head_no_averaging_and_a_quarter_rate():
    preset, base = finetune.get_config(), short.get_config()
    checks.validate_config(preset)
    changed = {
        (section, field): preset[section][field]
        for section in base
        for field in base[section]
        if preset[section][field] != base[section][field]
    }
    assert changed == {
        ("model", "classifier_init"): "zeros",
        ("train", "moving_average_decay"): 0.0,
        ("train", "base_learning_rate"): base.train.base_learning_rate / 4,
    }
    with pytest.raises(AttributeError):  # locked like every shipped config: a misspelt field is an error
        preset.train.moving_average = 0.5
