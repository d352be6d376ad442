"""Where examples come from: ImageNet-format TFRecords, TensorFlow Datasets, or the built-in demo data.

A source knows its classes, its splits ("train" without the minival holdout, "minival", "validation") and their
sizes, and yields raw records for one input pipeline; `parse` turns a raw record into (image, label) where
image is the encoded bytes (or a uint8 image) and label an int32 in 0..num_classes−1. Parsing is lazy (done
inside the pipeline's decoding map) so that a bad record is skipped and counted there, not here.

Minival (docs/recipe.md §3): for TFRecords the first `holdout_shards` train shards (tensorflow/tpu: 20 of 1024 =
25,022 images); for TFDS the first examples of the train split by slicing. Either way it is disjoint from the
training split and fixed across runs.
"""

import collections
import json
import os
import re

import tensorflow as tf

IMAGENET_NUM_CLASSES = 1000
IMAGENET_HOLDOUT_SHARDS = 20  # docs/recipe.md §3
# Known sizes of the standard converter's layout (docs/recipe.md §3): counting 1.28M records would take minutes.
_STANDARD_LAYOUT = {
    "train_shards": 1024,
    "validation_shards": 128,
    "train": 1_281_167,
    "validation": 50_000,
    "holdout": {20: 25_022},
}
SPLITS = ("train", "minival", "validation")
TRAIN_PATTERN = "train-*-of-*"
VALIDATION_PATTERN = "validation-*-of-*"

_COUNT_CACHE = {}  # file path -> number of records, so each file is counted once per process


