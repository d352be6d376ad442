"""AutoAugment / RandAugment of a whole batch inside the compiled train step (XLA, TPU), giving each image exactly
the pixels the host path (data/autoaugment.py) gives it with the same seed.

make_dataset(augment_on_device=True) ships the augmentation's uint8 input before the random flip and each
example's seed; the train step calls finish_batch: the flip (flip_batch, the host's decision for that example),
then the augmentation (augment_batch). The flip moved here too because on the host it was the one per-record
step left after the cast (a random draw, a cond and a copy of the image, benchmarks/README.md).

Why a second implementation rather than the host functions in a loop: XLA on its own terms computes other
numbers than TensorFlow's CPU kernels (measured on TF 2.21, XLA on CPU): it fuses a
multiply and an add into one FMA (one rounding instead of two: ~23 % of random float32 a·b + c differ), turns a
division by a constant into a multiplication by its reciprocal, converts random bits to floats differently, and
has no kernel for ImageProjectiveTransformV3 and no run-time shapes (pad, bincount). So the batched path is
built to leave XLA nothing to re-round:

- The policy is compiled into tables at trace time. For the op slot being applied, every image's choice is an
  index into a list of candidates (AutoAugment: each sub-policy's op in that slot with either sign, plus "not
  applied"; RandAugment: the 16 ops with either sign), and each candidate's arguments become constant rows:
  a uint8 lookup table for the pixelwise ops (made by running the host op itself on a ramp of every value,
  so exact by construction), the products factor·k of the blends, the per-column/per-row products of the
  geometric transforms (computed in float32 by numpy, the way the transform kernel multiplies), Cutout's size.
- On the device only exact operations remain: integer arithmetic, comparisons, gathers, and float additions of
  two table values (no multiply left that XLA could fuse with them). Sharpness' 3×3 smoothing is the host's own
  function (autoaugment.smoothed): int64 arithmetic with int64 → float32 conversions (round to nearest even)
  that reproduce float32's roundings exactly, on any backend.
- Random draws: the host draws through autoaugment.uniform, built from Philox integer bits that XLA and
  TensorFlow generate identically; the same function runs here.

Static shapes throughout; every family of ops (lookup tables, histograms, geometry, blends, Cutout) runs under a
tf.cond that skips it when no image of the batch needs it. Tested bit-identical to the host path for every op,
level and sign, and for whole AutoAugment/RandAugment batches, eagerly and compiled with XLA on CPU
(tests/data/test_device_augment.py). Not testable here: XLA on TPU. The design relies only on IEEE float32
addition and subtraction, floor and comparisons, int64 → float32 round-to-nearest-even conversion, and one
multiplication (Color's grey · 255.5) that no addition follows; no division, no transcendental function.
Cost: every family an image of the batch needs is computed for the whole batch (static shapes), so the
device does more work per image than the host path; the figures are in benchmarks/README.md. Each op slot does
about six per-pixel gathers (tables, geometry, grey, blend); TPUs are known to run element-wise gathers slowly
(tensorflow/tensorflow issue 80253), and the cost on a TPU is unmeasured. If they dominate there, the uint8
tables can become one-hot matmuls in bfloat16, exact for values 0..255.
"""

import contextlib
import dataclasses
import functools
import math

import numpy as np
import tensorflow as tf

from data import autoaugment, preprocessing

# How each op is computed on the device.
_IDENTITY, _TABLE, _GEOMETRY, _COLOR, _SHARPNESS, _AUTOCONTRAST, _EQUALIZE, _CUTOUT = range(8)
_KIND = {
    "AutoContrast": _AUTOCONTRAST,
    "Equalize": _EQUALIZE,
    "Invert": _TABLE,
    "Rotate": _GEOMETRY,
    "Posterize": _TABLE,
    "Solarize": _TABLE,
    "Color": _COLOR,
    "Contrast": _TABLE,
    "Brightness": _TABLE,
    "Sharpness": _SHARPNESS,
    "ShearX": _GEOMETRY,
    "ShearY": _GEOMETRY,
    "TranslateX": _GEOMETRY,
    "TranslateY": _GEOMETRY,
    "Cutout": _CUTOUT,
    "SolarizeAdd": _TABLE,
}
IDENTITY = None  # candidate name meaning "op not applied"


