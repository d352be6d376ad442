"""Temporaries that name their writer (training/store/temporaries.py): only a dead writer's are swept, by the trainer
and by an eval job alike, and a live writer's archive.old-* is never put back under it (#25 row 9)."""

import os
import subprocess
import sys
import time

import pytest

from training.store import checkpoints, temporaries


@pytest.fixture
def live_writer():
    """A running process other than this one: its temporaries must stay."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    time.sleep(0.2)  # /proc/PID/stat exists once the process runs
    yield process.pid
    process.kill()
    process.wait()


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _make(path, token, folder=False):
    full = f"{path}-{token}"
    if folder:
        os.makedirs(full)
        with open(os.path.join(full, checkpoints.BEST_EVAL_FILE), "w") as f:
            f.write("{}")
    else:
        with open(full, "w") as f:
            f.write("x")
    return full


def test_names_carry_the_writer_and_tell_live_from_dead(tmp_path, live_writer):
    own = temporaries.name(str(tmp_path / "archive"))
    assert os.path.basename(own).startswith("archive.tmp-") and str(os.getpid()) in own
    live = _make(str(tmp_path / "a.tmp"), temporaries.token(pid=live_writer))
    dead = _make(str(tmp_path / "b.tmp"), temporaries.token(pid=_dead_pid()))
    reused = _make(
        str(tmp_path / "c.tmp"), temporaries.token(pid=live_writer, host=temporaries._host(), start_time=1)
    )  # the pid now runs another process
    legacy = _make(str(tmp_path / "d.tmp"), "1a2b3c4d")
    foreign = _make(str(tmp_path / "e.tmp"), temporaries.token(pid=1, host="elsewhere", start_time=5))
    assert temporaries.writer_alive(own)
    assert temporaries.writer_alive(live) and temporaries.writer_alive(foreign)
    assert not any(temporaries.writer_alive(p) for p in (dead, reused, legacy))
    # Another host's writer cannot be checked from here: its temporary goes once it is a day old.
    assert not temporaries.writer_alive(foreign, now=time.time() + temporaries.FOREIGN_STALE_SECONDS + 60)
    with pytest.raises(ValueError, match="kind"):
        temporaries.name("x", "bak")


def test_a_sweep_removes_only_dead_writers_temporaries(tmp_path, live_writer):
    model_dir = str(tmp_path)
    os.makedirs(os.path.join(model_dir, checkpoints.ARCHIVE_DIR))
    live = [
        _make(os.path.join(model_dir, "archive.tmp"), temporaries.token(pid=live_writer), folder=True),
        _make(os.path.join(model_dir, "metrics.jsonl.tmp"), temporaries.token(pid=live_writer)),
    ]
    dead = [
        _make(os.path.join(model_dir, "archive.tmp"), temporaries.token(pid=_dead_pid()), folder=True),
        _make(os.path.join(model_dir, "metrics.jsonl.tmp"), "12345"),  # an earlier version's name
        _make(os.path.join(model_dir, "config.json.tmp"), temporaries.token(pid=_dead_pid())),
    ]
    staging = os.path.join(model_dir, "ckpt-3_temp")
    os.makedirs(staging)
    messages = []
    checkpoints.sweep_leftovers(model_dir, log=messages.append, holds_lock=False)  # an eval job
    assert all(os.path.exists(p) for p in live + [staging]) and not any(os.path.exists(p) for p in dead)
    assert messages and "removed 3 leftover(s)" in messages[0]
    checkpoints.sweep_leftovers(model_dir, log=messages.append)  # the trainer also owns TF's staging folders
    assert all(os.path.exists(p) for p in live) and not os.path.exists(staging)


def test_a_live_writers_archive_old_is_not_put_back_under_it(tmp_path, live_writer):
    """Between replace_dir's two renames only archive.old-* exists: a sweeper must not rename it back while
    its writer runs (its next rename would then fail); a dead writer's is the only copy of the best."""
    model_dir = str(tmp_path)
    old = _make(os.path.join(model_dir, "archive.old"), temporaries.token(pid=live_writer), folder=True)
    checkpoints.sweep_leftovers(model_dir, log=lambda _: None, holds_lock=False)
    assert os.path.isdir(old) and not os.path.exists(os.path.join(model_dir, checkpoints.ARCHIVE_DIR))
    os.rename(old, os.path.join(model_dir, "archive.old-" + temporaries.token(pid=_dead_pid())))
    assert checkpoints.read_best(model_dir) == {}  # put back: the best_eval.json written above
    assert os.path.isdir(os.path.join(model_dir, checkpoints.ARCHIVE_DIR))
