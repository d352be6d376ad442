"""One run of the training system: the RunContext every stage shares, its set-up (strategy, precision, data,
model_dir), the training session, and the --mode handler table. Each mode's work lives in its own module
(loop, sidecar, export, predict, pretrained); this module only wires them.

`run(config)` is what main.py calls; tests call it directly with a config from configs/.
"""
import contextlib
import dataclasses
import os

import keras
import tensorflow as tf

import tpu
from data import demo as demo_data, sources
from training.store import checkpoints, lock, logs, progress, rundir
from training import checks
from training.serving import export, predict, pretrained
from training.core import inputs, loop, recipe, state as state_lib
from training.session import preemption, sidecar
from training.errors import UserError, first_line


@dataclasses.dataclass
class RunContext:
    """What every stage of a run shares: the config, the hardware, the data and where results go."""
    config: object
    strategy: tf.distribute.Strategy
    source: object
    num_classes: int
    model_dir: str
    log: object
    is_chief: bool = True
    jit_compile: bool = False
    stop_requested: object = lambda: False  # PreemptionWatcher.requested (training/session/preemption.py)
    external_weights: str = None  # --mode=eval/export of a .h5 file or original checkpoint (training/serving/pretrained.py)
    resume_changes: list = dataclasses.field(default_factory=list)  # rundir.resume_changes of a training command


def _strategy_and_kind(config, strategy=None):
    if strategy is None:
        try:
            strategy = tpu.resolve_strategy(config.runtime.tpu, zone=config.runtime.tpu_zone,
                                            project=config.runtime.gcp_project)
        except (tpu.TPUUnreachableError, ValueError) as e:
            raise UserError(str(e)) from None
    return strategy, tpu.device_kind(strategy)


def _open_source(config):
    try:
        source = sources.get_source(config.data.data_dir, config.data.dataset,
                                    holdout_shards=config.data.holdout_shards,
                                    include_background=config.data.include_background,
                                    cache_dir=config.data.cache_dir, tfds_data_dir=config.data.tfds_data_dir,
                                    holdout_fraction=config.data.holdout_fraction
                                    if config.data.dataset or config.data.data_dir else None,
                                    num_classes=config.model.num_classes if config.data.data_dir else None)
        # The split the mode reads first, so that unreadable data fails here and not after minutes of work.
        # AssertionError: TFDS asserts that a dataset was prepared (download_and_prepare) before reading it.
        mode = config.runtime.mode
        first_split = "train" if mode in ("train", "train_and_eval") else config.data.eval_split
        if mode != "export":
            source.num_examples(first_split)
        return source
    except (ValueError, FileNotFoundError, AssertionError) as e:
        raise UserError(first_line(e)) from None


def _check_counts(config, source, log):
    """The original's --num_train_images/--num_eval_images, when given, are checked against the records counted:
    epochs here always count the actual records (train + minival is the original's num_train_images)."""
    for given, splits, flag in ((config.data.num_train_images, ("train", "minival"), "num_train_images"),
                                (config.data.num_eval_images, ("validation",), "num_eval_images")):
        if given is not None and config.runtime.mode in ("train", "train_and_eval", "eval"):
            counted = sum(source.num_examples(split) for split in splits)
            if counted != given:
                log.message(f"warning: --{flag}={given} but the data has {counted} ({' + '.join(splits)}); "
                            f"using the {counted} records")