@dataclasses.dataclass(frozen=True)
class Candidates:
    """The constant tables of one op slot, one row per candidate (numpy, built by compile_candidates)."""

    # Each row is the exact identity in the families its op is not in (identity table, factor 1, identity
    # transform, empty Cutout), so the families can run one after the other on the whole batch.
    kinds: np.ndarray  # int32 [n]: _IDENTITY, _TABLE, _GEOMETRY, ...
    tables: np.ndarray  # uint8 [n, 256]: the pixelwise ops' value map
    products: np.ndarray  # float32 [n, 511]: fl(factor · k), k = −255..255 (Color, Sharpness)
    x_terms: np.ndarray  # float32 [n, 2, width]: fl(a0 · x), fl(b0 · x) of the transform (output → input)
    y_terms: np.ndarray  # float32 [n, 2, height]: fl(a1 · y), fl(b1 · y)
    offsets: np.ndarray  # float32 [n, 2]: a2, b2
    half_sizes: np.ndarray  # int32 [n]: Cutout's half side


@contextlib.contextmanager
def _on_host():
    """Eagerly, on the CPU (as the input pipeline runs the host path), even while a step is traced for a TPU."""
    with tf.init_scope(), tf.device("/cpu:0"):
        yield


def _transform(name, signed_arg, height, width):
    """The 8-vector the host's transform kernel gets for a geometric op (autoaugment._rotate/_shear_*/_translate);
    the identity for any other op."""
    if name == "Rotate":
        with _on_host():  # the host's own float32 cos/sin/offset arithmetic, evaluated once here
            return autoaugment.rotate_transform(tf.constant(signed_arg, tf.float32), height, width).numpy()
    a0, a1, a2, b0, b1, b2 = 1.0, 0.0, 0.0, 0.0, 1.0, 0.0
    if name == "ShearX":
        a1 = signed_arg
    elif name == "ShearY":
        b0 = signed_arg
    elif name == "TranslateX":
        a2 = signed_arg
    elif name == "TranslateY":
        b2 = signed_arg
    return np.array([a0, a1, a2, b0, b1, b2, 0.0, 0.0], np.float32)


def _pixel_table(name, level, negate, height, width, hparams, uint8_wraparound):
    """uint8 [256]: the host op applied to images of this shape holding every value 0..255 (pixelwise ops only;
    Contrast depends on the image size, hence the shape)."""
    if name is IDENTITY:
        return np.arange(256, dtype=np.uint8)
    per_image = height * width * 3
    values = np.arange(math.ceil(256 / per_image) * per_image) % 256
    with _on_host():
        out = [
            autoaugment.apply_op(
                tf.constant(chunk.reshape(height, width, 3), tf.uint8),
                name,
                level,
                negate,
                uint8_wraparound=uint8_wraparound,
                **hparams,
            )
            .numpy()
            .reshape(-1)
            for chunk in values.reshape(-1, per_image)
        ]
    return np.concatenate(out)[:256]


