"""The original's two other entry points, eval_ckpt_main.py and export_model.py (tensorflow/tpu
models/official/efficientnet at commit 7dc921f846c9e4071f3884b768a7ddf521272a49), on this project's set-up.

The root scripts of the same names define the original's flags and hand their values over as an
`EvalCkptRequest` or an `ExportModelRequest`. A request becomes a config of the recipe (configs/imagenet.py) set
up as --mode=predict is (training/session/startup.py `setup`: the network of the weights, no data unless
given), and the work runs on training/serving/: the weights through scoring.py's one loading path, the pixels
through predict.py's eval preprocessing, the SavedModel through export.py and the .tflite file through
tflite.py's converter. Nothing here is a second way to load, preprocess or export.

--ckpt_dir names the weights in any form this project reads: a directory of original TF1 checkpoints (its
latest checkpoint, as the original's tf.train.latest_checkpoint, utils.py:421 and export_model.py:50) or a
checkpoint prefix; one of this project's model_dirs (its archived best, else its latest checkpoint; the
network is the one its config.json records), its archive/ or a ckpt-N prefix in it; or a Keras .h5 file.
--enable_ema (default true) reads the EMA averages, false the raw trained variables (utils.py:422-429): both
for our checkpoints and original ones; a Keras file holds one set of weights and is refused with false.

`check()` of a request needs no TensorFlow, so that a mistake in the flags is one line before TensorFlow
loads, as with main.py; the work imports the TensorFlow modules inside its functions for that reason.
"""

import dataclasses
import os
import re
import shutil
import sys
import tempfile
from typing import Optional

from absl import flags

import efficientnet
from configs import cli, imagenet
from training import errors
from training.errors import UserError

RUNMODES = ("examples", "imagenet")
# The original's error for --quantize without --data_dir (export_model.py:141-144), as one line.
QUANTIZE_NEEDS_DATA = (
    "Post training quantization requires data_dir flag to point to the calibration dataset. To export a float "
    "model, set --quantize=False."
)
ADVPROP_REFUSED = (
    "--advprop_preprocessing is not implemented here: the models normalize pixels inside with each variant's mean "
    "and standard deviation, not AdvProp's scaling to [-1, 1] (eval_ckpt_main.py:66-68)"
)


def _variant(model_name):
    """Our variant key of an original model name ("efficientnet-b4" -> "b4", configs/cli.py), checked."""
    variant = cli.BY_NAME["model_name"].convert(model_name or "")
    if variant not in efficientnet.VARIANTS:
        known = ", ".join(f"efficientnet-{name}" for name in efficientnet.VARIANTS)
        raise UserError(f"unknown --model_name {model_name!r}; choose one of {known}")
    return variant


@dataclasses.dataclass(frozen=True)
class EvalCkptRequest:
    """The flags of eval_ckpt_main.py (the original's lines 35-55, same names, defaults and meaning); `given`
    holds the names of those the command line set."""

    model_name: str
    runmode: str
    ckpt_dir: str
    enable_ema: bool
    export_ckpt: Optional[str]
    example_img: str
    labels_map_file: str
    include_background_label: bool
    advprop_preprocessing: bool
    num_images: int
    imagenet_eval_glob: Optional[str]
    imagenet_eval_label: Optional[str]
    given: frozenset = frozenset()

    def check(self):
        """The flags' own mistakes, without TensorFlow: one UserError line."""
        if self.runmode not in RUNMODES:
            # The original prints "must specify runmode: examples or imagenet" and exits 0 (eval_ckpt_main.py:117).
            raise UserError(f"must specify runmode: examples or imagenet (--runmode={self.runmode})")
        if self.advprop_preprocessing:
            raise UserError(ADVPROP_REFUSED)
        _variant(self.model_name)
        if not self.ckpt_dir:
            raise UserError("--ckpt_dir must name a checkpoint directory, a model_dir or a .h5 file")
        if self.runmode == "imagenet":
            for name in ("imagenet_eval_glob", "imagenet_eval_label"):
                if not getattr(self, name):
                    raise UserError(f"--runmode=imagenet needs --{name}")
            if self.num_images == 0:
                raise UserError("--num_images must be positive, or negative (-1) for all images")

    @property
    def offset(self):
        """The original's label_offset (utils.py:490): printed indices are the model's minus 1 with a background
        class 0."""
        return 1 if self.include_background_label else 0


