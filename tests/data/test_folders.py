"""data/folders.py: a folder of photos per class as a source, with every corner case of the layout."""

import io
import os
import time

import numpy as np
import pytest
import tensorflow as tf

from data import folders, pipeline, sources
from tests.data.conftest import encode_jpeg, eval_pixels, id_image, make_folders, write_image
from training.core.recipe import recipe_input_settings

SIZE = 32


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    """train/ (3 classes: 12, 9, 10 images) and validation/ (3, 2, 2)."""
    root = str(tmp_path_factory.mktemp("split_layout"))
    make_folders(root, {"cat": 12, "dog": 9, "owl": 10}, "train")
    make_folders(root, {"cat": 3, "dog": 2, "owl": 2}, "validation", start=100)
    return root


def test_split_layout_classes_splits_and_labels(split_dir):
    source = sources.get_source(split_dir, holdout_fraction=0.2)
    assert isinstance(source, folders.FolderSource)
    assert source.class_names == ("cat", "dog", "owl") and source.num_classes == 3
    assert source.num_examples("validation") == 7
    assert source.num_examples("minival") == round(0.2 * 31)
    assert source.num_examples("train") + source.num_examples("minival") == 31
    train, minival = set(source.files("train")), set(source.files("minival"))
    assert not train & minival
    assert all("/train/" in path for path in train | minival)
    for path, label in source.listing.splits["train"] + source.listing.splits["validation"]:
        assert source.class_names[label] == os.path.basename(os.path.dirname(path))


def test_default_holdout_is_the_tfds_rule(split_dir):
    source = sources.get_source(split_dir, holdout_shards=100)  # 100 / 1024 of the 31 train files
    assert source.num_examples("minival") == round(31 * 100 / 1024)


def test_class_folders_only_carve_a_seeded_stratified_validation(tmp_path):
    counts = {"a": 40, "b": 25, "c": 7}
    make_folders(str(tmp_path), counts)
    first = folders.scan(str(tmp_path), 0.1)
    again = folders.scan(str(tmp_path), 0.1)
    assert first.splits == again.splits
    everything = [pair for split in sources.SPLITS for pair in first.splits[split]]
    assert len(everything) == len(set(everything)) == sum(counts.values())
    validation = first.splits["validation"]
    assert len(validation) == round(folders.VALIDATION_FRACTION * 72)
    for label, name in enumerate(first.class_names):  # stratified: floor or ceil of the class's share
        share = folders.VALIDATION_FRACTION * counts[name]
        assert int(share) <= sum(1 for _, lab in validation if lab == label) <= int(share) + 1
    # The split depends on the file names only: an added photo of class "a" changes the overall quota by at most
    # one, which moves at most one file in each of two other classes (the largest-remainder ranking).
    write_image(os.path.join(str(tmp_path), "a", "new.jpg"), 999)
    added = folders.scan(str(tmp_path), 0.1)
    before = {p for p in first.splits["validation"] if p[1] > 0}
    after = {p for p in added.splits["validation"] if p[1] > 0}
    assert len(before ^ after) <= 2


def test_split_follows_the_documented_hash_rule(tmp_path):
    """Oracle: the rule written out independently (SHA-256 of salt + class/file, first quota files)."""
    import hashlib

    make_folders(str(tmp_path), {"a": 10, "b": 10})
    listing = folders.scan(str(tmp_path), 0.0)
    for name in ("a", "b"):
        files = sorted(
            os.listdir(tmp_path / name), key=lambda f: hashlib.sha256(f"{folders.SPLIT_SEED}{f}".encode()).digest()
        )
        expected = {str(tmp_path / name / f) for f in files[:1]}  # 10 % of 10 files
        assert {p for p, _ in listing.splits["validation"] if os.path.dirname(p).endswith(name)} == expected


