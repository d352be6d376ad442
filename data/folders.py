"""A folder of photos per class as a data source: `DIR/train/<class>/*` (and optionally `DIR/validation/<class>/*`),
or only `DIR/<class>/*`.

Why not a library: Keras' image_dataset_from_directory decodes and resizes whole images itself (our pipeline
must see the encoded bytes to decode only the crop window, data/preprocessing.py) and keeps no iterator
position; TFDS' ImageFolder builds a TFDS dataset whose file order, splits and sharding are TFDS' own. What this
source needs is small: a list of files and labels turned into a tf.data.Dataset.from_tensor_slices, which is
checkpointable (exact resume with --deterministic), shardable per input pipeline (tf.distribute.InputContext),
and runs graph ops only (no py_function, so it works on a TPU host).

Layout rules (`scan`):
- Classes are the subfolders of DIR/train (or of DIR when there is no DIR/train), sorted by name (Python's
  code-point order, as Keras, TFDS and the original's converter sort them); label i is the i-th name.
- Image files: names ending in .jpg .jpeg .png .gif .bmp (any case) directly inside a class folder; symlinks are
  followed. Hidden names (starting with ".": .DS_Store, .ipynb_checkpoints) are ignored; other files,
  subfolders and broken symlinks are skipped and reported in one warning line.
- Validation: DIR/validation/<class>/*, or the original ImageNet layout DIR/validation/*.JPEG with one wnid per
  line of DIR/synset_labels.txt (in sorted file order, as tensorflow/tpu tools/datasets/imagenet_to_gcs.py reads
  it). Without DIR/validation, VALIDATION_FRACTION of every class is held out as validation.
- Minival: holdout_fraction of the train files (the TFDS rule of data/sources.py: holdout_shards / 1024 unless
  holdout_fraction is given).
- The fixed, seeded split: within each class the files are ordered by SHA-256 of SPLIT_SEED + their path relative
  to the class root; the first ones are validation (when carved), the next minival, the rest train. How many each
  class gives is round(fraction x files) overall, apportioned to the classes by largest remainder. The split
  depends only on the file names, never on the listing order or the machine, and adding photos moves few others.
- Refused with one line: no class folder, a single class, a class folder without images, a validation class
  that train does not have.

Pixels: JPEG bytes are used as stored when the JPEG is RGB or grayscale, as the original's converter stores them;
PNG, GIF, BMP and CMYK JPEGs are decoded to RGB and re-encoded as RGB JPEG at quality 100, which the original's
converter does for its PNG and CMYK files (imagenet_to_gcs.py `_process_image`, `ImageCoder`). Every image is
fully decoded once per read, so a truncated or undecodable file fails its record (skipped and counted by
data/pipeline.py) whatever crop window training picks. data/convert.py writes the bytes of `canonical_jpeg`,
so a converted directory holds exactly the images and pixels this source feeds.
"""

import dataclasses
import hashlib
import os

import tensorflow as tf
from absl import logging

# data/sources.py imports this module (get_source), so nothing of it is imported back here: its names for the
# splits, the labels file and the TFRecord shards are repeated.
SPLITS = ("train", "minival", "validation")
LABELS_FILE = "labels.txt"
TFRECORD_TRAIN_PATTERN = "train-*-of-*"

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
VALIDATION_FRACTION = 0.1  # of each class, held out as validation when DIR has no validation/ folder
SPLIT_SEED = "efficientnet-folders-0:"  # the split's hash salt: changing it changes every split
IMAGENET_VALIDATION_LABELS = "synset_labels.txt"  # the original's raw ImageNet layout (imagenet_to_gcs.py)
JPEG_QUALITY = 100  # imagenet_to_gcs.py ImageCoder re-encodes PNG and CMYK at quality 100


def canonical_jpeg(data):
    """Encoded image bytes → the JPEG bytes the TFRecord path would hold after conversion (module docstring).
    Graph ops only; fails (InvalidArgumentError) on bytes that do not fully decode."""
    data = tf.convert_to_tensor(data, tf.string)
    jpeg = tf.io.is_jpeg(data)
    channels = tf.cond(jpeg, lambda: tf.image.extract_jpeg_shape(data)[2], lambda: tf.constant(0, tf.int32))

    def keep():
        # A truncated JPEG fails its full decode. The decode's output feeds an Assert (a stateful op): a bare
        # control dependency on the stateless decode is pruned inside tf.data functions and would never run.
        decoded = tf.io.decode_jpeg(data, channels=3)
        with tf.control_dependencies([tf.debugging.Assert(tf.size(decoded) > 0, ["empty JPEG"])]):
            return tf.identity(data)

    def reencode():
        image = tf.io.decode_image(data, channels=3, expand_animations=False)  # a GIF's first frame
        return tf.io.encode_jpeg(image, format="rgb", quality=JPEG_QUALITY)

    return tf.cond(tf.logical_and(jpeg, tf.not_equal(channels, 4)), keep, reencode)


