"""Tests for benchmarks/tfdata_overhead.py: its tiny records are a readable ImageNet-format dataset, and one
short run reports every configuration against its baseline."""

import json

import pytest
import tensorflow as tf

from tests.benchmarks.conftest import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("tfdata_overhead")


def test_tiny_records_are_an_imagenet_format_dataset(bench, tmp_path):
    from data import sources  # pylint: disable=import-outside-toplevel

    bench.write_tiny_records(str(tmp_path), num_train=40, num_validation=6, num_shards=4)
    source = sources.get_source(data_dir=str(tmp_path), holdout_shards=0)
    assert source.num_examples("train") == 40 and source.num_examples("validation") == 6
    labels, shapes = set(), set()
    for record in source.records("train", training=False):
        encoded, label = source.parse(record)
        labels.add(int(label))
        shapes.add(tuple(tf.io.decode_jpeg(encoded).shape))
    assert labels == set(range(10))  # stored 1..10 is label 0..9
    assert shapes == {(24, 32, 3)}


@pytest.mark.slow
def test_one_short_run_reports_every_configuration(bench, capsys):
    bench.main(["--batch_size", "4", "--num_batches", "2", "--warmup", "1", "--repeats", "1"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [line["config"] for line in lines] == [*bench.PIPELINES, *bench.MICRO]
    for line in lines:
        baseline = "over_plain_uint8_us" if line["config"] in bench.PIPELINES else "over_range_batch_us"
        # os.times() ticks in 10 ms: a run this short may read 0 CPU time.
        assert line["cpu_us_per_element"] >= 0 and baseline in line and len(line["runs"]) == 1
