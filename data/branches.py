"""Branches of tf.cond and tf.switch_case that cost one node when they are not taken.

Inside a tf.data function (and any graph) a cond or switch is lowered to Switch/Merge nodes, and the executor
still visits every node of each branch not taken, passing it a dead tensor: about 0.1 µs of CPU per node on the
machines of benchmarks/README.md, so a rarely taken branch of a few hundred nodes (the decode of bytes that are
not JPEG, AutoAugment's candidate ops) costs tens of µs per record without running. A branch given through
`as_call` stays a single function-call node ("_noinline" keeps TensorFlow from inlining it into the caller):
one node when not taken, one function call when taken, the same ops inside. Eagerly the branch is returned as
it is (tf.cond and tf.switch_case then run only the branch taken).
"""

import tensorflow as tf


def as_call(branch):
    """The zero-argument callable `branch` for tf.cond / tf.switch_case: in a graph, one not-inlined call of a
    tf.function tracing it; eagerly, `branch` itself."""
    if tf.executing_eagerly():
        return branch
    return tf.function(branch, autograph=False, experimental_attributes={"_noinline": True})
