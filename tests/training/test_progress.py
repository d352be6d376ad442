"""training/store/progress.py: the status line in place on a terminal, throttled lines and heartbeats elsewhere, and
the time left with evaluations and export."""

import io

import pytest

from training.store import progress


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_terminal_gets_one_status_line_redrawn_under_each_message():
    stream = io.StringIO()
    display = progress.Display(stream, 30.0, terminal=True)
    display.status("step 1/9")
    display.status("step 2/9")
    display.message("eval minival at step 2")
    display.heartbeat("... still training")
    display.end_status()
    display.heartbeat("... still exporting")  # after the last step: the notice alone, erased by what follows
    display.message("export: done")
    assert stream.getvalue() == (
        "\r\x1b[Kstep 1/9"
        "\r\x1b[Kstep 2/9"
        "\r\x1b[Keval minival at step 2\nstep 2/9"
        "\r\x1b[Kstep 2/9  ... still training"
        "\n"
        "\r\x1b[K... still exporting"
        "\r\x1b[Kexport: done\n"
    )


def test_elsewhere_progress_lines_are_throttled_and_heartbeats_follow_a_silent_minute():
    stream, clock = io.StringIO(), _Clock()
    display = progress.Display(stream, 30.0, terminal=False, clock=clock)
    assert display.status("step 1") and not display.status("step 2")  # the first line, then 30 s apart
    clock.now = 31.0
    assert display.status("step 3") and not display.heartbeat("... still 1")
    clock.now = 90.0
    assert not display.heartbeat("... still 2")  # 59 s after the last line
    clock.now = 91.0
    assert display.heartbeat("... still 3") and not display.heartbeat("... still 4")
    assert display.status("step 9", force=True)  # the run's last step always shows
    assert stream.getvalue().splitlines() == ["step 1", "step 3", "... still 3", "step 9"]
    assert not progress.is_terminal(stream)


def test_time_left_counts_steps_evaluations_and_export():
    eta = progress.Eta(batch_size=10, eval_images=30, evals_left=lambda step: 2, final_eval_images=60, export_traces=2)
    assert eta.seconds_left(0, 100) is None  # nothing timed but the tracing call
    eta.traced(5.0)
    eta.trained(10, 2.0)
    eta.trained(30, 6.0)  # the mean over the calls: 0.2 s per step
    # 0.2 s x 60 steps; (2 x 30 + 60) images at a third of 0.02 s per trained image; 2 x 5 s of tracing
    assert eta.seconds_left(40, 100) == pytest.approx(12.0 + 120 * 0.02 / 3 + 10.0)
    eta.evaluated(30, 1.5)  # now timed: 0.05 s per evaluated image
    assert eta.seconds_left(40, 100) == pytest.approx(12.0 + 120 * 0.05 + 10.0)
    assert progress.format_duration(3725) == "1:02:05" and progress.format_duration(65) == "1:05"


@pytest.mark.slow
def test_on_a_terminal_the_run_keeps_one_status_line_and_its_log_keeps_plain_lines(tmp_path, demo_cache):
    """main.py in a pseudo-terminal, as a person runs it: the status line is redrawn in place (carriage return
    and erase-line), messages stay above it, and train.log holds plain lines without control characters."""
    import os
    import pty
    import subprocess

    from tests.conftest import start_main, tiny_flags

    leader, follower = pty.openpty()
    process = start_main(
        tiny_flags(tmp_path / "run", demo_cache, "--mode=train", "--config.eval.in_training=true"),
        stdout=follower,
        stderr=follower,
        stdin=subprocess.DEVNULL,
        text=False,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(timeout=300) == 0
    os.close(leader)
    screen = b"".join(chunks).decode()
    assert "\r\x1b[Kstep 6/6  epoch " in screen and " top-1 " in screen
    # Each message clears the status line, stays, and the status line comes back below it.
    assert "\r\x1b[Keval minival at step 3:" in screen
    log = (tmp_path / "run" / "train.log").read_text()
    assert "\r" not in log and "\x1b" not in log and "\nstep 6/6  epoch " in log
    assert screen.index("data: the generated demo data in ") < screen.index("training b0 at 32 px")


def test_a_runs_time_left_counts_its_remaining_evaluations_the_final_one_and_the_export(tmp_path):
    from configs import tiny
    from training.core import recipe

    class _Source:
        @staticmethod
        def num_examples(split):
            return {"minival": 16, "validation": 32}[split]

    config = tiny.get_config()  # train_and_eval with the export, 6 steps, minival every 3
    config.runtime.export_at_end = True
    config.eval.in_training = True  # as set-up resolves it for train_and_eval
    schedule = recipe.Schedule(steps_per_epoch=10.0, total_steps=7, steps_per_eval=3)  # evaluations at 3, 6, 7
    eta = progress.run_eta(config, _Source(), schedule, "minival")
    eta.traced(4.0)
    eta.trained(8, 8.0)  # 1 s per step: 1 s per 8 images, a third of that per evaluated image
    per_image = 1 / 8 / 3
    assert eta.seconds_left(2, 7) == pytest.approx(5 + (3 * 16 + 32) * per_image + progress.EXPORT_TRACES * 4.0)
    assert eta.seconds_left(6, 7) == pytest.approx(1 + (1 * 16 + 32) * per_image + progress.EXPORT_TRACES * 4.0)
    config.runtime.mode = "train"  # neither the final evaluation nor the export (minival still evaluated)
    training_only = progress.run_eta(config, _Source(), schedule, "minival")
    training_only.traced(4.0)
    training_only.trained(8, 8.0)
    assert training_only.seconds_left(6, 7) == pytest.approx(1 + 16 * per_image)  # the evaluation at step 7
