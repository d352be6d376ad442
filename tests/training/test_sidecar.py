"""--mode=eval as a sidecar of a training process on the same model_dir, and what eval inherits from a run."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from tests.conftest import resolve_command_line, start_main
from training.errors import UserError
from training.session import run, sidecar, startup
from training.store import checkpoints, logs, rundir, temporaries

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS = 40


def _records(model_dir):
    path = os.path.join(model_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f]


def _wait(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.fixture(scope="module")
def sidecar_run(tmp_path_factory, demo_cache):
    """The original's pair of jobs as written: `--mode=eval --model_dir=D`, started first (D does not exist yet),
    and `--mode=train` into D, which only trains. The trainer is paused (SIGSTOP) at its first checkpoint until
    the eval job has recorded it, so the eval job provably evaluates checkpoints as they appear, not only the
    last one."""
    model_dir = str(tmp_path_factory.mktemp("sidecar") / "run")
    sidecar = start_main(["--mode=eval", f"--model_dir={model_dir}"])
    trainer = start_main(
        [
            f"--model_dir={model_dir}",
            f"--config.data.cache_dir={demo_cache}",
            "--mode=train",
            "--config.model.width_coefficient=0.1",
            "--config.model.depth_coefficient=0.1",
            "--image_size=32",
            "--train_batch_size=8",
            "--eval_batch_size=32",
            "--iterations_per_loop=2",
            "--steps_per_eval=2",
            f"--train_steps={STEPS}",
        ]
    )
    try:
        _wait(lambda: tf.train.latest_checkpoint(model_dir) is not None, 300, "no checkpoint from the trainer")
        trainer.send_signal(signal.SIGSTOP)
        first = int(tf.train.latest_checkpoint(model_dir).rsplit("-", 1)[1])
        _wait(lambda: any(r["step"] == first for r in _records(model_dir)), 300, "sidecar did not evaluate it")
        trainer.send_signal(signal.SIGCONT)
        trainer_out, trainer_err = trainer.communicate(timeout=600)
        sidecar_out, sidecar_err = sidecar.communicate(timeout=600)
    finally:
        for process in (trainer, sidecar):
            if process.poll() is None:
                process.kill()
    assert trainer.returncode == 0, trainer_err[-2000:]
    assert sidecar.returncode == 0, sidecar_err[-2000:]
    return model_dir, first, trainer_out, sidecar_out


def test_sidecar_evaluates_new_checkpoints_keeps_the_best_and_stops_at_the_final_step(sidecar_run):
    model_dir, first, trainer_out, sidecar_out = sidecar_run
    records = _records(model_dir)
    minival = [r for r in records if r["split"] == "minival"]
    steps = [r["step"] for r in minival]
    assert steps[0] == first < STEPS and steps[-1] == STEPS and steps == sorted(set(steps))
    assert all(r["ema"] and r["num_examples"] == 160 and r["weights"].endswith(f"ckpt-{r['step']}") for r in minival)
    assert records[-1]["split"] == "validation" and records[-1]["num_examples"] == 320  # the best, once, at the end
    best = checkpoints.read_best(model_dir)
    assert best["top_1"] == max(r["top_1"] for r in minival) and best in minival
    assert "eval " not in trainer_out  # the training job left evaluation to the sidecar
    assert rundir.read_run_config(model_dir)["eval"]["in_training"] is False  # what --mode=train means
    first, waiting = sidecar_out.splitlines()[:2]  # main.py's first line, then the wait for the trainer
    assert first == f"eval: the run in {model_dir} on the run's data; loading TensorFlow"
    assert waiting.startswith(f"waiting for a training run to checkpoint into {model_dir} (no limit)")
    assert "done: eval" in sidecar_out
    assert tf.io.gfile.glob(os.path.join(model_dir, logs.TENSORBOARD_DIR, "minival", "events.out.tfevents.*"))


def _eval_config(model_dir, *args):
    import ml_collections  # pylint: disable=import-outside-toplevel

    config, _, user_fields = resolve_command_line(["--mode=eval", f"--model_dir={model_dir}", *args])
    return ml_collections.ConfigDict(config), user_fields


def test_eval_of_a_finished_run_inherits_its_data_settings(sidecar_run, tmp_path):
    model_dir = str(tmp_path / "run")
    shutil.copytree(sidecar_run[0], model_dir)
    config, user_fields = _eval_config(model_dir)  # the ImageNet recipe's holdout 20, variant resolution ...
    ctx = startup.setup(config, user_fields=user_fields)
    assert ctx.config.model.image_size == 32 and ctx.config.data.holdout_shards == 2  # ... replaced by the run's
    assert ctx.source.num_examples("minival") == 160 and ctx.config.data.cache_dir

    # A setting the user gives wins. 0.6, not 0.5: 0.5 is the default crop at 32 px (32 / 64), so it would be the
    # evaluation the eval job already recorded, which is not appended twice.
    config, user_fields = _eval_config(model_dir, "--config.data.crop_fraction=0.6")
    before = len(_records(model_dir))
    summary = run.run(config, user_fields=user_fields)
    record = summary["final_eval"]
    assert (record["split"], record["image_size"], record["crop_fraction"]) == ("validation", 32, 0.6)
    assert record["weights"] == "archive/best"
    assert len(_records(model_dir)) == before + 1


def test_an_eval_job_run_again_after_it_finished_adds_no_second_line(sidecar_run, tmp_path, capsys):
    """... and sweeps what its killed predecessor left once the trainer has ended (#25 rows 3 and 9)."""
    model_dir = str(tmp_path / "run")
    shutil.copytree(sidecar_run[0], model_dir)
    before = _records(model_dir)
    killed = subprocess.Popen([sys.executable, "-c", "pass"])
    killed.wait()
    leftover = os.path.join(model_dir, "archive.tmp-" + temporaries.token(pid=killed.pid))
    os.makedirs(leftover)
    config, user_fields = _eval_config(model_dir)  # the same command, restarted
    summary = run.run(config, user_fields=user_fields)
    assert _records(model_dir) == before and summary["final_eval"] == before[-1]
    out = capsys.readouterr().out
    assert f"validation at step {before[-1]['step']} is already in metrics.jsonl" in out
    assert not os.path.exists(leftover) and "removed 1 leftover(s)" in out


def test_sidecar_refuses_a_run_that_evaluates_itself(sidecar_run, tmp_path):
    model_dir = str(tmp_path / "run")
    shutil.copytree(sidecar_run[0], model_dir)
    with open(os.path.join(model_dir, "config.json")) as f:
        written = json.load(f)
    written["eval"]["in_training"] = True
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(written, f)
    config, user_fields = _eval_config(model_dir, "--eval_timeout=5")
    with pytest.raises(UserError, match="evaluates its own checkpoints"):
        run.run(config, user_fields=user_fields)


def test_a_checkpoint_rotated_away_while_the_eval_job_reads_it_is_skipped(sidecar_run, tmp_path, capsys):
    model_dir = str(tmp_path / "run")
    shutil.copytree(sidecar_run[0], model_dir)
    config, user_fields = _eval_config(model_dir, "--eval_timeout=300")
    ctx = startup.setup(config, user_fields=user_fields)
    job = sidecar.Sidecar(ctx)
    prefix = tf.train.latest_checkpoint(model_dir)
    for path in tf.io.gfile.glob(prefix + ".data-*"):  # the index opened, the data deleted by the rotation
        os.remove(path)
    before = _records(model_dir)
    job._evaluate(prefix, STEPS)  # pylint: disable=protected-access
    assert f"checkpoint {prefix} no longer exists; skipped" in capsys.readouterr().out
    assert _records(model_dir) == before
