"""The trainer: host loops of on-device steps, the finiteness check before each checkpoint, periodic minival
evaluation of the EMA weights, the best-checkpoint archive and early stopping. Importable; tests call it directly.
Its input comes from training/core/inputs.py, its derived values from training/core/recipe.py."""
import math
import time

import tensorflow as tf

from training.store import checkpoints, logs, progress, rundir
from training.core import inputs, recipe, state as state_lib, steps, warm_start
from training.errors import NumericalError, Preempted, UserError, first_line


def evaluate(ctx, state, split, eval_step=None):
    """Top-1, top-5 and loss of the EMA weights on `split`, every example counted once."""
    eval_step = eval_step or steps.make_eval_step(state.model, ctx.strategy, step_config(ctx))
    totals = tf.zeros([4], tf.float32)
    ctx.log.message(f"evaluating on {split} ({ctx.source.num_examples(split)} images); elapsed {ctx.log.elapsed()}")
    with state.ema.swapped(), ctx.log.busy(f"evaluating on {split}"):
        try:
            for batch in inputs.eval_dataset(ctx, split):
                stop_if_requested(ctx)  # a preemption's grace period is shorter than a full evaluation
                totals += eval_step(batch)
        except tf.errors.InvalidArgumentError as e:
            error = too_many_bad_records(e)
            if error is e:
                raise
            raise error from None
    hit_1, hit_5, loss_sum, count = (float(x) for x in totals.numpy())
    expected = ctx.source.num_examples(split)
    if int(round(count)) > expected or count == 0:
        raise RuntimeError(f"evaluation on {split} scored {count:.0f} examples of {expected}")
    if int(round(count)) < expected:  # the pipeline skips undecodable records; say how many
        ctx.log.message(f"warning: {expected - int(round(count))} of {expected} {split} records were unreadable "
                        "and not scored")
    return {"top_1": hit_1 / count, "top_5": hit_5 / count, "loss": loss_sum / count, "num_examples": count}


def too_many_bad_records(error):
    """The pipeline's bad-record stop (e.g. labels beyond --num_label_classes in an eval split) as a one-line
    UserError without TF's node prefix; any other error is returned as it is."""
    text = str(error)
    if "Too many bad records" in text:
        return UserError(first_line(text[text.index("Too many bad records"):]).rstrip("]"))
    return error


def stop_if_requested(ctx):
    """Raises Preempted when a SIGTERM arrived: the latest checkpoint holds everything done so far (an
    evaluation or final phase cut short runs again on resume: its metrics line is not written yet)."""
    if ctx.stop_requested():
        if ctx.config.runtime.mode not in ("train", "train_and_eval"):  # --mode=eval: nothing of ours to save
            raise Preempted(0, None, saved=False)
        path = tf.train.latest_checkpoint(checkpoints.checkpoint_dir(ctx))
        raise Preempted(checkpoints.checkpoint_step(path) if path else 0, path)


def make_finite_check(variables):
    """Returns a function answering whether the sum of squares of all `variables` is finite.

    That is false for NaN or Inf weights and for weights that overflow float32 when squared (|w| > 1.8e19),
    which are as lost: the L2 term of the next step's loss is infinite. Run before each checkpoint on the
    weights and EMA shadows; one L2Loss op per variable keeps tracing short (b0: 2 s, then 9 ms per check on
    2 busy CPU cores, beside 50 s of tracing the train loop).
    """
    @tf.function(autograph=False)
    def all_finite():
        return tf.math.is_finite(tf.add_n([tf.nn.l2_loss(tf.cast(v, tf.float32)) for v in variables]))

    return all_finite


def step_config(ctx):
    config = ctx.config
    return steps.StepConfig(num_classes=ctx.num_classes, global_batch_size=config.train.batch_size,
                            label_smoothing=config.train.label_smoothing, weight_decay=config.train.weight_decay,
                            jit_compile=ctx.jit_compile, augment_on_device=inputs.augment_on_device(ctx),
                            augment_name=config.data.augment_name,
                            randaugment_num_layers=config.data.randaugment_num_layers,
                            randaugment_magnitude=config.data.randaugment_magnitude,
                            mixup=config.data.mixup_alpha > 0)


def selection_split(source):
    """Model selection uses the minival holdout; without one, the validation split (optimistic, warned)."""
    return "minival" if source.num_examples("minival") > 0 else "validation"


