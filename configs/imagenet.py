"""ImageNet on Cloud TPU with the published recipe (the default whenever --data_dir or --dataset is given)."""
from configs import base


def get_config():
    config = base.get_config()
    config.lock()
    return config
