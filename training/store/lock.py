"""One writer per model_dir: a lock file naming the process that trains into it.

Two training commands on one model_dir would interleave checkpoints and metrics. The first takes
model_dir/.lock; a second fails with a clear message naming the holder.

On a local (or NFS) disk the lock is an flock() on the file: the kernel drops it when its process ends, however
it ends, so a lock left by a killed run is always recognised as stale, also when its pid was reused by another
process or a restarted container runs the trainer as pid 1 again, and also when the file is empty (a disk full
at start). The file's content (pid, host, process start time, boot id, a random token) only names the holder
in messages.

Object stores (gs://) have no locks: there the content decides. A holder on this host is stale when its pid no
longer runs, or runs a process started at another time (a reused pid) or before another boot; a file that does
not name a holder is stale. A lock held from another host is honoured: delete the file by hand if that host is
gone.
"""

import json
import os
import socket
import time
import uuid

import tensorflow as tf

from training.errors import UserError, first_line

try:
    import fcntl
except ImportError:  # not POSIX: content-based locking as on object stores
    fcntl = None

LOCK_FILE = ".lock"


def _boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return None


def process_start_time(pid):
    """The process's start time in clock ticks after boot (/proc/PID/stat field 22), None when unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # The command name (field 2) may hold spaces and parentheses: count from the last ")".
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read(path):
    """The holder recorded in the lock file: a dict with an int "pid" and a "host", or {} (empty, garbage)."""
    try:
        with tf.io.gfile.GFile(path) as f:
            holder = json.loads(f.read())
    except (ValueError, tf.errors.OpError):
        return {}
    if not isinstance(holder, dict) or not isinstance(holder.get("pid"), int) or not holder.get("host"):
        return {}
    return holder


def holder_stale_reason(holder):
    """Why the (content-described) holder cannot be running any more, or None when it may be."""
    if not holder:
        return "it names no holder (empty or unreadable)"
    if holder["host"] != socket.gethostname():
        return None
    if holder.get("boot_id") and _boot_id() and holder["boot_id"] != _boot_id():
        return f"pid {holder['pid']} ran before this machine's last boot"
    if not _pid_alive(holder["pid"]):
        return f"pid {holder['pid']} no longer runs"
    started = process_start_time(holder["pid"])
    if holder.get("start_time") is not None and started is not None and started != holder["start_time"]:
        return f"pid {holder['pid']} is now another process"
    return None


def _refusal(path, holder):
    return UserError(
        f"{os.path.dirname(path)} is in use by pid {holder.get('pid', '?')} on "
        f"{holder.get('host', '?')} (lock file {path}); wait for it or use another --model_dir"
    )


class ModelDirLock:
    """Context manager holding model_dir/.lock for the duration of a training run."""

    def __init__(self, model_dir):
        self.path = os.path.join(model_dir, LOCK_FILE)
        self._token = uuid.uuid4().hex
        self._payload = json.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "start_time": process_start_time(os.getpid()),
                "boot_id": _boot_id(),
                "token": self._token,
                "since": time.time(),
            }
        )
        self._fd = None

    def __enter__(self):
        try:
            tf.io.gfile.makedirs(os.path.dirname(self.path))
            if "://" in self.path or fcntl is None:
                self._acquire_by_content()
            else:
                self._acquire_flock()
        except (OSError, tf.errors.OpError) as e:  # read-only or full disk, a model_dir that is a file
            self._release_fd()
            raise UserError(f"cannot take the lock {self.path}: {first_line(e)}") from None
        return self

    def _acquire_flock(self):
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise _refusal(self.path, _read(self.path)) from None
            # The previous holder may have removed the file between our open and our flock: then we hold the
            # lock of a file nobody else sees; start over on the one in place.
            try:
                same_file = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same_file = False
            if same_file:
                break
            os.close(fd)
        self._fd = fd
        holder = _read(self.path)
        if holder and holder["host"] != socket.gethostname() and not holder_stale_reason(holder):
            self._release_fd()  # written on another host whose lock this disk may not see
            raise _refusal(self.path, holder)
        if os.fstat(fd).st_size:
            print(
                f"warning: taking over the stale lock {self.path} "
                f"({holder_stale_reason(holder) or 'its process ended without releasing it'})",
                flush=True,
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, self._payload.encode(), 0)
        os.fsync(fd)

    def _acquire_by_content(self):
        if not tf.io.gfile.exists(self.path):
            self._write()
            return
        holder = _read(self.path)
        reason = holder_stale_reason(holder)
        if reason is None:
            raise _refusal(self.path, holder)
        print(f"warning: taking over the stale lock {self.path} ({reason})", flush=True)
        self._write()

    def _write(self):
        with tf.io.gfile.GFile(self.path, "w") as f:
            f.write(self._payload)
        if _read(self.path).get("token") != self._token:  # another run wrote in between
            raise _refusal(self.path, _read(self.path))

    def _release_fd(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __exit__(self, *exc):
        try:
            if _read(self.path).get("token") == self._token:
                tf.io.gfile.remove(self.path)  # before releasing the flock: see _acquire_flock's inode check
        except (OSError, tf.errors.OpError):
            pass  # the run's own outcome matters more than a lock file that could not be removed
        self._release_fd()
        return False
