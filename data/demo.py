"""Built-in DEMO data: small synthetic ImageNet-format TFRecords, so the whole system runs with no data and no
network. This is demo data, not a benchmark: accuracy on it says only that the pipeline and model learn.

Eight classes of shapes and textures (disc, ring, square, triangle, cross, horizontal stripes, vertical stripes,
checkerboard) drawn with random colours, sizes, positions and noise, so the class survives random crops, flips,
resizing and colour changes but colour alone never identifies it. JPEG-encoded (real JPEG bytes) at random sizes
of 100–200 px. Train: 16 shards of 80 (1,280 images, 160 per class); validation: 2 shards of 160 (40 per class).
The first DEMO_HOLDOUT_SHARDS train shards form the minival split. Generation takes a few seconds and happens
once per cache directory; it is atomic (written to a temporary directory, then renamed), so concurrent
processes end up sharing one complete copy.
"""

import json
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

DEMO_VERSION = 1
DEMO_CLASSES = ("disc", "ring", "square", "triangle", "cross", "horizontal_stripes", "vertical_stripes", "checkerboard")
DEMO_TRAIN_SHARDS = 16
DEMO_VALIDATION_SHARDS = 2
DEMO_TRAIN_PER_CLASS = 160
DEMO_VALIDATION_PER_CLASS = 40
DEMO_HOLDOUT_SHARDS = 2  # minival = 2 of 16 train shards = 160 images
METADATA_FILE = "metadata.json"
_SEED = 20190528  # fixed: the demo data is the same on every machine


def default_cache_dir():
    """$EFFICIENTNET_DEMO_DIR, else ~/.cache/efficientnet/demo."""
    return os.environ.get("EFFICIENTNET_DEMO_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "efficientnet", "demo"
    )


def _shape_mask(kind, rows, cols, rng):
    """Boolean mask of the class pattern on a pixel grid (rows, cols in pixels)."""
    height, width = rows.shape[0], cols.shape[1]
    side = min(height, width)
    cy, cx = rng.uniform(0.35, 0.65) * height, rng.uniform(0.35, 0.65) * width
    radius = rng.uniform(0.22, 0.34) * side
    dy, dx = rows - cy, cols - cx
    if kind == "disc":
        return dy**2 + dx**2 <= radius**2
    if kind == "ring":
        dist = np.sqrt(dy**2 + dx**2)
        return (dist <= radius) & (dist >= radius * rng.uniform(0.5, 0.7))
    if kind == "square":
        return (np.abs(dy) <= radius * 0.9) & (np.abs(dx) <= radius * 0.9)
    if kind == "triangle":  # apex up: |dx| grows linearly from the apex to the base
        top, base = cy - radius, cy + radius * 0.8
        return (rows >= top) & (rows <= base) & (np.abs(dx) <= (rows - top) * 0.6)
    if kind == "cross":
        arm = radius * rng.uniform(0.25, 0.35)
        within = (np.abs(dy) <= radius) & (np.abs(dx) <= radius)
        return within & ((np.abs(dy) <= arm) | (np.abs(dx) <= arm))
    period = rng.uniform(0.08, 0.16) * side
    if kind == "horizontal_stripes":
        return (rows % period) < period / 2
    if kind == "vertical_stripes":
        return (cols % period) < period / 2
    if kind == "checkerboard":
        return ((rows // period + cols // period) % 2) == 0
    raise ValueError(f"unknown demo class {kind!r}")


def make_image(kind, rng):
    """One uint8 [h, w, 3] picture of class `kind`, 100–200 px a side."""
    height, width = rng.integers(100, 201, size=2)
    rows = np.arange(height, dtype=np.float32)[:, None]
    cols = np.arange(width, dtype=np.float32)[None, :]
    background = rng.uniform(0, 255, size=3)
    foreground = (background + rng.uniform(90, 165, size=3)) % 256  # always far from the background colour
    gradient = (rows / height - 0.5) * rng.uniform(-60, 60) + (cols / width - 0.5) * rng.uniform(-60, 60)
    mask = _shape_mask(kind, rows, cols, rng)[..., None]
    image = np.where(mask, foreground, background) + gradient[..., None]
    image += rng.normal(0, 12, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _example(jpeg, label, class_name, filename, height, width):
    """A tf.train.Example with the standard ImageNet converter's features (label stored 1..N)."""

    def _bytes(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def _int(value):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "image/encoded": _bytes(jpeg),
                "image/format": _bytes(b"JPEG"),
                "image/class/label": _int(label + 1),
                "image/class/synset": _bytes(class_name.encode()),
                "image/class/text": _bytes(class_name.encode()),
                "image/filename": _bytes(filename.encode()),
                "image/height": _int(height),
                "image/width": _int(width),
                "image/colorspace": _bytes(b"RGB"),
                "image/channels": _int(3),
            }
        )
    )


def _write_split(directory, split, per_class, num_shards, rng):
    """Write one split, classes interleaved so every shard holds every class; returns {file: count}."""
    labels = np.repeat(np.arange(len(DEMO_CLASSES)), per_class)
    rng.shuffle(labels)
    counts = {}
    for shard, shard_labels in enumerate(np.array_split(labels, num_shards)):
        name = f"{split}-{shard:05d}-of-{num_shards:05d}"
        with tf.io.TFRecordWriter(os.path.join(directory, name)) as writer:
            for index, label in enumerate(shard_labels):
                image = make_image(DEMO_CLASSES[label], rng)
                jpeg = tf.io.encode_jpeg(image, quality=90).numpy()
                example = _example(
                    jpeg, int(label), DEMO_CLASSES[label], f"{name}-{index}.JPEG", image.shape[0], image.shape[1]
                )
                writer.write(example.SerializeToString())
        counts[name] = len(shard_labels)
    return counts


def generate(directory):
    """Write the demo TFRecords and metadata.json into an existing empty `directory`."""
    rng = np.random.default_rng(_SEED)
    counts = _write_split(directory, "train", DEMO_TRAIN_PER_CLASS, DEMO_TRAIN_SHARDS, rng)
    counts.update(_write_split(directory, "validation", DEMO_VALIDATION_PER_CLASS, DEMO_VALIDATION_SHARDS, rng))
    metadata = {
        "description": "synthetic DEMO data (shapes and textures), not a benchmark",
        "version": DEMO_VERSION,
        "class_names": list(DEMO_CLASSES),
        "record_counts": counts,
    }
    with open(os.path.join(directory, METADATA_FILE), "w", encoding="utf-8") as handle:
        json.dump(metadata, handle, indent=1)


def ensure_demo_data(cache_dir=None):
    """Return the directory of the demo TFRecords, generating them once (atomically) if needed."""
    root = os.path.abspath(cache_dir or default_cache_dir())
    final = os.path.join(root, f"v{DEMO_VERSION}")
    if os.path.exists(os.path.join(final, METADATA_FILE)):
        return final
    os.makedirs(root, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".staging-", dir=root)
    try:
        generate(staging)
        os.rename(staging, final)  # atomic; fails if another process renamed its copy first
    except OSError:
        if not os.path.exists(os.path.join(final, METADATA_FILE)):
            raise
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging, ignore_errors=True)
    return final
