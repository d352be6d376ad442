"""End to end: a Lite config's eval pipeline (training/core/inputs.py eval_dataset → data/pipeline.py) resizes with the
compat.v1 bilinear kernel, a B0 config's with bicubic, pixel for pixel as the original's port; the serving signature's
preprocessing (training/serving/export.py eval_preprocessing) and --mode=predict's reader use the run's kernel."""

import numpy as np
import pytest
import tensorflow as tf

from configs import base
from data import sources
from tests.data import original_port as port
from tests.data.conftest import make_example, write_shards
from tests.training.conftest import plan_of
from training.core import context, inputs
from training.serving import export, predict

SIZES = [(61, 83), (90, 70), (40, 40), (75, 120), (33, 50)]


@pytest.fixture(scope="module")
def photo_records(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("photo_records"))
    jpegs = [port.jpeg_bytes(port.photo_like(h, w, 20 + i)) for i, (h, w) in enumerate(SIZES)]
    write_shards(directory, "validation", [3, 2], lambda i: make_example(jpegs[i], i + 1))
    write_shards(directory, "train", [1], lambda i: make_example(jpegs[i], i + 1))
    return directory, jpegs


@pytest.mark.parametrize("variant,method", [("lite0", "bilinear"), ("b0", "bicubic")])
def test_eval_dataset_resizes_with_the_variants_kernel(photo_records, variant, method):
    directory, jpegs = photo_records
    config = base.get_config()
    config.model.variant = variant
    config.model.image_size = 48
    config.eval.batch_size = 8
    config.runtime.mode = "eval"  # only evaluates: no training schedule to plan
    assert plan_of(config).resize_method == method
    source = sources.get_source(data_dir=directory, holdout_shards=0, num_classes=len(SIZES))
    ctx = context.RunContext(
        plan=plan_of(config, source=source), strategy=tf.distribute.get_strategy(), source=source, log=None
    )
    seen = 0
    for batch in inputs.eval_dataset(ctx, "validation"):
        for image, label, mask in zip(batch["images"].numpy(), batch["labels"].numpy(), batch["mask"].numpy()):
            if mask:
                want = port.preprocess_for_eval(jpegs[label], 48, method)
                assert np.abs(image - want).max() == 0.0, (variant, label)
                seen += 1
    assert seen == len(SIZES)


@pytest.mark.parametrize("method", ["bilinear", "bicubic"])
def test_serving_preprocessing_and_predict_resize_with_the_runs_kernel(photo_records, tmp_path, method):
    _, jpegs = photo_records
    config = base.get_config()
    config.model.image_size, config.data.crop_fraction, config.data.resize_method = 48, 48 / 80, method
    serve = export.eval_preprocessing(plan_of(config))  # what the export's serving_default runs in its graph
    for data in jpegs[:2]:
        assert np.abs(serve(tf.constant(data)).numpy() - port.preprocess_for_eval(data, 48, method)).max() == 0.0
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpegs[3])
    read = predict._read_images([str(path)], 48, 48 / 80, method).numpy()
    assert np.abs(read[0] - port.preprocess_for_eval(jpegs[3], 48, method)).max() == 0.0
