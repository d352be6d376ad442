"""Bad data the run must skip and count or refuse in one line (issue 16 items 7 and 8): labels beyond the run's
class count, and truncated TFRecord files."""

import os

import numpy as np
import pytest

from data import pipeline, sources
from tests.data import conftest as helpers
from training.core.recipe import recipe_input_settings

SIZE = 16


def _scored_labels(dataset):
    return sorted(int(label) for batch in dataset for label, real in zip(batch["labels"], batch["mask"]) if real)


def test_labels_beyond_the_runs_class_count_are_bad_records(id_tfrecord_dir):
    # The source believes 1000 classes; the run has 20 (--num_label_classes=20): labels 20..36 are bad.
    source = sources.get_source(data_dir=id_tfrecord_dir, holdout_shards=1)  # train labels 7..36
    dataset = pipeline.make_dataset(
        source, "train", recipe_input_settings(SIZE, False, max_bad_fraction=1.0), batch_size=8, num_classes=20
    )
    assert _scored_labels(dataset) == list(range(7, 20))
    assert _scored_labels(
        pipeline.make_dataset(source, "train", recipe_input_settings(SIZE, False), batch_size=8)
    ) == list(range(7, 37))
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        pipeline.make_dataset(source, "train", recipe_input_settings(SIZE, False), batch_size=8, num_classes=0)


@pytest.fixture(scope="module")
def truncated_dir(tmp_path_factory):
    """3 train shards of 10 records; the last one loses its final 200 bytes (mid-record)."""
    directory = str(tmp_path_factory.mktemp("truncated"))
    helpers.write_shards(directory, "train", [10, 10, 10], helpers.id_record)
    path = os.path.join(directory, "train-00002-of-00003")
    with open(path, "rb") as handle:
        data = handle.read()
    with open(path, "wb") as handle:
        handle.write(data[:-200])
    return directory


def test_counting_a_truncated_file_is_one_line_naming_it(truncated_dir):
    with pytest.raises(ValueError, match="train-00002-of-00003 is truncated or corrupt"):  # the class-count pass
        sources.get_source(data_dir=truncated_dir, holdout_shards=1)
    source = sources.get_source(data_dir=truncated_dir, holdout_shards=1, num_classes=1000)  # no class-count pass
    with pytest.raises(ValueError) as error:
        source.num_examples("train")
    message = str(error.value)
    assert "\n" not in message and "train-00002-of-00003 is truncated or corrupt" in message
    assert source.num_examples("minival") == 10  # the intact shard still counts


def test_reading_a_truncated_file_with_known_counts_skips_and_counts_its_tail(truncated_dir):
    counts = {"train-00000-of-00003": 10, "train-00001-of-00003": 10, "train-00002-of-00003": 10}
    source = sources.TFRecordSource(truncated_dir, holdout_shards=1, record_counts=counts, num_classes=1000)
    evaluation = pipeline.make_dataset(
        source, "train", recipe_input_settings(SIZE, False, max_bad_fraction=1.0), batch_size=8
    )
    assert _scored_labels(evaluation) == list(range(10, 29))  # record 29 (the cut one) is not scored
    training = pipeline.make_dataset(
        source,
        "train",
        recipe_input_settings(SIZE, True, deterministic=True, augment_name="none", max_bad_fraction=1.0),
        batch_size=19,
        seed=3,
    )
    bad = [int(np.max(batch["bad_records"])) for batch in training.take(3)]  # 3 passes over the 19 readable
    assert bad[0] >= 1 and bad[1] > bad[0] and bad[2] > bad[1], bad
