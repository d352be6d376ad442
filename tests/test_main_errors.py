"""main.py: config values, config files and environment faults that used to end in a traceback (exit 1) are one
line on stderr and exit status 2, with nothing written; TensorFlow's start-up notices do not precede the line."""

import errno
import os

import pytest

from tests.conftest import run_concurrently

# Caught by training/checks.py validate_config before TensorFlow loads.
CASES = [
    (["--config.data.eval_split=bogus"], "error: eval_split='bogus' is not one of train, minival, validation"),
    (["--config.data.crop_fraction=0"], "error: crop_fraction must be in (0, 1], got 0.0"),
    (["--config.data.crop_fraction=1.5", "--mode=train"], "error: crop_fraction must be in (0, 1], got 1.5"),
    (["--seed=-1", "--deterministic"], "error: seed must be in [0, 2**32), got -1"),
    (["--config.train.warmup_epochs=inf"], "error: warmup_epochs must be a finite number >= 0, got inf"),
    (["--config.train.freeze_backbone_epochs=inf"], "error: freeze_backbone_epochs must be a finite number >= 0"),
    (
        ["--augment_name=randaugment", "--config.data.randaugment_magnitude=-50"],
        "error: randaugment_magnitude must be a finite number >= 0, got -50",
    ),
    (["--config=/missing/config.py"], "error: cannot load --config: [Errno 2] No such file or directory"),
    (["--config={tmp}/broken.py"], "broken.py: invalid syntax at line 1"),
]
# After TensorFlow loads: the environment, the data, the model_dir.
SLOW_CASES = [
    (["--model_dir={tmp}/a_file"], "error: --model_dir {tmp}/a_file exists and is not a directory"),
    (["--model_dir=/proc/efficientnet-run"], "error: cannot write to /proc:"),  # read-only even for root
    # An eval job waits for its training job to appear, but not in a place it could never write to.
    (["--mode=eval", "--model_dir=/proc/efficientnet-run"], "error: cannot write to /proc:"),
    (
        ["--mode=export", "--model_dir=/proc/efficientnet-run"],
        "error: no training run to export in /proc/efficientnet-run",
    ),
    (
        ["--config=configs/transfer.py:cifar10", "--config.data.tfds_data_dir={tmp}/no_tfds"],
        "error: Dataset cifar10: could not find data in",
    ),
    (["--data_dir=gs://efficientnet-no-such-bucket-8d1c/imagenet"], "gs://efficientnet-no-such-bucket-8d1c"),
]


def _run_all(cases, tmp_path):
    (tmp_path / "broken.py").write_text("def get_config(:\n")
    (tmp_path / "a_file").write_text("")
    command_lines = []
    for i, (args, _) in enumerate(cases):
        args = [a.format(tmp=tmp_path) for a in args]
        given = any(a.startswith("--model_dir") for a in args)
        command_lines.append(args + ([] if given else [f"--model_dir={tmp_path}/run{i}"]))
    return [
        (p, p.stdout, p.stderr)
        for p in run_concurrently(command_lines, 600, env={"EFFICIENTNET_DEMO_DIR": str(tmp_path / "demo")})
    ]


@pytest.mark.parametrize("cases", [CASES, pytest.param(SLOW_CASES, marks=pytest.mark.slow)], ids=["config", "env"])
def test_one_line_and_exit_2(cases, tmp_path):
    for i, ((args, expected), (process, _, stderr)) in enumerate(zip(cases, _run_all(cases, tmp_path))):
        assert process.returncode == 2, (args, stderr[-3000:])
        assert stderr.strip().splitlines() == [stderr.strip()], (args, stderr[-3000:])  # no TF start-up lines
        assert expected.format(tmp=tmp_path) in stderr, (args, stderr)
        assert not os.path.exists(tmp_path / f"run{i}"), args
    assert not os.path.exists("/proc/efficientnet-run")


def test_environment_faults_are_one_line_and_bugs_keep_their_traceback():
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from training import errors  # pylint: disable=import-outside-toplevel

    full = OSError(errno.ENOSPC, "No space left on device", "/runs/b0/metrics.jsonl")
    assert errors.environment_fault(full, tf) == "No space left on device: /runs/b0/metrics.jsonl"
    exhausted = tf.errors.ResourceExhaustedError(
        None,
        None,
        "{{function_node __wrapped__SaveV2_dtypes_477_device_/"
        "job:localhost/replica:0/task:0/device:CPU:0}} /runs/b0/ckpt-4_temp"
        "; No space left on device\nmore [Op:SaveV2]",
    )
    assert errors.environment_fault(exhausted, tf) == "/runs/b0/ckpt-4_temp; No space left on device more"
    offline = tf.errors.FailedPreconditionError(None, None, "Error executing an HTTP request: libcurl code 6")
    assert errors.environment_fault(offline, tf).startswith("Error executing an HTTP request")
    assert errors.environment_fault(tf.errors.InvalidArgumentError(None, None, "shape mismatch"), tf) is None
    assert errors.environment_fault(tf.errors.FailedPreconditionError(None, None, "uninitialized"), tf) is None
    assert errors.environment_fault(OSError(errno.EBADF, "Bad file descriptor"), tf) is None


def test_checks_knows_the_splits_of_the_data_sources():
    from data import sources  # pylint: disable=import-outside-toplevel
    from training import checks  # pylint: disable=import-outside-toplevel

    assert checks.SPLITS == sources.SPLITS
