"""Convert image folders (or the original's raw ImageNet layout) into the ImageNet TFRecord layout this project
reads: `python -m data.convert SOURCE_DIR OUTPUT_DIR [--train_shards=N] [--validation_shards=M] [--workers=W]`.

SOURCE_DIR is what `--data_dir` accepts as folders (data/folders.py): train/<class>/* with validation/<class>/*,
only <class>/*, or train/<wnid>/*.JPEG with validation/*.JPEG and synset_labels.txt. OUTPUT_DIR (local or gs://)
receives train-NNNNN-of-NNNNN and validation-NNNNN-of-NNNNN shards, labels 1..N in sorted class-name order,
and labels.txt (line i names label i). The train shards hold the folder source's train and minival files (the
TFRecord minival is then the first --holdout_shards shards); validation is the folder source's validation split.

As tensorflow/tpu tools/datasets/imagenet_to_gcs.py does: the train files in a seeded shuffled order
(random.Random(0), `convert_to_tf_records`) cut into consecutive shards, validation in sorted order, PNG and
CMYK re-encoded as RGB JPEG (here also GIF and BMP: data/folders.py `canonical_jpeg`, the very bytes the folder
source feeds, so a converted directory trains on the same images and pixels). Each image is fully decoded once
and files that do not decode are listed on stderr, counted and left out, never fatal. Decoding and re-encoding
run in --workers parallel tf.data threads. A shard is written under a temporary name and renamed when complete:
no partial shard ever carries a final name. convert_plan.json records what each shard holds; a rerun with the
same plan keeps the shards already complete and writes the rest (a killed conversion resumes), another plan
rewrites them all.
"""

import argparse
import hashlib
import json
import math
import os
import random
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO lines would bury the progress line

import tensorflow as tf  # noqa: E402  (after the environment is set)

from data import folders, sources  # noqa: E402

PLAN_FILE = "convert_plan.json"
_TMP = ".tmp-"  # temporary shard name: <final name>.tmp-<pid>
SHUFFLE_SEED = 0  # imagenet_to_gcs.py convert_to_tf_records: random.seed(0) before shuffling the train files


def default_shards(count, per_shard, minimum, maximum):
    """Shards for `count` images: about per_shard images each, within [minimum, maximum] and never more shards
    than images. ImageNet's 1,281,167 / 50,000 images give the original's 1024 / 128."""
    return max(1, min(count, max(minimum, min(maximum, math.ceil(count / per_shard)))))


