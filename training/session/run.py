"""One run of the training system: `run(config)` sets it up (training/session/startup.py) and runs its --mode
through the handler table below; what each mode needs is configs/base.py's MODE_TABLE, the work lives in the
layers below (training/core for training, training/serving for evaluation of stored weights, export, predict).

`run(config)` is what main.py calls; tests call it directly with a config from configs/.
"""

import tensorflow as tf

from configs import base
from training import checks
from training.core import loop
from training.core import state as state_lib
from training.errors import UserError
from training.serving import export, predict, scoring
from training.session import sidecar, startup


def train(ctx):
    """Trains (resuming from model_dir), selecting the best EMA checkpoint on minival; returns its record.

    Runs inside `startup.training_session`; raises Preempted after the preemption checkpoint is written.
    """
    config, schedule = ctx.config, ctx.plan.schedule
    resuming = tf.train.latest_checkpoint(ctx.checkpoint_dir) is not None
    init = config.runtime.init_checkpoint
    if init and resuming:
        ctx.log.message(f"resuming from {ctx.model_dir}; --init_checkpoint {init} is not used again")
    state = state_lib.build_state(
        ctx.plan, ctx.strategy, init_checkpoint=None if resuming else init, log=ctx.log.message
    )
    ctx.log.message(
        f"training {config.model.variant} at {ctx.plan.image_size} px for "
        f"{schedule.total_steps} steps ({schedule.steps_per_epoch:.2f} per epoch) on "
        f"{ctx.strategy.num_replicas_in_sync} replica(s); model_dir {ctx.model_dir}"
    )
    return loop.Trainer(ctx, state).run()


def _final_phase(ctx):
    """train_and_eval after training: the eval split's score of the archived best, then the export.

    Inside the training session: a SIGTERM stops it with Preempted (the final checkpoint is already saved), and
    a rerun after a kill finishes it without a second metrics line for the same evaluation.
    """
    config, summary = ctx.config, {}
    ctx.stop_if_requested()
    if ctx.source.num_examples(config.data.eval_split) > 0:
        summary["final_eval"] = scoring.evaluate_run(ctx, config.data.eval_split, once=True)
    ctx.stop_if_requested()
    if config.runtime.export_dir or config.runtime.export_at_end:
        summary["export_dir"] = export.export_run(ctx)
    return summary


def _train_mode(ctx, image_files):
    """train / train_and_eval: training, then (train_and_eval) the final evaluation and export, all inside the
    training session (lock, SIGTERM handling)."""
    del image_files
    with startup.training_session(ctx) as session:
        summary = {"best": train(session)}
        if session.plan.mode.final_phase:
            summary.update(_final_phase(session))
    return summary


def _eval_mode(ctx, image_files):
    """eval: published weights as stored, a sidecar beside a training job, or the run's best once. A SIGTERM or
    Ctrl-C stops it between batches (Preempted, saved=False): a rerun redoes only what metrics.jsonl lacks."""
    del image_files
    with startup.watched(ctx) as watched:
        return _evaluate(watched)


def _evaluate(ctx):
    split = ctx.config.data.eval_split
    if ctx.external_weights:
        return {
            "weights": ctx.external_weights,
            "final_eval": scoring.evaluate_published(ctx, split, ctx.external_weights),
        }
    if sidecar.is_sidecar(ctx.config):  # beside a training job: every checkpoint, then the best once at the end
        finished = sidecar.Sidecar(ctx).run()
        if finished and ctx.source.num_examples(split) > 0:  # once: a restarted eval job adds no second line
            return {"final_eval": scoring.evaluate_run(ctx, split, once=True)}
        return {}
    # once: an evaluation metrics.jsonl already holds (same weights, split and input) is reported, not redone
    return {"final_eval": scoring.evaluate_run(ctx, split, ctx.config.runtime.init_checkpoint, once=True)}


def _export_mode(ctx, image_files):
    del image_files
    with startup.watched(ctx, immediate=True) as watched:  # its files appear by rename
        if watched.external_weights:
            return {"export_dir": export.export_published(watched, watched.external_weights)}
        return {"export_dir": export.export_run(watched, watched.config.runtime.init_checkpoint)}


def _predict_mode(ctx, image_files):
    with startup.watched(ctx, immediate=True) as watched:
        return predict.predict_run(watched, image_files)


# --mode -> what it runs after set-up (what each needs: configs/base.py MODE_TABLE); each returns its part of the
# run's summary.
MODE_HANDLERS = {
    "train": _train_mode,
    "train_and_eval": _train_mode,
    "eval": _eval_mode,
    "export": _export_mode,
    "predict": _predict_mode,
}
assert set(MODE_HANDLERS) == set(base.MODE_TABLE), "every mode of the table has a handler"


def run(config, strategy=None, image_files=(), user_fields=()):
    """Runs config.runtime.mode; returns a summary dict (also printed as the final line, except for predict,
    which prints its own).

    image_files: the files to classify with --mode=predict (main.py's positional arguments).
    user_fields: the "section.field" names set on the command line (see `startup.setup`).
    """
    if sidecar.is_sidecar(config):
        if config.runtime.model_dir:  # an unwritable model_dir fails now, not after the wait
            checks.check_writable_dir(config.runtime.model_dir)
        if not sidecar.wait_for_run(config):
            raise UserError(
                f"no training run appeared in {config.runtime.model_dir} within --eval_timeout "
                f"{config.eval.timeout_seconds} s"
            )
        if not sidecar.is_sidecar(config):  # the run that appeared evaluates its own checkpoints
            raise UserError(
                f"the training job of {config.runtime.model_dir} evaluates its own checkpoints "
                "(--mode=train_and_eval or eval.in_training=true); score its best with --mode=eval once it ends"
            )
    ctx = startup.setup(config, strategy, user_fields)
    mode = config.runtime.mode
    try:
        summary = {"mode": mode, "model_dir": ctx.model_dir, **MODE_HANDLERS[mode](ctx, image_files)}
    finally:
        ctx.log.close()  # an error line after a run cut short starts on a line of its own
    if not ctx.plan.mode.takes_files:
        ctx.log.message(final_line(summary, ema=config.train.moving_average_decay > 0))
    return summary


def final_line(summary, ema=True):
    """The run's last line. ema: whether its checkpoints' averaged weights differ from the trained ones (with
    train.moving_average_decay 0 the average is the trained weights, which the line then says)."""
    parts = [f"done: {summary['mode']}"]
    best = summary.get("best")
    if best:
        parts.append(f"best {best['split']} top-1 {best['top_1']:.4f} at step {best['step']}")
    final = summary.get("final_eval")
    if final:
        if summary.get("weights"):
            weights = f"weights of {summary['weights']}"
        else:
            weights = "EMA weights" if ema else "trained weights, no EMA"
        parts.append(f"{final['split']} top-1 {final['top_1']:.4f} ({weights})")
    if summary.get("export_dir"):
        parts.append(f"SavedModel in {summary['export_dir']}")
    parts.append(f"model_dir {summary['model_dir']}")
    return "; ".join(parts)
