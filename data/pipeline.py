"""The tf.data input pipeline: source → shard per input pipeline → shuffle/repeat → windows of consecutive records
→ per window, one record after another: check the label, decode the crop, resize, flip, augment, batch (again,
skipping bad records, when the window has one) → static-shape batches → count bad records per batch → prefetch.

Training elements: {"images": [b, s, s, 3] in [0, 255], "labels": int32 [b], "bad_records": int64 [b]}
(bad_records is this pipeline's running count of skipped records; take the max). Images are uint8 when the
run augments (AutoAugment/RandAugment work on uint8; the train step casts to float32), float32 without
augmentation. With augment_on_device the images are the augmentation's uint8 input before the random flip and
"augment_seeds" int64 [b, 2] holds each example's augmentation seed; the train step flips and augments them
(data/device_augment.py `finish_batch`). Eval elements: {"images" float32,
"labels", "mask": float32 [b]}; every example appears exactly once with mask 1, the last batch (and, with
num_batches, whole extra batches) is padding with mask 0.

Reproducibility: with a seed, every random choice is a stateless op keyed by (seed, the element's global
position) and the shuffle buffers are seeded; with deterministic=True the windows keep their order, so
the same seed gives the same batches and `tf.train.Checkpoint(iterator=iter(ds))` resumes exactly. With
deterministic=False (training) the windows run unordered: each example is still the same function of its record,
but batches may mix neighbouring windows differently. No stateful variables and no tf.py_function anywhere
(TPU hosts run graph ops only; has_py_function checks that).

Bad records: a record whose bytes are not an image, fail to decode, or whose label lies outside
[0, num_classes) is dropped and counted (num_classes: the run's class count, by default the source's). A bad
label fails its element (an Assert in the per-record function) like a decode error does; both (and a truncated
file's unreadable tail, see data/sources.py) are dropped by ignore_errors and show up as a gap in the record
positions, counted once per batch. With unordered windows a missing position counts as bad once the furthest
position seen is the reorder window past it (_reorder_window; a record that arrives later lowers the count
again).
When more than max_bad_fraction of the records read (after bad_check_min_records) were bad, the pipeline
raises InvalidArgumentError whose message contains "Too many bad records".
"""

import dataclasses
import os

import tensorflow as tf

from data import mixup, preprocessing, sources

_PY_FUNCTION_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})


def _check_positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _decode_fn(source, num_classes, image_size, training, seed, position_scale, position_offset, crop, mixup_alpha):
    """The part of the per-record function that can fail: parse, check the label, decode the crop → {"crop" (a
    preprocessing.TrainCrop, or the eval center crop), "labels", "index" (the record's position)
    [, "mixup_weights"]}.

    A label outside [0, num_classes) fails the element (Assert) like bytes that are not an image fail to decode;
    ignore_errors drops either and the gap in the positions counts it. No tf.cond around the decode (it cost more
    than decoding the rare record with a bad label, benchmarks/README.md) and no ok flag with a filter stage (a
    per-record function call)."""

    def decode(index, record):
        image, label = source.parse(record)
        # 0 <= label < num_classes in one comparison: a negative label (int32 or int64) wraps to 2**63 or more.
        check = tf.debugging.Assert(
            tf.cast(label, tf.uint64) < num_classes,
            ["label outside [0, num_classes): ", label, " num_classes: ", num_classes],
        )
        with tf.control_dependencies([check]):
            label = tf.identity(label)
        element = {"labels": label, "index": index}
        if training:
            # A single input pipeline's positions are the record's own (no multiply-add node per record).
            single = position_scale == 1 and position_offset == 0
            example_seed = tf.stack([seed, index if single else index * position_scale + position_offset])
            element["crop"] = preprocessing.train_crop(image, image_size, example_seed, **crop)
            if mixup_alpha:  # the blend itself runs in the train step, on the replica's batch (data/mixup.py)
                element["mixup_weights"] = mixup.mix_weight(example_seed, mixup_alpha)
        else:
            element["crop"] = preprocessing.eval_crop(image, image_size, crop["crop_fraction"])
        return element

    return decode