def is_image_name(name):
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _entries(directory):
    """(subfolder names, file names, skipped paths with reasons) of one directory, hidden names left out.
    Local directories use os.scandir (one system call for 50,000 class folders); gs:// uses tf.io.gfile."""
    folders, files, skipped = [], [], []
    if "://" not in directory:
        with os.scandir(directory) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    folders.append(entry.name)
                elif entry.is_file():
                    files.append(entry.name)
                else:
                    skipped.append((entry.path, "a broken symlink or not a regular file"))
        return folders, files, skipped
    for name in tf.io.gfile.listdir(directory):
        if name.startswith("."):
            continue
        if name.endswith("/") or tf.io.gfile.isdir(os.path.join(directory, name)):
            folders.append(name.rstrip("/"))
        else:
            files.append(name)
    return folders, files, skipped


def _class_files(root):
    """{class name: sorted image file names}, skipped [(path, reason)] for the class folders under root."""
    classes, skipped = {}, []
    folders, loose, bad = _entries(root)
    skipped += bad + [(os.path.join(root, name), "not inside a class folder") for name in loose if name != LABELS_FILE]
    for name in sorted(folders):
        sub_folders, files, bad = _entries(os.path.join(root, name))
        skipped += bad + [(os.path.join(root, name, sub), "a folder inside a class folder") for sub in sub_folders]
        skipped += [
            (os.path.join(root, name, f), "not an image file by its name") for f in files if not is_image_name(f)
        ]
        classes[name] = sorted(f for f in files if is_image_name(f))
    return classes, skipped


def _order_key(relative_path):
    return hashlib.sha256((SPLIT_SEED + relative_path).encode("utf-8")).digest()


def _quotas(sizes, fraction):
    """Files each class gives to a split of `fraction`: round(fraction x total) overall, floor(fraction x size)
    per class plus one for the classes with the largest remainders (ties: class order)."""
    total = int(round(fraction * sum(sizes)))
    base = [int(fraction * size) for size in sizes]
    order = sorted(range(len(sizes)), key=lambda i: (-(fraction * sizes[i] - base[i]), i))
    for i in order[: max(0, total - sum(base))]:
        base[i] += 1
    return base


def _carve(per_class, fraction):
    """Split {class: [relative paths]} into (taken, rest), each {class: sorted paths}; `taken` holds the first
    files of each class in hash order, as many as _quotas gives."""
    names = sorted(per_class)
    quotas = _quotas([len(per_class[name]) for name in names], fraction)
    taken, rest = {}, {}
    for name, quota in zip(names, quotas):
        ordered = sorted(per_class[name], key=_order_key)
        taken[name], rest[name] = sorted(ordered[:quota]), sorted(ordered[quota:])
    return taken, rest


@dataclasses.dataclass(frozen=True)
class Listing:
    """What a folder layout holds: class names in label order, per split the (path, label) pairs, and the files
    skipped while listing."""

    class_names: tuple
    splits: dict  # split -> tuple of (full path, label)
    skipped: tuple  # (path, reason)


def _imagenet_validation(data_dir, class_index):
    """The original's raw validation layout: validation/*.JPEG sorted, labels from synset_labels.txt."""
    directory = os.path.join(data_dir, "validation")
    labels_path = os.path.join(data_dir, IMAGENET_VALIDATION_LABELS)
    with tf.io.gfile.GFile(labels_path) as f:
        wnids = [line.strip() for line in f if line.strip()]
    _, files, _ = _entries(directory)
    files = sorted(f for f in files if is_image_name(f))
    if len(files) != len(wnids):
        raise ValueError(f"{labels_path} has {len(wnids)} labels for the {len(files)} images in {directory}")
    missing = sorted(set(wnids) - set(class_index))
    if missing:
        raise ValueError(f"validation class {missing[0]} ({labels_path}) has no folder in {data_dir}/train")
    return tuple((os.path.join(directory, f), class_index[w]) for f, w in zip(files, wnids))


def _pairs(root, per_class, class_index):
    return tuple(
        (os.path.join(root, name, f), class_index[name]) for name in sorted(per_class) for f in per_class[name]
    )


def _check_classes(root, classes):
    if not classes:
        raise ValueError(f"{root} has no class folders (expected {root}/<class>/*.jpg, one folder per class)")
    if len(classes) == 1:
        raise ValueError(
            f"{root} has one class folder ({next(iter(classes))}); classification needs at least "
            "two (one folder per class)"
        )
    for name, files in classes.items():
        if not files:
            raise ValueError(
                f"class folder {os.path.join(root, name)} holds no image files "
                f"({' '.join(IMAGE_EXTENSIONS)}); add images or remove the folder"
            )


