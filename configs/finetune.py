"""Fine-tuning published ImageNet weights on your own small dataset: configs/short.py with a new head at zero, no
weight averaging and a quarter of the learning rate.

configs/short.py fits the recipe's input side and schedule to a short run. Fine-tuning pretrained weights for a
few hundred steps needs three more changes (benchmarks/finetune.md measures them on real photos against a plain
Keras `model.fit` fine-tune):

- model.classifier_init "zeros": the new classifier starts at zero, so its first predictions are uniform and its
  first gradients are small. The original's uniform ±1/sqrt(classes) (±0.5 for 4 classes) gives first losses of
  5-13 on pretrained features, and with RMSProp's slots starting at one (TF1) those large gradients reach the
  pretrained backbone before the head has shrunk: some seeds then end far below the others.
- train.moving_average_decay 0: the evaluated and exported weights are the trained ones. configs/short.py's EMA
  0.99 (0.957 at step 200 with its (1 + t) / (10 + t) warm-up, an average over the last ~20 steps) cost about
  2 points of top-1 against the raw weights of the same 200-step runs.
- train.base_learning_rate 0.004 per 256 images (2.5e-4 at batch 16): a quarter of the recipe's 0.016. With
  RMSProp's momentum 0.9 the recipe's rate moves every pretrained weight by up to ~1e-2 a step once the
  mean-square slots have adapted; at a quarter the runs score higher and vary less (benchmarks/finetune.md,
  "Third study": 10 seeds each, above the plain Keras fine-tune's mean).

Everything else is configs/short.py (the recipe's RMSProp and its rate scaled per 256 images, label smoothing, L2,
dropout and stochastic depth; cosine decay to 0 with 0.1 epoch of warm-up; whole images, flips only).

Usage: python main.py --config=configs/finetune.py --model=lite0 --init_checkpoint=WEIGHTS --data_dir=DIR \
           --image_size=112 --train_batch_size=16 --train_steps=200 --config.data.holdout_fraction=0.1
"""

from configs import short


def get_config():
    config = short.get_config()  # locked: only existing fields can be set
    config.model.classifier_init = "zeros"
    config.train.moving_average_decay = 0.0
    config.train.base_learning_rate = 0.004
    return config
