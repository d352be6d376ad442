"""Images per second and CPU ms per image of the input pipeline on a directory of ImageNet-format TFRecords.

Configurations (--configs), each a fresh pipeline per timed run, interleaved (run 1 of every configuration, then
run 2, ..., the order rotated by one each round) so that on a shared machine they all see the same mix of load:
  none             data.pipeline.make_dataset, training, no augmentation (float32 images)
  autoaugment      ... with AutoAugment on the host (uint8 images)
  randaugment      ... with RandAugment on the host
  device_host      ... with augment_on_device: the host part only (crop, resize, uint8 + seeds; the flip and
                   the augmentation run in the train step)
  eval             the eval pipeline (center crop, bicubic), repeated
  plain_uint8      the anchor outside the project: a plain TF2 chain (window decode, tf.image.resize bicubic,
                   flip, uint8, batch) written with TensorFlow's own ops only
  plain_none       a plain tf.data chain doing our decode/crop/resize/flip work (the original's compat.v1
                   kernels, float32 out) with none of the pipeline's bookkeeping
  mg_none          Model Garden's classification training input (official/vision/dataloaders/
                   classification_input.py Decoder + Parser: window decode, random crop, flip, bilinear
                   resize, normalize) mapped as its InputReader does, on the same records
  mg_autoaugment   ... with its AutoAugment v0 (official/vision/ops/augment.py, distort on uint8)
The mg_ configurations need --model_garden_path (a directory holding Model Garden's official/, see
benchmarks/README.md) and are skipped with a note otherwise. Model Garden is not a dependency and is never part
of this repository. Once at the end, the device-side augmentation: data.device_augment.finish_batch on batches
from the device_host pipeline on this CPU, in a tf.function without XLA and with jit_compile=True (CPU ms per
image each, or the error in one line).
One JSON line per configuration: images_per_sec and cpu_ms_per_image are medians over --repeats runs of
--num_batches batches (after --warmup batches); load_avg is the 1-minute load average after each run;
ratio_to_ANCHOR is the median over the rounds of its rate / the anchor's rate in the same round (anchors:
plain_uint8, and mg_autoaugment for autoaugment and randaugment).
cpu_ms_per_image is process CPU time (user + system) per image: unlike wall time it barely moves when other jobs
share the cores, and 1000 · cores / cpu_ms_per_image estimates the rate on an idle machine.

  python benchmarks/input_pipeline.py --data_dir /tmp/photo_tfrecords [--model_garden_path /work/mg]
"""

import argparse
import gc
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

from data import (
    device_augment,  # noqa: E402
    pipeline,  # noqa: E402
    preprocessing,  # noqa: E402
    sources,  # noqa: E402
)
from training.core.recipe import recipe_input_settings  # noqa: E402


def _cpu_seconds():
    times = os.times()
    return times.user + times.system


def measure(make, batch_size, num_batches, warmup):
    """(images per second, CPU ms per image) over num_batches batches of a fresh pipeline, after `warmup`
    batches (tracing, buffers filling). Python's garbage collector runs before the pipeline starts and is off
    until the timed batches are done: a full collection in a TensorFlow process costs about 0.2 s of CPU, which
    would otherwise land on whichever configuration happened to be running (0.1-0.2 ms per image at these run
    lengths), and a pause after the warmup would let the pipeline fill its buffers untimed."""
    gc.collect()
    gc.disable()
    try:
        iterator = iter(make())
        for _ in range(warmup):
            next(iterator)
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        for _ in range(num_batches):
            next(iterator)
        seconds, cpu_seconds = time.perf_counter() - start, _cpu_seconds() - cpu_start
    finally:
        gc.enable()
    images = num_batches * batch_size
    return images / seconds, 1000.0 * cpu_seconds / images


CONFIGS = (
    "none",
    "autoaugment",
    "randaugment",
    "device_host",
    "eval",
    "plain_uint8",
    "plain_none",
    "mg_none",
    "mg_autoaugment",
)
# Each configuration's rate is also reported as a ratio to an anchor of the same run: the plain TF2 uint8
# chain for the host's floor, Model Garden's AutoAugment pipeline for ours.
ANCHORS = {"autoaugment": "mg_autoaugment", "randaugment": "mg_autoaugment"}
DEFAULT_ANCHOR = "plain_uint8"


