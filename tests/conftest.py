"""Shared test settings: quiet TensorFlow logs and two logical CPU devices for distribution tests."""
import os
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

_EXIT_STATUS = pytest.StashKey[int]()

# MirroredStrategy tests need two logical CPU devices; this must happen before any op runs.
_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
except RuntimeError:  # already initialized by an earlier import; tests that need 2 devices skip.
    pass


def pytest_sessionfinish(session, exitstatus):
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Leave without the interpreter's teardown once pytest has reported: a tf.data iterator still referenced at
    exit can deadlock in its destructor (UnboundedThreadPool::LogicalThreadWrapper waiting on a thread the
    interpreter already stopped), which hung a whole CI run after its summary line."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(config.stash.get(_EXIT_STATUS, 0))
