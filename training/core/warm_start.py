"""Starting a run from pretrained weights (--init_checkpoint): fine-tuning on another dataset.

Three kinds of files are accepted, told apart by their content:
- a Keras weight file (.h5/.hdf5: the published efficientnetb0.h5 ... b7, or a Keras 3 .weights.h5), local or
  on any file system TensorFlow reads (gs://: copied to a local temporary file, h5py reads only local files);
- a checkpoint of this project (a model_dir, its archive/, or a ckpt-N prefix): its EMA weights are used;
- an original tensorflow/tpu checkpoint (variables under efficientnet-bX/, EMA shadows preferred).
Every layer is loaded except the classifier when the class counts differ; the new classifier keeps the
reference initialization (uniform ±1/sqrt(num_classes), docs/recipe.md §2).
"""
import contextlib
import os
import tempfile

import tensorflow as tf

import efficientnet
from efficientnet import ema as ema_lib
from efficientnet import loading, weights as weights_lib
from training.store import checkpoints
from training.errors import UserError, first_line

CLASSIFIER = loading.CLASSIFIER_LAYERS
def is_keras_file(path):
    return weights_lib.is_h5_file(path)


@contextlib.contextmanager
def _local_copy(path):
    """`path` itself when local, else a temporary local copy of it (h5py cannot read gs:// and the like)."""
    if "://" not in path:
        yield path
        return
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, os.path.basename(path))
        tf.io.gfile.copy(path, local)
        yield local


def _is_ours(reader):
    """This project's checkpoints hold the model under "model/"; tensorflow/tpu's under "efficientnet-bX/"."""
    return any(k.startswith("model/") for k in reader.get_variable_to_shape_map())


def _our_num_classes(reader):
    """The class count of one of our checkpoints: the classifier is the only 2-D variable of the model."""
    shapes = reader.get_variable_to_shape_map()
    dense = [s for k, s in shapes.items() if k.startswith("model/") and len(s) == 2]
    if len(dense) != 1:
        raise UserError(f"--init_checkpoint: expected one classifier kernel, found {len(dense)}")
    return dense[0][1]


def _copy_layers(source, target):
    """Copies every weighted layer by name; the classifier only when its shape matches."""
    for layer in target.layers:
        if not layer.weights:
            continue
        values = source.get_layer(layer.name).get_weights()
        if layer.name in CLASSIFIER and [v.shape for v in values] != [tuple(w.shape) for w in layer.weights]:
            continue
        layer.set_weights(values)


def load_ema_weights(model, prefix):
    """Restores the EMA averages of one of our checkpoints (training or archive) into the plain `model` (outside
    any strategy) and copies them into its variables. A run trained with freeze_backbone averaged only the
    classifier and the BatchNorm statistics; the number of shadows in the checkpoint tells which kind it is, so
    both load (export, predict and warm starts share this)."""
    reader = tf.train.load_checkpoint(prefix)
    stored = sum(1 for key in reader.get_variable_to_shape_map()
                 if key.startswith("ema/shadows/") and key.endswith("VARIABLE_VALUE"))
    frozen = stored != len(ema_lib.ema_variables(model))
    set_backbone_trainable(model, not frozen)
    ema = ema_lib.ExponentialMovingAverage(ema_lib.ema_variables(model))
    checkpoints.restore_weights(prefix, model, ema)
    ema.copy_to()
    set_backbone_trainable(model, True)


def _from_our_checkpoint(model, prefix, reader, build_model):
    """Reads the checkpoint into a plain model of its own class count, takes its EMA weights, copies them."""
    source = build_model(_our_num_classes(reader))
    load_ema_weights(source, prefix)
    _copy_layers(source, model)


def warm_start(model, path, build_model):
    """Loads `path` into `model` (all but a mismatched classifier); returns a one-line description.

    Call outside any strategy scope: `build_model(num_classes)` then builds a plain network of the same config
    for reading this project's checkpoints, and assigning into a distributed `model` writes every replica.
    """
    try:
        if is_keras_file(path):
            with _local_copy(path) as local:
                result = efficientnet.load_weights(model, local, skip_mismatch_layers=CLASSIFIER)
            return f"loaded {len(result.loaded)} layers from {path}"
        prefix = checkpoints.checkpoint_prefix(path)
        reader = tf.train.load_checkpoint(prefix)
        if _is_ours(reader):
            _from_our_checkpoint(model, prefix, reader, build_model)
            return f"loaded the EMA weights of {prefix}"
        efficientnet.load_weights(model, prefix, skip_mismatch_layers=CLASSIFIER)
        return f"loaded the original checkpoint {prefix}"
    except (ValueError, OSError, NotImplementedError, tf.errors.OpError) as e:  # OSError: h5py's truncated file
        raise UserError(f"--init_checkpoint {path}: {first_line(e)}") from None


def weights_num_classes(path):
    """The class count stored in a weight file or checkpoint (its classifier's output width)."""
    if is_keras_file(path):
        import h5py  # pylint: disable=import-outside-toplevel
        try:
            with _local_copy(path) as local, h5py.File(local, "r") as h5:
                stored = weights_lib.read_h5_weights(h5, path)
        except (OSError, ValueError, tf.errors.OpError) as e:
            raise UserError(f"cannot read {path}: {first_line(e)}") from None
        if CLASSIFIER[0] not in stored:
            raise UserError(f"{path} has no classifier layer ({CLASSIFIER[0]}); it is a _notop file")
        return int(stored[CLASSIFIER[0]][-1].shape[-1])
    reader = tf.train.load_checkpoint(checkpoints.checkpoint_prefix(path))
    if _is_ours(reader):
        return _our_num_classes(reader)
    dense = [s for k, s in reader.get_variable_to_shape_map().items() if k.endswith("head/dense/kernel")]
    if not dense:
        raise UserError(f"{path}: cannot find the classifier (head/dense/kernel) to count the classes")
    return dense[0][1]


def load_for_inference(model, path):
    """Loads every layer, classifier included, from a .h5 file or an original tensorflow/tpu checkpoint."""
    try:
        if is_keras_file(path):
            with _local_copy(path) as local:
                efficientnet.load_weights(model, local)
        else:
            efficientnet.load_weights(model, checkpoints.checkpoint_prefix(path))
    except (ValueError, OSError, NotImplementedError, tf.errors.OpError) as e:  # OSError: h5py's truncated file
        raise UserError(f"cannot load {path}: {first_line(e)}") from None


def is_our_checkpoint(path):
    return not is_keras_file(path) and _is_ours(tf.train.load_checkpoint(checkpoints.checkpoint_prefix(path)))


def freeze_backbone(model):
    """Trains only the classifier: every other layer becomes non-trainable (BatchNorm then runs in inference
    mode, as Keras does for frozen BatchNorm layers)."""
    set_backbone_trainable(model, False)
    if not model.trainable_weights:
        raise UserError("freeze_backbone: the model has no classifier layer named 'predictions' to train")


def set_backbone_trainable(model, trainable):
    """Freezes (False) or unfreezes (True) every layer but the classifier."""
    for layer in model.layers:
        if layer.name not in CLASSIFIER:
            layer.trainable = trainable
