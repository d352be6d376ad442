"""The distributed input of a run: which worker this process is, the training batches it feeds its replicas
(checkpointable where tf.distribute allows), and the padded eval dataset.

The pipeline itself is data/pipeline.py; its settings are the run plan's (training/core/recipe.py).
"""

import contextlib
import dataclasses

import tensorflow as tf

from data import pipeline
from training.core import recipe
from training.errors import UserError, first_line


def input_options():
    return tf.distribute.InputOptions(experimental_fetch_to_device=True)


@contextlib.contextmanager
def bad_records_as_user_error():
    """The pipeline's bad-record stop (e.g. labels beyond --num_label_classes in an eval split) as a one-line
    UserError without TF's node prefix; any other error passes as it is."""
    try:
        yield
    except tf.errors.InvalidArgumentError as e:
        text = str(e)
        if "Too many bad records" not in text:
            raise
        raise UserError(first_line(text[text.index("Too many bad records") :]).rstrip("]")) from None


def _train_dataset_fn(ctx, seed):
    def dataset_fn(input_context, batch_size):
        return pipeline.make_dataset(
            ctx.source,
            "train",
            ctx.plan.train_input,
            batch_size=batch_size,
            seed=seed,
            input_context=input_context,
            num_classes=ctx.num_classes,
        )

    return dataset_fn


def augmented_sample(ctx, count, step):
    """`count` training images as the train step sees them (augmented), from a pipeline of their own with a
    small shuffle buffer (filling the run's 10,000-record buffer would take long on ImageNet). Augmented on the
    host even when the run augments on the device: the same images."""
    settings = dataclasses.replace(ctx.plan.train_input, shuffle_buffer=count, augment_on_device=False)
    dataset = pipeline.make_dataset(
        ctx.source,
        "train",
        settings,
        batch_size=count,
        seed=ctx.config.train.seed + step,
        num_classes=ctx.num_classes,
        num_batches=1,
    )
    return next(iter(dataset))["images"].numpy()


def is_chief(strategy):
    """Whether this process writes model_dir (metrics, archive, export): worker 0 of the cluster (the "chief" task
    when there is one), and always the TPU host program."""
    return isinstance(strategy, tf.distribute.TPUStrategy) or worker_index_and_count(strategy)[0] == 0


def worker_index_and_count(strategy):
    """(this worker's index, the number of workers) in the cluster, the chief first; (0, 1) on one machine."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return 0, 1
    spec = resolver.cluster_spec().as_dict()
    has_chief = "chief" in spec
    count = len(spec.get("chief", ())) + len(spec.get("worker", ()))
    index = resolver.task_id + (1 if has_chief and resolver.task_type == "worker" else 0)
    return index, count


class HostBatches:
    """Feeds one tf.data iterator per worker to its local replicas, each taking an equal slice of a batch.

    tf.distribute's own distributed iterators cannot be checkpointed (TF 2.21), a plain iterator can: with it
    the checkpoint holds the exact input position (shuffle buffers included), so a deterministic run resumes
    with exactly the batches it would have seen. Every replica's slice is what distribute_datasets_from_function
    would have given it (consecutive per-replica batches of the same pipeline).
    """

    def __init__(self, strategy, iterator, local_replicas):
        self.strategy, self.iterator, self.local_replicas = strategy, iterator, local_replicas

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self.iterator)
        size = batch["labels"].shape[0] // self.local_replicas

        def replica_slice(value_context):
            i = value_context.replica_id_in_sync_group % self.local_replicas
            return {key: value[i * size : (i + 1) * size] for key, value in batch.items()}

        return self.strategy.experimental_distribute_values_from_function(replica_slice)


def train_batches(ctx, resume_step=0, restart_input=False):
    """(batches to pass to the train loop, the iterator to checkpoint or None).

    restart_input: the checkpoint's input position is not used (a resume changed the input settings): the
    pipeline is reseeded with resume_step, as on TPU.

    On TPU the batches come from distribute_datasets_from_function, which feeds the device infeed; its
    iterator is not checkpointable, so a TPU run resumes at the right step, learning rate and EMA state but
    not at the exact input position: its input order is reseeded with the step it resumes from, so it does not
    replay the examples it started with. Everywhere else a plain per-worker iterator feeds the replicas.
    """
    strategy, global_batch = ctx.strategy, ctx.config.train.batch_size
    if isinstance(strategy, tf.distribute.TPUStrategy):
        dataset_fn = _train_dataset_fn(ctx, ctx.config.train.seed + resume_step)
        distributed = strategy.distribute_datasets_from_function(
            lambda ic: dataset_fn(ic, ic.get_per_replica_batch_size(global_batch)), input_options()
        )
        return iter(distributed), None
    index, count = worker_index_and_count(strategy)
    replicas = strategy.num_replicas_in_sync
    input_context = tf.distribute.InputContext(
        num_input_pipelines=count, input_pipeline_id=index, num_replicas_in_sync=replicas
    )
    seed = ctx.config.train.seed + (resume_step if restart_input else 0)
    dataset = _train_dataset_fn(ctx, seed)(input_context, global_batch // count)
    if pipeline.has_py_function(dataset):
        # Python-generated sources (tfds.testing.mock_data, from_generator) cannot be checkpointed: resume
        # as on TPU, reseeded by the restored step.
        dataset = _train_dataset_fn(ctx, ctx.config.train.seed + resume_step)(input_context, global_batch // count)
        return HostBatches(strategy, iter(dataset), replicas // count), None
    iterator = iter(dataset)
    return HostBatches(strategy, iterator, replicas // count), iterator


def eval_dataset(ctx, split):
    """The distributed eval dataset of `split`: every example once, padded so all replicas run equal steps."""
    config, strategy = ctx.config, ctx.strategy
    num_steps = recipe.eval_steps(ctx.source.num_examples(split), config.eval.batch_size)

    def dataset_fn(input_context):
        local_replicas = strategy.num_replicas_in_sync // input_context.num_input_pipelines
        return pipeline.make_dataset(
            ctx.source,
            split,
            ctx.plan.eval_input,
            batch_size=input_context.get_per_replica_batch_size(config.eval.batch_size),
            input_context=input_context,
            num_batches=num_steps * local_replicas,
            num_classes=ctx.num_classes,
        )

    return strategy.distribute_datasets_from_function(dataset_fn, input_options())
