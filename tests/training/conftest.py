"""Shared fixtures for training tests: demo data generated once, and a tiny config that traces quickly."""
import pytest

from configs import tiny


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory):
    """One demo-data cache for the whole session (generation takes a few seconds)."""
    from data import demo as demo_data
    cache = tmp_path_factory.mktemp("demo_cache")
    demo_data.ensure_demo_data(str(cache))
    return str(cache)


# The model fields of configs/tiny.py: a 7-block, 32-px network (the code path is b0's).
TINY_MODEL = {f"model.{field}": getattr(tiny.get_config().model, field)
              for field in ("width_coefficient", "depth_coefficient", "image_size")}


def tiny_config(model_dir, cache_dir, **overrides):
    """configs/tiny.py with this test's model_dir and demo cache.

    overrides: "section.field" -> value, e.g. {"train.steps": 9}.
    """
    config = tiny.get_config()
    config.data.cache_dir = cache_dir
    config.runtime.model_dir = str(model_dir)
    for dotted, value in overrides.items():
        section, field = dotted.split(".")
        config[section][field] = value
    return config


def plan_of(config, num_classes=None, **kwargs):
    """The run plan of `config` (training/core/recipe.py make_plan), with model.num_classes set to `num_classes`
    when given; kwargs: make_plan's (source, strategy, jit_compile)."""
    from training.core import recipe  # pylint: disable=import-outside-toplevel
    if num_classes is not None:
        config.model.num_classes = num_classes
    return recipe.make_plan(config, **kwargs)
