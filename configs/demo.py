"""A CPU-sized run on the built-in demo data: the default of `python main.py` with no data given.

Everything is the paper's recipe except what must shrink to finish in a few minutes on 2 CPU cores: a low
resolution, a small batch, a few hundred steps, a short warm-up, no AutoAugment and a faster EMA.

From-scratch B0 needs all of those steps: training top-1 is still rising steeply at step 300, and the BatchNorm
statistics (momentum 0.99) and the EMA lag behind it, so early minival losses can be in the hundreds (chance is
0.125 for the 8 demo classes). The README's quick start gives the time and scores of this run.
"""
from configs import base


def get_config():
    config = base.get_config()
    config.model.variant = "b0"
    config.model.image_size = 64
    config.data.holdout_shards = 2               # of the demo's 16 train shards
    config.data.augment_name = "none"            # AutoAugment at 64 px on a few hundred steps only adds noise
    config.train.batch_size = 32
    config.train.steps = 600
    config.train.iterations_per_loop = 50
    config.train.warmup_epochs = 1.0
    config.train.lr_decay_epochs = 1.0
    config.train.moving_average_decay = 0.99     # the 0.9999 EMA would still be near initial weights
    config.eval.batch_size = 64
    config.eval.steps_per_eval = 200
    config.runtime.checkpoints_to_keep = 2
    config.runtime.export_at_end = True          # the demo shows the whole path: train, select, export
    config.lock()
    return config
