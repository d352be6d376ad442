"""training/session/preemption.py through main.py: Ctrl-C in training (once: a checkpoint at the next boundary, exit
130; twice: at once), and SIGTERM/Ctrl-C to an eval job (exit 75/130, one line, what it finished kept)."""

import shutil
import signal
import subprocess

import pytest
import tensorflow as tf

from tests.conftest import start_main, tiny_config
from tests.training.conftest import resumable_flags, wait_for_line
from training.errors import INTERRUPTED_EXIT_CODE, PREEMPTED_EXIT_CODE
from training.session import run

pytestmark = pytest.mark.slow


def _no_traceback(err):
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]


def test_a_first_ctrl_c_while_tracing_saves_at_the_next_boundary_and_exits_130(tmp_path, demo_cache):
    model_dir = tmp_path / "run"
    flags = resumable_flags(model_dir, demo_cache, 4)  # the next boundary after tracing is step 2
    process = start_main(flags, stderr=subprocess.STDOUT)  # one stream: read while it runs, nothing blocks
    assert wait_for_line(process, lambda line: line.startswith("tracing and compiling"))
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == INTERRUPTED_EXIT_CODE, output[-3000:]
    _no_traceback(output)
    saved = tf.train.latest_checkpoint(str(model_dir))
    assert saved and f"interrupted: checkpoint at step {saved.rsplit('-', 1)[1]} saved to {saved}" in output
    resumed = start_main(flags)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    assert f"resumed from {saved}" in out and tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-4")


def test_a_second_ctrl_c_exits_at_once_and_the_run_resumes(tmp_path, demo_cache):
    model_dir = tmp_path / "run"
    flags = resumable_flags(model_dir, demo_cache, 400)
    process = start_main(flags, stderr=subprocess.STDOUT)  # one stream: read while it runs, nothing blocks
    assert wait_for_line(process, lambda line: line.startswith("step "))  # training, checkpoints every 2 steps
    process.send_signal(signal.SIGINT)
    assert wait_for_line(process, lambda line: line.startswith("received Ctrl-C"))
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == INTERRUPTED_EXIT_CODE, output[-3000:]
    _no_traceback(output)
    assert "interrupted again: exiting at once" in output
    resumed = start_main([*flags[:-3], "--train_steps=12", *flags[-2:]])
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-12")  # from its last checkpoint, if any


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory, demo_cache):
    """A finished tiny --mode=train run (no evaluation yet), trained once for the eval-job tests, which each take
    a copy (checkpoint names in its state file are relative to the directory)."""
    model_dir = tmp_path_factory.mktemp("trained") / "run"
    run.run(tiny_config(model_dir, demo_cache, **{"runtime.mode": "train", "eval.in_training": False}))
    return model_dir


@pytest.mark.parametrize(
    "sig, code, cause",
    [(signal.SIGTERM, PREEMPTED_EXIT_CODE, "preempted"), (signal.SIGINT, INTERRUPTED_EXIT_CODE, "interrupted")],
)
def test_a_signal_stops_an_eval_job_mid_evaluation_with_one_line(tmp_path, trained_dir, sig, code, cause):
    model_dir = tmp_path / "run"
    shutil.copytree(trained_dir, model_dir)
    process = start_main(["--mode=eval", f"--model_dir={model_dir}", "--eval_timeout=600"], stderr=subprocess.STDOUT)
    assert wait_for_line(process, lambda line: line.startswith("evaluating on"))
    process.send_signal(sig)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == code, output[-3000:]
    _no_traceback(output)
    assert f"{cause}: stopped before finishing; rerun the same command" in output
