"""Image preprocessing for training and evaluation: pure functions of (image, size, seed).

Both functions accept either an encoded image (a scalar tf.string holding JPEG, PNG, GIF or BMP bytes) or a
decoded uint8 [height, width, 3] image, and return float32 [size, size, 3] pixels on the [0, 255] scale (the
model normalizes inside). For JPEG bytes only the crop window is decoded (tf.image.decode_and_crop_jpeg), which
is what makes ImageNet-size photos cheap.

The specification is tensorflow/tpu models/official/efficientnet/preprocessing.py as it ran under
tensorflow.compat.v1 (published-era version, CROP_PADDING = 32), quirks included; tests/data/
test_original_ops.py checks the pixels against an independent port of it:
- resizing with the compat.v1 kernels: ResizeBicubic / ResizeBilinear with align_corners=False and
  half_pixel_centers=False (bicubic coefficient -0.75), not TF2's tf.image.resize. Bicubic for B0-B7, B8, L2;
  bilinear for EdgeTPU and Lite (`resize_method`, from the variant's row);
- no clipping after the resize, in eval and in training without augmentation: bicubic overshoot (values a
  little below 0 or above 255) reaches the network, as in the original;
- before AutoAugment/RandAugment: clip to [0, 255], then cast to uint8, which truncates;
- the training crop falls back to the eval center crop when the sampler returns the whole image, judged by
  comparing all three dims of the JPEG's shape with the decoded crop's [h, w, 3] (so a grayscale or CMYK JPEG
  never falls back), and that fallback is resized bicubically whatever `resize_method` says.
All randomness is stateless and keyed by `seed`, so a given (image, size, seed) always gives the same output;
it is the one intended difference from the original, which drew from stateful random ops.
"""

import typing

import tensorflow as tf

from data import autoaugment, branches

CROP_PADDING = 32  # eval crop fraction = size / (size + 32): tensorflow/tpu preprocessing.py CROP_PADDING
AUGMENT_NAMES = ("autoaugment", "randaugment", "none")
RESIZE_METHODS = ("bicubic", "bilinear")

# Random-crop sampler settings of tensorflow/tpu preprocessing.py `_decode_and_random_crop`.
MIN_OBJECT_COVERED = 0.1
ASPECT_RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)
AREA_RANGE = (0.08, 1.0)
MAX_ATTEMPTS = 10


def default_crop_fraction(image_size):
    """The published eval crop: image_size / (image_size + 32) (0.875 at 224; docs/recipe.md §1).

    tensorflow/tpu moved to about 0.875 for every size in November 2021 (preprocessing.py: CROP_FRACTION 0.875,
    padding round(size / 7)). The per-size fraction stays the default because it is the one the published
    checkpoints and the Keras/timm ports were evaluated with; the flat value costs up to about 0.6 top-1 points
    on b7 (docs/recipe.md §1). data.crop_fraction sets another.
    """
    return image_size / (image_size + CROP_PADDING)


def check_augment_name(augment_name):
    """Raise a one-line ValueError unless `augment_name` is one of AUGMENT_NAMES."""
    if augment_name not in AUGMENT_NAMES:
        raise ValueError(f"augment_name must be one of {', '.join(AUGMENT_NAMES)}; got {augment_name!r}")


def check_size(image_size, crop_fraction):
    """Validate image_size and crop_fraction; return the crop fraction (default size / (size + 32))."""
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    if crop_fraction is None:
        return default_crop_fraction(image_size)
    if not 0.0 < crop_fraction <= 1.0:
        raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction!r}")
    return float(crop_fraction)


def _check_image(image):
    image = tf.convert_to_tensor(image)
    if image.dtype == tf.string:
        if image.shape.rank not in (None, 0):
            raise ValueError(f"encoded image must be a scalar string, got shape {image.shape}")
        return image
    if image.dtype != tf.uint8 or image.shape.rank != 3:
        raise ValueError(
            "image must be a scalar string of encoded bytes or a uint8 [height, width, 3] tensor, "
            f"got {image.dtype.name} with shape {image.shape}"
        )
    return image


def is_jpeg(image_bytes):
    """True when the bytes start with the JPEG SOI marker and a marker byte (FF D8 FF)."""
    return tf.equal(tf.strings.substr(image_bytes, 0, 3), b"\xff\xd8\xff")


