"""Training loss of the EfficientNet recipe (docs/recipe.md §5, tensorflow/tpu main.py).

* `classification_loss`: per-example softmax cross-entropy with label smoothing 0.1, computed
  in float32 even when the model runs in bfloat16.
* `weight_decay_variables` / `l2_loss`: 1e-5 · Σ ½‖w‖² over every trainable variable except
  BatchNorm gamma/beta; conv and dense biases ARE included (the TPU code filters on the name
  "batch_normalization" only).
"""

import numpy as np
import tensorflow as tf

from efficientnet import model_walk


def _check_num_classes(num_classes):
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or (num_classes < 2):
        raise ValueError(f"classification_loss num_classes must be an int >= 2, got {num_classes!r}")


def _check_static_labels(labels, num_classes):
    """Rejects integer labels outside [0, num_classes) when their values are known statically.

    tf.one_hot would silently turn such a label into an all-zero row (zero loss); inside a traced
    step the values are unknown and the input pipeline is responsible (labels are shifted to
    0..num_classes-1 once, at parsing; docs/architecture.md).
    """
    values = tf.get_static_value(labels)
    if values is None or values.size == 0:
        return
    low, high = int(np.min(values)), int(np.max(values))
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise ValueError(f"classification_loss label {bad} is outside [0, {num_classes})")


@tf.autograph.experimental.do_not_convert
def classification_loss(labels, logits, num_classes, label_smoothing=0.1):
    """Per-example softmax cross-entropy with label smoothing, in float32.

    labels: integer class ids of shape [batch] (0..num_classes-1), or a float distribution
        of shape [batch, num_classes] (e.g. mixed labels) that is smoothed the same way.
    logits: [batch, num_classes] logits of any float dtype; cast to float32 first.
    num_classes: number of classes (the last dimension of `logits`).
    label_smoothing: in [0, 1). The target is `onehot · (1 - s) + s / num_classes`
        (tf.compat.v1.losses.softmax_cross_entropy's definition, used by tensorflow/tpu).

    Returns a float32 tensor of shape [batch]; the caller reduces it (sum / global batch size).
    """
    _check_num_classes(num_classes)
    if (
        isinstance(label_smoothing, bool)
        or not isinstance(label_smoothing, (int, float))
        or not (0.0 <= label_smoothing < 1.0)
    ):
        raise ValueError(f"classification_loss label_smoothing must be in [0, 1), got {label_smoothing!r}")
    logits = tf.cast(logits, tf.float32)
    if logits.shape.rank != 2 or logits.shape[-1] not in (None, num_classes):
        raise ValueError(f"classification_loss logits must have shape [batch, {num_classes}], got {logits.shape}")
    labels = tf.convert_to_tensor(labels)
    if labels.dtype.is_integer:
        if labels.shape.rank != 1:
            raise ValueError(f"classification_loss integer labels must have shape [batch], got {labels.shape}")
        _check_static_labels(labels, num_classes)
        targets = tf.one_hot(labels, num_classes, dtype=tf.float32)
    elif labels.dtype.is_floating:
        if labels.shape.rank != 2 or labels.shape[-1] not in (None, num_classes):
            raise ValueError(
                f"classification_loss float labels must have shape [batch, {num_classes}], got {labels.shape}"
            )
        targets = tf.cast(labels, tf.float32)
    else:
        raise ValueError(f"classification_loss labels must be integer or float, got {labels.dtype.name}")
    if label_smoothing:
        targets = targets * (1.0 - label_smoothing) + label_smoothing / num_classes
    # -Σ target · log_softmax(logits), written out so the target may be any distribution.
    return -tf.reduce_sum(targets * tf.nn.log_softmax(logits, axis=-1), axis=-1)


def weight_decay_variables(model):
    """Trainable variables that get L2 decay: all except those of BatchNormalization layers.

    model: a built `keras.Model` (or layer). BatchNorm layers are found by isinstance,
        nested models and custom layers included.
    """
    model_walk.check_built(model, "weight_decay_variables")
    excluded = {id(v) for layer in model_walk.batchnorm_layers(model) for v in layer.variables}
    return [v for v in model.trainable_variables if id(v) not in excluded]


@tf.autograph.experimental.do_not_convert
def l2_loss(variables, weight_decay):
    """Returns `weight_decay · Σ ½‖w‖²` over `variables`, computed in float32.

    variables: non-empty list of variables/tensors (e.g. `weight_decay_variables(model)`).
    weight_decay: coefficient >= 0 (1e-5 in the recipe, docs/recipe.md §5).
    """
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or (weight_decay < 0):
        raise ValueError(f"l2_loss weight_decay must be a number >= 0, got {weight_decay!r}")
    variables = list(variables)
    if not variables:
        raise ValueError("l2_loss needs a non-empty list of variables, got none")
    # One L2Loss kernel (sum(x²) / 2) per variable and one AddN: ~5x fewer graph ops than
    # square/sum/scale/accumulate chains, which mattered for B0's tracing time (benchmarks/README.md).
    # Cast first: bfloat16 squares would lose the small weights' contribution.
    halves = [tf.nn.l2_loss(tf.cast(variable, tf.float32)) for variable in variables]
    return weight_decay * tf.add_n(halves)
