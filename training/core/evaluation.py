"""Evaluation: the score of a model on a split (every example once), the metrics.jsonl record of it, and the
one best-checkpoint selector shared by the trainer (training/core/loop.py) and the eval job beside it
(training/session/sidecar.py).
"""

import tensorflow as tf

from training.core import inputs, steps
from training.store import checkpoints, logs


def evaluate(ctx, model, split, eval_step=None):
    """Top-1, top-5, loss and the example count of `model` as it is on `split` (the trainer swaps the EMA
    weights in first)."""
    eval_step = eval_step or steps.make_eval_step(model, ctx.strategy, ctx.plan.step)
    totals = tf.zeros([4], tf.float32)
    ctx.log.message(f"evaluating on {split} ({ctx.source.num_examples(split)} images); elapsed {ctx.log.elapsed()}")
    with ctx.log.busy(f"evaluating on {split}"), inputs.bad_records_as_user_error():
        for batch in inputs.eval_dataset(ctx, split):
            ctx.stop_if_requested()  # a preemption's grace period is shorter than a full evaluation
            totals += eval_step(batch)
    hit_1, hit_5, loss_sum, count = (float(x) for x in totals.numpy())
    expected = ctx.source.num_examples(split)
    if int(round(count)) > expected or count == 0:
        raise RuntimeError(f"evaluation on {split} scored {count:.0f} examples of {expected}")
    if int(round(count)) < expected:  # the pipeline skips undecodable records; say how many
        ctx.log.message(
            f"warning: {expected - int(round(count))} of {expected} {split} records were unreadable and not scored"
        )
    return {"top_1": hit_1 / count, "top_5": hit_5 / count, "loss": loss_sum / count, "num_examples": count}


def record(plan, step, split, metrics, *, weights=None, ema=True):
    """The metrics.jsonl line of one evaluation. One that names the weights it read (an evaluation outside
    training: --mode=eval, the sidecar, the final phase) also states the input it scored (size and crop)."""
    described = plan.eval_settings() if weights is not None else {}
    return logs.evaluation_record(step, split, metrics, ema=ema, weights=weights, **described)


class BestSelector:
    """The best evaluation so far (archive/best.json) and the rule that replaces it: a higher top-1 on the
    selection split. `consider` archives the weights of a better record before its metrics line is written, so
    a run killed in between re-evaluates the same checkpoint on restart and ends with the same files."""

    def __init__(self, model_dir, split):
        self.split = split
        self.best = checkpoints.read_best(model_dir)
        # Evaluations after the best (early stopping survives restarts through metrics.jsonl).
        self.evals_since_best = (
            0
            if not self.best
            else sum(1 for r in logs.read_metrics(model_dir) if r["split"] == split and r["step"] > self.best["step"])
        )

    def consider(self, record, archive_dir, model, ema):
        """Takes `record` as the best (archiving model and EMA into archive_dir) when it beats the best so far;
        returns whether it did. A record of the archived step (resumed after archiving) is the best again."""
        archived_already = self.best is not None and self.best["step"] == record["step"]
        if not (archived_already or self.best is None or record["top_1"] > self.best["top_1"]):
            self.evals_since_best += 1
            return False
        if not archived_already:
            # Every worker writes (reading distributed variables may need all of them); only the chief's copy
            # lands in model_dir.
            checkpoints.archive_best(archive_dir, model, ema, record)
        self.best, self.evals_since_best = record, 0
        return True