def check_resize_method(resize_method):
    """Raise a one-line ValueError unless `resize_method` is one of RESIZE_METHODS."""
    if resize_method not in RESIZE_METHODS:
        raise ValueError(f"resize_method must be one of {', '.join(RESIZE_METHODS)}; got {resize_method!r}")


def _check_range(name, value, upper=None):
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high), got {value!r}") from None
    if not 0.0 < low <= high or (upper is not None and high > upper):
        bound = f" <= {upper}" if upper is not None else ""
        raise ValueError(f"{name} must satisfy 0 < low <= high{bound}, got {value!r}")
    return low, high


def center_crop_window(shape, crop_fraction):
    """[offset_h, offset_w, side, side] of the eval crop (tensorflow/tpu preprocessing.py
    `_decode_and_center_crop`): side = int(float32(fraction) · min(h, w)) computed in float32, offsets
    ((h − side) + 1) // 2. The side is kept >= 1 (the original would fail on a 1-pixel image instead)."""
    height_width = tf.cast(shape, tf.int32)[:2]
    side = tf.cast(crop_fraction * tf.cast(tf.reduce_min(height_width), tf.float32), tf.int32)
    sides = tf.fill([2], tf.maximum(side, 1))
    return tf.concat([(height_width - sides + 1) // 2, sides], 0)


def _sample(shape, seed, area_range, aspect_ratio_range):
    """The Inception-style sampler's (begin [y, x, 0], size [h, w, -1]) on an image of `shape` (the whole image
    when it gives up after MAX_ATTEMPTS), with tensorflow/tpu's `_decode_and_random_crop` settings."""
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.cast(shape, tf.int32),
        tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=MIN_OBJECT_COVERED,
        aspect_ratio_range=aspect_ratio_range,
        area_range=area_range,
        max_attempts=MAX_ATTEMPTS,
        use_image_if_no_bounding_boxes=True,
    )
    return begin, size


def _window(begin, size):
    """[offset_h, offset_w, h, w] from the sampler's begin and size: one gather (fewer graph nodes per record
    than slicing both and concatenating)."""
    return tf.gather(tf.concat([begin, size], 0), [0, 1, 3, 4])


def sample_crop_window(shape, seed, area_range=AREA_RANGE, aspect_ratio_range=ASPECT_RATIO_RANGE):
    """The Inception-style sampler's window [offset_h, offset_w, h, w] on an image of `shape` (the whole image
    when it gives up after MAX_ATTEMPTS), with tensorflow/tpu's `_decode_and_random_crop` settings."""
    return _window(*_sample(shape, seed, area_range, aspect_ratio_range))


def falls_back(shape, size):
    """Whether the training crop falls back to the center crop, given the sampler's `size` [h', w', -1]:
    tensorflow/tpu `_decode_and_random_crop` asks `_at_least_x_are_equal(original_shape, shape(crop), 3)`, i.e.
    the JPEG's [h, w, channels] equals the decoded crop's [h', w', 3] (= size + [0, 0, 4]) in all three dims. A
    grayscale (or CMYK) JPEG therefore never falls back, even when the sampler returned the whole image."""
    return tf.reduce_all(tf.equal(tf.cast(shape, tf.int32), size + tf.constant([0, 0, 4], size.dtype)))


def random_crop_window(shape, seed, crop_fraction, area_range=AREA_RANGE, aspect_ratio_range=ASPECT_RATIO_RANGE):
    """(window, fallback): the sampled window, or the eval center crop with `crop_fraction` when `falls_back`.

    The center window is computed only for a record that falls back, in a branch that is one call node otherwise
    (data/branches.py): computed for every record and selected with tf.where, its twenty-odd scalar nodes cost
    about 5 µs per record on the host (benchmarks/README.md)."""
    begin, size = _sample(shape, seed, area_range, aspect_ratio_range)
    window = _window(begin, size)
    fallback = falls_back(shape, size)
    center = branches.as_call(lambda: center_crop_window(shape, crop_fraction))
    return tf.cond(fallback, center, lambda: window), fallback


# Decompression bombs: an image whose header states more pixels than this is refused before decoding (a 1 MB
# PNG of 20000 x 20000 decodes to 1.2 GB of RGB). 100 megapixels is above every camera sensor in common use.
MAX_PIXELS = 100_000_000


def _unsigned(data, start, length, little_endian):
    """The unsigned integer in bytes data[start:start + length] (int64 [n] tensor of byte values)."""
    digits = data[start : start + length]
    digits = digits if little_endian else tf.reverse(digits, [0])
    return tf.reduce_sum(digits * tf.bitwise.left_shift(tf.constant(1, tf.int64), 8 * tf.range(length, dtype=tf.int64)))


def header_pixels(image_bytes):
    """Width x height stated by the header of PNG, GIF or BMP bytes (int64; 0 for other formats), read without
    decoding: PNG's IHDR (big-endian uint32 at 16 and 20), GIF's logical screen (little-endian uint16 at 6 and
    8), BMP's BITMAPINFOHEADER (little-endian int32 at 18 and 22, the height negative for top-down rows)."""
    head = tf.strings.join([tf.strings.substr(image_bytes, 0, 32), b"\0" * 32])  # at least 32 bytes to read
    data = tf.cast(tf.io.decode_raw(head, tf.uint8)[:32], tf.int64)
    magic = tf.strings.substr(head, 0, 4)
    png = _unsigned(data, 16, 4, False) * _unsigned(data, 20, 4, False)
    gif = _unsigned(data, 6, 2, True) * _unsigned(data, 8, 2, True)
    bmp_height = _unsigned(data, 22, 4, True)
    bmp_height = tf.where(bmp_height >= 2**31, 2**32 - bmp_height, bmp_height)  # two's complement: |height|
    bmp = _unsigned(data, 18, 4, True) * bmp_height
    return tf.where(
        tf.equal(magic, b"\x89PNG"),
        png,
        tf.where(
            tf.equal(tf.strings.substr(magic, 0, 3), b"GIF"),
            gif,
            tf.where(tf.equal(tf.strings.substr(magic, 0, 2), b"BM"), bmp, tf.constant(0, tf.int64)),
        ),
    )


def _within_pixel_limit(pixels):
    """An Assert (fails the element, or the serving call) when `pixels` exceeds MAX_PIXELS. The raw op: for int64
    data tf.debugging.Assert adds a tf.cond guard, a per-record function call on the hot path."""
    message = f"image exceeds the pixel limit of {MAX_PIXELS:,} (width x height from its header):"
    return tf.raw_ops.Assert(condition=pixels <= MAX_PIXELS, data=[message, pixels])


def decode_and_crop(image, window_fn):
    """Decode (if encoded) and crop `image` → (uint8 [h', w', 3], aux), where window_fn(shape) returns
    (window, aux) and `shape` is [h, w, channels] as stored (extract_jpeg_shape for JPEG).

    JPEG bytes decode only the window; other encodings (PNG from TFDS, …) decode fully to RGB, then crop. Bytes
    whose header states more than MAX_PIXELS pixels fail (an Assert) before anything is decoded.
    """
    if image.dtype != tf.string:
        window, aux = window_fn(tf.shape(image))
        return tf.image.crop_to_bounding_box(image, window[0], window[1], window[2], window[3]), aux

    def jpeg():
        shape = tf.image.extract_jpeg_shape(image)
        with tf.control_dependencies([_within_pixel_limit(tf.reduce_prod(tf.cast(shape[:2], tf.int64)))]):
            window, aux = window_fn(shape)
            return tf.image.decode_and_crop_jpeg(image, window, channels=3), aux

    def crop(decoded):
        window, aux = window_fn(tf.shape(decoded))
        return decoded[window[0] : window[0] + window[2], window[1] : window[1] + window[3]], aux

    def other():
        # The header read and the crop are function calls (data/branches.py), so that for every JPEG record
        # this branch costs a few nodes visited dead instead of about 200. The Assert stays outside them: a
        # call holding it would be stateful, which tf.data refuses to checkpoint.
        pixels = branches.as_call(lambda: header_pixels(image))()
        with tf.control_dependencies([_within_pixel_limit(pixels)]):
            decoded = tf.io.decode_image(image, channels=3, expand_animations=False)
        return branches.as_call(lambda: crop(decoded))()

    return tf.cond(is_jpeg(image), jpeg, other)


def resize(image, image_size, resize_method):
    """Resize to [image_size, image_size] with tf.compat.v1 semantics, as tensorflow/tpu preprocessing.py
    `_resize_image` (compat.v1 resize_bicubic, or compat.v1 resize with BILINEAR): align_corners=False,
    half_pixel_centers=False, bicubic coefficient -0.75. Returns float32, NOT clipped (bicubic overshoots
    [0, 255] slightly; the original passes that on)."""
    images = tf.expand_dims(image, 0)
    size = tf.constant([image_size, image_size], tf.int32)
    if resize_method == "bicubic":
        resized = tf.raw_ops.ResizeBicubic(images=images, size=size, align_corners=False, half_pixel_centers=False)
    else:
        resized = tf.raw_ops.ResizeBilinear(images=images, size=size, align_corners=False, half_pixel_centers=False)
    return tf.squeeze(resized, [0])


def preprocess_for_eval(image, image_size, crop_fraction=None, resize_method="bicubic"):
    """Center crop of side crop_fraction·min(h, w), then resize (tensorflow/tpu preprocess_for_eval).

    Args:
      image: scalar tf.string of encoded bytes, or uint8 [h, w, 3].
      crop_fraction: None → image_size / (image_size + 32), the published-era crop the published checkpoints
        were evaluated with. tensorflow/tpu switched in November 2021 to CROP_FRACTION 0.875 applied as
        image_size / (image_size + round(image_size / 7)), which is 0.875 at 224 and within 0.001 of it at
        the other sizes: crop_fraction=0.875 approximates it (pass that exact expression to reproduce it).
      resize_method: "bicubic" (B0-B7, B8, L2) or "bilinear" (EdgeTPU, Lite), compat.v1 semantics.
    Returns float32 [image_size, image_size, 3], not clipped (values slightly outside [0, 255] are possible).
    """
    check_resize_method(resize_method)
    return eval_pixels(eval_crop(image, image_size, crop_fraction), image_size, resize_method)


def eval_crop(image, image_size, crop_fraction=None):
    """The decoded center crop of preprocess_for_eval (uint8 [side, side, 3]): the part that reads the bytes, so
    the only one that can fail on bad ones (data/pipeline.py maps it ahead of ignore_errors, eval_pixels after)."""
    crop_fraction = check_size(image_size, crop_fraction)
    image = _check_image(image)
    cropped, _ = decode_and_crop(image, lambda shape: (center_crop_window(shape, crop_fraction), tf.constant(False)))
    return cropped


def eval_pixels(cropped, image_size, resize_method):
    """The rest of preprocess_for_eval: resize the center crop → float32 [image_size, image_size, 3]."""
    return tf.ensure_shape(resize(cropped, image_size, resize_method), [image_size, image_size, 3])


def _train_resize(cropped, image_size, resize_method, fallback):
    """The fallback center crop is resized bicubically whatever resize_method is: tensorflow/tpu
    `_decode_and_random_crop` calls `_decode_and_center_crop(image_bytes, image_size)` without passing the
    resize method on (a quirk that only affects EdgeTPU/Lite; kept for fidelity)."""
    if resize_method == "bicubic":
        return resize(cropped, image_size, "bicubic")
    return tf.cond(
        fallback, lambda: resize(cropped, image_size, "bicubic"), lambda: resize(cropped, image_size, resize_method)
    )


def preprocess_for_train(
    image,
    image_size,
    seed,
    augment_name,
    randaugment_num_layers=None,
    randaugment_magnitude=None,
    crop_fraction=None,
    resize_method="bicubic",
    area_range=AREA_RANGE,
    aspect_ratio_range=ASPECT_RATIO_RANGE,
    uint8_wraparound=True,
):
    """Random Inception crop, resize, random left-right flip, then (with augmentation) clip to [0, 255],
    truncate to uint8 and augment (tensorflow/tpu preprocess_for_train).

    Args:
      image: scalar tf.string of encoded bytes, or uint8 [h, w, 3].
      image_size: output side in pixels.
      seed: stateless seed, integer tensor [2]; the output is a pure function of (image, image_size, seed, …).
      augment_name: "autoaugment" (policy v0), "randaugment" (with randaugment_num_layers and
        randaugment_magnitude, the recipe's N and M) or "none".
      crop_fraction: center-crop fraction of the fallback crop; None → image_size / (image_size + 32).
      resize_method: "bicubic" or "bilinear" (compat.v1 semantics); the fallback crop is always bicubic.
      area_range, aspect_ratio_range: the crop sampler's ranges (original: (0.08, 1.0) and (3/4, 4/3)).
      uint8_wraparound: keep the original's Solarize/Posterize uint8 wrap-around (data/autoaugment.py).
    Returns float32 [image_size, image_size, 3]: with augmentation whole numbers in [0, 255]; with "none" the
    resized pixels as they are (not clipped, as in the original).

    It is train_crop followed by train_pixels (no augmentation) or augmentation_pixels and augment.
    """
    check_augment_name(augment_name)
    check_resize_method(resize_method)
    crop = train_crop(image, image_size, seed, crop_fraction, area_range, aspect_ratio_range)
    if augment_name == "none":
        return train_pixels(crop, image_size, resize_method)
    pixels = augmentation_pixels(crop, image_size, resize_method)
    return tf.cast(
        augment(
            pixels, crop.augment_seed, augment_name, randaugment_num_layers, randaugment_magnitude, uint8_wraparound
        ),
        tf.float32,
    )


def derived_seeds(seed, count):
    """[tf.random.experimental.stateless_fold_in(seed, i) for i in range(count)], with one random draw instead of
    `count`: fold_in(seed, i) is stack([stateless_random_uniform([], seed, int32 full range), int32 i])
    (tensorflow/python/ops/stateless_random_ops.py fold_in), whose first word does not depend on i. Same values
    (tests/data/test_preprocessing.py compares them with fold_in); the per-record ops are the host's bookkeeping
    cost (benchmarks/README.md)."""
    key = tf.random.stateless_uniform([], seed=seed, minval=None, maxval=None, dtype=tf.int32)
    return [tf.stack([key, tf.constant(i, tf.int32)]) for i in range(count)]


class TrainCrop(typing.NamedTuple):
    """A decoded training crop and what the rest of preprocess_for_train needs from its draw."""

    pixels: tf.Tensor  # uint8 [h', w', 3]: the random window (or the fallback center crop), not resized
    fallback: tf.Tensor  # bool: the sampler's window was the whole image, so this is the center crop
    flip_seed: tf.Tensor  # int32 [2] (stateless_fold_in of the example seed, as derived_seeds gives)
    augment_seed: tf.Tensor  # int32 [2]


def train_crop(
    image, image_size, seed, crop_fraction=None, area_range=AREA_RANGE, aspect_ratio_range=ASPECT_RATIO_RANGE
):
    """Draw and decode the random crop of preprocess_for_train (arguments as its) → TrainCrop.

    The part of the training preprocessing that reads the encoded bytes, and so the only part that can fail on
    bad ones: data/pipeline.py maps it ahead of ignore_errors and the resize after it (the reason is there).
    """
    crop_fraction = check_size(image_size, crop_fraction)
    area_range = _check_range("area_range", area_range, upper=1.0)
    aspect_ratio_range = _check_range("aspect_ratio_range", aspect_ratio_range)
    image = _check_image(image)
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    if seed.shape != (2,):
        raise ValueError(f"seed must be an integer tensor of shape [2], got shape {seed.shape}")
    crop_seed, flip_seed, augment_seed = derived_seeds(seed, 3)
    cropped, fallback = decode_and_crop(
        image, lambda shape: random_crop_window(shape, crop_seed, crop_fraction, area_range, aspect_ratio_range)
    )
    return TrainCrop(cropped, fallback, flip_seed, augment_seed)


def random_flip(image, seed):
    """tf.image.stateless_random_flip_left_right(image, seed) for one [h, w, c] image, with the same draw and the same
    decision: TensorFlow's stateless uniform with its default algorithm, mirrored when below 0.5 (tensorflow/python/
    ops/image_ops_impl.py `_random_flip`). Written with the raw random ops to leave out what the public function adds
    around them for every record (the rank check, the 0 + 1 · u scaling of the draw: graph nodes that cost the host
    about half a µs each, benchmarks/README.md). tests/data/test_preprocessing.py compares it with TensorFlow's."""
    image = tf.convert_to_tensor(image)
    key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=seed)
    uniform = tf.raw_ops.StatelessRandomUniformV2(
        shape=[], key=key, counter=counter, alg=tf.random.Algorithm.AUTO_SELECT.value
    )
    return tf.cond(uniform < 0.5, lambda: tf.reverse(image, [1]), lambda: image)


