"""Images per second and CPU ms per image of the input pipeline on a directory of ImageNet-format TFRecords.

Configurations (--configs), each a fresh pipeline per timed run, interleaved (run 1 of every configuration, then
run 2, ...) so that on a shared machine they all see the same mix of load:
  none             data.pipeline.make_dataset, training, no augmentation (float32 images)
  autoaugment      ... with AutoAugment on the host (uint8 images)
  randaugment      ... with RandAugment on the host
  device_host      ... with augment_on_device: the host part only (crop, resize, uint8, flip + seeds)
  eval             the eval pipeline (center crop, bicubic), repeated
  plain_none       a plain tf.data chain doing the same decode/crop/resize/flip work with none of the
                   pipeline's bookkeeping (records → map → batch → prefetch): the floor to compare against
  mg_autoaugment   the plain chain + Model Garden's AutoAugment (official/vision/ops/augment.py, policy v0)
                   on the same uint8 crops; needs --model_garden_path (a directory holding official/), skipped
                   with a note otherwise. Model Garden is not a dependency and is never part of this repository.
and, once at the end, the device-side augmentation: data.device_augment.augment_batch on batches from the
device_host pipeline, in a tf.function on this CPU (ms per image; whether it compiles with XLA is reported).
One JSON line per configuration: images_per_sec and cpu_ms_per_image are medians over --repeats runs of
--num_batches batches (after --warmup batches); load_avg is the 1-minute load average after each run.
cpu_ms_per_image is process CPU time (user + system) per image: unlike wall time it barely moves when other jobs
share the cores, and 1000 · cores / cpu_ms_per_image estimates the rate on an idle machine.

  python benchmarks/input_pipeline.py --data_dir /tmp/photo_tfrecords [--model_garden_path /work/mg]
"""
import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

from data import device_augment  # noqa: E402
from data import pipeline  # noqa: E402
from data import preprocessing  # noqa: E402
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


CONFIGS = ("none", "autoaugment", "randaugment", "device_host", "eval", "plain_none", "mg_autoaugment")


def _model_garden_autoaugment(path):
    """Model Garden's AutoAugment v0 (distort: uint8 → uint8), imported from `path`/official; None if absent."""
    if not path or not os.path.isdir(os.path.join(path, "official")):
        return None
    sys.path.insert(0, path)
    try:  # any failure (missing tensorflow-addons, Keras 2 internals, ...) only skips the anchor
        from official.vision.ops import augment  # pylint: disable=import-outside-toplevel
        return augment.AutoAugment(augmentation_name="v0")
    except Exception as error:  # pylint: disable=broad-except
        print(json.dumps({"note": f"Model Garden not usable from {path}: {type(error).__name__}: {error}"}),
              flush=True)
        return None