@dataclasses.dataclass(frozen=True)
class ExportModelRequest:
    """The flags of export_model.py (the original's lines 28-43, same names, defaults and meaning)."""

    model_name: Optional[str]
    ckpt_dir: Optional[str]
    enable_ema: bool
    data_dir: Optional[str]
    output_tflite: Optional[str]
    quantize: bool
    num_steps: int
    image_size: int
    batch_size: int
    endpoint_name: Optional[str]
    output_saved_model_dir: Optional[str]
    given: frozenset = frozenset()

    def check(self):
        """The flags' own mistakes, without TensorFlow: one UserError line."""
        for name in ("model_name", "ckpt_dir", "output_tflite"):  # required, as the original marks them (:161-163)
            if not getattr(self, name):
                raise UserError(f"--{name} is required")
        _variant(self.model_name)
        if self.quantize and not self.data_dir:
            raise UserError(QUANTIZE_NEEDS_DATA)
        if self.quantize and (self.num_steps < 1 or self.batch_size < 1):
            raise UserError(f"--num_steps and --batch_size must be positive, got {self.num_steps}, {self.batch_size}")
        if self.image_size < 32:
            raise UserError(f"--image_size must be at least 32 (the network downsamples 32x), got {self.image_size}")
        if self.endpoint_name and self.output_saved_model_dir:
            raise UserError(
                "--endpoint_name applies to the .tflite file only: this project's SavedModel has fixed signatures "
                "(serving_features gives the pooled features); export them in two commands"
            )

    @property
    def kind(self):
        """The one .tflite file: full-integer int8 with uint8 input and output (export_model.py:146-153,
        QUANTIZED_UINT8), else float32."""
        return "full_integer_int8" if self.quantize else "float32"

    @property
    def calibration_images(self):
        """The original feeds --num_steps batches of --batch_size images (export_model.py:69-97); the converter's
        ranges are the same fed one image at a time."""
        return self.num_steps * self.batch_size


def parse_flags(argv, flag_values):
    """absl's parsing of a root script's flags with main.py's convention: a mistake is one line and exit status
    2, --help exits 0; the scripts take no positional arguments."""
    try:
        remaining = flag_values(argv)
    except flags.Error as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except SystemExit as e:  # absl's --help exits 1 after printing it: asking for help is no error
        sys.exit(0 if e.code == 1 and any(re.match(r"^-{1,2}help", arg) for arg in argv[1:]) else e.code)
    except BrokenPipeError:  # --help | head: the reader left; the exit's flush then writes nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    if remaining[1:]:
        script = os.path.basename(argv[0])
        print(f"error: unexpected arguments {' '.join(remaining[1:])} ({script} takes flags only)", file=sys.stderr)
        sys.exit(2)
    return remaining


def request_from_flags(kind, flag_values):
    """A request of `kind` (EvalCkptRequest or ExportModelRequest) from parsed absl flags of the same names."""
    values = {field.name: flag_values[field.name].value for field in dataclasses.fields(kind) if field.name != "given"}
    return kind(**values, given=frozenset(name for name in values if flag_values[name].present))


def _config(variant, base_config):
    """The config a request runs with: `base_config` (default: the recipe, configs/imagenet.py, which the original's
    scripts also assume) for `variant`, set up as --mode=predict (the weights to score, no data unless given)."""
    config = base_config or imagenet.get_config()
    config.model.variant = variant
    config.runtime.mode = "predict"
    return config


def _named(error):
    """A UserError of the shared set-up names the weights' flag as main.py's --init_checkpoint; here it is
    --ckpt_dir."""
    return UserError(str(error).replace("--init_checkpoint", "--ckpt_dir"))


def _run_dir_of(path):
    """The training run (a model_dir with config.json and a checkpoint) that `path` is, or holds `path` (its
    archive/, archive/best or a ckpt-N prefix), else None."""
    from training.store import rundir  # pylint: disable=import-outside-toplevel

    parent = os.path.dirname(path)
    for candidate in (path, parent, os.path.dirname(parent) if os.path.basename(parent) == "archive" else None):
        if candidate and rundir.holds_trained_network(candidate):
            return candidate
    return None