def _validation_split(data_dir, class_index):
    """(validation pairs, skipped) from DIR/validation: class folders, or the raw ImageNet flat layout."""
    directory = os.path.join(data_dir, "validation")
    if tf.io.gfile.exists(os.path.join(data_dir, IMAGENET_VALIDATION_LABELS)):
        return _imagenet_validation(data_dir, class_index), ()
    classes, skipped = _class_files(directory)
    missing = sorted(set(classes) - set(class_index))
    if missing:
        raise ValueError(
            f"validation class folder {os.path.join(directory, missing[0])} has no train folder "
            f"{os.path.join(data_dir, 'train', missing[0])}; every class needs training images"
        )
    return _pairs(directory, classes, class_index), tuple(skipped)


def scan(data_dir, holdout_fraction):
    """The Listing of a folder layout (module docstring for the rules)."""
    data_dir = str(data_dir).rstrip("/")
    split_layout = tf.io.gfile.isdir(os.path.join(data_dir, "train"))
    root = os.path.join(data_dir, "train") if split_layout else data_dir
    classes, skipped = _class_files(root)
    _check_classes(root, classes)
    names = tuple(sorted(classes))
    class_index = {name: i for i, name in enumerate(names)}
    if split_layout and tf.io.gfile.isdir(os.path.join(data_dir, "validation")):
        validation, more = _validation_split(data_dir, class_index)
        skipped += list(more)
        train = classes
    else:
        carved, train = _carve(classes, VALIDATION_FRACTION)
        validation = _pairs(root, carved, class_index)
    minival, train = _carve(train, holdout_fraction)
    splits = {
        "train": _pairs(root, train, class_index),
        "minival": _pairs(root, minival, class_index),
        "validation": validation,
    }
    return Listing(class_names=names, splits=splits, skipped=tuple(skipped))


def looks_like_folders(data_dir):
    """True when data_dir holds no ImageNet-format TFRecords but has subfolders: a folder layout."""
    data_dir = str(data_dir)
    if not tf.io.gfile.isdir(data_dir) or tf.io.gfile.glob(os.path.join(data_dir, TFRECORD_TRAIN_PATTERN)):
        return False
    return bool(_entries(data_dir)[0])


def _warn_skipped(skipped):
    if skipped:
        path, reason = skipped[0]
        logging.warning(
            "skipped %d files that are not images of a class folder, e.g. %s (%s)", len(skipped), path, reason
        )


class FolderSource:
    """Image folders as a source with the interface of data/sources.py's TFRecordSource (see the module
    docstring for the layout rules). Labels are 0..N-1 in sorted class-name order; with include_background they
    are 1..N with 0 as a background class (num_classes N + 1), as for TFRecords."""

    def __init__(self, data_dir, *, holdout_fraction, include_background=False, num_classes=None):
        """num_classes: the class count the user gave (background excluded); it must equal the folders'."""
        if not 0.0 <= holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction!r}")
        self.data_dir = str(data_dir)
        self.holdout_fraction = float(holdout_fraction)
        self.include_background = bool(include_background)
        self.listing = scan(self.data_dir, self.holdout_fraction)
        _warn_skipped(self.listing.skipped)
        names = self.listing.class_names
        if num_classes is not None and num_classes != len(names):
            raise ValueError(
                f"{self.data_dir} has {len(names)} class folders but the class count given is {num_classes}"
            )
        self.num_classes = len(names) + (1 if include_background else 0)
        self.class_names = (("background",) + names) if include_background else names

    def files(self, split):
        """The image paths of `split`, in label then name order."""
        self.num_examples(split)  # checks the name
        return [path for path, _ in self.listing.splits[split]]

    def num_examples(self, split):
        """Files of `split` (known from the listing; an undecodable file is counted here and skipped, as a bad
        record, when read)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
        return len(self.listing.splits[split])

    def records(self, split, *, training, input_context=None, seed=None, deterministic=True):
        """One epoch of (path, label) pairs for this input pipeline: sharded by position (every file is one
        record, so file and record sharding coincide), then shuffled over the whole shard each epoch when
        training (the pairs are small; the shuffle buffer, which a checkpoint holds, is a list of paths)."""
        del deterministic  # the order is fixed by the seed: nothing here reads in parallel
        self.num_examples(split)  # checks the name
        pairs = self.listing.splits[split]
        if split == "minival" and not pairs:
            raise ValueError(
                f"split 'minival' is empty: the holdout fraction is {self.holdout_fraction} for {self.data_dir}"
            )
        paths = tf.constant([path for path, _ in pairs], tf.string, shape=[len(pairs)])
        labels = tf.constant([label for _, label in pairs], tf.int32, shape=[len(pairs)])
        dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
        if input_context is not None and input_context.num_input_pipelines > 1:
            dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        if training and pairs:
            dataset = dataset.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
        return dataset

    def parse(self, record):
        """(path, label) → (JPEG bytes of canonical_jpeg, int32 label, unchecked). An unreadable or undecodable
        file fails the element: data/pipeline.py skips and counts it."""
        path, label = record
        image = canonical_jpeg(tf.io.read_file(path))
        return image, label + 1 if self.include_background else label
