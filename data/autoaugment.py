"""AutoAugment (policy v0) and RandAugment on uint8 images, in core TensorFlow graph ops only.

The specification is tensorflow/tpu models/official/efficientnet/autoaugment.py (run under
tensorflow.compat.v1), quirks included: every op gives the original's pixels exactly (tests/data/
test_original_ops.py compares each op with an independent port of the original's semantics). Every op takes a
uint8 [height, width, 3] tensor and returns one of the same shape and dtype. Levels run 0..10 (larger
RandAugment magnitudes extrapolate, as in the original). The level → argument maps are computed in Python
float64 exactly as the original's `level_to_arg` does (`level_to_arg` below) and enter the graph as constant
tables, cast to float32 where the original's tensor ops cast them. Two bugs of the original are kept by default
because the published checkpoints were trained with them: the uint8 wrap-around of the Solarize threshold and
of the Posterize shift (`_solarize`, `_posterize`); `uint8_wraparound=False` gives the intended behaviour.

Design for throughput on TPU hosts (figures in benchmarks/README.md, "Input pipeline"): one `tf.switch_case`
per applied op over only the ops that op slot can draw (the branch not taken costs little), levels and signs
are tensors, and all randomness is drawn from stateless ops keyed by a per-image seed, so results are
reproducible and the ops run unchanged eagerly and inside `tf.data`. The expensive ops avoid TF's slow CPU
patterns: per-channel work goes through one [3·256] lookup table (one bincount, one gather) instead of
unstack/stack; geometric ops compute the transform kernel's source pixel once per pixel and move whole pixels
with one gather; no [3]-vector broadcasts. The table gather and the source map run compiled by XLA
(`_compiled`: integer and exact float32 operations only, so the pixels stay TensorFlow's kernels' bit for
bit). No tf.py_function, no tensorflow-addons, no private Keras modules.
"""

import math
import numbers

import numpy as np
import tensorflow as tf

from data import branches

MAX_LEVEL = 10.0  # tensorflow/tpu autoaugment.py _MAX_LEVEL
FILL_VALUE = 128  # pixels exposed by geometric ops and Cutout (the original's replace_value [128, 128, 128])

# Op names as in the original's RandAugment list (distort_image_with_randaugment available_ops); the order
# fixes the switch_case branch index.
OP_NAMES = (
    "AutoContrast",
    "Equalize",
    "Invert",
    "Rotate",
    "Posterize",
    "Solarize",
    "Color",
    "Contrast",
    "Brightness",
    "Sharpness",
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Cutout",
    "SolarizeAdd",
)

# (translate_const, cutout_const) per augmentation (distort_image_with_autoaugment / _randaugment HParams).
AUTOAUGMENT_HPARAMS = {"translate_const": 250.0, "cutout_const": 100.0}
RANDAUGMENT_HPARAMS = {"translate_const": 100.0, "cutout_const": 40.0}

# Policy v0: 25 sub-policies of two (op, probability, level) each (tensorflow/tpu autoaugment.py policy_v0).
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


def _solarize(image, threshold, uint8_wraparound=True):
    """Invert every pixel at or above `threshold` (int32 scalar, int(level/10·256), may exceed 255).

    BUG KEPT FOR FIDELITY (default): tensorflow/tpu autoaugment.py `solarize` compares the uint8 image with the
    Python int threshold, which TensorFlow converts to uint8 modulo 256. Level 10 (threshold 256) thus becomes 0
    and inverts EVERY pixel (sub-policy (Solarize, 0.6, 10) of policy v0; every Solarize at RandAugment
    magnitude 10), magnitude 17 (435) acts as 179 and magnitude 28 (716) as 204. uint8_wraparound=False: a
    threshold >= 256 inverts nothing, as intended.
    255 − v equals v XOR 255 on uint8; an XOR with a 0/255 mask is several times cheaper than tf.where on CPU.
    """
    if uint8_wraparound:
        threshold = threshold % 256
    at_or_above = tf.cast(image >= tf.cast(tf.clip_by_value(threshold, 0, 255), tf.uint8), tf.uint8)
    enabled = tf.cast(threshold <= 255, tf.uint8) * 255
    return tf.bitwise.bitwise_xor(image, at_or_above * enabled)


def _solarize_add(image, addition, threshold=128):
    """Add `addition` to pixels below `threshold` (tensorflow/tpu solarize_add), saturating at 255."""
    addition = tf.cast(tf.clip_by_value(addition, 0, 255), tf.uint8)
    increment = tf.minimum(255 - image, addition)  # saturating add without leaving uint8
    return image + increment * tf.cast(image < threshold, tf.uint8)


