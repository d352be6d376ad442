"""Loading the original tensorflow/tpu TF1 checkpoints (model.ckpt-STEP) into a model built by `build_model`.

The published EfficientNet, EdgeTPU and Lite checkpoints were written by TF1 `tf.train.Saver` from the
tensorflow/tpu Estimator (docs/recipe.md §2). Their variables live under one scope named after the model
("efficientnet-b0", "efficientnet-edgetpu-S", "efficientnet-lite0"):

    stem/conv2d/kernel, stem/tpu_batch_normalization/{gamma,beta,moving_mean,moving_variance}
    blocks_N/...                        N counts blocks over all stages: block1a = blocks_0, block2a = blocks_1
    head/conv2d/kernel, head/tpu_batch_normalization/..., head/dense/{kernel,bias}

TF1 layers (tf.layers) take their names when first called, counting per layer class inside the enclosing
variable scope (conv2d, conv2d_1, ...; tpu_batch_normalization, _1, _2), so the names inside a block depend on
which layers the block type calls, in call order (tensorflow/tpu efficientnet_model.py, MBConvBlock.call and
MBConvBlockWithoutDepthwise.call). `BLOCK_NAMES` spells this out per block type; it is where ports break: in an
expand_ratio 1 block the depthwise BN is `tpu_batch_normalization` and the project conv is `conv2d`, one step
lower than in an expanded block. Squeeze-excite convs are called inside a nested `se` scope, so they count on
their own: se/conv2d (reduce), se/conv2d_1 (expand).

Each variable may have a shadow `<name>/ExponentialMovingAverage` (TPU main.py averages the trainable weights
and the BatchNorm moving statistics); the shadow is preferred when present, because evaluation and export use
the averaged weights (docs/recipe.md §5; raw weights can be ~3 points worse, tensorflow/tpu#408). Optimizer slots
(`<name>/RMSProp`, `/RMSProp_1`) and `global_step` are not model weights and are ignored.

Guarantees, as for HDF5 files (efficientnet.weights): every weight of the model is found with the expected shape
or the load fails with a ValueError naming the variable and both shapes, before anything is assigned; layers
named in `skip_mismatch_layers` keep their values when absent or mismatched. Unlike HDF5, checkpoint weights
that the model does not use are an error too (a b0 checkpoint must not load "successfully" into a Lite0, which
has the same conv shapes but no SE), except the classifier `head/dense` when the model has none or skips it, and
the head and later blocks when the model is a truncated feature extractor (build_feature_model). An RGB stem
kernel loads into a model with other than 3 input channels through efficientnet.loading.adapt_stem_kernel.
"""

from __future__ import annotations

import os
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from efficientnet import blocks
from efficientnet.loading import LoadResult, adapt_stem_kernel, raise_if_problems, stem_adapts, weighted_layers

EMA_SUFFIX = "/ExponentialMovingAverage"

# Our layers outside the blocks -> their tensorflow/tpu names (efficientnet_model.py Model.call: the stem is
# called in scope "stem", the head conv, BN and classifier in scope "head").
FIXED_NAMES = {
    "stem_conv": "stem/conv2d",
    "stem_bn": "stem/tpu_batch_normalization",
    "top_conv": "head/conv2d",
    "top_bn": "head/tpu_batch_normalization",
    "predictions": "head/dense",
}

# EfficientNet-X's space-to-depth conv and its BN are called in a nested "space2depth" scope, so they count on
# their own and shift no other name of the block (efficientnet_model.py lines 355-360 at 7dc921f; the names as
# the original's graph creates them under tf.compat.v1: blocks_0/space2depth/conv2d/kernel, ...).
_SPACE_TO_DEPTH_NAMES = {
    "space2depth_conv": "space2depth/conv2d",
    "space2depth_bn": "space2depth/tpu_batch_normalization",
}

