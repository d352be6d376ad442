"""Tests for data/pipeline.py: element contract, determinism and exact resume, padded eval, bad records."""

import numpy as np
import pytest
import tensorflow as tf

from data import pipeline, sources
from tests.data import conftest as helpers
from tests.data.conftest import png_bomb
from training.core.recipe import recipe_input_settings

SIZE = 16


@pytest.fixture(scope="module")
def id_source(id_tfrecord_dir):
    return sources.get_source(data_dir=id_tfrecord_dir, holdout_shards=1)  # train: labels 7..36


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory):
    """40 records: 2 truncated JPEGs, 1 non-image, 1 label 0 (→ −1), 1 label 5000; the rest fine."""

    def record(index):
        jpeg = helpers.encode_jpeg(helpers.id_image(index, 40, 40))
        if index in (3, 17):
            return helpers.make_example(jpeg[: len(jpeg) // 3], index + 1)
        if index == 25:
            return helpers.make_example(b"this is not an image", index + 1)
        return helpers.make_example(jpeg, {30: 0, 33: 5000}.get(index, index + 1))

    directory = str(tmp_path_factory.mktemp("bad_tfrecords"))
    helpers.write_shards(directory, "train", [10, 10, 10, 10], record)
    return directory


def _labels_of(dataset):
    return [int(label) for batch in dataset for label, real in zip(batch["labels"], batch["mask"]) if real > 0]


@pytest.mark.slow
def test_training_elements_contract(id_source):
    dataset = pipeline.make_dataset(
        id_source,
        "train",
        recipe_input_settings(SIZE, True, deterministic=True, augment_name="randaugment"),
        batch_size=4,
        seed=1,
    )
    spec = dataset.element_spec
    # Augmented training images are uint8 (the augmentation works on uint8; the train step casts).
    assert spec["images"].shape == (4, SIZE, SIZE, 3) and spec["images"].dtype == tf.uint8
    assert spec["labels"].shape == (4,) and spec["labels"].dtype == tf.int32
    assert spec["bad_records"].shape == (4,) and spec["bad_records"].dtype == tf.int64
    labels = []
    for batch in dataset.take(12):  # 48 examples > one epoch of 30: the pipeline repeats
        assert int(tf.reduce_max(batch["bad_records"])) == 0
        labels += batch["labels"].numpy().tolist()
    assert set(labels) == set(range(7, 37))
    assert not pipeline.has_py_function(dataset)


@pytest.mark.slow
def test_same_seed_same_batches_and_checkpoint_resume_is_exact(id_source, tmp_path):
    def make(seed):
        return pipeline.make_dataset(
            id_source,
            "train",
            recipe_input_settings(SIZE, True, deterministic=True, shuffle_buffer=8, augment_name="none"),
            batch_size=4,
            seed=seed,
        )

    reference = [b["images"].numpy() for b in make(7).take(12)]
    again = [b["images"].numpy() for b in make(7).take(12)]
    other = [b["images"].numpy() for b in make(8).take(12)]
    for first, second in zip(reference, again):
        np.testing.assert_array_equal(first, second)
    assert any(not np.array_equal(a, b) for a, b in zip(reference, other))

    iterator = iter(make(7))
    for _ in range(5):
        next(iterator)
    checkpoint = tf.train.Checkpoint(iterator=iterator)
    path = checkpoint.save(str(tmp_path / "ckpt"))
    resumed = iter(make(7))
    tf.train.Checkpoint(iterator=resumed).restore(path).assert_consumed()
    for step in range(5, 12):  # crosses the epoch boundary (30 examples = 7.5 batches)
        np.testing.assert_array_equal(next(resumed)["images"].numpy(), reference[step])


@pytest.mark.slow
def test_deterministic_batches_do_not_depend_on_the_window_or_the_cycle_length(id_source, monkeypatch):
    # Batches larger than a window are put together from several windows (rebatch); in order, the examples keep
    # the record order, so a deterministic run gives the same batches whatever the window and the host's cores.
    def batches():
        dataset = pipeline.make_dataset(
            id_source,
            "train",
            recipe_input_settings(SIZE, True, deterministic=True, shuffle_buffer=8, augment_name="none"),
            batch_size=8,
            seed=5,
        )
        return [(b["labels"].numpy(), b["images"].numpy()) for b in dataset.take(5)]  # 40 > one epoch of 30

    reference = batches()  # a window per batch (8 records), the machine's cycle length
    monkeypatch.setattr(pipeline, "WINDOW_RECORDS", 3)  # 2⅔ windows per batch
    monkeypatch.setattr(pipeline, "_cycle_length", lambda: 5)
    for (labels, images), (other_labels, other_images) in zip(reference, batches(), strict=True):
        np.testing.assert_array_equal(labels, other_labels)
        np.testing.assert_array_equal(images, other_images)


def test_eval_pads_last_batch_and_counts_every_example_once(id_source):
    dataset = pipeline.make_dataset(id_source, "train", recipe_input_settings(SIZE, False), batch_size=8)
    batches = list(dataset)
    assert len(batches) == 4 and all(b["images"].shape == (8, SIZE, SIZE, 3) for b in batches)
    np.testing.assert_array_equal(batches[-1]["mask"].numpy(), [1, 1, 1, 1, 1, 1, 0, 0])  # 30 = 3·8 + 6
    assert sorted(_labels_of(batches)) == list(range(7, 37))


def test_eval_across_two_pipelines_with_num_batches(id_source):
    steps = -(-30 // 8)  # ceil(30 / global batch 8): 2 pipelines × 1 replica × per-replica batch 4
    seen = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2
        )
        dataset = pipeline.make_dataset(
            id_source,
            "train",
            recipe_input_settings(SIZE, False),
            batch_size=4,
            input_context=context,
            num_batches=steps,
        )
        batches = list(dataset)
        assert len(batches) == steps
        seen += _labels_of(batches)
    assert sorted(seen) == list(range(7, 37))
    with pytest.raises(ValueError, match="num_batches=1 is too small"):
        pipeline.make_dataset(id_source, "train", recipe_input_settings(SIZE, False), batch_size=4, num_batches=1)


@pytest.mark.slow
def test_bad_records_are_skipped_and_counted(bad_dir):
    source = sources.get_source(data_dir=bad_dir, holdout_shards=1, num_classes=1000)  # shards 1..3: indices 10..39
    evaluation = pipeline.make_dataset(source, "train", recipe_input_settings(SIZE, False), batch_size=8)
    good = {i for i in range(10, 40) if i not in (17, 25, 30, 33)}
    assert sorted(_labels_of(evaluation)) == sorted(i for i in good)
    training = pipeline.make_dataset(
        source,
        "train",
        recipe_input_settings(SIZE, True, deterministic=True, max_bad_fraction=0.5),
        batch_size=13,
        seed=2,
    )
    counts = [int(tf.reduce_max(b["bad_records"])) for b in training.take(4)]  # 52 good ≥ 2 epochs of 26
    assert counts == sorted(counts) and 4 <= counts[-1] <= 8


@pytest.mark.slow
@pytest.mark.parametrize("deterministic", [True, False])
def test_too_many_bad_records_fails_with_clear_message(bad_dir, monkeypatch, deterministic):
    # Unordered windows (deterministic=False) count over a reorder window; a small one keeps the run short.
    monkeypatch.setattr(pipeline, "_reorder_window", lambda window, cycle: 16)
    source = sources.get_source(data_dir=bad_dir, holdout_shards=1, num_classes=1000)
    dataset = pipeline.make_dataset(
        source,
        "train",
        recipe_input_settings(SIZE, True, max_bad_fraction=0.01, bad_check_min_records=20, deterministic=deterministic),
        batch_size=4,
        seed=2,
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="Too many bad records"):
        for _ in dataset.take(20):  # 80 good records: about 92 read, 12 of them bad
            pass


def _arrival_order(num_records, bad, late, rng):
    """Good positions below num_records in a shuffled order as parallel maps give it: most moved by a few places,
    one in eight by 10 to 20 (around the test's window of 16), and the `late` ones held back to the very end."""
    good = [p for p in range(num_records) if p not in bad and p not in late]
    moves = np.where(rng.uniform(size=len(good)) < 0.125, rng.uniform(10, 20, len(good)), rng.uniform(0, 5, len(good)))
    return [good[i] for i in np.argsort(np.arange(len(good)) + moves, kind="stable")] + sorted(late)


@pytest.mark.parametrize("seed", range(4))
def test_bad_record_count_over_a_reorder_window(seed):
    # The windowed count against its definition: of the positions below read = furthest + 1 − window, those that
    # have not arrived. A late record counts as bad until it arrives and not after.
    window, bad, late = 16, {0, 7, 8, 40, 99, 150, 151, 152, 230}, {60, 61}
    rng = np.random.default_rng(seed)
    order = _arrival_order(260, bad, late, rng)
    step = pipeline._count_bad(1.0, 1, window)  # pylint: disable=protected-access
    state = pipeline._count_bad_initial(window)  # pylint: disable=protected-access
    arrived, counts, expected = set(), [], []
    for start in range(0, len(order), 6):
        positions = order[start : start + 6]
        batch = {"index": tf.constant(positions, tf.int64), "labels": tf.zeros([len(positions)], tf.int32)}
        state, out = step(state, batch)
        arrived.update(positions)
        read = max(max(arrived) + 1 - window, 0)
        counts.append(int(out["bad_records"][0]))
        expected.append(sum(1 for p in range(read) if p not in arrived))
        assert "index" not in out and out["bad_records"].shape == (len(positions),)
    assert counts == expected
    assert max(counts) >= len(bad) + len(late) and counts[-1] == len(bad)  # the late ones counted, then taken back


def test_in_order_bad_record_count_is_the_gap_to_the_last_position():
    step = pipeline._count_bad(1.0, 1)  # pylint: disable=protected-access
    state, counts = pipeline._count_bad_initial(0), []  # pylint: disable=protected-access
    for positions in ([0, 1, 3], [4, 5, 6], [9, 10, 11]):
        batch = {"index": tf.constant(positions, tf.int64), "labels": tf.zeros([3], tf.int32)}
        state, out = step(state, batch)
        counts.append(int(out["bad_records"][0]))
    assert counts == [1, 1, 3]


def test_bad_fraction_check_with_a_reorder_window():
    # Positions 2, 5 and 11 never arrive. The check sees only the positions below read = furthest + 1 − window.
    step = pipeline._count_bad(0.1, 10, 8)  # pylint: disable=protected-access
    state = pipeline._count_bad_initial(8)  # pylint: disable=protected-access

    def batch(positions):
        return {"index": tf.constant(positions, tf.int64), "labels": tf.zeros([len(positions)], tf.int32)}

    state, out = step(state, batch([0, 1, 3, 4, 6, 7, 8, 9, 10, 12]))  # read 5: 1 bad, below min_records
    assert int(out["bad_records"][0]) == 1
    with pytest.raises(tf.errors.InvalidArgumentError, match="Too many bad records: 2 of the first 11 records"):
        step(state, batch([13, 14, 15, 16, 17, 18]))  # read 11: 2 bad > 10 %


def test_has_py_function_detects_py_function():
    plain = tf.data.Dataset.range(3).map(lambda x: x + 1)
    wrapped = tf.data.Dataset.range(3).map(lambda x: tf.py_function(lambda y: y, [x], tf.int64))
    assert not pipeline.has_py_function(plain) and pipeline.has_py_function(wrapped)


def test_bad_arguments(id_source):
    with pytest.raises(ValueError, match="augment_name must be one of autoaugment, randaugment, none"):
        pipeline.make_dataset(id_source, "train", recipe_input_settings(SIZE, True, augment_name="x"), batch_size=4)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        pipeline.make_dataset(id_source, "train", recipe_input_settings(SIZE, True), batch_size=0)
    with pytest.raises(ValueError, match="split must be one of"):
        pipeline.make_dataset(id_source, "val", recipe_input_settings(SIZE, True), batch_size=4)


def test_tfds_mock_through_the_pipeline():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=10):
        source = sources.get_source(dataset="tfds:cifar10", holdout_fraction=0.2)
        dataset = pipeline.make_dataset(source, "validation", recipe_input_settings(SIZE, False), batch_size=4)
        masks = [b["mask"].numpy() for b in dataset]
    assert sum(m.sum() for m in masks) == 10 and len(masks) == 3


@pytest.mark.slow
def test_a_decompression_bomb_in_a_shard_is_a_bad_record(tmp_path):
    bomb = png_bomb(20_000)

    def record(index):
        image = bomb if index == 14 else helpers.encode_jpeg(helpers.id_image(index, 40, 40))
        return helpers.make_example(image, index + 1)

    helpers.write_shards(str(tmp_path), "train", [10, 10], record)
    source = sources.get_source(data_dir=str(tmp_path), holdout_shards=1, num_classes=1000)  # train: 10..19
    evaluation = pipeline.make_dataset(source, "train", recipe_input_settings(SIZE, False), batch_size=4)
    assert sorted(_labels_of(evaluation)) == [i for i in range(10, 20) if i != 14]
    training = pipeline.make_dataset(
        source,
        "train",
        recipe_input_settings(SIZE, True, deterministic=True, max_bad_fraction=0.5),
        batch_size=9,
        seed=1,
    )
    counts = [int(tf.reduce_max(b["bad_records"])) for b in training.take(3)]  # 27 good: 3 epochs of 9
    assert counts[-1] >= 2  # the bomb skipped and counted in (at least) the two epochs read to their end


def test_labels_outside_the_classes_are_bad_records_in_both_directions(tmp_path):
    # Stored 1..N is label 0..N-1: stored 0 (label -1) and N + 1 (label N) and beyond are outside the classes,
    # int32.max + 1 too (the source maps it to -1 rather than wrapping it).
    stored = {3: 0, 6: 5, 9: 2**31, 12: 2**33 + 2}

    def record(index):
        return helpers.make_example(
            helpers.encode_jpeg(helpers.id_image(index, 16, 16)), stored.get(index, 1 + index % 4)
        )

    helpers.write_shards(str(tmp_path), "train", [2, 14], record)
    source = sources.get_source(data_dir=str(tmp_path), holdout_shards=1, num_classes=4)  # train: records 2..15
    evaluation = pipeline.make_dataset(source, "train", recipe_input_settings(SIZE, False), batch_size=4)
    assert sorted(_labels_of(evaluation)) == sorted(index % 4 for index in range(2, 16) if index not in stored)
