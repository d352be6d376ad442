"""Loading weights into a model built by `build_model`: Keras HDF5 files by layer name, and (dispatched to
efficientnet.tpu_checkpoint) the original tensorflow/tpu TF1 checkpoints.

Two HDF5 layouts are read (docs/recipe.md §2):
- Keras 2 HDF5, as published (efficientnetb0.h5 ... b7 and _notop): root attribute `layer_names`, one group
  per layer with attribute `weight_names` listing its datasets in the layer's weight order. Full-model Keras 2
  files keep the same structure under a `model_weights` group.
- Keras 3 `.weights.h5` (model.save_weights): a `layers/` tree whose groups are keyed by class-derived names
  (conv2d_12, ...); each layer's `vars` group carries the real layer name in its `name` attribute and holds
  datasets "0", "1", ... in the layer's weight order.

Rules: every weighted layer of the model must be found in the file with the same number of weights and the same
shapes, or the load fails with a ValueError naming the first bad layer, before anything is assigned (nothing is
half-loaded). One exception: an RGB stem kernel loads into a model with other than 3 input channels through
efficientnet.loading.adapt_stem_kernel. Layers in the file that the model has no weights for are ignored: Keras
Applications' `normalization` layer holds the input mean/variance that this model keeps as constants
(efficientnet.blocks.InputNormalization), and a `predictions` layer is unused by an include_top=False model. Block
layers the model lacks are not ignored: they mean a deeper variant's file, refused (ValueError).
`skip_mismatch_layers` names layers that may be absent from the file or differ in shape; they keep their current
values in that case (typically ("predictions",) to fine-tune on another number of classes) and are loaded when they
match.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

import h5py
import keras
import numpy as np

# What both readers share lives in efficientnet.loading: tpu_checkpoint imports it, never this module.
from efficientnet.loading import LoadResult, adapt_stem_kernel, raise_if_problems, stem_adapts, weighted_layers

H5_SUFFIXES = (".h5", ".hdf5")


def is_h5_file(path) -> bool:
    """Whether `path` names a Keras HDF5 weight file (by its suffix, any case); anything else is read as a
    TensorFlow checkpoint."""
    return os.fspath(path).lower().endswith(H5_SUFFIXES)


def load_weights(
    model: keras.Model,
    path,
    *,
    skip_mismatch_layers: Sequence[str] = (),
    use_ema: bool = True,
    scope: Optional[str] = None,
) -> LoadResult:
    """Loads weights into `model`: a Keras 2 `.h5` or Keras 3 `.weights.h5` file by layer name (see module
    docstring), or anything else as a tensorflow/tpu checkpoint directory or prefix (.../model.ckpt-218949).

    `use_ema` (prefer ExponentialMovingAverage shadows) and `scope` (the checkpoint's model scope, found by
    default) apply to TF checkpoints only; see efficientnet.tpu_checkpoint.load_tpu_checkpoint.

    Raises FileNotFoundError when there is no file, checkpoint prefix or checkpoint directory at `path`, and
    ValueError for a file that is neither an HDF5 weight file nor a tensorflow/tpu checkpoint, a needed layer or
    variable missing, a weight count or shape mismatch, unused checkpoint weights or block layers, a name in
    skip_mismatch_layers that is not a weighted layer of the model, or `scope` given for an HDF5 file.
    """
    path = os.fspath(path)
    if not is_h5_file(path):
        from efficientnet.tpu_checkpoint import load_tpu_checkpoint  # TensorFlow checkpoint reader, on demand

        return load_tpu_checkpoint(model, path, skip_mismatch_layers=skip_mismatch_layers, use_ema=use_ema, scope=scope)
    if scope is not None:
        raise ValueError(f"scope={scope!r} applies to TF checkpoints; {path} is an HDF5 file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weight file not found: {path}")
    if not h5py.is_hdf5(path):
        raise ValueError(f"{path} is not an HDF5 file; expected a Keras .h5 or .weights.h5 weight file")
    layers = weighted_layers(model)
    unknown = sorted(set(skip_mismatch_layers) - set(layers))
    if unknown:
        raise ValueError(f"skip_mismatch_layers names {unknown} that are not weighted layers of {model.name!r}")
    with h5py.File(path, "r") as h5:
        stored = read_h5_weights(h5, path)
    plan, skipped, adapted = _plan(layers, stored, set(skip_mismatch_layers), path)
    extra_blocks = [name for name in stored if name not in layers and name.startswith("block")]
    if extra_blocks:  # a deeper variant's file (b1 into b0): its extra blocks would be dropped without a word
        raise ValueError(
            f"{path} has {len(extra_blocks)} block layers that {model.name!r} lacks "
            f"({', '.join(extra_blocks[:3])}{', ...' if len(extra_blocks) > 3 else ''}): the weights "
            "of another (deeper) variant"
        )
    for name, arrays in plan.items():  # everything was validated above: assign only now
        for variable, array in zip(layers[name].weights, arrays):
            variable.assign(array.astype(variable.dtype))
    ignored = tuple(name for name in stored if name not in layers)
    return LoadResult(loaded=tuple(plan), skipped=tuple(skipped), ignored=ignored, adapted=tuple(adapted))


def read_h5_weights(h5: h5py.File, path: str = "") -> Dict[str, List[np.ndarray]]:
    """Reads every layer's weight arrays, in order, from an open Keras 2 or Keras 3 HDF5 weight file."""
    root = h5["model_weights"] if "layer_names" not in h5.attrs and "model_weights" in h5 else h5
    if "layer_names" in root.attrs:
        return _read_keras2(root)
    if "layers" in h5 and isinstance(h5["layers"], h5py.Group):
        return _read_keras3(h5["layers"], path)
    raise ValueError(
        f"{path or h5.filename} is HDF5 but not a Keras weight file (no 'layer_names' attribute and no 'layers' group)"
    )