def _posterize(image, bits, uint8_wraparound=True):
    """(v >> s) << s with s = 8 − bits (tensorflow/tpu autoaugment.py `posterize`, bits = int(level/10·4)).

    TensorFlow's shift ops clamp a uint8 shift amount to [0, 7], so bits 0 (s = 8) keeps the top bit.
    BUG KEPT FOR FIDELITY (default): the original passes s as a Python int, converted to uint8 modulo 256, so
    bits >= 9 (RandAugment magnitude >= 23, e.g. 28 of the B7 recipe: bits 11, s = −3 → 253 → clamped to 7)
    also keeps only the top bit where the intent was the identity (tensorflow/tpu `_posterize` via
    level_to_arg's 'Posterize' entry). uint8_wraparound=False: bits >= 8 leave the image unchanged.
    """
    shift = 8 - bits
    if uint8_wraparound:
        shift = shift % 256
    shift = tf.clip_by_value(shift, 0, 7)
    mask = tf.cast(tf.bitwise.left_shift(255, shift) % 256, tf.uint8)  # (v >> s) << s == v & mask
    return tf.bitwise.bitwise_and(image, mask)


GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # tf.image.rgb_to_grayscale's, as tensorflow/tpu `color` uses it


def _color(image, factor):
    """Blend with the grayscale copy (tensorflow/tpu `color`: tf.image.rgb_to_grayscale, weights
    0.2989/0.5870/0.1140 on x/255, back to uint8 by ·255.5 and truncation). The grey values equal
    tf.image.rgb_to_grayscale's for all 2**24 RGB triples (checked exhaustively on TF 2.21, x86 CPU); the speed
    comes from layout only (benchmarks/README.md): the float copy of the image is made once and shared by the
    grayscale and the blend, and the grey plane is repeated to 3 channels by a [pixels, 1] × [1, 3] matmul with
    ones, which costs the host less than half of tf.tile's repeat of the channel (each output is one product
    g · 1 with no sum, exact with any kernel, and g is a whole number below 256)."""
    pixels = tf.cast(image, tf.float32)
    red, green, blue = tf.unstack(pixels * (1.0 / 255.0), axis=-1)
    weight_r, weight_g, weight_b = GRAY_WEIGHTS
    gray = tf.cast(
        tf.clip_by_value((red * weight_r + green * weight_g + blue * weight_b) * 255.5, 0.0, 255.0), tf.uint8
    )
    grey_column = tf.reshape(tf.cast(gray, tf.float32), [-1, 1])
    degenerate = tf.reshape(tf.matmul(grey_column, tf.ones([1, 3])), tf.shape(image))
    return _to_uint8(degenerate + factor * (pixels - degenerate))


def _contrast(image, factor):
    """Blend with a flat grey image. The grey level reproduces tensorflow/tpu autoaugment.py exactly: it sums the
    grayscale histogram (= the pixel count) and divides by 256, so the level is min(h·w/256, 255), not the mean
    intensity PIL uses. Kept for fidelity with the recipe that produced the published checkpoints."""
    shape = tf.shape(image)
    level = tf.minimum(tf.cast(shape[0] * shape[1], tf.float32) / 256.0, 255.0)
    return _blend(tf.floor(level), image, factor)  # tensorflow/tpu casts the level to uint8: floor


def _brightness(image, factor):
    return _blend(0.0, image, factor)


# Sharpness' smoothing kernel as the original builds it in float32 (tensorflow/tpu autoaugment.py sharpness:
# [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13): fl(1/13) and fl(5/13). Every product fl(k · weight), k = 0..255, and every
# partial sum of such products is a whole multiple of 2**-27, so the smoothing is computed exactly in int64 units.
_SHARPNESS_KERNEL = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / np.float32(13.0)
_SHARPNESS_UNIT_EXPONENT = 27


def _to_float32_units(units):
    """Rounds int64 units of 2**-27 to the nearest float32 value (ties to even), in the same units. The value
    float32(n) of an integer n is n rounded to 24 significant bits, and scaling by 2**27 is exact, so this is
    float32 rounding of the real value n · 2**-27."""
    return tf.cast(tf.cast(units, tf.float32), tf.int64)


