"""Shared test settings: quiet TensorFlow logs and two logical CPU devices for distribution tests; the one tiny
run (configs/tiny.py) as a config and as a command line, the one way tests launch main.py, and main.py's own
command-line parsing for tests of what a command line means."""

import json
import os
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_EXIT_STATUS = pytest.StashKey[int]()

# MirroredStrategy tests need two logical CPU devices; this must happen before any op runs.
_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
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


def tiny_config(model_dir, cache_dir, **overrides):
    """configs/tiny.py (a 7-block, 32-px network that traces in seconds) with this test's model_dir and demo
    cache. overrides: "section.field" -> value, e.g. {"train.steps": 9}."""
    from configs import tiny  # pylint: disable=import-outside-toplevel

    config = tiny.get_config()
    config.data.cache_dir = cache_dir
    config.runtime.model_dir = str(model_dir)
    for dotted, value in overrides.items():
        section, field = dotted.split(".")
        config[section][field] = value
    return config


def tiny_flags(model_dir, cache_dir, *flags):
    """The same tiny run as a main.py command line: configs/tiny.py into model_dir on the demo data cached in
    cache_dir, then `flags`."""
    return ["--config=configs/tiny.py", f"--model_dir={model_dir}", f"--config.data.cache_dir={cache_dir}", *flags]


def start_main(args, env=None, **popen):
    """`python main.py ARGS` started from the repository root, stdout and stderr piped as text; env: variables
    added to this process's; popen: Popen arguments that replace these (e.g. stdout=a pty)."""
    kwargs = {
        "cwd": REPO,
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
        "text": True,
        "env": {**os.environ, **(env or {})},
        **popen,
    }
    return subprocess.Popen([sys.executable, "main.py", *args], **kwargs)


def run_script(script, args, timeout, env=None):
    """Runs a root script (`python eval_ckpt_main.py ARGS`) from the repository root to its end: a
    CompletedProcess with its stdout and stderr as text; env: variables added to this process's."""
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def without_tensorflow(directory):
    """Environment variables under which `import tensorflow` fails (a stand-in package first on PYTHONPATH): a
    command that still succeeds or reports its one line did not load TensorFlow."""
    package = os.path.join(str(directory), "tensorflow")
    os.makedirs(package, exist_ok=True)
    with open(os.path.join(package, "__init__.py"), "w") as f:
        f.write('raise ImportError("tensorflow was imported")\n')
    return {"PYTHONPATH": os.pathsep.join([str(directory), REPO, os.environ.get("PYTHONPATH", "")])}


def run_main(args, timeout, env=None):
    """Runs main.py with `args` to its end: a CompletedProcess with its stdout and stderr (read while it runs)."""
    return run_concurrently([args], timeout, env=env)[0]


def run_concurrently(command_lines, timeout, env=None):
    """[CompletedProcess] of main.py for each args in command_lines, all started before any is waited for (each
    process loads TensorFlow on its own)."""
    processes = [start_main(args, env=env) for args in command_lines]
    outputs = [p.communicate(timeout=timeout) for p in processes]
    return [subprocess.CompletedProcess(p.args, p.returncode, *out) for p, out in zip(processes, outputs)]


def resolve_command_line(args):
    """(config as a dict, notes, user fields) that `python main.py ARGS` runs with: main.py's own parsing
    (configs/cli.py read_flags, main.resolve_config) on fresh absl flags."""
    from absl import flags  # pylint: disable=import-outside-toplevel

    import main  # pylint: disable=import-outside-toplevel
    from configs import cli  # pylint: disable=import-outside-toplevel

    flag_values, scanned = flags.FlagValues(), []
    cli.define_flags(flag_values, scanned)
    cli.read_flags(["main.py", *args], flag_values, scanned)
    config, notes, user_fields = main.resolve_config(flag_values)
    return json.loads(config.to_json()), notes, user_fields


def write_tiny_run(model_dir, num_classes=8, seed=0):
    """A model_dir as a finished tiny run (configs/tiny.py's network) leaves it for eval, export and predict:
    config.json, archive/ (model and EMA, written by the run's own archive function) and class_names.txt. The
    classifier is peaked (large random weights, so top classes are far apart) and the EMA averages are another
    network's weights, so raw and EMA predictions differ. Returns (raw model, EMA model): plain Keras models
    holding the two sets of weights."""
    import keras  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel

    from efficientnet import ema as ema_lib  # pylint: disable=import-outside-toplevel
    from training.core import recipe  # pylint: disable=import-outside-toplevel
    from training.store import checkpoints, rundir  # pylint: disable=import-outside-toplevel

    config = tiny_config(model_dir, os.path.join(str(model_dir), "no-demo-cache"), **{"model.num_classes": num_classes})
    network = recipe.make_plan(config).network.inference()
    models = []
    for offset in (0, 1):
        keras.utils.set_random_seed(seed + offset)
        model = network.build()
        head = model.get_layer("predictions")
        rng = np.random.default_rng(seed + offset)
        head.set_weights([rng.normal(scale=3.0, size=w.shape).astype(w.dtype) for w in head.get_weights()])
        models.append(model)
    raw, averaged = models
    ema = ema_lib.ExponentialMovingAverage(ema_lib.ema_variables(raw))
    for shadow, value in zip(ema.shadows, ema_lib.ema_variables(averaged)):
        shadow.assign(value)
    checkpoints.archive_best(str(model_dir), raw, ema, {"step": 6, "split": "minival", "top_1": 0.5, "top_5": 0.9})
    rundir.write_config(config, str(model_dir))
    with open(os.path.join(str(model_dir), "class_names.txt"), "w") as f:
        f.write("".join(f"shape {i}\n" for i in range(num_classes)))
    return raw, averaged


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """(model_dir, raw model, EMA model) of `write_tiny_run`, written once per session."""
    model_dir = tmp_path_factory.mktemp("tiny_run") / "run"
    raw, averaged = write_tiny_run(model_dir)
    return str(model_dir), raw, averaged


def eval_probabilities(model, paths, image_size=32):
    """float32 [files, classes]: a plain Keras call of `model` on each file's eval pixels (the bytes data/folders.py
    canonical_jpeg gives, then data/preprocessing.py preprocess_for_eval at the variant's crop and bicubic kernel),
    one file at a time: the oracle for what the scripts print."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    from data import folders, preprocessing  # pylint: disable=import-outside-toplevel

    rows = []
    for path in paths:
        data = folders.canonical_jpeg(tf.io.read_file(path))
        pixels = preprocessing.preprocess_for_eval(
            data, image_size, crop_fraction=preprocessing.default_crop_fraction(image_size), resize_method="bicubic"
        )
        rows.append(tf.nn.softmax(model(pixels[None], training=False)).numpy()[0])
    return np.stack(rows)