# Block layer suffix -> name inside blocks_N, per block type (fused?, has expand conv?), in TPU call order.
BLOCK_NAMES = {
    # MBConvBlock, expand_ratio != 1: expand conv, bn0, depthwise, bn1, [se], project conv, bn2.
    (False, True): {
        "expand_conv": "conv2d",
        "expand_bn": "tpu_batch_normalization",
        "dwconv": "depthwise_conv2d",
        "bn": "tpu_batch_normalization_1",
        "se_reduce": "se/conv2d",
        "se_expand": "se/conv2d_1",
        "project_conv": "conv2d_1",
        "project_bn": "tpu_batch_normalization_2",
        **_SPACE_TO_DEPTH_NAMES,
    },
    # MBConvBlock, expand_ratio == 1: no expand conv is called, so every later name shifts down by one.
    (False, False): {
        **_SPACE_TO_DEPTH_NAMES,
        "dwconv": "depthwise_conv2d",
        "bn": "tpu_batch_normalization",
        "se_reduce": "se/conv2d",
        "se_expand": "se/conv2d_1",
        "project_conv": "conv2d",
        "project_bn": "tpu_batch_normalization_1",
    },
    # MBConvBlockWithoutDepthwise (EdgeTPU fused): kxk expand conv, bn0, 1x1 strided project conv, bn1. An
    # EfficientNet-X "f1" block (MBConvBlock with fused_conv) calls the same convs and BNs in the same order,
    # kxk conv, bn1, [se], project conv, bn2, so it takes the same names, plus its SE convs.
    (True, True): {
        "expand_conv": "conv2d",
        "expand_bn": "tpu_batch_normalization",
        "se_reduce": "se/conv2d",
        "se_expand": "se/conv2d_1",
        "project_conv": "conv2d_1",
        "project_bn": "tpu_batch_normalization_1",
    },
    (True, False): {"project_conv": "conv2d", "project_bn": "tpu_batch_normalization"},
}

_BLOCK_LAYER = re.compile(r"^(block\d+[a-z]+)_(.+)$")
_DATA_FILE = re.compile(r"\.data-\d{5}-of-\d{5}$")
# The last path component of every model weight in a tensorflow/tpu checkpoint.
_WEIGHT_LEAVES = {"kernel", "depthwise_kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance"}


def load_tpu_checkpoint(
    model: keras.Model,
    path,
    *,
    skip_mismatch_layers: Sequence[str] = (),
    use_ema: bool = True,
    scope: Optional[str] = None,
) -> LoadResult:
    """Loads a tensorflow/tpu checkpoint (directory or prefix, see `resolve_checkpoint`) into `model`.

    model: a model from `build_model` (any variant; include_top True or False) or `build_feature_model`.
    path: a checkpoint directory (its latest checkpoint is used) or a prefix such as .../model.ckpt-218949.
    skip_mismatch_layers: our layer names (e.g. ("predictions",)) that may be absent or differ in shape.
    use_ema: prefer each variable's ExponentialMovingAverage shadow when it exists (the published numbers).
    scope: the model scope in the checkpoint ("efficientnet-b0"); default: found from the stem variable.

    Returns a LoadResult: loaded/skipped layer names, `ignored` checkpoint variables (scope-relative), and
    `from_ema`, the number of model variables that came from a shadow.
    """
    layers = weighted_layers(model)
    unknown = sorted(set(skip_mismatch_layers) - set(layers))
    if unknown:
        raise ValueError(f"skip_mismatch_layers names {unknown} that are not weighted layers of {model.name!r}")
    prefix = resolve_checkpoint(path)
    reader = _open(prefix)
    shapes = reader.get_variable_to_shape_map()
    scope = find_scope(shapes, prefix) if scope is None else scope.rstrip("/")
    names = checkpoint_names(model)
    plan, skipped, from_ema = _plan(names, shapes, scope, prefix, set(skip_mismatch_layers), use_ema)
    ignored = _unused(shapes, scope, names, plan, skipped, prefix)
    arrays = {stored: reader.get_tensor(stored) for pairs in plan.values() for _, stored in pairs}
    adapted = []
    for layer_name, pairs in plan.items():  # everything was validated above: assign only now
        for variable, stored in pairs:
            array = np.asarray(arrays[stored])
            if tuple(array.shape) != tuple(variable.shape):  # only an adaptable stem passes _plan so
                array = adapt_stem_kernel(array, variable.shape[2])
                adapted.append(layer_name)
            variable.assign(array.astype(variable.dtype))
    return LoadResult(
        loaded=tuple(plan), skipped=tuple(skipped), ignored=ignored, from_ema=from_ema, adapted=tuple(adapted)
    )


