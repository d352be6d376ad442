"""Mixup (Zhang et al., 2018) as the original applies it: tensorflow/tpu imagenet_input.py ImageNetTFExampleInput.mixup.

The original, after batching one core's examples: w ~ Beta(alpha, alpha) per example, w = max(w, 1 - w), then
images = images · w + images[::-1] · (1 - w) and one-hot labels likewise; each example is mixed with the one at the
mirrored position of the same batch (label smoothing is applied afterwards, to the mixed labels, in the loss).

Split in two here so that the step may run under XLA and resume exactly:
- `mix_weight(example_seed, alpha)`: the per-example draw, made in the input pipeline from the example's stateless
  seed (XLA has no kernel for the gamma sampler, and the pipeline's position is part of a checkpoint, so a resumed
  run draws the same weights);
- `mix_batch(images, onehot_labels, weights)`: the blend, in the train step, on each replica's own batch (the
  original's per-core batch), after the augmentation wherever it runs.
"""

import tensorflow as tf

# Folded into an example's seed so that the mixup draw never reuses the augmentation's random stream.
_MIXUP_STREAM = 0x6D69787570  # "mixup"


def check_alpha(alpha) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha < float("inf"):
        raise ValueError(f"mixup_alpha must be a finite number >= 0 (0 disables mixup), got {alpha!r}")


def mix_weight(example_seed, alpha: float):
    """max(w, 1 - w) for one w ~ Beta(alpha, alpha), from an int64 [2] stateless seed: a float32 scalar in [0.5, 1].

    Beta(a, a) = X / (X + Y) with X, Y ~ Gamma(a) independent (as tf.distributions.Beta samples it).
    """
    check_alpha(alpha)
    if not alpha:
        raise ValueError("mix_weight needs mixup_alpha > 0")
    seed = tf.random.experimental.stateless_fold_in(tf.cast(example_seed, tf.int64), _MIXUP_STREAM)
    gammas = tf.random.stateless_gamma([2], seed=seed, alpha=float(alpha), dtype=tf.float32)
    total = gammas[0] + gammas[1]
    # For tiny alpha both gammas can underflow to 0; the limit of Beta(a, a) as a -> 0 puts its mass on 0 and 1,
    # i.e. an unmixed example, so that case takes w = 1.
    weight = tf.where(total > 0, tf.math.divide_no_nan(gammas[0], total), 1.0)
    return tf.maximum(weight, 1.0 - weight)


def mix_batch(images, onehot_labels, weights):
    """(images · w + images[::-1] · (1 - w), labels · w + labels[::-1] · (1 - w)), w per example ([batch]).

    images: [batch, ...] float; onehot_labels: [batch, classes] float; weights: [batch] float32 in [0.5, 1].
    """
    weights = tf.cast(weights, tf.float32)[:, None]
    image_weights = tf.reshape(tf.cast(weights, images.dtype), [-1] + [1] * (images.shape.rank - 1))
    mixed_images = images * image_weights + images[::-1] * (1.0 - image_weights)
    labels = tf.cast(onehot_labels, tf.float32)
    return mixed_images, labels * weights + labels[::-1] * (1.0 - weights)
