"""Build a directory of ImageNet-format TFRecords of realistic ≈500×375 JPEG photos for benchmarks.

The photos come from a folder of real photographs (PNG or JPEG). With no --photos_dir, scikit-image's bundled
sample photos are used (astronaut, chelsea, coffee, motorcycle_left/right, rocket, retina, hubble_deep_field,
...): they ship inside the scikit-image wheel, so no network is needed. scikit-image is a benchmark-only tool,
not a project dependency (see benchmarks/README.md). Each record is a random rescale, crop (landscape 500×375
or, one time in four, portrait 375×500) and flip of one photo, JPEG quality 90.

  python benchmarks/make_photo_tfrecords.py --output_dir /tmp/photo_tfrecords [--photos_dir DIR]
"""

import argparse
import os
import sys

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg")
MIN_PHOTO_SIDE = 250  # skip thumbnails and logos


def default_photos_dir():
    """scikit-image's data folder, if scikit-image is importable."""
    try:
        import skimage.data  # benchmark-only tool, see README
    except ImportError as error:
        raise SystemExit("no --photos_dir given and scikit-image is not installed; see benchmarks/README.md") from error
    return os.path.dirname(skimage.data.__file__)


def load_photos(photos_dir):
    """Colour photos (uint8 [h, w, 3]) of at least MIN_PHOTO_SIDE a side from photos_dir."""
    photos = []
    for name in sorted(os.listdir(photos_dir)):
        if not name.lower().endswith(PHOTO_SUFFIXES):
            continue
        image = tf.io.decode_image(tf.io.read_file(os.path.join(photos_dir, name)), expand_animations=False)
        if image.shape[-1] >= 3 and min(image.shape[:2]) >= MIN_PHOTO_SIDE:
            photos.append(image[:, :, :3].numpy())
    if not photos:
        raise SystemExit(f"no colour photos of at least {MIN_PHOTO_SIDE} px found in {photos_dir}")
    return photos


def random_view(photo, rng):
    """A random rescale + crop + flip of `photo` at 500×375 (or 375×500)."""
    height, width = (500, 375) if rng.random() < 0.25 else (375, 500)
    scale = max(height / photo.shape[0], width / photo.shape[1]) * rng.uniform(1.0, 1.6)
    resized = tf.image.resize(
        photo, [int(np.ceil(photo.shape[0] * scale)), int(np.ceil(photo.shape[1] * scale))], antialias=True
    )
    top = rng.integers(0, resized.shape[0] - height + 1)
    left = rng.integers(0, resized.shape[1] - width + 1)
    view = resized[top : top + height, left : left + width]
    if rng.random() < 0.5:
        view = view[:, ::-1]
    return tf.cast(tf.clip_by_value(tf.round(view), 0, 255), tf.uint8)


def photo_jpegs(photos, rng):
    """make_jpeg for write_split: record `index` is a random view of photo index mod len(photos), quality 90."""
    return lambda index: tf.io.encode_jpeg(random_view(photos[index % len(photos)], rng), quality=90).numpy()


def write_split(output_dir, split, num_records, num_shards, make_jpeg, num_classes):
    """Write num_records records in num_shards ImageNet-named shards: record i holds make_jpeg(i) (JPEG bytes)
    and label 1 + i mod num_classes."""
    per_shard = np.array_split(np.arange(num_records), num_shards)
    for shard, indices in enumerate(per_shard):
        path = os.path.join(output_dir, f"{split}-{shard:05d}-of-{num_shards:05d}")
        with tf.io.TFRecordWriter(path) as writer:
            for index in indices:
                jpeg = make_jpeg(index)
                label = int(index % num_classes) + 1
                example = tf.train.Example(
                    features=tf.train.Features(
                        feature={
                            "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg])),
                            "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"JPEG"])),
                            "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                        }
                    )
                )
                writer.write(example.SerializeToString())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--photos_dir", default=None, help="folder of photos (default: scikit-image's samples)")
    parser.add_argument("--num_train", type=int, default=1024)
    parser.add_argument("--num_validation", type=int, default=256)
    parser.add_argument("--num_shards", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    photos = load_photos(args.photos_dir or default_photos_dir())
    os.makedirs(args.output_dir, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    make_jpeg = photo_jpegs(photos, rng)
    write_split(args.output_dir, "train", args.num_train, args.num_shards, make_jpeg, 1000)
    write_split(args.output_dir, "validation", args.num_validation, max(1, args.num_shards // 4), make_jpeg, 1000)
    print(
        f"wrote {args.num_train} train and {args.num_validation} validation records from {len(photos)} photos "
        f"to {args.output_dir}"
    )


if __name__ == "__main__":
    main()
