"""TPU readiness, checked on CPU (issue 6): the whole train step compiles with XLA on static shapes, several steps
run per host call, and the training input pipeline contains no Python function op.

XLA on CPU is slow for real models (docs/recipe.md §7), so the model is a tiny custom row of the table (width and
depth 0.1) at 32 px; the structure (MBConv, SE, stochastic depth, BN, EMA, RMSPropTF) is the full one.
"""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

import efficientnet
from data import pipeline, sources
from efficientnet import ema as ema_lib
from efficientnet import optim, schedules
from training.core import state as state_lib
from training.core import steps
from training.core.recipe import recipe_input_settings

IMAGE_SIZE = 32
BATCH = 4
STEPS_PER_CALL = 3


def _tiny_state(num_classes):
    """Model, optimizer and EMA of a width/depth-0.1 B0 (the full block structure, few channels)."""
    variant = dataclasses.replace(efficientnet.get_variant("b0"), width_coefficient=0.1, depth_coefficient=0.1)
    tf.keras.utils.set_random_seed(0)
    model = efficientnet.build_model(variant, num_classes=num_classes, image_size=IMAGE_SIZE)
    learning_rate = schedules.WarmupExponentialDecay(0.05, steps_per_epoch=10, warmup_epochs=0)
    optimizer = optim.RMSPropTF(learning_rate)
    optimizer.build(model.trainable_variables)
    ema = ema_lib.ExponentialMovingAverage(ema_lib.ema_variables(model), decay=0.9)
    return state_lib.TrainState(model=model, optimizer=optimizer, ema=ema, learning_rate=learning_rate)


@pytest.fixture(scope="module")
def demo_source():
    # The default demo cache: generated once per machine (atomically), shared with the other tests.
    return sources.get_source()


@pytest.fixture(scope="module")
def train_dataset(demo_source):
    return pipeline.make_dataset(
        demo_source,
        "train",
        recipe_input_settings(IMAGE_SIZE, True, augment_name="autoaugment"),
        batch_size=BATCH,
        seed=0,
    )


