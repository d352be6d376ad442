"""An independent port of the pixels of tensorflow/tpu models/official/efficientnet (preprocessing.py and
autoaugment.py as they ran under tensorflow.compat.v1), the oracle of tests/data/test_original_ops.py.

Written from the original's semantics, deliberately in a different medium from data/: integer and wrap-around
steps in numpy uint8/int64 arithmetic (the original handed Python ints to uint8 tensor ops, which TensorFlow
converts modulo 256), float steps in numpy float32 (IEEE single, separate roundings per operation, as TF's
elementwise kernels; Sharpness' depthwise convolution too, rounded as TensorFlow 1.x's CPU kernel rounded it,
because TensorFlow 2's kernel for it rounds differently by CPU), and the TF ops the original called wherever they
still exist in TF 2.21 (tf.image.rgb_to_grayscale, tf.histogram_fixed_width, tf.cos/tf.sin, the projective
transform kernel that tf.contrib.image wrapped, tf.compat.v1.image.resize_bicubic / resize). No speed tricks:
each function follows the original step by step. Randomness (crop window, flip, coin flips, Cutout centre) is an
input, so the port can be given the draws the project made.
"""

import math

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFilter

MAX_LEVEL = 10.0
REPLACE = 128
AUTOAUGMENT_CONSTS = {"translate_const": 250, "cutout_const": 100}
RANDAUGMENT_CONSTS = {"translate_const": 100, "cutout_const": 40}
SIGNED_OPS = ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY")


# ---------------------------------------------------------------------------------------------- test images


