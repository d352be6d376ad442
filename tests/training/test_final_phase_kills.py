"""train_and_eval's final phase (validation evaluation, export) is as safe as training: the lock is held through
it, a SIGTERM there exits 75 with a message, and a kill -9 there followed by a rerun ends with the same files as
an uninterrupted run (one validation line). The signals are triggered by files appearing, not by timing."""

import glob
import json
import os
import signal
import subprocess
import time

import pytest

from tests.conftest import start_main
from tests.training.conftest import metrics_records, resumable_flags
from training.errors import PREEMPTED_EXIT_CODE, UserError
from training.store import checkpoints, lock

pytestmark = pytest.mark.slow
STEPS = 4  # one minival line (steps_per_eval=4), at the end of training: the final phase is what is tested


def _flags(model_dir, cache_dir):
    flags = [
        f
        for f in resumable_flags(model_dir, cache_dir, STEPS)
        if f not in ("--mode=train", "--config.eval.in_training=true")
    ]
    return flags + ["--mode=train_and_eval", "--config.runtime.export_at_end=True"]


def _act_when(actions):
    """Polls every (process, condition, action) together; runs each action once its condition holds. Fails if a
    process ends before its condition held."""
    pending = list(actions)
    while pending:
        for item in list(pending):
            process, condition, action = item
            if condition():
                action()
                pending.remove(item)
            else:
                assert process.poll() is None, f"exited with {process.returncode} before its condition held"
        time.sleep(0.02)


def _line_written(model_dir, split, step=None):
    """True once metrics.jsonl holds a `split` line (of `step`, if given)."""

    def written():
        path = os.path.join(model_dir, "metrics.jsonl")
        if not os.path.exists(path):
            return False
        with open(path) as f:
            records = [json.loads(line) for line in f if line.strip()]
        return any(r["split"] == split and step in (None, r["step"]) for r in records)

    return written


def test_final_phase_holds_the_lock_survives_sigterm_and_kill_9(tmp_path, demo_cache):
    reference, killed, terminated = tmp_path / "reference", tmp_path / "killed", tmp_path / "terminated"
    # Output goes to files: nothing reads a pipe while _act_when polls, and a child blocked on a full pipe would
    # never reach its kill point.
    logs = {
        name: open(tmp_path / f"{name}.log", "w+", encoding="utf-8") for name in ("reference", "killed", "terminated")
    }
    processes = {
        name: start_main(_flags(d, demo_cache), stdout=logs[name], stderr=subprocess.STDOUT)
        for name, d in (("reference", reference), ("killed", killed), ("terminated", terminated))
    }

    def refused_then_kill_9():  # between the validation line and the end of the export: the lock is held
        with pytest.raises(UserError, match="is in use by pid"):
            with lock.ModelDirLock(str(killed)):
                pass
        processes["killed"].send_signal(signal.SIGKILL)

    # SIGTERM once training is over (its last minival line is written): the final phase stops with exit 75.
    _act_when(
        [
            (processes["killed"], _line_written(str(killed), "validation"), refused_then_kill_9),
            (
                processes["terminated"],
                _line_written(str(terminated), "minival", STEPS),
                lambda: processes["terminated"].send_signal(signal.SIGTERM),
            ),
        ]
    )

    for process in processes.values():
        process.wait(timeout=900)
    output = {}
    for name, log in logs.items():
        log.seek(0)
        output[name] = log.read()
        log.close()
    assert processes["reference"].returncode == 0, output["reference"][-3000:]
    assert processes["killed"].returncode == -signal.SIGKILL
    assert processes["terminated"].returncode == PREEMPTED_EXIT_CODE, output["terminated"][-3000:]
    assert f"preempted: checkpoint at step {STEPS}" in output["terminated"]

    reruns = [start_main(_flags(d, demo_cache)) for d in (killed, terminated)]
    for rerun in reruns:
        _, err = rerun.communicate(timeout=900)
        assert rerun.returncode == 0, err[-3000:]
    for model_dir in (killed, terminated):
        assert metrics_records(model_dir) == metrics_records(reference)
        assert [r["split"] for r in metrics_records(model_dir)].count("validation") == 1
        assert checkpoints.read_best(str(model_dir)) == checkpoints.read_best(str(reference))
        # One complete version folder: the killed export's temporary is gone, it never was a version.
        (version,) = os.listdir(model_dir / "export")
        assert version.isdigit() and (model_dir / "export" / version / "saved_model.pb").exists()
        assert not glob.glob(str(model_dir / "*.tmp-*")) and not (model_dir / ".lock").exists()
