"""The plain Keras baseline of the real-data check: keras.applications EfficientNet + Adam on our TFRecords.

What a new user would try first: keras.applications.EfficientNetB0(weights=None) (same network as ours:
dropout 0.2, stochastic depth 0.2, BatchNorm momentum 0.99), Adam at 1e-3, plain cross-entropy, no
augmentation, images decoded and resized to --image_size (no crop), the same global batch and number of
steps as the run it is compared with. Trains on the train shards after the first --holdout_shards (as our
runs do) and reports top-1 on the validation shards.

  python benchmarks/keras_baseline.py --data_dir /tmp/mnist5k --image_size 32 --batch_size 32 --steps 600
"""

import argparse
import glob
import os
import sys
import time

import keras
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(files, image_size, batch_size, training, seed):
    def parse(record):
        features = tf.io.parse_single_example(
            record,
            {
                "image/encoded": tf.io.FixedLenFeature([], tf.string),
                "image/class/label": tf.io.FixedLenFeature([], tf.int64),
            },
        )
        image = tf.io.decode_jpeg(features["image/encoded"], channels=3)
        image = tf.image.resize(image, [image_size, image_size], method="bicubic")
        return tf.clip_by_value(image, 0.0, 255.0), features["image/class/label"] - 1

    dataset = tf.data.TFRecordDataset(files).map(parse, num_parallel_calls=tf.data.AUTOTUNE).cache()
    if training:
        dataset = dataset.shuffle(10_000, seed=seed).repeat()
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--holdout_shards", type=int, default=1)
    parser.add_argument("--num_classes", type=int, default=10)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--our_network",
        action="store_true",
        help="train this project's b0 (efficientnet.build_model) instead of keras.applications'",
    )
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)
    train_files = sorted(glob.glob(os.path.join(args.data_dir, "train-*-of-*")))[args.holdout_shards :]
    validation_files = sorted(glob.glob(os.path.join(args.data_dir, "validation-*-of-*")))
    if args.our_network:
        import efficientnet  # the project's network, same fit loop: separates network from trainer

        model = efficientnet.build_model(
            efficientnet.get_variant("b0"), num_classes=args.num_classes, image_size=args.image_size
        )
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    else:
        model = keras.applications.EfficientNetB0(
            weights=None, input_shape=(args.image_size, args.image_size, 3), classes=args.num_classes
        )
        loss = "sparse_categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate), loss=loss, metrics=["accuracy"])
    start = time.time()
    model.fit(
        read(train_files, args.image_size, args.batch_size, True, args.seed),
        steps_per_epoch=args.steps,
        epochs=1,
        verbose=2,
    )
    train_seconds = time.time() - start
    _, top_1 = model.evaluate(read(validation_files, args.image_size, 100, False, args.seed), verbose=0)
    print(
        f"keras baseline: validation top-1 {top_1:.4f} after {args.steps} steps at batch {args.batch_size}, "
        f"{args.image_size} px; training {train_seconds:.0f} s"
    )


if __name__ == "__main__":
    main()