def setup(config, strategy=None, user_fields=()):
    """Validates the config and builds the RunContext (strategy, precision, data source, model_dir).

    `strategy` replaces the one tpu.resolve_strategy would pick (tests use MirroredStrategy this way).
    user_fields: the "section.field" names set on the command line (they win over a run's config.json).
    """
    checks.validate_config(config)
    external = pretrained.external_weights(config)
    if config.runtime.mode in ("eval", "export") and not config.runtime.model_dir and not external:
        raise UserError(f"--mode={config.runtime.mode} needs --model_dir (the directory of a training run)")
    if config.runtime.mode in ("eval", "export") and not config.runtime.init_checkpoint \
            and not rundir.holds_trained_network(config.runtime.model_dir):
        raise UserError(f"no training run to {config.runtime.mode} in {config.runtime.model_dir} "
                        f"(no {rundir.CONFIG_FILE} with a checkpoint)")
    # Published weights have the network the flags name, at the variant's resolution unless one is given.
    notes = [] if external else rundir.inherit_run_settings(config, user_fields)
    if external and not (config.data.data_dir or config.data.dataset) and "data.holdout_shards" not in user_fields:
        # Scored on the demo data: the recipe's ImageNet holdout (20 shards) does not fit its 16 train shards.
        config.data.holdout_shards = demo_data.DEMO_HOLDOUT_SHARDS
    checks.validate_config(config)
    strategy, kind = _strategy_and_kind(config, strategy)
    checks.check_batch_divides(config.train.batch_size, strategy.num_replicas_in_sync, "train_batch_size")
    checks.check_batch_divides(config.eval.batch_size, strategy.num_replicas_in_sync, "eval_batch_size")
    if config.train.deterministic:
        keras.utils.set_random_seed(config.train.seed)
        tf.config.experimental.enable_op_determinism()
    keras.config.set_dtype_policy(tpu.precision_policy(kind, config.runtime.use_bfloat16))
    # Predicting, and exporting published weights, need no data: the class count is the weights'.
    needs_no_data = config.runtime.mode == "predict" or (config.runtime.mode == "export" and external)
    source = None if needs_no_data and not (config.data.data_dir or config.data.dataset) else _open_source(config)
    if source is not None:
        config.model.num_classes = config.model.num_classes or source.num_classes
    config.runtime.model_dir = config.runtime.model_dir or rundir.default_model_dir(config)
    is_chief = inputs.is_chief(strategy)
    log = logs.RunLog(config.runtime.model_dir, enabled=is_chief, progress_seconds=config.runtime.progress_seconds)
    if source is not None and config.runtime.mode in ("train", "train_and_eval"):
        log.message(progress.data_line(config, source))
    for note in notes:
        log.message(note)
    if source is not None:
        _check_counts(config, source, log)
    return RunContext(config=config, strategy=strategy, source=source,
                           num_classes=config.model.num_classes, model_dir=config.runtime.model_dir, log=log,
                           is_chief=is_chief, external_weights=external,
                           jit_compile=tpu.use_xla(kind, config.runtime.jit_compile,
                                                   strategy.num_replicas_in_sync))


@contextlib.contextmanager
def training_session(ctx):
    """What a training command holds from its first write to its last: model_dir's lock (chief) and the SIGTERM
    watcher, through train_and_eval's final evaluation and export. Refused commands write nothing; leftovers
    of killed writes are swept once the lock is ours."""
    if ctx.is_chief:
        checks.check_writable_dir(ctx.model_dir)
    dir_lock = lock.ModelDirLock(ctx.model_dir) if ctx.is_chief else contextlib.nullcontext()
    with dir_lock, preemption.PreemptionWatcher(ctx.strategy) as watcher:
        ctx.resume_changes = rundir.check_resumable(ctx.config, ctx.model_dir, recipe.variant(ctx.config).resolution)
        ctx.log.start_file(f"{ctx.config.runtime.mode} started (pid {os.getpid()})")
        if ctx.is_chief:
            checkpoints.sweep_leftovers(ctx.model_dir, log=ctx.log.message)
        checkpoints.repair_state(checkpoints.checkpoint_dir(ctx), log=ctx.log.message)
        ctx.stop_requested = watcher.requested
        yield


def train(ctx):
    """Trains (resuming from model_dir), selecting the best EMA checkpoint on minival; returns its record.

    Runs inside `training_session`; raises Preempted after the preemption checkpoint is written.
    """
    config = ctx.config
    try:
        schedule = recipe.Schedule.from_config(config, ctx.source.num_examples("train"))
    except ValueError as e:
        raise UserError(str(e)) from None
    resuming = tf.train.latest_checkpoint(checkpoints.checkpoint_dir(ctx)) is not None
    init = config.runtime.init_checkpoint
    if init and resuming:
        ctx.log.message(f"resuming from {ctx.model_dir}; --init_checkpoint {init} is not used again")
    state = state_lib.build_state(config, ctx.num_classes, schedule, ctx.strategy,
                                  init_checkpoint=None if resuming else init, log=ctx.log.message)
    ctx.log.message(f"training {config.model.variant} at {recipe.image_size(config)} px for "
                    f"{schedule.total_steps} steps ({schedule.steps_per_epoch:.2f} per epoch) on "
                    f"{ctx.strategy.num_replicas_in_sync} replica(s); model_dir {ctx.model_dir}")
    return loop.Trainer(ctx, state, schedule).run()


def _final_phase(ctx):
    """train_and_eval after training: the eval split's score of the archived best, then the export.

    Inside the training session: a SIGTERM stops it with Preempted (the final checkpoint is already saved), and
    a rerun after a kill finishes it without a second metrics line for the same evaluation.
    """
    config, summary = ctx.config, {}
    loop.stop_if_requested(ctx)
    if ctx.source.num_examples(config.data.eval_split) > 0:
        summary["final_eval"] = evaluate_weights(ctx, config.data.eval_split, once=True)
    loop.stop_if_requested(ctx)
    if config.runtime.export_dir or config.runtime.export_at_end:
        summary["export_dir"] = export_best(ctx)
    return summary


