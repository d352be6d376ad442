"""Building blocks of EfficientNet: MBConv, squeeze-excite, stochastic depth, BatchNorm, initializers.

Blocks know nothing about variants: `mbconv_block` takes one concrete, already scaled `MBConvConfig`.
Weighted layers carry the Keras Applications names (docs/recipe.md §2) so that published weight files load by
name. Layers without weights are merged where a tensor op inside one custom layer does the same job (BN +
activation, squeeze + reduce, expand + sigmoid + multiply, drop + add): fewer Keras layers trace faster, and
the numerics are the same as the Keras graph.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import keras
import tensorflow as tf
from keras import ops

# BatchNorm constants, TF convention: moving = 0.99·moving + 0.01·batch (docs/recipe.md §2).
BATCH_NORM_MOMENTUM = 0.99
BATCH_NORM_EPSILON = 1e-3

_PACKAGE = "efficientnet"


def get_activation(name: Optional[str]):
    """Maps an activation name ("swish", "relu", "relu6" or None) to a function."""
    table = {
        "swish": keras.activations.silu,
        "relu": keras.activations.relu,
        "relu6": keras.activations.relu6,
        None: None,
    }
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; expected one of swish, relu, relu6 or None")
    return table[name]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvKernelInitializer(keras.initializers.Initializer):
    """Untruncated N(0, sqrt(2 / fan_out)), fan_out = kh·kw·out (tensorflow/tpu efficientnet_model.py).

    For a depthwise kernel (kh, kw, C, 1) the last dim is the depth multiplier, so fan_out = kh·kw, as in TPU.
    """

    def __init__(self, seed=None):
        self.seed = seed

    def __call__(self, shape, dtype=None):
        fan_out = int(shape[0]) * int(shape[1]) * int(shape[-1])
        return keras.random.normal(shape, stddev=math.sqrt(2.0 / fan_out), dtype=dtype, seed=self.seed)

    def get_config(self):
        return {"seed": self.seed}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DenseKernelInitializer(keras.initializers.Initializer):
    """U(-1/sqrt(num_classes), +1/sqrt(num_classes)) for the classifier (tensorflow/tpu efficientnet_model.py)."""

    def __init__(self, seed=None):
        self.seed = seed

    def __call__(self, shape, dtype=None):
        limit = 1.0 / math.sqrt(int(shape[-1]))
        return keras.random.uniform(shape, minval=-limit, maxval=limit, dtype=dtype, seed=self.seed)

    def get_config(self):
        return {"seed": self.seed}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BatchNormActivation(keras.layers.BatchNormalization):
    """BatchNormalization (momentum 0.99, epsilon 1e-3) followed by an optional activation.

    A subclass, so `isinstance(layer, keras.layers.BatchNormalization)` finds it (training code excludes BN from
    weight decay and adds its moving statistics to EMA). Its variables are the parent's, in the parent's order.

    group_size: in training, the batch statistics are those of `group_size` consecutive replicas together
    (`group_moments`); 1 is per replica, the replica count is all of them (synchronized BatchNorm).
    """

    def __init__(
        self,
        activation: Optional[str] = None,
        momentum=BATCH_NORM_MOMENTUM,
        epsilon=BATCH_NORM_EPSILON,
        group_size: int = 1,
        **kwargs,
    ):
        if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
            raise ValueError(f"BatchNorm group_size must be a positive int, got {group_size!r}")
        super().__init__(momentum=momentum, epsilon=epsilon, **kwargs)
        self.activation_name = activation
        self._activation_fn = get_activation(activation)
        self.group_size = group_size

    def call(self, inputs, training=None, mask=None):
        if training and self.trainable and self._can_fuse(inputs, mask):
            outputs = self._fused_training_call(inputs)
        else:
            outputs = super().call(inputs, training=training, mask=mask)
        return outputs if self._activation_fn is None else self._activation_fn(outputs)

    def _moments(self, inputs, mask):
        if self.group_size == 1 or mask is not None or self.synchronized:
            return super()._moments(inputs, mask)
        return group_moments(inputs, self._reduction_axes, self.group_size)

    def _can_fuse(self, inputs, mask) -> bool:
        """The fused kernel covers the plain case: NHWC, last-axis statistics, gamma and beta, per replica."""
        return (
            mask is None
            and not self.synchronized
            and self.group_size == 1
            and not self.renorm
            and self.center
            and self.scale
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
        )

    def _fused_training_call(self, inputs):
        """Training-mode BN with the FusedBatchNormV3 kernel (one op forward, one backward).

        Keras' TF-backend BatchNormalization builds moments + normalize from ~10 elementwise ops per layer and as
        many again for the gradient; on CPU the fused kernel is much faster and traces far fewer ops (the profile
        in benchmarks/README.md). Same semantics as the parent's training branch: float32 statistics, output
        normalized with the biased batch variance, moving = momentum·moving + (1 - momentum)·batch.
        """
        x = tf.cast(inputs, "float32")  # as the parent: statistics in float32 under a mixed policy
        outputs, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=x,
            scale=tf.cast(self.gamma, "float32"),
            offset=tf.cast(self.beta, "float32"),
            mean=tf.constant([], "float32"),
            variance=tf.constant([], "float32"),
            epsilon=self.epsilon,
            exponential_avg_factor=1.0,
            data_format="NHWC",
            is_training=True,
        )
        # The kernel's variance output is Bessel-corrected (n / (n - 1), for TF1's moving average); Keras
        # averages the biased variance, and so must we for the moving statistics to match Keras BN.
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), "float32")
        variance = variance * ((count - 1.0) / count)
        moving_mean = tf.cast(self.moving_mean, "float32")
        moving_variance = tf.cast(self.moving_variance, "float32")
        self.moving_mean.assign(moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(outputs, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation_name, "group_size": self.group_size}


def group_moments(inputs, axes, group_size: int):
    """Mean and variance over `axes` of the examples of `group_size` consecutive replicas (replica ids
    g·group_size .. (g+1)·group_size − 1 form group g), in float32.

    tensorflow/tpu utils.py TpuBatchNormalization._moments (lines 142-165): each replica's mean and variance,
    the group averages of the mean and of variance + mean², and the group variance E[x²] − E[x]². The group sums
    are one all-reduce of a [groups, 2, channels] tensor in which each replica fills its group's row (the
    original's cross_replica_sum with a group assignment), so it runs under every tf.distribute strategy and
    inside an XLA-compiled step. Outside a replica context, or with one replica, these are the local moments.
    """
    mean, variance = ops.moments(inputs, axes)
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync if context is not None else 1
    if replicas == 1:
        return mean, variance
    if replicas % group_size:
        raise ValueError(f"BatchNorm group_size {group_size} does not divide the {replicas} replicas")
    stats = tf.stack([mean, variance + tf.square(mean)])
    groups = replicas // group_size
    if groups == 1:
        total = context.all_reduce(tf.distribute.ReduceOp.SUM, stats)
    else:
        group = _replica_id() // group_size
        rows = tf.one_hot(group, groups, dtype=stats.dtype)[:, None, None] * stats[None]
        total = tf.gather(context.all_reduce(tf.distribute.ReduceOp.SUM, rows), group)
    group_mean, group_mean_of_square = tf.unstack(total / float(group_size))
    return group_mean, group_mean_of_square - tf.square(group_mean)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class InputNormalization(keras.layers.Layer):
    """(pixels - mean) / stddev with constant per-channel statistics (not weights).

    A 1-channel input broadcasts against the statistics: a grey pixel becomes one normalized value per statistic
    (efficientnet.model.input_statistics says why).

    Computed at the variables' precision (float32 under a mixed policy): normalizing [0, 255] values in
    bfloat16 would lose about two significant bits before the first conv.
    """

    def __init__(self, mean, stddev, **kwargs):
        kwargs.setdefault("dtype", keras.config.dtype_policy().variable_dtype)
        super().__init__(**kwargs)
        self.mean = tuple(float(m) for m in mean)
        self.stddev = tuple(float(s) for s in stddev)

    def call(self, inputs):
        mean = ops.convert_to_tensor(self.mean, dtype=self.compute_dtype)
        stddev = ops.convert_to_tensor(self.stddev, dtype=self.compute_dtype)
        return (ops.cast(inputs, self.compute_dtype) - mean) / stddev

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], len(self.mean))

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class _PointwiseOnVector(keras.layers.Layer):
    """Shared part of the SE layers: a 1x1 conv kernel (1, 1, in, out) + bias applied to a (N, in) vector.

    The kernel keeps the 4-D conv shape of Keras' se_reduce / se_expand Conv2D so weight files load unchanged;
    on a 1x1 map a 1x1 conv is exactly a matmul.
    """

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)

    def _build_weights(self, in_channels: int):
        self.kernel = self.add_weight(
            name="kernel", shape=(1, 1, in_channels, self.filters), initializer=ConvKernelInitializer()
        )
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

    def _pointwise(self, vector):
        kernel = ops.reshape(self.kernel, (self.kernel.shape[2], self.filters))
        return ops.matmul(vector, kernel) + self.bias

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SqueezeExciteReduce(_PointwiseOnVector):
    """SE squeeze + reduce: global spatial mean, 1x1 conv with bias, activation. (N,H,W,C) -> (N, filters).

    Weights named like Keras' `blockXy_se_reduce` Conv2D. The mean is taken at the variables' precision
    (float32 under a mixed policy) so a bfloat16 map of tens of thousands of pixels is averaged accurately.
    """

    def __init__(self, filters: int, activation: str = "swish", **kwargs):
        super().__init__(filters, **kwargs)
        self.activation_name = activation
        self._activation_fn = get_activation(activation)

    def build(self, input_shape):
        self._build_weights(int(input_shape[-1]))

    def call(self, inputs):
        squeezed = ops.cast(ops.mean(ops.cast(inputs, self.variable_dtype), axis=(1, 2)), self.compute_dtype)
        return self._activation_fn(self._pointwise(squeezed))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.filters)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation_name}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SqueezeExciteExpand(_PointwiseOnVector):
    """SE expand + excite: inputs [features (N,H,W,C), reduced (N,r)] -> features · sigmoid(1x1 conv(reduced)).

    Weights named like Keras' `blockXy_se_expand` Conv2D; `filters` must equal C.
    """

    def build(self, input_shape):
        features_shape, reduced_shape = input_shape
        if features_shape[-1] != self.filters:
            raise ValueError(f"{self.name}: features have {features_shape[-1]} channels, expected {self.filters}")
        self._build_weights(int(reduced_shape[-1]))

    def call(self, inputs):
        features, reduced = inputs
        gate = ops.sigmoid(self._pointwise(reduced))
        return features * gate[:, None, None, :]

    def compute_output_shape(self, input_shape):
        return input_shape[0]


def replica_seed(seed_generator: keras.random.SeedGenerator) -> tf.Tensor:
    """The generator's next seed with this replica's id folded in: an int32 [2] seed for tf.random.stateless_*.

    Under tf.distribute the generator's state is a mirrored variable, the same on every replica, so its seed
    alone gives every replica the same masks for the same position in its batch. The TF1 TPU reference drew
    these masks with stateful random ops in each core's program (tf.random_uniform in utils.drop_connect,
    tf.layers.dropout), not from one seed state mirrored across replicas. Folding in the replica id gives each
    replica its own stream, while the masks stay a function of the generator's (checkpointed) state, so a
    resumed run draws what an uninterrupted one does.
    """
    seed = seed_generator.next()  # int64 [seed, counter]; advances the state by one draw
    # XLA's stateless RNG takes int32 seeds only; reduced the way keras.random's TF backend reduces them.
    seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
    return tf.random.experimental.stateless_fold_in(seed, _replica_id())


def _replica_id() -> tf.Tensor:
    """This replica's index in its sync group (global across workers; a tensor on TPU), 0 without replicas."""
    context = tf.distribute.get_replica_context()
    if context is None:  # cross-replica context: one program stands for all replicas
        return tf.constant(0, tf.int32)
    return tf.cast(context.replica_id_in_sync_group, tf.int32)