def check_split(split):
    """Raise a one-line ValueError unless `split` is one of SPLITS."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")


def _shard_plan(num_files, input_context, training):
    """(num_pipelines, pipeline_id, by_files): training shards files when every pipeline gets at least one,
    otherwise records; eval always shards records so the padding of the last batch stays small."""
    if input_context is None or input_context.num_input_pipelines == 1:
        return 1, 0, False
    pipelines, pipeline_id = input_context.num_input_pipelines, input_context.input_pipeline_id
    return pipelines, pipeline_id, training and num_files >= pipelines


def _count_records(path):
    """Records in one TFRecord file. A truncated or corrupt file is a one-line ValueError naming it: the split's
    size (epochs, the expected eval count) cannot be known, and a damaged copy is for the user to replace.
    (Where counts are known and no counting pass runs, the unreadable tail is skipped while reading and counted
    as a bad record, data/pipeline.py.)"""
    if path not in _COUNT_CACHE:
        try:
            count = tf.data.TFRecordDataset(path).reduce(tf.constant(0, tf.int64), lambda total, _: total + 1)
        except tf.errors.DataLossError as e:
            reason = e.message.rsplit("}}", 1)[-1].split(" [Op:")[0].strip()
            raise ValueError(
                f"TFRecord file {path} is truncated or corrupt ({reason}); copy it again or remove it"
            ) from None
        _COUNT_CACHE[path] = int(count)
    return _COUNT_CACHE[path]


LABELS_FILE = "labels.txt"  # beside the TFRecords: one class name per line, line i names stored label i + 1


def read_labels_file(data_dir):
    """The class names of data_dir/labels.txt (blank lines ignored), or None when there is no such file."""
    path = os.path.join(data_dir, LABELS_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        names = tuple(line.strip() for line in f if line.strip())
    if not names:
        raise ValueError(f"{path} names no classes (expected one class name per line, in label order)")
    return names


def _is_standard_imagenet(train_files):
    shards = _STANDARD_LAYOUT["train_shards"]
    return len(train_files) == shards and train_files[0].endswith(f"-of-{shards:05d}")


# What _scan_labels counts for a record without image/class/label (a value no stored label can have: int64's
# minimum, below the negative labels that are refused on their own).
_NO_LABEL = -(2**63)


def _scan_labels(train_files):
    """({stored label: class text or ""}, {stored label: records}) over train_files, parsing only the label
    features (the image bytes are read from disk but never decoded); records without a label count under
    _NO_LABEL."""
    spec = {
        "image/class/label": tf.io.FixedLenFeature([], tf.int64, default_value=_NO_LABEL),
        "image/class/text": tf.io.FixedLenFeature([], tf.string, default_value=""),
    }
    dataset = tf.data.TFRecordDataset(train_files, num_parallel_reads=min(16, len(train_files))).batch(4096)
    texts, counts = {}, collections.Counter()
    for batch in dataset.map(lambda records: tf.io.parse_example(records, spec)):
        labels = batch["image/class/label"].numpy()
        counts.update(labels.tolist())
        for label, text in zip(labels, batch["image/class/text"].numpy()):
            texts.setdefault(int(label), text.decode("utf-8", "replace"))
    return texts, counts


def _ask_for_count(data_dir, why):
    return ValueError(
        f"cannot read the class count of {data_dir}: {why}; give --num_label_classes or write "
        f"{LABELS_FILE} (one class name per line) beside the shards"
    )


def _check_plausible_count(data_dir, counts):
    """Refuses a largest stored label far above the number of distinct labels (more than twice it plus 100):
    one mislabelled record would otherwise make the classifier that wide (and the names that many)."""
    count = max(counts)
    if count > 2 * len(counts) + 100:
        others = max((label for label in counts if label != count), default=0)
        raise _ask_for_count(
            data_dir,
            f"its largest stored label {count} ({counts[count]} record(s)) is far above "
            f"its {len(counts)} distinct labels (the next largest is {others})",
        )


def detect_classes(data_dir, train_files, include_background=False):
    """(N, class names or None) of ImageNet-format TFRecords whose stored labels are 1..N.

    In this order: labels.txt beside the shards (its names); the standard ImageNet layout (1024 train shards:
    1000 classes, names from data/imagenet_class_names.txt at prediction time); otherwise one pass over the
    train shards' labels (minival included): N is the largest stored label, and the names are the records'
    image/class/text when every label has one, else the stored label numbers. Never a silent 1000: data whose
    labels cannot be read raises a ValueError asking for the class count. Label 0 is the background class with
    include_background; without it a few label-0 records (at most 1%) are bad records that the pipeline skips
    and counts, more mean labels stored 0..N-1, which is refused.
    """
    names = read_labels_file(data_dir)
    if names:
        return len(names), names
    if _is_standard_imagenet(train_files):
        return IMAGENET_NUM_CLASSES, None
    try:
        texts, counts = _scan_labels(train_files)
    except tf.errors.DataLossError:
        for path in train_files:  # name the damaged file, as counting would
            _count_records(path)
        raise
    except tf.errors.OpError as e:
        raise _ask_for_count(data_dir, f"its train shards' labels are unreadable ({first_line(e)[:160]})") from None
    total = sum(counts.values())
    if not total:
        raise _ask_for_count(data_dir, "its train shards hold no records")
    unlabelled = counts.pop(_NO_LABEL, 0)
    if unlabelled > 0.01 * total or unlabelled == total:  # a few are bad records, skipped and counted in training
        raise _ask_for_count(data_dir, f"{unlabelled} of its {total} train records have no image/class/label feature")
    if min(counts) < 0 or (not include_background and counts[0] > 0.01 * total):
        raise _ask_for_count(
            data_dir,
            f"{counts[min(counts)]} of its {total} train records store label "
            f"{min(counts)}, but ImageNet-format labels are 1..N (0 only as the "
            "background class, with include_background)",
        )
    count = max(counts)
    if count < 1:
        raise _ask_for_count(data_dir, "every train record stores label 0")
    _check_plausible_count(data_dir, counts)
    if all(texts.get(label) for label in range(1, count + 1)):
        return count, tuple(texts[label] for label in range(1, count + 1))
    return count, tuple(str(label) for label in range(1, count + 1))


def first_line(error):
    """The first line of an exception's message (TensorFlow errors carry a long op trace after it)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


