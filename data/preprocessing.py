"""Image preprocessing for training and evaluation: pure functions of (image, size, seed).

Both functions accept either an encoded image (a scalar tf.string holding JPEG, PNG, GIF or BMP bytes) or a
decoded uint8 [height, width, 3] image, and return float32 [size, size, 3] pixels in [0, 255] (the model
normalizes inside, DESIGN.md). For JPEG bytes only the crop window is decoded (tf.image.decode_and_crop_jpeg),
which is what makes ImageNet-size photos cheap. Geometry and constants follow REFERENCE.md §3
(tensorflow/tpu preprocessing.py); resizing uses TF2's tf.image.resize bicubic (half-pixel centres).
All randomness is stateless and keyed by `seed`, so a given (image, size, seed) always gives the same output.
"""
import tensorflow as tf

from data import autoaugment

CROP_PADDING = 32  # eval crop fraction = size / (size + 32), REFERENCE.md §1
AUGMENT_NAMES = ("autoaugment", "randaugment", "none")

# Random-crop sampler settings, REFERENCE.md §3 (tensorflow/tpu preprocessing.py).
MIN_OBJECT_COVERED = 0.1
ASPECT_RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)
AREA_RANGE = (0.08, 1.0)
MAX_ATTEMPTS = 10


def default_crop_fraction(image_size):
    """The published eval crop: image_size / (image_size + 32) (0.875 at 224)."""
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
        raise ValueError("image must be a scalar string of encoded bytes or a uint8 [height, width, 3] tensor, "
                         f"got {image.dtype.name} with shape {image.shape}")
    return image


def is_jpeg(image_bytes):
    """True when the bytes start with the JPEG SOI marker and a marker byte (FF D8 FF)."""
    return tf.equal(tf.strings.substr(image_bytes, 0, 3), b"\xff\xd8\xff")


