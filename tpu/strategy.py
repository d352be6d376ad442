"""Picks the tf.distribute strategy, the precision policy and whether to compile with XLA.

One small decision table, so that the same training command runs on a Cloud TPU, a multi-worker cluster,
a GPU box or a laptop:

| situation                         | strategy                       | precision default | XLA default |
|-----------------------------------|--------------------------------|-------------------|-------------|
| --tpu=NAME / grpc://h:p / local   | TPUStrategy                    | mixed_bfloat16    | on          |
| TF_CONFIG in the environment      | MultiWorkerMirroredStrategy    | by device (below) | off         |
| two or more local GPUs            | MirroredStrategy               | by device (below) | off         |
| one GPU                           | the default strategy           | by device (below) | on          |
| otherwise                         | the default strategy           | float32 on CPU    | off on CPU  |

Precision by device (`default_precision`), unless --precision (or the original's --use_bfloat16) sets it:
TPUs and GPUs of compute capability 8.0 or more (Ampere on, which have bfloat16 tensor cores) run
mixed_bfloat16; GPUs of 7.x (Volta, Turing: float16 tensor cores only) run mixed_float16 with dynamic loss
scaling (efficientnet/optim.py LossScaleOptimizer); older GPUs, which have no tensor cores and which Keras' own
mixed-precision check warns will run slowly in float16, and CPUs run float32. With several GPUs the oldest
decides.

XLA is off on CPU because it is 3.5-20x slower than plain TF for this model there (docs/recipe.md §7). It is off
for Mirrored strategies with several local replicas because a jit_compile'd step inside MirroredStrategy.run
fails there ("Trying to access resource .../replica_1/... from device ...", measured on 2 logical CPUs with
TF 2.21); TPUStrategy compiles the whole step with XLA by itself.
"""

import json
import os
import socket
import urllib.parse

import tensorflow as tf

# How long we wait for a TPU worker's port before declaring it unreachable. Connecting to an address that
# does not answer otherwise hangs for minutes inside TF's gRPC layer (measured here).
TPU_CONNECT_TIMEOUT_S = 10.0


class TPUUnreachableError(RuntimeError):
    """The TPU named by the user cannot be reached or initialized."""


def _check_reachable(master, timeout_s):
    """Raises TPUUnreachableError unless a TCP connection to grpc://host:port opens within timeout_s."""
    parsed = urllib.parse.urlparse(master)
    if parsed.scheme != "grpc" or not parsed.hostname or not parsed.port:
        return
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=timeout_s):
            pass
    except OSError as e:
        raise TPUUnreachableError(
            f"TPU worker {master} is not reachable within {timeout_s:.0f} s ({e}); "
            "check --tpu and that the TPU is READY"
        ) from None


def _tpu_strategy(tpu, timeout_s, zone=None, project=None):
    """Connects to and initializes the TPU system named by `tpu`; returns a TPUStrategy.

    zone/project locate a TPU given by name through the Cloud TPU API (the original's --tpu_zone and
    --gcp_project); None lets the resolver read them from the VM's metadata.
    """
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu, zone=zone, project=project)
    except Exception as e:  # The Cloud TPU API lookup of a name raises URLError, ValueError, HttpError, ...
        raise TPUUnreachableError(f"cannot resolve TPU {tpu!r}: {e}") from None
    if tpu != "local":
        _check_reachable(resolver.master(), timeout_s)
    try:
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (tf.errors.NotFoundError, tf.errors.UnavailableError, tf.errors.InvalidArgumentError) as e:
        first_sentence = str(e).strip().splitlines()[0].split(". ")[0].rstrip(".")
        raise TPUUnreachableError(f"cannot initialize TPU {tpu!r}: {first_sentence}") from None
    return tf.distribute.TPUStrategy(resolver)


def resolve_strategy(tpu=None, *, timeout_s=TPU_CONNECT_TIMEOUT_S, zone=None, project=None):
    """Returns the strategy for this process following the table in the module docstring."""
    if tpu:
        return _tpu_strategy(tpu, timeout_s, zone=zone, project=project)
    if os.environ.get("TF_CONFIG"):
        try:
            json.loads(os.environ["TF_CONFIG"])
        except ValueError:
            raise ValueError("TF_CONFIG is set but is not valid JSON") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def device_kind(strategy):
    """'tpu', 'gpu' or 'cpu': the kind of device the strategy's replicas run on."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    # Every non-TPU strategy here places replicas on all local GPUs when there are any.
    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"


def gpu_compute_capability():
    """The lowest (major, minor) compute capability of this host's GPUs; None without GPUs (or without the
    figure, which only CUDA devices report)."""
    found = [
        tf.config.experimental.get_device_details(gpu).get("compute_capability")
        for gpu in tf.config.list_physical_devices("GPU")
    ]
    found = [tuple(c) for c in found if c]
    return min(found) if found else None


def default_precision(kind, compute_capability=None):
    """The precision a run on `kind` ('tpu', 'gpu', 'cpu') trains in unless set (the table in the docstring)."""
    if kind == "tpu":  # the original's TPU default (docs/recipe.md §5)
        return "mixed_bfloat16"
    if kind == "gpu" and compute_capability is not None:
        if compute_capability >= (8, 0):
            return "mixed_bfloat16"
        if compute_capability >= (7, 0):
            return "mixed_float16"
    return "float32"


def precision_policy(kind, precision=None, compute_capability=None):
    """The Keras dtype policy name of a run: `precision` when the command sets one, else `default_precision`.
    compute_capability: the GPUs' lowest (gpu_compute_capability()); read here when None on a GPU."""
    if precision is not None:
        return precision
    if kind == "gpu" and compute_capability is None:
        compute_capability = gpu_compute_capability()
    return default_precision(kind, compute_capability)


def loss_scaled(precision):
    """Whether a run in `precision` scales its loss (float16's range underflows small gradients)."""
    return precision == "mixed_float16"


def use_xla(kind, jit_compile=None, num_replicas=1):
    """Whether to compile the train step with XLA, following the table in the module docstring."""
    if jit_compile is None:
        return kind == "tpu" or (kind == "gpu" and num_replicas == 1)
    return bool(jit_compile)