def _locate(ckpt_dir, config):
    """Points `config` at the weights --ckpt_dir names: runtime.model_dir for a training run of ours (the
    network then comes from its config.json), runtime.init_checkpoint for anything else; returns the run's
    model_dir or None."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from efficientnet import weights as weights_lib  # pylint: disable=import-outside-toplevel
    from training.store import checkpoints  # pylint: disable=import-outside-toplevel

    path = ckpt_dir.rstrip("/") or ckpt_dir
    if weights_lib.is_h5_file(path):
        if not tf.io.gfile.exists(path):
            raise UserError(f"--ckpt_dir {path}: no such file")
        config.runtime.init_checkpoint = path
        return None
    if not tf.io.gfile.exists(path) and not tf.io.gfile.exists(path + ".index"):
        raise UserError(f"--ckpt_dir {path}: no such directory, checkpoint or .h5 file")
    run_dir = _run_dir_of(path)
    if run_dir:
        config.runtime.model_dir = run_dir
        if path != run_dir:
            is_archive = os.path.basename(path) == checkpoints.ARCHIVE_DIR
            config.runtime.init_checkpoint = checkpoints.archived_prefix(run_dir) if is_archive else path
    else:
        config.runtime.init_checkpoint = path
    return run_dir


def _weights_and_classes(ctx, run_dir):
    """(the weights path or prefix to load, the class count of the network)."""
    from training.serving import scoring  # pylint: disable=import-outside-toplevel
    from training.store import checkpoints  # pylint: disable=import-outside-toplevel

    weights = ctx.config.runtime.init_checkpoint or checkpoints.find_weights(run_dir)
    return weights, ctx.num_classes or scoring.stored_num_classes(weights)


def _load(ctx, weights, num_classes, use_ema):
    """The float32 inference model holding the weights (training/serving/scoring.py `inference_model`)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from training.serving import scoring  # pylint: disable=import-outside-toplevel

    _note_missing_shadows(ctx, weights, use_ema)
    try:
        return scoring.inference_model(ctx.plan.network.inference(num_classes), weights, use_ema=use_ema)
    except (tf.errors.OpError, ValueError, AssertionError, IndexError) as e:
        raise UserError(
            f"cannot load {weights} into efficientnet-{ctx.config.model.variant}: {errors.first_line(e)}"
        ) from None


def _note_missing_shadows(ctx, weights, use_ema):
    """The original restores the shadows with --enable_ema and fails without them; the loader here falls back to
    each variable itself, so say when an original checkpoint has none at all."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from efficientnet import tpu_checkpoint  # pylint: disable=import-outside-toplevel
    from efficientnet import weights as weights_lib  # pylint: disable=import-outside-toplevel
    from training.store import checkpoints  # pylint: disable=import-outside-toplevel

    if not use_ema or not ctx.external_weights or weights_lib.is_h5_file(weights):
        return
    names = tf.train.load_checkpoint(checkpoints.checkpoint_prefix(weights)).get_variable_to_shape_map()
    if not any(name.endswith(tpu_checkpoint.EMA_SUFFIX) for name in names):
        ctx.log.message(f"note: {weights} holds no ExponentialMovingAverage shadows; its raw weights are used")


def eval_ckpt(request, base_config=None, out=print):
    """eval_ckpt_main.py: runmode examples prints the top 5 classes of --example_img, runmode imagenet the
    running and final top-1/top-5 of the glob's first --num_images files (training/serving/ckpt_eval.py); with
    --export_ckpt, first writes the weights used as a Keras weights file. Returns {"predictions": [(indices,
    probabilities)]} or {"top1", "top5"} (percent), and "export_ckpt" when written."""
    from training.session import startup  # pylint: disable=import-outside-toplevel

    request.check()
    config = _config(_variant(request.model_name), base_config)
    try:
        run_dir = _locate(request.ckpt_dir, config)
        # The fields the request sets win over a run's config.json (a different network only gets a note).
        ctx = startup.setup(config, user_fields=frozenset({"model.variant"} if "model_name" in request.given else ()))
        try:
            with startup.watched(ctx, immediate=True):
                return _eval(ctx, request, run_dir, out)
        finally:
            ctx.log.close()
    except UserError as e:
        raise _named(e) from None


def _eval(ctx, request, run_dir, out):
    """eval_ckpt's work once set up: its inputs checked, the names, the model, then the run mode."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from training.serving import ckpt_eval  # pylint: disable=import-outside-toplevel
    from training.store import labels  # pylint: disable=import-outside-toplevel

    # Every input is checked before the model is built.
    if request.runmode == "examples":
        if not tf.io.gfile.exists(request.example_img):
            raise UserError(f"--example_img {request.example_img}: no such file")
        paths, truth, labels_map = [request.example_img], None, _labels_map(request)
    else:
        (paths, truth), labels_map = _imagenet_files(request), None
    weights, num_classes = _weights_and_classes(ctx, run_dir)
    names = ckpt_eval.names_by_index(
        num_classes,
        request.offset,
        labels_map=labels_map,
        class_names=None if labels_map else labels.class_names(None, num_classes, run_dir),
    )
    model = _load(ctx, weights, num_classes, request.enable_ema)
    summary = {}
    if request.export_ckpt:  # before the inference, as the original's restore_model (utils.py:436-440)
        summary["export_ckpt"] = ckpt_eval.save_weights_file(model, request.export_ckpt)
        out(f"weights written to {summary['export_ckpt']} (python main.py --init_checkpoint loads them)")
    if request.runmode == "examples":
        summary["predictions"] = ckpt_eval.eval_examples(model, ctx.plan, paths, names, request.offset, out)
    else:
        summary["top1"], summary["top5"] = ckpt_eval.eval_imagenet(model, ctx.plan, paths, truth, request.offset, out)
    return summary


