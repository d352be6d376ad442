"""Keras weight files for --init_checkpoint on remote file systems and with either HDF5 suffix (eager, fast)."""

import numpy as np
import pytest
import tensorflow as tf

import efficientnet
from training.core import warm_start
from training.errors import UserError
from training.store import weight_files

# A 7-block network at 32 px: building it eagerly takes about a second.
TINY = efficientnet.custom_variant(width=0.1, depth=0.1, resolution=32, name="tiny")


def _model(num_classes, seed):
    tf.keras.utils.set_random_seed(seed)
    return efficientnet.build_model(TINY, num_classes=num_classes)


def _to_ram(local_path, name):
    """Copies a file to TensorFlow's in-memory file system: a stand-in for gs:// that needs no network."""
    remote = f"ram://warm_start_test/{name}"
    tf.io.gfile.makedirs("ram://warm_start_test")
    tf.io.gfile.copy(local_path, remote, overwrite=True)
    return remote


@pytest.mark.parametrize("suffix", [".weights.h5", ".hdf5"])
def test_weights_on_a_remote_file_system_load_like_local_ones(tmp_path, suffix):
    source = _model(10, seed=1)
    local = str(tmp_path / f"source{suffix}")
    source.save_weights(local) if suffix == ".weights.h5" else _save_keras2_style(source, local)
    remote = _to_ram(local, f"source{suffix}")

    assert weight_files.weights_num_classes(remote) == 10
    target = _model(10, seed=2)
    weight_files.load_as_stored(target, remote)
    for expected, got in zip(source.weights, target.weights):
        np.testing.assert_array_equal(got.numpy(), expected.numpy(), err_msg=expected.path)


def _save_keras2_style(model, path):
    """The Keras 2 HDF5 layout of the published efficientnetb0.h5 ... b7 files (layer_names / weight_names)."""
    import h5py  # pylint: disable=import-outside-toplevel

    with h5py.File(path, "w") as h5:
        layers = [layer for layer in model.layers if layer.weights]
        h5.attrs["layer_names"] = [layer.name.encode() for layer in layers]
        for layer in layers:
            group = h5.create_group(layer.name)
            names = [f"{layer.name}/{w.name}:0".encode() for w in layer.weights]
            group.attrs["weight_names"] = names
            for name, weight in zip(names, layer.weights):
                group.create_dataset(name.decode(), data=weight.numpy())


def test_a_new_zero_classifier_stays_zero_while_every_other_layer_loads(tmp_path):
    # configs/finetune.py: the published weights' 1000-way head does not fit 4 classes, so the new head keeps
    # its initialization, here zeros (the first loss is then ln 4 whatever the features).
    source = _model(10, seed=1)
    path = str(tmp_path / "source.weights.h5")
    source.save_weights(path)
    tf.keras.utils.set_random_seed(2)
    target = efficientnet.build_model(TINY, num_classes=4, classifier_init="zeros")
    warm_start.warm_start(target, path, build_model=None)
    for layer in target.layers:
        for got, expected in zip(layer.weights, source.get_layer(layer.name).weights):
            if layer.name == "predictions":
                np.testing.assert_array_equal(got.numpy(), np.zeros(got.shape))
            else:
                np.testing.assert_array_equal(got.numpy(), expected.numpy(), err_msg=got.path)
    logits = target(tf.random.uniform([2, 32, 32, 3], 0, 255), training=False)
    np.testing.assert_array_equal(logits.numpy(), np.zeros([2, 4]))


def test_a_missing_weight_file_is_one_line(tmp_path):
    for path in (str(tmp_path / "missing.hdf5"), "ram://warm_start_test/missing.h5"):
        with pytest.raises(UserError) as error:
            weight_files.weights_num_classes(path)
        assert "\n" not in str(error.value) and path in str(error.value)
        with pytest.raises(UserError) as error:
            weight_files.load_as_stored(_model(10, seed=3), path)
        assert "\n" not in str(error.value) and path in str(error.value)


def test_ema_weights_of_a_frozen_backbone_run_load_for_export_and_warm_start(tmp_path):
    """A freeze_backbone run averages only the classifier (and BatchNorm statistics): its checkpoints hold fewer
    EMA shadows than a full run's. Loading reads the shadow count, so both kinds load, with the averages."""
    from efficientnet import ema as ema_lib  # pylint: disable=import-outside-toplevel
    from training.store import checkpoints  # pylint: disable=import-outside-toplevel

    trained = _model(5, seed=1)
    warm_start.freeze_backbone(trained)
    ema = ema_lib.ExponentialMovingAverage(ema_lib.ema_variables(trained))
    head = trained.get_layer("predictions")
    ema.shadows[0].assign(head.kernel + 1.0)  # an average that differs from the raw weights
    prefix = tf.train.Checkpoint(model=trained, ema=ema).write(str(tmp_path / "ckpt-1"))

    fresh = _model(5, seed=2)
    weight_files.load_ema_weights(fresh, prefix)
    np.testing.assert_array_equal(fresh.get_layer("predictions").kernel.numpy(), head.kernel.numpy() + 1.0)
    assert len(fresh.trainable_weights) == len(_model(5, seed=3).trainable_weights)  # left trainable
    assert checkpoints.checkpoint_prefix(str(tmp_path / "ckpt-1")) == str(tmp_path / "ckpt-1")


@pytest.mark.slow
def test_a_truncated_weight_file_for_training_is_one_line_and_writes_no_run(tmp_path, demo_cache):
    from tests.conftest import tiny_config  # pylint: disable=import-outside-toplevel
    from training.session import run  # pylint: disable=import-outside-toplevel

    whole = str(tmp_path / "whole.weights.h5")
    _model(10, seed=1).save_weights(whole)
    truncated = tmp_path / "truncated.weights.h5"
    truncated.write_bytes(open(whole, "rb").read()[:20_000])  # h5py raises OSError for it, not ValueError
    model_dir = tmp_path / "run"
    config = tiny_config(model_dir, demo_cache, **{"runtime.mode": "train", "runtime.init_checkpoint": str(truncated)})
    with pytest.raises(UserError) as error:
        run.run(config)
    assert "\n" not in str(error.value) and str(truncated) in str(error.value)
    assert not (model_dir / "config.json").exists() and not (model_dir / "class_names.txt").exists()
