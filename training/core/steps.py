"""The compiled functions of a run: the training step (looped on device) and the evaluation step.

No number inside these functions is a hyperparameter: label smoothing, weight decay, batch sizes and the
class count come from the run plan's `StepConfig` (training/core/recipe.py), which has no defaults of its own.
"""

import dataclasses

import keras
import tensorflow as tf

from data import device_augment, mixup
from efficientnet import losses


@dataclasses.dataclass(frozen=True)
class StepConfig:
    num_classes: int
    global_batch_size: int
    label_smoothing: float
    weight_decay: float
    jit_compile: bool
    # data.augment_on_device: the batches carry the augmentation's uint8 input (not yet flipped) and
    # "augment_seeds"; the flip and the augmentation (augment_name, RandAugment layers and magnitude) run in the
    # step (data/device_augment.py finish_batch).
    augment_on_device: bool
    augment_name: str
    randaugment_num_layers: int
    randaugment_magnitude: float
    # data.mixup_alpha > 0: the batches carry "mixup_weights"; the step blends each replica's batch with its
    # mirror (data/mixup.py) after the augmentation, and the loss takes the blended one-hot labels.
    mixup: bool


class TrainMetrics:
    """Per-host-loop training metrics, summed over replicas when read (Keras metrics are sync-on-read)."""

    def __init__(self):
        self.loss = keras.metrics.Mean(name="loss")
        self.top_1 = keras.metrics.SparseCategoricalAccuracy(name="top_1")
        # The input pipeline's running count of skipped records; the same counter feeds every local
        # replica, so the first replica's value is the worker's value.
        self.bad_records = tf.Variable(
            0.0, trainable=False, name="bad_records", aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA
        )

    def reset(self):
        self.loss.reset_state()
        self.top_1.reset_state()

    def result(self):
        return {
            "loss": float(self.loss.result()),
            "top_1": float(self.top_1.result()),
            "bad_records": int(self.bad_records.numpy()),
        }


def step_inputs(batch, cfg):
    """(images, labels) the model trains on, from one replica's batch: augmented on the device when the pipeline
    left that to the step, float pixels in [0, 255], and under mixup blended with the batch's mirror (labels
    then one-hot distributions)."""
    images = batch["images"]
    if cfg.augment_on_device:  # inside the compiled step: the batched ops are XLA-exact (data/device_augment.py)
        images = device_augment.finish_batch(
            images, batch["augment_seeds"], cfg.augment_name, cfg.randaugment_num_layers, cfg.randaugment_magnitude
        )
    # The input pipeline ships uint8 when it augments (a quarter of the bytes); the model takes float pixels
    # in [0, 255] (a no-op for float32 batches).
    images = tf.cast(images, tf.float32)
    labels = batch["labels"]
    if cfg.mixup:  # after the augmentation, as the original mixes its preprocessed batches
        images, labels = mixup.mix_batch(images, tf.one_hot(labels, cfg.num_classes), batch["mixup_weights"])
    return images, labels


def make_train_loop(state, strategy, cfg, metrics):
    """Returns train_loop(iterator, num_steps): num_steps steps under strategy.run in one host call."""
    model, optimizer, ema = state.model, state.optimizer, state.ema
    decay_variables = losses.weight_decay_variables(model)
    replicas = strategy.num_replicas_in_sync

    # No autograph for the step: it has no tensor-dependent Python control flow, and converting it
    # (and, recursively, everything it calls) was ~8% of B0's tracing time (benchmarks/README.md).
    # train_loop below keeps autograph for its tf.range loop.
    @tf.autograph.experimental.do_not_convert
    def step_fn(batch):
        images, labels = step_inputs(batch, cfg)
        with tf.GradientTape() as tape:
            logits = tf.cast(model(images, training=True), tf.float32)
            per_example = losses.classification_loss(
                labels, logits, cfg.num_classes, label_smoothing=cfg.label_smoothing
            )
            # Sum over this replica's examples / global batch: the optimizer sums gradients over replicas.
            # The L2 term is the same on every replica, hence divided by their number.
            loss = (
                tf.reduce_sum(per_example) / cfg.global_batch_size
                + losses.l2_loss(decay_variables, cfg.weight_decay) / replicas
            )
            # Under float16 the optimizer scales the loss (training/core/state.py with_loss_scaling) and divides
            # the gradients back, skipping a step whose gradients overflowed; otherwise this is the loss itself.
            scaled_loss = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled_loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        ema.apply(optimizer.iterations)
        metrics.loss.update_state(loss * replicas)
        # Train top-1 against each example's own label (under mixup its weight is at least one half).
        metrics.top_1.update_state(batch["labels"], logits)
        bad = tf.cast(tf.reduce_max(batch["bad_records"]), tf.float32)
        metrics.bad_records.assign(tf.maximum(metrics.bad_records, bad))

    if cfg.jit_compile:
        step_fn = tf.function(step_fn, jit_compile=True)

    @tf.function
    def train_loop(iterator, num_steps):
        for _ in tf.range(num_steps):
            strategy.run(step_fn, args=(next(iterator),))

    return train_loop


def make_eval_step(model, strategy, cfg):
    """Returns eval_step(batch) -> [top-1 hits, top-5 hits, loss sum, examples], summed over replicas.

    Padding examples (mask 0) count nowhere, so every real example is scored exactly once.
    """
    top_k = min(5, cfg.num_classes)

    def step_fn(batch):
        logits = tf.cast(model(batch["images"], training=False), tf.float32)
        labels = tf.cast(batch["labels"], tf.int32)
        mask = tf.cast(batch["mask"], tf.float32)
        # Plain cross-entropy (no smoothing): a loss comparable across runs with different recipes.
        per_example = losses.classification_loss(labels, logits, cfg.num_classes, label_smoothing=0.0)
        hit_1 = tf.cast(tf.math.in_top_k(labels, logits, 1), tf.float32)
        hit_k = tf.cast(tf.math.in_top_k(labels, logits, top_k), tf.float32)
        return tf.stack(
            [
                tf.reduce_sum(hit_1 * mask),
                tf.reduce_sum(hit_k * mask),
                tf.reduce_sum(per_example * mask),
                tf.reduce_sum(mask),
            ]
        )

    @tf.function
    def eval_step(batch):
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(step_fn, args=(batch,)), axis=None)

    return eval_step