def smoothed(images):
    """int32 [..., h, w, 3]: the degenerate image of Sharpness, for one image or a batch: the 3×3 smoothing of
    the interior (valid region, truncated to uint8), the one-pixel border kept.

    The original ran tf.nn.depthwise_conv2d. TensorFlow's CPU kernel for it (depthwise_conv_op.cc) accumulates
    the 3×3 taps in row-major order from 0 with Eigen's pmadd, which is one rounding per product and one per sum
    unless TensorFlow was compiled with FMA, and TensorFlow 1.x's published CPU builds were not (AVX only); the
    oneDNN kernel that TensorFlow 2 picks on some Intel CPUs fuses them instead, and XLA may too. This computes
    the TF 1.x result, fl(fl(acc) + fl(weight · pixel)) per tap, with integer arithmetic and int64 → float32
    conversions only, so it gives the same pixels on every CPU, with oneDNN on or off, and under XLA
    (data/device_augment.py runs it inside the train step; docs/recipe.md §4 has the measurements).
    """
    units = (_SHARPNESS_KERNEL.astype(np.float64) * 2.0**_SHARPNESS_UNIT_EXPONENT).astype(np.int64)
    assert np.array_equal(units / 2.0**_SHARPNESS_UNIT_EXPONENT, _SHARPNESS_KERNEL)  # the weights are whole units
    pixels = tf.cast(images, tf.int64)
    shape = tf.shape(images)
    height, width = shape[-3], shape[-2]
    total = None
    for row in range(3):
        for col in range(3):
            tap = pixels[..., row : row + height - 2, col : col + width - 2, :]
            product = _to_float32_units(int(units[row, col]) * tap)
            total = product if total is None else _to_float32_units(total + product)
    whole = tf.bitwise.right_shift(total, tf.constant(_SHARPNESS_UNIT_EXPONENT, tf.int64))  # truncation (>= 0)
    smooth = tf.cast(tf.minimum(whole, 255), tf.int32)
    interior = tf.cast(images[..., 1:-1, 1:-1, :], tf.int32)
    paddings = [[0, 0]] * (images.shape.rank - 3) + [[1, 1], [1, 1], [0, 0]]
    # Interior replaced by the smoothed values, border kept: adding a zero-padded difference avoids tf.where.
    return tf.cast(images, tf.int32) + tf.pad(smooth - interior, paddings)


def _sharpness(image, factor):
    """Blend with the 3×3 smoothed copy of `smoothed` (the one-pixel border keeps the original pixels), as PIL and
    tensorflow/tpu do."""
    return _blend(smoothed(image), image, factor)


# Per-channel lookup tables. A uint8 image is flattened to int32 indices value + 256·channel into one [768]
# table, so a whole-image op is one bincount and one gather with no unstack/stack (tf.stack along the channel
# axis copies one byte at a time and cost more than the arithmetic) and no [3]-vector broadcast.
_BINS = 256


