"""Faults around the bit-exact core (issue 16): weights that blow up are never saved, a refused command changes
nothing, damaged checkpoint state files and leftovers of killed writes, a SIGTERM at a saved boundary, and the
lock held through train_and_eval's final phase."""

import os
import signal

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import tiny_config
from tests.training.conftest import checkpoint_values, metrics_records
from training.errors import NumericalError, Preempted, UserError
from training.serving import export
from training.session import run
from training.store import checkpoints, lock

pytestmark = pytest.mark.slow

# One host loop per step and a checkpoint after each: a step that blows the weights up is the last one before
# a save (the case where checking the loss of the loop alone saved poisoned weights).
EVERY_STEP = {
    "runtime.mode": "train",
    "train.iterations_per_loop": 1,
    "runtime.checkpoint_steps": 1,
    "eval.steps_per_eval": 2,
}


def _files(model_dir):
    """name -> (bytes, mtime_ns) of every file in model_dir except the lock."""
    found = {}
    for root, _, names in os.walk(model_dir):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, model_dir)] = (f.read(), os.stat(path).st_mtime_ns)
    return found


def test_faults_on_resume_leave_the_run_as_it_was(tmp_path, demo_cache, capsys, monkeypatch):
    model_dir = tmp_path / "run"
    run.run(tiny_config(model_dir, demo_cache, **EVERY_STEP, **{"train.steps": 2}))
    capsys.readouterr()

    # Item 6: a command for another network is refused before anything is written, config.json included.
    before = _files(model_dir)
    for change in ({"model.num_classes": 5}, {"model.variant": "b1"}):
        with pytest.raises(UserError, match="holds checkpoints of another network"):
            run.run(tiny_config(model_dir, demo_cache, **EVERY_STEP, **{"train.steps": 4}, **change))
        assert _files(model_dir) == before, change

    # Item 5: a garbage state file resumes from the ckpt-N files on disk (not from step 0), with a warning.
    (model_dir / "checkpoint").write_text("garbage ][")
    run.run(tiny_config(model_dir, demo_cache, **EVERY_STEP, **{"train.steps": 3}))
    out = capsys.readouterr().out
    assert f"warning: {model_dir}/checkpoint is unreadable or empty; resuming from the checkpoint files" in out
    assert f"resumed from {model_dir}/ckpt-2 at step 2" in out
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-3")

    # Item 9: a SIGTERM right after the restore trains nothing and must not rewrite ckpt-3 in the grace period.
    saved = {k: v for k, v in _files(model_dir).items() if k.startswith(("ckpt-3", "checkpoint"))}
    restore = checkpoints.Checkpoints.restore_latest

    def restore_then_sigterm(self):
        path = restore(self)
        os.kill(os.getpid(), signal.SIGTERM)  # handled by the run's PreemptionWatcher
        return path

    monkeypatch.setattr(checkpoints.Checkpoints, "restore_latest", restore_then_sigterm)
    with pytest.raises(Preempted, match="preempted: checkpoint at step 3"):
        run.run(tiny_config(model_dir, demo_cache, **EVERY_STEP, **{"train.steps": 6}))
    monkeypatch.undo()
    assert {k: v for k, v in _files(model_dir).items() if k.startswith(("ckpt-3", "checkpoint"))} == saved

    # Item 2: a step that blows the weights up (finite, ~1e28: the loss of that step was still finite) is not
    # saved; ckpt-3 stays the latest, unchanged, and a resume from it works.
    values = checkpoint_values(str(model_dir / "ckpt-3"))
    with pytest.raises(NumericalError, match="weights after step 4 are not finite"):
        run.run(
            tiny_config(model_dir, demo_cache, **EVERY_STEP, **{"train.steps": 6, "train.base_learning_rate": 1e30})
        )
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-3")
    after = checkpoint_values(str(model_dir / "ckpt-3"))
    assert all(np.array_equal(values[k], after[k]) for k in values)
    assert not (model_dir / ".lock").exists()


def test_fresh_start_with_an_empty_state_file_and_leftovers(tmp_path, demo_cache, capsys):
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    (model_dir / "checkpoint").write_text("")  # e.g. the disk filled up while it was written
    leftovers = ["ckpt-7_temp", "archive.tmp-1a2b3c4d", "export.tmp-5e6f7a8b"]
    for name in leftovers:
        (model_dir / name).mkdir()
        (model_dir / name / "part-00000").write_bytes(b"x" * 1000)
    (model_dir / "metrics.jsonl.tmp-4242").write_text("{}\n")
    run.run(tiny_config(model_dir, demo_cache, **EVERY_STEP, **{"train.steps": 2}))
    out = capsys.readouterr().out
    assert "is unreadable or empty and there are no checkpoint files; removed it, starting from step 0" in out
    assert "removed 4 leftover(s) of interrupted writes" in out
    assert not any((model_dir / name).exists() for name in leftovers + ["metrics.jsonl.tmp-4242"])
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-2")


def test_state_file_naming_only_missing_checkpoints_is_one_line(tmp_path, demo_cache):
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    tf.compat.v1.train.update_checkpoint_state(str(model_dir), str(model_dir / "ckpt-4"))
    with pytest.raises(UserError, match="names only missing checkpoints .* has no ckpt-N files"):
        run.run(tiny_config(model_dir, demo_cache, **EVERY_STEP, **{"train.steps": 2}))


def test_final_phase_holds_the_lock_and_a_rerun_adds_no_second_line(tmp_path, demo_cache, monkeypatch):
    model_dir = tmp_path / "run"
    config = {"runtime.mode": "train_and_eval", "train.steps": 3, "runtime.export_at_end": True}
    export_run = export.export_run
    attempts = []

    def export_while_another_run_starts(ctx, *args):
        try:
            with lock.ModelDirLock(str(model_dir)):
                attempts.append("second run got the lock")
        except UserError:
            attempts.append("refused")
        return export_run(ctx, *args)

    monkeypatch.setattr(export, "export_run", export_while_another_run_starts)
    first = run.run(tiny_config(model_dir, demo_cache, **config))
    assert attempts == ["refused"]
    lines = metrics_records(model_dir)
    assert [r["split"] for r in lines].count("validation") == 1
    second = run.run(tiny_config(model_dir, demo_cache, **config))  # as after a kill -9 during the export
    assert metrics_records(model_dir) == lines
    assert second["final_eval"] == first["final_eval"]
    # Each run's export is a complete version folder of its own (a rerun after a kill during the export
    # writes a new one; the killed one's temporary is not a version).
    versions = sorted(os.listdir(model_dir / "export"))
    assert [str(model_dir / "export" / v) for v in versions] == [first["export_dir"], second["export_dir"]]
    assert all((model_dir / "export" / v / "saved_model.pb").exists() for v in versions)
