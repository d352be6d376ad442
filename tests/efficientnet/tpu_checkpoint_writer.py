"""Test helper: writes one of our models as a tensorflow/tpu TF1 checkpoint, named the way TF1 names it.

Independent of efficientnet.tpu_checkpoint's tables: the names are not spelled out here but produced by TF1's
own mechanism, as tensorflow/tpu's model produced them. Our model's layers are walked in call order (a block's
layers are created in the order the TPU block calls them: expand conv, BN, depthwise, BN, SE reduce, SE expand,
project conv, BN; a fused block: expand conv, BN, project conv, BN; EfficientNet-X's space-to-depth conv and BN
come first); each opens, like a tf.layers layer on its first call, `variable_scope(None, default_name=<layer
class base name>)` inside "stem", "blocks_<N>" (+ "se" for the SE convs, + "space2depth" for the space-to-depth
conv and its BN, as efficientnet_model.py MBConvBlock.call opens them) or "head", under the model scope, and TF1
uniquifies the default names (conv2d, conv2d_1, ...).
Shadow and slot suffixes are read from tf.compat.v1.train.ExponentialMovingAverage and RMSPropOptimizer. The
files are written by the SaveV2 op (what tf.compat.v1.train.Saver runs) and the state file by
tf.compat.v1.train.update_checkpoint_state: building the whole TF1 graph took ~15 s a checkpoint on 2 cores.
"""

import contextlib
import itertools
import re

import keras
import numpy as np
import tensorflow as tf

from efficientnet import blocks

_BLOCK = re.compile(r"^(block\d+[a-z]+)_")


def _tf1_kind(layer):
    """(tf.layers base name, [(variable leaf, attribute)], the nested scope it is called in or None) of one of
    our layers."""
    inner = "space2depth" if "_space2depth_" in layer.name else None
    if isinstance(layer, keras.layers.BatchNormalization):
        leaves = ["gamma", "beta", "moving_mean", "moving_variance"]
        return "tpu_batch_normalization", [(leaf, leaf) for leaf in leaves], inner
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return "depthwise_conv2d", [("depthwise_kernel", "kernel")], inner
    if isinstance(layer, keras.layers.Conv2D):
        return "conv2d", [("kernel", "kernel")], inner
    if isinstance(layer, (blocks.SqueezeExciteReduce, blocks.SqueezeExciteExpand)):
        return "conv2d", [("kernel", "kernel"), ("bias", "bias")], "se"
    if isinstance(layer, keras.layers.Dense):
        return "dense", [("kernel", "kernel"), ("bias", "bias")], inner
    raise AssertionError(f"no TF1 counterpart for {layer.name}")


def _outer_scope(layer_name, state):
    """'stem', 'blocks_<N>' (N counting blocks in call order) or 'head' for one of our layer names."""
    match = _BLOCK.match(layer_name)
    if match:
        if match.group(1) != state.get("block"):
            state["block"] = match.group(1)
            state["index"] = state.get("index", -1) + 1
        return f"blocks_{state['index']}"
    return "stem" if layer_name.startswith("stem_") else "head"


def _values(model):
    """{(layer name, attribute): numpy value} of every weight, read eagerly (no .numpy() inside a TF1 graph)."""
    if model is None:
        return None
    return {
        (layer.name, attribute): getattr(layer, attribute).numpy()
        for layer in model.layers
        if layer.weights
        for _, attribute in _tf1_kind(layer)[1]
    }


def _tf1_names(model, scope):
    """[(layer name, attribute, scope-relative TF1 name, trainable)] for every weight of `model`.

    The names come from TF1's variable-scope uniquification alone (opening scopes needs no variables). Each scope
    is entered once for its run of layers, as the TPU model does: TF1 resets the default-name counters of a
    scope's children when the scope is exited, so re-entering "se" per conv would not count conv2d_1.
    """
    entries, state = [], {}
    weighted = [layer for layer in model.layers if layer.weights]
    with tf.Graph().as_default(), tf.compat.v1.variable_scope(scope):
        for outer, group in itertools.groupby(weighted, key=lambda layer: _outer_scope(layer.name, state)):
            with tf.compat.v1.variable_scope(outer):
                for inner, run in itertools.groupby(group, key=lambda layer: _tf1_kind(layer)[2]):
                    with tf.compat.v1.variable_scope(inner) if inner else contextlib.nullcontext():
                        for layer in run:
                            base, leaves, _ = _tf1_kind(layer)
                            with tf.compat.v1.variable_scope(None, default_name=base) as layer_scope:
                                relative = layer_scope.name[len(scope) + 1 :]
                                entries += [
                                    (
                                        layer.name,
                                        attribute,
                                        f"{relative}/{leaf}",
                                        leaf not in ("moving_mean", "moving_variance"),
                                    )
                                    for leaf, attribute in leaves
                                ]
    return entries


def _tf1_suffixes():
    """The shadow suffix of tf.compat.v1.train.ExponentialMovingAverage and the slot suffixes of TF1's
    RMSPropOptimizer, read off one real variable."""
    with tf.Graph().as_default():
        variable = tf.compat.v1.get_variable("v", shape=[1])
        shadow = tf.compat.v1.train.ExponentialMovingAverage(0.9999).average_name(variable)
        optimizer = tf.compat.v1.train.RMSPropOptimizer(0.1, momentum=0.9)
        optimizer.minimize(tf.reduce_sum(variable))
        slots = [optimizer.get_slot(variable, name).op.name for name in optimizer.get_slot_names()]
    return shadow[len("v") :], [slot[len("v") :] for slot in slots]


def write_tpu_checkpoint(
    model, directory, *, scope="efficientnet-b0", step=218949, ema_model=None, drop=(), replace=None
):
    """Saves `model` as `<directory>/model.ckpt-<step>` with TF1 names and a `checkpoint` state file naming it
    relatively (as in the published archives); returns the prefix.

    ema_model: same architecture; its values go to the /ExponentialMovingAverage shadows (TPU main.py averages
      trainables and BN moving statistics). None: no shadows at all.
    drop: scope-relative names ("blocks_3/conv2d/kernel") not to write (neither raw nor shadow nor slots).
    replace: scope-relative name -> array written instead of the model's value (raw and shadow).
    """
    replace = dict(replace or {})
    values, ema_values = _values(model), _values(ema_model)
    shadow, slots = _tf1_suffixes()
    tensors = {"global_step": np.array(step, np.int64)}
    for layer_name, attribute, relative, trainable in _tf1_names(model, scope):
        if relative in drop:
            continue
        full = f"{scope}/{relative}"
        tensors[full] = replace.get(relative, values[(layer_name, attribute)])
        if ema_values is not None:
            tensors[full + shadow] = replace.get(relative, ema_values[(layer_name, attribute)])
        for slot in slots if trainable else ():
            tensors[full + slot] = np.ones_like(tensors[full])
    prefix = f"{directory}/model.ckpt-{step}"
    names = sorted(tensors)
    # SaveV2 is the op tf.compat.v1.train.Saver runs: same .index/.data files.
    tf.raw_ops.SaveV2(
        prefix=prefix,
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tf.constant(tensors[name]) for name in names],
    )
    tf.compat.v1.train.update_checkpoint_state(str(directory), f"model.ckpt-{step}")
    return prefix
