"""A 7-block, 32-px network on the demo data that traces in seconds: for tests and smoke runs of the whole path.

    python main.py --config=configs/tiny.py --model_dir=/tmp/tiny

The code path is b0's (the same blocks, squeeze-excite, stochastic depth, BatchNorm, EMA and RMSProp); only
width and depth are scaled down to 0.1 and the images to 32 px, so nothing here measures accuracy.
"""
from configs import demo


def get_config():
    config = demo.get_config()
    config.model.width_coefficient = 0.1
    config.model.depth_coefficient = 0.1
    config.model.image_size = 32
    config.train.batch_size = 8
    config.train.steps = 6
    config.train.iterations_per_loop = 3
    config.eval.batch_size = 32
    config.eval.steps_per_eval = 3
    config.lock()
    return config
