"""Throughput of the converter (data/convert.py): images/s from a folder of ≈500×375 photos to TFRecord shards.

The photos are random views (rescale, crop, flip) of scikit-image's sample photos, as benchmarks/
make_photo_tfrecords.py makes them, saved as class folders: JPEG quality 90, and every --png_every-th one as
PNG (which the converter re-encodes as RGB JPEG, like the original's converter does for its PNG). Each
configuration converts the same folder into a fresh output directory; the figure is images / wall seconds of
`convert` (TensorFlow already loaded), median of --repeats.

  python benchmarks/convert_throughput.py --photos_dir DIR [--images 600] [--workers 1 2] [--repeats 3]
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import make_photo_tfrecords  # noqa: E402
from data import convert  # noqa: E402


def make_folders(root, photos, count, png_every, seed=0):
    """count views of `photos` in root/<class>/ (4 classes); returns the bytes written."""
    rng = np.random.default_rng(seed)
    total = 0
    for index in range(count):
        view = make_photo_tfrecords.random_view(photos[index % len(photos)], rng)
        png = png_every and index % png_every == 0
        data = (tf.io.encode_png(view) if png else tf.io.encode_jpeg(view, quality=90)).numpy()
        folder = os.path.join(root, f"class{index % 4}")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{index:05d}.{'png' if png else 'jpg'}"), "wb") as f:
            f.write(data)
        total += len(data)
    return total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos_dir", default=None, help="folder of photos (default: scikit-image's samples)")
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--png_every", type=int, default=5, help="every n-th image a PNG; 0: JPEG only")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    photos = make_photo_tfrecords.load_photos(args.photos_dir or make_photo_tfrecords.default_photos_dir())
    work = tempfile.mkdtemp(prefix="convert_bench_")
    try:
        source = os.path.join(work, "photos")
        size = make_folders(source, photos, args.images, args.png_every)
        print(
            f"{args.images} images ({size / 2**20:.1f} MiB, every {args.png_every}th a PNG) from {len(photos)} "
            f"photos; {os.cpu_count()} CPUs"
        )
        for workers in args.workers:
            rates = []
            for repeat in range(args.repeats):
                output = os.path.join(work, f"out{workers}_{repeat}")
                start = time.perf_counter()
                result = convert.convert(source, output, workers=workers, log=lambda line: None)
                rates.append(result["images"] / (time.perf_counter() - start))
                shutil.rmtree(output)
            print(
                f"workers={workers}: {statistics.median(rates):.1f} images/s (median of {args.repeats}: "
                f"{', '.join(f'{r:.1f}' for r in rates)})"
            )
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