def evaluate_weights(ctx, split, weights_prefix=None, *, once=False):
    """Evaluates the archived best (or the given checkpoint) on `split`; appends it to metrics.jsonl.

    once: return the record metrics.jsonl already holds for these weights and split instead of evaluating again.
    """
    if ctx.is_chief:  # the record is appended at the end: fail before the work
        checks.check_writable_dir(ctx.model_dir)
    prefix = checkpoints.find_weights(ctx.model_dir, weights_prefix)
    if prefix is None:
        raise UserError(f"no checkpoint to evaluate in {ctx.model_dir} (looked for archive/ and ckpt-N)")
    step = checkpoints.checkpoint_step(prefix)  # only model and EMA are restored here, not the optimizer's step
    best = checkpoints.read_best(ctx.model_dir)
    if best and prefix == checkpoints.archived_prefix(ctx.model_dir):
        step = best["step"]
    name, settings = checkpoints.weights_name(ctx.model_dir, prefix), _eval_settings(ctx)
    # The same evaluation: these weights on this split with the same input (another crop is a new evaluation).
    recorded = once and [r for r in logs.read_metrics(ctx.model_dir) if r["step"] == step and r["split"] == split
                         and r.get("ema") and r.get("weights") == name
                         and all(r.get(key) == value for key, value in settings.items())]
    if recorded:
        ctx.log.message(f"{split} at step {step} is already in metrics.jsonl; not evaluated again")
        return recorded[-1]
    schedule = recipe.Schedule(steps_per_epoch=1, total_steps=0, steps_per_eval=1)
    state = state_lib.build_state(ctx.config, ctx.num_classes, schedule, ctx.strategy)
    _restore_or_user_error(prefix, state.model, state.ema)
    metrics = loop.evaluate(ctx, state, split)
    return ctx.log.evaluation(logs.evaluation_record(step, split, metrics, weights=name, **settings))


def _eval_settings(ctx):
    """What an evaluation record states about the input it scored."""
    return {"image_size": recipe.image_size(ctx.config), "crop_fraction": recipe.crop_fraction(ctx.config)}


def evaluate_external(ctx, split, path):
    """Scores a .h5 file or an original tensorflow/tpu checkpoint as stored on `split`; appends it to metrics.jsonl."""
    if ctx.is_chief:  # the record is appended at the end: fail before the work
        checks.check_writable_dir(ctx.model_dir)
    pretrained.check_num_classes(ctx, path)
    state = pretrained.external_state(ctx, path)
    ctx.log.message(f"evaluating the weights of {path} as stored")
    metrics = loop.evaluate(ctx, state, split)
    if ctx.is_chief and not tf.io.gfile.exists(os.path.join(ctx.model_dir, rundir.CONFIG_FILE)):
        # A training run's config.json is left as it is: eval/export of its checkpoints read their network from it.
        rundir.write_config(ctx.config, ctx.model_dir)
    # ema=False: these are the stored weights, not EMA shadows kept by one of our training runs.
    return ctx.log.evaluation(logs.evaluation_record(0, split, metrics, ema=False, weights=path,
                                                     **_eval_settings(ctx)))


def _restore_or_user_error(prefix, model, ema):
    try:
        checkpoints.restore_weights(prefix, model, ema)
    except (tf.errors.OpError, ValueError, AssertionError, IndexError) as e:
        raise UserError(f"cannot read weights for this model from {prefix}: {first_line(e)}") from None


def _check_writable_parent(path):
    """Fails before any work when the export's parent directory cannot be created."""
    parent = os.path.dirname(os.path.abspath(path)) if "://" not in path else path.rsplit("/", 1)[0]
    try:
        tf.io.gfile.makedirs(parent)
    except (tf.errors.OpError, OSError) as e:
        raise UserError(f"cannot write the export to {path}: {first_line(e)}") from None
    if tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path):
        raise UserError(f"cannot write the export to {path}: it exists and is not a directory")


def export_best(ctx, weights_prefix=None):
    """Exports the archived best (or the given checkpoint) to config.runtime.export_dir."""
    prefix = checkpoints.find_weights(ctx.model_dir, weights_prefix)
    if prefix is None:
        raise UserError(f"no checkpoint to export in {ctx.model_dir} (looked for archive/ and ckpt-N)")
    return _export(ctx, prefix, ctx.num_classes)


def export_external(ctx, path):
    """Exports a .h5 file or an original tensorflow/tpu checkpoint as stored, with its own class count."""
    stored = pretrained.stored_num_classes(path)
    if ctx.num_classes not in (None, stored):
        raise UserError(f"--init_checkpoint {path} has {stored} classes, not {ctx.num_classes}; "
                        "drop --num_label_classes or use the data those weights were trained on")
    return _export(ctx, path, stored)