def photo_like(height, width, seed):
    """A photo-like uint8 RGB image: blurred overlapping shapes on a lit gradient, sensor noise, one JPEG round
    trip (quality 90), so histograms, edges and smooth areas look like a photograph's."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack(
        [rng.uniform(30, 200) + rng.uniform(-80, 80) * yy + rng.uniform(-60, 60) * xx for _ in range(3)], -1
    )
    canvas = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(12):
        x0, y0 = rng.uniform(-0.2, 1.0) * width, rng.uniform(-0.2, 1.0) * height
        x1, y1 = x0 + rng.uniform(0.1, 0.6) * width, y0 + rng.uniform(0.1, 0.6) * height
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
    canvas = canvas.filter(ImageFilter.GaussianBlur(radius=max(height, width) / 150))
    pixels = np.asarray(canvas).astype(np.float64) + rng.normal(0, 6, (height, width, 3))
    return decode(jpeg_bytes(pixels.clip(0, 255).astype(np.uint8), quality=90))


def jpeg_bytes(image, quality=95):
    """JPEG file bytes of a uint8 [h, w, 1|3] image (grayscale JPEG for one channel)."""
    return tf.io.encode_jpeg(tf.constant(image), quality=quality).numpy()


def decode(data):
    return tf.io.decode_jpeg(data, channels=3).numpy()


# ---------------------------------------------------------------------------------------------- level → arg


def level_to_arg(name, level, consts):
    """tensorflow/tpu level_to_arg: Python float64 (level / 10) · max, int() where the op takes an int."""
    ratio = level / MAX_LEVEL
    table = {
        "Rotate": lambda: ratio * 30.0,
        "Posterize": lambda: int(ratio * 4),
        "Solarize": lambda: int(ratio * 256),
        "SolarizeAdd": lambda: int(ratio * 110),
        "Color": lambda: ratio * 1.8 + 0.1,
        "ShearX": lambda: ratio * 0.3,
        "TranslateX": lambda: ratio * float(consts["translate_const"]),
        "Cutout": lambda: int(ratio * consts["cutout_const"]),
    }
    alias = {
        "Contrast": "Color",
        "Brightness": "Color",
        "Sharpness": "Color",
        "ShearY": "ShearX",
        "TranslateY": "TranslateX",
    }
    key = alias.get(name, name)
    return table[key]() if key in table else None


def to_uint8_like_tf(value):
    """A Python int handed to a uint8 tensor op: converted modulo 256 (numpy astype wraps)."""
    return np.array(value, np.int64).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- ops


def blend(image1, image2, factor):
    if factor == 0.0:
        return image1.copy()
    if factor == 1.0:
        return image2.copy()
    one, two = image1.astype(np.float32), image2.astype(np.float32)
    temp = one + np.float32(factor) * (two - one)
    if 0.0 < factor < 1.0:
        return temp.astype(np.uint8)
    return np.clip(temp, np.float32(0), np.float32(255)).astype(np.uint8)


def grayscale(image):
    """tf.image.rgb_to_grayscale, the op the original calls (uint8 [h, w, 1])."""
    return tf.image.rgb_to_grayscale(tf.constant(image)).numpy()


def solarize(image, threshold):
    t = to_uint8_like_tf(threshold)
    return np.where(image < t, image, np.uint8(255) - image)


def solarize_add(image, addition, threshold=128):
    added = np.clip(image.astype(np.int64) + addition, 0, 255).astype(np.uint8)
    return np.where(image < threshold, added, image)


def posterize(image, bits):
    shift = to_uint8_like_tf(8 - bits)
    shift = np.minimum(shift, np.uint8(7))  # TF's shift kernels clamp the amount to [0, bit width - 1]
    return ((image >> shift) << shift).astype(np.uint8)


def color(image, factor):
    return blend(np.repeat(grayscale(image), 3, axis=-1), image, factor)


def contrast(image, factor):
    gray = grayscale(image).astype(np.int32)
    hist = tf.histogram_fixed_width(tf.constant(gray), [0, 255], nbins=256).numpy()
    mean = np.sum(hist.astype(np.float32), dtype=np.float32) / np.float32(256.0)
    flat = np.full(gray.shape, mean, np.float32).clip(0, 255).astype(np.uint8)
    return blend(np.repeat(flat, 3, axis=-1), image, factor)


def brightness(image, factor):
    return blend(np.zeros_like(image), image, factor)


def sharpness(image, factor):
    """The original's tf.nn.depthwise_conv2d with [[1,1,1],[1,5,1],[1,1,1]]/13 (float32), as TensorFlow 1.x's CPU
    kernel computes it (Eigen pmadd without FMA): each product rounded to float32, then added to the running sum
    in row-major tap order from 0, each sum rounded to float32. numpy float32 arithmetic, one rounding per op."""
    kernel = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / np.float32(13.0)
    pixels = image.astype(np.float32)
    height, width = image.shape[0] - 2, image.shape[1] - 2
    total = np.zeros((height, width, 3), np.float32)
    for row in range(3):
        for col in range(3):
            product = np.multiply(pixels[row : row + height, col : col + width], kernel[row, col], dtype=np.float32)
            total = np.add(total, product, dtype=np.float32)
    result = image.copy()
    result[1:-1, 1:-1] = np.clip(total, 0, 255).astype(np.uint8)
    return blend(result, image, factor)


def autocontrast(image):
    channels = []
    for c in range(3):
        channel = image[:, :, c]
        lo, hi = np.float32(channel.min()), np.float32(channel.max())
        if hi > lo:
            scale = np.float32(255.0) / (hi - lo)
            offset = -lo * scale
            channel = np.clip(channel.astype(np.float32) * scale + offset, 0, 255).astype(np.uint8)
        channels.append(channel)
    return np.stack(channels, -1)


def equalize(image):
    channels = []
    for c in range(3):
        channel = image[:, :, c].astype(np.int32)
        histo = tf.histogram_fixed_width(tf.constant(channel), [0, 255], nbins=256).numpy().astype(np.int64)
        nonzero = histo[histo != 0]
        step = (nonzero.sum() - nonzero[-1]) // 255
        if step == 0:
            channels.append(channel.astype(np.uint8))
            continue
        lut = (np.cumsum(histo) + step // 2) // step
        lut = np.clip(np.concatenate([[0], lut[:-1]]), 0, 255)
        channels.append(lut[channel].astype(np.uint8))
    return np.stack(channels, -1)


def invert(image):
    return np.uint8(255) - image


def cutout(image, pad_size, center):
    height, width = image.shape[:2]
    cy, cx = center
    lower, upper = max(0, cy - pad_size), max(0, height - cy - pad_size)
    left, right = max(0, cx - pad_size), max(0, width - cx - pad_size)
    out = image.copy()
    out[lower : height - upper, left : width - right] = REPLACE
    return out


def _transform(image, transform):
    """tf.contrib.image.transform on the original's wrap()ped image (a fourth channel of ones), NEAREST,
    zeros outside, then unwrap(): pixels whose fourth channel is 0 become 128."""
    wrapped = np.concatenate([image, np.ones(image.shape[:2] + (1,), np.uint8)], -1)
    out = tf.raw_ops.ImageProjectiveTransformV2(
        images=tf.constant(wrapped)[None],
        transforms=tf.reshape(tf.constant(transform, tf.float32), [1, 8]),
        output_shape=tf.constant(image.shape[:2], tf.int32),
        interpolation="NEAREST",
        fill_mode="CONSTANT",
    ).numpy()[0]
    rgb = out[:, :, :3].copy()
    rgb[out[:, :, 3] == 0] = REPLACE
    return rgb


def rotate(image, degrees):
    """contrib.image.rotate(image, radians): degrees is a float32 tensor, radians = degrees · (π/180)."""
    radians = tf.constant(degrees, tf.float32) * (math.pi / 180.0)
    height, width = [tf.constant(float(n), tf.float32) for n in image.shape[:2]]
    cos, sin = tf.cos(radians), tf.sin(radians)
    x_offset = ((width - 1) - (cos * (width - 1) - sin * (height - 1))) / 2.0
    y_offset = ((height - 1) - (sin * (width - 1) + cos * (height - 1))) / 2.0
    return _transform(image, tf.stack([cos, -sin, x_offset, sin, cos, y_offset, 0.0, 0.0]).numpy())


def translate_x(image, pixels):
    dx = -np.float32(pixels)  # contrib translate by [-pixels, 0]: transform [1, 0, -dx, 0, 1, -dy, 0, 0]
    return _transform(image, [1, 0, -dx, 0, 1, 0, 0, 0])


def translate_y(image, pixels):
    dy = -np.float32(pixels)
    return _transform(image, [1, 0, 0, 0, 1, -dy, 0, 0])


def shear_x(image, level):
    return _transform(image, [1.0, np.float32(level), 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])


def shear_y(image, level):
    return _transform(image, [1.0, 0.0, 0.0, np.float32(level), 1.0, 0.0, 0.0, 0.0])


OPS = {
    "AutoContrast": autocontrast,
    "Equalize": equalize,
    "Invert": invert,
    "Rotate": rotate,
    "Posterize": posterize,
    "Solarize": solarize,
    "Color": color,
    "Contrast": contrast,
    "Brightness": brightness,
    "Sharpness": sharpness,
    "ShearX": shear_x,
    "ShearY": shear_y,
    "TranslateX": translate_x,
    "TranslateY": translate_y,
    "Cutout": cutout,
    "SolarizeAdd": solarize_add,
}


def apply(image, name, level, negative, consts, cutout_center=None):
    """The original's op `name` at `level` (its sign drawn negative or not), uint8 in and out."""
    arg = level_to_arg(name, level, consts)
    if name in SIGNED_OPS:
        arg = -np.float32(arg) if negative else np.float32(arg)  # _randomly_negate_tensor on a float32 tensor
    if arg is None:
        return OPS[name](image)
    if name == "Cutout":
        return cutout(image, arg, cutout_center)
    return OPS[name](image, arg)