def center_crop_window(shape, crop_fraction):
    """[offset_h, offset_w, side, side] of the eval crop: side = int(fraction·min(h, w)), offsets
    ((h − side) + 1) // 2 (REFERENCE.md §3)."""
    height, width = shape[0], shape[1]
    side = tf.cast(crop_fraction * tf.cast(tf.minimum(height, width), tf.float32), tf.int32)
    side = tf.maximum(side, 1)
    return tf.stack([(height - side + 1) // 2, (width - side + 1) // 2, side, side])


def random_crop_window(shape, seed, crop_fraction):
    """Inception-style crop [offset_h, offset_w, h, w] sampled on the image shape (REFERENCE.md §3); when the
    sampler gives up and returns the whole image, use the eval center crop instead, as tensorflow/tpu does."""
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.cast(shape, tf.int32), tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed,
        min_object_covered=MIN_OBJECT_COVERED, aspect_ratio_range=ASPECT_RATIO_RANGE, area_range=AREA_RANGE,
        max_attempts=MAX_ATTEMPTS, use_image_if_no_bounding_boxes=True)
    window = tf.stack([begin[0], begin[1], size[0], size[1]])
    whole_image = tf.logical_and(tf.equal(size[0], shape[0]), tf.equal(size[1], shape[1]))
    return tf.where(whole_image, center_crop_window(shape, crop_fraction), window)


def decode_and_crop(image, window_fn):
    """Decode (if encoded) and crop `image` to window_fn(shape) → uint8 [h', w', 3].

    JPEG bytes decode only the window; other encodings (PNG from TFDS, …) decode fully, then crop.
    """
    if image.dtype != tf.string:
        window = window_fn(tf.shape(image))
        return tf.image.crop_to_bounding_box(image, window[0], window[1], window[2], window[3])

    def jpeg():
        window = window_fn(tf.image.extract_jpeg_shape(image))
        return tf.image.decode_and_crop_jpeg(image, window, channels=3)

    def other():
        decoded = tf.io.decode_image(image, channels=3, expand_animations=False)
        window = window_fn(tf.shape(decoded))
        return decoded[window[0]:window[0] + window[2], window[1]:window[1] + window[3]]

    return tf.cond(is_jpeg(image), jpeg, other)


def _resize(image, image_size):
    """Bicubic resize to [s, s], then clip: bicubic overshoots [0, 255] (REFERENCE.md §3)."""
    resized = tf.image.resize(image, [image_size, image_size], method=tf.image.ResizeMethod.BICUBIC)
    return tf.clip_by_value(resized, 0.0, 255.0)


def preprocess_for_eval(image, image_size, crop_fraction=None):
    """Center crop of side crop_fraction·min(h, w) (default image_size / (image_size + 32)), bicubic resize.

    Args:
      image: scalar tf.string of encoded bytes, or uint8 [h, w, 3].
    Returns float32 [image_size, image_size, 3] in [0, 255].
    """
    crop_fraction = check_size(image_size, crop_fraction)
    image = _check_image(image)
    cropped = decode_and_crop(image, lambda shape: center_crop_window(shape, crop_fraction))
    return tf.ensure_shape(_resize(cropped, image_size), [image_size, image_size, 3])


def preprocess_for_train(image, image_size, seed, augment_name="autoaugment", randaugment_num_layers=2,
                         randaugment_magnitude=10, crop_fraction=None):
    """Random inception crop, bicubic resize, random left-right flip, clip, then the chosen augmentation.

    Args:
      image: scalar tf.string of encoded bytes, or uint8 [h, w, 3].
      image_size: output side in pixels.
      seed: stateless seed, integer tensor [2]; the output is a pure function of (image, image_size, seed, …).
      augment_name: "autoaugment" (policy v0), "randaugment" or "none".
      crop_fraction: center-crop fraction of the fallback crop; None → image_size / (image_size + 32).
    Returns float32 [image_size, image_size, 3] in [0, 255].
    """
    check_augment_name(augment_name)
    if augment_name == "none":
        crop_fraction = check_size(image_size, crop_fraction)
        image = _check_image(image)
        crop_seed, flip_seed, _ = _train_seeds(seed)
        cropped = decode_and_crop(image, lambda shape: random_crop_window(shape, crop_seed, crop_fraction))
        pixels = tf.image.stateless_random_flip_left_right(_resize(cropped, image_size), flip_seed)
        return tf.ensure_shape(pixels, [image_size, image_size, 3])
    pixels, augment_seed = augmentation_input(image, image_size, seed, crop_fraction)
    return tf.cast(augment(pixels, augment_seed, augment_name, randaugment_num_layers, randaugment_magnitude),
                   tf.float32)


def _train_seeds(seed):
    """(crop, flip, augment) seeds folded from the example's stateless seed [2]."""
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    if seed.shape != (2,):
        raise ValueError(f"seed must be an integer tensor of shape [2], got shape {seed.shape}")
    return [tf.random.experimental.stateless_fold_in(seed, i) for i in range(3)]


def augmentation_input(image, image_size, seed, crop_fraction=None):
    """The training image before AutoAugment/RandAugment: random crop, bicubic resize, clip, round to uint8,
    random flip → (uint8 [image_size, image_size, 3], the augmentation's stateless seed [2]).

    Split out of preprocess_for_train so that the augmentation can run elsewhere (data/device_augment.py runs it
    inside the compiled train step) on exactly the pixels and seed the host path would use.
    """
    crop_fraction = check_size(image_size, crop_fraction)
    image = _check_image(image)
    crop_seed, flip_seed, augment_seed = _train_seeds(seed)
    cropped = decode_and_crop(image, lambda shape: random_crop_window(shape, crop_seed, crop_fraction))
    # The ops work on uint8 (REFERENCE.md §3); round rather than truncate so the cast adds no −0.5 bias. The
    # flip commutes with the rounding and the same seed gives the same flip decision for any dtype, so it is
    # done after the cast, on a quarter of the bytes (same output as flipping the float pixels first).
    pixels = tf.cast(tf.round(_resize(cropped, image_size)), tf.uint8)
    pixels = tf.image.stateless_random_flip_left_right(pixels, flip_seed)
    return tf.ensure_shape(pixels, [image_size, image_size, 3]), augment_seed


def augment(pixels, seed, augment_name, randaugment_num_layers=2, randaugment_magnitude=10):
    """AutoAugment (policy v0) or RandAugment of a uint8 [s, s, 3] image with a stateless seed [2] → uint8."""
    if augment_name == "autoaugment":
        return autoaugment.distort_with_autoaugment(pixels, seed)
    if augment_name == "randaugment":
        return autoaugment.distort_with_randaugment(pixels, randaugment_num_layers, randaugment_magnitude, seed)
    raise ValueError(f"augment_name must be autoaugment or randaugment here, got {augment_name!r}")
