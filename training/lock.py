"""One writer per model_dir: a lock file naming the process that trains into it.

Two training commands on one model_dir would interleave checkpoints and metrics. The first takes
model_dir/.lock (created exclusively); a second fails with a clear message naming the holder. A lock left by
a killed process on this host (its pid no longer runs) is recognised as stale and taken over with a warning.
A lock held from another host is honoured: delete the file by hand if that host is gone.
"""
import json
import os
import socket
import time

import tensorflow as tf

from training.errors import UserError

LOCK_FILE = ".lock"


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read(path):
    try:
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)
    except (ValueError, tf.errors.OpError):
        return {}


def _create_exclusive(path, payload):
    """Creates the lock file if absent; False if it exists. Exclusive on local disks (O_EXCL)."""
    if "://" in path:  # object stores have no exclusive create: check, then write (best effort)
        if tf.io.gfile.exists(path):
            return False
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(payload)
        return True
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(payload)
    return True


class ModelDirLock:
    """Context manager holding model_dir/.lock for the duration of a training run."""

    def __init__(self, model_dir):
        self.path = os.path.join(model_dir, LOCK_FILE)
        self._owner = {"pid": os.getpid(), "host": socket.gethostname()}
        self._payload = json.dumps({**self._owner, "since": time.time()})

    def __enter__(self):
        tf.io.gfile.makedirs(os.path.dirname(self.path))
        if _create_exclusive(self.path, self._payload):
            return self
        holder = _read(self.path)
        same_host = holder.get("host") == socket.gethostname()
        if same_host and isinstance(holder.get("pid"), int) and not _pid_alive(holder["pid"]):
            print(f"warning: taking over stale lock {self.path} of pid {holder['pid']} (no longer running)",
                  flush=True)
            tf.io.gfile.remove(self.path)
            if _create_exclusive(self.path, self._payload):
                return self
            holder = _read(self.path)
        raise UserError(f"{os.path.dirname(self.path)} is in use by pid {holder.get('pid', '?')} on "
                        f"{holder.get('host', '?')} (lock file {self.path}); wait for it or use another "
                        f"--model_dir")

    def __exit__(self, *exc):
        holder = _read(self.path)
        if {k: holder.get(k) for k in self._owner} == self._owner:
            tf.io.gfile.remove(self.path)
        return False
