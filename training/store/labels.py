"""Class names in label order: the data's own, those a training run left in model_dir, or ImageNet's.

Predict prints them, the export carries them as an asset. ImageNet class names come from data/imagenet_class_names.txt,
read from the source tree like the rest of the application (setup.py installs only `efficientnet`; the application runs
from the repository root). Format: exactly 1000 lines, no header, line i (from 0) = label i = "synset<TAB>names", e.g.

    n01440764<TAB>tench, Tinca tinca

where synset is the WordNet id at position i of tensorflow-datasets' imagenet2012 labels.txt (the sorted ids:
our ImageNet label order) and names are that synset's WordNet lemmas, comma-separated. The ids are kept so the
mapping can be checked against labels.txt; data/make_imagenet_class_names.py regenerates the file.
"""

import collections
import os

import tensorflow as tf

import data
from data.sources import IMAGENET_NUM_CLASSES

IMAGENET_CLASS_NAMES_FILE = os.path.join(os.path.dirname(os.path.abspath(data.__file__)), "imagenet_class_names.txt")


def read_imagenet_synsets_and_names(path=IMAGENET_CLASS_NAMES_FILE):
    """[(synset, names)] in label order, from the file described in the module docstring."""
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\r\n").split("\t") for line in f if line.strip()]
    # A truncated or hand-edited file would shift every label after the damage, so accept only the exact shape.
    if len(rows) != IMAGENET_NUM_CLASSES or any(len(row) != 2 or not row[1].strip() for row in rows):
        raise RuntimeError(
            f"{path} is not {IMAGENET_NUM_CLASSES} 'synset<TAB>names' lines; "
            f"regenerate it with data/make_imagenet_class_names.py"
        )
    return [(synset, names) for synset, names in rows]


def _disambiguate(rows):
    """Names, with the synset id appended where two classes share a name (ImageNet has one such pair: "crane"
    the bird, n02012849, and "crane" the machine, n03126707), so that every printed class is identifiable."""
    counts = collections.Counter(names for _, names in rows)
    return [f"{names} ({synset})" if counts[names] > 1 else names for synset, names in rows]


def imagenet_class_names(num_classes, rows=None):
    """Human-readable ImageNet class names (WordNet lemmas, e.g. "tench, Tinca tinca") in label order.

    With 1001 classes, class 0 is the background class of the original checkpoints. Names are unique: the
    few lemma strings that two synsets share get the synset id appended (see _disambiguate), because a top-5
    list that says "crane" twice, or once, cannot tell a bird from a machine.
    rows: read_imagenet_synsets_and_names() when the caller has read it already.
    """
    if num_classes not in (IMAGENET_NUM_CLASSES, IMAGENET_NUM_CLASSES + 1):
        raise ValueError(f"ImageNet models have 1000 or 1001 classes, not {num_classes}")
    names = _disambiguate(rows or read_imagenet_synsets_and_names())
    return (["background"] + names) if num_classes == IMAGENET_NUM_CLASSES + 1 else names


CLASS_NAMES_FILE = "class_names.txt"


def class_names(source, num_classes, model_dir=None):
    """The data source's names, else those a training run left in model_dir, else ImageNet's (for 1000 or 1001
    classes), else numbers. Lists of bare ImageNet synset ids (tfds:imagenet2012 names its classes so) become
    the human-readable names."""
    names = None
    if source is not None and source.class_names and len(source.class_names) == num_classes:
        names = list(source.class_names)
    path = os.path.join(model_dir or "", CLASS_NAMES_FILE)
    if names is None and model_dir and tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            names = [line.rstrip("\n") for line in f if line.strip()]
        names = names if len(names) == num_classes else None
    if num_classes in (IMAGENET_NUM_CLASSES, IMAGENET_NUM_CLASSES + 1):
        rows = read_imagenet_synsets_and_names()
        if names is None or names[-IMAGENET_NUM_CLASSES:] == [synset for synset, _ in rows]:
            return imagenet_class_names(num_classes, rows)
    return names or [f"class {i}" for i in range(num_classes)]