class Trainer:
    """Owns the train state, its checkpoint and the compiled functions of one training run."""

    def __init__(self, ctx, state, schedule):
        self.ctx, self.state, self.schedule = ctx, state, schedule
        with ctx.strategy.scope():
            self.metrics = steps.TrainMetrics()
        self._train_loop, self._head_only = None, None  # made by train_loop() for the current phase
        self.eval_step = steps.make_eval_step(state.model, ctx.strategy, step_config(ctx))
        resume_step = checkpoints.latest_step(checkpoints.checkpoint_dir(ctx)) or 0
        restart_input = bool(rundir.restarts_input(ctx.resume_changes))
        self.batches, iterator = inputs.train_batches(ctx, resume_step, restart_input=restart_input)
        tracked = {"iterator": iterator} if iterator is not None else {}
        parts = dict(model=state.model, optimizer=state.optimizer, ema=state.ema, random=seed_states(state.model))
        ckpt = tf.train.Checkpoint(**parts, **tracked)
        # Input settings changed: the stored iterator (other shapes, another stream) is not restored.
        self.checkpoints = checkpoints.Checkpoints(ckpt, checkpoints.checkpoint_dir(ctx),
                                                   max_to_keep=ctx.config.runtime.checkpoints_to_keep,
                                                   restore_from=tf.train.Checkpoint(**parts) if restart_input else None)
        self.split = selection_split(ctx.source)
        self.best = checkpoints.read_best(ctx.model_dir)
        self.evals_without_improvement = self._evals_since_best()
        self.preempted = False
        self.checkpoint_steps = ctx.config.runtime.checkpoint_steps or schedule.steps_per_eval
        self._traced = False  # the current train loop has run once (traced and compiled)
        self._seconds_per_step, self._last_call = None, (1, 0.0)  # training speed, for the progress lines
        self.eta = progress.run_eta(ctx.config, ctx.source, schedule, self.split)  # the time left on screen
        self.weights_finite = make_finite_check([v for v in state.ema.averaged_variables if v.dtype.is_floating]
                                                + list(state.ema.shadows))

    def run(self):
        """Trains to the configured number of steps (resuming if a checkpoint exists); returns the best."""
        restored = self.checkpoints.restore_latest()
        if restored:
            self.ctx.log.message(f"resumed from {restored} at step {self.state.step}")
        if restored and self.ctx.resume_changes:
            self.ctx.log.message(rundir.resume_note(self.ctx.model_dir, self.state.step, self.ctx.resume_changes))
        if self.ctx.is_chief:  # only now: a refused or failed start leaves the run's config.json as it was
            rundir.record_start(self.ctx.config, self.ctx.model_dir, self.state.step,
                                self.ctx.resume_changes if restored else [])
            rundir.write_class_names(self.ctx.source, self.ctx.model_dir)
        evaluating = self.ctx.config.eval.in_training  # False: a --mode=eval sidecar evaluates (training/session/sidecar.py)
        if self.split == "validation" and evaluating:
            self.ctx.log.message("warning: no minival holdout; selecting checkpoints on the validation split")
        self._tensorboard_start()
        if evaluating and self._eval_missing():  # killed after the checkpoint at an eval step, before its evaluation
            self._evaluate_and_select()
        while self.state.step < self.schedule.total_steps and not self._should_stop_early():
            boundary = self._next_boundary()
            self._train_until(boundary)
            if not bool(self.weights_finite()):
                raise NumericalError(f"the weights after step {self.state.step} are not finite (or overflow "
                                     "float32); stopped without saving, the last good checkpoint is kept")
            # A SIGTERM right after a save (or a restore) trains nothing: the checkpoint of this step is on disk
            # already and is not rewritten during the grace period.
            path = self.checkpoints.save(self.state.step)
            if self.preempted:
                raise Preempted(self.state.step, path)
            if evaluating and self._is_eval_step(self.state.step):
                self._evaluate_and_select()
        return self.best

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
            size = recipe.image_size(config)
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
            warm_start.set_backbone_trainable(self.state.model, not head_only)
            self._train_loop = steps.make_train_loop(self.state, self.ctx.strategy, step_config(self.ctx),
                                                     self.metrics)
            self._head_only = head_only
            self._traced = False
            if self.schedule.head_only_steps:
                self.ctx.log.message(f"step {self.state.step}: training "
                                     f"{'the classifier only' if head_only else 'every layer'}")
        return self._train_loop

    def _evals_since_best(self):
        """Evaluations after the archived best (early stopping survives restarts through metrics.jsonl)."""
        if not self.best:
            return 0
        records = logs.read_metrics(self.ctx.model_dir)
        return sum(1 for r in records if r["split"] == self.split and r["step"] > self.best["step"])
    def _train_until(self, boundary):
        config = self.ctx.config
        while self.state.step < boundary:
            if self.ctx.stop_requested():  # checked on every worker at the same step
                self.preempted = True
                return
            num_steps = min(config.train.iterations_per_loop, boundary - self.state.step)
            self.metrics.reset()
            start = time.monotonic()
            try:
                self._run_steps(num_steps)
            except tf.errors.InvalidArgumentError as e:
                error = too_many_bad_records(e)
                if error is e:
                    raise
                raise error from None
            result = self.metrics.result()  # reading the metrics waits for the loop to finish
            elapsed = time.monotonic() - start
            if not math.isfinite(result["loss"]):
                raise NumericalError(f"loss is {result['loss']} in the steps up to {self.state.step}; "
                                     f"stopped without saving, the last good checkpoint is kept")
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
                log.message(f"tracing and compiling the train step (the first call, step {self.state.step + 1}, "
                            "includes it)")
            start = time.monotonic()
            what = f"step {self.state.step + 1}" if chunk == 1 else \
                f"steps {self.state.step + 1}-{self.state.step + chunk}"
            with log.busy(f"training {what}" if self._traced else f"tracing and compiling, then training {what}"):
                loop(self.batches, tf.constant(chunk))
                result = self.metrics.result()  # reading the metrics waits for the loop to finish
            seconds = time.monotonic() - start
            self._last_call = (chunk, seconds)
            if not self._traced:
                self._traced = True
                self.eta.traced(seconds)
                log.message(f"first step done in {seconds:.1f} s (tracing and compilation included); "
                            f"elapsed {log.elapsed()}")
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
        self.ctx.log.progress(step, self.schedule.total_steps, epoch=step / self.schedule.steps_per_epoch,
                              images_per_sec=self._images_per_sec(), loss=result["loss"], top_1=result["top_1"],
                              learning_rate=state_lib.current_learning_rate(self.state),
                              seconds_left=self.eta.seconds_left(step, self.schedule.total_steps))

    def _report(self, num_steps, elapsed, result):
        """The step line and train scalars after a host loop (speed: its last call, free of tracing)."""
        del num_steps, elapsed  # the speed comes from _run_steps, which knows which call traced
        step = self.state.step
        self._progress(result)
        self.ctx.log.training(step, {"loss": result["loss"], "top_1": result["top_1"],
                                    "learning_rate": state_lib.current_learning_rate(self.state),
                                    "images_per_sec": self._images_per_sec(),
                                    "bad_records": result["bad_records"],
                                    "epoch": step / self.schedule.steps_per_epoch})

    def _evaluate_and_select(self):
        """Evaluates the EMA weights; archives them when they beat the best so far.

        The archive is written before the metrics line: a run killed in between re-evaluates the same
        checkpoint on restart (the line is missing) and ends with the same files as an uninterrupted run.
        """
        start = time.monotonic()
        metrics = evaluate(self.ctx, self.state, self.split, self.eval_step)
        self.eta.evaluated(metrics["num_examples"], time.monotonic() - start)
        record = logs.evaluation_record(self.state.step, self.split, metrics)
        archived_already = self.best is not None and self.best["step"] == record["step"]  # resumed after archiving
        if archived_already or self.best is None or metrics["top_1"] > self.best["top_1"]:
            self.best = record
            self.evals_without_improvement = 0
            if not archived_already:
                # Every worker writes (reading distributed variables may need all of them); only the chief's
                # copy lands in model_dir.
                checkpoints.archive_best(checkpoints.checkpoint_dir(self.ctx), self.state.model, self.state.ema, record)
        else:
            self.evals_without_improvement += 1
        self.ctx.log.evaluation(record)

    def _should_stop_early(self):
        patience = self.ctx.config.eval.early_stopping_evals
        if patience and self.best and self.evals_without_improvement >= patience:
            self.ctx.log.message(f"early stopping: {patience} evaluations without a better top-1")
            return True
        return False


def seed_states(model):
    """The state variables of the model's Keras SeedGenerators (dropout, stochastic depth).

    tf.train.Checkpoint(model=...) does not save them (they are not weights); without them a restarted run would
    draw different dropout and stochastic-depth masks than an uninterrupted one.
    """
    return [v.value for v in model.variables if "seed_generator_state" in v.path]
