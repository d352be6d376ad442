"""Reading weight files: which kind a file is, its class count, and loading it into a built model.

Three kinds, told apart by their content:
- a Keras weight file (.h5/.hdf5: the published efficientnetb0.h5 ... b7, or a Keras 3 .weights.h5), local or
  on any file system TensorFlow reads (gs://: copied to a local temporary file, h5py reads only local files);
- a checkpoint of this project (a model_dir, its archive/, or a ckpt-N prefix): its EMA weights are the ones
  scored, exported and warm-started from (`load_raw_weights` reads the trained variables instead);
- an original tensorflow/tpu checkpoint (variables under efficientnet-bX/, EMA shadows preferred unless
  use_ema=False).
"""

import contextlib
import os
import tempfile

import tensorflow as tf

import efficientnet
from efficientnet import ema as ema_lib
from efficientnet import loading
from efficientnet import weights as weights_lib
from training.errors import UserError, first_line
from training.store import checkpoints

CLASSIFIER = loading.CLASSIFIER_LAYERS


@contextlib.contextmanager
def local_copy(path):
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


def is_our_checkpoint(path):
    return not weights_lib.is_h5_file(path) and _is_ours(tf.train.load_checkpoint(checkpoints.checkpoint_prefix(path)))


def _our_num_classes(reader):
    """The class count of one of our checkpoints: the classifier is the only 2-D variable of the model."""
    shapes = reader.get_variable_to_shape_map()
    dense = [s for k, s in shapes.items() if k.startswith("model/") and len(s) == 2]
    if len(dense) != 1:
        raise UserError(f"--init_checkpoint: expected one classifier kernel, found {len(dense)}")
    return dense[0][1]


def weights_num_classes(path):
    """The class count stored in a weight file or checkpoint (its classifier's output width)."""
    if weights_lib.is_h5_file(path):
        import h5py  # pylint: disable=import-outside-toplevel

        try:
            with local_copy(path) as local, h5py.File(local, "r") as h5:
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


def load_ema_weights(model, prefix):
    """Restores the EMA averages of one of our checkpoints (training or archive) into `model` and copies them into
    its variables. A run trained with freeze_backbone averaged only the classifier and the BatchNorm statistics;
    the number of shadows in the checkpoint tells which kind it is, so both load. Call outside any strategy
    scope: the averages are read into plain variables, and assigning them to a distributed model sets every
    replica."""
    reader = tf.train.load_checkpoint(prefix)
    stored = sum(
        1
        for key in reader.get_variable_to_shape_map()
        if key.startswith("ema/shadows/") and key.endswith("VARIABLE_VALUE")
    )
    frozen = stored != len(ema_lib.ema_variables(model))
    loading.set_backbone_trainable(model, not frozen)
    ema = ema_lib.ExponentialMovingAverage(ema_lib.ema_variables(model))
    checkpoints.restore_weights(prefix, model, ema)
    ema.copy_to()
    loading.set_backbone_trainable(model, True)


def load_raw_weights(model, prefix):
    """Restores the trained variables of one of our checkpoints (training or archive) into `model`, not their EMA
    averages: the original's --enable_ema=false (tensorflow/tpu utils.py:427-429 restores the variables
    themselves). Every model variable must match; the EMA shadows, optimizer slots and iterator are not read."""
    status = tf.train.Checkpoint(model=model).read(prefix)
    status.expect_partial()
    status.assert_existing_objects_matched()


def load_as_stored(model, path, *, use_ema=True):
    """Loads every layer, classifier included, from a .h5 file or an original tensorflow/tpu checkpoint.

    use_ema=False: an original checkpoint's raw variables instead of their ExponentialMovingAverage shadows. A
    Keras file holds one set of weights, so it is refused then (UserError) rather than loaded as if raw.
    """
    if not use_ema and weights_lib.is_h5_file(path):
        raise UserError(
            f"{path} is a Keras weight file: it holds one set of weights, no raw weights beside their averages "
            "to choose from (a checkpoint has both)"
        )
    try:
        if weights_lib.is_h5_file(path):
            with local_copy(path) as local:
                efficientnet.load_weights(model, local)
        else:
            efficientnet.load_weights(model, checkpoints.checkpoint_prefix(path), use_ema=use_ema)
    except (ValueError, OSError, NotImplementedError, tf.errors.OpError) as e:  # OSError: h5py's truncated file
        raise UserError(f"cannot load {path}: {first_line(e)}") from None


def our_num_classes(prefix):
    return _our_num_classes(tf.train.load_checkpoint(prefix))
