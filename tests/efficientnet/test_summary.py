"""Tests for efficientnet.summary: MAC counts against TF's op statistics and the paper, and the CLI."""

import subprocess
import sys

import pytest
import tensorflow as tf
from tensorflow.python.framework import ops as tf_ops

from efficientnet import summary

PAPER_MACS = {"b0": 0.39e9, "b1": 0.70e9, "b2": 1.0e9, "b3": 1.8e9, "b4": 4.2e9, "b5": 9.9e9, "b6": 19e9, "b7": 37e9}
# Measured: b4 4.39B (+4.6%) and b5 10.27B (+3.7%) while the parameter counts are exact and TF's own op
# statistics agree with the count exactly (test below): the paper's b4/b5 figures are below what the published
# architecture at 380 / 456 computes, so these two are expected to miss the 3% band (strict xfail).
PAPER_OUTLIERS = {"b4", "b5"}


def tf_graph_macs(model) -> int:
    """Independent oracle: TF's registered "flops" statistics of the conv/matmul ops in the traced graph / 2."""
    size = model.input.shape[1]

    @tf.autograph.experimental.do_not_convert
    def forward(x):
        return model(x, training=False)

    graph = tf.function(forward).get_concrete_function(tf.TensorSpec([1, size, size, 3])).graph
    flops = 0
    for op in graph.get_operations():
        if op.type in ("Conv2D", "DepthwiseConv2dNative", "MatMul"):
            flops += tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value
    return flops // 2


@pytest.mark.parametrize("variant", ["b0", "b4", pytest.param("b7", marks=pytest.mark.slow)])
def test_macs_equal_tf_op_statistics(built, variant):
    model = built(variant)
    assert summary.count_macs(model) == tf_graph_macs(model)


def _paper_case(variant):
    marks = [pytest.mark.slow] if variant in ("b5", "b6", "b7") else []
    if variant in PAPER_OUTLIERS:
        marks.append(pytest.mark.xfail(strict=True, reason="paper figure below every count, see PAPER_OUTLIERS"))
    return pytest.param(variant, marks=marks)


@pytest.mark.parametrize("variant", [_paper_case(v) for v in PAPER_MACS])
def test_macs_within_3_percent_of_paper(built, variant):
    macs = summary.count_macs(built(variant))
    assert macs == pytest.approx(PAPER_MACS[variant], rel=0.03)


@pytest.mark.parametrize("variant", ["b4", pytest.param("b5", marks=pytest.mark.slow)])
def test_paper_outliers_within_5_percent_and_above(built, variant):
    macs = summary.count_macs(built(variant))
    assert macs == pytest.approx(PAPER_MACS[variant], rel=0.05) and macs > PAPER_MACS[variant]


def test_unknown_model_exits_2_with_one_line(capsys):
    assert summary.main(["--model=b9"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'b9'" in err and "b0, b1" in err


@pytest.mark.slow
def test_cli_subprocess():
    ok = subprocess.run(
        [sys.executable, "-m", "efficientnet.summary", "--model=b0", "--model=edgetpu-s", "--model=lite0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0
    lines = ok.stdout.splitlines()
    assert lines[0] == "model        res          params       MACs  classes"
    # Counts: tests/efficientnet/test_family.py checks them against an independent count and the published ones.
    assert lines[1:] == [
        "b0           224       5,288,548      0.39B     1000",
        "edgetpu-s    224       5,439,673      2.35B     1001",
        "lite0        224       4,652,008      0.39B     1000",
    ]
    bad = subprocess.run(
        [sys.executable, "-m", "efficientnet.summary", "--model=b42"], capture_output=True, text=True, timeout=300
    )
    assert bad.returncode == 2 and "unknown EfficientNet variant 'b42'" in bad.stderr