def compile_candidates(entries, height, width, hparams, uint8_wraparound=True):
    """Candidates for `entries`, a sequence of (op name or IDENTITY, level, negate), on height × width images.
    hparams: translate_const and cutout_const (autoaugment.AUTOAUGMENT_HPARAMS / RANDAUGMENT_HPARAMS)."""
    columns, lines = np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
    rows = []
    for name, level, negate in entries:
        kind = _IDENTITY if name is IDENTITY else _KIND[name]
        arg = np.float32(0.0 if name is IDENTITY else autoaugment.level_to_arg(name, level, **hparams))
        factor = arg if kind in (_COLOR, _SHARPNESS) else np.float32(1.0)
        signed = -arg if negate and name in autoaugment.SIGNED_OPS else arg
        transform = _transform(name if kind == _GEOMETRY else None, signed, height, width)
        rows.append(
            dict(
                kinds=kind,
                tables=_pixel_table(
                    name if kind == _TABLE else IDENTITY, level, negate, height, width, hparams, uint8_wraparound
                ),
                # numpy float32 products round like the CPU kernels' separate multiplications.
                products=factor * np.arange(-255, 256, dtype=np.float32),
                x_terms=np.stack([transform[0] * columns, transform[3] * columns]),
                y_terms=np.stack([transform[1] * lines, transform[4] * lines]),
                offsets=transform[[2, 5]],
                half_sizes=int(arg) if kind == _CUTOUT else 0,
            )
        )
    fields = {f.name: np.stack([row[f.name] for row in rows]) for f in dataclasses.fields(Candidates)}
    return Candidates(**{k: v.astype(np.int32) if k in ("kinds", "half_sizes") else v for k, v in fields.items()})


# ----------------------------------------------------------------------------------------------------------
# The op families on a batch. images: uint8 [b, h, w, 3]; index: int32 [b], each image's candidate.


def _gray_tables():
    """float32 [3, 256]: fl(fl(v · fl(1/255)) · weight) per channel, the products of autoaugment._color."""
    scaled = np.arange(256, dtype=np.float32) * np.float32(1.0 / 255.0)
    return np.stack([scaled * np.float32(w) for w in autoaugment.GRAY_WEIGHTS])


def _autocontrast_products():
    """float32 [256, 256]: row d holds fl(v · fl(255 / d)) for v = 0..255 (row 0 unused)."""
    spreads = np.maximum(np.arange(256, dtype=np.float32), 1.0)
    return np.arange(256, dtype=np.float32)[None, :] * (np.float32(255.0) / spreads)[:, None]


def _autocontrast_tables(images):
    """int32 [b, 3, 256], autoaugment._autocontrast's table: fl(fl(v·scale) + fl(−lo·scale)), both products
    read from one constant table, so the device only subtracts."""
    low = tf.cast(tf.reduce_min(images, axis=[1, 2]), tf.int32)
    high = tf.cast(tf.reduce_max(images, axis=[1, 2]), tf.int32)
    rows = tf.gather(tf.constant(_autocontrast_products()), high - low)  # [b, 3, 256]
    stretched = rows - tf.gather(rows, low[..., None], batch_dims=2)
    stretched = tf.cast(tf.clip_by_value(stretched, 0.0, 255.0), tf.int32)
    return tf.where((high > low)[..., None], stretched, tf.range(256))


