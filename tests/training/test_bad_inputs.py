"""Bad input everywhere a user can give it: a clear one-line UserError, and nothing already written changes.

Flags and config values are covered by tests/test_main.py and test_checks.py; this table covers what only
shows up when the run starts: data sources, weight files, export paths, replica counts.
"""

import hashlib
import os

import pytest
import tensorflow as tf

from tests.conftest import tiny_config
from training.errors import UserError
from training.session import run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory, demo_cache):
    """A finished 3-step run with an export: the files a bad command must not damage."""
    model_dir = tmp_path_factory.mktemp("trained")
    run.run(tiny_config(model_dir, demo_cache, **{"train.steps": 3, "eval.steps_per_eval": 3}))
    return str(model_dir)


def _fingerprint(directory):
    digest = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                digest[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
    return digest


def _garbage_file(tmp_path):
    path = tmp_path / "weights.h5"
    path.write_bytes(b"this is not an HDF5 file")
    return str(path)


def _a_regular_file(tmp_path):
    path = tmp_path / "occupied"
    path.write_text("a file where the export directory should go")
    return str(path)


CASES = {
    "unknown tfds dataset": (
        lambda tmp: {"data.dataset": "tfds:no_such_dataset_xyz", "runtime.mode": "train"},
        "no_such_dataset_xyz",
    ),
    "missing data dir": (
        lambda tmp: {"data.data_dir": str(tmp / "nothing_here"), "runtime.mode": "train"},
        "train-*-of-*",
    ),
    "garbage weights for eval": (
        lambda tmp: {"runtime.mode": "eval", "runtime.init_checkpoint": _garbage_file(tmp)},
        "weights.h5",
    ),
    "missing weights for eval": (
        lambda tmp: {"runtime.mode": "eval", "runtime.init_checkpoint": str(tmp / "no.ckpt")},
        "no.ckpt",
    ),
    "export onto a file": (
        lambda tmp: {"runtime.mode": "export", "runtime.export_dir": _a_regular_file(tmp)},
        "it exists and is not a directory",
    ),
    "garbage init checkpoint for training": (
        lambda tmp: {
            "runtime.mode": "train",
            "runtime.init_checkpoint": _garbage_file(tmp),
            "runtime.model_dir": str(tmp / "fresh"),
        },
        "--init_checkpoint",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_a_one_line_error_and_damages_nothing(name, trained_dir, demo_cache, tmp_path):
    make_overrides, expected = CASES[name]
    before = _fingerprint(trained_dir)
    overrides = {"runtime.model_dir": trained_dir, **make_overrides(tmp_path)}
    with pytest.raises(UserError) as info:
        run.run(tiny_config(overrides.pop("runtime.model_dir"), demo_cache, **overrides))
    message = str(info.value)
    assert expected in message and "\n" not in message, message
    assert _fingerprint(trained_dir) == before


def test_batch_that_does_not_divide_over_replicas(tmp_path, demo_cache):
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    if len(devices) < 2:
        pytest.skip("needs the two logical CPU devices configured in tests/conftest.py")
    strategy = tf.distribute.MirroredStrategy(devices, cross_device_ops=tf.distribute.ReductionToOneDevice())
    with pytest.raises(UserError, match="train_batch_size=9 is not divisible by the 2 replicas"):
        run.run(tiny_config(tmp_path, demo_cache, **{"train.batch_size": 9}), strategy=strategy)
    assert not os.listdir(tmp_path)