def _import_model_garden(path):
    """Model Garden's (augment, classification_input, common) modules from `path`/official, or None with a
    one-line note. The package __init__ files of official.vision, official.vision.configs and official.core
    import every task (COCO evaluation, ...) and their dependencies; they are bypassed by registering those
    three packages empty, so only the modules the classification input parser really imports get loaded (its
    configs, preprocess_ops, augment, box_ops; they need tf_keras, gin-config, PyYAML and six)."""
    if not path or not os.path.isdir(os.path.join(path, "official")):
        return None
    import types  # pylint: disable=import-outside-toplevel

    path = os.path.abspath(path)
    sys.path.insert(0, path)
    try:  # any failure (missing tf_keras or gin, an incompatible version, ...) only skips the anchor
        for name in ("official.vision", "official.vision.configs", "official.core"):
            if name not in sys.modules:
                package = types.ModuleType(name)
                package.__path__ = [os.path.join(path, *name.split("."))]
                sys.modules[name] = package
        # pylint: disable=import-outside-toplevel
        from official.vision.configs import common
        from official.vision.dataloaders import classification_input
        from official.vision.ops import augment

        augment.AutoAugment(augmentation_name="v0")  # fails early on an incompatible version
        return augment, classification_input, common
    except Exception as error:  # pylint: disable=broad-except
        for name in [name for name in sys.modules if name == "official" or name.startswith("official.")]:
            del sys.modules[name]  # nothing half-imported stays behind
        sys.path.remove(path)
        print(
            json.dumps(
                {
                    "note": f"Model Garden not usable from {path}: {type(error).__name__}: "
                    + str(error).splitlines()[0][:200]
                }
            ),
            flush=True,
        )
        return None


