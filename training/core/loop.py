"""The trainer: host loops of on-device steps, the finiteness check before each checkpoint, periodic minival
evaluation of the EMA weights, the best-checkpoint archive and early stopping. Importable; tests call it directly.
Its input comes from training/core/inputs.py, its settings from the run plan (training/core/recipe.py), its
evaluations and best-checkpoint rule from training/core/evaluation.py."""

import math
import time

import tensorflow as tf

from efficientnet import loading
from training.core import evaluation, inputs, steps
from training.core import state as state_lib
from training.errors import NumericalError, Preempted, first_line
from training.store import checkpoints, logs, progress, rundir


def make_finite_check(variables):
    """Returns a function answering whether the sum of squares of all `variables` is finite.

    That is false for NaN or Inf weights and for weights that overflow float32 when squared (|w| > 1.8e19),
    which are as lost: the L2 term of the next step's loss is infinite. Run before each checkpoint on the
    weights and EMA shadows; one L2Loss op per variable keeps its tracing short beside the train loop's.
    """

    @tf.function(autograph=False)
    def all_finite():
        return tf.math.is_finite(tf.add_n([tf.nn.l2_loss(tf.cast(v, tf.float32)) for v in variables]))

    return all_finite


class Trainer:
    """Owns the train state, its checkpoint and the compiled functions of one training run."""

    def __init__(self, ctx, state):
        self.ctx, self.state, self.schedule = ctx, state, ctx.plan.schedule
        with ctx.strategy.scope():
            self.metrics = steps.TrainMetrics()
        self._train_loop, self._head_only = None, None  # made by train_loop() for the current phase
        self.eval_step = steps.make_eval_step(state.model, ctx.strategy, ctx.plan.step)
        resume_step = checkpoints.latest_step(ctx.checkpoint_dir) or 0
        restart_input = bool(rundir.restarts_input(ctx.resume_changes))
        self.batches, iterator = inputs.train_batches(ctx, resume_step, restart_input=restart_input)
        tracked = {"iterator": iterator} if iterator is not None else {}
        parts = dict(model=state.model, optimizer=state.optimizer, ema=state.ema, random=seed_states(state.model))
        ckpt = tf.train.Checkpoint(**parts, **tracked)
        # Input settings changed: the stored iterator (other shapes, another stream) is not restored.
        self.checkpoints = checkpoints.Checkpoints(
            ckpt,
            ctx.checkpoint_dir,
            max_to_keep=ctx.config.runtime.checkpoints_to_keep,
            restore_from=tf.train.Checkpoint(**parts) if restart_input else None,
        )
        self.split = ctx.plan.selection_split
        self.selector = evaluation.BestSelector(ctx.model_dir, self.split)
        self.preempted = False
        self.checkpoint_steps = ctx.plan.checkpoint_steps
        self._traced = False  # the current train loop has run once (traced and compiled)
        self._seconds_per_step, self._last_call = None, (1, 0.0)  # training speed, for the progress lines
        self.eta = progress.run_eta(ctx.config, ctx.source, self.schedule, self.split)  # the time left on screen
        self.weights_finite = make_finite_check(
            [v for v in state.ema.averaged_variables if v.dtype.is_floating] + list(state.ema.shadows)
        )

    def run(self):
        """Trains to the configured number of steps (resuming if a checkpoint exists); returns the best."""
        restored = self.checkpoints.restore_latest()
        if restored:
            self.ctx.log.message(f"resumed from {restored} at step {self.state.step}")
        if restored and self.ctx.resume_changes:
            self.ctx.log.message(rundir.resume_note(self.ctx.model_dir, self.state.step, self.ctx.resume_changes))
        if self.ctx.is_chief:  # only now: a refused or failed start leaves the run's config.json as it was
            rundir.record_start(
                self.ctx.config, self.ctx.model_dir, self.state.step, self.ctx.resume_changes if restored else []
            )
            rundir.write_class_names(self.ctx.source, self.ctx.model_dir)
        evaluating = (
            self.ctx.config.eval.in_training
        )  # False: a --mode=eval sidecar evaluates (training/session/sidecar.py)
        if self.split == "validation" and evaluating:
            self.ctx.log.message("warning: no minival holdout; selecting checkpoints on the validation split")
        self._tensorboard_start()
        if evaluating and self._eval_missing():  # killed after the checkpoint at an eval step, before its evaluation
            self._evaluate_and_select()
        while self.state.step < self.schedule.total_steps and not self._should_stop_early():
            boundary = self._next_boundary()
            self._train_until(boundary)
            if not bool(self.weights_finite()):
                raise NumericalError(
                    f"the weights after step {self.state.step} are not finite (or overflow "
                    "float32); stopped without saving, the last good checkpoint is kept"
                )
            # A SIGTERM right after a save (or a restore) trains nothing: the checkpoint of this step is on disk
            # already and is not rewritten during the grace period.
            path = self.checkpoints.save(self.state.step)
            if self.preempted:
                raise Preempted(self.state.step, path)
            if evaluating and self._is_eval_step(self.state.step):
                self._evaluate_and_select()
        return self.selector.best

    def _tensorboard_start(self):
        """TensorBoard at every start: a grid of augmented training images and the config; at step 0 the model
        graph. The images come from a separate pipeline, so the run's input position is not touched."""
        if not self.ctx.is_chief:
            return
        log, step, config = self.ctx.log, self.state.step, self.ctx.config
        count = config.runtime.tensorboard_images  # >= 0: training/checks.py
        if count:
            log.message(f"tensorboard: writing {count} augmented training images")
            log.images(step, "augmented_images", logs.image_grid(inputs.augmented_sample(self.ctx, count, step)))
        log.run_config(step, config)
        if step == 0:
            size = self.ctx.plan.image_size
            log.message("tensorboard: writing the model graph")
            forward = tf.function(lambda images: self.state.model(images, training=False))
            try:
                graph = forward.get_concrete_function(tf.TensorSpec([1, size, size, 3], tf.float32)).graph
                log.graph(graph.as_graph_def())
            except (ValueError, TypeError, RuntimeError, tf.errors.OpError) as e:  # e.g. a strategy that
                log.message(f"tensorboard: model graph not written ({first_line(e)})")  # refuses it

    def _is_eval_step(self, step):
        return step == self.schedule.total_steps or step % self.schedule.steps_per_eval == 0

    def _eval_missing(self):
        step = self.state.step
        return step > 0 and self._is_eval_step(step) and not self.ctx.log.recorded(step, self.split)

    def _next_boundary(self):
        """The next step at which to checkpoint (and evaluate, if it is an eval step)."""
        step = self.state.step
        next_eval = (step // self.schedule.steps_per_eval + 1) * self.schedule.steps_per_eval
        next_save = (step // self.checkpoint_steps + 1) * self.checkpoint_steps
        # The end of the head warm-up is a boundary too: one host loop never spans both phases.
        phase_end = self.schedule.head_only_steps if step < self.schedule.head_only_steps else next_save
        return min(self.schedule.total_steps, next_eval, next_save, phase_end)

    def train_loop(self):
        """The compiled train loop of the current phase: the classifier alone during the head warm-up
        (config.train.freeze_backbone_epochs) or the whole run (freeze_backbone), else every layer.

        The phases differ in which variables get gradients, so each has its own traced function. The frozen
        layers' optimizer slots are not touched while frozen: RMSProp's mean square keeps its initial 1 and the
        momentum its 0, so the backbone starts as if with a fresh optimizer when it is unfrozen (zero gradients
        would instead decay the mean square and inflate the first steps).
        """
        head_only = self.ctx.config.train.freeze_backbone or self.state.step < self.schedule.head_only_steps
        if head_only != self._head_only:
            loading.set_backbone_trainable(self.state.model, not head_only)
            self._train_loop = steps.make_train_loop(self.state, self.ctx.strategy, self.ctx.plan.step, self.metrics)
            self._head_only = head_only
            self._traced = False
            if self.schedule.head_only_steps:
                self.ctx.log.message(
                    f"step {self.state.step}: training {'the classifier only' if head_only else 'every layer'}"
                )
        return self._train_loop

    def _train_until(self, boundary):
        config = self.ctx.config
        while self.state.step < boundary:
            if self.ctx.stop_requested():  # checked on every worker at the same step
                self.preempted = True
                return
            num_steps = min(config.train.iterations_per_loop, boundary - self.state.step)
            self.metrics.reset()
            start = time.monotonic()
            with inputs.bad_records_as_user_error():
                self._run_steps(num_steps)
            result = self.metrics.result()  # reading the metrics waits for the loop to finish
            elapsed = time.monotonic() - start
            if not math.isfinite(result["loss"]):
                raise NumericalError(
                    f"loss is {result['loss']} in the steps up to {self.state.step}; "
                    f"stopped without saving, the last good checkpoint is kept"
                )
            self._report(num_steps, elapsed, result)

    def _chunks(self, num_steps):
        """The calls one host loop is split into: after a new trace, 1 step (tracing and compilation, timed
        alone), then a tenth of the loop (its speed gives the first time left), then the rest; else one call."""
        if self._traced:
            return [num_steps]
        short = max(1, num_steps // 10)
        return [n for n in (1, min(short, num_steps - 1), num_steps - 1 - min(short, num_steps - 1)) if n > 0]

    def _run_steps(self, num_steps):
        """Runs one host loop of num_steps steps (the checks after it see the whole loop, however split)."""
        log, loop = self.ctx.log, self.train_loop()
        chunks = self._chunks(num_steps)
        for i, chunk in enumerate(chunks):
            if not self._traced and i == 0:
                log.message(
                    f"tracing and compiling the train step (the first call, step {self.state.step + 1}, includes it)"
                )
            start = time.monotonic()
            what = (
                f"step {self.state.step + 1}"
                if chunk == 1
                else f"steps {self.state.step + 1}-{self.state.step + chunk}"
            )
            with log.busy(f"training {what}" if self._traced else f"tracing and compiling, then training {what}"):
                loop(self.batches, tf.constant(chunk))
                result = self.metrics.result()  # reading the metrics waits for the loop to finish
            seconds = time.monotonic() - start
            self._last_call = (chunk, seconds)
            if not self._traced:
                self._traced = True
                self.eta.traced(seconds)
                log.message(
                    f"first step done in {seconds:.1f} s (tracing and compilation included); elapsed {log.elapsed()}"
                )
            else:
                self._seconds_per_step = seconds / chunk
                self.eta.trained(chunk, seconds)
            if i == 1 and len(chunks) == 3:  # the short call measured the speed: say the time left now
                self._progress(result)

    def _images_per_sec(self):
        """From the last call free of tracing (else the last call, tracing included)."""
        chunk, seconds = self._last_call
        seconds_per_step = self._seconds_per_step or seconds / chunk
        return self.ctx.config.train.batch_size / max(seconds_per_step, 1e-9)

    def _progress(self, result):
        step = self.state.step
        self.ctx.log.progress(
            step,
            self.schedule.total_steps,
            epoch=step / self.schedule.steps_per_epoch,
            images_per_sec=self._images_per_sec(),
            loss=result["loss"],
            top_1=result["top_1"],
            learning_rate=state_lib.current_learning_rate(self.state),
            seconds_left=self.eta.seconds_left(step, self.schedule.total_steps),
        )

    def _report(self, num_steps, elapsed, result):
        """The step line and train scalars after a host loop (speed: its last call, free of tracing)."""
        del num_steps, elapsed  # the speed comes from _run_steps, which knows which call traced
        step = self.state.step
        self._progress(result)
        values = {
            "loss": result["loss"],
            "top_1": result["top_1"],
            "learning_rate": state_lib.current_learning_rate(self.state),
            "images_per_sec": self._images_per_sec(),
            "bad_records": result["bad_records"],
            "epoch": step / self.schedule.steps_per_epoch,
        }
        scale = state_lib.loss_scale(self.state)
        if scale is not None:  # float16: TensorBoard shows the dynamic loss scale (metrics.csv keeps its columns)
            values["loss_scale"] = scale
        self.ctx.log.training(step, values)

    def _evaluate_and_select(self):
        """Evaluates the EMA weights; archives them when they beat the best so far (evaluation.BestSelector)."""
        start = time.monotonic()
        with self.state.ema.swapped():
            metrics = evaluation.evaluate(self.ctx, self.state.model, self.split, self.eval_step)
        self.eta.evaluated(metrics["num_examples"], time.monotonic() - start)
        record = evaluation.record(self.ctx.plan, self.state.step, self.split, metrics)
        self.selector.consider(record, self.ctx.checkpoint_dir, self.state.model, self.state.ema)
        self.ctx.log.evaluation(record)

    def _should_stop_early(self):
        patience = self.ctx.config.eval.early_stopping_evals
        if patience and self.selector.best and self.selector.evals_since_best >= patience:
            self.ctx.log.message(f"early stopping: {patience} evaluations without a better top-1")
            return True
        return False


def seed_states(model):
    """The state variables of the model's Keras SeedGenerators (dropout, stochastic depth).

    tf.train.Checkpoint(model=...) does not save them (they are not weights); without them a restarted run would
    draw different dropout and stochastic-depth masks than an uninterrupted one.
    """
    return [v.value for v in model.variables if "seed_generator_state" in v.path]