def train_pixels(crop, image_size, resize_method):
    """A TrainCrop resized and randomly flipped → float32 [image_size, image_size, 3], not clipped: the training
    image without augmentation."""
    pixels = _train_resize(crop.pixels, image_size, resize_method, crop.fallback)
    pixels = random_flip(pixels, crop.flip_seed)
    return tf.ensure_shape(pixels, [image_size, image_size, 3])


def augmentation_pixels(crop, image_size, resize_method, flip=True):
    """A TrainCrop as AutoAugment/RandAugment receive it: resized, clipped to [0, 255] and truncated to uint8
    (tensorflow/tpu preprocess_for_train), randomly flipped → uint8 [image_size, image_size, 3].

    flip=False leaves the flip out: with augment_on_device the train step does it (data/device_augment.py
    `flip_batch`, the same decision from the seed `flip_seeds` derives), so the host skips its draw and copy."""
    pixels = _train_resize(crop.pixels, image_size, resize_method, crop.fallback)
    # The original flips the float pixels, then clips and casts to uint8 (truncation). Elementwise clip and cast
    # commute with the flip, and the same seed gives the same flip decision for any dtype, so the flip is done
    # after the cast, on a quarter of the bytes (same output).
    pixels = tf.cast(tf.clip_by_value(pixels, 0.0, 255.0), tf.uint8)
    if flip:
        pixels = random_flip(pixels, crop.flip_seed)
    return tf.ensure_shape(pixels, [image_size, image_size, 3])