class TFRecordSource:
    """ImageNet-format TFRecord shards (train-*-of-*, validation-*-of-*) in a local directory or gs:// path.

    Labels are stored 1..N (image/class/label); they become 0..N−1, or stay 1..N with 0 as a background class
    (num_classes N+1) when include_background is set (docs/recipe.md §3).
    """

    def __init__(
        self,
        data_dir,
        *,
        holdout_shards=IMAGENET_HOLDOUT_SHARDS,
        include_background=False,
        num_classes=None,
        class_names=None,
        record_counts=None,
    ):
        """num_classes: the number of stored labels N (1..N, no background); None reads it from the data (see
        detect_classes). class_names: N names in label order; None reads them from labels.txt when present."""
        self.data_dir = str(data_dir)
        self.include_background = bool(include_background)
        self._record_counts = dict(record_counts or {})
        train_files = self._glob(TRAIN_PATTERN, required=True)
        if not isinstance(holdout_shards, int) or not 0 <= holdout_shards < len(train_files):
            raise ValueError(
                f"holdout_shards must be an int in [0, {len(train_files)}) for the "
                f"{len(train_files)} train shards in {self.data_dir}; got {holdout_shards!r}"
            )
        self.holdout_shards = holdout_shards
        self._files = {"train": train_files[holdout_shards:], "minival": train_files[:holdout_shards]}
        if num_classes is None:
            num_classes, detected_names = detect_classes(self.data_dir, train_files, self.include_background)
            class_names = class_names or detected_names
        elif class_names is None:
            class_names = read_labels_file(self.data_dir)
            class_names = class_names if class_names and len(class_names) == num_classes else None
        self.num_classes = num_classes + (1 if include_background else 0)
        self.class_names = (
            (("background",) + tuple(class_names))
            if (class_names and include_background)
            else (tuple(class_names) if class_names else None)
        )

    def _glob(self, pattern, required):
        full_pattern = os.path.join(self.data_dir, pattern)
        files = sorted(tf.io.gfile.glob(full_pattern)) if tf.io.gfile.exists(self.data_dir) else []
        if required and not files:
            raise FileNotFoundError(
                f"no TFRecord files match {full_pattern} (expected ImageNet-format shards "
                "such as train-00000-of-01024, or one folder of images per class)"
            )
        return files

    def files(self, split):
        """Sorted shard paths of `split`."""
        check_split(split)
        if split == "validation" and "validation" not in self._files:
            self._files["validation"] = self._glob(VALIDATION_PATTERN, required=True)
        if split == "minival" and not self._files["minival"]:
            raise ValueError(f"split 'minival' is empty: holdout_shards is 0 for {self.data_dir}")
        return self._files[split]

    def _is_standard_layout(self):
        return _is_standard_imagenet(self._files["minival"] + self._files["train"])

    def _count(self, split):
        total = 0
        for path in self.files(split):
            name = os.path.basename(path)
            total += self._record_counts[name] if name in self._record_counts else _count_records(path)
        return total

    def num_examples(self, split):
        """Number of records of `split` ("train" excludes the minival holdout). The standard 1024/128-shard
        ImageNet layout uses the known counts (docs/recipe.md §3; only a non-default holdout is counted);
        any other layout is counted once per process."""
        check_split(split)
        if self._is_standard_layout():
            if split == "validation" and len(self.files(split)) == _STANDARD_LAYOUT["validation_shards"]:
                return _STANDARD_LAYOUT["validation"]
            if split in ("train", "minival"):
                holdout = (
                    0
                    if self.holdout_shards == 0
                    else (_STANDARD_LAYOUT["holdout"].get(self.holdout_shards) or self._count("minival"))
                )
                return holdout if split == "minival" else _STANDARD_LAYOUT["train"] - holdout
        return self._count(split)

    def records(self, split, *, training, input_context=None, seed=None, deterministic=True):
        """One epoch of serialized records for this input pipeline (files shuffled when training)."""
        files = self.files(split)
        pipelines, pipeline_id, by_files = _shard_plan(len(files), input_context, training)
        dataset = tf.data.Dataset.from_tensor_slices(files)
        if by_files:
            dataset = dataset.shard(pipelines, pipeline_id)
        if training and (by_files or pipelines == 1):
            # With record sharding every pipeline must read the files in the same order: no file shuffle.
            dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.interleave(
            lambda path: tf.data.TFRecordDataset(path, buffer_size=8 << 20),
            cycle_length=min(16, len(files)),
            block_length=1,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic or not training,
        )
        if pipelines > 1 and not by_files:
            dataset = dataset.shard(pipelines, pipeline_id)
        return dataset

    def parse(self, record):
        """Serialized tf.train.Example → (JPEG bytes, int32 label in 0..num_classes−1, unchecked)."""
        features = tf.io.parse_single_example(
            record,
            {
                "image/encoded": tf.io.FixedLenFeature([], tf.string),
                "image/class/label": tf.io.FixedLenFeature([], tf.int64),
            },
        )
        label = _to_int32(features["image/class/label"])
        return features["image/encoded"], label if self.include_background else label - 1


