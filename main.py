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
from ml_collections import config_flags  # noqa: E402

from configs import base, cli, demo  # noqa: E402
from training import checks, errors  # noqa: E402  (no TensorFlow: bad flags fail before it loads)

_DEFINE = {"string": flags.DEFINE_string, "integer": flags.DEFINE_integer, "float": flags.DEFINE_float,
           "bool": flags.DEFINE_bool}


# The command line ml_collections scans for --config.* overrides. It reads it (and any --flagfile in it) as
# soon as --config is defined, so it stays empty until parse_flags fills it: a missing flagfile is then absl's
# one-line error, not a traceback at import.
_ARGV = []


def define_flags(flag_values=flags.FLAGS, argv=None):
    """Defines --config and every row of configs/cli.py's table on `flag_values` (tests pass their own).

    argv: the list ml_collections scans for the --config.* overrides, filled before parsing (default _ARGV).
    """
    config_flags.DEFINE_config_file(
        "config", None, "Config file, e.g. configs/transfer.py:cifar10. Default: configs/demo.py to "
        "train without data, else configs/imagenet.py (the recipe); --help_config lists every field.",
        flag_values=flag_values, lock_config=True, sys_argv=_ARGV if argv is None else argv)
    flags.DEFINE_bool("help_config", False, "List every config field with its default and comment, and exit.",
                      flag_values=flag_values)
    demo_config = demo.get_config()
    for flag in cli.FLAGS:
        default, help_text = cli.shown_default(flag), cli.help_text(flag, demo_config)
        if flag.kind == "enum":
            flags.DEFINE_enum(flag.name, default, base.MODES, help_text, flag_values=flag_values)
        else:
            _DEFINE[flag.kind](flag.name, default, help_text, flag_values=flag_values)


define_flags()


def _user_error(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _bad_override(argv):
    """The first --config.section.field on the command line that names no field of the schema, else None."""
    known = {f"{section}.{field}" for section, fields in base.get_config().items() for field in fields}
    for arg in argv[1:]:
        name = arg.split("=", 1)[0].lstrip("-")
        name = name[2:] if name.startswith("noconfig.") else name
        if name.startswith("config.") and name[len("config."):] not in known:
            return arg
    return None


def with_schema_config(argv):
    """argv with --config=configs/base.py first when the user gave no --config: ml_collections registers the
    --config.* override flags only while parsing a --config. The schema is a neutral start; the rule choosing
    the preset (configs/cli.py `resolve`) runs on the parsed values. The test for a user's --config is
    ml_collections' own (after --flagfile expansion), so it holds for every spelling it accepts."""
    expanded = flags.FLAGS.read_flags_from_files(argv, force_gnu=False)
    if any(re.match(r"^-{1,2}config(=|$)", arg) for arg in expanded[1:]):
        return argv
    return argv[:1] + [f"--config={cli.BASE_CONFIG}"] + argv[1:]


def _print_and_exit(text):
    """Prints help and exits 0, also into a pipe closed early (`--help | head`): no BrokenPipeError traceback."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush then writes nowhere
    sys.exit(0)


def parse_flags(argv):
    """absl flag parsing with the project's convention for user mistakes: one line, exit status 2.

    --help (configs/cli.py `help_lines`: the named flags in groups) exits 0 here; --help_config lists the
    config fields with the defaults of the preset this command line would use, and so does --helpfull after
    absl's list of flags.
    """
    if any(re.match(r"^-{1,2}(help|helpshort|h|\?)$", arg) for arg in argv[1:]):
        _print_and_exit(cli.help_lines(flags.FLAGS))
    try:
        _ARGV[:] = argv
        argv = with_schema_config(argv)
        remaining = flags.FLAGS(argv)
    except flags.Error as e:
        _user_error(e)
    except (OSError, SyntaxError) as e:  # the --config file itself
        _user_error(errors.config_file_error(e))
    except (AttributeError, KeyError, TypeError, ValueError) as e:  # --config.<unknown or mistyped field>
        bad = _bad_override(argv)
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
        print("interrupted: stopped before a checkpoint was saved; rerun the same command to resume",
              file=sys.stderr)
        sys.exit(errors.INTERRUPTED_EXIT_CODE)


def _main(argv):
    image_files = argv[1:]  # positional arguments: the image files, folders and globs of --mode=predict
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # absl INFO lines from checkpoint saving are noise here
    try:
        config, notes = cli.resolve(flags.FLAGS)
        checks.validate_config(config)
    except (errors.UserError, cli.FlagError, TypeError) as e:  # TypeError: a value of the wrong type for a field
        _user_error(e)
    except OSError as e:  # ml_collections defers a missing --config file's error to the first access
        _user_error(errors.config_file_error(e))
    for note in notes:
        print(note, file=sys.stderr)
    with errors.startup_lines_filtered():
        from training.session import run  # pylint: disable=import-outside-toplevel  (loads TensorFlow)
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        # Physical device discovery is where cuInit runs. Not list_logical_devices: that initializes the
        # runtime, after which MultiWorkerMirroredStrategy can no longer configure its collectives.
        tf.config.list_physical_devices("GPU")
    try:
        if image_files and config.runtime.mode != "predict":
            raise errors.UserError(f"unexpected arguments {' '.join(image_files)} (image files, folders and globs "
                                   "go with --mode=predict)")
        summary = run.run(config, image_files=image_files, user_fields=cli.fields_given(flags.FLAGS))
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
