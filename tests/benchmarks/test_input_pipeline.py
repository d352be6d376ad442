"""Tests for benchmarks/input_pipeline.py: the Model Garden anchor is optional and never breaks the benchmark."""

import json
import os
import sys

import pytest

from tests.benchmarks.conftest import load_script
from tests.data import conftest as helpers


@pytest.fixture(scope="module")
def bench():
    return load_script("input_pipeline")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("bench_tfrecords"))
    helpers.write_shards(directory, "train", [6, 6], helpers.id_record)
    return directory


def _lines(capsys):
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_model_garden_configs_are_skipped_with_a_note_without_a_path(bench, tiny_dir, capsys):
    bench.main(
        [
            "--data_dir",
            tiny_dir,
            "--image_size",
            "16",
            "--batch_size",
            "2",
            "--num_batches",
            "1",
            "--warmup",
            "1",
            "--repeats",
            "1",
            "--no_device_cost",
            "--configs",
            "plain_none",
            "mg_none",
            "mg_autoaugment",
        ]
    )
    lines = _lines(capsys)
    assert lines[0] == {
        "note": "mg_none and mg_autoaugment skipped: give --model_garden_path, a directory holding "
        "a usable Model Garden official/ (see benchmarks/README.md)"
    }
    assert [line["config"] for line in lines[1:]] == ["plain_none"]


def test_an_unusable_model_garden_is_a_one_line_note(bench, tmp_path, capsys):
    assert bench._import_model_garden(None) is None  # pylint: disable=protected-access
    assert bench._import_model_garden(str(tmp_path)) is None  # no official/ there  # pylint: disable=protected-access
    assert capsys.readouterr().out == ""
    (tmp_path / "official").mkdir()  # a directory without the modules: import fails, one note, no exception
    assert bench._import_model_garden(str(tmp_path)) is None  # pylint: disable=protected-access
    (note,) = _lines(capsys)
    assert note["note"].startswith(f"Model Garden not usable from {tmp_path}: ") and "\n" not in note["note"]
    assert "Error: " in note["note"]
    assert not any(name.split(".")[0] == "official" for name in sys.modules)  # nothing half-imported left
    assert str(tmp_path) not in sys.path


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("MODEL_GARDEN_PATH"),
    reason="set MODEL_GARDEN_PATH to a Model Garden install (benchmarks/README.md)",
)
def test_model_garden_anchor_runs(bench, tiny_dir, capsys):
    bench.main(
        [
            "--data_dir",
            tiny_dir,
            "--image_size",
            "16",
            "--batch_size",
            "2",
            "--num_batches",
            "1",
            "--warmup",
            "1",
            "--repeats",
            "1",
            "--no_device_cost",
            "--configs",
            "mg_none",
            "mg_autoaugment",
            "--model_garden_path",
            os.environ["MODEL_GARDEN_PATH"],
        ]
    )
    lines = _lines(capsys)
    assert [line.get("config") for line in lines] == ["mg_none", "mg_autoaugment"]
    assert all(line["images_per_sec"] > 0 for line in lines)


def test_the_plain_uint8_anchor_ships_uint8_batches_and_the_others_report_their_ratio_to_it(bench, tiny_dir, capsys):
    from data import sources  # pylint: disable=import-outside-toplevel

    args = bench.argparse.Namespace(image_size=16, batch_size=2, shuffle_buffer=4)
    source = sources.get_source(data_dir=tiny_dir, holdout_shards=0)
    batch = next(iter(bench._plain_uint8_chain(args, source)))  # pylint: disable=protected-access
    assert batch["images"].dtype.name == "uint8" and tuple(batch["images"].shape) == (2, 16, 16, 3)
    flags = ["--data_dir", tiny_dir, "--image_size", "16", "--batch_size", "2", "--num_batches", "1"]
    bench.main([*flags, "--warmup", "1", "--repeats", "2", "--no_device_cost", "--configs", "none", "plain_uint8"])
    none, anchor = _lines(capsys)
    assert (none["config"], anchor["config"]) == ("none", "plain_uint8")
    per_round = sorted(r / a for r, a in zip(none["runs"], anchor["runs"]))
    assert none["ratio_to_plain_uint8"] == pytest.approx(sum(per_round) / 2, abs=5e-3)  # the median of two rounds
    assert not any(key.startswith("ratio_to") for key in anchor)
