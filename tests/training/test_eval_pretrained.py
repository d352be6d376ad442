"""--mode=eval and --mode=export on published weights (here a Keras 3 .weights.h5 of the tiny network) with no
--model_dir."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from data import pipeline, sources
from tests.conftest import tiny_config
from tests.training.conftest import plan_of
from training.errors import UserError
from training.session import run, startup

pytestmark = pytest.mark.slow


def _eval_config(demo_cache, weights, **overrides):
    return tiny_config(
        None,
        demo_cache,
        **{"runtime.model_dir": None, "runtime.mode": "eval", "runtime.init_checkpoint": weights, **overrides},
    )


def _published(config, num_classes, path):
    """A model whose classifier is far from any fresh initialization, saved to `path`: an evaluation that
    scored anything but these weights (e.g. EMA shadows of a random initialization) gets another loss."""
    model = plan_of(config, num_classes).network.inference().build()
    head = model.get_layer("predictions")
    rng = np.random.default_rng(0)
    head.set_weights([rng.normal(size=w.shape).astype(w.dtype) for w in head.get_weights()])
    model.save_weights(path)
    return model


def _scores(model, config, cache_dir):
    """Top-1 and mean cross-entropy of `model` on the eval split, computed eagerly without training/."""
    dataset = pipeline.make_dataset(
        sources.get_source(cache_dir=cache_dir),
        config.data.eval_split,
        plan_of(config).eval_input,
        batch_size=config.eval.batch_size,
    )
    hits = loss = count = 0.0
    for batch in dataset:
        logits = model(batch["images"], training=False)
        labels, mask = batch["labels"].numpy(), batch["mask"].numpy()
        per_example = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        hits += float(np.sum((np.argmax(logits, axis=-1) == labels) * mask))
        loss += float(np.sum(np.asarray(per_example) * mask))
        count += float(mask.sum())
    return hits / count, loss / count


def test_eval_scores_published_weights_as_stored_in_a_fresh_run_dir(tmp_path, demo_cache, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default run directory is runs/<variant>-<time> under the working directory
    weights = str(tmp_path / "published.weights.h5")
    config = _eval_config(demo_cache, weights)
    model = _published(config, 8, weights)

    summary = run.run(config)

    top_1, loss = _scores(model, config, demo_cache)
    final = summary["final_eval"]
    assert final["num_examples"] == 320 and final["top_1"] == pytest.approx(top_1, abs=1e-6)
    assert final["loss"] == pytest.approx(loss, rel=1e-4)
    model_dir = summary["model_dir"]
    assert model_dir.startswith("runs" + os.sep) and final["ema"] is False and final["weights"] == weights
    with open(os.path.join(model_dir, "metrics.jsonl")) as f:
        assert [json.loads(line) for line in f] == [final]
    with open(os.path.join(model_dir, "config.json")) as f:
        assert json.load(f)["runtime"]["init_checkpoint"] == weights
    assert weights in run.final_line(summary)


def test_eval_refuses_weights_with_another_class_count_in_one_line(tmp_path, demo_cache, monkeypatch):
    monkeypatch.chdir(tmp_path)
    weights = str(tmp_path / "with_background.weights.h5")
    config = _eval_config(demo_cache, weights)
    _published(config, 9, weights)  # 8 demo classes + a background class 0, like the original checkpoints

    with pytest.raises(UserError) as error:
        run.run(config)

    message = str(error.value)
    assert "\n" not in message and "has 9 classes but the data has 8" in message
    assert "--config.data.include_background=true" in message
    assert not os.path.exists(tmp_path / "runs")  # nothing written for a refused command


def test_export_of_published_weights_needs_neither_data_nor_model_dir(tmp_path, demo_cache, monkeypatch):
    monkeypatch.chdir(tmp_path)
    weights, export_dir = str(tmp_path / "published.weights.h5"), str(tmp_path / "served")
    config = _eval_config(
        demo_cache,
        weights,
        **{
            "runtime.mode": "export",
            "runtime.export_dir": export_dir,
            "data.cache_dir": str(tmp_path / "no_demo_data"),
        },
    )
    model = _published(config, 9, weights)  # a class count no data source here has: it comes from the file

    summary = run.run(config)

    version = os.path.basename(summary["export_dir"])  # a numeric version folder, as TF Serving watches
    assert os.path.dirname(summary["export_dir"]) == export_dir and version.isdigit()
    assert os.listdir(export_dir) == [version]
    assert not os.path.exists(tmp_path / "no_demo_data")
    images = tf.random.uniform([2, 32, 32, 3], 0, 255, seed=1)
    served = tf.saved_model.load(summary["export_dir"]).signatures["serving_images"](images=images)["probabilities"]
    np.testing.assert_allclose(served.numpy(), tf.nn.softmax(model(images, training=False)).numpy(), atol=1e-6)


def test_published_weights_on_the_demo_data_get_its_holdout_not_the_recipes(tmp_path, demo_cache):
    import ml_collections  # pylint: disable=import-outside-toplevel

    from tests.conftest import resolve_command_line  # pylint: disable=import-outside-toplevel

    weights = tmp_path / "W.h5"
    weights.write_bytes(b"")  # setup only checks that it exists; the demo source is what is tested
    args = [
        "--mode=eval",
        "--model=b0",
        f"--init_checkpoint={weights}",
        f"--model_dir={tmp_path / 'run'}",
        f"--config.data.cache_dir={demo_cache}",
    ]
    config, _, user_fields = resolve_command_line(args)
    ctx = startup.setup(ml_collections.ConfigDict(config), user_fields=user_fields)
    assert ctx.config.data.holdout_shards == 2 and ctx.source.num_examples("minival") == 160
    config, _, user_fields = resolve_command_line(
        [*args, "--config.data.holdout_shards=3"]
    )  # the user's own holdout wins
    assert (
        startup.setup(ml_collections.ConfigDict(config), user_fields=user_fields).source.num_examples("minival") == 240
    )
