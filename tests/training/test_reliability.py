"""Reliability: kill -9 and resume bit-identically, SIGTERM checkpoints, corrupt-checkpoint fallback, NaN
stop, one writer per model_dir, and a two-worker MultiWorkerMirroredStrategy run of main.py."""

import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import start_main, tiny_config
from tests.training.conftest import checkpoint_values, metrics_records, resumable_flags, wait_for_line
from training.errors import PREEMPTED_EXIT_CODE, NumericalError, UserError
from training.session import run
from training.store import checkpoints, lock

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _wait_for_progress(process, lines):
    """Reads stdout until `lines` progress lines ("step N/M ...") were printed; returns the last step seen."""
    seen, step = 0, None
    for line in process.stdout:
        if line.startswith("step "):
            seen, step = seen + 1, int(line.split()[1].split("/")[0])
            if seen >= lines:
                return step
    return step


def _assert_same_checkpoints(a, b):
    values_a, values_b = checkpoint_values(a), checkpoint_values(b)
    assert values_a.keys() == values_b.keys()
    different = [k for k in values_a if not np.array_equal(values_a[k], values_b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def test_kill9_at_random_points_then_resume_is_bit_identical(tmp_path, demo_cache):
    # 12 steps: evaluations at 4, 8 and 12, so the third kill (at the latest in step 8's evaluation) still leaves
    # training for the final run after a mid-evaluation kill.
    steps = 12
    reference = tmp_path / "reference"
    done = start_main(resumable_flags(reference, demo_cache, steps))
    out, err = done.communicate(timeout=600)
    assert done.returncode == 0, err[-2000:]

    interrupted = tmp_path / "interrupted"
    # Kills at events, not at times (a faster machine moves a timed kill elsewhere): right after a host loop's
    # progress line (the checkpoint save follows), right after an evaluation line (the archive/metrics writes
    # follow or just ended), and right after "evaluating on" (mid-evaluation).
    kill_points = [
        lambda line: line.startswith("step "),
        lambda line: line.startswith("eval minival"),
        lambda line: line.startswith("evaluating on minival"),
    ]
    for kill_point in kill_points:  # each kill must land: a run that reached its end would test nothing
        process = start_main(resumable_flags(interrupted, demo_cache, steps), stderr=subprocess.STDOUT)
        assert wait_for_line(process, kill_point) and process.poll() is None, "the run ended before its kill point"
        process.send_signal(signal.SIGKILL)
        output, _ = process.communicate(timeout=120)
        assert process.returncode in (0, -signal.SIGKILL), output[-2000:]  # a run that fails by itself is a bug
        latest = tf.train.latest_checkpoint(str(interrupted))
        assert latest is None or int(latest.rsplit("-", 1)[1]) <= steps
    final = start_main(resumable_flags(interrupted, demo_cache, steps))
    out, err = final.communicate(timeout=600)
    assert final.returncode == 0, err[-2000:]
    _assert_same_checkpoints(str(reference / f"ckpt-{steps}"), str(interrupted / f"ckpt-{steps}"))
    assert metrics_records(interrupted) == metrics_records(reference)
    assert checkpoints.read_best(str(interrupted)) == checkpoints.read_best(str(reference))


def test_sigterm_saves_at_a_step_boundary_and_exits_75(tmp_path, demo_cache):
    model_dir = tmp_path / "run"
    process = start_main(resumable_flags(model_dir, demo_cache, 400), stderr=subprocess.STDOUT)
    step = _wait_for_progress(process, 2)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == PREEMPTED_EXIT_CODE, output[-2000:]
    saved = tf.train.latest_checkpoint(str(model_dir))
    saved_step = int(saved.rsplit("-", 1)[1])
    assert saved_step >= step and saved_step % 2 == 0  # a host-loop boundary (iterations_per_loop=2)
    assert f"preempted: checkpoint at step {saved_step}" in output
    assert not (model_dir / ".lock").exists()


def test_truncated_latest_checkpoint_falls_back_and_nan_keeps_the_last_good(tmp_path, demo_cache, capsys):
    model_dir = tmp_path / "run"
    common = {
        "runtime.mode": "train",
        "eval.in_training": True,
        "runtime.checkpoint_steps": 2,
        "eval.steps_per_eval": 4,
    }
    run.run(tiny_config(model_dir, demo_cache, **common, **{"train.steps": 4}))
    data_file = model_dir / "ckpt-4.data-00000-of-00001"
    data_file.write_bytes(data_file.read_bytes()[: data_file.stat().st_size // 2])

    run.run(tiny_config(model_dir, demo_cache, **common, **{"train.steps": 6}))
    assert f"checkpoint {model_dir}/ckpt-4 is unusable; resuming from {model_dir}/ckpt-2" in capsys.readouterr().out
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-6")

    best_before = checkpoints.read_best(str(model_dir))
    archive_index = (model_dir / "archive" / "best.index").read_bytes()
    before = checkpoint_values(str(model_dir / "ckpt-6"))
    exploding = tiny_config(model_dir, demo_cache, **common, **{"train.steps": 12, "train.base_learning_rate": 1e30})
    with pytest.raises(NumericalError, match="loss is (nan|inf)|weights after step [0-9]+ are not finite"):
        run.run(exploding)
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-6")
    after = checkpoint_values(str(model_dir / "ckpt-6"))
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert checkpoints.read_best(str(model_dir)) == best_before
    assert (model_dir / "archive" / "best.index").read_bytes() == archive_index
    assert not (model_dir / ".lock").exists()


def test_second_writer_is_refused_and_a_stale_lock_is_taken_over(tmp_path, demo_cache):
    model_dir = tmp_path / "run"
    with lock.ModelDirLock(str(model_dir)):
        with pytest.raises(UserError, match=f"is in use by pid {os.getpid()}"):
            run.run(tiny_config(model_dir, demo_cache, **{"runtime.mode": "train"}))
        assert not (model_dir / "config.json").exists()  # refused before writing anything
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (model_dir / ".lock").write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    with lock.ModelDirLock(str(model_dir)) as held:
        assert json.loads((model_dir / ".lock").read_text())["pid"] == os.getpid()
    assert held and not (model_dir / ".lock").exists()


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_together_with_identical_weights(tmp_path, demo_cache):
    """With cross-replica BatchNorm every variable is identical on both workers (with per-replica BatchNorm,
    the default as in the reference, the moving statistics are each worker's own)."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    model_dir = tmp_path / "run"
    processes = [
        start_main(
            resumable_flags(model_dir, demo_cache, 4) + ["--config.model.batchnorm_group_size=all"],
            env={"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})},
        )
        for i in range(2)
    ]
    results = [p.communicate(timeout=600) for p in processes]
    for process, (_, err) in zip(processes, results):
        assert process.returncode == 0, err[-3000:]
    assert "on 2 replica(s)" in results[0][0]
    _assert_same_checkpoints(str(model_dir / "ckpt-4"), str(model_dir / ".workers" / "worker-1" / "ckpt-4"))