def flip_seeds(augment_seeds):
    """int [b, 2] augmentation seeds → the same examples' flip seeds: train_crop's seeds are derived_seeds of the
    example seed, [key, 1] for the flip and [key, 2] for the augmentation, so the flip seed is [seed[0], 1]."""
    augment_seeds = tf.convert_to_tensor(augment_seeds)
    return tf.stack([augment_seeds[:, 0], tf.ones_like(augment_seeds[:, 0])], axis=1)


def augmentation_input(
    image,
    image_size,
    seed,
    crop_fraction=None,
    resize_method="bicubic",
    area_range=AREA_RANGE,
    aspect_ratio_range=ASPECT_RATIO_RANGE,
):
    """The training image as AutoAugment/RandAugment receive it → (uint8 [image_size, image_size, 3], the
    augmentation's stateless seed [2]): train_crop, then augmentation_pixels. Arguments as preprocess_for_train's.

    Split out of preprocess_for_train so that the augmentation can run elsewhere (data/device_augment.py runs it
    in the train step) on exactly the pixels and seed the host path would use.
    """
    check_resize_method(resize_method)
    crop = train_crop(image, image_size, seed, crop_fraction, area_range, aspect_ratio_range)
    return augmentation_pixels(crop, image_size, resize_method), crop.augment_seed


def augment(pixels, seed, augment_name, randaugment_num_layers=None, randaugment_magnitude=None, uint8_wraparound=True):
    """AutoAugment (policy v0) or RandAugment of a uint8 [s, s, 3] image with a stateless seed [2] → uint8.
    uint8_wraparound: keep the original's Solarize/Posterize uint8 wrap-around (data/autoaugment.py)."""
    if augment_name == "autoaugment":
        return autoaugment.distort_with_autoaugment(pixels, seed, uint8_wraparound=uint8_wraparound)
    if augment_name == "randaugment":
        return autoaugment.distort_with_randaugment(
            pixels, randaugment_num_layers, randaugment_magnitude, seed, uint8_wraparound=uint8_wraparound
        )
    raise ValueError(f"augment_name must be autoaugment or randaugment here, got {augment_name!r}")