def _labels_map(request):
    """The labels map of --labels_map_file, or None for the project's class names: when the flag is left at its
    default and that file does not exist (an explicitly given missing file is an error)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from training.serving import ckpt_eval  # pylint: disable=import-outside-toplevel

    if "labels_map_file" not in request.given and not tf.io.gfile.exists(request.labels_map_file):
        return None
    if not tf.io.gfile.exists(request.labels_map_file):
        raise UserError(f"--labels_map_file {request.labels_map_file}: no such file")
    return ckpt_eval.read_labels_map(request.labels_map_file)


def _imagenet_files(request):
    """(the sorted glob's first --num_images files, their labels), as utils.py:555-560 picks them. The count is
    the files there are when the glob has fewer (the original divides by --num_images even then)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from training.serving import ckpt_eval  # pylint: disable=import-outside-toplevel

    files = sorted(tf.io.gfile.glob(request.imagenet_eval_glob))
    if not files:
        raise UserError(f"--imagenet_eval_glob {request.imagenet_eval_glob} matches no file")
    truth = ckpt_eval.read_label_file(request.imagenet_eval_label)
    count = len(files) if request.num_images < 0 else min(request.num_images, len(files))
    if len(truth) < count:
        raise UserError(
            f"--imagenet_eval_label {request.imagenet_eval_label} has {len(truth)} labels, fewer than the {count} "
            "images to evaluate"
        )
    return files[:count], truth[:count]


def export_model(request, base_config=None, out=print):
    """export_model.py: ONE .tflite file at --output_tflite (full-integer int8 calibrated on --data_dir, or float32
    with --quantize=false) of the classifier's probabilities or of --endpoint_name, and with
    --output_saved_model_dir the project's SavedModel. Returns {"tflite": path, "bytes": size, "saved_model":
    directory or None}."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from training.serving import scoring  # pylint: disable=import-outside-toplevel
    from training.session import startup  # pylint: disable=import-outside-toplevel

    request.check()
    config = _config(_variant(request.model_name), base_config)
    # The original's input size is its --image_size flag, 224 unless given, whatever the variant
    # (export_model.py:39 and 109-112): kept, so its command lines export what they exported.
    config.model.image_size = request.image_size
    user_fields = {"model.image_size"} | ({"model.variant"} if "model_name" in request.given else set())
    if request.quantize:
        config.data.data_dir = request.data_dir
        # Calibration reads a split whole: no minival is held out (the recipe's 20 of 1024 ImageNet shards would
        # not even fit smaller data).
        config.data.holdout_shards = 0
        user_fields |= {"data.data_dir", "data.holdout_shards"}
    try:
        run_dir = _locate(request.ckpt_dir, config)
        if run_dir is None:  # the weights' own class count, not the calibration data's (setup's default)
            config.model.num_classes = scoring.stored_num_classes(config.runtime.init_checkpoint)
        ctx = startup.setup(config, user_fields=frozenset(user_fields))
        try:
            with startup.watched(ctx, immediate=True):
                return _export(ctx, request, run_dir, out)
        except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError, AssertionError) as e:
            raise UserError(f"cannot export {request.ckpt_dir}: {errors.first_line(e)}") from None
        finally:
            ctx.log.close()
    except UserError as e:
        raise _named(e) from None


def _export(ctx, request, run_dir, out):
    """export_model's work once set up: its outputs and endpoint checked, the SavedModel the converter reads (the
    requested one, or a temporary), then the one .tflite file."""
    from training.serving import export, tflite  # pylint: disable=import-outside-toplevel
    from training.store import labels  # pylint: disable=import-outside-toplevel

    _check_output(request.output_tflite, "output_tflite", is_dir=False)
    if request.output_saved_model_dir:
        _check_output(request.output_saved_model_dir, "output_saved_model_dir", is_dir=True)
    endpoints = export.endpoint_layers(ctx.plan.network.variant)
    if request.endpoint_name and request.endpoint_name not in endpoints:
        raise UserError(
            f"--endpoint_name {request.endpoint_name!r} is not available here; the endpoints are {', '.join(endpoints)}"
        )
    weights, num_classes = _weights_and_classes(ctx, run_dir)
    representative = _calibration(ctx, request, out) if request.quantize else None
    work_dir = tempfile.mkdtemp(prefix="export-model-")
    try:
        saved_model = request.output_saved_model_dir or os.path.join(work_dir, "saved_model")
        if request.endpoint_name:  # the converter reads the endpoint from an archive of its own
            model = _load(ctx, weights, num_classes, request.enable_ema)
            export.build_endpoint_archive(model, ctx.plan, request.endpoint_name).write_out(saved_model, verbose=False)
        else:
            _note_missing_shadows(ctx, weights, request.enable_ema)
            export.export_saved_model(
                ctx.plan,
                weights,
                saved_model,
                num_classes=num_classes,
                class_names=labels.class_names(None, num_classes, run_dir),
                log=ctx.log if request.output_saved_model_dir else _without_temporary(ctx.log, saved_model),
                use_ema=request.enable_ema,
            )
        out(f"tflite: converting the {request.kind} file")
        size = tflite.write_file(saved_model, request.kind, request.output_tflite, representative)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    out(f"tflite model written to {request.output_tflite}")  # export_model.py:157
    return {"tflite": request.output_tflite, "bytes": size, "saved_model": request.output_saved_model_dir}


def _without_temporary(log, directory):
    """The export's progress lines, but not the one naming the temporary SavedModel the converter reads."""
    return lambda line: None if directory in line else log.message(line)