def _plain_chain(args, source, augmenter=None):
    """records → shuffle/repeat → one map (parse, crop, resize, flip[, augment]) → batch → prefetch: the same
    image work as the pipeline's, without its bad-record bookkeeping."""
    seed = tf.constant(0, tf.int64)

    def process(index, record):
        image, label = source.parse(record)
        example_seed = tf.stack([seed, index])
        if augmenter is None:
            pixels = preprocessing.preprocess_for_train(image, args.image_size, example_seed, "none")
        else:
            pixels, _ = preprocessing.augmentation_input(image, args.image_size, example_seed)
            pixels = augmenter.distort(pixels)
        return {"images": pixels, "labels": label}

    records = source.records("train", training=True, seed=0)
    records = records.shuffle(args.shuffle_buffer, seed=0).repeat().enumerate()
    return records.map(process, num_parallel_calls=tf.data.AUTOTUNE).batch(
        args.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _maker(args, source, config, mg_augmenter):
    """A function building a fresh pipeline of one configuration."""
    def make():
        if config == "eval":  # one pass: repeat it so a run can be as long as the training runs
            return pipeline.make_dataset(source, "train", batch_size=args.batch_size, image_size=args.image_size,
                                         training=False).repeat()
        if config == "plain_none":
            return _plain_chain(args, source)
        if config == "mg_autoaugment":
            return _plain_chain(args, source, mg_augmenter)
        return pipeline.make_dataset(source, "train", batch_size=args.batch_size, image_size=args.image_size,
                                     training=True, augment_name="autoaugment" if config == "device_host" else config,
                                     seed=0, shuffle_buffer=args.shuffle_buffer,
                                     augment_on_device=config == "device_host")
    return make


def device_augment_cost(args, source):
    """CPU ms per image of device_augment.augment_batch (AutoAugment) in a tf.function on this machine, median
    over --repeats runs of --num_batches batches prepared beforehand; plus whether it compiles with XLA."""
    dataset = pipeline.make_dataset(source, "train", batch_size=args.batch_size, image_size=args.image_size,
                                    training=True, augment_name="autoaugment", seed=0, augment_on_device=True,
                                    shuffle_buffer=args.shuffle_buffer)
    batches = [(b["images"], b["augment_seeds"]) for b in dataset.take(args.num_batches)]
    augment = tf.function(lambda images, seeds: device_augment.augment_batch(images, seeds, "autoaugment"))
    augment(*batches[0])  # trace
    runs = []
    for _ in range(args.repeats):
        cpu_start = _cpu_seconds()
        for images, seeds in batches:
            augment(images, seeds).numpy()
        runs.append(1000.0 * (_cpu_seconds() - cpu_start) / (len(batches) * args.batch_size))
    try:
        tf.function(lambda images, seeds: device_augment.augment_batch(images, seeds, "autoaugment"),
                    jit_compile=True)(*batches[0])
        xla = "compiles"
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
        xla = "does not compile: " + str(error).splitlines()[0][:200]
    return {"device_augment": "autoaugment", "where": "tf.function on this CPU (no XLA)",
            "cpu_ms_per_image": round(statistics.median(runs), 3), "cpu_ms_runs": [round(r, 3) for r in runs],
            "xla": xla}


def run(args):
    source = sources.get_source(data_dir=args.data_dir, holdout_shards=0)
    mg_augmenter = _model_garden_autoaugment(args.model_garden_path) if "mg_autoaugment" in args.configs else None
    configs = [c for c in args.configs if c != "mg_autoaugment" or mg_augmenter is not None]
    if len(configs) < len(args.configs):
        print(json.dumps({"note": "mg_autoaugment skipped: give --model_garden_path, a directory holding a usable "
                                  "Model Garden official/ (see benchmarks/README.md)"}), flush=True)
    runs = {config: [] for config in configs}
    for _ in range(args.repeats):
        for config in configs:
            rate, cpu_ms = measure(_maker(args, source, config, mg_augmenter), args.batch_size, args.num_batches,
                                   args.warmup)
            runs[config].append((rate, cpu_ms, os.getloadavg()[0]))
    for config, results in runs.items():
        print(json.dumps({"config": config, "image_size": args.image_size, "batch_size": args.batch_size,
                          "images_per_sec": round(statistics.median(r for r, _, _ in results), 1),
                          "cpu_ms_per_image": round(statistics.median(c for _, c, _ in results), 3),
                          "runs": [round(r, 1) for r, _, _ in results],
                          "cpu_ms_runs": [round(c, 3) for _, c, _ in results],
                          "load_avg": [round(load, 1) for _, _, load in results], "cpus": os.cpu_count()}),
              flush=True)
    if args.device_cost:
        print(json.dumps(device_augment_cost(args, source)), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", required=True, help="ImageNet-format TFRecords (train-*-of-*)")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--num_batches", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shuffle_buffer", type=int, default=1024)
    parser.add_argument("--configs", nargs="+", choices=CONFIGS,
                        default=["none", "plain_none", "autoaugment", "device_host", "mg_autoaugment"])
    parser.add_argument("--model_garden_path", default=None,
                        help="directory holding Model Garden's official/ (for mg_autoaugment)")
    parser.add_argument("--no_device_cost", dest="device_cost", action="store_false",
                        help="skip the device-side augmentation cost")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