def _model_garden_chain(args, source, model_garden, autoaugment):
    """Model Garden's training input as its InputReader runs the classification task (official/core/
    input_reader.py: records → shuffle → map(decoder) → map(parser) → batch(drop_remainder) → prefetch, maps at
    AUTOTUNE), on the same records as ours (source.records, same shuffle buffer): its classification_input
    Decoder and Parser(output_size=[s, s]) with their defaults (decode_jpeg_only: extract_jpeg_shape,
    random_crop_image_v2 / center_crop_image_v2 window decode, random flip, bilinear tf.image.resize, normalize,
    float32), and with `autoaugment` its AutoAugment v0 (aug_type autoaug, distort on uint8 after the
    resize, as Parser._parse_train_image applies it)."""
    _, classification_input, common = model_garden
    aug_type = (
        common.Augmentation(type="autoaug", autoaug=common.AutoAugment(augmentation_name="v0")) if autoaugment else None
    )
    decoder = classification_input.Decoder()
    parser = classification_input.Parser(
        output_size=[args.image_size, args.image_size], num_classes=source.num_classes, aug_type=aug_type
    )
    records = source.records("train", training=True, seed=0).shuffle(args.shuffle_buffer, seed=0).repeat()
    dataset = records.map(decoder.decode, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.map(parser.parse_fn(is_training=True), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(args.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _plain_chain(args, source):
    """records → shuffle/repeat → one map (parse, crop, resize, flip) → batch → prefetch: the same image work
    as the pipeline's none configuration, without its bookkeeping."""
    seed = tf.constant(0, tf.int64)

    def process(index, record):
        image, label = source.parse(record)
        pixels = preprocessing.preprocess_for_train(image, args.image_size, tf.stack([seed, index]), "none")
        return {"images": pixels, "labels": label}

    records = source.records("train", training=True, seed=0)
    records = records.shuffle(args.shuffle_buffer, seed=0).repeat().enumerate()
    return (
        records.map(process, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(args.batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def _plain_uint8_chain(args, source):
    """The anchor outside the project: what a user would write with TensorFlow 2's own ops and nothing of ours.
    records → shuffle/repeat → one map (tf.io.parse_single_example; tf.image.sample_distorted_bounding_box and
    tf.io.decode_and_crop_jpeg, the window decode; tf.image.resize bicubic; tf.image.random_flip_left_right;
    tf.saturate_cast to uint8) → batch → prefetch, maps at AUTOTUNE and not deterministic (tf.data's advice for
    speed, as ours run)."""
    features = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    }
    whole_image = tf.constant([[[0.0, 0.0, 1.0, 1.0]]])

    def process(record):
        parsed = tf.io.parse_single_example(record, features)
        begin, size, _ = tf.image.sample_distorted_bounding_box(
            tf.io.extract_jpeg_shape(parsed["image/encoded"]),
            bounding_boxes=whole_image,
            min_object_covered=0.1,
            aspect_ratio_range=(3 / 4, 4 / 3),
            area_range=(0.08, 1.0),
            max_attempts=10,
            use_image_if_no_bounding_boxes=True,
        )
        window = tf.stack([begin[0], begin[1], size[0], size[1]])
        image = tf.io.decode_and_crop_jpeg(parsed["image/encoded"], window, channels=3)
        image = tf.image.resize(image, [args.image_size, args.image_size], method="bicubic")
        image = tf.image.random_flip_left_right(image)
        return {"images": tf.saturate_cast(image, tf.uint8), "labels": tf.cast(parsed["image/class/label"], tf.int32)}

    records = source.records("train", training=True, seed=0).shuffle(args.shuffle_buffer, seed=0).repeat()
    return (
        records.map(process, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
        .batch(args.batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def _maker(args, source, config, model_garden):
    """A function building a fresh pipeline of one configuration."""

    def make():
        if config == "eval":  # one pass: repeat it so a run can be as long as the training runs
            return pipeline.make_dataset(
                source, "train", recipe_input_settings(args.image_size, False), batch_size=args.batch_size
            ).repeat()
        if config == "plain_none":
            return _plain_chain(args, source)
        if config == "plain_uint8":
            return _plain_uint8_chain(args, source)
        if config in ("mg_none", "mg_autoaugment"):
            return _model_garden_chain(args, source, model_garden, config == "mg_autoaugment")
        return pipeline.make_dataset(
            source,
            "train",
            recipe_input_settings(
                args.image_size,
                True,
                augment_name="autoaugment" if config == "device_host" else config,
                shuffle_buffer=args.shuffle_buffer,
                augment_on_device=config == "device_host",
            ),
            batch_size=args.batch_size,
            seed=0,
        )

    return make


def _augment_cpu_ms(augment, batches, repeats):
    """CPU ms per image of augment(images, seeds) over `batches`, one median over `repeats` passes (traced and,
    with XLA, compiled beforehand)."""
    augment(*batches[0]).numpy()
    runs = []
    for _ in range(repeats):
        cpu_start = _cpu_seconds()
        for images, seeds in batches:
            augment(images, seeds).numpy()
        runs.append(1000.0 * (_cpu_seconds() - cpu_start) / sum(int(images.shape[0]) for images, _ in batches))
    return {"cpu_ms_per_image": round(statistics.median(runs), 3), "cpu_ms_runs": [round(r, 3) for r in runs]}


def device_augment_cost(args, source):
    """CPU ms per image of device_augment.finish_batch(images, seeds, "autoaugment") on this machine on batches
    of the device_host pipeline prepared beforehand: in a tf.function without XLA and with jit_compile=True
    (median over --repeats runs of --num_batches batches each). A build or compile failure of either is
    reported in one line instead."""
    dataset = pipeline.make_dataset(
        source,
        "train",
        recipe_input_settings(
            args.image_size,
            True,
            augment_name="autoaugment",
            augment_on_device=True,
            shuffle_buffer=args.shuffle_buffer,
        ),
        batch_size=args.batch_size,
        seed=0,
    )
    batches = [(b["images"], b["augment_seeds"]) for b in dataset.take(args.num_batches)]
    result = {"device_augment": "autoaugment", "where": "this CPU", "batch_size": args.batch_size}
    for key, jit_compile in (("tf_function", False), ("xla", True)):
        augment = tf.function(
            lambda images, seeds: device_augment.finish_batch(images, seeds, "autoaugment"), jit_compile=jit_compile
        )
        try:
            result[key] = _augment_cpu_ms(augment, batches, args.repeats)
        except Exception as error:  # pylint: disable=broad-except
            message = (str(error).strip().splitlines() or [""])[0][:200]
            result[key] = {"error": f"{type(error).__name__}: {message}"}
    return result


def run(args):
    source = sources.get_source(data_dir=args.data_dir, holdout_shards=0)
    wanted_mg = [c for c in args.configs if c.startswith("mg_")]
    model_garden = _import_model_garden(args.model_garden_path) if wanted_mg else None
    configs = [c for c in args.configs if model_garden is not None or not c.startswith("mg_")]
    if len(configs) < len(args.configs):
        print(
            json.dumps(
                {
                    "note": f"{' and '.join(wanted_mg)} skipped: give --model_garden_path, a directory "
                    "holding a usable Model Garden official/ (see benchmarks/README.md)"
                }
            ),
            flush=True,
        )
    runs = {config: [] for config in configs}
    for repeat in range(args.repeats):
        for config in configs[repeat % len(configs) :] + configs[: repeat % len(configs)]:  # rotated: no fixed order
            rate, cpu_ms = measure(
                _maker(args, source, config, model_garden), args.batch_size, args.num_batches, args.warmup
            )
            runs[config].append((rate, cpu_ms, os.getloadavg()[0]))
    for config, results in runs.items():
        anchor = ANCHORS.get(config, DEFAULT_ANCHOR)
        ratios = {}
        if anchor in runs and anchor != config:  # per round (the same load), then the median of the rounds
            per_round = [r / a for (r, _, _), (a, _, _) in zip(results, runs[anchor])]
            ratios = {f"ratio_to_{anchor}": round(statistics.median(per_round), 3)}
        print(
            json.dumps(
                {
                    "config": config,
                    **ratios,
                    "image_size": args.image_size,
                    "batch_size": args.batch_size,
                    "images_per_sec": round(statistics.median(r for r, _, _ in results), 1),
                    "cpu_ms_per_image": round(statistics.median(c for _, c, _ in results), 3),
                    "runs": [round(r, 1) for r, _, _ in results],
                    "cpu_ms_runs": [round(c, 3) for _, c, _ in results],
                    "load_avg": [round(load, 1) for _, _, load in results],
                    "cpus": os.cpu_count(),
                }
            ),
            flush=True,
        )
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
    parser.add_argument(
        "--configs",
        nargs="+",
        choices=CONFIGS,
        default=["none", "plain_uint8", "plain_none", "mg_none", "autoaugment", "device_host", "mg_autoaugment"],
    )
    parser.add_argument(
        "--model_garden_path",
        default=None,
        help="directory holding Model Garden's official/ (for mg_none, mg_autoaugment)",
    )
    parser.add_argument(
        "--no_device_cost", dest="device_cost", action="store_false", help="skip the device-side augmentation cost"
    )
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
