"""--mode=eval beside a training job: evaluate every new checkpoint of a model_dir as it appears.

The original's evaluation job (tensorflow/tpu models/official/efficientnet/main.py, mode 'eval': a loop over
tf.train.checkpoints_iterator(model_dir, timeout=eval_timeout) that evaluates each checkpoint, archives the best
and stops once a checkpoint's step reaches train_steps). Here it pairs with a training job that leaves
evaluation to it (--mode=train, whose config.json says eval.in_training=false), so that one process writes
metrics.jsonl and archive/:

- each new latest checkpoint's EMA weights are evaluated on the selection split (minival, else validation), the
  record goes to metrics.jsonl and TensorBoard, and the best is archived as the training job would have;
- a checkpoint already recorded (a restarted sidecar) is not evaluated again; one deleted by the trainer's
  rotation before it was read is skipped, as in the original;
- it stops after the run's final step, then scores the archived best on data.eval_split once (what
  train_and_eval does at its end), or after eval.timeout_seconds (--eval_timeout) without a new checkpoint.

When --mode=eval is a sidecar: with --eval_timeout, when the run in model_dir evaluates outside training (its
config.json says eval.in_training=false, what --mode=train writes), or when model_dir holds no run yet: the eval
job started before (or beside) its training job waits for it, as the original's did. Otherwise --mode=eval
scores the archived best once.
"""

import os
import time

import tensorflow as tf

from configs import base
from efficientnet import ema as ema_lib
from efficientnet import loading
from training.core import evaluation, steps
from training.errors import UserError
from training.store import checkpoints, rundir

POLL_SECONDS = 1.0


def _run_config(model_dir):
    """The training run's config.json, None before it is written."""
    if not tf.io.gfile.exists(os.path.join(model_dir, rundir.CONFIG_FILE)):
        return None
    return rundir.read_run_config(model_dir)


def is_sidecar(config):
    """Whether this --mode=eval follows a training job (see the module docstring)."""
    runtime = config.runtime
    if not base.MODE_TABLE[runtime.mode].follows_training or not runtime.model_dir or runtime.init_checkpoint:
        return False
    if config.eval.timeout_seconds is not None:
        return True
    trained = _run_config(runtime.model_dir)
    return trained is None or trained.get("eval", {}).get("in_training", True) is False


def _waited_too_long(since, timeout_seconds):
    return timeout_seconds is not None and time.monotonic() - since > timeout_seconds


def wait_for_run(config, poll_seconds=POLL_SECONDS):
    """Waits until model_dir holds the training job's config.json and a first checkpoint (the sidecar may start
    first); True when they appeared, False after eval.timeout_seconds."""
    model_dir, since = config.runtime.model_dir, time.monotonic()
    if _run_config(model_dir) is None or tf.train.latest_checkpoint(model_dir) is None:
        limit = f"up to --eval_timeout {config.eval.timeout_seconds} s" if config.eval.timeout_seconds else "no limit"
        print(f"waiting for a training run to checkpoint into {model_dir} ({limit})", flush=True)
    while _run_config(model_dir) is None or tf.train.latest_checkpoint(model_dir) is None:
        if _waited_too_long(since, config.eval.timeout_seconds):
            return False
        time.sleep(poll_seconds)
    return True


def _new_checkpoints(model_dir, timeout_seconds, poll_seconds, check_stop=lambda: None):
    """Yields each new latest checkpoint of model_dir; ends after timeout_seconds without one (None: never).
    check_stop runs at every poll (it raises Preempted after a SIGTERM or Ctrl-C)."""
    last, since = None, time.monotonic()
    while True:
        check_stop()
        latest = tf.train.latest_checkpoint(model_dir)
        if latest is not None and latest != last:
            last = latest
            yield latest
            since = time.monotonic()  # the timeout counts from the end of the last evaluation, as the original
        elif _waited_too_long(since, timeout_seconds):
            return
        else:
            time.sleep(poll_seconds)


def _complete(prefix):
    """Whether a checkpoint's index and all its data shards (ckpt-N.data-0000i-of-0000n) are (still) on disk."""
    shards = tf.io.gfile.glob(prefix + ".data-*")
    if not tf.io.gfile.exists(prefix + ".index") or not shards:
        return False
    return len(shards) == int(shards[0].rsplit("-of-", 1)[1])


class Sidecar:
    """Evaluates the checkpoints of ctx.model_dir with one model, EMA and compiled eval step."""

    def __init__(self, ctx):
        if ctx.config.eval.in_training:
            raise UserError(
                f"the training job of {ctx.model_dir} evaluates its own checkpoints; to evaluate beside "
                "it, start it with --config.eval.in_training=false (or drop --eval_timeout to score "
                "its best once)"
            )
        self.ctx = ctx
        self.final_step = ctx.plan.schedule.total_steps
        # The raw weights and the EMA shadows of each checkpoint, as the trainer holds them: the best is archived
        # exactly as the trainer would have archived it (scoring alone would need only the averages).
        with ctx.strategy.scope():
            self.model = ctx.plan.network.inference().build()
            # A frozen-backbone run averages only what it trains (training/core/state.py).
            loading.set_backbone_trainable(self.model, not ctx.config.train.freeze_backbone)
            self.ema = ema_lib.ExponentialMovingAverage(ema_lib.ema_variables(self.model))
        self.eval_step = None
        self.split = ctx.plan.selection_split
        # What this job's earlier, killed runs left (the trainer may have ended and swept nothing since); the
        # temporaries of a live trainer name it and stay (training/store/temporaries.py).
        checkpoints.sweep_leftovers(ctx.model_dir, log=ctx.log.message, holds_lock=False)
        self.selector = evaluation.BestSelector(ctx.model_dir, self.split)

    def run(self, poll_seconds=POLL_SECONDS):
        """Evaluates new checkpoints until the final step (returns True) or the timeout (returns False)."""
        ctx = self.ctx
        ctx.log.message(
            f"evaluating each new checkpoint of {ctx.model_dir} on {self.split} until step {self.final_step}"
        )
        for prefix in _new_checkpoints(
            ctx.model_dir, ctx.config.eval.timeout_seconds, poll_seconds, check_stop=ctx.stop_if_requested
        ):
            step = checkpoints.checkpoint_step(prefix)
            if not ctx.log.recorded(step, self.split):
                self._evaluate(prefix, step)
            if step >= self.final_step:
                return True
        ctx.log.message(f"no new checkpoint in {ctx.model_dir} for {ctx.config.eval.timeout_seconds} s; stopping")
        return False

    def _evaluate(self, prefix, step):
        try:
            checkpoints.restore_weights(prefix, self.model, self.ema)
        except (tf.errors.OpError, ValueError, AssertionError, IndexError):
            # Rotated away by the trainer while we read it: TF deletes ckpt-N.index, then its data, so a read
            # that opened the index fails on the data with some OpError (not only NotFoundError).
            if _complete(prefix):
                raise
            self.ctx.log.message(f"checkpoint {prefix} no longer exists; skipped")
            return
        if self.eval_step is None:  # traced once, for the first checkpoint read
            self.eval_step = steps.make_eval_step(self.model, self.ctx.strategy, self.ctx.plan.step)
        with self.ema.swapped():
            metrics = evaluation.evaluate(self.ctx, self.model, self.split, self.eval_step)
        record = evaluation.record(
            self.ctx.plan, step, self.split, metrics, weights=checkpoints.weights_name(self.ctx.model_dir, prefix)
        )
        self.selector.consider(record, self.ctx.model_dir, self.model, self.ema)
        self.ctx.log.evaluation(record)
