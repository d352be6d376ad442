"""End-to-end training on demo data: metrics.jsonl, the archive, the SavedModel, resume, and 2 replicas.

These run the real loop (training/session/run.py) in-process on a tiny network; the SavedModel is checked in a fresh
process against the in-process model.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from data import preprocessing, sources
from tests.conftest import tiny_config
from tests.training.conftest import plan_of
from training.serving import scoring
from training.session import run
from training.store import checkpoints

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory, demo_cache):
    """A 6-step train_and_eval run with evaluation every 3 steps and an export at the end."""
    model_dir = tmp_path_factory.mktemp("run")
    config = tiny_config(model_dir, demo_cache)
    summary = run.run(config)
    return config, summary


def _metrics_lines(model_dir):
    with open(os.path.join(model_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_train_and_eval_writes_metrics_archive_and_config(trained):
    config, summary = trained
    model_dir = config.runtime.model_dir
    lines = _metrics_lines(model_dir)
    assert [(r["step"], r["split"]) for r in lines[:2]] == [(3, "minival"), (6, "minival")]
    assert lines[-1]["split"] == "validation"
    for record in lines:
        assert set(record) >= {"step", "split", "top_1", "top_5", "loss", "ema"} and record["ema"] is True
        assert 0.0 <= record["top_1"] <= record["top_5"] <= 1.0
    assert lines[0]["num_examples"] == 160 and lines[-1]["num_examples"] == 320  # every example once
    best = checkpoints.read_best(model_dir)
    assert best == summary["best"]
    assert best["top_1"] == max(r["top_1"] for r in lines[:2])
    with open(os.path.join(model_dir, "config.json")) as f:
        written = json.load(f)
    assert written["train"]["steps"] == 6 and written["model"]["num_classes"] == 8
    assert written["eval"]["in_training"] is True  # what train_and_eval means (--mode=train: False)
    assert not os.path.exists(os.path.join(model_dir, ".lock"))


def test_the_last_line_names_the_weights_it_scored(trained):
    """EMA weights by default; with train.moving_average_decay 0 (configs/finetune.py) the average is the trained
    weights, and the line must not claim an average."""
    config, summary = trained
    validation = f"validation top-1 {summary['final_eval']['top_1']:.4f}"
    assert f"{validation} (EMA weights)" in run.final_line(summary)
    assert f"{validation} (trained weights, no EMA)" in run.final_line(summary, ema=False)


def _validation_jpegs(cache_dir, count):
    source = sources.get_source(cache_dir=cache_dir)
    pattern = os.path.join(source.data_dir, "validation-*")
    records = tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(pattern))).take(count)
    feature = {"image/encoded": tf.io.FixedLenFeature([], tf.string)}
    return [tf.io.parse_single_example(r, feature)["image/encoded"].numpy() for r in records]


def test_saved_model_signatures_agree_with_the_model_in_a_fresh_process(trained, demo_cache, tmp_path):
    config, summary = trained
    export_dir = summary["export_dir"]
    jpegs = _validation_jpegs(demo_cache, 4)
    images = np.stack([preprocessing.preprocess_for_eval(j, 32).numpy() for j in jpegs])
    model = scoring.inference_model(
        plan_of(config).network.inference(8), checkpoints.archived_prefix(config.runtime.model_dir)
    )
    expected = tf.nn.softmax(model(images, training=False)).numpy()
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "jpegs.npy", np.array(jpegs, dtype=object), allow_pickle=True)
    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        loaded = tf.saved_model.load({export_dir!r})
        jpegs = np.load({str(tmp_path / "jpegs.npy")!r}, allow_pickle=True)
        images = np.load({str(tmp_path / "images.npy")!r})
        by_bytes = loaded.signatures["serving_default"](image_bytes=tf.constant(list(jpegs)))
        by_images = loaded.signatures["serving_images"](images=tf.constant(images))
        try:  # undecodable bytes fail that request only
            loaded.signatures["serving_default"](image_bytes=tf.constant([b"not an image"]))
            bad_request = "accepted"
        except tf.errors.InvalidArgumentError:
            bad_request = "rejected"
        again = loaded.signatures["serving_default"](image_bytes=tf.constant(list(jpegs)))["probabilities"]
        assert bad_request == "rejected" and np.array_equal(again.numpy(), by_bytes["probabilities"].numpy())
        np.savez({str(tmp_path / "out.npz")!r}, p1=by_bytes["probabilities"].numpy(),
                 c1=by_bytes["classes"].numpy(), p2=by_images["probabilities"].numpy())
    """)
    subprocess.run([sys.executable, "-c", script], check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_allclose(out["p1"], expected, atol=1e-5)
    np.testing.assert_allclose(out["p2"], expected, atol=1e-5)
    np.testing.assert_array_equal(out["c1"], expected.argmax(axis=1))  # the argmax [N], as the original
    assert out["c1"].shape == (4,)


def test_each_export_is_a_new_numbered_version_and_is_recorded(trained, demo_cache):
    """What TF Serving's --model_base_path watches: model_dir/export/<version>/, a higher version each time."""
    config, summary = trained
    model_dir = config.runtime.model_dir
    first = summary["export_dir"]
    again = run.run(tiny_config(model_dir, demo_cache, **{"runtime.mode": "export"}))["export_dir"]
    versions = sorted(os.listdir(os.path.join(model_dir, "export")), key=int)
    assert [os.path.join(model_dir, "export", v) for v in versions] == [first, again]
    with open(os.path.join(model_dir, "exports.jsonl")) as f:
        records = [json.loads(line) for line in f]
    assert [(r["export_dir"], r["version"]) for r in records] == [(first, int(versions[0])), (again, int(versions[1]))]
    assert records[0]["weights"] == records[1]["weights"] == checkpoints.archived_prefix(model_dir)


def test_resume_continues_at_the_saved_step(trained, demo_cache):
    config, _ = trained
    resumed = tiny_config(
        config.runtime.model_dir, demo_cache, **{"train.steps": 9, "runtime.mode": "train", "eval.in_training": True}
    )
    run.run(resumed)
    lines = _metrics_lines(config.runtime.model_dir)
    assert [(r["step"], r["split"]) for r in lines[-1:]] == [(9, "minival")]
    assert tf.train.latest_checkpoint(config.runtime.model_dir).endswith("ckpt-9")


def _final_weights(model_dir, config):
    model = scoring.inference_model(plan_of(config).network.inference(8), tf.train.latest_checkpoint(model_dir))
    return np.concatenate([w.numpy().ravel() for w in model.weights])


def test_two_replicas_match_one_device_for_the_same_global_batch(tmp_path, demo_cache):
    """Same global batch over 2 logical CPUs (cross-replica BN) and over 1 device: the same weights."""
    common = {
        "train.steps": 3,
        "runtime.mode": "train",
        "model.batchnorm_group_size": "all",
        "model.dropout_rate": 0.0,
        "model.survival_prob": 1.0,
        "train.deterministic": True,
        "eval.steps_per_eval": 3,
    }
    one = tiny_config(tmp_path / "one", demo_cache, **common)
    run.run(one, strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        pytest.skip("needs the two logical CPU devices configured in tests/conftest.py")
    two = tiny_config(tmp_path / "two", demo_cache, **common)
    mirrored = tf.distribute.MirroredStrategy(
        [d.name for d in devices[:2]], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )
    run.run(two, strategy=mirrored)
    np.testing.assert_allclose(
        _final_weights(str(tmp_path / "two"), two), _final_weights(str(tmp_path / "one"), one), atol=2e-5
    )


def test_augmentation_in_the_step_trains_the_same_weights_as_on_the_host(tmp_path, demo_cache):
    """data.augment_on_device on 2 replicas vs the augmentation on the input host: bit-identical images, hence
    the same weights (each replica augments its own slice of the batch with its examples' seeds). XLA cannot
    compile a step whose variables sit on two logical CPUs, so the step here is plain TensorFlow; the
    augmentation inside the XLA-compiled step is tested in test_tpu_readiness.py and tests/data."""
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        pytest.skip("needs the two logical CPU devices configured in tests/conftest.py")
    common = {
        "train.steps": 3,
        "runtime.mode": "train",
        "data.augment_name": "autoaugment",
        "train.deterministic": True,
        "eval.steps_per_eval": 3,
    }
    weights = {}
    for on_device in (False, True):
        config = tiny_config(tmp_path / str(on_device), demo_cache, **common, **{"data.augment_on_device": on_device})
        mirrored = tf.distribute.MirroredStrategy(
            [d.name for d in devices[:2]], cross_device_ops=tf.distribute.ReductionToOneDevice()
        )
        run.run(config, strategy=mirrored)
        weights[on_device] = _final_weights(str(tmp_path / str(on_device)), config)
    np.testing.assert_array_equal(weights[True], weights[False])


def test_eval_mode_records_the_step_of_the_checkpoint_it_scores(trained, demo_cache):
    config, _ = trained
    model_dir = config.runtime.model_dir
    evaluating = tiny_config(
        model_dir, demo_cache, **{"runtime.mode": "eval", "runtime.init_checkpoint": f"{model_dir}/ckpt-6"}
    )
    summary = run.run(evaluating)
    assert summary["final_eval"]["step"] == 6 and summary["final_eval"]["split"] == "validation"
    lines = _metrics_lines(model_dir)
    assert lines[-1] == summary["final_eval"]
    assert run.run(evaluating)["final_eval"] == summary["final_eval"]  # the same evaluation again: reported,
    assert _metrics_lines(model_dir) == lines  # not appended twice


def test_a_condconv_run_trains_evaluates_and_exports_a_model_that_serves_any_batch(tmp_path, demo_cache):
    """The whole path with the tiny config's width and depth on the condconv-b0-4e row: the trainer, minival,
    the archive, validation and the SavedModel, whose serving signature takes 1 or 3 JPEGs (the original's
    export pinned condconv models to batch 1, tensorflow/tpu main.py export())."""
    config = tiny_config(tmp_path / "run", demo_cache, **{"model.variant": "condconv-b0-4e"})
    summary = run.run(config)
    assert "top_1" in summary["final_eval"]
    loaded = tf.saved_model.load(summary["export_dir"])
    jpegs = _validation_jpegs(demo_cache, 3)
    three = loaded.signatures["serving_default"](image_bytes=tf.constant(jpegs))["probabilities"].numpy()
    one = loaded.signatures["serving_default"](image_bytes=tf.constant(jpegs[1:2]))["probabilities"].numpy()
    assert three.shape == (3, 8) and np.allclose(three.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(one[0], three[1], atol=1e-5)  # per-example routing: no mixing across the batch


def test_an_efficientnet_x_run_trains_evaluates_and_exports(tmp_path, demo_cache):
    """The whole path with the tiny config's width and depth on the x-b0 row (space-to-depth, fused convs with
    squeeze-excite, ReLU and swish stages): the trainer, minival, the archive and the SavedModel, whose serving
    signature gives the archived network's probabilities."""
    config = tiny_config(tmp_path / "run", demo_cache, **{"model.variant": "x-b0"})
    summary = run.run(config)
    assert "top_1" in summary["final_eval"]
    loaded = tf.saved_model.load(summary["export_dir"])
    jpegs = _validation_jpegs(demo_cache, 3)
    served = loaded.signatures["serving_default"](image_bytes=tf.constant(jpegs))["probabilities"].numpy()
    images = np.stack([preprocessing.preprocess_for_eval(j, 32).numpy() for j in jpegs])
    model = scoring.inference_model(
        plan_of(config).network.inference(8), checkpoints.archived_prefix(config.runtime.model_dir)
    )
    assert model.get_layer("block1a_space2depth_conv") is not None
    np.testing.assert_allclose(served, tf.nn.softmax(model(images, training=False)).numpy(), atol=1e-5)
