"""AutoAugment / RandAugment of a whole batch, for running the augmentation inside the train step instead of on
the input hosts (make_dataset(augment_on_device=True) ships the augmentation's uint8 input and each example's
seed; the step calls augment_batch).

Each image goes through the very per-image function the host path uses (preprocessing.augment, i.e.
data/autoaugment.py's distort_with_autoaugment / distort_with_randaugment) with the same seed, one image per
iteration of a tf.map_fn: static shapes, no Python control flow on tensors, and the same images as the host
path wherever the ops compute the same numbers (eagerly and in plain graphs on CPU: tested bit-identical).

Under XLA (jit_compile, and always on TPU) the ops do not yet qualify (checked on TF 2.21, XLA on CPU):
- Rotate, ShearX, ShearY: ImageProjectiveTransformV3 has no XLA kernel;
- TranslateX/Y and Cutout: tf.pad / tf.ones with sizes computed from the level or the random centre (XLA needs
  compile-time shapes); Equalize and AutoContrast likewise (tf.math.bincount's output size is computed);
- Color, AutoContrast and the level → factor mapping of the enhance ops: XLA reassociates float32 arithmetic
  (division by 10 becomes a multiplication by 0.1, multiply-adds are fused), so some pixels differ by one;
- the random draws themselves: tf.random.stateless_uniform (float32) compiled with XLA returns other numbers
  than the same op run by TensorFlow on the same seed, also with alg="philox" (checked on CPU; stateless_fold_in
  and the int32 uniform of Cutout agree), so the sub-policy choice and the coins would differ. A bit-identical
  device path needs those draws made on the host and shipped with the images (a few floats per image).
That is why the config's augment_on_device defaults to off (configs/base.py) and TPU runs refuse it
(check_supported). Elsewhere training/steps.py runs the augmentation as plain TensorFlow ops on the replica's
device, outside the XLA-compiled part of the step; the bit-identity is tested on CPU only.
"""
import tensorflow as tf

from data import preprocessing


def check_supported(on_tpu):
    """Raise a one-line ValueError on TPU, where everything in the step compiles with XLA (see the module doc)."""
    if on_tpu:
        raise ValueError("data.augment_on_device is not available on TPU: the augmentation ops do not all compile "
                         "with XLA yet (data/device_augment.py); set data.augment_on_device=false")


def augment_batch(images, seeds, augment_name, randaugment_num_layers=2, randaugment_magnitude=10):
    """uint8 [b, s, s, 3] images and int64 [b, 2] per-example seeds → uint8 [b, s, s, 3], each image equal to
    preprocessing.augment(image, seed, ...) on the host."""
    images = tf.convert_to_tensor(images)
    if images.dtype != tf.uint8 or images.shape.rank != 4:
        raise ValueError(f"augment_batch expects uint8 [batch, size, size, 3], got {images.dtype.name} "
                         f"{images.shape}")

    def one(args):
        image, seed = args
        return preprocessing.augment(image, seed, augment_name, randaugment_num_layers, randaugment_magnitude)

    return tf.map_fn(one, (images, tf.cast(seeds, tf.int64)),
                     fn_output_signature=tf.TensorSpec(images.shape[1:], tf.uint8))
