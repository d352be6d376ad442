"""Fine-tune study (benchmarks/finetune.md): validation top-1 of a finished Lite0 run's raw and EMA weights.

The CLI evaluates the EMA shadows (weights and BatchNorm moving statistics); this reads the last checkpoint of
each model_dir twice, the raw variables and the EMA weights (training.store.weight_files.load_ema_weights, as predict
and export do), and scores both on the validation folder with benchmarks/finetune_baseline.py's input (whole
image, bilinear tf.image.resize; the CLI's compat.v1 resize makes its figures differ slightly).

  python benchmarks/finetune_raw_vs_ema.py --data_dir /tmp/ft/elpv /tmp/ft/runs/readme-s2 /tmp/ft/runs/readme-s0
"""

import argparse
import os
import sys

import keras
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--image_size", type=int, default=112)
    parser.add_argument("model_dirs", nargs="+")
    args = parser.parse_args()
    from finetune_baseline import read

    import efficientnet
    from data import folders
    from training.store import weight_files

    listing = folders.scan(args.data_dir, 0.1)
    validation = read(listing.splits["validation"], args.image_size, 100, False, 0)
    for model_dir in args.model_dirs:
        prefix = tf.train.latest_checkpoint(model_dir)
        if prefix is None:
            raise SystemExit(f"{model_dir}: no checkpoint")
        ema = efficientnet.build_model("lite0", num_classes=len(listing.class_names), image_size=args.image_size)
        weight_files.load_ema_weights(ema, prefix)
        raw = efficientnet.build_model("lite0", num_classes=len(listing.class_names), image_size=args.image_size)
        tf.train.Checkpoint(model=raw).read(prefix).expect_partial()
        scores = []
        for model in (raw, ema):  # compiled only after loading: compile's optimizer is no checkpoint object
            model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
            scores.append(model.evaluate(validation, verbose=0))
        print(
            f"{model_dir}: raw weights loss {scores[0][0]:.3f} top-1 {scores[0][1]:.3f}; "
            f"EMA weights loss {scores[1][0]:.3f} top-1 {scores[1][1]:.3f}"
        )


if __name__ == "__main__":
    main()
