"""FROZEN REFERENCE, test oracle only: data/autoaugment.py as of commit 54d5b33, before the throughput work.

tests/data/test_autoaugment_regression.py checks that the current data/autoaugment.py gives bit-identical
results to this version for every op at several levels. Do not edit or import it from the package.

Original docstring: AutoAugment (policy v0) and RandAugment on uint8 images, in core TensorFlow graph ops only.

Every image op of REFERENCE.md §4 takes a uint8 [height, width, 3] tensor and returns one of the same shape
and dtype. Levels run 0..10 (larger RandAugment magnitudes extrapolate, as in tensorflow/tpu); the mapping from
level to op argument, the fill value 128 of geometric ops, nearest interpolation and the blend rounding follow
tensorflow/tpu models/official/efficientnet/autoaugment.py (REFERENCE.md §4), so each op can be compared
number for number with that implementation.

Design for throughput on TPU hosts: one `tf.switch_case` over the 16 ops per applied op (the branch not taken
costs nothing), levels and signs are tensors, and all randomness is drawn from stateless ops keyed by a
per-image seed, so results are reproducible and the ops run unchanged eagerly and inside `tf.data`.
No tf.py_function, no tensorflow-addons, no private Keras modules.
"""
import math

import tensorflow as tf

MAX_LEVEL = 10.0  # REFERENCE.md §4
FILL_VALUE = 128  # pixels exposed by geometric ops and Cutout (REFERENCE.md §4)

# Op names exactly as in REFERENCE.md §4 (the RandAugment list); the order fixes the switch_case branch index.
OP_NAMES = (
    "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "Color", "Contrast",
    "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX", "TranslateY", "Cutout", "SolarizeAdd",
)

# (translate_const, cutout_const) per augmentation (REFERENCE.md §4).
AUTOAUGMENT_HPARAMS = {"translate_const": 250.0, "cutout_const": 100.0}
RANDAUGMENT_HPARAMS = {"translate_const": 100.0, "cutout_const": 40.0}

# Policy v0: 25 sub-policies of two (op, probability, level) each (REFERENCE.md §4, tensorflow/tpu policy_v0).
POLICY_V0 = (
    (("Equalize", 0.8, 1), ("ShearY", 0.8, 4)),
    (("Color", 0.4, 9), ("Equalize", 0.6, 3)),
    (("Color", 0.4, 1), ("Rotate", 0.6, 8)),
    (("Solarize", 0.8, 3), ("Equalize", 0.4, 7)),
    (("Solarize", 0.4, 2), ("Solarize", 0.6, 2)),
    (("Color", 0.2, 0), ("Equalize", 0.8, 8)),
    (("Equalize", 0.4, 8), ("SolarizeAdd", 0.8, 3)),
    (("ShearX", 0.2, 9), ("Rotate", 0.6, 8)),
    (("Color", 0.6, 1), ("Equalize", 1.0, 2)),
    (("Invert", 0.4, 9), ("Rotate", 0.6, 0)),
    (("Equalize", 1.0, 9), ("ShearY", 0.6, 3)),
    (("Color", 0.4, 7), ("Equalize", 0.6, 0)),
    (("Posterize", 0.4, 6), ("AutoContrast", 0.4, 7)),
    (("Solarize", 0.6, 8), ("Color", 0.6, 9)),
    (("Solarize", 0.2, 4), ("Rotate", 0.8, 9)),
    (("Rotate", 1.0, 7), ("TranslateY", 0.8, 9)),
    (("ShearX", 0.0, 0), ("Solarize", 0.8, 4)),
    (("ShearY", 0.8, 0), ("Color", 0.6, 4)),
    (("Color", 1.0, 0), ("Rotate", 0.6, 2)),
    (("Equalize", 0.8, 4), ("Equalize", 0.0, 8)),
    (("Equalize", 1.0, 4), ("AutoContrast", 0.6, 2)),
    (("ShearY", 0.4, 7), ("SolarizeAdd", 0.6, 7)),
    (("Posterize", 0.8, 2), ("Solarize", 0.6, 10)),
    (("Solarize", 0.6, 8), ("Equalize", 0.6, 1)),
    (("Color", 0.8, 6), ("Rotate", 0.4, 5)),
)


# ----------------------------------------------------------------------------------------------------------
# Pixel ops. `image` is uint8 [h, w, 3]; `arg` is the already-mapped float32 argument.


