"""model_dir's lock: a live holder is refused; a dead one is taken over however its file looks (empty after a
full disk, a reused pid, pid 1 after a container restart)."""

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from training.errors import UserError
from training.store import lock

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOLD = (
    "import sys; from training.store import lock\n"
    "with lock.ModelDirLock(sys.argv[1]):\n"
    "    print('held', flush=True); sys.stdin.read()\n"
)


def _holder(model_dir):
    """A process holding model_dir's lock until its stdin closes; returns once it says it holds it."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(model_dir)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert process.stdout.readline().strip() == "held"
    return process


@pytest.mark.parametrize(
    "content",
    [
        "",  # the disk was full when the lock was written
        '{"pi',  # half-written
        json.dumps({"pid": 1, "host": socket.gethostname(), "start_time": 1}),  # pid 1 after a container restart
        json.dumps({"pid": os.getppid(), "host": socket.gethostname()}),  # a live pid reused by another process
    ],
)
def test_a_lock_whose_holder_is_gone_is_taken_over(tmp_path, content, capsys):
    (tmp_path / ".lock").write_text(content)
    with lock.ModelDirLock(str(tmp_path)):
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    assert not (tmp_path / ".lock").exists()
    if content:
        assert "warning: taking over the stale lock" in capsys.readouterr().out


def test_a_live_holder_is_refused_and_its_lock_is_free_after_kill_9(tmp_path, capsys):
    process = _holder(tmp_path)
    try:
        with pytest.raises(UserError, match=f"is in use by pid {process.pid} on {socket.gethostname()}"):
            with lock.ModelDirLock(str(tmp_path)):
                pass
        with lock.ModelDirLock(str(tmp_path / "other")):  # another model_dir is free
            pass
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    with lock.ModelDirLock(str(tmp_path)):
        pass
    assert f"taking over the stale lock {tmp_path}/.lock" in capsys.readouterr().out


def test_the_same_process_cannot_take_its_own_lock_twice(tmp_path):
    with lock.ModelDirLock(str(tmp_path)):
        with pytest.raises(UserError, match=f"in use by pid {os.getpid()}"):
            with lock.ModelDirLock(str(tmp_path)):
                pass


def test_another_hosts_lock_is_honoured(tmp_path):
    (tmp_path / ".lock").write_text(json.dumps({"pid": 123, "host": "another-host"}))
    with pytest.raises(UserError, match="in use by pid 123 on another-host"):
        with lock.ModelDirLock(str(tmp_path)):
            pass
    assert json.loads((tmp_path / ".lock").read_text())["host"] == "another-host"


def test_a_model_dir_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "run").write_text("")
    with pytest.raises(UserError, match="cannot take the lock"):
        with lock.ModelDirLock(str(tmp_path / "run")):
            pass


def test_content_based_lock_on_object_stores_knows_reused_pids(tmp_path, monkeypatch):
    """gs:// has no flock: the recorded start time tells a reused pid from its holder."""
    monkeypatch.setattr(lock, "fcntl", None)
    (tmp_path / ".lock").write_text(
        json.dumps(
            {"pid": os.getppid(), "host": socket.gethostname(), "start_time": lock.process_start_time(os.getppid())}
        )
    )
    with pytest.raises(UserError, match=f"in use by pid {os.getppid()}"):
        with lock.ModelDirLock(str(tmp_path)):
            pass
    (tmp_path / ".lock").write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "start_time": 1}))
    with lock.ModelDirLock(str(tmp_path)):
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
