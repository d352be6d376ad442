"""Preemption: SIGTERM asks the run to checkpoint at the next host-loop boundary and exit with status 75.

Cloud TPU, GKE and most schedulers send SIGTERM before killing a job. Python runs signal handlers only
between bytecodes of the main thread, so the request is seen when the current host call (iterations_per_loop
steps) returns; the loop then saves a checkpoint and main.py exits with PREEMPTED_EXIT_CODE (75, EX_TEMPFAIL
in sysexits.h: "try again later"), which job restarters can tell apart from success (0), user errors (2) and
numerical failures (3). Under multi-worker strategies the workers agree through an all-reduce of their flags,
so every worker stops after the same step and writes the same checkpoint.
"""
import signal

import tensorflow as tf


class PreemptionWatcher:
    """Catches SIGTERM (and optionally SIGINT) and answers `requested()` for all workers together."""

    def __init__(self, strategy, signals=(signal.SIGTERM,)):
        self._strategy = strategy
        self._local_request = False
        self._previous = {}
        self._signals = signals
        self._agree = None
        if strategy.extended._in_multi_worker_mode():  # pylint: disable=protected-access
            self._agree = tf.function(self._all_reduce_flag)

    def __enter__(self):
        for sig in self._signals:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False

    def _on_signal(self, signum, frame):
        del frame
        print(f"received signal {signum}: saving a checkpoint at the next step boundary", flush=True)
        self._local_request = True

    def _all_reduce_flag(self, flag):
        per_replica = self._strategy.run(lambda: tf.identity(flag))
        return self._strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def requested(self):
        """True when any worker received the signal (a collective call under multi-worker strategies)."""
        if self._agree is None:
            return self._local_request
        return float(self._agree(tf.constant(float(self._local_request)))) > 0