def _to_uint8(values):
    """Clip to [0, 255] and truncate, as tensorflow/tpu's blend does with tf.cast (truncation, not rounding)."""
    return tf.cast(tf.clip_by_value(values, 0.0, 255.0), tf.uint8)


def _blend(degenerate, image, factor):
    """degenerate + factor·(image − degenerate), truncated to uint8 (PIL ImageEnhance semantics)."""
    degenerate = tf.cast(degenerate, tf.float32)
    return _to_uint8(degenerate + factor * (tf.cast(image, tf.float32) - degenerate))


def _invert(image):
    return 255 - image


def _solarize(image, threshold):
    """Invert every pixel at or above `threshold` (an int32 that may be 256, i.e. nothing inverted).

    255 − v equals v XOR 255 on uint8; an XOR with a 0/255 mask is several times cheaper than tf.where on CPU.
    """
    at_or_above = tf.cast(image >= tf.cast(tf.clip_by_value(threshold, 0, 255), tf.uint8), tf.uint8)
    enabled = tf.cast(threshold <= 255, tf.uint8) * 255
    return tf.bitwise.bitwise_xor(image, at_or_above * enabled)


def _solarize_add(image, addition, threshold=128):
    """Add `addition` to pixels below `threshold` (tensorflow/tpu solarize_add), saturating at 255."""
    addition = tf.cast(tf.clip_by_value(addition, 0, 255), tf.uint8)
    increment = tf.minimum(255 - image, addition)  # saturating add without leaving uint8
    return image + increment * tf.cast(image < threshold, tf.uint8)


def _posterize(image, bits):
    """Keep the `bits` high bits. TF clamps shift amounts to [0, 7] on uint8 (checked on TF 2.21), so with
    0 bits tensorflow/tpu's shift by 8 keeps the top bit and bits >= 8 is the identity; reproduced here."""
    shift = tf.clip_by_value(8 - bits, 0, 7)
    mask = tf.cast(tf.bitwise.left_shift(255, shift) % 256, tf.uint8)  # (v >> s) << s == v & mask
    return tf.bitwise.bitwise_and(image, mask)


def _grayscale3(image):
    """tf.image.rgb_to_grayscale's values (weights 0.2989/0.5870/0.1140 on x/255, back to uint8 by ·255.5 and
    truncation), written out per channel and repeated to 3 channels: about half the cost on CPU, and the
    3-channel result avoids a slow [h,w,1]→[h,w,3] broadcast in the blend."""
    red, green, blue = tf.unstack(tf.cast(image, tf.float32) * (1.0 / 255.0), axis=-1)
    gray = tf.cast(tf.clip_by_value((red * 0.2989 + green * 0.5870 + blue * 0.1140) * 255.5, 0.0, 255.0), tf.uint8)
    return tf.stack([gray, gray, gray], axis=-1)


def _color(image, factor):
    return _blend(_grayscale3(image), image, factor)


def _contrast(image, factor):
    """Blend with a flat grey image. The grey level reproduces tensorflow/tpu autoaugment.py exactly: it sums the
    grayscale histogram (= the pixel count) and divides by 256, so the level is min(h·w/256, 255), not the mean
    intensity PIL uses. Kept for fidelity with the recipe that produced the published checkpoints."""
    shape = tf.shape(image)
    level = tf.minimum(tf.cast(shape[0] * shape[1], tf.float32) / 256.0, 255.0)
    return _blend(tf.floor(level), image, factor)  # tensorflow/tpu casts the level to uint8: floor


def _brightness(image, factor):
    return _blend(0.0, image, factor)


def _sharpness(image, factor):
    """Blend with a 3×3 smoothed copy (kernel [[1,1,1],[1,5,1],[1,1,1]]/13, valid region only; the one-pixel
    border keeps the original pixels), as PIL and tensorflow/tpu do."""
    kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
    smooth = tf.nn.depthwise_conv2d(tf.cast(image, tf.float32)[None], kernel, [1, 1, 1, 1], "VALID")[0]
    smooth = tf.cast(_to_uint8(smooth), tf.float32)
    pixels = tf.cast(image, tf.float32)
    # Interior replaced by the smoothed values, border kept: adding a zero-padded difference avoids tf.where.
    degenerate = pixels + tf.pad(smooth - pixels[1:-1, 1:-1], [[1, 1], [1, 1], [0, 0]])
    return _blend(degenerate, image, factor)


