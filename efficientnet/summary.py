"""Size table of the EfficientNet variants: resolution, trainable parameters, multiply-adds.

    python -m efficientnet.summary            # every variant in VARIANTS (l2 takes a minute and ~2 GB)
    python -m efficientnet.summary --model=b4
    python -m efficientnet.summary --model=edgetpu-s --model=lite0
    python -m efficientnet.summary --model=x-b0 --model=h-b5   # EfficientNet-X/H (x-tpu-b7, h-tpu-b7 ~200M)

Each variant is built with its default number of classes (1000; 1001 for EdgeTPU), shown in the last column.

Multiply-adds are counted analytically from the built (never run) model's layers: convolutions, depthwise
convolutions (EfficientNet-X's space-to-depth and fused convs among them), the squeeze-excite 1x1 convs, the
classifier, and for CondConv the routing layer and the mixing of each example's kernels from the experts.
BatchNorm, activations, pooling and the SE multiply are elementwise and not counted, as in the paper's FLOPs
column (docs/recipe.md §1).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import List, Optional, Sequence

import keras
import numpy as np

from efficientnet import blocks
from efficientnet.model import build_model
from efficientnet.variants import VARIANTS, get_variant


@dataclasses.dataclass(frozen=True)
class SummaryRow:
    """One line of the table."""

    variant: str
    resolution: int
    trainable_params: int
    macs: int
    num_classes: int


def _spatial(shape) -> int:
    return int(shape[1]) * int(shape[2])


def layer_macs(layer: keras.layers.Layer) -> int:
    """Multiply-adds of one layer for one image, from its weight shapes and its output shape."""
    if isinstance(layer, (blocks.CondConv2D, blocks.DepthwiseCondConv2D)):
        # The convolution with this example's kernel, plus mixing that kernel from the experts (experts x size).
        experts = layer.weights[0]
        kh, kw, cin, cout = layer.expert_shape
        return _spatial(layer.output.shape) * kh * kw * cin * cout + int(experts.shape[0]) * int(experts.shape[1])
    if isinstance(layer, blocks.CondConvRouting):
        cin, cout = layer.kernel.shape
        return int(cin) * int(cout)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw, channels, multiplier = layer.kernel.shape
        return _spatial(layer.output.shape) * kh * kw * channels * multiplier
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw, cin, cout = layer.kernel.shape
        return _spatial(layer.output.shape) * kh * kw * cin * cout // layer.groups
    if isinstance(layer, (blocks.SqueezeExciteReduce, blocks.SqueezeExciteExpand)):
        _, _, cin, cout = layer.kernel.shape  # a 1x1 conv on the 1x1 squeezed map
        return int(cin) * int(cout)
    if isinstance(layer, keras.layers.Dense):
        cin, cout = layer.kernel.shape
        return int(cin) * int(cout)
    return 0


def count_macs(model: keras.Model) -> int:
    """Total multiply-adds of `model` for one image (see module docstring for what counts)."""
    return int(sum(layer_macs(layer) for layer in model.layers))


def count_trainable_params(model: keras.Model) -> int:
    """Number of trainable scalars."""
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def summarize(variant) -> SummaryRow:
    """Builds `variant` at its native resolution with its default number of classes and measures it."""
    v = get_variant(variant)
    model = build_model(v)
    row = SummaryRow(v.name, v.resolution, count_trainable_params(model), count_macs(model), v.num_classes)
    del model
    keras.backend.clear_session()  # free the graph before building the next (b7 and l2 are large)
    return row


def name_width(names: Sequence[str]) -> int:
    """The name column: 10 characters, wider when a listed name needs it (e.g. "condconv-b0-8e-depth")."""
    return max(10, max(len(name) for name in names) + 1)


def format_row(row: SummaryRow, width: int = 10) -> str:
    return (
        f"{row.variant:<{width}}{row.resolution:>6}{row.trainable_params:>16,}"
        f"{row.macs / 1e9:>10.2f}B{row.num_classes:>9}"
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point; returns the exit status (2 for a bad --model)."""
    parser = argparse.ArgumentParser(prog="python -m efficientnet.summary", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model",
        action="append",
        default=None,
        help=f"one of {', '.join(VARIANTS)} (repeatable); default: all of them",
    )
    args = parser.parse_args(argv)
    names: List[str] = list(VARIANTS) if args.model is None else args.model
    try:
        variants = [get_variant(name) for name in names]
    except ValueError as error:
        print(f"error: --model: {error}", file=sys.stderr)
        return 2
    width = name_width([v.name for v in variants])
    print(f"{'model':<{width}}{'res':>6}{'params':>16}{'MACs':>11}{'classes':>9}")
    for v in variants:
        print(format_row(summarize(v), width), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
