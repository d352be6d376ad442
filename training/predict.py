"""--mode=predict: top-5 classes with probabilities for image files, printed one block per file.
Class names: training/labels.py.
"""
import numpy as np
import tensorflow as tf

from data import preprocessing
from training import export, labels, recipe, warm_start
from training.errors import UserError

def _read_images(paths, size, crop_fraction, resize_method):
    images = []
    for path in paths:
        if not tf.io.gfile.exists(path):
            raise UserError(f"no such image file: {path}")
        data = tf.io.gfile.GFile(path, "rb").read()
        try:
            images.append(preprocessing.preprocess_for_eval(tf.constant(data), size, crop_fraction=crop_fraction,
                                                            resize_method=resize_method))
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
    images = _read_images(image_paths, recipe.image_size(config), recipe.crop_fraction(config),
                          recipe.resize_method(config))
    probabilities = tf.nn.softmax(tf.cast(model(images, training=False), tf.float32)).numpy()
    names = labels.class_names(source, num_classes, config.runtime.model_dir)
    results = []
    for path, row in zip(image_paths, probabilities):
        best = np.argsort(-row)[:min(top_k, num_classes)]
        results.append((path, [(names[i], float(row[i])) for i in best]))
        print(path + "\n" + "\n".join(f"  {p:7.2%}  {name}" for name, p in results[-1][1]), flush=True)
    return results