def _finish_fn(image_size, training, resize_method, augment, augment_on_device):
    """The rest of the per-record function (it cannot fail): resize, flip, augment → the element with "images"
    for "crop" [and "augment_seeds"].

    Images: training with augmentation → uint8 (the augmentation works on uint8, so nothing is lost; a quarter
    of the bytes of float32 through tf.data and the infeed), with augment_on_device the uint8 input of the
    augmentation before its random flip plus its seed ("augment_seeds"; the train step flips and augments,
    data/device_augment.py); without augmentation and for eval → float32 (the resized pixels are not
    integers)."""
    augment_name = augment.get("augment_name", "none")

    def finish(element):
        element = dict(element)
        crop = element.pop("crop")
        if not training:
            element["images"] = preprocessing.eval_pixels(crop, image_size, resize_method)
        elif augment_name == "none":
            element["images"] = preprocessing.train_pixels(crop, image_size, resize_method)
        else:
            pixels = preprocessing.augmentation_pixels(crop, image_size, resize_method, flip=not augment_on_device)
            if augment_on_device:
                element["augment_seeds"] = tf.cast(crop.augment_seed, tf.int64)
            else:
                pixels = preprocessing.augment(pixels, crop.augment_seed, **augment)
            element["images"] = pixels
        return element

    return finish


# Records per window (at most; fewer when the batch is smaller). Each window's records go through the per-record
# function one after another into the window's batch, and tf.data's interleave runs windows side by side: the
# parallelism is over windows, not over records in pipeline-wide parallel maps, which keeps the rate up when other
# work shares the cores (benchmarks/README.md, "Windows of records"). With a window per batch
# (batch ≤ WINDOW_RECORDS) the window's batch is the pipeline's batch; larger batches are put together from whole
# windows (one more copy of each image, which measured cheaper than larger windows with more images in flight).
WINDOW_RECORDS = 32


def _cycle_length():
    """Windows that tf.data's interleave works on at once: half the cores this process may use, at least 2. The
    interleave also works ahead on twice as many future windows (its default), so up to 3 × this many windows,
    about 1.5 × the cores, are decoded at the same time, and as many batches are held in memory (and in an
    iterator checkpoint)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(2, cores // 2)


# How far out of order a record may arrive when the windows run unordered (deterministic=False, training): a
# position still missing once the furthest position seen is this far past it counts as bad, so the bad-fraction
# check starts after about bad_check_min_records + the reorder window's records. Not a recipe value: it should
# exceed how many records overtake an ordinary one, at most the records of the windows in flight (3 × the cycle
# length, see _cycle_length), here with a margin of 4 (_reorder_window), and at least REORDER_WINDOW. A very slow
# window (a huge JPEG) can still arrive later: its records are counted bad meanwhile and their arrival takes
# them back, a transient error of a few records in thousands against a fraction of the records read.
REORDER_WINDOW = 1024


def _reorder_window(window, cycle):
    return max(REORDER_WINDOW, 4 * 3 * cycle * window)


def _count_bad(max_bad_fraction, min_records, reorder_window=0):
    """scan() function over BATCHES of good records → (state, batch with "bad_records").

    A record dropped by ignore_errors (an undecodable JPEG, a label outside the classes, a truncated file's
    tail) never arrives, which leaves a gap in the record positions. In order (reorder_window 0) the records
    read are the last position + 1 and bad = read − good; the state is the number of good records. Out of
    order (unordered windows), a position counts as read once the furthest position seen is reorder_window past
    it: read = furthest + 1 − reorder_window, and bad = read − (good records at positions below read). The state
    then also holds, per slot (position mod reorder_window), the latest position that arrived there, which
    gives the good records inside the reorder window [read, furthest]. Counting per batch instead of per record keeps
    the per-record chain as plain as map → ignore_errors → batch."""

    def step(state, batch):
        positions = batch["index"]
        furthest = tf.reduce_max(positions)
        if reorder_window:
            good_so_far, slots = state
            good = good_so_far + tf.cast(tf.shape(positions)[0], tf.int64)
            furthest = tf.maximum(furthest, tf.reduce_max(slots))  # the furthest position so far sits in a slot
            read = tf.maximum(furthest + 1 - reorder_window, 0)  # positions below it count as read
            # Each position of the window [read, furthest] has its own slot, so no two in a batch collide.
            recent = tf.boolean_mask(positions, positions >= read)
            slots = tf.tensor_scatter_nd_max(slots, tf.expand_dims(recent % reorder_window, 1), recent)
            in_window = tf.reduce_sum(tf.cast(slots >= read, tf.int64))
            bad = read - (good - in_window)  # a record arriving after it was counted bad lowers the count again
            state = (good, slots)
        else:
            good = state + tf.cast(tf.shape(positions)[0], tf.int64)
            read = furthest + 1
            bad = read - good
            state = good
        too_many = tf.logical_and(
            read >= min_records, tf.cast(bad, tf.float64) > max_bad_fraction * tf.cast(read, tf.float64)
        )
        message = tf.strings.format(
            "Too many bad records: {} of the first {} records were skipped (corrupt image bytes or labels outside "
            "the classes), more than max_bad_fraction=" + f"{max_bad_fraction}",
            (bad, read),
        )
        check = tf.debugging.Assert(tf.logical_not(too_many), [message])
        with tf.control_dependencies([check]):
            bad = tf.identity(bad)
        batch = {key: value for key, value in batch.items() if key != "index"}
        batch["bad_records"] = tf.fill(tf.shape(batch["labels"]), bad)
        return state, batch

    return step


def _count_bad_initial(reorder_window):
    """The scan's initial state for _count_bad(…, reorder_window)."""
    if reorder_window:
        return (tf.constant(0, tf.int64), tf.fill([reorder_window], tf.constant(-1, tf.int64)))
    return tf.constant(0, tf.int64)


