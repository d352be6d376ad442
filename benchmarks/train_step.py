"""Training-step benchmark: this project's compiled train loop against keras.applications + model.fit.

    python -m benchmarks.train_step --model=b0 --image_size=224 --batch=16 --steps=10 --precision=float32

Both implementations train on the same synthetic batch (fixed seed, pixels in [0, 255], 1000 classes), each in
its own Python subprocess so that the peak resident memory of one does not hide in the other's. Each prints
one JSON line:

    {"impl": "ours" | "keras", "model", "image_size", "batch", "precision", "images_per_sec",
     "first_step_s", "peak_rss_mb", ...}

followed by one line of ratios ours / keras. The cost of the augmentation in the train step
(data.augment_on_device):

    python -m benchmarks.train_step --impl=ours --jit_compile --device_augment=autoaugment --runs=3
    python -m benchmarks.train_step --impl=ours --jit_compile --device_augment=none --runs=3

(ours only: the batch is then uint8 with per-example seeds, and the step augments it before the forward pass;
the difference of the two step times per image is the augmentation's cost in the compiled step). With
--runs=N every implementation runs N times (fresh processes) and the figures printed are the medians, with the
individual runs under "runs".

What is measured:
- first_step_s: wall time from the first call of the training function (our train loop, or model.fit) to the
  end of the first completed step: tracing, graph optimisation and one step. Model construction is excluded
  (reported separately as build_s).
- images_per_sec: steady state, batch · steps / wall time of `steps` steps run after `warmup` further steps.
- peak_rss_mb: the process's peak resident set size (getrusage ru_maxrss) at the end.

"ours" runs training/core/steps.py make_train_loop (forward, loss with label smoothing and L2, RMSPropTF, EMA of
weights and BN statistics, metrics) with all `steps` steps in one host call. "keras" runs
keras.applications.EfficientNetBx(weights=None) compiled with keras.optimizers.RMSprop(rho=0.9, momentum=0.9,
epsilon=1e-3, use_ema=True) and label-smoothed cross-entropy, jit_compile left at Keras' "auto" (which
resolves to False on a CPU-only machine), trained with model.fit, one step per host call (Keras' default).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

IMPLS = ("ours", "keras")
PRECISIONS = ("float32", "bfloat16")
NUM_CLASSES = 1000
_KERAS_NAMES = {f"b{i}": f"EfficientNetB{i}" for i in range(8)}
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Keys whose median is reported; the others are identical in every run.
_MEASURED = ("images_per_sec", "first_step_s", "build_s", "peak_rss_mb")


def parse_args(argv):
    """Parses and validates the command line (one-line errors for bad values)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="b0", help="b0..b7")
    parser.add_argument("--image_size", type=int, default=None, help="default: the variant's resolution")
    parser.add_argument("--batch", type=int, default=16, help="global batch size")
    parser.add_argument("--steps", type=int, default=10, help="timed steady-state steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps after the first one")
    parser.add_argument("--precision", default="float32", help="float32 or bfloat16 (mixed_bfloat16)")
    parser.add_argument("--impl", default="both", help="ours, keras or both")
    parser.add_argument("--runs", type=int, default=1, help="fresh processes per implementation (medians)")
    parser.add_argument("--jit_compile", action="store_true", help="ours: compile the step with XLA (as on TPU)")
    parser.add_argument("--device_augment", default="none", help="ours: none, autoaugment or randaugment in the step")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.model not in _KERAS_NAMES:
        parser.error(f"--model={args.model!r}: expected one of {', '.join(_KERAS_NAMES)}")
    if args.precision not in PRECISIONS:
        parser.error(f"--precision={args.precision!r}: expected one of {', '.join(PRECISIONS)}")
    if args.impl not in IMPLS + ("both",):
        parser.error(f"--impl={args.impl!r}: expected ours, keras or both")
    for name in ("batch", "steps", "runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}={getattr(args, name)}: expected a positive integer")
    if args.device_augment not in ("none", "autoaugment", "randaugment"):
        parser.error(f"--device_augment={args.device_augment!r}: expected none, autoaugment or randaugment")
    if (args.device_augment != "none" or args.jit_compile) and args.impl != "ours":
        parser.error("--device_augment and --jit_compile measure our step only: add --impl=ours")
    if args.warmup < 0:
        parser.error(f"--warmup={args.warmup}: expected an integer >= 0")
    if args.image_size is not None and args.image_size < 32:
        parser.error(f"--image_size={args.image_size}: expected an integer >= 32")
    return args


