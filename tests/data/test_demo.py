"""Tests for data/demo.py: content, counts, classes, atomic one-time generation."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from data import demo, sources


@pytest.mark.slow
def test_demo_files_counts_and_classes(demo_dir):
    with open(os.path.join(demo_dir, demo.METADATA_FILE), encoding="utf-8") as handle:
        metadata = json.load(handle)
    assert tuple(metadata["class_names"]) == demo.DEMO_CLASSES and 5 <= len(demo.DEMO_CLASSES) <= 10
    train = sorted(tf.io.gfile.glob(os.path.join(demo_dir, "train-*-of-*")))
    assert len(train) == demo.DEMO_TRAIN_SHARDS
    labels, sizes = [], []
    for path in train[:2]:
        for raw in tf.data.TFRecordDataset(path):
            example = tf.train.Example.FromString(raw.numpy())
            feature = example.features.feature
            jpeg = feature["image/encoded"].bytes_list.value[0]
            assert jpeg[:3] == b"\xff\xd8\xff"  # real JPEG bytes
            sizes.append(tf.image.extract_jpeg_shape(jpeg).numpy()[:2])
            labels.append(feature["image/class/label"].int64_list.value[0])
        assert sum(1 for _ in tf.data.TFRecordDataset(path)) == metadata["record_counts"][os.path.basename(path)]
    assert set(labels) == set(range(1, len(demo.DEMO_CLASSES) + 1))  # stored 1..N like ImageNet, every class
    assert np.min(sizes) >= 100 and np.max(sizes) <= 200

    source = sources.get_source(cache_dir=os.path.dirname(demo_dir))
    assert source.num_classes == len(demo.DEMO_CLASSES) and source.class_names == demo.DEMO_CLASSES
    assert source.holdout_shards == demo.DEMO_HOLDOUT_SHARDS == 2
    per_class = demo.DEMO_TRAIN_PER_CLASS * len(demo.DEMO_CLASSES)
    assert source.num_examples("train") + source.num_examples("minival") == per_class
    assert source.num_examples("minival") == per_class * 2 // 16
    assert source.num_examples("validation") == demo.DEMO_VALIDATION_PER_CLASS * len(demo.DEMO_CLASSES)


def test_second_call_reuses_the_copy(demo_dir):
    stamp = os.path.getmtime(os.path.join(demo_dir, demo.METADATA_FILE))
    assert demo.ensure_demo_data(os.path.dirname(demo_dir)) == demo_dir
    assert os.path.getmtime(os.path.join(demo_dir, demo.METADATA_FILE)) == stamp


def test_concurrent_generation_ends_with_one_complete_copy(tmp_path, monkeypatch):
    final = tmp_path / f"v{demo.DEMO_VERSION}"

    def racing_generate(directory):
        # Another process finishes first while this one is still writing.
        final.mkdir()
        (final / demo.METADATA_FILE).write_text("{}")
        (final / "winner").touch()
        with open(os.path.join(directory, demo.METADATA_FILE), "w", encoding="utf-8") as handle:
            handle.write("{}")

    monkeypatch.setattr(demo, "generate", racing_generate)
    assert demo.ensure_demo_data(str(tmp_path)) == str(final)
    assert (final / "winner").exists() and os.listdir(tmp_path) == [final.name]  # staging copy removed


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EFFICIENTNET_DEMO_DIR", str(tmp_path))
    assert demo.default_cache_dir() == str(tmp_path)


def test_shapes_differ_between_classes():
    rng = np.random.default_rng(0)
    means = [np.mean([demo.make_image(kind, rng).std() for _ in range(3)]) for kind in demo.DEMO_CLASSES]
    assert all(m > 20 for m in means)  # every class draws visible structure, not a flat colour
