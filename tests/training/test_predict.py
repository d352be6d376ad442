"""--mode=predict for real use (training/serving/predict.py), on a tiny model trained by main.py on a folder of photos:
files, folders and globs, each file's own error, --top_k, --output as JSON lines or CSV, checks before the
model is built."""

import csv
import json

import numpy as np
import pytest
import tensorflow as tf

from data import folders, preprocessing
from tests.conftest import run_main, tiny_config
from tests.data.conftest import make_folders, write_image
from tests.training.conftest import plan_of
from training.errors import UserError
from training.serving import scoring
from training.session import run
from training.store import checkpoints

pytestmark = pytest.mark.slow

TINY = [
    "--config=configs/tiny.py",
    "--train_steps=4",
    "--iterations_per_loop=2",
    "--steps_per_eval=2",
    "--config.data.holdout_fraction=0.2",
    "--config.runtime.tensorboard_images=0",
]


def _main(*args, timeout=600):
    return run_main(list(args), timeout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """main.py train_and_eval on class folders (train/ and validation/): the folder source end to end."""
    root = tmp_path_factory.mktemp("predict")
    photos = root / "photos"
    make_folders(str(photos), {"apple": 10, "pear": 10, "plum": 10}, "train")
    make_folders(str(photos), {"apple": 2, "pear": 2, "plum": 2}, "validation", start=100)
    process = _main(*TINY, f"--data_dir={photos}", f"--model_dir={root / 'run'}", "--mode=train_and_eval")
    assert process.returncode == 0, process.stderr[-2000:]
    assert "validation top-1" in process.stdout + process.stderr
    assert (root / "run" / "class_names.txt").read_text().split() == ["apple", "pear", "plum"]
    return root


def _inputs(root):
    """A folder, a glob, a plain file, a PNG, and three bad arguments."""
    inputs = root / "inputs"
    for i in range(3):
        write_image(str(inputs / "folder" / f"f{i}.jpg"), 200 + i)
    write_image(str(inputs / "globbed" / "g 1.jpg"), 210)
    write_image(str(inputs / "globbed" / "g2.jpg"), 211)
    write_image(str(inputs / "single.png"), 212, "png")
    (inputs / "bad.jpg").write_bytes(b"not an image at all")
    args = [
        str(inputs / "folder"),
        str(inputs / "globbed" / "*.jpg"),
        str(inputs / "single.png"),
        str(inputs / "bad.jpg"),
        str(inputs / "missing.jpg"),
        str(inputs / "nothing*.png"),
    ]
    good = sorted(
        str(p) for p in [*(inputs / "folder").iterdir(), *(inputs / "globbed").iterdir(), inputs / "single.png"]
    )
    return args, good


def _oracle(config, weights, paths):
    """Probabilities computed without predict.py: the model on each file's canonical bytes, one at a time."""
    plan = plan_of(config)
    model = scoring.inference_model(plan.network.inference(3), weights)
    rows = {}
    for path in paths:
        data = folders.canonical_jpeg(tf.io.read_file(path))
        pixels = preprocessing.preprocess_for_eval(data, plan.image_size, plan.crop_fraction, plan.resize_method)
        rows[path] = tf.nn.softmax(model(pixels[None], training=False))[0].numpy()
    return rows


def test_every_file_predicted_or_its_own_error_and_outputs(trained, tmp_path, capsys):
    args, good = _inputs(tmp_path)
    config = tiny_config(
        trained / "run",
        str(tmp_path / "unused"),
        **{
            "runtime.mode": "predict",
            "runtime.predict_top_k": 2,
            "runtime.predict_output": str(tmp_path / "out.jsonl"),
        },
    )
    summary = run.run(config, image_files=args)
    assert sorted(path for path, _ in summary["predictions"]) == good
    assert sorted(path for path, _ in summary["failed"]) == sorted(args[3:])
    err = capsys.readouterr().err
    assert sum(line.startswith("error: ") for line in err.splitlines()) == 3
    weights = checkpoints.find_weights(str(trained / "run"))
    oracle = _oracle(config, weights, good)
    names = ["apple", "pear", "plum"]
    for path, top in summary["predictions"]:
        assert len(top) == 2
        want = np.argsort(-oracle[path], kind="stable")[:2]
        assert [name for name, _ in top] == [names[i] for i in want]
        np.testing.assert_allclose([p for _, p in top], oracle[path][want], rtol=1e-5, atol=1e-6)
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sorted(line["path"] for line in lines if "top_k" in line) == good
    assert sorted(line["path"] for line in lines if "error" in line) == sorted(args[3:])
    first = next(line for line in lines if "top_k" in line)
    assert abs(first["top_k"][0]["probability"] - dict(summary["predictions"])[first["path"]][0][1]) < 1e-6

    config.runtime.predict_output = str(tmp_path / "out.csv")
    run.run(config, image_files=args[:3])
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * len(good) and {row["path"] for row in rows} == set(good)
    assert all(row["rank"] in ("1", "2") and not row["error"] for row in rows)


def test_files_checked_before_the_model_is_built(trained, tmp_path, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("the model was built")

    monkeypatch.setattr(scoring, "inference_model", no_model)
    config = tiny_config(trained / "run", str(tmp_path / "unused"), **{"runtime.mode": "predict"})
    (tmp_path / "bad.jpg").write_bytes(b"garbage")
    for files, message in (
        ([str(tmp_path / "missing.jpg"), str(tmp_path / "bad.jpg")], "no image to predict"),
        ([], "needs image files, folders or globs"),
    ):
        with pytest.raises(UserError, match=message):
            run.run(config, image_files=files)
    for field, value, message in (
        ("predict_top_k", 0, "--top_k must be a positive integer"),
        ("predict_output", str(tmp_path / "out.txt"), "must end in .jsonl or .csv"),
        ("predict_output", str(tmp_path / "no" / "out.csv"), "no such folder"),
    ):
        broken = tiny_config(
            trained / "run", str(tmp_path / "unused"), **{"runtime.mode": "predict", f"runtime.{field}": value}
        )
        with pytest.raises(UserError, match=message):
            run.run(broken, image_files=[str(tmp_path / "bad.jpg")])


def test_main_exits_non_zero_when_a_file_fails_and_help_names_positional_paths(trained, tmp_path):
    args, good = _inputs(tmp_path)
    process = _main("--mode=predict", f"--model_dir={trained / 'run'}", "--top_k=1", *args)
    assert process.returncode == 2, process.stderr[-2000:]
    assert "Traceback" not in process.stderr
    errors = [line for line in process.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3 and all(any(arg in line for arg in args[3:]) for line in errors)
    printed = [line for line in process.stdout.splitlines() if line and not line.startswith(" ")]
    assert sorted(printed) == good
    helped = _main("--help", timeout=120)
    assert "positional arguments" in helped.stdout and "--mode=predict" in helped.stdout
