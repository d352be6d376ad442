"""Temporary files and folders in model_dir that carry their writer's identity, and which of them may be swept.

Every write that must not be seen half done (archive/, the export, metrics.jsonl, config.json, the checkpoint
state file) goes to a temporary first and is renamed into place. Two processes write such temporaries into one
model_dir: the trainer and an eval job beside it (training/session/sidecar.py). A temporary left by a killed writer must
be removed, one of a live writer must not: its name holds the writer's host, pid and process start time, and a
sweeper removes only those whose writer is gone (training/store/lock.py's test of a lock holder). A writer on another
host cannot be checked from here: its temporaries are removed once they are older than FOREIGN_STALE_SECONDS
(a write takes seconds). Names without an identity (from earlier versions) count as a dead writer's.
"""

import os
import re
import socket
import time
import uuid

import tensorflow as tf

from training.store import lock

# A temporary of a writer on another host is swept once it is this old.
FOREIGN_STALE_SECONDS = 24 * 3600

_KINDS = ("tmp", "old", "write-test")
_TOKEN = re.compile(r"\.(?:" + "|".join(_KINDS) + r")-(?P<token>[^/]*)$")
_SEPARATOR = "~"


def _host():
    return socket.gethostname().replace(_SEPARATOR, "-").replace("/", "-")


def token(pid=None, host=None, start_time=None):
    """host~pid~start time~random: the writer's identity and a unique suffix (this process by default)."""
    pid = os.getpid() if pid is None else pid
    start_time = lock.process_start_time(pid) if start_time is None and host is None else start_time
    return _SEPARATOR.join([host or _host(), str(pid), str(start_time), uuid.uuid4().hex[:8]])


def name(path, kind="tmp"):
    """`path`.kind-TOKEN, e.g. model_dir/archive.tmp-host~123~456~1a2b3c4d; kind is "tmp", "old" or "write-test"
    (a path ending in "/" gives a hidden file in that folder, e.g. dir/.write-test-TOKEN)."""
    if kind not in _KINDS:
        raise ValueError(f"temporary kind must be one of {_KINDS}, got {kind!r}")
    return f"{path}.{kind}-{token()}"


def writer_alive(path, now=None):
    """Whether the process that made the temporary `path` may still be writing it."""
    match = _TOKEN.search(os.path.basename(path.rstrip("/")))
    parts = match.group("token").split(_SEPARATOR) if match else []
    if len(parts) != 4 or not parts[1].isdigit():
        return False  # no identity: an earlier version's temporary
    host, pid, start_time = parts[0], int(parts[1]), parts[2]
    if host != _host():
        try:
            age = (time.time() if now is None else now) - tf.io.gfile.stat(path).mtime_nsec / 1e9
        except tf.errors.OpError:  # a folder on an object store has no stat: keep it
            return True
        return age < FOREIGN_STALE_SECONDS
    holder = {"host": socket.gethostname(), "pid": pid, "start_time": int(start_time) if start_time.isdigit() else None}
    return lock.holder_stale_reason(holder) is None


def dead_temporaries(directory, patterns):
    """The temporaries in `directory` matching any of the glob `patterns` whose writer is gone (writer_alive)."""
    return [
        path
        for pattern in patterns
        for path in tf.io.gfile.glob(os.path.join(directory, pattern))
        if not writer_alive(path)
    ]


def remove(path):
    """Removes a swept temporary, file or folder (gone already is fine: another sweeper was first)."""
    if not tf.io.gfile.exists(path):
        return
    if tf.io.gfile.isdir(path):
        tf.io.gfile.rmtree(path)
    else:
        tf.io.gfile.remove(path)
