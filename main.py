"""Train, evaluate and export EfficientNet: `python main.py --model=b4 --tpu=NAME --data_dir=gs://... --model_dir=gs://...`.

Training without data (--data_dir/--dataset) runs the CPU-sized demo (configs/demo.py) on generated demo data;
everything else starts from the paper's recipe (configs/imagenet.py); the rule is configs/cli.py `preset_name`,
applied to the parsed flags. Any config field can be overridden as --config.section.field=value
(--help_config lists them); the named flags below, one table in configs/cli.py, keep the original
tensorflow/tpu main.py's names, and every flag of that main.py is accepted.

--mode=predict takes image files, folders and globs as positional arguments, e.g.
    python main.py --mode=predict --model_dir=runs/mine photo.jpg photos/ 'more/*.png' --top_k=3 --output=out.jsonl
"""

import os
import re
import sys

# TensorFlow's C++ INFO/WARNING lines drown the progress output. This filters those logged after TensorFlow
# initializes its logging; the lines printed before that, and the ERROR-level "failed call to cuInit" of a
# machine without a GPU driver (XLA's stream_executor cuda_platform.cc), by training.errors.startup_lines_filtered.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402  (after the environment is set)

from configs import base, cli  # noqa: E402
from training import checks, errors, preflight  # noqa: E402  (no TensorFlow: bad flags fail before it loads)

cli.define_flags(flags.FLAGS)


def _user_error(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _print_and_exit(text):
    """Prints help and exits 0, also into a pipe closed early (`--help | head`): no BrokenPipeError traceback."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush then writes nowhere
    sys.exit(0)


def resolve_config(flag_values=flags.FLAGS):
    """(config, notes, the "section.field" names the command line set) from parsed flags: configs/cli.py's rule
    for the preset, the overrides and the named flags, then the config's validation (training/checks.py)."""
    config, notes = cli.resolve(flag_values)
    checks.validate_config(config)
    return config, notes, cli.fields_given(flag_values)


def parse_flags(argv):
    """absl flag parsing with the project's convention for user mistakes: one line, exit status 2.

    --help (configs/cli.py `help_lines`: the named flags in groups) exits 0 here; --help_config lists the
    config fields with the defaults of the preset this command line would use, and so does --helpfull after
    absl's list of flags.
    """
    if any(re.match(r"^-{1,2}(help|helpshort|h|\?)$", arg) for arg in argv[1:]):
        _print_and_exit(cli.help_lines(flags.FLAGS))
    try:
        remaining = cli.read_flags(argv, flags.FLAGS)
    except flags.Error as e:
        _user_error(e)
    except (OSError, SyntaxError) as e:  # the --config file itself
        _user_error(errors.config_file_error(e))
    except (AttributeError, KeyError, TypeError, ValueError) as e:  # --config.<unknown or mistyped field>
        bad = cli.bad_override(argv)
        _user_error(cli.unknown_field_message(bad) if bad else f"bad config override: {errors.first_line(e)}")
    except SystemExit as e:  # absl's help flags exit 1 after printing the help: asking for help is no error
        if any(re.match(r"^-{1,2}helpfull(=true)?$", arg, re.IGNORECASE) for arg in argv[1:]):
            print(f"\nconfig fields (--config.section.field=value):\n{cli.describe_fields()}")
        sys.exit(0 if e.code == 1 else e.code)
    if flags.FLAGS.help_config:
        try:
            config, _ = cli.resolve(flags.FLAGS)
        except (cli.FlagError, TypeError, OSError) as e:
            _user_error(e)
        _print_and_exit(cli.describe_fields(config, cli.preset_label(flags.FLAGS, config)))
    return remaining


def main(argv):
    """Runs the command; a Ctrl-C before the run's signal handling is installed (or after it) ends it with one
    line and status 130: nothing is being written then that a rename does not protect."""
    try:
        _main(argv)
    except KeyboardInterrupt:
        print("interrupted: stopped before a checkpoint was saved; rerun the same command to resume", file=sys.stderr)
        sys.exit(errors.INTERRUPTED_EXIT_CODE)


def _main(argv):
    image_files = argv[1:]  # positional arguments: the image files, folders and globs of --mode=predict
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # absl INFO lines from checkpoint saving are noise here
    try:
        config, notes, user_fields = resolve_config()
    except (errors.UserError, cli.FlagError, TypeError) as e:  # TypeError: a value of the wrong type for a field
        _user_error(e)
    except OSError as e:  # ml_collections defers a missing --config file's error to the first access
        _user_error(errors.config_file_error(e))
    for note in notes:
        print(note, file=sys.stderr)
    preflight.complete_model_dir(config)
    try:
        preflight.check_remote_names(config, image_files)
    except errors.UserError as e:
        _user_error(e)
    # On stdout beside the progress lines, but on stderr for predict, whose stdout is its results.
    stream = sys.stderr if base.MODE_TABLE[config.runtime.mode].takes_files else sys.stdout
    print(preflight.first_line(config, cli.preset_label(flags.FLAGS, config), image_files), file=stream, flush=True)
    with errors.startup_lines_filtered():
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        from training.session import run  # pylint: disable=import-outside-toplevel  (loads TensorFlow)

        # Physical device discovery is where cuInit runs. Not list_logical_devices: that initializes the
        # runtime, after which MultiWorkerMirroredStrategy can no longer configure its collectives.
        tf.config.list_physical_devices("GPU")
    try:
        if image_files and not base.MODE_TABLE[config.runtime.mode].takes_files:
            raise errors.UserError(
                f"unexpected arguments {' '.join(image_files)} (image files, folders and globs go with --mode=predict)"
            )
        summary = run.run(config, image_files=image_files, user_fields=user_fields)
    except errors.UserError as e:
        _user_error(e)
    except errors.NumericalError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(3)
    except errors.Preempted as e:
        print(str(e), file=sys.stderr)
        sys.exit(e.exit_code)
    except (tf.errors.OpError, OSError) as e:
        message = errors.environment_fault(e, tf)
        if message is None:
            raise
        _user_error(message)
    if summary.get("failed"):  # predict: the files that could not be read (each reported on its own line)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
