"""The one way to get a model holding the weights to score: for evaluation, export and predict, from our
checkpoints (their EMA weights) and published files (a Keras .h5 file or an original tensorflow/tpu checkpoint,
as stored) alike. No optimizer, no schedule: nothing is trained (training/core/state.py builds training state).

Published weights given to eval, export or predict are recognised here too, and their class count is checked
against the data.
"""

import contextlib
import os

import keras
import tensorflow as tf

from efficientnet import weights as weights_lib
from training import checks
from training.core import evaluation
from training.errors import UserError, first_line
from training.store import checkpoints, logs, rundir, weight_files


def external_weights(config):
    """eval/export/predict's --init_checkpoint when it is not one of our checkpoints (a Keras .h5 file or an
    original tensorflow/tpu checkpoint), else None. Such weights are scored or exported as stored, with no
    training run behind them."""
    path = config.runtime.init_checkpoint
    if not path:
        return None
    if weights_lib.is_h5_file(path):
        if not tf.io.gfile.exists(path):
            raise UserError(f"--init_checkpoint {path}: no such file")
        return path
    try:
        return None if weight_files.is_our_checkpoint(path) else path
    except tf.errors.OpError as e:
        raise UserError(f"--init_checkpoint {path}: {first_line(e)}") from None


def stored_num_classes(path):
    try:
        return weight_files.weights_num_classes(path)
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
        raise UserError(
            f"--init_checkpoint {path} has {stored} classes but --num_label_classes is "
            f"{ctx.num_classes}; drop --num_label_classes"
        )


def load_weights(model, weights, *, use_ema=True):
    """Puts the weights to score into `model`: a checkpoint of ours (model_dir, archive/ or ckpt-N) gives its EMA
    weights, a published file its stored weights. Call outside any strategy scope (assigning a distributed
    model sets every replica). Errors of reading are the caller's to name (a checkpoint may vanish mid-read).

    use_ema=False: the raw trained variables instead of the averages, from our checkpoints and original
    tensorflow/tpu checkpoints alike (a Keras .h5 file holds one set of weights and is refused, UserError).
    """
    if weight_files.is_our_checkpoint(weights):
        prefix = checkpoints.checkpoint_prefix(weights)
        if use_ema:
            weight_files.load_ema_weights(model, prefix)
        else:
            weight_files.load_raw_weights(model, prefix)
    else:
        weight_files.load_as_stored(model, weights, use_ema=use_ema)


@contextlib.contextmanager
def _float32_policy():
    """Exports and predictions run in float32 whatever the training precision: serving hardware is usually CPU
    or GPU."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def inference_model(network, weights, *, use_ema=True):
    """A float32 model of `network` (outside any strategy) holding the weights to serve (`load_weights`, with
    its `use_ema`): what the export writes and predict runs."""
    with _float32_policy():
        model = network.build()
    load_weights(model, weights, use_ema=use_ema)
    return model


def load_model(network, weights, strategy=None):
    """A model of `network` (recipe.Network; built under `strategy`'s scope if given, else plain) holding the
    weights to score (`load_weights`), under the current dtype policy."""
    if strategy is None:
        model = network.build()
    else:
        with strategy.scope():
            model = network.build()
    load_weights(model, weights)
    return model


def _check_writable(ctx):
    if ctx.is_chief:  # the record is appended at the end: fail before the work
        checks.check_writable_dir(ctx.model_dir)


def _recorded(ctx, step, split, weights, *, ema):
    """The last record of metrics.jsonl for the same evaluation (these weights on this split with the same
    input: another crop is a new evaluation), else None."""
    settings = ctx.plan.eval_settings()
    same = [
        r
        for r in logs.read_metrics(ctx.model_dir)
        if r["step"] == step
        and r["split"] == split
        and bool(r.get("ema")) == ema
        and r.get("weights") == weights
        and all(r.get(key) == value for key, value in settings.items())
    ]
    return same[-1] if same else None


def evaluate_run(ctx, split, weights_prefix=None, *, once=False):
    """Evaluates the run's archived best (or the given checkpoint) on `split`; appends it to metrics.jsonl.

    once: return the record metrics.jsonl already holds for these weights and split instead of evaluating again.
    """
    _check_writable(ctx)
    prefix = checkpoints.find_weights(ctx.model_dir, weights_prefix)
    if prefix is None:
        raise UserError(f"no checkpoint to evaluate in {ctx.model_dir} (looked for archive/ and ckpt-N)")
    step = checkpoints.checkpoint_step(prefix)  # only the weights are read here, not the optimizer's step
    best = checkpoints.read_best(ctx.model_dir)
    if best and prefix == checkpoints.archived_prefix(ctx.model_dir):
        step = best["step"]
    name = checkpoints.weights_name(ctx.model_dir, prefix)
    recorded = once and _recorded(ctx, step, split, name, ema=True)
    if recorded:
        ctx.log.message(f"{split} at step {step} is already in metrics.jsonl; not evaluated again")
        return recorded
    try:
        model = load_model(ctx.plan.network.inference(), prefix, ctx.strategy)
    except (tf.errors.OpError, ValueError, AssertionError, IndexError) as e:
        raise UserError(f"cannot read weights for this model from {prefix}: {first_line(e)}") from None
    metrics = evaluation.evaluate(ctx, model, split)
    return ctx.log.evaluation(evaluation.record(ctx.plan, step, split, metrics, weights=name))


def evaluate_published(ctx, split, path):
    """Scores a .h5 file or an original tensorflow/tpu checkpoint as stored on `split`; appends it to
    metrics.jsonl, unless metrics.jsonl holds this evaluation already (then returns that record)."""
    _check_writable(ctx)
    check_num_classes(ctx, path)
    recorded = _recorded(ctx, 0, split, path, ema=False)
    if recorded:
        ctx.log.message(f"{path} on {split} is already in metrics.jsonl; not evaluated again")
        return recorded
    model = load_model(ctx.plan.network.inference(), path, ctx.strategy)
    ctx.log.message(f"evaluating the weights of {path} as stored")
    metrics = evaluation.evaluate(ctx, model, split)
    if ctx.is_chief and not tf.io.gfile.exists(os.path.join(ctx.model_dir, rundir.CONFIG_FILE)):
        # A training run's config.json is left as it is: eval/export of its checkpoints read their network from it.
        rundir.write_config(ctx.config, ctx.model_dir)
    # ema=False: these are the stored weights, not EMA shadows kept by one of our training runs.
    return ctx.log.evaluation(evaluation.record(ctx.plan, 0, split, metrics, weights=path, ema=False))