def resolve_checkpoint(path) -> str:
    """The checkpoint prefix for a directory (its latest checkpoint), a prefix, or a prefix's .index/.data file.

    Works on local and gs:// paths (tf.io.gfile). Raises FileNotFoundError when nothing is there.
    """
    path = os.fspath(path)
    if tf.io.gfile.isdir(path):
        prefix = tf.train.latest_checkpoint(path)
        if prefix is None:
            raise FileNotFoundError(
                f"no checkpoint in directory {path}: expected a 'checkpoint' state file naming "
                "an existing prefix such as model.ckpt-218949"
            )
        return prefix
    prefix = _DATA_FILE.sub("", path[: -len(".index")] if path.endswith(".index") else path)
    if not tf.io.gfile.exists(prefix + ".index"):
        raise FileNotFoundError(
            f"TF checkpoint not found: {path} (expected {prefix}.index, or a directory with a 'checkpoint' file)"
        )
    return prefix


def find_scope(variable_names: Iterable[str], where: str = "the checkpoint") -> str:
    """The model scope ("efficientnet-b0") of a tensorflow/tpu checkpoint, from its stem conv variable."""
    marker = "/stem/conv2d/kernel"
    scopes = sorted({name[: -len(marker)] for name in variable_names if name.endswith(marker)})
    if not scopes:
        raise ValueError(f"{where} is not a tensorflow/tpu EfficientNet checkpoint: no '<scope>{marker}' variable")
    if len(scopes) > 1:
        raise ValueError(f"{where} holds several models {scopes}; pass scope= to choose one")
    return scopes[0]


def checkpoint_names(model: keras.Model) -> Dict[str, List[Tuple[keras.Variable, str]]]:
    """For each weighted layer of `model`: its variables paired with their scope-relative checkpoint names.

    E.g. {"block2a_project_bn": [(gamma, "blocks_1/tpu_batch_normalization_2/gamma"), ...], ...}. Raises
    ValueError for a layer that tensorflow/tpu's model does not have.
    """
    layers = weighted_layers(model)
    condconv = [
        name for name, layer in layers.items() if isinstance(layer, (blocks.CondConv2D, blocks.DepthwiseCondConv2D))
    ]
    if condconv:
        raise ValueError(
            f"loading tensorflow/tpu CondConv checkpoints is not implemented (layer {condconv[0]!r} "
            "and its routing have no mapped checkpoint names)"
        )
    block_layers: Dict[str, Dict[str, str]] = {}  # block prefix -> {suffix: layer name}, in model order
    tf_names: Dict[str, str] = {}
    for name in layers:
        match = _BLOCK_LAYER.match(name)
        if match:
            block_layers.setdefault(match.group(1), {})[match.group(2)] = name
        elif name in FIXED_NAMES:
            tf_names[name] = FIXED_NAMES[name]
        else:
            raise ValueError(f"layer {name!r} has no tensorflow/tpu checkpoint counterpart")
    for index, members in enumerate(block_layers.values()):
        table = BLOCK_NAMES[("dwconv" not in members, "expand_conv" in members)]
        for suffix, name in members.items():
            if suffix not in table:
                raise ValueError(f"layer {name!r} has no tensorflow/tpu checkpoint counterpart in its block type")
            tf_names[name] = f"blocks_{index}/{table[suffix]}"
    return {name: _variable_names(layers[name], tf_names[name]) for name in layers}


