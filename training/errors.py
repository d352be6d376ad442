"""Errors that are the user's to fix (main.py prints their one-line message and exits with status 2), and the
one-line reports of faults in the environment (a full disk, a bad --config file, TensorFlow's start-up noise).

No TensorFlow import here: main.py uses this module before TensorFlow loads.
"""

import contextlib
import errno
import os
import re
import sys
import tempfile


def first_line(error):
    """The first line of an exception's message (library messages can run to pages: TFDS lists every dataset
    it knows), or its type name when it has no message."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class UserError(Exception):
    """A bad flag, config value, path or file: reported as one line, exit status 2, nothing written."""


class NumericalError(RuntimeError):
    """The loss became NaN or Inf; the last good checkpoint is kept as it was."""


# sysexits.h EX_TEMPFAIL ("try again later"): job restarters can tell a preemption from success (0),
# user errors (2) and numerical failures (3).
PREEMPTED_EXIT_CODE = 75
# Ctrl-C: the shells' status for a process ended by SIGINT (128 + 2).
INTERRUPTED_EXIT_CODE = 130


class Preempted(Exception):
    """Raised after the checkpoint of a preempted run (SIGTERM) is safely written, or, with saved=False, when an
    eval/export/predict command stops (its finished evaluations are in metrics.jsonl; nothing is half-written).

    interrupted: the signal was SIGINT (Ctrl-C), set by training/session/preemption.py; exit status 130 instead of 75.
    """

    def __init__(self, step, checkpoint_path, saved=True):
        super().__init__(step, checkpoint_path)
        self.step, self.checkpoint_path, self.saved = step, checkpoint_path, saved
        self.interrupted = False

    def __str__(self):
        cause = "interrupted" if self.interrupted else "preempted"
        if self.saved:
            return (
                f"{cause}: checkpoint at step {self.step} saved to {self.checkpoint_path}; rerun the same "
                "command to resume"
            )
        return f"{cause}: stopped before finishing; rerun the same command (what is in metrics.jsonl is not redone)"

    @property
    def exit_code(self):
        return INTERRUPTED_EXIT_CODE if self.interrupted else PREEMPTED_EXIT_CODE


def config_file_error(error):
    """One line for a --config file that cannot be loaded: missing (ml_collections reports it as an OSError
    whose cause names the file) or not Python."""
    if isinstance(error, SyntaxError):
        return f"--config {error.filename}: {error.msg} at line {error.lineno}"
    lines = [line.strip() for line in str(error.__cause__ or error).splitlines() if line.strip()]
    return f"cannot load --config: {lines[-1] if lines else type(error).__name__}"


# What TensorFlow prints to stderr while it loads, before its logging is configured (TF_CPP_MIN_LOG_LEVEL does
# not reach these): oneDNN and CPU-feature notices, and the CUDA probes of a machine without GPUs.
_STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|\] oneDNN custom operations are on"
    r"|cudart_stub\.cc|cpu_feature_guard\.cc|^To enable the following instructions"
    r"|cuda_platform\.cc:\d+\] failed call to cuInit|Unable to register cu(DNN|FFT|BLAS)"
    r"|cuda_(dnn|fft|blas)\.cc|computation_placer\.cc"
)
# Disk full, read-only or permission-denied writes: one line, not a traceback (any other OSError is a bug).
_ENVIRONMENT_FAULTS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def environment_fault(error, tf):
    """One line for a full or read-only disk or an unreachable gs:// bucket (nothing to debug in our code), None
    for any other error (a bug: its traceback stays). Device memory exhaustion is a ResourceExhaustedError too;
    its first line says "OOM"."""
    if isinstance(error, OSError):
        if error.errno not in _ENVIRONMENT_FAULTS:
            return None
        return f"{error.strerror}: {error.filename}" if error.filename else first_line(error)
    network = isinstance(error, tf.errors.FailedPreconditionError) and "Error executing an HTTP request" in str(error)
    if not network and not isinstance(
        error, (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError, tf.errors.UnavailableError)
    ):
        return None
    text = " ".join(line.strip() for line in error.message.splitlines() if line.strip())
    # Without the graph-function prefix and op suffix of eager errors: "{{function_node ...}} PATH; No space
    # left on device [Op:SaveV2]" -> "PATH; No space left on device".
    return re.sub(r"\s*\[Op:\w+\]$", "", re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", text))


@contextlib.contextmanager
def startup_lines_filtered(noise=None):
    """Captures file descriptor 2 while TensorFlow loads (or the body runs) and writes back every line but the
    notices `noise` matches (default: TensorFlow's start-up notices): a real error still shows."""
    noise = noise or _STARTUP_NOISE
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not noise.search(line):
                    sys.stderr.write(line)
            sys.stderr.flush()