def _per_channel(image, channel_fn):
    """Apply channel_fn to each [h, w] channel and restack: per-channel scalars then broadcast as scalars,
    which TF's CPU kernels handle far faster than a [3]-vector broadcast over [h, w, 3]."""
    return tf.stack([channel_fn(channel) for channel in tf.unstack(image, axis=-1)], axis=-1)


def _autocontrast_channel(channel):
    low = tf.cast(tf.reduce_min(channel), tf.float32)
    high = tf.cast(tf.reduce_max(channel), tf.float32)
    spread = high > low
    scale = tf.where(spread, 255.0 / tf.maximum(high - low, 1.0), 1.0)
    offset = tf.where(spread, -low * scale, 0.0)
    return _to_uint8(tf.cast(channel, tf.float32) * scale + offset)


def _autocontrast(image):
    """Stretch each channel to [0, 255]; channels with a single value are left as they are."""
    return _per_channel(image, _autocontrast_channel)


def _equalize_channel(channel):
    """PIL's equalize lookup table: step = (pixels − count of the brightest value) // 255;
    lut[v] = (pixels below v + step // 2) // step; a channel with step 0 is unchanged."""
    values = tf.cast(channel, tf.int32)
    histogram = tf.math.bincount(tf.reshape(values, [-1]), minlength=256, maxlength=256)
    nonzero = tf.cast(tf.where(histogram > 0), tf.int32)
    brightest_count = histogram[nonzero[-1, 0]]
    step = (tf.reduce_sum(histogram) - brightest_count) // 255
    safe_step = tf.maximum(step, 1)
    lut = tf.clip_by_value((tf.cumsum(histogram, exclusive=True) + safe_step // 2) // safe_step, 0, 255)
    lut = tf.cast(tf.where(step > 0, lut, tf.range(256)), tf.uint8)
    return tf.gather(lut, values)  # a uint8 table gathers faster than an int32 one


def _equalize(image):
    """Per-channel histogram equalization (PIL ImageOps.equalize, tensorflow/tpu equalize)."""
    return _per_channel(image, _equalize_channel)


def _cutout(image, half_size, seed):
    """Fill a square of side 2·half_size (clipped at the borders) around a random centre with 128."""
    shape = tf.shape(image)
    center = tf.random.stateless_uniform([2], seed, minval=0, maxval=2**31 - 1, dtype=tf.int32) % shape[:2]
    top, bottom = tf.maximum(center[0] - half_size, 0), tf.minimum(center[0] + half_size, shape[0])
    left, right = tf.maximum(center[1] - half_size, 0), tf.minimum(center[1] + half_size, shape[1])
    # Full-size 0/1 mask built by padding a block (no broadcasting); arithmetic select beats tf.where on CPU.
    inside = tf.pad(tf.ones(tf.stack([tf.maximum(bottom - top, 0), tf.maximum(right - left, 0), 3]), tf.uint8),
                    [[top, shape[0] - tf.maximum(bottom, top)], [left, shape[1] - tf.maximum(right, left)], [0, 0]])
    return image * (1 - inside) + inside * FILL_VALUE


def _transform(image, transform):
    """Apply a projective transform [a0 a1 a2 b0 b1 b2 c0 c1] (output pixel → input pixel) with nearest
    interpolation and constant fill 128, through the core op tf.raw_ops.ImageProjectiveTransformV3."""
    shape = tf.shape(image)
    transformed = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=tf.reshape(tf.cast(transform, tf.float32), [1, 8]),
        output_shape=shape[:2], fill_value=float(FILL_VALUE), interpolation="NEAREST", fill_mode="CONSTANT")
    return tf.reshape(transformed, shape)


def _rotate(image, degrees):
    """Rotate counter-clockwise about the image centre (tf.contrib.image.rotate's convention)."""
    radians = degrees * (math.pi / 180.0)
    height = tf.cast(tf.shape(image)[0], tf.float32) - 1.0
    width = tf.cast(tf.shape(image)[1], tf.float32) - 1.0
    cos, sin = tf.cos(radians), tf.sin(radians)
    x_offset = (width - (cos * width - sin * height)) / 2.0
    y_offset = (height - (sin * width + cos * height)) / 2.0
    return _transform(image, tf.stack([cos, -sin, x_offset, sin, cos, y_offset, 0.0, 0.0]))


def _shear_x(image, level):
    return _transform(image, tf.stack([1.0, level, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]))


def _shear_y(image, level):
    return _transform(image, tf.stack([1.0, 0.0, 0.0, level, 1.0, 0.0, 0.0, 0.0]))


def _shift(image, pixels, axis):
    """Nearest-neighbour translation: output[i] = input[i + round(pixels)] along `axis`, fill 128 outside.

    Equal to ImageProjectiveTransformV3 with NEAREST (which rounds half away from zero: for in-bounds pixels
    that is floor(pixels + 0.5)), but done by slicing and padding, several times cheaper on CPU."""
    size = tf.shape(image)[axis]
    offset = tf.clip_by_value(tf.cast(tf.floor(pixels + 0.5), tf.int32), -size, size)
    start = tf.maximum(offset, 0)
    kept = size - tf.abs(offset)
    begin = tf.tensor_scatter_nd_update(tf.zeros([3], tf.int32), [[axis]], [start])
    extent = tf.tensor_scatter_nd_update(tf.constant([-1, -1, -1]), [[axis]], [kept])
    before = tf.maximum(-offset, 0)
    paddings = tf.tensor_scatter_nd_update(tf.zeros([3, 2], tf.int32), [[axis]], [tf.stack([before, size - kept - before])])
    return tf.pad(tf.slice(image, begin, extent), paddings, constant_values=FILL_VALUE)


def _translate_x(image, pixels):
    """Positive `pixels` moves the content left (tensorflow/tpu translates by −pixels)."""
    return _shift(image, pixels, axis=1)


def _translate_y(image, pixels):
    return _shift(image, pixels, axis=0)


# ----------------------------------------------------------------------------------------------------------
# Level → argument (REFERENCE.md §4) and dispatch.


def _signed(value, negate):
    return tf.where(negate, -value, value)


def _scaled(level, scale):
    """level/10·scale, multiplied first so integer levels map to exact integers before truncation."""
    return level * scale / MAX_LEVEL


def _int_arg(level, scale):
    return tf.cast(tf.floor(_scaled(level, scale)), tf.int32)  # tensorflow/tpu uses int(): truncation


def _enhance_arg(level):
    return _scaled(level, 1.8) + 0.1


_IDENTITY_INDEX = len(OP_NAMES)  # extra branch: "op not applied", which saves a tf.cond per op slot


def _op_branches(image, level, negate, seed, translate_const, cutout_const):
    """One zero-argument callable per op, in OP_NAMES order, then the identity, for tf.switch_case."""
    return [
        lambda: _autocontrast(image),
        lambda: _equalize(image),
        lambda: _invert(image),
        lambda: _rotate(image, _signed(_scaled(level, 30.0), negate)),
        lambda: _posterize(image, _int_arg(level, 4.0)),
        lambda: _solarize(image, _int_arg(level, 256.0)),
        lambda: _color(image, _enhance_arg(level)),
        lambda: _contrast(image, _enhance_arg(level)),
        lambda: _brightness(image, _enhance_arg(level)),
        lambda: _sharpness(image, _enhance_arg(level)),
        lambda: _shear_x(image, _signed(_scaled(level, 0.3), negate)),
        lambda: _shear_y(image, _signed(_scaled(level, 0.3), negate)),
        lambda: _translate_x(image, _signed(_scaled(level, translate_const), negate)),
        lambda: _translate_y(image, _signed(_scaled(level, translate_const), negate)),
        lambda: _cutout(image, _int_arg(level, cutout_const), seed),
        lambda: _solarize_add(image, _int_arg(level, 110.0)),
        lambda: tf.identity(image),
    ]


def _apply_op_by_index(image, op_index, level, negate, seed, hparams):
    """Apply OP_NAMES[op_index] (an int32 tensor) through one switch_case; only the chosen branch runs."""
    branches = _op_branches(image, tf.cast(level, tf.float32), tf.cast(negate, tf.bool), seed,
                            float(hparams["translate_const"]), float(hparams["cutout_const"]))
    result = tf.switch_case(op_index, branches)
    return tf.ensure_shape(result, image.shape)


def _check_image(image):
    image = tf.convert_to_tensor(image)
    if image.dtype != tf.uint8 or image.shape.rank != 3:
        raise ValueError(f"augmentation expects a uint8 image of rank 3 [height, width, 3], got {image.dtype.name} "
                         f"with shape {image.shape}")
    return image


def _check_seed(seed):
    seed = tf.convert_to_tensor(seed)
    if seed.shape != (2,) or not seed.dtype.is_integer:
        raise ValueError(f"seed must be an integer tensor of shape [2], got {seed.dtype.name} {seed.shape}")
    return tf.cast(seed, tf.int64)


def apply_op(image, name, level, negate=False, *, seed=(0, 0), translate_const=AUTOAUGMENT_HPARAMS["translate_const"],
             cutout_const=AUTOAUGMENT_HPARAMS["cutout_const"]):
    """Apply one named op of REFERENCE.md §4 to a uint8 [h, w, 3] image and return a uint8 image of that shape.

    Args:
      image: uint8 tensor [height, width, 3].
      name: one of OP_NAMES.
      level: magnitude, 0..10 (larger values extrapolate the linear maps, as RandAugment magnitudes do).
      negate: for the signed ops (Rotate, ShearX/Y, TranslateX/Y), use the negative argument; ignored otherwise.
      seed: stateless seed [2] for Cutout's centre; ignored by the other ops.
      translate_const, cutout_const: pixels at level 10 (AutoAugment 250/100, RandAugment 100/40).
    Deterministic given its arguments; runs eagerly and inside tf.data / tf.function.
    """
    if name not in OP_NAMES:
        raise ValueError(f"unknown augmentation op {name!r}; expected one of {', '.join(OP_NAMES)}")
    if isinstance(level, (int, float)) and level < 0:
        raise ValueError(f"augmentation level must be >= 0, got {level}")
    image = _check_image(image)
    # The op is known in Python here, so call its branch directly instead of tracing a 17-way switch_case.
    branches = _op_branches(image, tf.cast(level, tf.float32), tf.cast(negate, tf.bool), _check_seed(seed),
                            float(translate_const), float(cutout_const))
    return tf.ensure_shape(branches[OP_NAMES.index(name)](), image.shape)


def _policy_tables(policy):
    """Constant [n, 2] tables of op index, probability and level for a policy given as POLICY_V0."""
    ops = [[OP_NAMES.index(op) for op, _, _ in sub] for sub in policy]
    probs = [[prob for _, prob, _ in sub] for sub in policy]
    levels = [[float(level) for _, _, level in sub] for sub in policy]
    return tf.constant(ops, tf.int32), tf.constant(probs, tf.float32), tf.constant(levels, tf.float32)


def distort_with_autoaugment(image, seed, policy=POLICY_V0):
    """AutoAugment: pick one sub-policy uniformly, apply each of its ops with its probability (REFERENCE.md §4).

    `seed` is a stateless seed [2]; the same image and seed always give the same result.
    """
    image = _check_image(image)
    seed = _check_seed(seed)
    ops, probs, levels = _policy_tables(policy)
    draws = tf.random.stateless_uniform([5], seed)  # sub-policy, two apply coins, two sign coins
    choice = tf.minimum(tf.cast(draws[0] * len(policy), tf.int32), len(policy) - 1)
    for slot in range(2):
        op_seed = tf.random.experimental.stateless_fold_in(seed, slot + 1)
        apply = draws[1 + slot] < probs[choice, slot]
        op_index = tf.where(apply, ops[choice, slot], _IDENTITY_INDEX)
        image = _apply_op_by_index(image, op_index, levels[choice, slot], draws[3 + slot] < 0.5, op_seed,
                                   AUTOAUGMENT_HPARAMS)
    return image


def distort_with_randaugment(image, num_layers, magnitude, seed):
    """RandAugment: `num_layers` ops drawn uniformly from the 16 of OP_NAMES, each always applied at level
    `magnitude` with a random sign for the signed ops (tensorflow/tpu distort_image_with_randaugment)."""
    if not isinstance(num_layers, int) or num_layers < 0:
        raise ValueError(f"randaugment num_layers must be an int >= 0, got {num_layers!r}")
    if not isinstance(magnitude, (int, float)) or magnitude < 0:
        raise ValueError(f"randaugment magnitude must be a number >= 0, got {magnitude!r}")
    image = _check_image(image)
    seed = _check_seed(seed)
    for layer in range(num_layers):
        layer_seed = tf.random.experimental.stateless_fold_in(seed, layer + 1)
        draws = tf.random.stateless_uniform([2], layer_seed)
        op_index = tf.minimum(tf.cast(draws[0] * len(OP_NAMES), tf.int32), len(OP_NAMES) - 1)
        image = _apply_op_by_index(image, op_index, float(magnitude), draws[1] < 0.5, layer_seed,
                                   RANDAUGMENT_HPARAMS)
    return image