def _variable_names(layer: keras.layers.Layer, base: str) -> List[Tuple[keras.Variable, str]]:
    """The layer's variables with their checkpoint names (TF1 variable names per layer class)."""
    if isinstance(layer, keras.layers.BatchNormalization):
        pairs = [
            (getattr(layer, leaf), f"{base}/{leaf}") for leaf in ("gamma", "beta", "moving_mean", "moving_variance")
        ]
    elif isinstance(layer, keras.layers.DepthwiseConv2D):
        pairs = [(layer.kernel, f"{base}/depthwise_kernel")]
    elif isinstance(layer, keras.layers.Conv2D):
        pairs = [(layer.kernel, f"{base}/kernel")]
    elif isinstance(layer, (keras.layers.Dense, blocks.SqueezeExciteReduce, blocks.SqueezeExciteExpand)):
        pairs = [(layer.kernel, f"{base}/kernel"), (layer.bias, f"{base}/bias")]
    else:
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) has no tensorflow/tpu counterpart")
    if len(pairs) != len(layer.weights):  # e.g. a conv with a bias: TPU convs have none
        raise ValueError(
            f"layer {layer.name!r} has {len(layer.weights)} weights; its tensorflow/tpu counterpart "
            f"{base} has {len(pairs)}"
        )
    return pairs


def _open(prefix: str):
    try:
        return tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{prefix} is not a readable TF checkpoint: {first_line}") from None


def _plan(names, shapes, scope, prefix, skip, use_ema):
    """Validates every layer; returns ({layer: [(variable, stored name)]}, [skipped layers], from_ema count)."""
    plan, skipped, problems, from_ema = {}, [], [], 0
    for layer_name, pairs in names.items():
        chosen, problem = [], None
        for variable, relative in pairs:
            full = f"{scope}/{relative}"
            candidates = [full + EMA_SUFFIX, full] if use_ema else [full]
            stored = next((c for c in candidates if c in shapes), None)
            expected = tuple(variable.shape)
            if stored is None:
                problem = (
                    f"variable {full!r} (layer {layer_name!r}, expected shape {expected}) is missing from {prefix}"
                )
            elif tuple(shapes[stored]) != expected and not stem_adapts(layer_name, shapes[stored], expected):
                problem = (
                    f"variable {stored!r} (layer {layer_name!r}): expected shape {expected}, {prefix} has "
                    f"{tuple(shapes[stored])}"
                )
            if problem:
                break
            chosen.append((variable, stored))
        if problem is None:
            plan[layer_name] = chosen
            from_ema += sum(stored.endswith(EMA_SUFFIX) for _, stored in chosen)
        elif layer_name in skip:
            skipped.append(layer_name)
        else:
            problems.append(problem)
    raise_if_problems(problems)
    return plan, skipped, from_ema


def _cut_off(relative: str, names) -> bool:
    """Whether a checkpoint weight lies beyond the end of a truncated model (build_feature_model without
    head_1x1, or ending at an earlier endpoint): the head, or a block after the model's last one."""
    if "top_conv" in names:
        return False
    if relative.startswith("head/"):
        return True
    match = re.match(r"^blocks_(\d+)/", relative)
    blocks_in_model = {found.group(1) for found in map(_BLOCK_LAYER.match, names) if found}
    return bool(match) and int(match.group(1)) >= len(blocks_in_model)


def _unused(shapes, scope, names, plan, skipped, prefix) -> Tuple[str, ...]:
    """Scope-relative model weights of the checkpoint that nothing uses: the classifier may be (returned as
    ignored) when the model has none or skips it; anything else means another architecture (ValueError)."""
    used = {relative for layer in plan for _, relative in names[layer]}
    stored = sorted(
        name[len(scope) + 1 :]
        for name in shapes
        if name.startswith(scope + "/") and name.rsplit("/", 1)[-1] in _WEIGHT_LEAVES
    )
    unused = [name for name in stored if name not in used]
    tolerated = {relative for layer in skipped for _, relative in names[layer]}
    if "predictions" not in plan:
        tolerated |= {"head/dense/kernel", "head/dense/bias"}
    foreign = [name for name in unused if name not in tolerated and not _cut_off(name, names)]
    if foreign:
        raise ValueError(
            f"cannot load weights, nothing was changed: {prefix} has {len(foreign)} weights that "
            f"{scope!r} as built here does not use, e.g. {foreign[0]!r}; is it another variant?"
        )
    return tuple(unused)