def shard_ranges(count, num_shards):
    """[(start, stop)] of consecutive shards of `count` items, sizes differing by at most one."""
    return [(count * k // num_shards, count * (k + 1) // num_shards) for k in range(num_shards)]


def plan(listing, train_shards=None, validation_shards=None):
    """{split: [[(path, label 1..N)] per shard]} from a folders.Listing: train (train + minival) shuffled with
    SHUFFLE_SEED, validation in listing order."""
    train = sorted(listing.splits["train"] + listing.splits["minival"])
    random.Random(SHUFFLE_SEED).shuffle(train)
    validation = list(listing.splits["validation"])
    counts = {
        "train": train_shards or default_shards(len(train), 1250, 10, 1024),
        "validation": validation_shards or default_shards(len(validation), 390, 1, 128),
    }
    result = {}
    for split, pairs in (("train", train), ("validation", validation)):
        if not pairs:
            continue
        shards = min(counts[split], len(pairs))
        result[split] = [[(path, label + 1) for path, label in pairs[a:b]] for a, b in shard_ranges(len(pairs), shards)]
    return result


def shard_name(split, index, count):
    return f"{split}-{index:05d}-of-{count:05d}"


def _feature(value):
    if isinstance(value, int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    return tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[value if isinstance(value, bytes) else value.encode("utf-8")])
    )


def make_example(image, height, width, label, class_name, filename):
    """A tf.train.Example with the original converter's features (image/class/text added: the class name)."""
    features = {
        "image/encoded": image,
        "image/format": "JPEG",
        "image/colorspace": "RGB",
        "image/channels": 3,
        "image/height": height,
        "image/width": width,
        "image/class/label": label,
        "image/class/synset": class_name,
        "image/class/text": class_name,
        "image/filename": filename,
    }
    return tf.train.Example(
        features=tf.train.Features(feature={key: _feature(value) for key, value in features.items()})
    ).SerializeToString()


def _encoded(pairs, workers):
    """(index, JPEG bytes, height, width) of each decodable file of pairs, in order; the indices missing are the
    files that did not read or decode (ignore_errors drops them)."""
    paths = tf.constant([path for path, _ in pairs], tf.string, shape=[len(pairs)])

    def encode(index, path):
        image = folders.canonical_jpeg(tf.io.read_file(path))
        shape = tf.image.extract_jpeg_shape(image)
        return index, image, shape[0], shape[1]

    dataset = tf.data.Dataset.from_tensor_slices((tf.range(len(pairs), dtype=tf.int64), paths))
    return dataset.map(encode, num_parallel_calls=workers, deterministic=True).ignore_errors().prefetch(workers)


class Progress:
    """One status line on stderr: images done of the total, images/s, ETA; redrawn in place on a terminal, a new
    line every 10 % otherwise."""

    def __init__(self, total, stream=sys.stderr):
        self.total, self.stream, self.done, self.start = total, stream, 0, time.monotonic()
        self._drawn, self._tty, self._next_tenth = 0.0, stream.isatty(), 1

    def advance(self, count=1):
        if not count:
            return
        self.done += count
        now = time.monotonic()
        tenth = self.done * 10 >= self._next_tenth * self.total
        if (self._tty and now - self._drawn >= 0.5) or (not self._tty and tenth) or self.done == self.total:
            self._drawn = now
            while self._next_tenth * self.total <= self.done * 10:
                self._next_tenth += 1
            self.stream.write(("\r" if self._tty else "") + self.line(now) + ("" if self._tty else "\n"))
            self.stream.flush()

    def line(self, now):
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        filled = int(30 * self.done / max(self.total, 1))
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta) else "--:--:--"
        return f"[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} images  {rate:.0f}/s  ETA {eta_text}"

    def finish(self):
        if self._tty:
            self.stream.write("\n")