def _window_batches(
    source,
    split,
    *,
    window,
    cycle,
    num_classes,
    image_size,
    training,
    seed,
    deterministic,
    input_context,
    crop,
    resize_method,
    augment,
    augment_on_device,
    shuffle_buffer,
    mixup_alpha,
):
    """This input pipeline's batches of the good examples of `window` consecutive records each (fewer where records
    were bad; infinite when training); every example has its record position "index" for the bad-record count.

    Each window is its own small dataset: per record, one function call (_decode_fn then _finish_fn), one after
    another into one batch; a window with a bad record is done a second time, record by record, skipping it (a
    window's worth of extra work per bad record). `cycle` windows run side by side (_cycle_length). The windows'
    batches come out in window order when ordered (each window gives one batch), so the examples keep the record
    order whatever the cycle length."""
    pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    records = source.records(
        split, training=training, input_context=input_context, seed=seed, deterministic=deterministic
    )
    if training:
        records = records.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    decode = _decode_fn(
        source,
        num_classes,
        image_size,
        training,
        tf.constant(seed, tf.int64),
        pipelines,
        pipeline_id,
        crop,
        mixup_alpha,
    )
    finish = _finish_fn(image_size, training, resize_method, augment, augment_on_device)

    def example(index, record):
        return finish(decode(index, record))

    def window_batch(indices, window_records):
        window_examples = tf.data.Dataset.zip((indices, window_records))
        # The map straight into the batch, which tf.data fuses (map-and-batch writes each image into the batch
        # while it is in cache; with ignore_errors between the two, the batch copies the images afterwards,
        # about 80 µs per float32 image at 224 px, benchmarks/README.md). A bad record fails that batch: it is
        # dropped and the window done again record by record, skipping undecodable bytes and labels outside the
        # classes (counted by the gap in the positions).
        whole = window_examples.map(example).batch(window).ignore_errors()
        skipping = window_examples.map(example).ignore_errors(log_warning=True).batch(window)
        return whole.concatenate(skipping).take(1)

    # Unordered windows let a fast one overtake a slow one, which keeps the cores busy when other work takes one
    # of them (benchmarks/README.md); make_dataset then counts bad records over a reorder window. Evaluation
    # stays ordered (its batches are padded at the end of one pass).
    return (
        records.enumerate()
        .ignore_errors(log_warning=True)  # a truncated file's unreadable tail (sources.py): a gap in the positions
        .window(window)
        .interleave(
            window_batch,
            cycle_length=cycle,
            block_length=1,
            num_parallel_calls=cycle,
            deterministic=_ordered(training, deterministic),
        )
    )