# ---------------------------------------------------------------------------------------------- preprocessing


def resize(image, size, method):
    """The original's _resize_image: compat.v1 resize_bicubic by default, compat.v1 resize(method) when given."""
    if method == "bicubic":
        return tf.compat.v1.image.resize_bicubic([image], [size, size])[0].numpy()
    return tf.compat.v1.image.resize([image], [size, size], tf.compat.v1.image.ResizeMethod.BILINEAR)[0].numpy()


def center_crop(image_bytes, size, fraction):
    """The original's _decode_and_center_crop window and crop (uint8)."""
    shape = tf.image.extract_jpeg_shape(image_bytes)
    side = tf.cast(fraction * tf.cast(tf.minimum(shape[0], shape[1]), tf.float32), tf.int32)
    window = tf.stack([(shape[0] - side + 1) // 2, (shape[1] - side + 1) // 2, side, side])
    return tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3)


def preprocess_for_eval(image_bytes, size, method="bicubic", fraction=None):
    fraction = size / (size + 32) if fraction is None else fraction
    return resize(center_crop(image_bytes, size, fraction), size, method)


def preprocess_for_train(image_bytes, size, sampled_window, flip, method="bicubic", augment=None, fraction=None):
    """The original's preprocess_for_train given the sampler's window [top, left, h, w] and the flip decision.

    augment: None, or a function uint8 image → uint8 image (the AutoAugment/RandAugment draws)."""
    fraction = size / (size + 32) if fraction is None else fraction
    cropped = tf.image.decode_and_crop_jpeg(image_bytes, tf.constant(sampled_window, tf.int32), channels=3)
    jpeg_shape = tf.image.extract_jpeg_shape(image_bytes).numpy()
    if np.sum(jpeg_shape == np.array(cropped.shape)) >= 3:
        image = resize(center_crop(image_bytes, size, fraction), size, "bicubic")  # no method passed: bicubic
    else:
        image = resize(cropped, size, method)
    if flip:
        image = image[:, ::-1]
    if augment is None:
        return image
    pixels = np.clip(image, np.float32(0), np.float32(255)).astype(np.uint8)
    return augment(pixels).astype(np.float32)