def _text(value) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _read_keras2(root: h5py.Group) -> Dict[str, List[np.ndarray]]:
    stored = {}
    for layer_name in (_text(n) for n in root.attrs["layer_names"]):
        group = root[layer_name]
        names = [_text(n) for n in group.attrs.get("weight_names", [])]
        if names:
            stored[layer_name] = [np.asarray(group[n]) for n in names]
    return stored


def _read_keras3(layers_group: h5py.Group, path: str) -> Dict[str, List[np.ndarray]]:
    stored: Dict[str, List[np.ndarray]] = {}

    def visit(group_path, obj):
        if not (isinstance(obj, h5py.Group) and group_path.rsplit("/", 1)[-1] == "vars" and len(obj)):
            return
        name = _text(obj.attrs.get("name", group_path))
        if name in stored:
            raise ValueError(f"{path}: two layers named {name!r} in the weight file")
        stored[name] = [_dataset_array(obj[key]) for key in sorted(obj, key=int)]

    layers_group.visititems(visit)
    return stored


def _dataset_array(dataset: h5py.Dataset) -> np.ndarray:
    # Keras 3 stores bfloat16 variables as raw 16-bit data tagged with a dtype attribute.
    if _text(dataset.attrs.get("dtype", "")) == "bfloat16":
        import ml_dtypes  # Keras' own dependency; only needed for this rare case

        return np.asarray(dataset).view(ml_dtypes.bfloat16).astype(np.float32)
    return np.asarray(dataset)


def _plan(layers, stored, skip, path):
    """Validates every layer; returns ({name: arrays} to assign, [skipped names], [adapted names]) or raises on the
    first problem."""
    plan, skipped, adapted, problems = {}, [], [], []
    for name, layer in layers.items():
        expected = [tuple(w.shape) for w in layer.weights]
        if name not in stored:
            problem = f"layer {name!r} (expected shapes {expected}) is missing from {path}"
        else:
            found = [tuple(a.shape) for a in stored[name]]
            if found == expected:
                plan[name] = stored[name]
                continue
            if len(found) == len(expected) == 1 and stem_adapts(name, found[0], expected[0]):
                plan[name] = [adapt_stem_kernel(stored[name][0], expected[0][2])]
                adapted.append(name)
                continue
            problem = f"layer {name!r}: expected shapes {expected}, {path} has {found}"
        if name in skip:
            skipped.append(name)
        else:
            problems.append(problem)
    raise_if_problems(problems)
    return plan, skipped, adapted
