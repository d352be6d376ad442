"""CPU µs per element of tf.data's own machinery, and of the input pipeline's per-record bookkeeping, measured
where image work costs almost nothing: tiny JPEG records (32×24) resized to 16 px.

benchmarks/input_pipeline.py compares whole pipelines on realistic photos, where decode and resize cost
≈ 750 µs per image and a few per cent of difference is close to the noise of one run. Here the same
pipelines run on records whose decode and resize are almost free, so what remains is what the pipeline does
per record besides the image work (function calls, stages, thread hand-offs), in µs, with the same interleaved
rounds and medians. Configurations:
  range_batch      Dataset.range → batch: the floor of the harness
  map_call         range → map(x + 1) → batch: one tf.data function call per element (default options)
  map_call_inline  the same map with use_inter_op_parallelism=False and tf.data's default graph optimizations off
                   (a private constructor, tensorflow/python/data/ops/map_op.py _MapDataset; shown to locate the
                   cost of a call, not used by the project: the single-threaded executor it selects refuses
                   lowered tf.cond, which the preprocessing uses)
  parallel_map_call         range → map(x + 1, num_parallel_calls=AUTOTUNE, deterministic=False) → batch, as the
                            pipeline's maps run
  parallel_map_call_inline  the same parallel map with use_inter_op_parallelism=False and the default
                            optimizations off (private _ParallelMapDataset): whether the single-threaded executor
                            saves anything once the calls run on tf.data's worker threads
  enumerate, ignore_errors   range → that stage → batch
  plain_uint8, plain_none, none, device_host   benchmarks/input_pipeline.py's configurations on the tiny records
The last four are also printed as µs per record over plain_uint8 (the plain TF2 chain, one map call per record).
It is a benchmark, not a test; nothing is downloaded (the records are written to a temporary directory).

  python benchmarks/tfdata_overhead.py [--repeats 7]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.data.ops import map_op  # noqa: E402  (private: the *_inline configurations only)

from benchmarks import input_pipeline, make_photo_tfrecords  # noqa: E402
from data import sources  # noqa: E402

PIPELINES = ("plain_uint8", "plain_none", "none", "device_host")
MICRO = (
    "range_batch",
    "map_call",
    "map_call_inline",
    "parallel_map_call",
    "parallel_map_call_inline",
    "enumerate",
    "ignore_errors",
)
_NO_DEFAULT_OPTIMIZATIONS = ("map_call_inline", "parallel_map_call_inline")


def write_tiny_records(directory, num_train=1024, num_validation=128, num_shards=8):
    """ImageNet-format TFRecords of random 32×24 JPEGs, labels 1..10 (make_photo_tfrecords.write_split)."""
    rng = np.random.default_rng(0)

    def make_jpeg(_):
        return tf.io.encode_jpeg(rng.integers(0, 256, [24, 32, 3], dtype=np.uint8), quality=90).numpy()

    make_photo_tfrecords.write_split(directory, "train", num_train, num_shards, make_jpeg, 10)
    make_photo_tfrecords.write_split(directory, "validation", num_validation, 2, make_jpeg, 10)


def _add_one(x):
    return x + 1


def _micro(config, batch_size):
    dataset = tf.data.Dataset.range(2**62)
    if config == "map_call":
        dataset = dataset.map(_add_one)
    elif config == "map_call_inline":
        dataset = map_op._MapDataset(  # pylint: disable=protected-access
            dataset, _add_one, use_inter_op_parallelism=False, preserve_cardinality=True
        )
    elif config == "parallel_map_call":
        dataset = dataset.map(_add_one, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    elif config == "parallel_map_call_inline":
        dataset = map_op._ParallelMapDataset(  # pylint: disable=protected-access
            dataset,
            _add_one,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=False,
            use_inter_op_parallelism=False,
            preserve_cardinality=True,
        )
    elif config == "enumerate":
        dataset = dataset.enumerate()
    elif config == "ignore_errors":
        dataset = dataset.ignore_errors()
    dataset = dataset.batch(batch_size)
    if config in _NO_DEFAULT_OPTIMIZATIONS:
        options = tf.data.Options()
        options.experimental_optimization.apply_default_optimizations = False
        dataset = dataset.with_options(options)
    return dataset


def run(args):
    with tempfile.TemporaryDirectory() as directory:
        write_tiny_records(directory)
        source = sources.get_source(data_dir=directory, holdout_shards=0)
        pipeline_args = argparse.Namespace(image_size=16, batch_size=args.batch_size, shuffle_buffer=1024)
        makers = {c: input_pipeline._maker(pipeline_args, source, c, None) for c in PIPELINES}
        makers.update({c: (lambda c=c: _micro(c, args.batch_size)) for c in MICRO})
        configs = list(makers)
        cpu_us = {c: [] for c in configs}
        for repeat in range(args.repeats):
            for config in configs[repeat % len(configs) :] + configs[: repeat % len(configs)]:
                _, cpu_ms = input_pipeline.measure(makers[config], args.batch_size, args.num_batches, args.warmup)
                cpu_us[config].append(1000.0 * cpu_ms)
    anchor = statistics.median(cpu_us["plain_uint8"])
    floor = statistics.median(cpu_us["range_batch"])
    for config in configs:
        median = statistics.median(cpu_us[config])
        line = {"config": config, "cpu_us_per_element": round(median, 2)}
        if config in PIPELINES:
            line["over_plain_uint8_us"] = round(median - anchor, 2)
        else:
            line["over_range_batch_us"] = round(median - floor, 2)
        line["runs"] = [round(v, 2) for v in cpu_us[config]]
        line["load_avg"] = round(os.getloadavg()[0], 1)
        print(json.dumps(line), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--num_batches", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
