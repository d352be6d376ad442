"""Shared fixtures for training tests: demo data generated once, and a tiny config that traces quickly."""
import pytest

from configs import demo


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory):
    """One demo-data cache for the whole session (generation takes a few seconds)."""
    from data import demo as demo_data
    cache = tmp_path_factory.mktemp("demo_cache")
    demo_data.ensure_demo_data(str(cache))
    return str(cache)


# A 7-block, 32-px network that traces in seconds (the code path is the same as b0's).
TINY_MODEL = {"model.width_coefficient": 0.1, "model.depth_coefficient": 0.1, "model.image_size": 32}


def tiny_config(model_dir, cache_dir, **overrides):
    """The demo config shrunk to a 7-block, 32-px network that traces in seconds.

    overrides: "section.field" -> value, e.g. {"train.steps": 9}.
    """
    config = demo.get_config()
    for dotted, value in TINY_MODEL.items():
        section, field = dotted.split(".")
        config[section][field] = value
    config.data.cache_dir = cache_dir
    config.train.batch_size = 8
    config.train.steps = 6
    config.train.iterations_per_loop = 3
    config.eval.batch_size = 32
    config.eval.steps_per_eval = 3
    config.runtime.model_dir = str(model_dir)
    for dotted, value in overrides.items():
        section, field = dotted.split(".")
        config[section][field] = value
    return config
