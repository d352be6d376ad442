"""Short runs on your own data: a few hundred to a few thousand steps, small batch, low resolution.

The paper's recipe (configs/base.py) is tuned for ImageNet at 224 px and more, 350 epochs, batch 4096. For a
short run at low resolution its optimizer, losses, stochastic depth, dropout, BatchNorm and EMA are fine; its
input side is not: random crops down to 8 % of the area (9 x 9 pixels at 32 px), AutoAugment and the eval crop
resolution / (resolution + 32) (half the image at 32 px, two thirds at 64) leave too little signal for a run
of a few epochs. This preset keeps the recipe and changes only:

- the input: no AutoAugment, no random crop (data.crop_area_range (1, 1): the sampler always gives up and the
  whole image is used, random left-right flips remain), eval crop 1.0 (the whole image);
- the run length: cosine decay to 0 over the run with 0.1 epoch of warm-up, so the schedule fits any
  --train_steps without rescaling (the recipe's 5-epoch warm-up and x0.97 every 2.4 epochs are ImageNet
  epochs); EMA 0.99 instead of 0.9999 (whose average would still be close to the initial weights).

The ImageNet recipe stays the default for --data_dir/--dataset (configs/imagenet.py).

benchmarks/real_data.md compares this preset on real photos and digits with a plain keras.applications fine-tune
and with the paper's recipe scaled to the run.

Usage: python main.py --config=configs/short.py --data_dir=DIR --image_size=64 --train_batch_size=32 \
           --train_steps=1500 --holdout_shards=1
"""
from configs import base


def get_config():
    config = base.get_config()
    config.data.augment_name = "none"
    config.data.crop_area_range = (1.0, 1.0)
    config.data.crop_fraction = 1.0
    config.train.lr_schedule = "cosine"
    config.train.warmup_epochs = 0.1
    config.train.moving_average_decay = 0.99
    config.lock()
    return config
