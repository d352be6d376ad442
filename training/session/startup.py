"""A run's set-up: the config checked and completed, the strategy, precision and data source, and the frozen
plan and RunContext (training/core/context.py) every stage shares; and the training session, what a training
command holds from its first write to its last.
"""

import contextlib
import dataclasses
import os

import keras
import tensorflow as tf

import tpu
from configs import base
from data import demo as demo_data
from data import sources
from training import checks, preflight
from training.core import context, inputs, recipe
from training.errors import UserError, first_line
from training.serving import scoring
from training.session import preemption, sidecar
from training.store import checkpoints, lock, logs, progress, rundir


def _strategy_and_kind(config, strategy=None):
    if strategy is None:
        try:
            strategy = tpu.resolve_strategy(
                config.runtime.tpu, zone=config.runtime.tpu_zone, project=config.runtime.gcp_project
            )
        except (tpu.TPUUnreachableError, ValueError) as e:
            raise UserError(str(e)) from None
    return strategy, tpu.device_kind(strategy)


def _open_source(config, mode):
    try:
        source = sources.get_source(
            config.data.data_dir,
            config.data.dataset,
            holdout_shards=config.data.holdout_shards,
            include_background=config.data.include_background,
            cache_dir=config.data.cache_dir,
            tfds_data_dir=config.data.tfds_data_dir,
            holdout_fraction=config.data.holdout_fraction if config.data.dataset or config.data.data_dir else None,
            num_classes=config.model.num_classes if config.data.data_dir else None,
        )
        # The split the mode reads first, so that unreadable data fails here and not after minutes of work.
        # AssertionError: TFDS asserts that a dataset was prepared (download_and_prepare) before reading it.
        if mode.first_split:
            source.num_examples(config.data.eval_split if mode.first_split == "eval" else mode.first_split)
        return source
    except (ValueError, FileNotFoundError, AssertionError) as e:
        raise UserError(first_line(e)) from None


def _check_counts(config, mode, source, log):
    """The original's --num_train_images/--num_eval_images, when given, are checked against the records counted:
    epochs here always count the actual records (train + minival is the original's num_train_images)."""
    for given, splits, flag in (
        (config.data.num_train_images, ("train", "minival"), "num_train_images"),
        (config.data.num_eval_images, ("validation",), "num_eval_images"),
    ):
        if given is not None and mode.first_split:
            counted = sum(source.num_examples(split) for split in splits)
            if counted != given:
                log.message(
                    f"warning: --{flag}={given} but the data has {counted} ({' + '.join(splits)}); "
                    f"using the {counted} records"
                )


def _check_stored_run(config, mode, external, user_fields):
    """eval/export need a training run in model_dir (or published weights); returns the notes of the settings
    taken from the run's config.json (training/store/rundir.py `inherit_run_settings`)."""
    if mode.needs_run and not external:
        if not config.runtime.model_dir:
            raise UserError(f"--mode={config.runtime.mode} needs --model_dir (the directory of a training run)")
        if not config.runtime.init_checkpoint and not rundir.holds_trained_network(config.runtime.model_dir):
            raise UserError(
                f"no training run to {config.runtime.mode} in {config.runtime.model_dir} "
                f"(no {rundir.CONFIG_FILE} with a checkpoint)"
            )
    if external or not mode.scores_stored:
        return []
    return rundir.inherit_run_settings(config, user_fields, needs_data=mode.needs_data)


def _precision_line(precision, kind, chosen_by_device):
    scaling = " with dynamic loss scaling" if tpu.loss_scaled(precision) else ""
    origin = f"the {kind.upper()}'s default; --precision overrides" if chosen_by_device else "as set"
    return f"precision: {precision}{scaling} ({origin})"


def setup(config, strategy=None, user_fields=()):
    """Validates and completes the config, and builds the plan and RunContext (strategy, precision, data
    source, model_dir).

    `strategy` replaces the one tpu.resolve_strategy would pick (tests use MirroredStrategy this way).
    user_fields: the "section.field" names set on the command line (they win over a run's config.json).
    """
    checks.validate_config(config)
    mode = base.MODE_TABLE[config.runtime.mode]
    external = scoring.external_weights(config) if mode.scores_stored else None
    # Published weights have the network the flags name, at the variant's resolution unless one is given.
    notes = _check_stored_run(config, mode, external, user_fields)
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
    requested = checks.requested_precision(config.runtime)
    # Written resolved (config.json records what the run trained in; a resume compares it, rundir.py).
    config.runtime.precision = tpu.precision_policy(kind, requested)
    keras.config.set_dtype_policy(config.runtime.precision)
    # Exporting published weights needs no data either: the class count is the weights'.
    needs_data = mode.needs_data and not (external and mode.first_split is None)
    source = _open_source(config, mode) if needs_data or config.data.data_dir or config.data.dataset else None
    if source is not None:
        config.model.num_classes = config.model.num_classes or source.num_classes
    config.runtime.model_dir = config.runtime.model_dir or preflight.default_model_dir(config)
    if mode.trains and config.eval.in_training is None:  # written resolved: an eval job reads it (sidecar.py)
        config.eval.in_training = mode.evaluates_in_training
    is_chief = inputs.is_chief(strategy)
    log = logs.RunLog(config.runtime.model_dir, enabled=is_chief, progress_seconds=config.runtime.progress_seconds)
    if source is not None and mode.trains:
        log.message(progress.data_line(config, source))
    for note in notes:
        log.message(note)
    if config.runtime.precision != "float32" and mode.trains:
        log.message(_precision_line(config.runtime.precision, kind, chosen_by_device=requested is None))
    if source is not None:
        _check_counts(config, mode, source, log)
    plan = recipe.make_plan(
        config,
        source=source,
        strategy=strategy,
        jit_compile=tpu.use_xla(kind, config.runtime.jit_compile, strategy.num_replicas_in_sync),
        follows_training=sidecar.is_sidecar(config),
    )
    return context.RunContext(
        plan=plan, strategy=strategy, source=source, log=log, is_chief=is_chief, external_weights=external
    )


@contextlib.contextmanager
def training_session(ctx):
    """What a training command holds from its first write to its last: model_dir's lock (chief) and the SIGTERM
    watcher, through train_and_eval's final evaluation and export. Yields the context to run with (its stop
    request and resume changes set). Refused commands write nothing; leftovers of killed writes are swept once
    the lock is ours."""
    if ctx.is_chief:
        checks.check_writable_dir(ctx.model_dir)
    dir_lock = lock.ModelDirLock(ctx.model_dir) if ctx.is_chief else contextlib.nullcontext()
    with dir_lock, preemption.PreemptionWatcher(ctx.strategy) as watcher:
        changes = rundir.check_resumable(ctx.config, ctx.model_dir, ctx.plan.network.variant.resolution)
        ctx.log.start_file(f"{ctx.config.runtime.mode} started (pid {os.getpid()})")
        if ctx.is_chief:
            checkpoints.sweep_leftovers(ctx.model_dir, log=ctx.log.message)
        checkpoints.repair_state(ctx.checkpoint_dir, log=ctx.log.message)
        yield dataclasses.replace(ctx, stop_requested=watcher.requested, resume_changes=tuple(changes))


@contextlib.contextmanager
def watched(ctx, immediate=False):
    """The SIGTERM/Ctrl-C watcher of a mode that trains nothing; yields the context that sees its requests.
    immediate: stop at once (export and predict write by rename, nothing is lost)."""
    with preemption.PreemptionWatcher(ctx.strategy, immediate=immediate) as watcher:
        yield dataclasses.replace(ctx, stop_requested=watcher.requested)
