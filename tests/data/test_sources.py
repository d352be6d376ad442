"""Tests for data/sources.py: TFRecord layout, label shift, minival, counts, sharding, TFDS."""

import os

import numpy as np
import pytest
import tensorflow as tf

from data import sources


def _labels(source, split, **kwargs):
    records = source.records(split, training=False, **kwargs)
    return sorted(int(source.parse(r)[1]) for r in records)


def test_label_shift_and_background(id_tfrecord_dir):
    source = sources.get_source(data_dir=id_tfrecord_dir, holdout_shards=1)
    # Stored labels are index + 1 (1..37, read from the train shards: tests/data/test_class_count.py).
    assert source.num_classes == 37 and source.class_names == tuple(str(label) for label in range(1, 38))
    # Shards 1..5 hold indices 7..36.
    assert _labels(source, "train") == list(range(7, 37))
    with_background = sources.get_source(data_dir=id_tfrecord_dir, holdout_shards=1, include_background=True)
    assert with_background.num_classes == 38
    assert _labels(with_background, "train") == list(range(8, 38))


def test_minival_is_the_first_shards_and_disjoint(id_tfrecord_dir):
    source = sources.get_source(data_dir=id_tfrecord_dir, holdout_shards=2)
    minival, train = _labels(source, "minival"), _labels(source, "train")
    assert minival == list(range(0, 13)) and not set(minival) & set(train)
    assert len(minival) + len(train) == 37
    assert source.num_examples("minival") == 13 and source.num_examples("train") == 24
    assert source.num_examples("validation") == 9
    assert [os.path.basename(f) for f in source.files("minival")] == ["train-00000-of-00006", "train-00001-of-00006"]


def test_standard_imagenet_layout_uses_known_counts(tmp_path):
    # Empty files named like the standard converter: counts must come from docs/recipe.md §3, not from reading.
    for shard in range(1024):
        (tmp_path / f"train-{shard:05d}-of-01024").touch()
    for shard in range(128):
        (tmp_path / f"validation-{shard:05d}-of-00128").touch()
    source = sources.get_source(data_dir=str(tmp_path))
    assert source.num_examples("train") == 1_256_145
    assert source.num_examples("minival") == 25_022
    assert source.num_examples("validation") == 50_000


def test_missing_or_empty_directory_names_the_pattern(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train-\*-of-\*"):
        sources.get_source(data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"train-\*-of-\*"):
        sources.get_source(data_dir=str(tmp_path))


def test_bad_arguments(id_tfrecord_dir):
    with pytest.raises(ValueError, match="holdout_shards must be an int in"):
        sources.get_source(data_dir=id_tfrecord_dir, holdout_shards=6)
    with pytest.raises(ValueError, match="not both"):
        sources.get_source(data_dir=id_tfrecord_dir, dataset="tfds:cifar10")
    with pytest.raises(ValueError, match="tfds:NAME"):
        sources.get_source(dataset="cifar10")
    source = sources.get_source(data_dir=id_tfrecord_dir, holdout_shards=0)
    with pytest.raises(ValueError, match="split 'minival' is empty"):
        source.num_examples("minival")
    with pytest.raises(ValueError, match="split must be one of train, minival, validation"):
        source.num_examples("test")


@pytest.mark.parametrize("training", [True, False])
def test_sharding_covers_every_record_once(id_tfrecord_dir, training):
    source = sources.get_source(data_dir=id_tfrecord_dir, holdout_shards=1)
    seen = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2
        )
        records = source.records("train", training=training, input_context=context, seed=3)
        seen.append([int(source.parse(r)[1]) for r in records])
    assert sorted(seen[0] + seen[1]) == list(range(7, 37))
    assert seen[0] and seen[1]


def test_record_sharding_when_fewer_files_than_pipelines(id_tfrecord_dir):
    source = sources.get_source(data_dir=id_tfrecord_dir, holdout_shards=1)
    seen = []
    for pipeline_id in range(3):  # validation has 2 files: 3 pipelines must split records
        context = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=pipeline_id)
        seen += [
            int(source.parse(r)[1]) for r in source.records("validation", training=True, input_context=context, seed=1)
        ]
    assert sorted(seen) == list(range(100, 109))


def test_tfds_source_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        source = sources.get_source(dataset="tfds:cifar10", holdout_fraction=0.25)
        assert source.num_classes == 10 and len(source.class_names) == 10
        assert source.split_spec("minival") == "train[:3]" and source.split_spec("train") == "train[3:]"
        image, label = source.parse(next(iter(source.records("train", training=False))))
        assert image.dtype == tf.string and 0 <= int(label) < 10
        assert tf.image.decode_image(image).shape[-1] == 3
        background = sources.get_source(dataset="tfds:cifar10", include_background=True)
        assert background.num_classes == 11 and background.class_names[0] == "background"


def _tiny_builder_class():
    """A TFDS builder that prepares offline: image pixel value = example id, 40 train and 10 test examples."""
    import tensorflow_datasets as tfds

    class EfficientnetDataTestTiny(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")
        url_infos = {}  # no checksums file to look up (that lookup needs importlib_resources, not installed)

        def _info(self):
            return self.dataset_info_from_configs(
                features=tfds.features.FeaturesDict(
                    {"image": tfds.features.Image(shape=(8, 8, 3)), "label": tfds.features.ClassLabel(num_classes=3)}
                )
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(0, 40), "test": self._generate_examples(100, 10)}

        def _generate_examples(self, start, count):
            for index in range(start, start + count):
                yield index, {"image": np.full((8, 8, 3), index, np.uint8), "label": index % 3}

    return EfficientnetDataTestTiny


def test_tfds_minival_slice_is_disjoint_and_fixed(tmp_path):
    _tiny_builder_class()(data_dir=str(tmp_path)).download_and_prepare()
    source = sources.get_source(
        dataset="tfds:efficientnet_data_test_tiny", tfds_data_dir=str(tmp_path), holdout_fraction=0.1
    )

    def ids(split):
        return sorted(int(tf.io.decode_png(source.parse(e)[0])[0, 0, 0]) for e in source.records(split, training=False))

    minival, train = ids("minival"), ids("train")
    # TFDS stores examples in a hashed order, so the slice holds 4 arbitrary but fixed examples.
    assert len(minival) == 4 and not set(minival) & set(train) and sorted(minival + train) == list(range(40))
    assert ids("minival") == minival  # fixed across reads (and runs: the order is stored on disk)
    assert source.num_examples("minival") == 4 and source.num_examples("train") == 36
    assert source.split_spec("validation") == "test" and ids("validation") == list(range(100, 110))
