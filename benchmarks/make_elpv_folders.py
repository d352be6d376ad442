"""Real small photo data for the fine-tune study: the ELPV solar-cell images as class folders.

elpv-dataset (PyPI; github.com/zae-bayern/elpv-dataset, images CC BY-NC-SA 4.0, code Apache-2.0) holds 2,624
real 300x300 8-bit grayscale electroluminescence photos of solar cells, each rated by experts with a defect
probability 0, 1/3, 2/3 or 1 (1,508 / 295 / 106 / 715 images): four classes, imbalanced (the majority class
is 57 %). This script writes a fixed, seeded, per-class (stratified) subset as

    OUT/train/<class>/cellNNNN.png        --train images in all (default 1,000)
    OUT/validation/<class>/cellNNNN.png   --validation images in all (default 500)

with the classes p000, p033, p067, p100. The files are copied byte for byte (the folder source reads
grayscale PNG as RGB, as the TFRecord converter would). The images are not redistributed by this project.

  source /work/venv-ft/bin/activate   # pip install elpv-dataset
  python benchmarks/make_elpv_folders.py --output /tmp/ft/elpv
"""

import argparse
import os
import shutil

import numpy as np

CLASSES = {0.0: "p000", 1 / 3: "p033", 2 / 3: "p067", 1.0: "p100"}


def labelled_files():
    import elpv_dataset

    root = os.path.join(os.path.dirname(elpv_dataset.__file__), "data")
    rows = np.genfromtxt(
        os.path.join(root, "labels.csv"), dtype=["|S19", "<f8", "|S4"], names=["path", "probability", "type"]
    )
    files = [os.path.join(root, p.decode()) for p in rows["path"]]
    names = [CLASSES[min(CLASSES, key=lambda c: abs(c - p))] for p in rows["probability"]]
    return files, names


def split(names, counts, seed):
    """Per class, a seeded permutation cut into consecutive runs: shares of each split proportional to the
    class's size (largest remainder, so the totals are exact)."""
    rng = np.random.default_rng(seed)
    names = np.array(names)
    classes = sorted(set(names))
    out = {split_name: [] for split_name in counts}
    order = {c: rng.permutation(np.flatnonzero(names == c)) for c in classes}
    start = {c: 0 for c in classes}
    for split_name, total in counts.items():
        exact = {c: total * len(order[c]) / len(names) for c in classes}
        take = {c: int(exact[c]) for c in classes}
        for c in sorted(classes, key=lambda c: exact[c] - take[c], reverse=True)[: total - sum(take.values())]:
            take[c] += 1
        for c in classes:
            out[split_name] += list(order[c][start[c] : start[c] + take[c]])
            start[c] += take[c]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True)
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--validation", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if os.path.exists(args.output):
        raise SystemExit(f"{args.output} exists; give a new --output")
    files, names = labelled_files()
    if args.train + args.validation > len(files):
        raise SystemExit(f"--train + --validation > {len(files)} images")
    for split_name, indices in split(names, {"train": args.train, "validation": args.validation}, args.seed).items():
        for i in indices:
            folder = os.path.join(args.output, split_name, names[i])
            os.makedirs(folder, exist_ok=True)
            shutil.copyfile(files[i], os.path.join(folder, os.path.basename(files[i])))
        counts = {c: sum(names[i] == c for i in indices) for c in sorted(set(names))}
        print(f"{split_name}: {len(indices)} images {counts}")


if __name__ == "__main__":
    main()
