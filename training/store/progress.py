"""What a person watching a run sees: one status line updated in place on a terminal, plain lines at a steady
interval elsewhere (a log file, nohup on a TPU VM), and the time left, evaluations and export included.

A terminal gets every host loop's figures in the status line and "still ..." heartbeats in the same line; a
stream that is not a terminal gets a progress line at most every `interval_seconds` (and always the run's last
step), and a heartbeat only after a minute without any line.
"""

import time

from configs import base

HEARTBEAT_SECONDS_NOT_A_TERMINAL = 60.0


def format_duration(seconds):
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def is_terminal(stream):
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Display:
    """Writes messages (each a line of its own) and a status line (in place on a terminal, else throttled).

    interval_seconds: on a non-terminal stream, the least time between two progress lines (0: every one).
    """

    def __init__(self, stream, interval_seconds, *, terminal=None, clock=time.monotonic):
        self._stream = stream
        self._terminal = is_terminal(stream) if terminal is None else terminal
        self._interval = interval_seconds
        self._clock = clock
        self._status = ""  # the status line shown on the terminal, redrawn after each message
        self._last_line = None  # when a non-terminal stream last got a progress line
        self._last_write = None  # when a line was last written (a heartbeat follows a silent minute only)

    @property
    def terminal(self):
        return self._terminal

    def message(self, text):
        """A line that stays: on a terminal above the status line, which is drawn again below it."""
        if self._terminal:  # the line may hold the status or a heartbeat: erased first
            self._stream.write("\r\x1b[K" + text + "\n" + self._status)
        else:
            self._stream.write(text + "\n")
        self._stream.flush()
        self._last_write = self._clock()

    def status(self, text, *, force=False):
        """The progress line; returns True when it was written as a line of its own (a non-terminal stream),
        which is what train.log keeps too."""
        if self._terminal:
            self._status = text
            self._stream.write("\r\x1b[K" + text)
            self._stream.flush()
            return False
        now = self._clock()
        if force or self._last_line is None or now - self._last_line >= self._interval:
            self._last_line = now
            self.message(text)
            return True
        return False

    def heartbeat(self, text):
        """A "still ..." notice: in the status line on a terminal, else a line after a minute without any;
        returns True when it was a line of its own."""
        if self._terminal:
            self._stream.write("\r\x1b[K" + (self._status + "  " if self._status else "") + text)
            self._stream.flush()
            return False
        now = self._clock()
        if self._last_write is None or now - self._last_write >= HEARTBEAT_SECONDS_NOT_A_TERMINAL:
            self.message(text)
            return True
        return False

    def end_status(self):
        """Leaves the status line as the last line on the terminal (before a final message or exit)."""
        if self._terminal and self._status:
            self._stream.write("\n")
            self._stream.flush()
            self._status = ""


# Until an evaluation has been timed, an evaluated image is taken to cost a third of a trained one: a forward
# pass against forward plus backward (about twice the forward), the usual rule of thumb for convolutional nets.
EVAL_COST_PER_TRAIN_IMAGE = 1.0 / 3.0


class Eta:
    """The time a training run has left: the steps at the mean speed of this process's traced calls, plus the
    remaining evaluations (timed after the first one, estimated from the training speed before), plus the
    final evaluation and the export (estimated as the first call's tracing time per traced function)."""

    def __init__(self, *, batch_size, eval_images, evals_left, final_eval_images, export_traces):
        self._batch_size = batch_size
        self._eval_images = eval_images  # images per in-training evaluation
        self._evals_left = evals_left  # function(step) -> in-training evaluations after `step`
        self._final_eval_images = final_eval_images  # 0: no final evaluation
        self._export_traces = export_traces  # traced functions of the export (0: no export)
        self._train_steps, self._train_seconds = 0, 0.0
        self._eval_seconds_per_image = None
        self._trace_seconds = None

    def traced(self, seconds):
        self._trace_seconds = seconds if self._trace_seconds is None else self._trace_seconds

    def trained(self, steps, seconds):
        self._train_steps += steps
        self._train_seconds += seconds

    def evaluated(self, images, seconds):
        if images:
            self._eval_seconds_per_image = seconds / images

    def seconds_per_step(self):
        return self._train_seconds / self._train_steps if self._train_steps else None

    def seconds_left(self, step, total_steps):
        """None until a call free of tracing has been timed."""
        per_step = self.seconds_per_step()
        if per_step is None:
            return None
        per_eval_image = self._eval_seconds_per_image or per_step / self._batch_size * EVAL_COST_PER_TRAIN_IMAGE
        evals = self._evals_left(step) * self._eval_images + self._final_eval_images
        export = self._export_traces * (self._trace_seconds or 0.0)
        return per_step * (total_steps - step) + per_eval_image * evals + export


def run_eta(config, source, schedule, split):
    """The time-left estimate of this run: its in-training evaluations, train_and_eval's final evaluation and
    the export counted in. split: the split evaluated during training."""
    every = schedule.steps_per_eval
    total = schedule.total_steps
    evaluating = config.eval.in_training

    def evals_left(step):
        return (total // every - step // every + (total % every != 0 and step < total)) if evaluating else 0

    final = base.MODE_TABLE[config.runtime.mode].final_phase
    exporting = final and bool(config.runtime.export_dir or config.runtime.export_at_end)
    return Eta(
        batch_size=config.train.batch_size,
        eval_images=source.num_examples(split) if evaluating else 0,
        evals_left=evals_left,
        final_eval_images=source.num_examples(config.data.eval_split) if final else 0,
        export_traces=(EXPORT_TRACES + (TFLITE_TRACES if config.runtime.export_tflite else 0)) if exporting else 0,
    )


# The export's time in units of the first train call's tracing time, rough figures that keep the time left from
# leaving the export out. Demo config on 2 shared cores: the SavedModel took 75 s after a 37.5 s first call;
# tiny config with --tflite: about 100 s for the three .tflite files and their checks after a 6.8 s first call.
EXPORT_TRACES = 2
TFLITE_TRACES = 15


def data_line(config, source):
    """The run's first line: which data it trains on, where it lives and the size of each split."""
    if config.data.dataset:
        where = f"TFDS {config.data.dataset}" + (
            f" in {config.data.tfds_data_dir}" if config.data.tfds_data_dir else ""
        )
    elif config.data.data_dir:
        where = config.data.data_dir
    else:
        where = f"the generated demo data in {source.data_dir}"
    sizes = ", ".join(f"{split} {source.num_examples(split):,}" for split in ("train", "minival", "validation"))
    return f"data: {where} ({sizes} images; {source.num_classes} classes)"
