"""The RunContext: what every stage of a run shares, built once by the session's set-up
(training/session/run.py `setup`) and passed down. Frozen: the training session derives the context it runs
with (`dataclasses.replace`) instead of changing this one.
"""

import dataclasses

import tensorflow as tf

from training.core import recipe
from training.errors import Preempted
from training.store import checkpoints, logs


def _never():
    return False


@dataclasses.dataclass(frozen=True)
class RunContext:
    """The plan (the config and what it derives), the hardware, the data and where results go.

    source: the data source (None when the mode reads none: predict, export of published weights).
    is_chief: this process writes model_dir (training/core/inputs.py `is_chief`).
    stop_requested: answers whether a SIGTERM or Ctrl-C asked the run to stop (training/session/preemption.py).
    external_weights: published weights (a .h5 file or original checkpoint) that eval/export/predict score as
      stored (training/serving/scoring.py), else None.
    resume_changes: the fields a resume changes (training/store/rundir.py `resume_changes`).
    """

    plan: recipe.Plan
    strategy: tf.distribute.Strategy
    source: object
    log: logs.RunLog
    is_chief: bool = True
    stop_requested: object = _never
    external_weights: str = None
    resume_changes: tuple = ()

    @property
    def config(self):
        return self.plan.config

    @property
    def model_dir(self):
        return self.plan.model_dir

    @property
    def num_classes(self):
        return self.plan.num_classes

    @property
    def checkpoint_dir(self):
        """Where this process writes checkpoints: model_dir, or for a non-chief worker of a multi-worker run a
        private folder (its checkpoints are identical; only the chief's land in model_dir)."""
        if self.is_chief:
            return self.model_dir
        resolver = self.strategy.cluster_resolver
        return f"{self.model_dir}/.workers/{resolver.task_type}-{resolver.task_id}"

    def stop_if_requested(self):
        """Raises Preempted when a SIGTERM arrived: the latest checkpoint holds everything done so far (an
        evaluation or final phase cut short runs again on resume: its metrics line is not written yet)."""
        if not self.stop_requested():
            return
        if not self.plan.mode.trains:  # --mode=eval: nothing of ours to save
            raise Preempted(0, None, saved=False)
        path = tf.train.latest_checkpoint(self.checkpoint_dir)
        raise Preempted(checkpoints.checkpoint_step(path) if path else 0, path)
