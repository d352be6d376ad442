"""CPU ms per image of the training pipeline's stages (no augmentation), each a tf.data chain ending in a batch.

  read            the source's records (interleaved shards, shuffled, repeated)
  parse           + tf.train.Example parsing
  parse_label     + a label range check (the pipeline asserts it)
  decode_window   + decode of the random crop window (output reduced to 8×8 so no resize cost is added)
  plain_none      + bicubic resize and flip: the plain chain of the same image work (one map → batch, which
                  tf.data fuses into one map-and-batch)
  plain_ignore_errors   + ignore_errors between the map and the batch (it keeps tf.data from fusing the map
                  into the batch)
  plain_split     the same work as two maps, decode → ignore_errors → resize and flip (fused into the batch):
                  the pipeline's shape without its label check and bad-record count
  plain_uint8     the anchor outside the project (benchmarks/input_pipeline.py): a plain TF2 chain with uint8 out
  pipeline_none   data.pipeline.make_dataset (enumerate, windows of records, each decoded with the label Assert,
                  resized and batched one record after another (again, skipping bad records, when a window
                  has one), rebatch, per-batch bad-record count)
  pipeline_autoaugment, pipeline_device_host   the pipeline with AutoAugment on the host / its host part only
Interleaved like benchmarks/input_pipeline.py (order rotated each round, no garbage collection during the timed
batches); medians over --repeats runs.

  python benchmarks/pipeline_stages.py --data_dir /tmp/photo_tfrecords
"""

import argparse
import gc
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

from benchmarks import input_pipeline  # noqa: E402
from data import pipeline, preprocessing, sources  # noqa: E402
from training.core.recipe import recipe_input_settings  # noqa: E402


def _stages(source, size, batch):
    seed = tf.constant(0, tf.int64)

    def records():
        return source.records("train", training=True, seed=0).shuffle(1024, seed=0).repeat().enumerate()

    def mapped(fn):
        return records().map(fn, num_parallel_calls=tf.data.AUTOTUNE).batch(batch, drop_remainder=True)

    def window(image, index):
        cropped, _ = preprocessing.decode_and_crop(
            image,
            lambda shape: preprocessing.random_crop_window(
                shape, tf.stack([seed, index]), preprocessing.default_crop_fraction(size)
            ),
        )
        return cropped

    def plain(index, record):
        return preprocessing.preprocess_for_train(source.parse(record)[0], size, tf.stack([seed, index]), "none")

    def split():
        def decode(index, record):
            return preprocessing.train_crop(source.parse(record)[0], size, tf.stack([seed, index]))

        def finish(crop):
            return preprocessing.train_pixels(crop, size, "bicubic")

        decoded = records().map(decode, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
        return decoded.map(finish, num_parallel_calls=tf.data.AUTOTUNE).batch(batch, drop_remainder=True)

    def made(**kwargs):
        settings = recipe_input_settings(size, True, shuffle_buffer=1024, **kwargs)
        return lambda: pipeline.make_dataset(source, "train", settings, batch_size=batch, seed=0)

    return {
        "read": lambda: records().batch(batch),
        "parse": lambda: mapped(lambda i, r: source.parse(r)),
        "parse_label": lambda: mapped(
            lambda i, r: (lambda image, label: (image, label < source.num_classes))(*source.parse(r))
        ),
        "decode_window": lambda: mapped(
            lambda i, r: tf.image.resize_with_crop_or_pad(window(source.parse(r)[0], i), 8, 8)
        ),
        "plain_none": lambda: mapped(plain),
        "plain_ignore_errors": lambda: (
            records().map(plain, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors().batch(batch, drop_remainder=True)
        ),
        "plain_split": split,
        "plain_uint8": lambda: input_pipeline._plain_uint8_chain(
            argparse.Namespace(image_size=size, batch_size=batch, shuffle_buffer=1024), source
        ),
        "pipeline_none": made(augment_name="none"),
        "pipeline_autoaugment": made(augment_name="autoaugment"),
        "pipeline_device_host": made(augment_name="autoaugment", augment_on_device=True),
    }


def _cpu_seconds():
    times = os.times()
    return times.user + times.system


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--num_batches", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stages", nargs="+", default=None)
    args = parser.parse_args(argv)
    source = sources.get_source(data_dir=args.data_dir, holdout_shards=0)
    stages = _stages(source, args.image_size, args.batch_size)
    names = args.stages or list(stages)
    runs = {name: [] for name in names}
    for repeat in range(args.repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:  # rotated: no fixed order
            gc.collect()  # not during the timed batches (benchmarks/input_pipeline.py measure)
            gc.disable()
            try:
                iterator = iter(stages[name]())
                for _ in range(3):
                    next(iterator)
                start = _cpu_seconds()
                for _ in range(args.num_batches):
                    next(iterator)
                runs[name].append(1000.0 * (_cpu_seconds() - start) / (args.num_batches * args.batch_size))
            finally:
                gc.enable()
    for name, values in runs.items():
        print(
            f"{name:22s} cpu_ms_per_image {statistics.median(values):.3f}  runs "
            f"{[round(v, 3) for v in values]}  load {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
