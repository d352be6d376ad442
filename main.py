"""Train, evaluate and export EfficientNet: `python main.py --model=b4 --tpu=NAME --data_dir=gs://... --model_dir=gs://...`.

With no data flags it runs the CPU-sized demo (configs/demo.py) on generated demo data; with --data_dir or
--dataset it starts from the paper's recipe (configs/imagenet.py). Any config field can be overridden as
--config.section.field=value; the named flags below are shortcuts that keep the original's names.
"""
import contextlib
import errno
import os
import re
import sys
import tempfile

# TensorFlow's C++ INFO/WARNING lines drown the progress output; errors still show. Set before TF loads.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402  (after the environment is set)
from ml_collections import config_flags  # noqa: E402

import configs  # noqa: E402
from training import checks, errors  # noqa: E402  (no TensorFlow: bad flags fail before it loads)

_CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
config_flags.DEFINE_config_file("config", None, "Config file (default: configs/demo.py without data flags, "
                                "configs/imagenet.py with them).", lock_config=True)

_str, _int, _float, _bool = flags.DEFINE_string, flags.DEFINE_integer, flags.DEFINE_float, flags.DEFINE_bool
_str("model", None, "Variant: b0 ... b7, b8, l2.")
_str("tpu", None, "Cloud TPU name, grpc://host:port, or 'local' on a TPU VM.")
_str("data_dir", None, "ImageNet-format TFRecords (train-*-of-*, validation-*-of-*); absent: demo data.")
_str("dataset", None, "TensorFlow Datasets source instead of --data_dir, e.g. tfds:imagenet2012.")
_str("model_dir", None, "Where checkpoints, metrics and the archive go (default runs/<model>-<time>).")
flags.DEFINE_enum("mode", None, ["train", "eval", "train_and_eval", "export", "predict"], "What to run.")
_int("train_steps", None, "Training steps (default: config epochs x steps per epoch).")
_int("train_batch_size", None, "Global training batch.")
_int("eval_batch_size", None, "Global evaluation batch.")
_int("steps_per_eval", None, "Training steps between minival evaluations.")
_int("iterations_per_loop", None, "Training steps per host call.")
_int("image_size", None, "Input resolution (default: the variant's).")
_int("num_label_classes", None, "Classes (default: from the data).")
_int("holdout_shards", None, "Train shards held out as minival.")
_str("augment_name", None, "autoaugment, randaugment or none.")
_float("base_learning_rate", None, "Learning rate per 256 images (scaled linearly with the batch).")
_float("moving_average_decay", None, "EMA decay.")
_float("weight_decay", None, "L2 weight decay.")
_float("label_smoothing", None, "Label smoothing.")
_bool("use_bfloat16", None, "bfloat16 activations (default: on TPU only).")
_str("export_dir", None, "Where to write the SavedModel.")
_str("init_checkpoint", None, "Weights to start from, evaluate or export.")
_int("seed", None, "Random seed.")
_bool("deterministic", None, "Deterministic ops and input order (bit-exact resume).")


def with_default_config(argv):
    """Adds --config=<demo or imagenet> when the user gave none (absl needs it before the overrides).

    The demo config is for training without data; predicting and exporting published weights (--init_checkpoint
    without a --model_dir to take the network from) and anything given data start from the ImageNet recipe at
    the variant's resolution.
    """
    if any(arg == "--config" or arg.startswith("--config=") for arg in argv[1:]):
        return argv
    names = {arg.split("=")[0] for arg in argv[1:]}
    has_data = bool(names & {"--data_dir", "--dataset"})
    predicting = "--mode=predict" in argv[1:]
    exporting_weights = "--mode=export" in argv[1:] and "--init_checkpoint" in names and "--model_dir" not in names
    name = "imagenet.py" if has_data or predicting or exporting_weights else "demo.py"
    return argv[:1] + [f"--config={os.path.join(_CONFIG_DIR, name)}"] + argv[1:]


# What TensorFlow prints to stderr while it loads, before its logging is configured (TF_CPP_MIN_LOG_LEVEL does
# not reach these): oneDNN and CPU-feature notices, and the CUDA probes of a machine without GPUs.
_STARTUP_NOISE = re.compile(r"All log messages before absl::InitializeLog|\] oneDNN custom operations are on"
                            r"|cudart_stub\.cc|cpu_feature_guard\.cc|^To enable the following instructions"
                            r"|cuda_platform\.cc:\d+\] failed call to cuInit|Unable to register cu(DNN|FFT|BLAS)"
                            r"|cuda_(dnn|fft|blas)\.cc|computation_placer\.cc")
