"""Shared fixtures for training tests: demo data generated once, the tiny run's model fields, the command line of a
resumable tiny run, and readers of what a run wrote."""

import json
import os

import pytest
import tensorflow as tf

from configs import tiny
from tests.conftest import tiny_flags


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory):
    """One demo-data cache for the whole session (generation takes a few seconds)."""
    from data import demo as demo_data

    cache = tmp_path_factory.mktemp("demo_cache")
    demo_data.ensure_demo_data(str(cache))
    return str(cache)


# The model fields of configs/tiny.py: a 7-block, 32-px network (the code path is b0's).
TINY_MODEL = {
    f"model.{field}": getattr(tiny.get_config().model, field)
    for field in ("width_coefficient", "depth_coefficient", "image_size")
}


def plan_of(config, num_classes=None, **kwargs):
    """The run plan of `config` (training/core/recipe.py make_plan), with model.num_classes set to `num_classes`
    when given; kwargs: make_plan's (source, strategy, jit_compile)."""
    from training.core import recipe  # pylint: disable=import-outside-toplevel

    if num_classes is not None:
        config.model.num_classes = num_classes
    return recipe.make_plan(config, **kwargs)


def wait_for_line(process, predicate):
    """Reads stdout until a line satisfies `predicate`; True then, False if the process ended first."""
    return any(predicate(line) for line in process.stdout)


def checkpoint_values(prefix):
    """Every model, optimizer and EMA tensor of a checkpoint (not the iterator or the save counter)."""
    reader = tf.train.load_checkpoint(prefix)
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if not name.startswith(("iterator", "save_counter", "_CHECKPOINTABLE_OBJECT_GRAPH"))
    }


def metrics_records(model_dir):
    with open(os.path.join(model_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def resumable_flags(model_dir, cache_dir, steps):
    """The tiny run (tests/conftest.py tiny_flags) as the kill and resume tests run it: --mode=train evaluating
    minival in the training job (every 4 steps), `steps` steps in host loops of 2, a checkpoint every 2 steps,
    deterministic with seed 7."""
    return tiny_flags(
        model_dir,
        cache_dir,
        "--mode=train",
        "--config.eval.in_training=true",
        "--iterations_per_loop=2",
        "--steps_per_eval=4",
        "--config.runtime.checkpoint_steps=2",
        f"--train_steps={steps}",
        "--deterministic",
        "--seed=7",
    )
