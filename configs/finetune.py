"""Fine-tuning published ImageNet weights on your own small data: configs/short.py with a fine-tune optimizer.

configs/short.py fits the recipe's input side and schedule to a short run; for fine-tuning its RMSProp at the
recipe's 0.016 per 256 images and the original's new-classifier initialization stay. This preset changes:

- the new classifier starts at zero (model.classifier_init "zeros"): the original's uniform +-1/sqrt(classes)
  is sized for 1000 classes; with 4 it is +-0.5, which on a pretrained Lite0's pooled features gives a first
  loss of 5-13 (training/state.py init_classifier);
- the optimizer is Adam (train.optimizer "adamw" with no decoupled decay) at 1e-4 per 16 images
  (base_learning_rate 0.0016 per 256): per-parameter steps of about the learning rate from the first step,
  where RMSProp's mean-square slots start at one (TF1) and damp the first tens of steps.

Everything else is short.py's (no AutoAugment, whole-image crops with flips, cosine decay with 0.1 epoch of
warm-up, EMA 0.99, label smoothing 0.1, the recipe's L2 1e-5). Measured in benchmarks/finetune.md.

Usage: python main.py --config=configs/finetune.py --model=lite0 --init_checkpoint=WEIGHTS --data_dir=DIR \
           --image_size=112 --train_batch_size=16 --train_steps=200 --config.data.holdout_fraction=0.1
"""
from configs import short


def get_config():
    config = short.get_config()
    config.model.classifier_init = "zeros"
    config.train.optimizer = "adamw"
    config.train.base_learning_rate = 0.0016   # 1e-4 at batch 16, the plain Keras fine-tune's Adam rate
    config.lock()
    return config
