"""SavedModel export from the best EMA weights, serving JPEG bytes and float pixels.

Signatures:
- serving_default: image_bytes string[None] (JPEG or PNG) -> probabilities float32[None, classes],
  classes int32[None, k] (top-k indices, k = min(5, classes)). The eval preprocessing (center crop with the
  run's crop fraction, the run's resize kernel: bicubic, bilinear for EdgeTPU/Lite) runs in the graph, so clients send the file's bytes as they are.
  Undecodable bytes fail that request with InvalidArgumentError; the server keeps running.
- serving_images: images float32[None, size, size, 3], pixels in [0, 255] -> the same outputs.

The export is written into a temporary directory and renamed into place, so export_dir is always either the
previous complete export or the new complete one.
"""
import contextlib
import uuid

import keras
import tensorflow as tf

from data import preprocessing
from efficientnet import ema as ema_lib
from training import checkpoints, state as state_lib, warm_start


class ServingModule(tf.Module):
    """The model with its preprocessing and output head, as tf.functions with fixed signatures."""

    def __init__(self, model, image_size, crop_fraction, num_classes, resize_method="bicubic"):
        super().__init__(name="efficientnet_serving")
        self.model = model
        self._image_size = image_size
        self._crop_fraction = crop_fraction
        self._resize_method = resize_method
        self._top_k = min(5, num_classes)
        self.serve_bytes = tf.function(
            self._serve_bytes, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        self.serve_images = tf.function(
            self._predict,
            input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name="images")])

    def _serve_bytes(self, image_bytes):
        size = self._image_size
        images = tf.map_fn(
            lambda data: preprocessing.preprocess_for_eval(data, size, crop_fraction=self._crop_fraction,
                                                           resize_method=self._resize_method),
            image_bytes, fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))
        return self._predict(images)

    def _predict(self, images):
        logits = tf.cast(self.model(images, training=False), tf.float32)
        probabilities = tf.nn.softmax(logits)
        classes = tf.math.top_k(probabilities, k=self._top_k).indices
        return {"probabilities": probabilities, "classes": classes}


@contextlib.contextmanager
def _float32_policy():
    """Exports run in float32 whatever the training precision: serving hardware is usually CPU or GPU."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def load_inference_model(config, num_classes, weights_path):
    """A float32 model (outside any strategy) holding the weights of `weights_path`: the EMA weights of one of
    our checkpoints, or a Keras .h5 file / original tensorflow/tpu checkpoint as stored."""
    with _float32_policy():
        model = state_lib.build_model(config, num_classes)
    if not warm_start.is_our_checkpoint(weights_path):
        warm_start.load_for_inference(model, weights_path)
        return model
    if config.train.freeze_backbone:  # the EMA of a frozen-backbone run averages the classifier only
        warm_start.freeze_backbone(model)
    ema = ema_lib.ExponentialMovingAverage(ema_lib.ema_variables(model), decay=config.train.moving_average_decay)
    checkpoints.restore_weights(warm_start.checkpoint_prefix(weights_path), model, ema)
    ema.copy_to()
    return model


def export_saved_model(config, num_classes, weights_prefix, export_dir):
    """Writes the SavedModel of `weights_prefix`'s EMA weights to export_dir; returns export_dir."""
    model = load_inference_model(config, num_classes, weights_prefix)
    size = state_lib.image_size(config)
    module = ServingModule(model, size, state_lib.crop_fraction(config), num_classes,
                           state_lib.resize_method(config))
    export_dir = export_dir.rstrip("/")
    tmp_dir = f"{export_dir}.tmp-{uuid.uuid4().hex[:8]}"
    signatures = {"serving_default": module.serve_bytes.get_concrete_function(),
                  "serving_images": module.serve_images.get_concrete_function()}
    try:
        tf.saved_model.save(module, tmp_dir, signatures=signatures)
    except BaseException:
        checkpoints.remove_tree(tmp_dir)
        raise
    checkpoints.replace_dir(tmp_dir, export_dir)
    return export_dir
