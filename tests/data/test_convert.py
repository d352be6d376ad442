"""data/convert.py: image folders → ImageNet-format TFRecords that train exactly like the folder source."""

import io
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from data import convert, folders, sources
from tests.conftest import REPO
from tests.data.conftest import encode_jpeg, eval_pixels, id_image, make_folders, write_image


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory):
    """Class folders only (carved validation) with PNG, grayscale, CMYK, a unicode name and two bad files."""
    root = tmp_path_factory.mktemp("mixed")
    make_folders(str(root), {"ant": 9, "bee": 8, "été x": 7})
    write_image(str(root / "ant" / "p.png"), 60, "png")
    write_image(str(root / "bee" / "g.jpg"), 61, "gray")
    pil = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    pil.fromarray(id_image(62, 24, 30)).convert("CMYK").save(buffer, "JPEG", quality=90)
    (root / "été x" / "cmyk.jpg").write_bytes(buffer.getvalue())
    (root / "ant" / "broken.jpg").write_bytes(b"not an image")
    whole = encode_jpeg(id_image(63, 40, 40))
    (root / "bee" / "truncated.jpeg").write_bytes(whole[: len(whole) // 2])
    return str(root)


@pytest.fixture(scope="module")
def converted(mixed_dir, tmp_path_factory):
    output = str(tmp_path_factory.mktemp("converted"))
    lines = []
    result = convert.convert(mixed_dir, output, train_shards=3, workers=2, log=lines.append)
    return output, result, lines


def _records(output, pattern):
    files = sorted(tf.io.gfile.glob(os.path.join(output, pattern)))
    spec = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
        "image/filename": tf.io.FixedLenFeature([], tf.string),
    }
    return [
        {k: v.numpy() for k, v in tf.io.parse_single_example(r, spec).items()} for r in tf.data.TFRecordDataset(files)
    ]


def test_converted_bytes_are_the_folder_sources(mixed_dir, converted):
    output, result, lines = converted
    folder = folders.FolderSource(mixed_dir, holdout_fraction=0.0)
    assert sorted(result["skipped"]) == sorted(
        [os.path.join(mixed_dir, "ant", "broken.jpg"), os.path.join(mixed_dir, "bee", "truncated.jpeg")]
    )
    assert len(lines) == 2 and all(line.startswith("skipped ") for line in lines)
    for split, pattern in (("train", sources.TRAIN_PATTERN), ("validation", sources.VALIDATION_PATTERN)):
        records = {r["image/filename"].decode(): r for r in _records(output, pattern)}
        pairs = folder.listing.splits[split] + (folder.listing.splits["minival"] if split == "train" else ())
        expected = {os.path.relpath(p, mixed_dir): (p, label) for p, label in pairs if p not in result["skipped"]}
        assert sorted(records) == sorted(expected)
        for name, (path, label) in expected.items():
            image, _ = folder.parse((tf.constant(path), tf.constant(label)))
            assert records[name]["image/encoded"] == image.numpy()
            assert records[name]["image/class/label"] == label + 1


def test_converted_directory_trains_like_the_folders(mixed_dir, converted):
    """Same class names and the same eval pixels for every image (the decodable ones: both skip the others)."""
    output, _, _ = converted
    folder = sources.get_source(mixed_dir, holdout_fraction=0.0)
    records = sources.get_source(output, holdout_shards=0)
    assert isinstance(records, sources.TFRecordSource)
    assert records.class_names == folder.class_names and records.num_classes == folder.num_classes
    folder_images, folder_labels = eval_pixels(folder, 32, "validation")
    record_images, record_labels = eval_pixels(records, 32, "validation")
    assert sorted(folder_labels) == sorted(record_labels)
    key = lambda pair: (pair[1], pair[0].tobytes())  # noqa: E731
    for (a, la), (b, lb) in zip(
        sorted(zip(folder_images, folder_labels), key=key), sorted(zip(record_images, record_labels), key=key)
    ):
        assert la == lb
        np.testing.assert_array_equal(a, b)


def test_plan_is_the_seeded_shuffle_cut_into_even_shards(mixed_dir):
    listing = folders.scan(mixed_dir, 0.0)
    shards = convert.plan(listing, train_shards=4, validation_shards=2)
    expected = sorted(listing.splits["train"] + listing.splits["minival"])
    random.Random(0).shuffle(expected)  # the original's random.seed(0) shuffle
    flat = [pair for shard in shards["train"] for pair in shard]
    assert flat == [(path, label + 1) for path, label in expected]
    sizes = [len(shard) for shard in shards["train"]]
    assert max(sizes) - min(sizes) <= 1 and len(sizes) == 4
    assert [p for shard in shards["validation"] for p, _ in shard] == [p for p, _ in listing.splits["validation"]]
    assert convert.default_shards(1_281_167, 1250, 10, 1024) == 1024
    assert convert.default_shards(50_000, 390, 1, 128) == 128
    assert convert.default_shards(3, 1250, 10, 1024) == 3


def _snapshot(directory):
    return {name: open(os.path.join(directory, name), "rb").read() for name in sorted(os.listdir(directory))}


def test_interrupted_conversion_leaves_no_partial_shard_and_resumes(mixed_dir, converted, tmp_path, monkeypatch):
    output = str(tmp_path / "out")
    written = []
    real = convert.make_example

    def dying(*args):
        if len(written) == 12:  # inside the second train shard (3 shards of 9-10 images)
            raise KeyboardInterrupt
        written.append(1)
        return real(*args)

    monkeypatch.setattr(convert, "make_example", dying)
    with pytest.raises(KeyboardInterrupt):
        convert.convert(mixed_dir, output, train_shards=3, workers=2, log=lambda line: None)
    names = os.listdir(output)
    assert "train-00000-of-00003" in names and "train-00001-of-00003" not in names
    assert any(convert._TMP in name for name in names)  # the partial shard kept its temporary name
    monkeypatch.setattr(convert, "make_example", real)
    result = convert.convert(mixed_dir, output, train_shards=3, workers=2, log=lambda line: None)
    assert result["kept"] == 1
    assert _snapshot(output) == _snapshot(converted[0])


def test_killed_process_reruns_cleanly(tmp_path):
    source = tmp_path / "src"
    make_folders(str(source), {"a": 60, "b": 60})
    output = tmp_path / "out"
    command = [sys.executable, "-m", "data.convert", str(source), str(output), "--train_shards=12", "--workers=1"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        names = os.listdir(output) if output.exists() else []
        if any(name.startswith("train-00002") for name in names):
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    for name in os.listdir(output):  # every shard under a final name is complete
        if name.startswith("train-") and convert._TMP not in name:
            assert sum(1 for _ in tf.data.TFRecordDataset(str(output / name))) == 9
    rerun = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert not [name for name in os.listdir(output) if convert._TMP in name]
    records = sources.get_source(str(output), holdout_shards=1)
    assert records.num_examples("train") + records.num_examples("minival") == 108
    assert records.num_examples("validation") == 12


def test_refusals_are_one_line_and_change_nothing(mixed_dir, converted, tmp_path):
    output, _, _ = converted
    before = _snapshot(output)
    cases = (
        ([mixed_dir, output, "--train_shards=5"], "a shard of another conversion"),
        ([str(tmp_path / "missing"), output], "no such directory"),
        ([mixed_dir, output, "--workers=0"], "--workers must be a positive integer"),
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "data.convert", *argv],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv, _ in cases
    ]
    for process, (_, message) in zip(processes, cases):
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 2
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0], stderr
        assert "Traceback" not in stderr
    assert _snapshot(output) == before


def test_raw_imagenet_layout(tmp_path):
    make_folders(str(tmp_path / "raw"), {"n02": 4, "n01": 4}, "train")
    for i in range(3):
        write_image(str(tmp_path / "raw" / "validation" / f"ILSVRC2012_val_{i + 1:08d}.JPEG"), 300 + i)
    (tmp_path / "raw" / "synset_labels.txt").write_text("n02\nn01\nn01\n")
    convert.convert(str(tmp_path / "raw"), str(tmp_path / "out"), train_shards=2, log=lambda line: None)
    assert (tmp_path / "out" / "labels.txt").read_text() == "n01\nn02\n"
    validation = _records(str(tmp_path / "out"), sources.VALIDATION_PATTERN)
    assert [r["image/class/label"] for r in validation] == [2, 1, 1]