# Disk full, read-only or permission-denied writes: one line, not a traceback (any other OSError is a bug).
_ENVIRONMENT_FAULTS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def _environment_fault(error, tf):
    """One line for a full or read-only disk or an unreachable gs:// bucket (nothing to debug in our code), None
    for any other error (a bug: its traceback stays). Device memory exhaustion is a ResourceExhaustedError too;
    its first line says "OOM"."""
    if isinstance(error, OSError):
        if error.errno not in _ENVIRONMENT_FAULTS:
            return None
        return f"{error.strerror}: {error.filename}" if error.filename else errors.first_line(error)
    network = isinstance(error, tf.errors.FailedPreconditionError) and "Error executing an HTTP request" in str(error)
    if not network and not isinstance(error, (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError,
                                              tf.errors.UnavailableError)):
        return None
    text = " ".join(line.strip() for line in error.message.splitlines() if line.strip())
    # Without the graph-function prefix and op suffix of eager errors: "{{function_node ...}} PATH; No space
    # left on device [Op:SaveV2]" -> "PATH; No space left on device".
    return re.sub(r"\s*\[Op:\w+\]$", "", re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", text))


@contextlib.contextmanager
def _startup_lines_filtered():
    """Captures file descriptor 2 while TensorFlow loads and writes back every line but its start-up notices:
    a real error (a library that fails to load) still shows."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not _STARTUP_NOISE.search(line):
                    sys.stderr.write(line)
            sys.stderr.flush()


def _user_error(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _config_file_error(error):
    """One line for a --config file that cannot be loaded: missing (ml_collections reports it as an OSError
    whose cause names the file) or not Python."""
    if isinstance(error, SyntaxError):
        return f"--config {error.filename}: {error.msg} at line {error.lineno}"
    lines = [line.strip() for line in str(error.__cause__ or error).splitlines() if line.strip()]
    return f"cannot load --config: {lines[-1] if lines else type(error).__name__}"


def parse_flags(argv):
    """absl flag parsing with the project's convention for user mistakes: one line, exit status 2."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        _user_error(e)
    except (OSError, SyntaxError) as e:  # the --config file itself
        _user_error(_config_file_error(e))
    except (AttributeError, KeyError, TypeError, ValueError) as e:  # --config.<unknown or mistyped field>
        overrides = " ".join(arg for arg in argv[1:] if arg.startswith("--config."))
        _user_error(f"bad config override ({overrides}): no field {str(e).strip(chr(34))}; "
                    "see configs/base.py for the fields")


def main(argv):
    image_files = argv[1:]  # positional arguments: the image files of --mode=predict
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # absl INFO lines from checkpoint saving are noise here
    try:
        config = configs.apply_flag_overrides(flags.FLAGS.config, {name: flags.FLAGS[name].value
                                                                   for name in configs.FLAG_FIELDS})
        checks.validate_config(config)
    except (errors.UserError, TypeError) as e:  # TypeError: a value of the wrong type for a config field
        _user_error(e)
    except OSError as e:  # ml_collections defers a missing --config file's error to the first access
        _user_error(_config_file_error(e))
    with _startup_lines_filtered():
        from training import run  # pylint: disable=import-outside-toplevel  (loads TensorFlow)
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        tf.config.list_physical_devices()  # device discovery logs its own lines (cuInit)
    try:
        if image_files and config.runtime.mode != "predict":
            raise errors.UserError(f"unexpected arguments {' '.join(image_files)} (image files go with --mode=predict)")
        run.run(config, image_files=image_files)
    except errors.UserError as e:
        _user_error(e)
    except errors.NumericalError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(3)
    except errors.Preempted as e:
        print(str(e), file=sys.stderr)
        sys.exit(errors.PREEMPTED_EXIT_CODE)
    except (tf.errors.OpError, OSError) as e:
        message = _environment_fault(e, tf)
        if message is None:
            raise
        _user_error(message)


if __name__ == "__main__":
    app.run(main, argv=with_default_config(sys.argv), flags_parser=parse_flags)
