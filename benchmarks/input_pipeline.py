"""Images per second of the input pipeline on a directory of ImageNet-format TFRecords.

Measures the training pipeline (decode window + crop + bicubic resize + flip, then none / autoaugment /
randaugment) and the eval pipeline (center crop + bicubic), exactly as data.pipeline.make_dataset builds them,
and prints one JSON line per configuration:
  {"pipeline": "train", "augment": "autoaugment", "image_size": 224, "images_per_sec": ..., "runs": [...]}
images_per_sec is the median over --repeats timed runs of --num_batches batches each (after --warmup batches).
The configurations are interleaved (run 1 of every configuration, then run 2, ...) so that on a shared machine
they all see the same mix of load; load_avg lists the 1-minute load average at the end of each run.
cpu_ms_per_image is the process CPU time (user + system) per image, median over the same runs: unlike wall
time it barely moves when other jobs share the cores, and 1000 · cores / cpu_ms_per_image estimates the rate
on an idle machine.

  python benchmarks/input_pipeline.py --data_dir /tmp/photo_tfrecords
"""
import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data import pipeline  # noqa: E402
from data import sources  # noqa: E402


def _cpu_seconds():
    times = os.times()
    return times.user + times.system


def measure(make, batch_size, num_batches, warmup):
    """(images per second, CPU ms per image) over num_batches batches of a fresh pipeline, after `warmup`
    batches (tracing, buffers filling)."""
    iterator = iter(make())
    for _ in range(warmup):
        next(iterator)
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    for _ in range(num_batches):
        next(iterator)
    images = num_batches * batch_size
    return images / (time.perf_counter() - start), 1000.0 * (_cpu_seconds() - cpu_start) / images


def _maker(args, source, kind, augment):
    """A function building a fresh pipeline of one configuration."""
    def make():
        if kind == "eval":  # one pass: repeat it so a run can be as long as the training runs
            return pipeline.make_dataset(source, "train", batch_size=args.batch_size, image_size=args.image_size,
                                         training=False).repeat()
        return pipeline.make_dataset(source, "train", batch_size=args.batch_size, image_size=args.image_size,
                                     training=True, augment_name=augment, seed=0,
                                     shuffle_buffer=args.shuffle_buffer)
    return make


def run(args):
    source = sources.get_source(data_dir=args.data_dir, holdout_shards=0)
    configs = [("train", augment) for augment in args.augment] + ([("eval", "none")] if args.eval else [])
    runs = {config: [] for config in configs}
    for _ in range(args.repeats):
        for kind, augment in configs:
            rate, cpu_ms = measure(_maker(args, source, kind, augment), args.batch_size, args.num_batches,
                                   args.warmup)
            runs[(kind, augment)].append((rate, cpu_ms, os.getloadavg()[0]))
    for (kind, augment), results in runs.items():
        print(json.dumps({"pipeline": kind, "augment": augment, "image_size": args.image_size,
                          "batch_size": args.batch_size,
                          "images_per_sec": round(statistics.median(r for r, _, _ in results), 1),
                          "cpu_ms_per_image": round(statistics.median(c for _, c, _ in results), 3),
                          "runs": [round(r, 1) for r, _, _ in results],
                          "cpu_ms_runs": [round(c, 3) for _, c, _ in results],
                          "load_avg": [round(load, 1) for _, _, load in results], "cpus": os.cpu_count()}),
              flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", required=True, help="ImageNet-format TFRecords (train-*-of-*)")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--num_batches", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shuffle_buffer", type=int, default=1024)
    parser.add_argument("--augment", nargs="+", default=["none", "autoaugment", "randaugment"],
                        choices=["none", "autoaugment", "randaugment"])
    parser.add_argument("--no_eval", dest="eval", action="store_false", help="skip the eval pipeline")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
