"""The trainer's input wiring (training/core/inputs.py, training/core/loop.py): the run's class count and
data.augment_on_device reach the pipeline and the step."""

import numpy as np
import pytest
import tensorflow as tf

from data import pipeline, sources
from tests.conftest import tiny_config
from tests.training.conftest import plan_of
from training.core import context, inputs
from training.errors import UserError


def _ctx(tmp_path, demo_cache, num_classes, **overrides):
    config = tiny_config(tmp_path, demo_cache, **overrides)
    source = sources.get_source(cache_dir=demo_cache)
    return context.RunContext(
        plan=plan_of(config, num_classes, source=source), strategy=tf.distribute.get_strategy(), source=source, log=None
    )


def test_labels_beyond_the_runs_class_count_are_counted_not_trained(tmp_path, demo_cache, monkeypatch):
    # The demo data has 8 classes; a run told it has 3 (--num_label_classes=3) must skip and count the rest.
    # The run is not deterministic, so its windows are unordered and bad records count over a reorder window: a
    # small one lets three batches show the count.
    monkeypatch.setattr(pipeline, "_reorder_window", lambda window, cycle: 16)
    ctx = _ctx(tmp_path, demo_cache, 3, **{"data.augment_name": "none", "data.max_bad_fraction": 1.0})
    dataset = inputs._train_dataset_fn(ctx, seed=0)(None, 8)
    batches = list(dataset.take(3))
    assert all(int(np.max(b["labels"])) < 3 for b in batches)
    assert int(np.max(batches[-1]["bad_records"])) > 0


def test_augment_on_device_ships_seeds_and_reaches_the_step_config(tmp_path, demo_cache):
    ctx = _ctx(tmp_path, demo_cache, 8, **{"data.augment_name": "autoaugment", "data.augment_on_device": True})
    element = inputs._train_dataset_fn(ctx, seed=0)(None, 8).element_spec
    assert element["images"].dtype == tf.uint8 and element["augment_seeds"].shape == (8, 2)
    cfg = ctx.plan.step
    assert cfg.augment_on_device and cfg.augment_name == "autoaugment"
    default = _ctx(tmp_path, demo_cache, 8)  # None: off (data/device_augment.py says why)
    assert "augment_seeds" not in inputs._train_dataset_fn(default, seed=0)(None, 8).element_spec
    assert not default.plan.step.augment_on_device


def test_eval_skips_labels_beyond_the_runs_class_count(tmp_path, demo_cache):
    ctx = _ctx(tmp_path, demo_cache, 3)
    labels = [
        int(label)
        for batch in inputs.eval_dataset(ctx, "minival")
        for label, real in zip(batch["labels"], batch["mask"])
        if real
    ]
    assert labels and max(labels) < 3 and len(labels) < ctx.source.num_examples("minival")


def test_eval_bad_record_stop_is_one_line():
    error = tf.errors.InvalidArgumentError(
        None, None, "{{node x}} assertion failed: [Too many bad records: 5 of the first 9 records were skipped]"
    )
    with pytest.raises(UserError) as caught, inputs.bad_records_as_user_error():
        raise error
    assert str(caught.value) == "Too many bad records: 5 of the first 9 records were skipped"
    other = tf.errors.InvalidArgumentError(None, None, "something else")
    with pytest.raises(tf.errors.InvalidArgumentError) as caught, inputs.bad_records_as_user_error():
        raise other
    assert caught.value is other