def test_training_pipeline_has_static_shapes_and_no_py_function(train_dataset):
    spec = train_dataset.element_spec
    for name in ("images", "labels"):
        assert spec[name].shape.is_fully_defined(), f"{name} has a dynamic shape {spec[name].shape}"
    assert spec["images"].shape == (BATCH, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert not pipeline.has_py_function(train_dataset)


def test_py_function_detector_sees_a_py_function(train_dataset):
    """Positive control: the check above can fail when a py_function sneaks into the pipeline."""

    def through_python(batch):
        labels = tf.py_function(lambda x: x, [batch["labels"]], tf.int32)
        return {**batch, "labels": labels}

    assert pipeline.has_py_function(train_dataset.map(through_python))


def _xla_compiled_functions(concrete):
    """Names of the functions called from `concrete` (recursively) that carry the XLA must-compile flag."""
    library = concrete.graph.as_graph_def().library
    return [f.signature.name for f in library.function if "_XlaMustCompile" in f.attr and f.attr["_XlaMustCompile"].b]


@pytest.mark.slow
def test_full_train_step_runs_under_xla_several_steps_per_call(demo_source, train_dataset):
    state = _tiny_state(demo_source.num_classes)
    strategy = tf.distribute.get_strategy()
    metrics = steps.TrainMetrics()
    cfg = steps.StepConfig(
        num_classes=demo_source.num_classes,
        global_batch_size=BATCH,
        label_smoothing=0.1,
        weight_decay=1e-5,
        jit_compile=True,
        augment_on_device=False,
        augment_name="none",
        randaugment_num_layers=2,
        randaugment_magnitude=10,
        mixup=False,
    )
    train_loop = steps.make_train_loop(state, strategy, cfg, metrics)
    iterator = iter(train_dataset)
    before = [v.numpy().copy() for v in state.model.trainable_variables]
    shadows_before = [s.numpy().copy() for s in state.ema.shadows]

    train_loop(iterator, tf.constant(STEPS_PER_CALL))

    # One host call ran STEPS_PER_CALL optimizer steps on device.
    assert int(state.optimizer.iterations.numpy()) == STEPS_PER_CALL
    assert np.isfinite(metrics.result()["loss"])
    assert any(not np.allclose(b, v.numpy()) for b, v in zip(before, state.model.trainable_variables))
    assert any(not np.allclose(b, s.numpy()) for b, s in zip(shadows_before, state.ema.shadows))
    # The step the loop ran is the XLA-compiled one (the whole step: model, loss, optimizer and EMA). With
    # jit_compile=True an op XLA cannot compile, or a shape it cannot make static, fails the call above.
    concrete = train_loop.get_concrete_function(iterator, tf.constant(STEPS_PER_CALL))
    compiled = _xla_compiled_functions(concrete)
    assert len(compiled) == 1, f"expected the step function alone to be marked for XLA, got {compiled}"
    step_graph = concrete.graph.as_graph_def().library
    step_ops = {node.op for f in step_graph.function if f.signature.name == compiled[0] for node in f.node_def}
    # The whole step is inside it: forward/backward convolutions, the fused RMSProp update, the EMA update.
    for op in ("Conv2D", "Conv2DBackpropFilter", "ResourceApplyRMSProp", "AssignSubVariableOp"):
        assert op in step_ops, f"{op} is not inside the XLA-compiled step"


@pytest.mark.slow
def test_device_augmentation_compiles_inside_the_xla_step(demo_source):
    """augment_on_device: uint8 batches and seeds go in, and the augmentation is part of the one XLA-compiled
    step function (as it must be on TPU), which trains. Mixup is on: its blend runs in the same step."""
    dataset = pipeline.make_dataset(
        demo_source,
        "train",
        recipe_input_settings(IMAGE_SIZE, True, augment_name="autoaugment", augment_on_device=True, mixup_alpha=0.2),
        batch_size=BATCH,
        seed=0,
    )
    assert dataset.element_spec["images"].dtype == tf.uint8
    assert dataset.element_spec["augment_seeds"].shape == (BATCH, 2)
    assert dataset.element_spec["mixup_weights"].shape == (BATCH,)
    assert not pipeline.has_py_function(dataset)
    state = _tiny_state(demo_source.num_classes)
    metrics = steps.TrainMetrics()
    cfg = steps.StepConfig(
        num_classes=demo_source.num_classes,
        global_batch_size=BATCH,
        label_smoothing=0.1,
        weight_decay=1e-5,
        jit_compile=True,
        augment_on_device=True,
        augment_name="autoaugment",
        randaugment_num_layers=2,
        randaugment_magnitude=10,
        mixup=True,
    )
    train_loop = steps.make_train_loop(state, tf.distribute.get_strategy(), cfg, metrics)
    iterator = iter(dataset)
    train_loop(iterator, tf.constant(2))
    assert int(state.optimizer.iterations.numpy()) == 2 and np.isfinite(metrics.result()["loss"])
    library = train_loop.get_concrete_function(iterator, tf.constant(2)).graph.as_graph_def().library
    compiled = [f for f in library.function if "_XlaMustCompile" in f.attr and f.attr["_XlaMustCompile"].b]
    assert len(compiled) == 1
    # The per-example draws (autoaugment.uniform's Bitcast), Equalize's histograms and the model's Conv2D are all
    # in the compiled step (its own nodes and the loop/branch bodies they call).
    assert {"Bitcast", "UnsortedSegmentSum", "Conv2D"} <= _ops_reachable(compiled[0], library)


def _ops_reachable(function, library):
    by_name = {f.signature.name: f for f in library.function}
    ops, pending, seen = set(), [function], set()
    while pending:
        current = pending.pop()
        for node in current.node_def:
            ops.add(node.op)
            for attr in node.attr.values():
                for name in [attr.func.name] + [f.name for f in attr.list.func]:
                    if name in by_name and name not in seen:
                        seen.add(name)
                        pending.append(by_name[name])
    return ops
