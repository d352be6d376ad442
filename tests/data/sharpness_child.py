"""Child process of tests/data/test_kernel_independence.py: Sharpness through every path that computes it (the
host op eagerly and inside tf.data, the device path eagerly and compiled with XLA) under whatever
TF_ENABLE_ONEDNN_OPTS the parent set; writes the images to the .npz path given as the only argument."""

import sys

import numpy as np
import tensorflow as tf

from data import autoaugment, device_augment
from tests.data import original_port as port

LEVELS = (1, 3, 5, 7, 10, 17, 28)  # factors 0.28 .. 5.14; level 5 gives factor 1.0 (the identity blend)


def images():
    return np.stack([port.photo_like(24, 32, seed) for seed in range(3)])


def entries():
    return [("Sharpness", level, False) for level in LEVELS]


def main(path):
    batch = images()
    cases = [(image, level) for image in batch for level in LEVELS]
    eager = np.stack([autoaugment.apply_op(image, "Sharpness", level).numpy() for image, level in cases])
    in_data = np.stack(
        [
            next(
                tf.data.Dataset.from_tensors(image)
                .map(lambda x, level=level: autoaugment.apply_op(x, "Sharpness", level))
                .as_numpy_iterator()
            )
            for image, level in cases
        ]
    )
    cands = device_augment.compile_candidates(entries(), 24, 32, autoaugment.AUTOAUGMENT_HPARAMS)
    index = np.tile(np.arange(len(LEVELS), dtype=np.int32), len(batch))
    repeated = np.repeat(batch, len(LEVELS), axis=0)
    centers = np.zeros((len(index), 2), np.int32)
    device = device_augment.apply_candidates(tf.constant(repeated), index, centers, cands).numpy()
    compiled = tf.function(lambda x, i, c: device_augment.apply_candidates(x, i, c, cands), jit_compile=True)
    xla = compiled(repeated, index, centers).numpy()
    np.savez(path, eager=eager, in_data=in_data, device=device, xla=xla)


if __name__ == "__main__":
    main(sys.argv[1])
