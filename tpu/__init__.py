"""Hardware set-up: the tf.distribute strategy, the precision policy and XLA on/off (see tpu/strategy.py)."""

from tpu.strategy import (
    TPUUnreachableError,
    device_kind,
    loss_scaled,
    precision_policy,
    resolve_strategy,
    use_xla,
)

__all__ = [
    "TPUUnreachableError",
    "device_kind",
    "loss_scaled",
    "precision_policy",
    "resolve_strategy",
    "use_xla",
]
