"""Training in mixed_float16 (GPUs of compute capability 7.x pick it by default; tpu/strategy.py): on CPU with the
same policy, the run trains with dynamic loss scaling (training/core/state.py with_loss_scaling), its
XLA-compiled step included; the scale moves on overflow and is part of the checkpoint; a kill resumes bit-identically;
a resume in another precision that has no loss scale is refused before anything is written."""

import json
import signal
import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import start_main, tiny_config
from tests.training.conftest import checkpoint_values, resumable_flags, wait_for_line
from training.errors import UserError
from training.session import run

pytestmark = pytest.mark.slow

# Keras' default initial scale, which the tiny network's first steps overflow in float16 (the stem kernel's
# gradient sums 32 x 32 x 8 products): the scale must fall before the run trains.
INITIAL_SCALE = 2.0**15
SCALED = {
    "runtime.precision": "mixed_float16",
    "train.loss_scale_initial": INITIAL_SCALE,
}


@pytest.fixture(autouse=True)
def _restore_policy():
    """run.run sets the global Keras dtype policy; the other tests in this process build float32 models."""
    previous = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(previous)


def _tensor(values, suffix):
    [name] = [k for k in values if k.endswith(suffix)]
    return values[name]


def test_a_float16_run_compiled_with_xla_lowers_its_scale_trains_and_checkpoints_it(tmp_path, demo_cache):
    """The path of one pre-Ampere GPU: mixed_float16 with the step compiled by XLA (tpu/strategy.py)."""
    model_dir = tmp_path / "run"
    overrides = {**SCALED, "runtime.mode": "train", "eval.in_training": False, "runtime.jit_compile": True}
    run.run(tiny_config(model_dir, demo_cache, **overrides))
    values = checkpoint_values(tf.train.latest_checkpoint(str(model_dir)))
    scale = float(_tensor(values, "optimizer/dynamic_scale/.ATTRIBUTES/VARIABLE_VALUE"))
    assert scale < INITIAL_SCALE  # it halved on the overflowed steps
    assert int(_tensor(values, "optimizer/inner_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE")) == 6
    # The overflowed steps' infinite gradients reached neither the weights nor the EMA shadows, and did not trip
    # the NaN guard (the run ended normally: the loss it checks is the unscaled one).
    weights = {k: v for k, v in values.items() if k.startswith(("model/", "ema/")) and v.dtype.kind == "f"}
    assert any(k.startswith("ema/") for k in weights)
    assert all(np.isfinite(v).all() for v in weights.values())
    # The skipped steps did not stop the training: RMSProp's slots (mean squares at one, momenta at zero at the
    # start) moved.
    slots = [v for k, v in values.items() if k.startswith("optimizer/inner_optimizer/_variables/")]
    assert slots and any(not (np.all(s == 1.0) or np.all(s == 0.0)) for s in slots)
    with open(model_dir / "config.json") as f:
        assert json.load(f)["runtime"]["precision"] == "mixed_float16"

    # A resume in float32 would meet checkpoints with a loss scale it does not have: refused, nothing written.
    before = (model_dir / "config.json").read_bytes()
    resumed = tiny_config(model_dir, demo_cache, **{**overrides, "runtime.precision": "float32", "train.steps": 9})
    with pytest.raises(UserError) as error:
        run.run(resumed)
    assert "was trained in mixed_float16 and this command would resume it in float32" in str(error.value)
    assert "\n" not in str(error.value)
    assert (model_dir / "config.json").read_bytes() == before
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-6")


def test_a_kill_during_float16_training_resumes_bit_identically(tmp_path, demo_cache):
    """The loss scale and its growth count are restored with the weights: with the scale growing every 2 finite
    steps, a resume that lost either would train other weights."""
    steps = 8
    flags = [
        "--precision=mixed_float16",
        f"--config.train.loss_scale_initial={INITIAL_SCALE}",
        "--config.train.loss_scale_growth_steps=2",
    ]
    reference = tmp_path / "reference"
    done = start_main(resumable_flags(reference, demo_cache, steps) + flags)
    out, err = done.communicate(timeout=600)
    assert done.returncode == 0, err[-2000:]
    assert "precision: mixed_float16 with dynamic loss scaling (as set)" in out

    interrupted = tmp_path / "interrupted"
    process = start_main(resumable_flags(interrupted, demo_cache, steps) + flags, stderr=subprocess.STDOUT)
    # Killed right after the second host loop's progress line (step 4): its checkpoint save is under way.
    progress_lines = iter(range(2, 0, -1))
    assert wait_for_line(process, lambda line: line.startswith("step ") and next(progress_lines) == 1)
    assert process.poll() is None, "the run ended before its kill point"
    process.send_signal(signal.SIGKILL)
    output, _ = process.communicate(timeout=120)
    assert process.returncode in (0, -signal.SIGKILL), output[-2000:]
    final = start_main(resumable_flags(interrupted, demo_cache, steps) + flags)
    out, err = final.communicate(timeout=600)
    assert final.returncode == 0, err[-2000:]
    assert "resumed from" in out

    expected, got = (
        checkpoint_values(str(reference / f"ckpt-{steps}")),
        checkpoint_values(str(interrupted / f"ckpt-{steps}")),
    )
    assert expected.keys() == got.keys()
    assert any(k.endswith("optimizer/dynamic_scale/.ATTRIBUTES/VARIABLE_VALUE") for k in expected)
    different = [k for k in expected if not np.array_equal(expected[k], got[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