def _calibration(ctx, request, out):
    """The calibration images of --data_dir: its validation split, as the original's input_fn with
    is_training=False (export_model.py:70-79), else its training split; read anew on the converter's pass."""
    from training.serving import tflite  # pylint: disable=import-outside-toplevel

    source = ctx.source
    split = next((s for s in ("validation", "train") if source.num_examples(s) > 0), None)
    if split is None:
        raise UserError(f"--data_dir {request.data_dir} holds no images to calibrate the quantized file")
    out(f"tflite: calibrating on the first {request.calibration_images} {split} images of {request.data_dir}")
    return tflite.StreamedImages(ctx.plan, source, split, request.calibration_images)


def _check_output(path, flag, *, is_dir):
    """Fails before any work when an output cannot be written: the .tflite file's folder must exist (as the
    original's GFile write needs it); the SavedModel's parent is created, as the project's export does."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    parent = os.path.dirname(path.rstrip("/"))
    if tf.io.gfile.isdir(path) != is_dir and tf.io.gfile.exists(path):
        raise UserError(f"--{flag} {path} exists and is {'not ' if is_dir else ''}a directory")
    if not parent:
        return
    if is_dir:
        try:
            tf.io.gfile.makedirs(parent)
        except (tf.errors.OpError, OSError) as e:
            raise UserError(f"--{flag} {path}: cannot create {parent} ({errors.first_line(e)})") from None
    elif not tf.io.gfile.isdir(parent):
        raise UserError(f"--{flag} {path}: no such folder {parent}")


def run_command(work, request):
    """Checks the request, then runs work(request) with main.py's convention for its outcome; returns the exit
    status: 0 done, 2 a user error or an environment fault (one line "error: ..." on stderr, no traceback),
    75/130 stopped by SIGTERM or Ctrl-C. The flags are checked before TensorFlow loads; its start-up notices are
    filtered from stderr while it does."""
    try:
        request.check()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        with errors.startup_lines_filtered():
            import tensorflow as tf  # pylint: disable=import-outside-toplevel

            tf.config.list_physical_devices("GPU")  # where cuInit runs and logs, inside the filter
        try:
            work(request)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except errors.Preempted as e:
            print(str(e), file=sys.stderr)
            return e.exit_code
        except (tf.errors.OpError, OSError) as e:
            message = errors.environment_fault(e, tf)
            if message is None:
                raise
            print(f"error: {message}", file=sys.stderr)
            return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return errors.INTERRUPTED_EXIT_CODE
    return 0