def _plan_digest(shards, class_names):
    text = json.dumps({"classes": list(class_names), "shards": shards}, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_output(output_dir, shards):
    """Refuse shards of another conversion in output_dir (another shard count would mix in the globs)."""
    for split, pattern in (("train", sources.TRAIN_PATTERN), ("validation", sources.VALIDATION_PATTERN)):
        suffix = f"-of-{len(shards.get(split, [])):05d}"
        for path in tf.io.gfile.glob(os.path.join(output_dir, pattern)):
            if _TMP not in path and not path.endswith(suffix):
                raise ValueError(
                    f"{output_dir} already holds {os.path.basename(path)}, a shard of another "
                    f"conversion; remove it or choose another output directory"
                )


def _write_atomically(path, text):
    temporary = f"{path}{_TMP}{os.getpid()}"
    with tf.io.gfile.GFile(temporary, "w") as f:
        f.write(text)
    tf.io.gfile.rename(temporary, path, overwrite=True)


def _remove_leftovers(output_dir):
    for path in tf.io.gfile.glob(os.path.join(output_dir, f"*{_TMP}*")):
        tf.io.gfile.remove(path)


def _write_shard(path, pairs, class_names, source_dir, workers, progress, log):
    """Writes one shard under a temporary name, renamed to `path` when complete; returns the files left out
    (each listed by `log`)."""
    temporary = f"{path}{_TMP}{os.getpid()}"
    done, bad = 0, []

    def skip_until(index):
        for missing in range(done, index):
            bad.append(pairs[missing][0])
            log(f"skipped {pairs[missing][0]}: not a readable, decodable image")

    with tf.io.TFRecordWriter(temporary) as writer:
        for index, image, height, width in _encoded(pairs, workers).as_numpy_iterator():
            skip_until(int(index))
            file_path, label = pairs[index]
            writer.write(
                make_example(
                    image,
                    int(height),
                    int(width),
                    label,
                    class_names[label - 1],
                    os.path.relpath(file_path, source_dir),
                )
            )
            progress.advance(int(index) + 1 - done)
            done = int(index) + 1
        skip_until(len(pairs))
        progress.advance(len(pairs) - done)
    tf.io.gfile.rename(temporary, path, overwrite=True)
    return bad


def convert(
    source_dir,
    output_dir,
    *,
    train_shards=None,
    validation_shards=None,
    workers=2,
    log=lambda line: print(line, file=sys.stderr),
):
    """Converts source_dir into output_dir (module docstring); returns {"images": written, "skipped": [paths],
    "shards": {split: count}, "kept": shards kept from an earlier run}."""
    listing = folders.scan(source_dir, 0.0)
    folders._warn_skipped(listing.skipped)  # pylint: disable=protected-access
    shards = plan(listing, train_shards, validation_shards)
    tf.io.gfile.makedirs(output_dir)
    _check_output(output_dir, shards)
    _remove_leftovers(output_dir)
    digest = _plan_digest(shards, listing.class_names)
    plan_path = os.path.join(output_dir, PLAN_FILE)
    earlier = json.loads(tf.io.gfile.GFile(plan_path).read()) if tf.io.gfile.exists(plan_path) else {}
    same_plan = earlier.get("digest") == digest
    _write_atomically(
        plan_path,
        json.dumps(
            {"digest": digest, "source": str(source_dir), "shards": {s: len(v) for s, v in shards.items()}}, indent=1
        ),
    )
    _write_atomically(os.path.join(output_dir, sources.LABELS_FILE), "".join(f"{n}\n" for n in listing.class_names))
    total = sum(len(pairs) for split in shards.values() for pairs in split)
    progress = Progress(total)
    skipped, kept = [], 0
    for split, split_shards in shards.items():
        for index, pairs in enumerate(split_shards):
            path = os.path.join(output_dir, shard_name(split, index, len(split_shards)))
            if same_plan and tf.io.gfile.exists(path):
                kept += 1
                progress.advance(len(pairs))
                continue
            skipped += _write_shard(path, pairs, listing.class_names, str(source_dir), workers, progress, log)
    progress.finish()
    return {
        "images": total - len(skipped),
        "skipped": skipped,
        "shards": {s: len(v) for s, v in shards.items()},
        "kept": kept,
    }


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        print(f"error: {message} (python -m data.convert --help)", file=sys.stderr)
        sys.exit(2)


def main(argv=None):
    parser = _Parser(prog="python -m data.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("source_dir", help="image folders: train/<class>/* [validation/<class>/*], or <class>/*")
    parser.add_argument("output_dir", help="where the TFRecord shards and labels.txt go (local or gs://)")
    parser.add_argument("--train_shards", type=int, help="default: about 1,250 images each, 10 to 1024")
    parser.add_argument("--validation_shards", type=int, help="default: about 390 images each, 1 to 128")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="parallel decode/encode threads (default: the CPU count)",
    )
    args = parser.parse_args(argv)
    for name in ("train_shards", "validation_shards", "workers"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be a positive integer, got {value}")
    if not tf.io.gfile.isdir(args.source_dir):
        parser.error(f"no such directory: {args.source_dir}")
    try:
        result = convert(
            args.source_dir,
            args.output_dir,
            train_shards=args.train_shards,
            validation_shards=args.validation_shards,
            workers=args.workers,
        )
    except (ValueError, tf.errors.OpError, OSError) as e:
        print(f"error: {sources.first_line(e)}", file=sys.stderr)
        sys.exit(2)
    shards = ", ".join(f"{count} {split}" for split, count in result["shards"].items())
    kept = f" (kept {result['kept']} complete shards of an earlier run)" if result["kept"] else ""
    print(
        f"wrote {result['images']} images in {shards} shards to {args.output_dir}{kept}; "
        f"{len(result['skipped'])} unreadable files left out"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
