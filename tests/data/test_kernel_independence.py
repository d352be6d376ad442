"""Sharpness gives the original's pixels with oneDNN on and off (TF_ENABLE_ONEDNN_OPTS=1/0, two processes):
TensorFlow's CPU convolution kernels round a sum of products differently by CPU and by that switch, so the
smoothing must not depend on them (data/autoaugment.smoothed). Each path is compared with the numpy port of
the original's op as TensorFlow 1.x's CPU kernel rounded it (tests/data/original_port.sharpness)."""

import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from tests.data import original_port as port
from tests.data import sharpness_child as child

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _expected():
    return np.stack(
        [
            port.apply(image, "Sharpness", level, False, port.AUTOAUGMENT_CONSTS, None)
            for image in child.images()
            for level in child.LEVELS
        ]
    )


@pytest.mark.slow
@pytest.mark.parametrize("onednn", ["0", "1"])
def test_sharpness_is_the_same_with_onednn_on_and_off(onednn, tmp_path):
    out = tmp_path / "sharpness.npz"
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "0"}
    run = subprocess.run(
        [sys.executable, "-m", "tests.data.sharpness_child", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    if platform.machine() in ("x86_64", "AMD64"):  # TensorFlow announces its oneDNN kernels there
        assert ("oneDNN custom operations are on" in run.stderr) == (onednn == "1")
    expected = _expected()
    assert not np.array_equal(expected, np.repeat(child.images(), len(child.LEVELS), axis=0))  # the op acts
    results = np.load(out)
    for path in ("eager", "in_data", "device", "xla"):
        np.testing.assert_array_equal(results[path], expected, err_msg=path)