def _ordered(training, deterministic):
    """Whether the windows keep the record order: always for evaluation, with deterministic for training."""
    return deterministic or not training


def _pad_batch(batch, batch_size):
    """Pad a possibly partial eval batch to batch_size with masked zeros (static shapes for TPU)."""
    missing = batch_size - tf.shape(batch["labels"])[0]
    mask = tf.pad(tf.ones_like(batch["labels"], tf.float32), [[0, missing]])
    images = tf.pad(batch["images"], [[0, missing], [0, 0], [0, 0], [0, 0]])
    labels = tf.pad(batch["labels"], [[0, missing]])
    size = batch["images"].shape[1]
    return {
        "images": tf.ensure_shape(images, [batch_size, size, size, 3]),
        "labels": tf.ensure_shape(labels, [batch_size]),
        "mask": tf.ensure_shape(mask, [batch_size]),
    }


def _eval_batches(batches, source, split, batch_size, image_size, num_batches, input_context):
    """Pad the last (partial) eval batch, then (with num_batches) append padding batches."""
    batches = batches.map(lambda batch: _pad_batch(batch, batch_size))
    if num_batches is None:
        return batches
    pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    replicas = input_context.num_replicas_in_sync // pipelines if input_context else 1
    total = num_batches * replicas  # each eval step takes one batch per local replica
    mine = len(range(pipeline_id, source.num_examples(split), pipelines))
    if mine > total * batch_size:
        raise ValueError(
            f"num_batches={num_batches} is too small: {total} batches of {batch_size} cannot hold "
            f"the {mine} {split} examples of input pipeline {pipeline_id}"
        )
    padding = tf.data.Dataset.from_tensors(
        {
            "images": tf.zeros([batch_size, image_size, image_size, 3]),
            "labels": tf.zeros([batch_size], tf.int32),
            "mask": tf.zeros([batch_size]),
        }
    ).repeat()
    return batches.concatenate(padding).take(total)


@dataclasses.dataclass(frozen=True)
class InputSettings:
    """What the recipe decides about one pipeline. The run's plan builds it from the config
    (training/core/recipe.py `input_settings`); no field has a default here, the values are the recipe's.

    image_size: output side in pixels.
    training: True → infinite, shuffled, augmented, drop_remainder; False → one padded, masked pass.
    crop_fraction: eval (and fallback) center-crop fraction.
    resize_method: "bicubic" or "bilinear" (compat.v1 semantics; the variant row's, bilinear for EdgeTPU/Lite).
    max_bad_fraction: fail once more than this fraction of the records read were bad (from the
      bad_check_min_records-th record on).
    deterministic: fix the element order (needed for exact resume); False lets file reads interleave freely.
    The fields below apply to training only (evaluation ignores them):
    augment_name: "autoaugment", "randaugment" or "none".
    randaugment_num_layers, randaugment_magnitude: RandAugment's N and M.
    area_range, aspect_ratio_range: the training crop sampler's ranges (preprocessing.preprocess_for_train).
    uint8_wraparound: the original's Solarize/Posterize uint8 wrap-around (data/autoaugment.py).
    shuffle_buffer: records in the training shuffle buffer (encoded bytes; it is part of a checkpoint).
    augment_on_device: with augmentation, ship the augmentation's uint8 input before the random flip and
      per-example seeds ("augment_seeds" int64 [b, 2]) instead of augmented images; data.device_augment
      flips and augments in the train step (same images).
    mixup_alpha: > 0: each example carries its mixup weight ("mixup_weights" float32 [b], data/mixup.py's draw
      from the example's seed); the train step blends each replica's batch with them.
    """

    image_size: int
    training: bool
    crop_fraction: float
    resize_method: str
    max_bad_fraction: float
    deterministic: bool
    augment_name: str
    randaugment_num_layers: int
    randaugment_magnitude: float
    area_range: tuple
    aspect_ratio_range: tuple
    uint8_wraparound: bool
    shuffle_buffer: int
    augment_on_device: bool
    mixup_alpha: float
    bad_check_min_records: int = 1000  # not a recipe value: how many records the bad-fraction check waits for


