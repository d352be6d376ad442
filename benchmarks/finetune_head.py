"""A controlled run of the fine-tune study: the published backbone with a given new classifier, as one file.

--init_checkpoint loads every layer of a weights file whose class count equals the data's, classifier
included; so this file decides the new head's initial values without any change to the trainer: "zeros"
(kernel and bias 0: uniform first predictions, first loss ln(num_classes)) or "glorot" (Keras' default
Dense initializer, the plain Keras fine-tune's head). The trainer's own head, when the class count differs,
is the original's uniform +-1/sqrt(num_classes).

  python benchmarks/finetune_head.py --weights /tmp/ft/lite0_imagenet.weights.h5 --num_classes 4 \
      --head zeros --output /tmp/ft/lite0_head_zeros.weights.h5
"""

import argparse
import os
import sys

import keras

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--num_classes", type=int, required=True)
    parser.add_argument("--head", choices=("zeros", "glorot"), required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    import efficientnet

    model = efficientnet.build_model("lite0", num_classes=args.num_classes, image_size=224)
    efficientnet.load_weights(model, args.weights, skip_mismatch_layers=("predictions",))
    dense = model.get_layer("predictions")
    kernel = (keras.initializers.Zeros() if args.head == "zeros" else keras.initializers.GlorotUniform(seed=args.seed))(
        dense.kernel.shape
    )
    dense.set_weights([keras.ops.convert_to_numpy(kernel), keras.ops.convert_to_numpy(dense.bias) * 0])
    model.save_weights(args.output)
    print(f"wrote {args.output}: {args.head} head for {args.num_classes} classes")


if __name__ == "__main__":
    main()
