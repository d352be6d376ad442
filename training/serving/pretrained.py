"""Published weights given to eval, export or predict (a Keras .h5 file or an original tensorflow/tpu checkpoint):
recognising them, checking their class count against the data, and the model that scores them as stored.
"""
import tensorflow as tf

from efficientnet import ema as ema_lib
from training.core import state as state_lib, warm_start
from training.errors import UserError, first_line


def external_weights(config):
    """--mode=eval/export's --init_checkpoint when it is not one of our checkpoints (a Keras .h5 file or an
    original tensorflow/tpu checkpoint), else None. Such weights are scored or exported as stored, with no
    training run behind them."""
    path = config.runtime.init_checkpoint
    if config.runtime.mode not in ("eval", "export", "predict") or not path:
        return None
    if warm_start.is_keras_file(path):
        if not tf.io.gfile.exists(path):
            raise UserError(f"--init_checkpoint {path}: no such file")
        return path
    try:
        return None if warm_start.is_our_checkpoint(path) else path
    except tf.errors.OpError as e:
        raise UserError(f"--init_checkpoint {path}: {first_line(e)}") from None


def stored_num_classes(path):
    try:
        return warm_start.weights_num_classes(path)
    except (OSError, ValueError, tf.errors.OpError) as e:
        raise UserError(f"cannot read {path}: {first_line(e)}") from None


def check_num_classes(ctx, path):
    """The classifier of the weights must have exactly the data's classes, or every label is scored against
    another class (1001-class original checkpoints count a background class 0)."""
    stored, data = stored_num_classes(path), ctx.source.num_classes
    if stored != data:
        if stored == data + 1 and not ctx.config.data.include_background:
            fix = "add --config.data.include_background=true (class 0 of those weights is the background)"
        elif stored == data - 1 and ctx.config.data.include_background:
            fix = "drop --config.data.include_background (those weights have no background class)"
        else:
            fix = f"evaluate them on data with {stored} classes"
        raise UserError(f"--init_checkpoint {path} has {stored} classes but the data has {data}; {fix}")
    if stored != ctx.num_classes:
        raise UserError(f"--init_checkpoint {path} has {stored} classes but --num_label_classes is "
                        f"{ctx.num_classes}; drop --num_label_classes")


def external_state(ctx, path):
    """The model holding every stored weight of `path`, classifier included, and an EMA to evaluate it with."""
    with ctx.strategy.scope():
        model = state_lib.build_model(ctx.config, ctx.num_classes)
    warm_start.load_for_inference(model, path)  # outside the scope: assigning a distributed model sets every replica
    # loop.evaluate scores the EMA shadows by swapping them into the model. Shadows start at the variables' current
    # values, so an average created after loading holds exactly the stored weights and the swap changes nothing:
    # the published weights are scored by the same evaluation as ours. No optimizer: nothing is trained.
    with ctx.strategy.scope():
        ema = ema_lib.ExponentialMovingAverage(ema_lib.ema_variables(model))
    return state_lib.TrainState(model=model, optimizer=None, ema=ema, learning_rate=None)
