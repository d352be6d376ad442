"""The plain Keras fine-tune of the fine-tune study (benchmarks/finetune.md): what a Keras user would write.

The same network and weights as the CLI run (efficientnet.build_model("lite0") headless, with the weights file
of benchmarks/convert_lite_torch.py), a new head of plain Keras layers (Dropout at the variant's 0.2, Dense with
Keras' default Glorot-uniform kernel and zero bias), Adam at 1e-4, plain cross-entropy, model.fit for --steps
steps of --batch_size (every layer trained, BatchNorm in training mode as Keras does by default), no
augmentation, each image decoded to RGB and resized (bilinear, the Lite variants' method) to --image_size.
It trains on exactly the images the CLI trains on: the folder source's train split after its seeded minival
holdout (data.folders.scan with the same --holdout_fraction), and reports top-1 on the validation folder.

  python benchmarks/finetune_baseline.py --data_dir /tmp/ft/elpv --weights /tmp/ft/lite0_imagenet.weights.h5 \
      --image_size 112 --batch_size 16 --steps 200 --holdout_fraction 0.1 --seed 0
"""

import argparse
import os
import sys
import time

import keras
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(pairs, image_size, batch_size, training, seed):
    paths, labels = zip(*pairs)

    def load(path, label):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), [image_size, image_size], method="bilinear")
        return image, label

    dataset = tf.data.Dataset.from_tensor_slices((list(paths), list(labels)))
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE).cache()
    if training:
        dataset = dataset.shuffle(len(paths), seed=seed).repeat()
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--image_size", type=int, default=112)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--holdout_fraction", type=float, default=0.1)
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import efficientnet
    from data import folders

    keras.utils.set_random_seed(args.seed)
    listing = folders.scan(args.data_dir, args.holdout_fraction)
    backbone = efficientnet.build_model("lite0", include_top=False, pooling="avg", image_size=args.image_size)
    efficientnet.load_weights(backbone, args.weights)
    x = keras.layers.Dropout(0.2)(backbone.output)
    outputs = keras.layers.Dense(len(listing.class_names))(x)
    model = keras.Model(backbone.input, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.time()
    model.fit(
        read(listing.splits["train"], args.image_size, args.batch_size, True, args.seed),
        steps_per_epoch=args.steps,
        epochs=1,
        verbose=2,
    )
    seconds = time.time() - start
    _, top_1 = model.evaluate(read(listing.splits["validation"], args.image_size, 100, False, args.seed), verbose=0)
    print(
        f"keras fine-tune: validation top-1 {top_1:.4f} on {len(listing.splits['validation'])} images after "
        f"{args.steps} steps at batch {args.batch_size}, {args.image_size} px, seed {args.seed}; "
        f"training {seconds:.0f} s"
    )


if __name__ == "__main__":
    main()
