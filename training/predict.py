"""--mode=predict: top-5 classes with probabilities for image files, printed one block per file."""
import os

import numpy as np
import tensorflow as tf

from data import preprocessing
from training import export, state as state_lib, warm_start
from training.errors import UserError


def imagenet_class_names(num_classes):
    """ImageNet synset ids in label order (tensorflow-datasets' labels.txt; it ships no human-readable names).
    With 1001 classes, class 0 is the background class of the original checkpoints."""
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    path = os.path.join(os.path.dirname(tfds.__file__), "datasets", "imagenet2012", "labels.txt")
    with tf.io.gfile.GFile(path) as f:
        names = [line.strip() for line in f if line.strip()]
    return (["background"] + names) if num_classes == 1001 else names


CLASS_NAMES_FILE = "class_names.txt"


def class_names(source, num_classes, model_dir=None):
    """The data source's names, else those a training run left in model_dir, else ImageNet's, else numbers."""
    if source is not None and source.class_names and len(source.class_names) == num_classes:
        return list(source.class_names)
    path = os.path.join(model_dir or "", CLASS_NAMES_FILE)
    if model_dir and tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            names = [line.rstrip("\n") for line in f if line.strip()]
        if len(names) == num_classes:
            return names
    if num_classes in (1000, 1001):
        return imagenet_class_names(num_classes)
    return [f"class {i}" for i in range(num_classes)]


def _read_images(paths, size, crop_fraction):
    images = []
    for path in paths:
        if not tf.io.gfile.exists(path):
            raise UserError(f"no such image file: {path}")
        data = tf.io.gfile.GFile(path, "rb").read()
        try:
            images.append(preprocessing.preprocess_for_eval(tf.constant(data), size, crop_fraction=crop_fraction))
        except (tf.errors.InvalidArgumentError, ValueError):
            raise UserError(f"{path} is not a decodable JPEG/PNG/GIF/BMP image") from None
    return tf.stack(images)


def predict(config, source, weights_path, image_paths, top_k=5):
    """Returns [(path, [(class name, probability), ...])] and prints them."""
    if not image_paths:
        raise UserError("--mode=predict needs image files: python main.py --mode=predict "
                        "--init_checkpoint=WEIGHTS image.jpg ...")
    num_classes = config.model.num_classes or warm_start.weights_num_classes(weights_path)
    model = export.load_inference_model(config, num_classes, weights_path)
    images = _read_images(image_paths, state_lib.image_size(config), state_lib.crop_fraction(config))
    probabilities = tf.nn.softmax(tf.cast(model(images, training=False), tf.float32)).numpy()
    names = class_names(source, num_classes, config.runtime.model_dir)
    results = []
    for path, row in zip(image_paths, probabilities):
        best = np.argsort(-row)[:min(top_k, num_classes)]
        results.append((path, [(names[i], float(row[i])) for i in best]))
        print(path + "\n" + "\n".join(f"  {p:7.2%}  {name}" for name, p in results[-1][1]), flush=True)
    return results