def _synthetic_batch(batch, image_size):
    """The same images and labels for both implementations (numpy, seed 0)."""
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.uniform(0.0, 255.0, size=(batch, image_size, image_size, 3)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, size=(batch,)).astype("int32")
    return images, labels


def _peak_rss_mb():
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _run_ours(args, image_size):
    """Times training/core/steps.py's train loop; returns the measured figures."""
    import tensorflow as tf

    from efficientnet import build_model, optim, schedules
    from efficientnet import ema as ema_lib
    from training.core import state as state_lib
    from training.core import steps

    start = time.perf_counter()
    model = build_model(args.model, num_classes=NUM_CLASSES, image_size=image_size)
    # The recipe's schedule (docs/recipe.md §5) so the benchmark pays for evaluating it like a real run does.
    learning_rate = schedules.WarmupExponentialDecay(
        schedules.scaled_learning_rate(0.016, args.batch), steps_per_epoch=1000
    )
    optimizer = optim.RMSPropTF(learning_rate)
    optimizer.build(model.trainable_variables)
    ema = ema_lib.ExponentialMovingAverage(ema_lib.ema_variables(model), decay=0.9999)
    state = state_lib.TrainState(model=model, optimizer=optimizer, ema=ema, learning_rate=learning_rate)
    metrics = steps.TrainMetrics()
    augment = args.device_augment != "none"
    cfg = steps.StepConfig(
        num_classes=NUM_CLASSES,
        global_batch_size=args.batch,
        label_smoothing=0.1,
        weight_decay=1e-5,
        jit_compile=args.jit_compile,
        augment_on_device=augment,
        augment_name=args.device_augment,
    )
    train_loop = steps.make_train_loop(state, tf.distribute.get_strategy(), cfg, metrics)
    images, labels = _synthetic_batch(args.batch, image_size)
    batch = {"images": images, "labels": labels, "bad_records": tf.zeros([], tf.int64)}
    if augment:  # what the pipeline ships with augment_on_device: uint8 pixels and a seed per example
        batch["images"] = images.astype("uint8")
        batch["augment_seeds"] = tf.reshape(tf.range(2 * args.batch, dtype=tf.int64), [args.batch, 2])
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    build_s = time.perf_counter() - start

    def timed(num_steps):
        begin = time.perf_counter()
        train_loop(iterator, tf.constant(num_steps))
        metrics.result()  # reading a metric waits for the loop to finish
        return time.perf_counter() - begin

    first_step_s = timed(1)
    if args.warmup:
        timed(args.warmup)
    elapsed = timed(args.steps)
    return {
        "build_s": build_s,
        "first_step_s": first_step_s,
        "images_per_sec": args.steps * args.batch / elapsed,
        "final_loss": metrics.result()["loss"],
    }