def make_dataset(
    source, split, settings, *, batch_size, seed=None, input_context=None, num_batches=None, num_classes=None
):
    """Build the input pipeline of one host (one tf.distribute input pipeline).

    source: from sources.get_source.
    split: "train", "minival" or "validation".
    settings: an InputSettings (what the recipe decides).
    batch_size: batch of THIS pipeline (per replica under distribute_datasets_from_function).
    seed: int; None draws a random one (not reproducible).
    input_context: tf.distribute.InputContext; training shards files (records if fewer files than
      pipelines), eval shards records.
    num_batches: eval: the number of eval STEPS; the pipeline yields num_batches × (replicas per pipeline)
      batches, padding with mask 0 as needed. Training: stop after num_batches batches.
    num_classes: the run's class count; labels outside [0, num_classes) are bad records. None → the source's.
    """
    s = settings
    image_size, training, crop_fraction, resize_method = s.image_size, s.training, s.crop_fraction, s.resize_method
    augment_name, max_bad_fraction, deterministic = s.augment_name, s.max_bad_fraction, s.deterministic
    sources.check_split(split)
    preprocessing.check_augment_name(augment_name)
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("image_size", image_size)
    _check_positive_int("num_batches", num_batches, allow_none=True)
    _check_positive_int("shuffle_buffer", s.shuffle_buffer)
    _check_positive_int("num_classes", num_classes, allow_none=True)
    mixup.check_alpha(s.mixup_alpha)
    if not 0.0 <= max_bad_fraction <= 1.0:
        raise ValueError(f"max_bad_fraction must be in [0, 1], got {max_bad_fraction!r}")
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")  # still stateless ops, just not reproducible
    crop = {"crop_fraction": crop_fraction}
    augment = {}
    if training:
        crop.update(area_range=tuple(s.area_range), aspect_ratio_range=tuple(s.aspect_ratio_range))
        augment = {
            "augment_name": augment_name,
            "randaugment_num_layers": s.randaugment_num_layers,
            "randaugment_magnitude": s.randaugment_magnitude,
            "uint8_wraparound": s.uint8_wraparound,
        }
    augment_on_device = s.augment_on_device and training  # the plan decided it (training/core/recipe.py)
    preprocessing.check_size(image_size, crop_fraction)
    preprocessing.check_resize_method(resize_method)
    window, cycle = min(batch_size, WINDOW_RECORDS), _cycle_length()
    batches = _window_batches(
        source,
        split,
        window=window,
        cycle=cycle,
        num_classes=num_classes or source.num_classes,
        image_size=image_size,
        training=training,
        seed=int(seed),
        deterministic=deterministic,
        input_context=input_context,
        crop=crop,
        resize_method=resize_method,
        augment=augment,
        augment_on_device=augment_on_device,
        shuffle_buffer=s.shuffle_buffer,
        mixup_alpha=float(s.mixup_alpha) if training else 0.0,
    )
    reorder_window = 0 if _ordered(training, deterministic) else _reorder_window(window, cycle)
    # With a window per batch, rebatch passes the windows' batches through uncopied until a window comes out short
    # (a bad record); from then on each batch is put together from two windows, one more copy of each image.
    batches = batches.rebatch(batch_size, drop_remainder=training).scan(
        _count_bad_initial(reorder_window),
        _count_bad(float(max_bad_fraction), s.bad_check_min_records, reorder_window),
    )
    if training:
        dataset = batches if num_batches is None else batches.take(num_batches)
    else:
        dataset = _eval_batches(batches, source, split, batch_size, image_size, num_batches, input_context)
    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


def has_py_function(dataset):
    """True if the dataset's graph (including every function it calls) contains a Python function op."""
    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(dataset._as_serialized_graph().numpy())  # pylint: disable=protected-access
    nodes = list(graph.node)
    for function in graph.library.function:
        nodes.extend(function.node_def)
    return any(node.op in _PY_FUNCTION_OPS for node in nodes)
