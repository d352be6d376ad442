"""Preemption: SIGTERM asks the run to checkpoint at the next host-loop boundary and exit with status 75; a
first Ctrl-C (SIGINT) does the same with status 130, a second one exits at once.

Cloud TPU, GKE and most schedulers send SIGTERM before killing a job. Python runs signal handlers only
between bytecodes of the main thread, so the request is seen when the current host call (iterations_per_loop
steps) returns; the loop then saves a checkpoint and main.py exits with PREEMPTED_EXIT_CODE (75, EX_TEMPFAIL
in sysexits.h: "try again later"), which job restarters can tell apart from success (0), user errors (2) and
numerical failures (3). Under multi-worker strategies the workers agree through an all-reduce of their flags,
so every worker stops after the same step and writes the same checkpoint.
"""

import os
import signal
import sys

import tensorflow as tf

from training.errors import INTERRUPTED_EXIT_CODE, Preempted

# SIGINT (Ctrl-C) is handled as SIGTERM is, except that a second one exits at once (status 130): like a kill,
# it costs at most the steps since the last checkpoint.
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class PreemptionWatcher:
    """Catches SIGTERM and SIGINT and answers `requested()` for all workers together.

    immediate: raise Preempted(saved=False) from the handler instead (export and predict, whose writes are
    temporaries renamed into place, have no step boundary to wait for).
    """

    def __init__(self, strategy, signals=SIGNALS, immediate=False):
        self._strategy = strategy
        self._local_request = False
        self._signum = None
        self._immediate = immediate
        self._previous = {}
        self._signals = signals
        self._agree = None
        if strategy.extended._in_multi_worker_mode():  # pylint: disable=protected-access
            self._agree = tf.function(self._all_reduce_flag)

    def __enter__(self):
        for sig in self._signals:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, exc_type, exc, traceback):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if isinstance(exc, Preempted) and self._signum == signal.SIGINT:
            exc.interrupted = True
        return False

    def _on_signal(self, signum, frame):
        del frame
        if self._signum == signal.SIGINT and signum == signal.SIGINT:
            print(
                "interrupted again: exiting at once (a rerun resumes from the last checkpoint)",
                file=sys.stderr,
                flush=True,
            )
            os._exit(INTERRUPTED_EXIT_CODE)  # pylint: disable=protected-access  (no teardown: it can hang in TF)
        self._signum = self._signum or signum
        self._local_request = True
        if self._immediate:
            error = Preempted(0, None, saved=False)
            error.interrupted = signum == signal.SIGINT
            raise error
        what = "Ctrl-C" if signum == signal.SIGINT else f"signal {signum}"
        again = "; Ctrl-C again exits at once" if signum == signal.SIGINT else ""
        print(
            f"received {what}: stopping at the next step boundary (a training run saves a checkpoint there){again}",
            flush=True,
        )

    def _all_reduce_flag(self, flag):
        per_replica = self._strategy.run(lambda: tf.identity(flag))
        return self._strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def requested(self):
        """True when any worker received the signal (a collective call under multi-worker strategies)."""
        if self._agree is None:
            return self._local_request
        return float(self._agree(tf.constant(float(self._local_request)))) > 0
