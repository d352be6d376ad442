"""training/store/labels.py's class names: ImageNet's human-readable names in label order, and the fallbacks.

Fast: no model is built and nothing is downloaded; tfds' labels.txt is located without importing tfds.
"""

import importlib.util
import os
import re
import types

import pytest

from data import make_imagenet_class_names as generator
from training.store import labels

# Standard ImageNet facts: (label, synset id, WordNet lemmas).
KNOWN_CLASSES = [
    (0, "n01440764", "tench, Tinca tinca"),
    (1, "n01443537", "goldfish, Carassius auratus"),
    (207, "n02099601", "golden retriever"),
    (999, "n15075141", "toilet tissue, toilet paper, bathroom tissue"),
]


def _tfds_labels():
    """The synset ids of tensorflow-datasets' imagenet2012 labels.txt: the label order of our ImageNet pipeline."""
    root = list(importlib.util.find_spec("tensorflow_datasets").submodule_search_locations)[0]
    with open(os.path.join(root, "datasets", "imagenet2012", "labels.txt"), encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def _file_lines():
    with open(labels.IMAGENET_CLASS_NAMES_FILE, encoding="utf-8") as f:
        return f.read().splitlines()


def test_file_is_1000_synset_tab_names_lines():
    lines = _file_lines()
    assert len(lines) == 1000
    bad = [line for line in lines if not re.fullmatch(r"n\d{8}\t[^\t]*\S[^\t]*", line)]
    assert not bad, f"lines not 'synset<TAB>names': {bad[:3]}"


def test_synset_order_is_tfds_label_order():
    synsets = [synset for synset, _ in labels.read_imagenet_synsets_and_names()]
    assert synsets == _tfds_labels()


@pytest.mark.parametrize("label,synset,names", KNOWN_CLASSES)
def test_known_classes(label, synset, names):
    assert labels.read_imagenet_synsets_and_names()[label] == (synset, names)
    assert labels.imagenet_class_names(1000)[label] == names


def test_1001_classes_put_background_first():
    names = labels.imagenet_class_names(1001)
    assert len(names) == 1001 and names[0] == "background"
    assert names[1:] == labels.imagenet_class_names(1000)


def test_names_are_unique_and_the_two_cranes_are_told_apart():
    names = labels.imagenet_class_names(1001)
    assert len(set(names)) == len(names)
    assert names[1 + 134] == "crane (n02012849)" and names[1 + 517] == "crane (n03126707)"
    assert "tabby, tabby cat" in names  # names without a twin stay as they are


def test_other_class_counts_are_refused():
    with pytest.raises(ValueError, match="1000 or 1001 classes, not 10"):
        labels.imagenet_class_names(10)


def test_damaged_file_is_refused(tmp_path):
    damaged = tmp_path / "names.txt"
    damaged.write_text("\n".join(_file_lines()[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="not 1000 'synset<TAB>names' lines; regenerate"):
        labels.read_imagenet_synsets_and_names(str(damaged))


def test_class_names_prefers_source_then_model_dir_then_imagenet_then_numbers(tmp_path):
    source = types.SimpleNamespace(class_names=("cat", "dog", "bird"))
    assert labels.class_names(source, 3, str(tmp_path)) == ["cat", "dog", "bird"]
    (tmp_path / labels.CLASS_NAMES_FILE).write_text("red\ngreen\nblue\n")
    assert labels.class_names(None, 3, str(tmp_path)) == ["red", "green", "blue"]
    # Names whose count differs from the model's are someone else's: skipped, never misapplied.
    assert labels.class_names(types.SimpleNamespace(class_names=("a", "b")), 3, str(tmp_path))[0] == "red"
    assert labels.class_names(None, 4, str(tmp_path)) == ["class 0", "class 1", "class 2", "class 3"]
    assert labels.class_names(None, 1000, str(tmp_path))[0] == "tench, Tinca tinca"
    assert labels.class_names(None, 1001)[:2] == ["background", "tench, Tinca tinca"]
    assert labels.class_names(types.SimpleNamespace(class_names=None), 2) == ["class 0", "class 1"]


def test_synset_ids_of_a_tfds_imagenet_source_become_readable_names(tmp_path):
    synsets = [synset for synset, _ in labels.read_imagenet_synsets_and_names()]
    assert labels.class_names(types.SimpleNamespace(class_names=synsets), 1000)[207] == "golden retriever"
    (tmp_path / labels.CLASS_NAMES_FILE).write_text("\n".join(["background"] + synsets) + "\n")
    assert labels.class_names(None, 1001, str(tmp_path))[:2] == ["background", "tench, Tinca tinca"]
    other = [f"label {i}" for i in range(1000)]  # 1000 names that are not ImageNet's are kept
    assert labels.class_names(types.SimpleNamespace(class_names=other), 1000) == other


def test_generator_reproduces_the_file_from_a_lemma_table(tmp_path):
    rows = [line.split("\t") for line in _file_lines()]
    # A real table holds ~22k synsets in another order: extra and shuffled rows must not matter.
    table = [f"{synset}\t{names}" for synset, names in reversed(rows)] + ["n99999999\tnot an ImageNet class"]
    (tmp_path / "lemmas.txt").write_text("\n".join(table) + "\n", encoding="utf-8")
    generator.main([str(tmp_path / "lemmas.txt"), str(tmp_path / "out.txt")])
    assert (tmp_path / "out.txt").read_text(encoding="utf-8").splitlines() == _file_lines()


def test_generator_names_a_synset_without_lemmas(tmp_path):
    table = [line for line in _file_lines() if not line.startswith("n02099601")]
    (tmp_path / "lemmas.txt").write_text("\n".join(table) + "\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="1 of 1000 ImageNet synsets have no lemmas in the table, e.g. n02099601"):
        generator.main([str(tmp_path / "lemmas.txt"), str(tmp_path / "out.txt")])
    assert not (tmp_path / "out.txt").exists()