def _run_keras(args, image_size):
    """Times keras.applications.EfficientNetBx with model.fit; returns the measured figures."""
    import keras
    import tensorflow as tf

    start = time.perf_counter()
    model = getattr(keras.applications, _KERAS_NAMES[args.model])(
        weights=None, input_shape=(image_size, image_size, 3), classes=NUM_CLASSES, classifier_activation=None
    )
    optimizer = keras.optimizers.RMSprop(
        0.016 * args.batch / 256, rho=0.9, momentum=0.9, epsilon=1e-3, use_ema=True, ema_momentum=0.9999
    )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
        metrics=["accuracy"],
    )
    images, labels = _synthetic_batch(args.batch, image_size)
    dataset = tf.data.Dataset.from_tensors((images, tf.one_hot(labels, NUM_CLASSES))).repeat()
    build_s = time.perf_counter() - start

    step_ends = []

    class _StepTimer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            step_ends.append(time.perf_counter())

    total = 1 + args.warmup + args.steps
    begin = time.perf_counter()
    history = model.fit(dataset, epochs=1, steps_per_epoch=total, callbacks=[_StepTimer()], verbose=0)
    if len(step_ends) != total:
        raise RuntimeError(f"model.fit ran {len(step_ends)} steps, expected {total}")
    elapsed = step_ends[-1] - step_ends[-1 - args.steps]
    return {
        "build_s": build_s,
        "first_step_s": step_ends[0] - begin,
        "images_per_sec": args.steps * args.batch / elapsed,
        "final_loss": float(history.history["loss"][-1]),
        "jit_compile": bool(model.jit_compile),
    }


def run_worker(args, impl):
    """Runs one implementation in this process and returns its JSON record."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from efficientnet import get_variant

    if args.precision == "bfloat16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    image_size = args.image_size or get_variant(args.model).resolution
    figures = (_run_ours if impl == "ours" else _run_keras)(args, image_size)
    record = {
        "impl": impl,
        "model": args.model,
        "image_size": image_size,
        "batch": args.batch,
        "precision": args.precision,
        "steps": args.steps,
        "warmup": args.warmup,
    }
    if impl == "ours":
        record.update(jit_compile=args.jit_compile, device_augment=args.device_augment)
    record.update(figures)
    record["peak_rss_mb"] = _peak_rss_mb()
    return record


def _subprocess_record(args, impl):
    """Runs one implementation in a fresh interpreter and parses its JSON line."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.train_step",
        "--worker",
        f"--impl={impl}",
        f"--model={args.model}",
        f"--batch={args.batch}",
        f"--steps={args.steps}",
        f"--warmup={args.warmup}",
        f"--precision={args.precision}",
        f"--device_augment={args.device_augment}",
    ]
    if args.jit_compile:
        command.append("--jit_compile")
    if args.image_size:
        command.append(f"--image_size={args.image_size}")
    result = subprocess.run(command, cwd=_REPO_ROOT, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"benchmark worker {impl!r} failed (exit {result.returncode}):\n{tail}")
    return json.loads(lines[-1])


def median_record(records):
    """One record whose measured figures are the medians of `records`; the runs are kept under "runs"."""
    merged = dict(records[0])
    for key in _MEASURED:
        merged[key] = statistics.median(r[key] for r in records)
    if len(records) > 1:
        merged["runs"] = [{key: r[key] for key in _MEASURED} for r in records]
    return merged


def ratios(ours, keras_record):
    """ours / keras for the three headline figures."""
    return {
        "ratio": "ours/keras",
        **{key: ours[key] / keras_record[key] for key in ("images_per_sec", "first_step_s", "peak_rss_mb")},
    }


def main(argv=None):
    """Entry point: runs the workers (or, with --worker, one measurement) and prints JSON lines."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.worker:
        if args.impl == "both":
            raise ValueError("--worker needs --impl=ours or --impl=keras")
        print(json.dumps(run_worker(args, args.impl)), flush=True)
        return 0
    impls = IMPLS if args.impl == "both" else (args.impl,)
    # Alternate the implementations run by run so that slow drift of the machine's load hits both alike.
    runs = {impl: [] for impl in impls}
    for _ in range(args.runs):
        for impl in impls:
            runs[impl].append(_subprocess_record(args, impl))
    records = {impl: median_record(runs[impl]) for impl in impls}
    for impl in impls:
        print(json.dumps(records[impl]), flush=True)
    if len(impls) == 2:
        print(json.dumps(ratios(records["ours"], records["keras"])), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
