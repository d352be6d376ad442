"""Fixtures for data/ tests: tiny ImageNet-format TFRecord directories written on the fly."""

import io
import os

import numpy as np
import pytest
import tensorflow as tf


def encode_jpeg(image):
    return tf.io.encode_jpeg(tf.constant(image, tf.uint8), quality=95).numpy()


def make_example(image_bytes, stored_label, filename=""):
    """A record with the standard converter's features used by the pipeline (label stored as given)."""
    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_bytes])),
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[stored_label])),
        "image/filename": tf.train.Feature(bytes_list=tf.train.BytesList(value=[filename.encode()])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_shards(directory, split, records_per_shard, make_record):
    """Write len(records_per_shard) shards named like the standard converter; make_record(global_index) gives
    one serialized record. Returns the total number of records."""
    os.makedirs(directory, exist_ok=True)
    num_shards = len(records_per_shard)
    index = 0
    for shard, count in enumerate(records_per_shard):
        path = os.path.join(directory, f"{split}-{shard:05d}-of-{num_shards:05d}")
        with tf.io.TFRecordWriter(path) as writer:
            for _ in range(count):
                writer.write(make_record(index))
                index += 1
    return index


def id_image(index, height=20, width=28):
    """A small random-looking picture, different for every index."""
    rng = np.random.default_rng(index)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def id_record(index):
    """Record whose stored label is index + 1, so label (after the shift) identifies the example."""
    return make_example(encode_jpeg(id_image(index)), index + 1, f"img{index}")


@pytest.fixture(scope="session")
def id_tfrecord_dir(tmp_path_factory):
    """6 train shards (37 records, labels 0..36 after the shift) and 2 validation shards (9 records)."""
    directory = str(tmp_path_factory.mktemp("id_tfrecords"))
    write_shards(directory, "train", [7, 6, 6, 6, 6, 6], id_record)
    write_shards(directory, "validation", [5, 4], lambda i: id_record(100 + i))
    return directory


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    from data import demo

    return demo.ensure_demo_data(str(tmp_path_factory.mktemp("demo_cache")))


def write_image(path, index, kind="jpeg"):
    """One small distinct picture at `path` encoded as `kind` (jpeg, gray, png, gif, bmp)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = id_image(index, 24, 30)
    if kind == "gray":
        data = tf.io.encode_jpeg(tf.constant(image[:, :, :1]), quality=95).numpy()
    elif kind == "png":
        data = tf.io.encode_png(tf.constant(image)).numpy()
    elif kind in ("gif", "bmp"):
        pil = pytest.importorskip("PIL.Image")
        buffer = io.BytesIO()
        pil.fromarray(image).save(buffer, kind.upper())
        data = buffer.getvalue()
    else:
        data = encode_jpeg(image)
    with open(path, "wb") as f:
        f.write(data)
    return data


def make_folders(root, counts, split=None, start=0):
    """root[/split]/<class>/img<i>.jpg with counts[class] images each; returns the number written."""
    index = start
    for name, count in counts.items():
        for _ in range(count):
            write_image(os.path.join(root, split or "", name, f"img{index}.jpg"), index)
            index += 1
    return index - start


def png_bomb(side):
    """A valid grayscale PNG of side x side black pixels: a few hundred KB that decode to side² bytes (x3 as RGB)."""
    import struct  # pylint: disable=import-outside-toplevel
    import zlib  # pylint: disable=import-outside-toplevel

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    compressor, row = zlib.compressobj(9), b"\0" * (side + 1)  # filter byte 0, then the row
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def eval_pixels(source, size, split):
    """([image], [label]) of every real (unpadded) example of `split` through the eval pipeline at `size` px."""
    from data import pipeline  # pylint: disable=import-outside-toplevel
    from training.core.recipe import recipe_input_settings  # pylint: disable=import-outside-toplevel

    dataset = pipeline.make_dataset(
        source, split, recipe_input_settings(size, False, resize_method="bilinear"), batch_size=4
    )
    images, labels = [], []
    for batch in dataset:
        keep = batch["mask"].numpy() > 0
        images += list(batch["images"].numpy()[keep])
        labels += list(batch["labels"].numpy()[keep])
    return images, labels