def inverted_drop(inputs, keep_prob: float, mask_shape, seed_generator: keras.random.SeedGenerator):
    """inputs / keep_prob · floor(keep_prob + U[0,1)), U of `mask_shape` (broadcast to inputs) per replica.

    tensorflow/tpu utils.drop_connect's formula, also inverted dropout: E = inputs. keep_prob is taken at the
    inputs' precision for the threshold and the divisor alike, so that the keep rate equals the divisor and the
    mean stays exact in bfloat16 too; the uniform is float32 because a bfloat16 one has 128 levels and
    keep_prob + U rounds up to 1 early (drawn in bfloat16, keep_prob 0.7 kept 69.6% and the mean fell 0.5% short).
    """
    keep_prob = tf.cast(keep_prob, inputs.dtype)
    noise = tf.random.stateless_uniform(mask_shape, seed=replica_seed(seed_generator), dtype=tf.float32)
    keep = tf.floor(tf.cast(keep_prob, tf.float32) + noise)
    return inputs / keep_prob * tf.cast(keep, inputs.dtype)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class StochasticDepth(keras.layers.Layer):
    """Residual sum with stochastic depth: inputs [branch, shortcut] -> shortcut + drop(branch).

    At training, drop(x) = x / p · floor(p + U[0,1)) with one draw per sample (docs/recipe.md §2, tensorflow/tpu
    utils.drop_connect), so E[drop(x)] = x; at inference drop is the identity. p = 1 means no randomness.
    Under tf.distribute each replica draws its own masks (`replica_seed`).
    """

    def __init__(self, survival_prob: float = 1.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < survival_prob <= 1.0:
            raise ValueError(f"survival_prob must be in (0, 1], got {survival_prob!r}")
        self.survival_prob = float(survival_prob)
        # A Keras SeedGenerator, not TF's global stateful RNG: its state is a variable (not a weight, so weight
        # files are unaffected) that the training checkpoint saves, so a resumed run draws the same masks as
        # an uninterrupted one (training/core/loop.py adds every seed-generator state of the model to the checkpoint).
        self.seed_generator = keras.random.SeedGenerator(seed) if survival_prob < 1.0 else None

    def call(self, inputs, training=None):
        branch, shortcut = inputs
        if training and self.survival_prob < 1.0:
            one_per_sample = (tf.shape(branch)[0], 1, 1, 1)
            branch = inverted_drop(branch, self.survival_prob, one_per_sample, self.seed_generator)
        return shortcut + branch

    def compute_output_shape(self, input_shape):
        return input_shape[1]

    def get_config(self):
        return {**super().get_config(), "survival_prob": self.survival_prob}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ReplicaDropout(keras.layers.Dropout):
    """keras.layers.Dropout whose masks are drawn independently on each replica (`replica_seed`).

    Same arguments, semantics (inverted dropout: kept units scaled by 1 / (1 - rate), identity at inference),
    seed-generator state and weights (none) as the parent; only the draw differs. The parent seeds every
    replica from the same mirrored state, so all replicas would drop the same units of the same batch position.
    """

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        if self.rate >= 1:  # as the parent: everything dropped (a keep probability of 0 has no inverse)
            return tf.zeros_like(inputs)
        return inverted_drop(inputs, 1.0 - self.rate, self._mask_shape(inputs), self.seed_generator)

    def _mask_shape(self, inputs):
        """The inputs' shape, or noise_shape with its None entries taken from the inputs (as the parent)."""
        shape = tf.shape(inputs)
        if self.noise_shape is None:
            return shape
        return tf.stack([shape[i] if size is None else size for i, size in enumerate(self.noise_shape)])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CondConvKernelInitializer(keras.initializers.Initializer):
    """Every expert of a CondConv kernel [experts, prod(expert_shape)] drawn as ConvKernelInitializer draws one
    kernel of `expert_shape` (tensorflow/tpu condconv_layers.get_condconv_initializer wraps the conv initializer
    the same way): i.i.d. N(0, sqrt(2 / fan_out)), fan_out from the expert's own shape."""

    def __init__(self, expert_shape, seed=None):
        self.expert_shape = tuple(int(d) for d in expert_shape)
        self.seed = seed

    def __call__(self, shape, dtype=None):
        if len(shape) != 2 or int(shape[1]) != math.prod(self.expert_shape):
            raise ValueError(f"CondConv kernels have shape [experts, {math.prod(self.expert_shape)}], got {shape}")
        kh, kw, out = self.expert_shape[0], self.expert_shape[1], self.expert_shape[-1]
        return keras.random.normal(shape, stddev=math.sqrt(2.0 / (kh * kw * out)), dtype=dtype, seed=self.seed)

    def get_config(self):
        return {"expert_shape": self.expert_shape, "seed": self.seed}


class _CondConvBase(keras.layers.Layer):
    """Shared part of the CondConv layers: inputs [features (N,H,W,C), routing weights (N, experts)]; each
    example's kernel is routing · experts, the experts stored flattened as [experts, kh·kw·in·out] in TF's kernel
    order, as tensorflow/tpu's condconv_kernel (condconv_layers.py). Bias-free, "same" padding (the MBConv use)."""

    def __init__(self, kernel_size: int, strides: int, num_experts: int, **kwargs):
        super().__init__(**kwargs)
        if isinstance(num_experts, bool) or not isinstance(num_experts, int) or num_experts < 1:
            raise ValueError(f"a CondConv layer needs at least one expert, got num_experts={num_experts!r}")
        self.kernel_size, self.strides, self.num_experts = int(kernel_size), int(strides), num_experts

    def _add_experts(self, name: str, expert_shape):
        self.expert_shape = tuple(expert_shape)
        return self.add_weight(
            name=name,
            shape=(self.num_experts, math.prod(expert_shape)),
            initializer=CondConvKernelInitializer(expert_shape),
        )

    def _example_kernels(self, experts, routing):
        """[N, *expert_shape]: each example's routing-weighted sum of the experts."""
        return tf.reshape(
            tf.matmul(tf.cast(routing, self.compute_dtype), tf.cast(experts, self.compute_dtype)),
            (-1, *self.expert_shape),
        )

    def compute_output_shape(self, input_shape):
        features_shape = input_shape[0]
        side = [None if d is None else -(-d // self.strides) for d in features_shape[1:3]]
        return (features_shape[0], *side, self._output_channels(features_shape[-1]))

    def get_config(self):
        return {
            **super().get_config(),
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "num_experts": self.num_experts,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CondConv2D(_CondConvBase):
    """Conditionally parameterized conv (tensorflow/tpu condconv_layers.CondConv2D): a per-example kxk kernel.

    The original splits the batch and convolves example by example, so it needs a static batch size (its export
    pins the batch to 1). Here the same sums run batched, for any batch size: a 1x1 kernel is a per-example
    matmul, a kxk one a matmul of each example's image patches (tf.image.extract_patches, TF's "same" padding).
    """

    def __init__(self, filters: int, kernel_size: int, strides: int, num_experts: int, **kwargs):
        super().__init__(kernel_size, strides, num_experts, **kwargs)
        self.filters = int(filters)

    def build(self, input_shape):
        channels = int(input_shape[0][-1])
        self.condconv_kernel = self._add_experts(
            "condconv_kernel", (self.kernel_size, self.kernel_size, channels, self.filters)
        )

    def call(self, inputs):
        features, routing = inputs
        kernels = self._example_kernels(self.condconv_kernel, routing)  # [N, k, k, in, out]
        k, s = self.kernel_size, self.strides
        if k == 1:
            return tf.einsum("nhwi,nio->nhwo", features[:, ::s, ::s, :], kernels[:, 0, 0])
        patches = tf.image.extract_patches(
            features, sizes=(1, k, k, 1), strides=(1, s, s, 1), rates=(1, 1, 1, 1), padding="SAME"
        )  # [N, H', W', k·k·in], TF's kernel order
        return tf.einsum("nhwp,npo->nhwo", patches, tf.reshape(kernels, (tf.shape(kernels)[0], -1, self.filters)))

    def _output_channels(self, channels):
        return self.filters

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DepthwiseCondConv2D(_CondConvBase):
    """Conditionally parameterized depthwise conv (tensorflow/tpu condconv_layers.DepthwiseCondConv2D), depth
    multiplier 1.

    Batched for any batch size: the examples are moved into the channel axis ([1, H, W, N·C]) so that one
    depthwise conv applies each example's own kernel to its own channels, then moved back.
    """

    def build(self, input_shape):
        channels = int(input_shape[0][-1])
        self.depthwise_condconv_kernel = self._add_experts(
            "depthwise_condconv_kernel", (self.kernel_size, self.kernel_size, channels, 1)
        )

    def call(self, inputs):
        features, routing = inputs
        kernels = self._example_kernels(self.depthwise_condconv_kernel, routing)  # [N, k, k, C, 1]
        n, h, w, c = (tf.shape(features)[i] for i in range(4))
        stacked = tf.reshape(tf.transpose(features, (1, 2, 0, 3)), (1, h, w, n * c))
        filters = tf.reshape(
            tf.transpose(kernels[..., 0], (1, 2, 0, 3)), (self.kernel_size, self.kernel_size, n * c, 1)
        )
        out = tf.nn.depthwise_conv2d(stacked, filters, strides=(1, self.strides, self.strides, 1), padding="SAME")
        out_h, out_w = tf.shape(out)[1], tf.shape(out)[2]
        out = tf.transpose(tf.reshape(out, (out_h, out_w, n, c)), (2, 0, 1, 3))
        return tf.ensure_shape(out, self.compute_output_shape((features.shape, routing.shape)))

    def _output_channels(self, channels):
        return channels


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CondConvRouting(keras.layers.Layer):
    """The per-example routing weights of a CondConv block: sigmoid(Dense(global average of the block's input))
    (tensorflow/tpu efficientnet_model.py MBConvBlock: GlobalAveragePooling2D then tf.layers.Dense(num_experts,
    activation=sigmoid), i.e. a Glorot-uniform kernel and a zero bias). (N,H,W,C) -> (N, experts)."""

    def __init__(self, num_experts: int, **kwargs):
        super().__init__(**kwargs)
        self.num_experts = int(num_experts)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=(int(input_shape[-1]), self.num_experts), initializer="glorot_uniform"
        )
        self.bias = self.add_weight(name="bias", shape=(self.num_experts,), initializer="zeros")

    def call(self, inputs):
        pooled = ops.mean(inputs, axis=(1, 2))
        return ops.sigmoid(
            ops.matmul(pooled, ops.cast(self.kernel, self.compute_dtype)) + ops.cast(self.bias, self.compute_dtype)
        )

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_experts)

    def get_config(self):
        return {**super().get_config(), "num_experts": self.num_experts}


@dataclasses.dataclass(frozen=True)
class MBConvConfig:
    """One concrete (already width-scaled) MBConv block.

    `se_ratio` None or 0 means no squeeze-excite. `survival_prob` is this block's stochastic-depth keep
    probability; it only matters when the block has a residual (id_skip, strides 1 and input == output
    filters). `fused` selects the fused MBConv of EdgeTPU (`fused_mbconv_block`); `id_skip` False removes the
    residual (tensorflow/tpu "noskip"); `num_experts` > 0 makes the expand, depthwise and project convs CondConv
    layers with that many experts, routed per example from the block's input (`CondConvRouting`).

    `fused_conv` (EfficientNet-X's "f1") replaces the 1x1 expand conv and the depthwise conv with one kxk conv at
    the block's stride to the expanded width, squeeze-excite kept. `space_to_depth` (the first block of
    EfficientNet-X's "d1" stage) starts the block with a learned space-to-depth: a 2x2 stride-2 conv from the
    input's channels to `input_filters` (four times the stage's width), BN and activation; its squeeze-excite
    width is a quarter of the usual, since the ratio is meant for the width before space-to-depth
    (tensorflow/tpu efficientnet_model.py lines 190-202, 257-263 and 355-360 at 7dc921f).
    """

    input_filters: int
    output_filters: int
    kernel_size: int
    strides: int
    expand_ratio: int
    se_ratio: Optional[float] = 0.25
    survival_prob: float = 1.0
    activation: str = "swish"
    batchnorm_group_size: int = 1
    fused: bool = False
    id_skip: bool = True
    num_experts: int = 0
    fused_conv: bool = False
    space_to_depth: bool = False

    @property
    def expanded_filters(self) -> int:
        return self.input_filters * self.expand_ratio

    @property
    def has_residual(self) -> bool:
        # A space-to-depth block halves the map, so its output never meets its input.
        return (
            self.id_skip and self.strides == 1 and not self.space_to_depth and self.input_filters == self.output_filters
        )

    @property
    def se_filters(self) -> int:
        """Squeeze-excite width: int(input_filters * se_ratio), a quarter of it after space-to-depth, at least 1
        (tensorflow/tpu efficientnet_model.py lines 254-263 at 7dc921f); 0 without squeeze-excite."""
        if not self.se_ratio:
            return 0
        reduced = int(self.input_filters * self.se_ratio)
        return max(1, reduced // 4 if self.space_to_depth else reduced)


def batch_norm(name: str, activation: Optional[str], group_size: int) -> BatchNormActivation:
    """BatchNorm (+ activation) with the project's constants; statistics over `group_size` replicas."""
    return BatchNormActivation(activation=activation, group_size=group_size, name=name)


def conv2d(filters: int, kernel_size: int, strides: int, name: str) -> keras.layers.Conv2D:
    """Bias-free conv with TF "same" padding and the TPU initializer (the following BN supplies the bias)."""
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer=ConvKernelInitializer(),
        name=name,
    )


def mbconv_block(inputs, config: MBConvConfig, prefix: str):
    """Applies one MBConv block to the symbolic tensor `inputs`; layer names start with `prefix` ("block2b_").

    expand 1x1 (if expand_ratio != 1) -> depthwise kxk stride s -> SE -> project 1x1 -> residual with
    stochastic depth when strides == 1 and input == output filters (docs/recipe.md §2). With `fused_conv` one
    kxk conv at stride s takes the place of the expand and depthwise convs; with `space_to_depth` a 2x2
    stride-2 conv, BN and activation come first (see `MBConvConfig`).
    """
    c = config
    if c.kernel_size < 1 or c.strides < 1 or c.expand_ratio < 1:
        raise ValueError(f"{prefix}: kernel_size, strides and expand_ratio must be >= 1, got {c}")
    if c.fused:
        return fused_mbconv_block(inputs, c, prefix)
    if c.num_experts and (c.fused_conv or c.space_to_depth):
        raise ValueError(f"{prefix}: fused_conv and space_to_depth blocks have no CondConv variant")
    conv, depthwise = _block_convs(inputs, c, prefix)
    x = inputs
    if c.space_to_depth:
        x = conv2d(c.input_filters, 2, 2, prefix + "space2depth_conv")(x)
        x = batch_norm(prefix + "space2depth_bn", c.activation, c.batchnorm_group_size)(x)
    if c.fused_conv:
        # Named as Keras' EfficientNetV2 fused block names its kxk conv (stride on it, as here).
        x = conv(c.expanded_filters, c.kernel_size, c.strides, prefix + "expand_conv", x)
        x = batch_norm(prefix + "expand_bn", c.activation, c.batchnorm_group_size)(x)
    else:
        if c.expand_ratio != 1:
            x = conv(c.expanded_filters, 1, 1, prefix + "expand_conv", x)
            x = batch_norm(prefix + "expand_bn", c.activation, c.batchnorm_group_size)(x)
        x = depthwise(x)
        x = batch_norm(prefix + "bn", c.activation, c.batchnorm_group_size)(x)
    if c.se_ratio:
        # SE width counts from the block's input filters, not the expanded ones (docs/recipe.md §2).
        reduced = SqueezeExciteReduce(c.se_filters, activation=c.activation, name=prefix + "se_reduce")(x)
        x = SqueezeExciteExpand(c.expanded_filters, name=prefix + "se_expand")([x, reduced])
    x = conv(c.output_filters, 1, 1, prefix + "project_conv", x)
    x = batch_norm(prefix + "project_bn", None, c.batchnorm_group_size)(x)
    if c.has_residual:
        x = StochasticDepth(c.survival_prob, name=prefix + "add")([x, inputs])
    return x


def _block_convs(inputs, c: MBConvConfig, prefix: str):
    """(conv(filters, kernel, strides, name, x), depthwise(x)) for the block: plain Keras convs, or CondConv
    layers fed the routing weights of the block's input when c.num_experts > 0."""
    if not c.num_experts:

        def conv(filters, kernel, strides, name, x):
            return conv2d(filters, kernel, strides, name)(x)

        def depthwise(x):
            return keras.layers.DepthwiseConv2D(
                c.kernel_size,
                strides=c.strides,
                padding="same",
                use_bias=False,
                depthwise_initializer=ConvKernelInitializer(),
                name=prefix + "dwconv",
            )(x)

        return conv, depthwise
    routing = CondConvRouting(c.num_experts, name=prefix + "routing")(inputs)

    def cond_conv(filters, kernel, strides, name, x):
        return CondConv2D(filters, kernel, strides, c.num_experts, name=name)([x, routing])

    def cond_depthwise(x):
        return DepthwiseCondConv2D(c.kernel_size, c.strides, c.num_experts, name=prefix + "dwconv")([x, routing])

    return cond_conv, cond_depthwise


def fused_mbconv_block(inputs, config: MBConvConfig, prefix: str):
    """Applies one fused MBConv block (EdgeTPU): kxk expand conv, BN, act -> 1x1 project conv, BN -> residual.

    As tensorflow/tpu's MBConvBlockWithoutDepthwise (efficientnet_model.py), which produced the published
    EdgeTPU checkpoints: the kxk conv (TPU hard-codes 3x3; every EdgeTPU fused stage has kernel 3) runs at
    stride 1 and the block's stride sits on the 1x1 projection, so a stride-2 block samples the kxk output at
    even positions. (Placing the stride on the kxk conv instead, as later ports do, gives the same result on odd
    maps but shifts every sample by one pixel on even ones, e.g. 112x112 after the stem, and costs fewer MACs.)
    No depthwise conv and no squeeze-excite. With expand_ratio 1 there is
    no expand conv, only the strided projection. Layer names follow Keras' EfficientNetV2 fused block:
    expand_conv, expand_bn, project_conv, project_bn.
    """
    c = config
    if c.se_ratio:
        raise ValueError(f"{prefix}: a fused block has no squeeze-excite; got se_ratio={c.se_ratio!r}")
    if c.num_experts:
        raise ValueError(f"{prefix}: a fused block has no CondConv variant; got num_experts={c.num_experts!r}")
    if c.fused_conv or c.space_to_depth:
        raise ValueError(f"{prefix}: a fused block has no fused_conv or space_to_depth variant")
    x = inputs
    if c.expand_ratio != 1:
        x = conv2d(c.expanded_filters, c.kernel_size, 1, prefix + "expand_conv")(x)
        x = batch_norm(prefix + "expand_bn", c.activation, c.batchnorm_group_size)(x)
    x = conv2d(c.output_filters, 1, c.strides, prefix + "project_conv")(x)
    x = batch_norm(prefix + "project_bn", None, c.batchnorm_group_size)(x)
    if c.has_residual:
        x = StochasticDepth(c.survival_prob, name=prefix + "add")([x, inputs])
    return x