def _to_int32(label):
    """An int64 stored label as int32, checked before the cast: one beyond int32 (which would wrap, 2**32 + 3
    to 3) becomes -1, outside every class, so the pipeline counts its record as bad."""
    in_range = tf.logical_and(label >= 0, label <= tf.int32.max)
    return tf.cast(tf.where(in_range, label, tf.constant(-1, tf.int64)), tf.int32)


def _parse_tfds_name(dataset):
    match = re.fullmatch(r"tfds:([a-z0-9_]+(?:/[A-Za-z0-9_.\-]+)?)", dataset or "")
    if not match:
        raise ValueError(
            f"dataset must look like 'tfds:NAME' or 'tfds:NAME/config' (e.g. tfds:imagenet2012); got {dataset!r}"
        )
    return match.group(1)


class TFDSSource:
    """A TensorFlow Datasets image-classification dataset ("image" and "label" features), read as encoded bytes
    (tfds.decode.SkipDecoding) so training can decode only the crop window.

    Splits: "train" = train[holdout:], "minival" = train[:holdout] with holdout = round(holdout_fraction ·
    train size); "validation" = the dataset's "validation" split, or "test" when it has none (cifar10).
    """

    def __init__(self, name, *, holdout_fraction, include_background=False, data_dir=None):
        import tensorflow_datasets as tfds  # imported here: only TFDS users pay for the import

        if not 0.0 <= holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction!r}")
        self._tfds = tfds
        self.name = name
        try:
            self.builder = tfds.builder(name, data_dir=data_dir)
        except tfds.core.registered.DatasetNotFoundError:
            raise ValueError(f"unknown TensorFlow Datasets name {name!r} (see tfds.list_builders())") from None
        features = self.builder.info.features
        if "image" not in features or "label" not in features:
            raise ValueError(f"tfds:{name} has features {sorted(features)}; expected 'image' and 'label'")
        self.include_background = bool(include_background)
        names = tuple(features["label"].names)
        self.num_classes = features["label"].num_classes + (1 if include_background else 0)
        self.class_names = (("background",) + names) if include_background else names
        self.holdout_fraction = float(holdout_fraction)
        self._counts = {}

    def _split_info(self, spec):
        """Split metadata, or None when the dataset has none (e.g. under tfds.testing.mock_data)."""
        splits = self.builder.info.splits
        return splits[spec] if len(splits) else None

    def _full_train_size(self):
        info = self._split_info("train")
        if info is not None:
            return info.num_examples
        if "full_train" not in self._counts:
            self._counts["full_train"] = int(
                self._read("train", False).reduce(tf.constant(0, tf.int64), lambda total, _: total + 1)
            )
        return self._counts["full_train"]

    def split_spec(self, split):
        """The TFDS split string for one of SPLITS, e.g. "train[25022:]"."""
        check_split(split)
        if split == "validation":
            splits = self.builder.info.splits
            return "test" if len(splits) and "validation" not in splits and "test" in splits else "validation"
        holdout = int(round(self._full_train_size() * self.holdout_fraction))
        if split == "minival" and holdout == 0:
            raise ValueError(
                f"split 'minival' is empty for tfds:{self.name}: the holdout fraction is {self.holdout_fraction}"
            )
        return f"train[:{holdout}]" if split == "minival" else f"train[{holdout}:]"

    def num_examples(self, split):
        """Number of examples of `split` (from the dataset's metadata, counted when it has none)."""
        spec = self.split_spec(split)
        info = self._split_info(spec)
        if info is not None:
            return info.num_examples
        if spec not in self._counts:
            self._counts[spec] = int(
                self._read(spec, False).reduce(tf.constant(0, tf.int64), lambda total, _: total + 1)
            )
        return self._counts[spec]

    def _read(self, spec, shuffle_files, read_config=None):
        return self.builder.as_dataset(
            split=spec,
            shuffle_files=shuffle_files,
            read_config=read_config,
            decoders={"image": self._tfds.decode.SkipDecoding()},
        )

    def records(self, split, *, training, input_context=None, seed=None, deterministic=True):
        """One epoch of {"image": bytes, "label": int64} for this input pipeline (files shuffled when training)."""
        spec = self.split_spec(split)
        info = self._split_info(spec)
        num_files = len(info.file_instructions) if info is not None else 1
        pipelines, pipeline_id, by_files = _shard_plan(num_files, input_context, training)
        read_config = self._tfds.ReadConfig(
            shuffle_seed=seed,
            input_context=input_context if by_files else None,
            interleave_cycle_length=16,
            try_autocache=False,
        )
        if deterministic or not training:
            options = tf.data.Options()
            options.deterministic = True
            read_config.options = options
        dataset = self._read(spec, training, read_config)
        if pipelines > 1 and not by_files:
            dataset = dataset.shard(pipelines, pipeline_id)
        return dataset

    def parse(self, element):
        """{"image", "label"} → (encoded bytes, int32 label, unchecked)."""
        label = tf.cast(element["label"], tf.int32)
        return element["image"], label + 1 if self.include_background else label


