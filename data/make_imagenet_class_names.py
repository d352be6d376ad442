"""Regenerate data/imagenet_class_names.txt: human-readable names of the 1000 ImageNet classes in label order.

Label order is tensorflow-datasets' imagenet2012 labels.txt (the sorted synset ids; label i = line i). The names
are the WordNet lemmas of each synset, taken from the synset-to-lemma table that the timm wheel ships
(timm/data/_info/imagenet_synset_to_lemma.txt, one "synset<TAB>lemmas" per line). timm is only a source of
facts here, not a dependency: download its wheel once and point this script at it, or at the extracted table.

  pip download --no-deps timm -d /tmp/timm
  python data/make_imagenet_class_names.py /tmp/timm/timm-*.whl data/imagenet_class_names.txt

Output: exactly 1000 lines "synset<TAB>lemmas" (e.g. "n01440764<TAB>tench, Tinca tinca"), no header; the
format is described where it is read, training/store/labels.py.
"""

import argparse
import importlib.util
import os
import sys
import zipfile

LEMMA_TABLE_IN_WHEEL = "timm/data/_info/imagenet_synset_to_lemma.txt"
NUM_CLASSES = 1000


def default_labels_path():
    """tensorflow-datasets' imagenet2012 labels.txt, located without importing tfds (the import is slow)."""
    spec = importlib.util.find_spec("tensorflow_datasets")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("tensorflow-datasets is not installed; pass --labels PATH to its imagenet2012 labels.txt")
    root = list(spec.submodule_search_locations)[0]
    return os.path.join(root, "datasets", "imagenet2012", "labels.txt")


def read_lemma_text(path):
    """The lemma table's text, from a timm wheel (a zip) or from the plain table file."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as wheel:
            if LEMMA_TABLE_IN_WHEEL not in wheel.namelist():
                raise SystemExit(f"{path} has no {LEMMA_TABLE_IN_WHEEL}; is it a timm wheel?")
            return wheel.read(LEMMA_TABLE_IN_WHEEL).decode("utf-8")
    with open(path, encoding="utf-8") as f:
        return f.read()


def parse_lemmas(text):
    """{synset: lemmas} from "synset<TAB>lemmas" lines; a line without a tab means the wrong file was given."""
    lemmas = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        synset, sep, names = line.partition("\t")
        if not sep or not names.strip():
            raise SystemExit(f"lemma table line {number} is not 'synset<TAB>lemmas': {line!r}")
        lemmas[synset.strip()] = names.strip()
    return lemmas


def read_synsets(labels_path):
    """The 1000 synset ids in label order; anything else is not the labels file the pipeline uses."""
    with open(labels_path, encoding="utf-8") as f:
        synsets = [line.strip() for line in f if line.strip()]
    if len(synsets) != NUM_CLASSES or len(set(synsets)) != NUM_CLASSES:
        raise SystemExit(
            f"{labels_path}: expected {NUM_CLASSES} distinct synset ids, got {len(synsets)} lines "
            f"({len(set(synsets))} distinct)"
        )
    # The pipeline's label index is the position in the *sorted* synset list; an unsorted file would mislabel.
    if synsets != sorted(synsets):
        raise SystemExit(f"{labels_path}: synset ids are not sorted, so they are not the label order")
    return synsets


def class_name_lines(synsets, lemmas):
    """One "synset<TAB>lemmas" line per class; every synset must have lemmas, or the file would be incomplete."""
    missing = [synset for synset in synsets if synset not in lemmas]
    if missing:
        raise SystemExit(
            f"{len(missing)} of {len(synsets)} ImageNet synsets have no lemmas in the table, "
            f"e.g. {', '.join(missing[:5])}"
        )
    return [f"{synset}\t{lemmas[synset]}" for synset in synsets]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("lemmas", help="a timm wheel (.whl) or its imagenet_synset_to_lemma.txt")
    parser.add_argument("output", help="where to write the class names, e.g. data/imagenet_class_names.txt")
    parser.add_argument("--labels", default=None, help="imagenet2012 labels.txt (default: the installed tfds')")
    args = parser.parse_args(argv)
    lines = class_name_lines(
        read_synsets(args.labels or default_labels_path()), parse_lemmas(read_lemma_text(args.lemmas))
    )
    with open(args.output, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} class names to {args.output}")


if __name__ == "__main__":
    sys.exit(main())
