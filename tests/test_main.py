"""main.py as users run it: every user mistake is one line on stderr and exit status 2.

The flag and config mistakes are caught before TensorFlow loads, so those processes take about a second; the
data/TPU/model_dir cases load TensorFlow and take a few seconds each (they run concurrently). The original's model
names of every family resolve (EfficientNet-X/H here, parsed as main.py parses them).
"""

import os

import pytest

from tests.conftest import resolve_command_line, run_concurrently

CASES = [
    (["--model=b9"], "error: unknown model 'b9'; choose one of b0"),
    (["--train_steps=abc"], "error: flag --train_steps=abc"),
    (["--train_steps=-5"], "error: train_steps must be >= 0, got -5"),
    (["--no_such_flag=1"], "error: Unknown command line flag 'no_such_flag'"),
    (["--config.train.nope=1"], "error: unknown config field --config.train.nope; did you mean"),
    (["--config.trian.steps=1"], "error: unknown config field --config.trian.steps; did you mean --config.train.steps"),
    (["--model_name=efficientnet-b9"], "error: unknown model 'b9'"),
    (["--model_name=efficientnet-x-b8"], "error: unknown model 'x-b8'; choose one of b0"),
    (["--mixup_alpha=-0.2"], "error: mixup_alpha must be a finite number >= 0, got -0.2"),
    (["--model=b0", "--model_name=efficientnet-b4"], "error: --model=b0 and --model_name=b4 set the same thing"),
    (["--flagfile=/nonexistent/flags"], "Unable to open flagfile"),
    (["--config.train.batch_size=big"], "error: flag --config.train.batch_size=big"),
    (["--augment_name=mixup"], "error: augment_name='mixup' is not one of"),
    (["--mode=fit"], "error: flag --mode=fit"),
    (["--dataset=mnist"], "error: --dataset must look like tfds:NAME"),
]
SLOW_CASES = [
    (["--data_dir=/nonexistent/imagenet"], "/nonexistent/imagenet/train-*-of-*"),
    (["--mode=eval"], "error: --mode=eval needs --model_dir"),
    (["--tpu=local"], "error: cannot initialize TPU 'local'"),
    (["--mode=predict", "cat.jpg"], "error: --mode=predict needs --init_checkpoint"),
]


def _run_all(cases, tmp_path):
    """Runs every case concurrently; each gets its own --model_dir (except the case about a missing one)."""
    command_lines = [
        args + ([] if "--mode=eval" in args else [f"--model_dir={tmp_path / f'run{i}'}"])
        for i, (args, _) in enumerate(cases)
    ]
    return [
        (p, p.stdout, p.stderr)
        for p in run_concurrently(command_lines, 300, env={"EFFICIENTNET_DEMO_DIR": str(tmp_path / "demo")})
    ]


@pytest.mark.parametrize("cases", [CASES, pytest.param(SLOW_CASES, marks=pytest.mark.slow)], ids=["flags", "data"])
def test_user_mistakes_are_one_line_and_exit_2(cases, tmp_path):
    for i, ((args, expected), (process, _, stderr)) in enumerate(zip(cases, _run_all(cases, tmp_path))):
        last_line = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        assert process.returncode == 2, (args, stderr[-2000:])
        assert expected in last_line, (args, last_line)
        assert "Traceback" not in stderr, args
        assert not os.path.exists(tmp_path / f"run{i}"), args  # nothing written for a refused command


def test_flag_mistakes_print_exactly_one_line_before_tensorflow_loads(tmp_path):
    for (args, _), (_, _, stderr) in zip(CASES, _run_all(CASES, tmp_path)):
        assert len(stderr.strip().splitlines()) == 1, (args, stderr)


@pytest.mark.parametrize(
    "args, variant",
    [
        (["--model_name=efficientnet-x-b0"], "x-b0"),
        (["--model_name=efficientnet-x-tpu-b3"], "x-tpu-b3"),
        (["--model_name=efficientnet-h-b5"], "h-b5"),
        (["--model_name=EfficientNet-X-GPU-B1"], "x-gpu-b1"),
        (["--model=h-tpu-b7"], "h-tpu-b7"),
    ],
)
def test_efficientnet_x_and_h_names_are_accepted(args, variant):
    """The original's spellings of EfficientNet-X/H resolve to their rows and pass the config's validation,
    parsed as main.py parses them (no TensorFlow run)."""
    config, _, _ = resolve_command_line(args)
    assert config["model"]["variant"] == variant
