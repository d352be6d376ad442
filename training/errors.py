"""Errors that are the user's to fix. main.py prints their one-line message and exits with status 2."""


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


class Preempted(Exception):
    """Raised after the checkpoint of a preempted run (SIGTERM) is safely written."""

    def __init__(self, step, checkpoint_path):
        super().__init__(f"preempted: checkpoint at step {step} saved to {checkpoint_path}; "
                         f"rerun the same command to resume")
        self.step = step
        self.checkpoint_path = checkpoint_path