def test_formats_reach_the_network_as_the_converted_rgb_jpeg(tmp_path):
    """RGB and grayscale JPEG bytes stay as stored; PNG, GIF, BMP and CMYK become RGB JPEG at quality 100, the
    original converter's re-encoding (oracle: its ops written out with tf.io directly)."""
    stored = {
        kind: write_image(str(tmp_path / "train" / kind / f"x.{kind.replace('gray', 'JPG')}"), i, kind)
        for i, kind in enumerate(("jpeg", "gray", "png", "gif", "bmp"))
    }
    pil = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    pil.fromarray(id_image(7, 24, 30)).convert("CMYK").save(buffer, "JPEG", quality=95)
    os.makedirs(tmp_path / "train" / "cmyk")
    (tmp_path / "train" / "cmyk" / "x.jpg").write_bytes(buffer.getvalue())
    stored["cmyk"] = buffer.getvalue()
    source = folders.FolderSource(str(tmp_path), holdout_fraction=0.0)
    for path, label in source.listing.splits["train"] + source.listing.splits["validation"]:
        kind = source.class_names[label]
        image, parsed_label = source.parse((tf.constant(path), tf.constant(label)))
        assert int(parsed_label) == label
        if kind in ("jpeg", "gray"):
            assert image.numpy() == stored[kind]
            continue
        channels = 0 if kind == "cmyk" else 3
        decoded = tf.io.decode_image(stored[kind], channels=channels, expand_animations=False)
        expected = tf.io.encode_jpeg(decoded, format="rgb", quality=100).numpy()
        assert image.numpy() == expected
        assert tf.image.extract_jpeg_shape(image).numpy().tolist() == [24, 30, 3]


def test_bad_inputs_refused_with_one_line(tmp_path):
    def error_of(directory):
        with pytest.raises((ValueError, FileNotFoundError)) as info:
            sources.get_source(str(directory))
        assert "\n" not in str(info.value)
        return str(info.value)

    make_folders(str(tmp_path / "one"), {"only": 3})
    assert "one class folder (only)" in error_of(tmp_path / "one")
    make_folders(str(tmp_path / "empty"), {"a": 3})
    os.makedirs(tmp_path / "empty" / "b")
    (tmp_path / "empty" / "b" / ".DS_Store").write_bytes(b"\0")
    assert "empty/b holds no image files" in error_of(tmp_path / "empty")
    make_folders(str(tmp_path / "val"), {"a": 3, "b": 3}, "train")
    make_folders(str(tmp_path / "val"), {"a": 1, "c": 1}, "validation")
    assert "validation/c has no train folder" in error_of(tmp_path / "val")
    os.makedirs(tmp_path / "files")
    (tmp_path / "files" / "a.jpg").write_bytes(b"x")
    assert "no TFRecord files" in error_of(tmp_path / "files")
    os.makedirs(tmp_path / "noclass" / "train")
    assert "has no class folders" in error_of(tmp_path / "noclass")
    make_folders(str(tmp_path / "count"), {"a": 2, "b": 2})
    with pytest.raises(ValueError, match="2 class folders but the class count given is 5"):
        sources.get_source(str(tmp_path / "count"), num_classes=5)


def test_hidden_non_image_symlinks_unicode_and_spaces(tmp_path, caplog):
    root = tmp_path / "photos"
    make_folders(str(root), {"chat noir": 3, "éléphant 象": 3})
    (root / "chat noir" / ".DS_Store").write_bytes(b"\0\1")
    os.makedirs(root / ".ipynb_checkpoints")
    (root / "chat noir" / "notes.txt").write_text("not a photo")
    write_image(str(tmp_path / "elsewhere" / "ours 1.jpg"), 50)
    os.symlink(tmp_path / "elsewhere" / "ours 1.jpg", root / "chat noir" / "linked.jpg")
    os.symlink(tmp_path / "elsewhere", root / "linked class")
    os.symlink(tmp_path / "missing.jpg", root / "chat noir" / "broken.jpg")
    source = sources.get_source(str(root), holdout_fraction=0.0)
    assert source.class_names == ("chat noir", "linked class", "éléphant 象")
    assert source.num_examples("train") + source.num_examples("validation") == 3 + 1 + 1 + 3
    assert any("skipped 2 files" in record.getMessage() for record in caplog.records)
    images, labels = eval_pixels(source, SIZE, "train")
    assert len(images) == source.num_examples("train")  # every listed file, symlinked or unicode, decodes
    assert sorted(labels) == sorted(label for _, label in source.listing.splits["train"])