def _export(ctx, weights, num_classes):
    export_dir = ctx.config.runtime.export_dir or os.path.join(ctx.model_dir, "export")
    if not ctx.is_chief:
        return None
    _check_writable_parent(export_dir)
    try:
        return export.export_saved_model(ctx.config, num_classes, weights, export_dir, source=ctx.source,
                                         log=ctx.log)
    except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError, AssertionError) as e:
        raise UserError(f"cannot export {weights}: {first_line(e)}") from None


def predict_files(ctx, image_files):
    """--mode=predict: the weights of --init_checkpoint (or model_dir's best) on each image file, folder or glob;
    {"predictions": [...], "failed": [(path, error)]}."""
    weights = ctx.config.runtime.init_checkpoint or checkpoints.find_weights(ctx.model_dir)
    if not weights:
        raise UserError("--mode=predict needs --init_checkpoint (a .h5 file or checkpoint) or --model_dir")
    return predict.predict(ctx.config, ctx.source, weights, list(image_files),
                           top_k=ctx.config.runtime.predict_top_k, output=ctx.config.runtime.predict_output)


def _train_mode(ctx, image_files):
    """train / train_and_eval: training, then (train_and_eval) the final evaluation and export, all inside the
    training session (lock, SIGTERM handling)."""
    del image_files
    with training_session(ctx):
        summary = {"best": train(ctx)}
        if ctx.config.runtime.mode == "train_and_eval":
            summary.update(_final_phase(ctx))
    return summary


def _eval_mode(ctx, image_files):
    """eval: published weights as stored, a sidecar beside a training job, or the run's best once. A SIGTERM or
    Ctrl-C stops it between batches (Preempted, saved=False): a rerun redoes only what metrics.jsonl lacks."""
    del image_files
    with preemption.PreemptionWatcher(ctx.strategy) as watcher:
        ctx.stop_requested = watcher.requested
        return _evaluate_mode(ctx)


def _evaluate_mode(ctx):
    split = ctx.config.data.eval_split
    if ctx.external_weights:
        return {"weights": ctx.external_weights, "final_eval": evaluate_external(ctx, split, ctx.external_weights)}
    if sidecar.is_sidecar(ctx.config):  # beside a training job: every checkpoint, then the best once at the end
        finished = sidecar.Sidecar(ctx).run()
        if finished and ctx.source.num_examples(split) > 0:  # once: a restarted eval job adds no second line
            return {"final_eval": evaluate_weights(ctx, split, once=True)}
        return {}
    return {"final_eval": evaluate_weights(ctx, split, ctx.config.runtime.init_checkpoint)}


def _export_mode(ctx, image_files):
    del image_files
    with preemption.PreemptionWatcher(ctx.strategy, immediate=True):  # its files appear by rename
        return _export_weights(ctx)


def _export_weights(ctx):
    if ctx.external_weights:
        return {"export_dir": export_external(ctx, ctx.external_weights)}
    return {"export_dir": export_best(ctx, ctx.config.runtime.init_checkpoint)}


def _predict_mode(ctx, image_files):
    with preemption.PreemptionWatcher(ctx.strategy, immediate=True):
        return predict_files(ctx, image_files)


# --mode -> what it runs after `setup`; each returns its part of the run's summary.
MODE_HANDLERS = {"train": _train_mode, "train_and_eval": _train_mode, "eval": _eval_mode, "export": _export_mode,
                 "predict": _predict_mode}


def run(config, strategy=None, image_files=(), user_fields=()):
    """Runs config.runtime.mode; returns a summary dict (also printed as the final line, except for predict,
    which prints its own).

    image_files: the files to classify with --mode=predict (main.py's positional arguments).
    user_fields: the "section.field" names set on the command line (see `setup`).
    """
    if sidecar.is_sidecar(config) and not sidecar.wait_for_run(config):
        raise UserError(f"no training run appeared in {config.runtime.model_dir} within --eval_timeout "
                        f"{config.eval.timeout_seconds} s")
    ctx = setup(config, strategy, user_fields)
    mode = config.runtime.mode
    try:
        summary = {"mode": mode, "model_dir": ctx.model_dir, **MODE_HANDLERS[mode](ctx, image_files)}
    finally:
        ctx.log.close()  # an error line after a run cut short starts on a line of its own
    if mode != "predict":
        ctx.log.message(final_line(summary))
    return summary


def final_line(summary):
    parts = [f"done: {summary['mode']}"]
    best = summary.get("best")
    if best:
        parts.append(f"best {best['split']} top-1 {best['top_1']:.4f} at step {best['step']}")
    final = summary.get("final_eval")
    if final:
        weights = f"weights of {summary['weights']}" if summary.get("weights") else "EMA weights"
        parts.append(f"{final['split']} top-1 {final['top_1']:.4f} ({weights})")
    if summary.get("export_dir"):
        parts.append(f"SavedModel in {summary['export_dir']}")
    parts.append(f"model_dir {summary['model_dir']}")
    return "; ".join(parts)
