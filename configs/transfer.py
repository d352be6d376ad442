"""Fine-tuning ImageNet-pretrained EfficientNet on the transfer datasets of the paper (its Table 5).

    python main.py --config=configs/transfer.py:cifar10 --model=b0 --init_checkpoint=efficientnetb0.h5 \\
        --model_dir=runs/b0-cifar10

One row per dataset. TensorFlow Datasets provides CIFAR-10, CIFAR-100, Oxford Flowers-102, Oxford-IIIT Pets,
Stanford Cars (cars196) and Food-101; Birdsnap and FGVC Aircraft are not in TFDS (convert them to ImageNet-format
TFRecords and use --data_dir with this config's settings). The numbers are a starting point chosen from the
ImageNet recipe, not tuned here (no accelerator on the development machines): the same RMSProp and schedule
with a quarter of the ImageNet learning rate (the network starts trained), one warm-up epoch, a 0.999 EMA
(runs are thousands, not hundreds of thousands, of steps), AutoAugment, the variant's resolution, and enough
epochs for about 2-10K steps. 10% of train is held out as minival for model selection; "validation" is the
dataset's test split when it has no validation split.
"""
import dataclasses

from configs import base


@dataclasses.dataclass(frozen=True)
class TransferDataset:
    tfds_name: str
    train_images: int  # in TFDS' train split, before the minival holdout
    batch_size: int
    epochs: float


DATASETS = {
    "cifar10": TransferDataset("cifar10", 50_000, 512, 40),
    "cifar100": TransferDataset("cifar100", 50_000, 512, 40),
    "flowers": TransferDataset("oxford_flowers102", 1_020, 64, 300),
    "pets": TransferDataset("oxford_iiit_pet", 3_680, 128, 150),
    "cars": TransferDataset("cars196", 8_144, 256, 150),
    "food101": TransferDataset("food101", 75_750, 512, 40),
}


def get_config(name="cifar10"):
    if name not in DATASETS:
        raise ValueError(f"unknown transfer dataset {name!r}; choose one of {', '.join(DATASETS)} "
                         "(Birdsnap and FGVC Aircraft are not in TFDS: use --data_dir)")
    row = DATASETS[name]
    config = base.get_config()
    config.data.dataset = f"tfds:{row.tfds_name}"
    config.data.holdout_fraction = 0.1
    config.train.batch_size = row.batch_size
    config.train.epochs = float(row.epochs)
    config.train.base_learning_rate = 0.004        # a quarter of ImageNet's 0.016 per 256 images
    config.train.warmup_epochs = 1.0
    config.train.moving_average_decay = 0.999
    config.eval.batch_size = row.batch_size
    config.eval.epochs_per_eval = max(1.0, row.epochs / 20)  # about 20 evaluations per run
    config.lock()
    return config