def _equalize_tables(images):
    """int32 [b, 3, 256], autoaugment._equalize's table, in integers."""
    batch, height, width = images.shape[0], images.shape[1], images.shape[2]
    ids = tf.cast(images, tf.int32) + tf.constant([0, 256, 512]) + 768 * tf.range(batch)[:, None, None, None]
    histograms = tf.reshape(tf.math.unsorted_segment_sum(tf.ones_like(ids), ids, batch * 768), [batch, 3, 256])
    high = tf.cast(tf.reduce_max(images, axis=[1, 2]), tf.int32)
    step = (height * width - tf.gather(histograms, high[..., None], batch_dims=2)) // 255  # [b, 3, 1]
    safe = tf.maximum(step, 1)
    tables = tf.clip_by_value((tf.cumsum(histograms, axis=2, exclusive=True) + safe // 2) // safe, 0, 255)
    return tf.where(step > 0, tables, tf.range(256))


def _batch_offsets(images, stride):
    """int32 [b, 1, 1, 1]: stride × the image's position in the batch, to index a flattened per-image table with
    one plain gather (cheaper than a batch_dims gather on CPU)."""
    return stride * tf.range(images.shape[0])[:, None, None, None]


def _apply_tables(images, tables):
    """Map each pixel through its image's and channel's table (int32 [b, 3, 256])."""
    indices = tf.cast(images, tf.int32) + tf.constant([0, 256, 512]) + _batch_offsets(images, 768)
    return tf.gather(tf.reshape(tf.cast(tables, tf.uint8), [-1]), indices)


def _geometry(images, index, cands):
    """The transform kernel's nearest-neighbour map, input = ((a0·x) + (a1·y)) + a2, from the product tables;
    outside the image: autoaugment.FILL_VALUE."""
    batch, height, width = images.shape[0], images.shape[1], images.shape[2]
    sources = autoaugment.nearest_sources(
        tf.gather(tf.constant(cands.x_terms), index),  # [b, 2, w]
        tf.gather(tf.constant(cands.y_terms), index),  # [b, 2, h]
        tf.gather(tf.constant(cands.offsets), index),  # [b, 2]
    )
    # Row 0 of each image's pixel list is the fill colour.
    positions = sources + _batch_offsets(images, height * width + 1)[..., 0]
    fill = tf.fill([batch, 1, 3], tf.constant(autoaugment.FILL_VALUE, tf.uint8))
    pixels = tf.reshape(tf.concat([fill, tf.reshape(images, [batch, -1, 3])], axis=1), [-1, 3])
    return tf.gather(pixels, positions)


def _blend(degenerate, images, index, cands):
    """to_uint8(d + fl(factor · (x − d))) with d integer-valued: one add of a table value per pixel."""
    products = tf.reshape(tf.gather(tf.constant(cands.products), index), [-1])  # [b · 511]
    scaled = tf.gather(products, tf.cast(images, tf.int32) - degenerate + 255 + _batch_offsets(images, 511))
    return tf.cast(tf.clip_by_value(tf.cast(degenerate, tf.float32) + scaled, 0.0, 255.0), tf.uint8)


def _gray(images):
    """int32 [b, h, w, 1]: autoaugment._color's grey, (r' + g') + b' of table products, then · 255.5."""
    tables = tf.constant(_gray_tables())
    pixels = tf.cast(images, tf.int32)
    terms = [tf.gather(tables[c], pixels[..., c]) for c in range(3)]
    gray = ((terms[0] + terms[1]) + terms[2]) * 255.5
    return tf.cast(tf.clip_by_value(gray, 0.0, 255.0), tf.int32)[..., None]


def _cutout(images, index, centers, cands):
    """Fill the square of half side half_sizes[index] around each image's centre [b, 2] with FILL_VALUE."""
    height, width = images.shape[1], images.shape[2]
    half = tf.gather(tf.constant(cands.half_sizes), index)[:, None]
    top, bottom = tf.maximum(centers[:, :1] - half, 0), tf.minimum(centers[:, :1] + half, height)
    left, right = tf.maximum(centers[:, 1:] - half, 0), tf.minimum(centers[:, 1:] + half, width)
    rows, cols = tf.range(height)[None, :], tf.range(width)[None, :]
    inside = ((rows >= top) & (rows < bottom))[:, :, None] & ((cols >= left) & (cols < right))[:, None, :]
    return tf.where(inside[..., None], tf.constant(autoaugment.FILL_VALUE, tf.uint8), images)


def apply_candidates(images, index, centers, cands):
    """Apply candidate index[i] of `cands` to image i: uint8 [b, h, w, 3] → uint8 [b, h, w, 3].
    centers: int32 [b, 2], Cutout's centre per image (autoaugment.cutout_center of the op's seed).

    The families run one after the other on the whole batch, each skipped by a tf.cond when no image needs it;
    an image whose op is in another family passes through exactly unchanged (see Candidates)."""
    kinds = tf.gather(tf.constant(cands.kinds), index)

    def needed(*members):
        return tf.reduce_any([tf.equal(kinds, k) for k in members])

    def run_if(condition, compute, current):
        return tf.cond(condition, lambda: compute(current), lambda: current)

    def tables(current):
        rows = tf.broadcast_to(
            tf.cast(tf.gather(tf.constant(cands.tables), index), tf.int32)[:, None, :], [current.shape[0], 3, 256]
        )
        for kind, make in ((_AUTOCONTRAST, _autocontrast_tables), (_EQUALIZE, _equalize_tables)):
            chosen = tf.equal(kinds, kind)
            made = tf.cond(tf.reduce_any(chosen), lambda make=make: make(current), lambda rows=rows: rows)
            rows = tf.where(chosen[:, None, None], made, rows)
        return _apply_tables(current, rows)

    def blends(current):
        gray = tf.cond(needed(_COLOR), lambda: _gray(current), lambda: tf.zeros_like(current[..., :1], tf.int32))
        smooth = tf.cond(
            needed(_SHARPNESS), lambda: autoaugment.smoothed(current), lambda: tf.zeros_like(current, tf.int32)
        )
        # One of the two per image (the other is zero): a sum instead of a broadcast select.
        is_color = tf.cast(tf.equal(kinds, _COLOR), tf.int32)[:, None, None, None]
        return _blend(gray * is_color + smooth * (1 - is_color), current, index, cands)

    result = run_if(needed(_TABLE, _AUTOCONTRAST, _EQUALIZE), tables, images)
    result = run_if(needed(_GEOMETRY), lambda current: _geometry(current, index, cands), result)
    result = run_if(needed(_COLOR, _SHARPNESS), blends, result)
    return run_if(needed(_CUTOUT), lambda current: _cutout(current, index, centers, cands), result)


# ----------------------------------------------------------------------------------------------------------
# The policies.


def _per_image(seeds, fn, signature):
    return tf.map_fn(fn, seeds, fn_output_signature=signature)


@functools.lru_cache(maxsize=None)
def _autoaugment_slots(height, width, uint8_wraparound):
    """Per slot: (Candidates: 2 per sub-policy (sign +, −) then "not applied", float32 [25] probabilities)."""
    slots = []
    for slot in range(2):
        entries = [(sub[slot][0], sub[slot][2], negate) for sub in autoaugment.POLICY_V0 for negate in (False, True)]
        cands = compile_candidates(
            entries + [(IDENTITY, 0, False)], height, width, autoaugment.AUTOAUGMENT_HPARAMS, uint8_wraparound
        )
        slots.append((cands, np.array([sub[slot][1] for sub in autoaugment.POLICY_V0], np.float32)))
    return tuple(slots)


def _autoaugment(images, seeds, uint8_wraparound):
    """autoaugment.distort_with_autoaugment, image by image, on the batch."""
    height, width = images.shape[1], images.shape[2]
    policy_size = len(autoaugment.POLICY_V0)

    def draw(seed):  # the host's draws (distort_with_autoaugment), then each slot's Cutout centre
        draws = autoaugment.uniform(seed, 5)
        centers = [autoaugment.cutout_center([height, width], autoaugment.fold_in(seed, slot + 1)) for slot in range(2)]
        return draws, tf.stack(centers)

    draws, centers = _per_image(seeds, draw, (tf.TensorSpec([5], tf.float32), tf.TensorSpec([2, 2], tf.int32)))
    choice = tf.minimum(tf.cast(draws[:, 0] * policy_size, tf.int32), policy_size - 1)
    for slot, (cands, probs) in enumerate(_autoaugment_slots(height, width, uint8_wraparound)):
        applied = draws[:, 1 + slot] < tf.gather(tf.constant(probs), choice)
        candidate = 2 * choice + tf.cast(draws[:, 3 + slot] < 0.5, tf.int32)
        index = tf.where(applied, candidate, 2 * policy_size)
        images = apply_candidates(images, index, centers[:, slot], cands)
    return images


@functools.lru_cache(maxsize=None)
def _randaugment_candidates(height, width, magnitude, uint8_wraparound):
    entries = [(name, magnitude, negate) for name in autoaugment.OP_NAMES for negate in (False, True)]
    return compile_candidates(entries, height, width, autoaugment.RANDAUGMENT_HPARAMS, uint8_wraparound)


def _randaugment(images, seeds, num_layers, magnitude, uint8_wraparound):
    """autoaugment.distort_with_randaugment, image by image, on the batch."""
    height, width = images.shape[1], images.shape[2]
    cands = _randaugment_candidates(height, width, float(magnitude), uint8_wraparound)
    num_ops = len(autoaugment.OP_NAMES)
    for layer in range(num_layers):

        def draw(seed, layer=layer):
            layer_seed = autoaugment.fold_in(seed, layer + 1)
            return autoaugment.uniform(layer_seed, 2), autoaugment.cutout_center([height, width], layer_seed)

        draws, centers = _per_image(seeds, draw, (tf.TensorSpec([2], tf.float32), tf.TensorSpec([2], tf.int32)))
        op_index = tf.minimum(tf.cast(draws[:, 0] * num_ops, tf.int32), num_ops - 1)
        images = apply_candidates(images, 2 * op_index + tf.cast(draws[:, 1] < 0.5, tf.int32), centers, cands)
    return images


def flip_batch(images, seeds):
    """[b, h, w, c] images and their int [b, 2] augmentation seeds → each image left-right flipped when the host
    path would flip it (preprocessing.random_flip with the example's flip seed, preprocessing.flip_seeds). The
    decision is drawn with autoaugment.uniform, the Philox bits XLA generates as TensorFlow does, so it is the
    host's also when compiled for a TPU. XLA-compilable."""
    images = tf.convert_to_tensor(images)
    coins = _per_image(
        preprocessing.flip_seeds(tf.cast(seeds, tf.int64)),
        lambda seed: autoaugment.uniform(seed, 1)[0],
        tf.TensorSpec([], tf.float32),
    )
    return tf.where(coins[:, None, None, None] < 0.5, tf.reverse(images, [2]), images)


def finish_batch(
    images, seeds, augment_name, randaugment_num_layers=None, randaugment_magnitude=None, uint8_wraparound=True
):
    """What make_dataset(augment_on_device=True) leaves to the train step: flip_batch, then augment_batch (the
    host path's order: flip, then augment). Arguments as augment_batch's."""
    return augment_batch(
        flip_batch(images, seeds), seeds, augment_name, randaugment_num_layers, randaugment_magnitude, uint8_wraparound
    )


def augment_batch(
    images, seeds, augment_name, randaugment_num_layers=None, randaugment_magnitude=None, uint8_wraparound=True
):
    """uint8 [b, h, w, 3] images (static shape) and int [b, 2] per-example seeds → uint8 [b, h, w, 3], image i
    equal to preprocessing.augment(images[i], seeds[i], ...) on the host. XLA-compilable."""
    images = tf.convert_to_tensor(images)
    if images.dtype != tf.uint8 or images.shape.rank != 4 or not images.shape[1:].is_fully_defined():
        raise ValueError(
            f"augment_batch expects uint8 [batch, height, width, 3] with static height and width, "
            f"got {images.dtype.name} {images.shape}"
        )
    if images.shape[0] is None:
        raise ValueError("augment_batch needs a static batch size (drop_remainder batches)")
    seeds = tf.cast(seeds, tf.int64)
    if augment_name == "autoaugment":
        return _autoaugment(images, seeds, uint8_wraparound)
    if augment_name == "randaugment":
        layers = autoaugment.check_num_layers(randaugment_num_layers)
        magnitude = autoaugment.check_level(randaugment_magnitude, "randaugment magnitude")
        return _randaugment(images, seeds, layers, magnitude, uint8_wraparound)
    raise ValueError(f"augment_name must be autoaugment or randaugment here, got {augment_name!r}")