def test_undecodable_and_truncated_files_are_bad_records(tmp_path):
    make_folders(str(tmp_path), {"a": 6, "b": 6}, "train")
    make_folders(str(tmp_path), {"a": 1, "b": 1}, "validation", start=50)
    (tmp_path / "train" / "a" / "garbage.jpg").write_bytes(b"this is not an image")
    whole = encode_jpeg(id_image(77, 40, 40))
    (tmp_path / "train" / "b" / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    source = folders.FolderSource(str(tmp_path), holdout_fraction=0.0)
    assert source.num_examples("train") == 14
    dataset = pipeline.make_dataset(
        source,
        "train",
        recipe_input_settings(
            SIZE, True, augment_name="none", max_bad_fraction=0.5, bad_check_min_records=1, deterministic=True
        ),
        batch_size=4,
        seed=3,
    )
    batches = list(dataset.take(3 * 3))  # 36 examples read over three epochs of 12 good files
    assert max(int(b["bad_records"].numpy().max()) for b in batches) >= 4
    eval_images, _ = eval_pixels(source, SIZE, "train")
    assert len(eval_images) == 12


def test_fifty_thousand_classes_list_quickly(tmp_path):
    root = tmp_path / "many"
    os.makedirs(root)
    for i in range(50_000):
        os.makedirs(root / f"c{i:05d}")
        (root / f"c{i:05d}" / "x.jpg").write_bytes(b"")
    start = time.perf_counter()
    source = sources.get_source(str(root), holdout_fraction=0.0)
    elapsed = time.perf_counter() - start
    assert source.num_classes == 50_000 and source.class_names[-1] == "c49999"
    assert source.num_examples("train") + source.num_examples("validation") == 50_000
    assert elapsed < 30, f"listing 50,000 class folders took {elapsed:.1f} s"


def test_sharded_per_input_pipeline_and_exact_resume(split_dir, tmp_path):
    source = sources.get_source(split_dir, holdout_fraction=0.0)
    seen = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id)
        records = source.records("train", training=True, input_context=context, seed=1)
        seen.append({path.decode() for path, _ in records.as_numpy_iterator()})
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(source.files("train"))

    def make():
        return pipeline.make_dataset(
            source,
            "train",
            recipe_input_settings(SIZE, True, deterministic=True, augment_name="none", shuffle_buffer=8),
            batch_size=4,
            seed=5,
        )

    reference = [b["images"].numpy() for b in make().take(12)]  # 48 examples: crosses epochs of 31
    assert not pipeline.has_py_function(make())
    iterator = iter(make())
    for _ in range(5):
        next(iterator)
    path = tf.train.Checkpoint(iterator=iterator).save(str(tmp_path / "ckpt"))
    resumed = iter(make())
    tf.train.Checkpoint(iterator=resumed).restore(path).assert_consumed()
    for step in range(5, 12):
        np.testing.assert_array_equal(next(resumed)["images"].numpy(), reference[step])


def test_imagenet_raw_validation_layout(tmp_path):
    make_folders(str(tmp_path), {"n01": 3, "n02": 3}, "train")
    for i in range(3):  # validation images 1-3, labelled by synset_labels.txt below
        write_image(str(tmp_path / "validation" / f"ILSVRC2012_val_{i + 1:08d}.JPEG"), 200 + i)
    (tmp_path / "synset_labels.txt").write_text("n02\nn01\nn02\n")
    source = folders.FolderSource(str(tmp_path), holdout_fraction=0.0)
    assert [label for _, label in source.listing.splits["validation"]] == [1, 0, 1]
    (tmp_path / "synset_labels.txt").write_text("n02\nn09\nn02\n")
    with pytest.raises(ValueError, match="validation class n09"):
        folders.FolderSource(str(tmp_path), holdout_fraction=0.0)
