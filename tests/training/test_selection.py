"""Model selection around the archive: recovery of an archive whose update was interrupted, and early stopping."""

import json
import os

import pytest

from configs import transfer
from tests.conftest import tiny_config
from training import checks
from training.session import run
from training.store import checkpoints, logs


def _archive_dir(root, name, step, top_1, complete=True):
    path = root / name
    path.mkdir()
    (path / "best.index").write_bytes(b"index")
    if complete:
        (path / checkpoints.BEST_EVAL_FILE).write_text(json.dumps({"step": step, "split": "minival", "top_1": top_1}))
    return path


def test_an_interrupted_archive_swap_is_put_back(tmp_path):
    """A kill between the two renames of replace_dir leaves only archive.old-*: read_best restores it."""
    _archive_dir(tmp_path, "archive.old-1234abcd", step=40, top_1=0.5)
    assert not (tmp_path / "archive").exists()
    assert checkpoints.read_best(str(tmp_path))["step"] == 40
    assert (tmp_path / "archive" / "best.index").exists()
    assert checkpoints.find_weights(str(tmp_path)) == checkpoints.archived_prefix(str(tmp_path))


def test_an_incomplete_leftover_is_not_taken_for_the_archive(tmp_path):
    """A leftover without best_eval.json (killed mid-write) is never promoted; an existing archive is never
    replaced by a leftover."""
    _archive_dir(tmp_path, "archive.old-00000000", step=10, top_1=0.1, complete=False)
    assert checkpoints.read_best(str(tmp_path)) is None
    assert not (tmp_path / "archive").exists()
    _archive_dir(tmp_path, "archive", step=30, top_1=0.3)
    _archive_dir(tmp_path, "archive.old-ffffffff", step=20, top_1=0.9)
    assert checkpoints.read_best(str(tmp_path))["step"] == 30


@pytest.mark.slow
def test_early_stopping_ends_the_run_after_evaluations_without_improvement(tmp_path, demo_cache, capsys):
    """With a learning rate too small to change any prediction, the second evaluation does not beat the first:
    patience 1 stops the run there, long before its 12 steps, and a rerun does not train further. Deterministic,
    so that the BatchNorm statistics (which move whatever the learning rate) give the same outcome every time."""
    model_dir = tmp_path / "run"
    fields = {
        "runtime.mode": "train",
        "eval.in_training": True,
        "train.steps": 12,
        "eval.steps_per_eval": 2,
        "train.iterations_per_loop": 2,
        "train.base_learning_rate": 1e-20,
        "eval.early_stopping_evals": 1,
        "train.deterministic": True,
    }
    run.run(tiny_config(model_dir, demo_cache, **fields))
    records = logs.read_metrics(str(model_dir))
    assert [r["step"] for r in records] == [2, 4]
    assert records[1]["top_1"] <= records[0]["top_1"]
    assert "early stopping: 1 evaluations without a better top-1" in capsys.readouterr().out
    assert checkpoints.read_best(str(model_dir))["step"] == 2

    run.run(tiny_config(model_dir, demo_cache, **fields))  # the count survives a restart through metrics.jsonl
    assert [r["step"] for r in logs.read_metrics(str(model_dir))] == [2, 4]


@pytest.mark.parametrize("name", sorted(transfer.DATASETS))
def test_every_transfer_config_is_valid_and_names_its_dataset(name):
    config = transfer.get_config(name)
    checks.validate_config(config)
    row = transfer.DATASETS[name]
    assert config.data.dataset == f"tfds:{row.tfds_name}"
    assert config.train.batch_size == row.batch_size and config.train.epochs == row.epochs
    # About 20 evaluations per run, at least one per epoch.
    assert config.eval.epochs_per_eval == max(1.0, row.epochs / 20)
    # A quarter of ImageNet's rate per 256 images: the network starts trained.
    assert config.train.base_learning_rate == pytest.approx(0.016 / 4)


def test_an_unknown_transfer_dataset_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown transfer dataset 'birdsnap'.*Birdsnap and FGVC Aircraft"):
        transfer.get_config("birdsnap")


def test_the_readme_commands_name_existing_transfer_rows():
    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md"), encoding="utf-8").read()
    named = {line.split("transfer.py:")[1].split()[0] for line in readme.splitlines() if "transfer.py:" in line}
    assert named and named <= set(transfer.DATASETS), named - set(transfer.DATASETS)
