"""Starting a run from pretrained weights (--init_checkpoint): fine-tuning on another dataset.

Any weight file training/store/weight_files.py reads is accepted. Every layer is loaded except the classifier
when the class counts differ; the new classifier keeps its initialization (model.classifier_init: the
reference's uniform ±1/sqrt(num_classes), docs/recipe.md §2, or zeros as configs/finetune.py sets).
"""

import tensorflow as tf

import efficientnet
from efficientnet import loading
from efficientnet import weights as weights_lib
from training.errors import UserError, first_line
from training.store import checkpoints, weight_files

CLASSIFIER = loading.CLASSIFIER_LAYERS


def _copy_layers(source, target):
    """Copies every weighted layer by name; the classifier only when its shape matches."""
    for layer in target.layers:
        if not layer.weights:
            continue
        values = source.get_layer(layer.name).get_weights()
        if layer.name in CLASSIFIER and [v.shape for v in values] != [tuple(w.shape) for w in layer.weights]:
            continue
        layer.set_weights(values)


def warm_start(model, path, build_model):
    """Loads `path` into `model` (all but a mismatched classifier); returns a one-line description.

    Call outside any strategy scope: `build_model(num_classes)` then builds a plain network of the same config
    for reading this project's checkpoints, and assigning into a distributed `model` writes every replica.
    """
    try:
        if weights_lib.is_h5_file(path):
            with weight_files.local_copy(path) as local:
                result = efficientnet.load_weights(model, local, skip_mismatch_layers=CLASSIFIER)
            return f"loaded {len(result.loaded)} layers from {path}"
        prefix = checkpoints.checkpoint_prefix(path)
        if weight_files.is_our_checkpoint(prefix):
            # Read into a plain model of the checkpoint's own class count, then copied layer by layer.
            source = build_model(weight_files.our_num_classes(prefix))
            weight_files.load_ema_weights(source, prefix)
            _copy_layers(source, model)
            return f"loaded the EMA weights of {prefix}"
        efficientnet.load_weights(model, prefix, skip_mismatch_layers=CLASSIFIER)
        return f"loaded the original checkpoint {prefix}"
    except (ValueError, OSError, NotImplementedError, tf.errors.OpError) as e:  # OSError: h5py's truncated file
        raise UserError(f"--init_checkpoint {path}: {first_line(e)}") from None


def freeze_backbone(model):
    """Trains only the classifier: every other layer becomes non-trainable (BatchNorm then runs in inference
    mode, as Keras does for frozen BatchNorm layers)."""
    loading.set_backbone_trainable(model, False)
    if not model.trainable_weights:
        raise UserError("freeze_backbone: the model has no classifier layer named 'predictions' to train")