def get_source(
    data_dir=None,
    dataset=None,
    *,
    holdout_shards=None,
    include_background=False,
    cache_dir=None,
    tfds_data_dir=None,
    holdout_fraction=None,
    num_classes=None,
):
    """Pick the data source.

    data_dir: directory (or gs:// path) of ImageNet-format TFRecords, or of one image folder per class
      (data/folders.py).
    dataset: "tfds:NAME" or "tfds:NAME/config" for TensorFlow Datasets.
    holdout_shards: TFRecord train shards held out as minival; None → 20 for ImageNet (docs/recipe.md §3),
      demo.DEMO_HOLDOUT_SHARDS for the demo data.
    include_background: keep class 0 as background (1001 ImageNet classes).
    cache_dir: demo data cache (default $EFFICIENTNET_DEMO_DIR or ~/.cache/efficientnet/demo).
    tfds_data_dir: TFDS data_dir.
    holdout_fraction: TFDS and image folders only: share of the train split held out as minival; None →
      holdout_shards / 1024, the original's share (20/1024 ≈ 1.95%).
    num_classes: TFRecords only: the model's class count as the user gave it (background included), which
      skips reading it from the data (TFRecordSource / detect_classes); None reads it.
    With neither data_dir nor dataset, returns the built-in demo dataset (generated once into cache_dir).
    """
    if data_dir is not None and dataset is not None:
        raise ValueError(f"give either data_dir ({data_dir!r}) or dataset ({dataset!r}), not both")
    if data_dir is not None and dataset is None:
        from data import folders  # a folder of photos per class (data/folders.py); here to keep imports one-way

        if folders.looks_like_folders(data_dir):
            if holdout_fraction is None:
                shards = IMAGENET_HOLDOUT_SHARDS if holdout_shards is None else holdout_shards
                holdout_fraction = shards / _STANDARD_LAYOUT["train_shards"]
            stored = None if num_classes is None else num_classes - (1 if include_background else 0)
            return folders.FolderSource(
                data_dir, holdout_fraction=holdout_fraction, include_background=include_background, num_classes=stored
            )
    if holdout_fraction is not None and dataset is None:
        raise ValueError(
            "holdout_fraction applies to tfds: datasets and image folders only; use holdout_shards for TFRecords"
        )
    if dataset is not None:
        if holdout_fraction is None:
            shards = IMAGENET_HOLDOUT_SHARDS if holdout_shards is None else holdout_shards
            holdout_fraction = shards / _STANDARD_LAYOUT["train_shards"]
        return TFDSSource(
            _parse_tfds_name(dataset),
            holdout_fraction=holdout_fraction,
            include_background=include_background,
            data_dir=tfds_data_dir,
        )
    if data_dir is not None:
        stored = None if num_classes is None else num_classes - (1 if include_background else 0)
        return TFRecordSource(
            data_dir,
            holdout_shards=IMAGENET_HOLDOUT_SHARDS if holdout_shards is None else holdout_shards,
            include_background=include_background,
            num_classes=stored,
        )
    from data import demo  # here, not at the top: only runs without data pay for the generator (numpy drawing)

    directory = demo.ensure_demo_data(cache_dir)
    with open(os.path.join(directory, demo.METADATA_FILE), encoding="utf-8") as handle:
        metadata = json.load(handle)
    return TFRecordSource(
        directory,
        holdout_shards=demo.DEMO_HOLDOUT_SHARDS if holdout_shards is None else holdout_shards,
        include_background=include_background,
        num_classes=len(metadata["class_names"]),
        class_names=metadata["class_names"],
        record_counts=metadata["record_counts"],
    )