def _table_indices(image):
    """int32 [h·w·3]: each pixel value plus 256 × its channel, the index into a [3·256] table."""
    channel_offsets = tf.tile(tf.constant([0, _BINS, 2 * _BINS], tf.int32), [tf.size(image) // 3])
    return tf.cast(tf.reshape(image, [-1]), tf.int32) + channel_offsets


def _histograms(indices):
    """int32 [3, 256] per-channel histograms from _table_indices."""
    return tf.reshape(tf.math.bincount(indices, minlength=3 * _BINS, maxlength=3 * _BINS), [3, _BINS])


def _compiled(function):
    """`function` compiled by XLA when it runs, for the host's per-pixel loops that TensorFlow's CPU kernels run
    slowly (a gather from a small table, the transform kernel's coordinate arithmetic; benchmarks/README.md).
    Only for functions whose every operation XLA cannot compute differently from those kernels: integer
    arithmetic, gathers, comparisons, float32 additions and floor (XLA fuses a multiplication with a following
    addition into one FMA, so no multiplication goes inside). The image's size is static in the compiled code,
    so each new size compiles once per process (tens of ms)."""
    return tf.function(function, jit_compile=True, autograph=False)


@_compiled
def _gather_table(flat_table, indices):
    return tf.gather(flat_table, indices)


def _apply_tables(image, tables, indices):
    """Map every pixel through its channel's table (int32 [3, 256], values already in 0..255)."""
    # A uint8 table, gathered by XLA: about 3x cheaper than TensorFlow's gather_nd (benchmarks/README.md).
    flat_table = tf.reshape(tf.cast(tables, tf.uint8), [-1])
    return tf.reshape(_gather_table(flat_table, indices), tf.shape(image))


def _occupied_range(histograms):
    """(lowest, highest) occupied bin per channel, int32 [3, 1] each (every channel has >= 1 pixel)."""
    bins = tf.range(_BINS)
    lowest = tf.reduce_min(tf.where(histograms > 0, bins, _BINS), axis=1, keepdims=True)
    highest = tf.reduce_max(tf.where(histograms > 0, bins, -1), axis=1, keepdims=True)
    return lowest, highest


def _autocontrast(image):
    """Stretch each channel to [0, 255]; channels with a single value are left as they are.

    The table holds, for each value v, the float32 expression v·scale + offset (then clip and truncate) that
    tensorflow/tpu `autocontrast` computes per pixel, with scale = 255 / (max − min) and offset = −min·scale,
    so the result is the same.
    """
    indices = _table_indices(image)
    lowest, highest = _occupied_range(_histograms(indices))
    low, high = tf.cast(lowest, tf.float32), tf.cast(highest, tf.float32)
    spread = high > low
    scale = tf.where(spread, 255.0 / tf.maximum(high - low, 1.0), 1.0)
    offset = tf.where(spread, -low * scale, 0.0)
    values = tf.cast(tf.range(_BINS), tf.float32)[None, :]
    tables = tf.cast(_to_uint8(values * scale + offset), tf.int32)
    return _apply_tables(image, tables, indices)


def _equalize(image):
    """Per-channel histogram equalization (PIL ImageOps.equalize, tensorflow/tpu equalize): with
    step = (pixels − count of the brightest value) // 255, lut[v] = (pixels below v + step // 2) // step;
    a channel with step 0 is unchanged."""
    indices = _table_indices(image)
    histograms = _histograms(indices)
    _, highest = _occupied_range(histograms)
    bins = tf.range(_BINS)
    brightest_count = tf.reduce_sum(tf.where(tf.equal(bins, highest), histograms, 0), axis=1, keepdims=True)
    step = (tf.reduce_sum(histograms, axis=1, keepdims=True) - brightest_count) // 255
    safe_step = tf.maximum(step, 1)
    tables = tf.clip_by_value((tf.cumsum(histograms, axis=1, exclusive=True) + safe_step // 2) // safe_step, 0, 255)
    tables = tf.where(step > 0, tables, bins)
    return _apply_tables(image, tables, indices)


_PHILOX = tf.random.Algorithm.PHILOX.value


def _philox_bits(seed, n, portable):
    """uint32 [n]: the bits of tf.random.stateless_uniform([n], seed, dtype=tf.uint32, alg="philox").

    portable=True computes them as that call does, with the seed's Philox scrambling spelled out in graph ops
    (tensorflow/python/ops/random_ops_util.py `_philox_scramble_seed`), which XLA compiles to the same numbers on
    any backend; the train step's augmentation (data/device_augment.py) needs that. portable=False takes the key
    and counter from the StatelessRandomGetKeyCounter kernel, which on a CPU does that same scrambling
    (core/kernels/stateless_random_ops.cc, the code `_philox_scramble_seed` mirrors) in one node instead of about
    thirty, about 5 µs less per draw on the host (benchmarks/README.md). On a TPU the kernel would pick another
    algorithm, so only the host path (the input pipeline, which runs on the CPU) uses it;
    tests/data/test_autoaugment.py checks both against TensorFlow's."""
    if portable:
        return tf.random.stateless_uniform([n], seed, minval=None, maxval=None, dtype=tf.uint32, alg="philox")
    key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=seed)
    return tf.raw_ops.StatelessRandomUniformFullIntV2(shape=[n], key=key, counter=counter, alg=_PHILOX, dtype=tf.uint32)


def _unit_floats(bits):
    """TensorFlow's uint32 → float32 [0, 1) conversion of stateless_uniform: 23 random mantissa bits under a
    zero exponent, minus 1."""
    one_to_two = tf.bitwise.bitwise_or(tf.bitwise.bitwise_and(bits, 0x7FFFFF), 0x3F800000)
    return tf.bitcast(one_to_two, tf.float32) - 1.0


def uniform(seed, n, portable=True):
    """float32 [n] uniform in [0, 1), equal bit for bit to tf.random.stateless_uniform([n], seed, alg="philox"),
    but built from the integer Philox draws, which XLA generates identically; XLA's own float conversion gives
    other numbers. The train step's augmentation (data/device_augment.py) calls this with portable=True (the
    default); the host path passes False (`_philox_bits`)."""
    return _unit_floats(_philox_bits(seed, n, portable))


def _seed_with(word, data):
    """stack([word as int32, data]): stateless_fold_in(seed, data)'s result when `word` is the first uint32 of
    the seed's Philox stream (tensorflow/python/ops/stateless_random_ops.py fold_in draws one int32 with the
    seed and stacks it with the data), so one draw serves every fold-in of the same seed."""
    return tf.stack([tf.bitcast(word, tf.int32), tf.constant(data, tf.int32)])


def fold_in(seed, data, portable=True):
    """A new stateless seed from `seed` and a Python int: tf.random.experimental.stateless_fold_in(seed, data,
    alg="philox") (the algorithm named, so the device computes the same); portable as for `uniform`."""
    if portable:
        return tf.random.experimental.stateless_fold_in(seed, data, alg="philox")
    return _seed_with(_philox_bits(seed, 1, False)[0], data)


def cutout_center(shape, seed, portable=True):
    """Cutout's random centre (row, column), uniform over the image: the original draws it with stateful
    random_uniform, this is its stateless counterpart (the only part of Cutout that differs by design):
    tf.random.stateless_uniform([2], seed, 0, 2**31 - 1, tf.int32, alg="philox"); portable as for `uniform`."""
    if portable:
        draws = tf.random.stateless_uniform([2], seed, minval=0, maxval=2**31 - 1, dtype=tf.int32, alg="philox")
    else:
        key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=seed)
        draws = tf.raw_ops.StatelessRandomUniformIntV2(
            shape=[2], key=key, counter=counter, alg=_PHILOX, minval=0, maxval=2**31 - 1
        )
    return draws % shape[:2]


def _cutout(image, half_size, seed):
    """Fill a square of side 2·half_size (clipped at the borders) around a random centre with 128
    (tensorflow/tpu autoaugment.py `cutout` with replace 128)."""
    shape = tf.shape(image)
    center = cutout_center(shape, seed, portable=False)
    top, bottom = tf.maximum(center[0] - half_size, 0), tf.minimum(center[0] + half_size, shape[0])
    left, right = tf.maximum(center[1] - half_size, 0), tf.minimum(center[1] + half_size, shape[1])
    # Full-size 0/1 mask built by padding a block (no broadcasting); arithmetic select beats tf.where on CPU.
    inside = tf.pad(
        tf.ones(tf.stack([tf.maximum(bottom - top, 0), tf.maximum(right - left, 0), 3]), tf.uint8),
        [[top, shape[0] - tf.maximum(bottom, top)], [left, shape[1] - tf.maximum(right, left)], [0, 0]],
    )
    return image * (1 - inside) + inside * FILL_VALUE


def _round_half_away(values):
    """std::round (the transform kernel's nearest neighbour), exact: no x + 0.5 that could round up."""
    magnitude = tf.abs(values)
    whole = tf.floor(magnitude)
    rounded = whole + tf.cast(magnitude - whole >= 0.5, tf.float32)
    return tf.where(values < 0, -rounded, rounded)


def nearest_sources(x_terms, y_terms, offsets):
    """int32 [..., h, w]: the source pixel of every output pixel of an affine transform with nearest
    interpolation, as ImageProjectiveTransformV3 picks it, numbered 1..h·w in row-major order, 0 outside.

    x_terms: float32 [..., 2, w], the products fl(a0 · x) and fl(b0 · x) for the columns x = 0..w−1;
    y_terms: float32 [..., 2, h], fl(a1 · y) and fl(b1 · y) for the rows; offsets: float32 [..., 2], a2 and b2.
    The kernel (tensorflow/core/kernels/image/image_ops.h, ProjectiveGenerator) computes the input point
    ((a0·x + a1·y) + a2) / k with k = c0·x + c1·y + 1, which is exactly 1 for every op here (c0 = c1 = 0),
    and reads pixel (std::round(y'), std::round(x')) when it is inside the image. Given the products, only
    additions, rounding and comparisons remain, which give the same numbers with any kernel and under XLA."""
    height, width = tf.shape(y_terms)[-1], tf.shape(x_terms)[-1]

    def source(axis, size):
        coords = (x_terms[..., axis, None, :] + y_terms[..., axis, :, None]) + offsets[..., axis, None, None]
        return tf.cast(tf.clip_by_value(_round_half_away(coords), -1.0, tf.cast(size, tf.float32)), tf.int32)

    src_x, src_y = source(0, width), source(1, height)
    inside = (src_x >= 0) & (src_x < width) & (src_y >= 0) & (src_y < height)
    return tf.where(inside, src_y * width + src_x + 1, 0)


_host_nearest_sources = _compiled(nearest_sources)


def transform_sources(transform, height, width):
    """int32 [height, width]: for an affine transform [a0 a1 a2 b0 b1 b2 0 0] (output pixel → input pixel), the
    source pixel (1..h·w row-major, 0 outside) that tf.raw_ops.ImageProjectiveTransformV3 with NEAREST picks
    for every output pixel, computed without it: the kernel computes the coordinates once per output element,
    three times per pixel of an RGB image, with two divisions and two std::round calls each.

    The products fl(a0 · x), fl(a1 · y), ... are made once per column and row (float32 multiplications, which
    the kernel does unfused in TensorFlow's x86 builds, as in the TF 1.x builds the original ran on), and the
    per-pixel remainder runs compiled (nearest_sources). tests/data/test_original_ops.py compares the result
    with the kernel's for every transform the policies can draw."""
    transform = tf.cast(transform, tf.float32)
    columns = tf.cast(tf.range(width), tf.float32)
    lines = tf.cast(tf.range(height), tf.float32)
    return _host_nearest_sources(
        tf.stack([transform[0] * columns, transform[3] * columns]),
        tf.stack([transform[1] * lines, transform[4] * lines]),
        tf.stack([transform[2], transform[5]]),
    )


def _transform(image, transform):
    """Apply an affine transform [a0 a1 a2 b0 b1 b2 0 0] (output pixel → input pixel) with nearest interpolation
    and constant fill 128: the pixels of tf.contrib.image.transform in the original. One gather of whole 3-byte
    pixels (row 0 being the fill colour) from the source map of transform_sources."""
    shape = tf.shape(image)
    sources = transform_sources(transform, shape[0], shape[1])
    pixels = tf.concat([tf.fill([1, 3], tf.constant(FILL_VALUE, tf.uint8)), tf.reshape(image, [-1, 3])], axis=0)
    return tf.reshape(tf.gather_nd(pixels, tf.reshape(sources, [-1, 1])), shape)


def rotate_transform(degrees, height, width):
    """The transform of a counter-clockwise rotation about the image centre (tf.contrib.image.rotate's
    convention); float32 degrees, height and width of the image."""
    radians = degrees * (math.pi / 180.0)
    height = tf.cast(height, tf.float32) - 1.0
    width = tf.cast(width, tf.float32) - 1.0
    cos, sin = tf.cos(radians), tf.sin(radians)
    x_offset = (width - (cos * width - sin * height)) / 2.0
    y_offset = (height - (sin * width + cos * height)) / 2.0
    return tf.stack([cos, -sin, x_offset, sin, cos, y_offset, 0.0, 0.0])


def _rotate(image, degrees):
    shape = tf.shape(image)
    return _transform(image, rotate_transform(degrees, shape[0], shape[1]))


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
    paddings = tf.tensor_scatter_nd_update(
        tf.zeros([3, 2], tf.int32), [[axis]], [tf.stack([before, size - kept - before])]
    )
    return tf.pad(tf.slice(image, begin, extent), paddings, constant_values=FILL_VALUE)


def _translate(image, pixels, axis, integral):
    """output[i] = input[i + pixels] along `axis` (x: axis 1), nearest, fill 128: positive `pixels` moves the
    content left/up (tensorflow/tpu `translate_x`/`translate_y` translate by −pixels).

    `integral`: every value `pixels` can take is a whole number (known in Python from the argument tables),
    so the cheap slice-and-pad _shift is exact; otherwise the transform kernel rounds x + pixels per pixel in
    float32, which only the kernel itself reproduces."""
    if integral:
        return _shift(image, pixels, axis)
    zero = tf.zeros_like(pixels)
    dx, dy = (pixels, zero) if axis == 1 else (zero, pixels)
    one = tf.ones_like(pixels)
    return _transform(image, tf.stack([one, zero, dx, zero, one, dy, zero, zero]))


# ----------------------------------------------------------------------------------------------------------
# Level → argument and dispatch.

_INT_ARG_MAX = {"Posterize": 4, "Solarize": 256, "SolarizeAdd": 110}
_ENHANCE_OPS = ("Color", "Contrast", "Brightness", "Sharpness")
SIGNED_OPS = ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY")


def level_to_arg(name, level, translate_const=250.0, cutout_const=100.0):
    """The (unsigned) argument of op `name` at `level`, a Python int or float computed exactly as
    tensorflow/tpu autoaugment.py `level_to_arg` does: in float64, (level / 10) · max, truncated once by int()
    for the integer ops (Posterize bits, Solarize threshold, SolarizeAdd addition, Cutout half-size). So
    SolarizeAdd at level 23 is int(2.3 · 110) = int(252.99999999999997) = 252 and AutoAugment's Cutout at
    level 23 is 229, where float32 arithmetic would give 253 and 230. The signed ops' random sign is applied
    in the graph (an exact float32 negation, as the original's _randomly_negate_tensor)."""
    fraction = level / MAX_LEVEL
    if name in ("AutoContrast", "Equalize", "Invert"):
        return 0.0
    if name in _INT_ARG_MAX:
        return int(fraction * _INT_ARG_MAX[name])
    if name == "Cutout":
        return int(fraction * cutout_const)
    if name in _ENHANCE_OPS:
        return fraction * 1.8 + 0.1
    if name == "Rotate":
        return fraction * 30.0
    if name in ("ShearX", "ShearY"):
        return fraction * 0.3
    return fraction * float(translate_const)  # TranslateX, TranslateY


def _arg_table(name_levels, translate_const, cutout_const):
    """float32 numpy [n] of level_to_arg for (name, level) pairs (the float64 → float32 cast is the one the
    original's tensor ops make; the integer arguments are far below 2**24, so exact), and whether every
    translation in it is a whole number of pixels (see _translate)."""
    args = np.array(
        [level_to_arg(name, level, translate_const, cutout_const) for name, level in name_levels], np.float64
    ).astype(np.float32)
    translations = [a for (name, _), a in zip(name_levels, args) if name in ("TranslateX", "TranslateY")]
    return args, all(float(a).is_integer() for a in translations)


def _signed(value, negate):
    return tf.where(negate, -value, value)


def _op_branches(image, arg, negate, seed, integral_translate, uint8_wraparound):
    """One zero-argument callable per op, in OP_NAMES order, then the identity, for tf.switch_case. `arg` is
    the op's float32 argument from _arg_table (whole numbers for the integer ops)."""
    count = tf.cast(arg, tf.int32)
    signed = _signed(arg, negate)
    return [
        lambda: _autocontrast(image),
        lambda: _equalize(image),
        lambda: _invert(image),
        lambda: _rotate(image, signed),
        lambda: _posterize(image, count, uint8_wraparound),
        lambda: _solarize(image, count, uint8_wraparound),
        lambda: _color(image, arg),
        lambda: _contrast(image, arg),
        lambda: _brightness(image, arg),
        lambda: _sharpness(image, arg),
        lambda: _shear_x(image, signed),
        lambda: _shear_y(image, signed),
        lambda: _translate(image, signed, 1, integral_translate),
        lambda: _translate(image, signed, 0, integral_translate),
        lambda: _cutout(image, count, seed),
        lambda: _solarize_add(image, count),
        lambda: tf.identity(image),
    ]


def _apply_op_by_index(image, op_index, arg, negate, seed, integral_translate, uint8_wraparound, candidates=OP_NAMES):
    """Apply candidates[op_index] through one switch_case; op_index == len(candidates) is the identity ("op
    not applied", which saves a tf.cond per op slot). Only the chosen branch runs; the switch is lowered to
    Switch/Merge nodes, and each branch not taken is still visited, one call node per candidate."""
    ops = _op_branches(image, arg, tf.cast(negate, tf.bool), seed, integral_translate, uint8_wraparound)
    # Each candidate op as one call node (data/branches.py): the ones not taken cost a node each instead of all
    # of theirs. The identity stays inline (one node either way).
    chosen = [branches.as_call(ops[OP_NAMES.index(name)]) for name in candidates] + [ops[-1]]
    result = tf.switch_case(op_index, chosen)
    return tf.ensure_shape(result, image.shape)


def _check_image(image):
    image = tf.convert_to_tensor(image)
    if image.dtype != tf.uint8 or image.shape.rank != 3:
        raise ValueError(
            f"augmentation expects a uint8 image of rank 3 [height, width, 3], got {image.dtype.name} "
            f"with shape {image.shape}"
        )
    return image


def _check_seed(seed):
    seed = tf.convert_to_tensor(seed)
    if seed.shape != (2,) or not seed.dtype.is_integer:
        raise ValueError(f"seed must be an integer tensor of shape [2], got {seed.dtype.name} {seed.shape}")
    return tf.cast(seed, tf.int64)


def check_level(level, what):
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not level >= 0:
        raise ValueError(f"{what} must be a Python number >= 0, got {level!r}")
    return float(level)


def apply_op(
    image,
    name,
    level,
    negate=False,
    *,
    seed=(0, 0),
    translate_const=AUTOAUGMENT_HPARAMS["translate_const"],
    cutout_const=AUTOAUGMENT_HPARAMS["cutout_const"],
    uint8_wraparound=True,
):
    """Apply one named op to a uint8 [h, w, 3] image and return a uint8 image of that shape, with the
    argument tensorflow/tpu's level_to_arg gives at `level`.

    image: uint8 tensor [height, width, 3].
    name: one of OP_NAMES.
    level: Python number >= 0, 0..10 (larger values extrapolate the linear maps, as RandAugment magnitudes do).
    negate: for the signed ops (Rotate, ShearX/Y, TranslateX/Y), use the negative argument; ignored otherwise.
    seed: stateless seed [2] for Cutout's centre; ignored by the other ops.
    translate_const, cutout_const: pixels at level 10 (AutoAugment 250/100, RandAugment 100/40).
    uint8_wraparound: keep the original's uint8 wrap-around of the Solarize threshold and Posterize shift
      (default, see _solarize/_posterize); False gives the intended behaviour.
    Deterministic given its arguments; runs eagerly and inside tf.data / tf.function.
    """
    if name not in OP_NAMES:
        raise ValueError(f"unknown augmentation op {name!r}; expected one of {', '.join(OP_NAMES)}")
    level = check_level(level, "augmentation level")
    image = _check_image(image)
    args, integral = _arg_table([(name, level)], translate_const, cutout_const)
    # The op is known in Python here, so call its branch directly instead of tracing a 17-way switch_case.
    branches = _op_branches(
        image, tf.constant(args[0]), tf.cast(negate, tf.bool), _check_seed(seed), integral, uint8_wraparound
    )
    return tf.ensure_shape(branches[OP_NAMES.index(name)](), image.shape)


def _slot_tables(policy, slot, hparams):
    """For one op slot of a policy given as POLICY_V0: the distinct op names it uses (in OP_NAMES order, the
    switch_case candidates), float32 numpy [n] tables of candidate index, probability and op argument, and
    whether every translation of the slot is a whole number of pixels."""
    names = tuple(name for name in OP_NAMES if any(sub[slot][0] == name for sub in policy))
    ops = np.array([names.index(sub[slot][0]) for sub in policy], np.float32)  # small whole numbers: exact
    probs = np.array([sub[slot][1] for sub in policy], np.float32)
    args, integral = _arg_table([(sub[slot][0], sub[slot][2]) for sub in policy], **hparams)
    return names, ops, probs, args, integral


def distort_with_autoaugment(image, seed, policy=POLICY_V0, uint8_wraparound=True):
    """AutoAugment: pick one sub-policy uniformly, apply each of its ops with its probability (tensorflow/tpu
    distort_image_with_autoaugment, translate_const 250, cutout_const 100).

    `seed` is a stateless seed [2]; the same image and seed always give the same result.
    """
    image = _check_image(image)
    seed = _check_seed(seed)
    bits = _philox_bits(seed, 5, portable=False)
    # uniform(seed, 5): sub-policy, two apply coins, two sign coins. The scalars come out of one Unpack, and the
    # chosen sub-policy's (candidate, probability, argument) of both slots out of one gather from a [n, 6] table,
    # not one slice each: a slice costs the host about 1 µs per image (benchmarks/README.md).
    word = tf.unstack(bits)[0]
    pick, *coins = tf.unstack(_unit_floats(bits))
    choice = tf.minimum(tf.cast(pick * len(policy), tf.int32), len(policy) - 1)
    # Each slot switches only over the ops its column of the policy uses (8 of 16 for policy v0).
    slots = [_slot_tables(policy, slot, AUTOAUGMENT_HPARAMS) for slot in range(2)]
    rows = np.stack([column for _, ops, probs, args, _ in slots for column in (ops, probs, args)], 1)
    row = tf.unstack(tf.gather(tf.constant(rows), choice))
    for slot, (names, _, _, _, integral) in enumerate(slots):
        candidate, prob, arg = row[3 * slot : 3 * slot + 3]
        op_seed = _seed_with(word, slot + 1)  # fold_in(seed, slot + 1), from the same draw
        op_index = tf.where(coins[slot] < prob, tf.cast(candidate, tf.int32), len(names))
        image = _apply_op_by_index(
            image, op_index, arg, coins[2 + slot] < 0.5, op_seed, integral, uint8_wraparound, names
        )
    return image


def check_num_layers(num_layers):
    if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 0:
        raise ValueError(f"randaugment num_layers must be an int >= 0, got {num_layers!r}")
    return num_layers


def distort_with_randaugment(image, num_layers, magnitude, seed, uint8_wraparound=True):
    """RandAugment: `num_layers` ops drawn uniformly from the 16 of OP_NAMES, each always applied at level
    `magnitude` with a random sign for the signed ops (tensorflow/tpu distort_image_with_randaugment,
    translate_const 100, cutout_const 40)."""
    num_layers = check_num_layers(num_layers)
    magnitude = check_level(magnitude, "randaugment magnitude")
    image = _check_image(image)
    seed = _check_seed(seed)
    args, integral = _arg_table([(name, magnitude) for name in OP_NAMES], **RANDAUGMENT_HPARAMS)
    args = tf.constant(args)
    word = _philox_bits(seed, 1, portable=False)[0] if num_layers else None  # starts every layer's fold_in
    for layer in range(num_layers):
        layer_seed = _seed_with(word, layer + 1)
        pick, sign = tf.unstack(uniform(layer_seed, 2, portable=False))
        op_index = tf.minimum(tf.cast(pick * len(OP_NAMES), tf.int32), len(OP_NAMES) - 1)
        image = _apply_op_by_index(image, op_index, args[op_index], sign < 0.5, layer_seed, integral, uint8_wraparound)
    return image
