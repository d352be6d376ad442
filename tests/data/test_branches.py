"""Tests for data/branches.py: a branch given through as_call computes the same, stays one call node in a graph,
and leaves a tf.data pipeline checkpointable."""

import numpy as np
import tensorflow as tf

from data import branches


def _long_chain(x):
    for i in range(50):
        x = x * 2 + i
    return x


def _branch_graph(make_false_branch):
    @tf.function(autograph=False)
    def f(x):
        return tf.cond(x > 0, lambda: x + 1, make_false_branch(lambda: _long_chain(x)))

    return f, f.get_concrete_function(tf.TensorSpec([], tf.int64))


def _false_branch_nodes(concrete):
    (cond,) = [op for op in concrete.graph.get_operations() if op.type in ("If", "StatelessIf")]
    return concrete.graph._functions[cond.get_attr("else_branch").name].definition.node_def  # pylint: disable=protected-access


def test_eagerly_the_branch_itself():
    def branch():
        return tf.constant(3)

    assert branches.as_call(branch) is branch


def test_a_called_branch_is_one_not_inlined_call_with_the_same_result():
    inline, inline_concrete = _branch_graph(lambda b: b)
    called, called_concrete = _branch_graph(branches.as_call)
    for x in (-3, 0, 5):
        assert int(called(tf.constant(x, tf.int64))) == int(inline(tf.constant(x, tf.int64)))
    nodes = _false_branch_nodes(called_concrete)
    calls = [node for node in nodes if node.op in ("PartitionedCall", "StatefulPartitionedCall")]
    assert len(calls) == 1 and len(nodes) < 5
    assert len(_false_branch_nodes(inline_concrete)) > 100  # the chain itself, which the call keeps out
    callee = called_concrete.graph._functions[calls[0].attr["f"].func.name]  # pylint: disable=protected-access
    assert callee.definition.attr["_noinline"].b


def test_a_pipeline_with_called_branches_checkpoints_and_resumes(tmp_path):
    def fn(x):
        return tf.cond(x % 3 > 0, lambda: x * 10, branches.as_call(lambda: _long_chain(x)))

    def make():
        return tf.data.Dataset.range(40).map(fn, num_parallel_calls=2, deterministic=True).batch(4)

    reference = [batch.numpy() for batch in make()]
    iterator = iter(make())
    next(iterator)
    next(iterator)
    path = tf.train.Checkpoint(iterator=iterator).save(str(tmp_path / "ckpt"))
    resumed = iter(make())
    tf.train.Checkpoint(iterator=resumed).restore(path).assert_consumed()
    np.testing.assert_array_equal(next(resumed).numpy(), reference[2])
