"""training/serving/ckpt_eval.py, the work of eval_ckpt_main.py: the original's output lines, the top 5 and the
ImageNet counts against a plain Keras call on the same pixels (tests/conftest.py eval_probabilities), the
background offset, the labels map and label file as the original reads them, and the weights file written."""

import json

import numpy as np
import pytest

from tests.conftest import eval_probabilities, tiny_config
from tests.data.conftest import write_image
from tests.training.conftest import plan_of
from training.errors import UserError
from training.serving import ckpt_eval, scoring

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """12 image files (one a PNG) in sorted order."""
    root = tmp_path_factory.mktemp("images")
    paths = []
    for i in range(12):
        kind = "png" if i == 4 else "jpeg"
        paths.append(str(root / f"ILSVRC2012_val_{i:08d}.{'png' if kind == 'png' else 'JPEG'}"))
        write_image(paths[-1], 300 + i, kind)
    return paths


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plan")
    return plan_of(tiny_config(tmp / "run", str(tmp / "cache")), 8)


def test_example_lines_are_the_originals_format():
    lines = ckpt_eval.example_lines("panda.jpg", [3, -1], [0.5, 0.0123456], {3: "giant panda", -1: "background"})
    # The original's format strings (utils.py:533-536), trailing spaces included.
    assert lines == [
        "predicted class for image {}: ".format("panda.jpg"),
        "  -> top_{} ({:4.2f}%): {}  ".format(0, 50.0, "giant panda"),
        "  -> top_{} ({:4.2f}%): {}  ".format(1, 1.23456, "background"),
    ]
    assert lines[2] == "  -> top_1 (1.23%): background  "


def test_examples_print_the_top_5_of_the_models_own_probabilities(tiny_run, plan, images):
    _, raw, _ = tiny_run
    expected = eval_probabilities(raw, images[:3])
    names = {i: f"name {i}" for i in range(8)}
    printed = []
    results = ckpt_eval.eval_examples(raw, plan, images[:3], names, 0, out=printed.append)
    assert len(printed) == 3 * 6
    for k, (indices, probs) in enumerate(results):
        order = np.argsort(-expected[k])
        assert np.all(-np.diff(expected[k][order[:6]]) > 1e-4)  # the fixture's classes are clearly apart
        assert indices == list(order[:5])
        np.testing.assert_allclose(probs, expected[k][order[:5]], atol=1e-5)
        assert printed[6 * k] == f"predicted class for image {images[k]}: "
        assert printed[6 * k + 1] == f"  -> top_0 ({expected[k][order[0]] * 100:4.2f}%): name {order[0]}  "


def _labels(expected, offset):
    """Labels with known outcomes: the top-1 class (hit at 1 and 5), the third (hit at 5 only), the last (miss),
    in turn; printed indices are the model's minus `offset`."""
    order = np.argsort(-expected, axis=1)
    return [int(order[i, (0, 2, 7)[i % 3]]) - offset for i in range(len(expected))]


def test_imagenet_counts_against_an_independent_count(tiny_run, plan, images, monkeypatch):
    _, raw, _ = tiny_run
    expected = eval_probabilities(raw, images)
    labels = _labels(expected, 0)
    # The independent count: a label is a top-1 hit when it is the argmax, top-5 when among the 5 largest.
    order = np.argsort(-expected, axis=1)
    top1 = [labels[i] == order[i, 0] for i in range(12)]
    top5 = [labels[i] in order[i, :5] for i in range(12)]
    monkeypatch.setattr(ckpt_eval, "_STEP_EVERY", 5)  # the original's 100, scaled to 12 images
    printed = []
    got = ckpt_eval.eval_imagenet(raw, plan, images, labels, 0, out=printed.append)
    np.testing.assert_allclose(got, (100 * np.mean(top1), 100 * np.mean(top5)))
    assert got == (100 * 4 / 12, 100 * 8 / 12)
    assert printed == [
        f"Step {i}: top1_acc = {100 * np.sum(top1[: i + 1]) / (i + 1):4.2f}%  "
        f"top5_acc = {100 * np.sum(top5[: i + 1]) / (i + 1):4.2f}%"
        for i in (0, 5, 10)
    ] + [f"Final: top1_acc = {100 * 4 / 12:4.2f}%  top5_acc = {100 * 8 / 12:4.2f}%"]


def test_include_background_shifts_the_predicted_indices_by_one(tiny_run, plan, images):
    _, raw, _ = tiny_run
    expected = eval_probabilities(raw, images)
    shifted = _labels(expected, 1)  # the same outcomes when the model's class i is label i - 1
    assert ckpt_eval.eval_imagenet(raw, plan, images, shifted, 1, out=lambda line: None) == (100 * 4 / 12, 100 * 8 / 12)
    assert ckpt_eval.eval_imagenet(raw, plan, images, shifted, 0, out=lambda line: None)[0] == 0.0
    indices, _ = ckpt_eval.eval_examples(raw, plan, images[:1], {i - 1: str(i) for i in range(8)}, 1, lambda _: 0)[0]
    assert indices == [int(i) - 1 for i in np.argsort(-expected[0])[:5]]


def test_labels_map_and_label_file_are_read_as_the_original_reads_them(tmp_path):
    path = tmp_path / "labels_map.txt"
    path.write_text(json.dumps({"0": "tench, Tinca tinca", "1": "goldfish"}))
    assert ckpt_eval.read_labels_map(str(path)) == {0: "tench, Tinca tinca", 1: "goldfish"}
    for bad in ("not json", "[1, 2]", '{"zero": "x"}'):
        path.write_text(bad)
        with pytest.raises(UserError, match="not a JSON object"):
            ckpt_eval.read_labels_map(str(path))
    labels = tmp_path / "labels.txt"
    labels.write_text("65\n970\n230\n")
    assert ckpt_eval.read_label_file(str(labels)) == [65, 970, 230]
    labels.write_text("65\nn01440764\n")
    with pytest.raises(UserError, match="one integer label a line"):
        ckpt_eval.read_label_file(str(labels))


def test_names_cover_every_class_or_the_run_is_refused_before_any_image():
    assert ckpt_eval.names_by_index(3, 0, class_names=["a", "b", "c"]) == {0: "a", 1: "b", 2: "c"}
    assert ckpt_eval.names_by_index(3, 1, class_names=["background", "a", "b"]) == {-1: "background", 0: "a", 1: "b"}
    assert ckpt_eval.names_by_index(3, 1, labels_map={0: "a", 1: "b"}) == {-1: "background", 0: "a", 1: "b"}
    with pytest.raises(UserError, match="no name for class 2.*add --include_background_label"):
        ckpt_eval.names_by_index(3, 0, labels_map={0: "a", 1: "b"})  # a 1001-class model with a 1000-name map


def test_the_weights_file_reloads_to_the_same_predictions(tiny_run, plan, images, tmp_path):
    _, _, averaged = tiny_run
    assert ckpt_eval.weights_file_path("out/b0") == "out/b0.weights.h5"
    assert ckpt_eval.weights_file_path("out/b0.weights.h5") == "out/b0.weights.h5"
    written = ckpt_eval.save_weights_file(averaged, str(tmp_path / "exported"))
    assert written == str(tmp_path / "exported.weights.h5")
    reloaded = scoring.inference_model(plan.network.inference(), written)
    np.testing.assert_allclose(
        eval_probabilities(reloaded, images[:4]), eval_probabilities(averaged, images[:4]), atol=1e-6
    )
    with pytest.raises(UserError, match="no such folder"):
        ckpt_eval.save_weights_file(averaged, str(tmp_path / "missing" / "exported"))
