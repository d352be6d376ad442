"""The class count of ImageNet-format TFRecords comes from the data, never a silent 1000 (data/sources.py)."""

import pytest
import tensorflow as tf

from data import sources
from tests.data import conftest as helpers

_JPEG = helpers.encode_jpeg(helpers.id_image(0, 8, 8))


def _record(label, text=None, with_label=True):
    feature = {"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[_JPEG]))}
    if with_label:
        feature["image/class/label"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))
    if text is not None:
        feature["image/class/text"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write(directory, labels, texts=None, with_label=True):
    """Three train shards holding `labels` (stored values) in order, and one validation shard."""
    texts = texts or {}
    per_shard = [len(labels) - 2 * (len(labels) // 3)] + [len(labels) // 3] * 2
    helpers.write_shards(
        str(directory), "train", per_shard, lambda i: _record(labels[i], texts.get(labels[i]), with_label)
    )
    helpers.write_shards(str(directory), "validation", [2], lambda i: _record(1, None, with_label))
    return str(directory)


def test_labels_file_gives_count_and_names(tmp_path):
    directory = _write(tmp_path, [1, 2, 2, 1, 1, 2])  # the file wins even over the labels present
    (tmp_path / sources.LABELS_FILE).write_text("cat\ndog\n\nbird\n")
    source = sources.get_source(data_dir=directory, holdout_shards=1)
    assert source.num_classes == 3 and source.class_names == ("cat", "dog", "bird")
    with_background = sources.get_source(data_dir=directory, holdout_shards=1, include_background=True)
    assert with_background.num_classes == 4 and with_background.class_names == ("background", "cat", "dog", "bird")


def test_empty_labels_file_is_an_error(tmp_path):
    directory = _write(tmp_path, [1, 2, 3])
    (tmp_path / sources.LABELS_FILE).write_text("\n\n")
    with pytest.raises(ValueError, match="names no classes"):
        sources.get_source(data_dir=directory, holdout_shards=1)


def test_pass_over_train_labels_takes_the_largest_and_the_record_texts(tmp_path):
    # Label 4 only in the minival shard (shard 0): the pass covers every train shard, holdout included.
    labels = [4, 1, 2, 3, 3, 1, 2, 1, 3]
    directory = _write(tmp_path, labels, texts={1: "red", 2: "green", 3: "blue", 4: "grey"})
    source = sources.get_source(data_dir=directory, holdout_shards=1)
    assert source.num_classes == 4 and source.class_names == ("red", "green", "blue", "grey")


def test_pass_without_texts_names_the_stored_labels(tmp_path):
    directory = _write(tmp_path, [2, 5, 5, 2, 1, 2])  # 3 and 4 absent: the count is still the largest label
    source = sources.get_source(data_dir=directory, holdout_shards=1)
    assert source.num_classes == 5 and source.class_names == ("1", "2", "3", "4", "5")
    assert sources.get_source(data_dir=directory, holdout_shards=1, include_background=True).num_classes == 6


def test_given_count_skips_the_pass_and_keeps_matching_names(tmp_path):
    directory = _write(tmp_path, [1, 2, 3], with_label=False)  # no label feature: a pass would fail
    source = sources.get_source(data_dir=directory, holdout_shards=1, num_classes=7)
    assert source.num_classes == 7 and source.class_names is None
    assert (
        sources.get_source(data_dir=directory, holdout_shards=1, num_classes=8, include_background=True).num_classes
        == 8
    )
    (tmp_path / sources.LABELS_FILE).write_text("a\nb\nc\nd\ne\nf\ng\n")
    assert sources.get_source(data_dir=directory, holdout_shards=1, num_classes=7).class_names[-1] == "g"
    assert sources.get_source(data_dir=directory, holdout_shards=1, num_classes=6).class_names is None


def test_unreadable_labels_ask_for_the_count(tmp_path):
    directory = _write(tmp_path, [1, 2, 3], with_label=False)
    with pytest.raises(ValueError, match="cannot read the class count.*give --num_label_classes"):
        sources.get_source(data_dir=directory, holdout_shards=1)


def test_empty_shards_ask_for_the_count(tmp_path):
    for split in ("train", "validation"):
        for shard in range(2):
            (tmp_path / f"{split}-{shard:05d}-of-00002").touch()
    with pytest.raises(ValueError, match="hold no records; give --num_label_classes"):
        sources.get_source(data_dir=str(tmp_path), holdout_shards=1)


def test_zero_based_labels_are_refused_but_a_stray_zero_is_a_bad_record(tmp_path):
    with pytest.raises(ValueError, match="store label 0, but ImageNet-format labels are 1..N"):
        sources.get_source(data_dir=_write(tmp_path / "zero_based", [0, 1, 2, 0, 1, 2]), holdout_shards=1)
    labels = [1 + i % 3 for i in range(150)]
    labels[7] = 0  # 1 of 150 (< 1%): skipped and counted by the pipeline, not a class
    assert sources.get_source(data_dir=_write(tmp_path / "stray", labels), holdout_shards=1).num_classes == 3
    background = sources.get_source(
        data_dir=_write(tmp_path / "bg", [0, 1, 2, 0]), holdout_shards=1, include_background=True
    )
    assert background.num_classes == 3 and background.class_names == ("background", "1", "2")
    with pytest.raises(ValueError, match="store label -1"):
        sources.get_source(data_dir=_write(tmp_path / "negative", [-1, 1, 2]), holdout_shards=1)


def test_standard_imagenet_layout_stays_1000_without_reading(tmp_path):
    for shard in range(1024):  # empty files: a pass would find no records and raise
        (tmp_path / f"train-{shard:05d}-of-01024").touch()
    source = sources.get_source(data_dir=str(tmp_path))
    assert source.num_classes == 1000 and source.class_names is None
    assert sources.get_source(data_dir=str(tmp_path), include_background=True).num_classes == 1001


@pytest.mark.parametrize("stray", [100_000, 2**32 + 3])
def test_one_implausible_label_is_refused_naming_it_and_its_records(tmp_path, stray):
    labels = [1 + i % 8 for i in range(60)]
    labels[5] = stray  # one mislabelled record: not a 100,000-way classifier, no 4.29 billion names
    with pytest.raises(
        ValueError,
        match=f"largest stored label {stray} \\(1 record\\(s\\)\\) is far above its 9 "
        "distinct labels \\(the next largest is 8\\); give --num_label_classes",
    ):
        sources.get_source(data_dir=_write(tmp_path, labels), holdout_shards=1)
    sparse = [1 + 3 * (i % 8) for i in range(60)]  # 8 labels spread over 1..22: plausible, 22 classes
    assert sources.get_source(data_dir=_write(tmp_path / "sparse", sparse), holdout_shards=1).num_classes == 22


def test_a_label_beyond_int32_is_outside_every_class_not_wrapped(tmp_path):
    directory = _write(tmp_path, [1, 2, 3])
    (tmp_path / sources.LABELS_FILE).write_text("a\nb\nc\n")  # the count comes from the file, no pass
    source = sources.get_source(data_dir=directory, holdout_shards=1)
    for stored, expected in ((3, 2), (2**32 + 3, -2), (2**31, -2), (2**31 - 1, 2**31 - 2), (-5, -2)):
        _, label = source.parse(tf.constant(_record(stored)))
        assert int(label) == expected, stored  # -2: outside [0, 3), so the pipeline counts the record as bad


def test_records_without_a_label_are_skipped_when_few_and_named_when_many(tmp_path):
    def write(directory, unlabelled):
        helpers.write_shards(
            str(directory), "train", [50, 50, 50], lambda i: _record(1 + i % 3, None, with_label=i not in unlabelled)
        )
        helpers.write_shards(str(directory), "validation", [2], lambda i: _record(1))
        return str(directory)

    assert sources.get_source(data_dir=write(tmp_path / "one", {7}), holdout_shards=1).num_classes == 3
    with pytest.raises(ValueError, match="3 of its 150 train records have no image/class/label feature; give"):
        sources.get_source(data_dir=write(tmp_path / "three", {7, 8, 9}), holdout_shards=1)
