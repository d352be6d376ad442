"""configs/short.py: the short-run preset is a valid config that changes only the input side and run length."""

from configs import base, short
from training import checks


def test_short_preset_is_valid_and_keeps_the_recipe_elsewhere():
    preset, recipe = short.get_config(), base.get_config()
    checks.validate_config(preset)
    changed = {
        (section, field)
        for section in recipe
        for field in recipe[section]
        if preset[section][field] != recipe[section][field]
    }
    assert changed == {
        ("data", "augment_name"),
        ("data", "crop_area_range"),
        ("data", "crop_fraction"),
        ("train", "lr_schedule"),
        ("train", "warmup_epochs"),
        ("train", "moving_average_decay"),
    }
    assert preset.train.optimizer == "rmsprop" and preset.data.crop_area_range == (1.0, 1.0)
