"""The command line: one flag table, the original's flags, one config rule for every spelling, help output,
and the original's command lines (Cloud TPU tutorial, README) up to the point where data is read."""

import os
import re
import subprocess
import sys
import time

import pytest
from absl import flags

from configs import base, cli
from tests.conftest import resolve_command_line, run_main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Every flag defined by tensorflow/tpu models/official/efficientnet/main.py (the names, as facts).
ORIGINAL_FLAGS = """use_tpu tpu_job_name tpu gcp_project tpu_zone data_dir holdout_shards eval_name archive_ckpt
model_dir
model_name mode augment_name randaug_num_layers randaug_magnitude train_steps input_image_size train_batch_size
eval_batch_size batch_norm_batch_size num_train_images num_eval_images steps_per_eval eval_timeout skip_host_call
iterations_per_loop num_parallel_calls bigtable_project bigtable_instance bigtable_table bigtable_train_prefix
bigtable_eval_prefix bigtable_column_family bigtable_column_qualifier data_format num_label_classes
batch_norm_momentum batch_norm_epsilon transpose_input use_bfloat16 export_dir export_to_tpu base_learning_rate
lr_decay_epoch moving_average_decay weight_decay label_smoothing dropout_rate survival_prob mixup_alpha
log_step_count_steps use_cache depth_coefficient width_coefficient use_async_checkpointing optimizer lr_schedule
lr_decay_factor lr_warmup_epochs lars_weight_decay lars_epsilon num_replicas""".split()


def test_every_flag_of_the_original_is_accepted():
    assert set(ORIGINAL_FLAGS) <= set(cli.BY_NAME)
    for flag in cli.FLAGS:  # each row sets a real field, or says why not
        if flag.field:
            section, field = flag.field.split(".")
            assert field in base.get_config()[section], flag.name
        else:
            assert flag.no_effect or flag.name in (
                "use_tpu",
                "optimizer",
                "bigtable_instance",
                "batch_norm_momentum",
                "batch_norm_epsilon",
            ), flag.name


def test_the_originals_optimizers_and_schedules_are_accepted():
    config, _, _ = resolve_command_line(
        ["--optimizer=lars", "--lars_weight_decay=1e-4", "--lars_epsilon=1e-9", "--lr_schedule=poly"]
    )
    train = config["train"]
    assert (train["optimizer"], train["lars_weight_decay"], train["lars_epsilon"], train["lr_schedule"]) == (
        "lars",
        1e-4,
        1e-9,
        "poly",
    )
    for name in ("sgd", "momentum", "rmsprop"):
        assert resolve_command_line([f"--optimizer={name}"])[0]["train"]["optimizer"] == name
    assert resolve_command_line(["--lr_schedule=constant"])[0]["train"]["lr_schedule"] == "constant"


def test_original_flags_set_the_same_fields_as_ours():
    original, notes, _ = resolve_command_line(
        [
            "--model_name=efficientnet-b4",
            "--input_image_size=320",
            "--randaug_num_layers=3",
            "--randaug_magnitude=15",
            "--lr_warmup_epochs=0.5",
            "--lr_decay_epoch=0.2",
            "--lr_decay_factor=0.9",
            "--dropout_rate=0.1",
            "--survival_prob=0.9",
            "--width_coefficient=1.1",
            "--depth_coefficient=1.2",
            "--tpu=t1",
            "--tpu_zone=us-c1",
            "--gcp_project=p",
            "--eval_timeout=60",
            "--num_train_images=1281167",
            "--num_eval_images=50000",
            "--data_dir=gs://b/i",
            "--optimizer=rmsprop",
            "--mixup_alpha=0",
            "--batch_norm_momentum=0.99",
        ]
    )
    ours, no_notes, _ = resolve_command_line(
        [
            "--data_dir=gs://b/i",
            "--tpu=t1",
            "--config.model.variant=b4",
            "--config.model.image_size=320",
            "--config.data.randaugment_num_layers=3",
            "--config.data.randaugment_magnitude=15",
            "--config.train.warmup_epochs=0.5",
            "--config.train.lr_decay_epochs=0.2",
            "--config.train.lr_decay_rate=0.9",
            "--config.model.dropout_rate=0.1",
            "--config.model.survival_prob=0.9",
            "--config.model.width_coefficient=1.1",
            "--config.model.depth_coefficient=1.2",
            "--config.runtime.tpu_zone=us-c1",
            "--config.runtime.gcp_project=p",
            "--config.eval.timeout_seconds=60",
            "--config.data.num_train_images=1281167",
            "--config.data.num_eval_images=50000",
        ]
    )
    assert original == ours and notes == [] == no_notes


def test_1001_classes_keep_the_background_label_as_in_the_original():
    assert resolve_command_line(["--num_label_classes=1001"])[0]["data"]["include_background"] is True
    assert resolve_command_line(["--num_label_classes=1000"])[0]["data"]["include_background"] is False
    assert (
        resolve_command_line(["--num_label_classes=1001", "--noconfig.data.include_background"])[0]["data"][
            "include_background"
        ]
        is False
    )


def test_tf1_only_flags_are_accepted_with_one_note_each():
    config, notes, _ = resolve_command_line(
        [
            "--transpose_input=false",
            "--skip_host_call=true",
            "--use_cache",
            "--data_format",
            "channels_first",
            "--num_parallel_calls=8",
            "--export_to_tpu",
            "--log_step_count_steps=10",
        ]
    )
    assert config == resolve_command_line([])[0]
    assert len(notes) == 7 and all(n.startswith("note: --") and "no effect" in n for n in notes)


@pytest.mark.parametrize(
    "args, tpu, note",
    [
        (["--use_tpu=false", "--tpu=t1"], None, True),  # the usual GPU incantation of the original
        (["--use_tpu=false"], None, False),
        (["--use_tpu=true", "--tpu=t1"], "t1", False),
        (["--tpu=t1"], "t1", False),
    ],
)
def test_use_tpu(args, tpu, note):
    config, notes, _ = resolve_command_line(args)
    assert config["runtime"]["tpu"] == tpu and bool(notes) == note


SPELLINGS = [  # each group: the same command in the forms absl accepts
    [
        ["--mode=predict", "--init_checkpoint=w.h5"],
        ["--mode", "predict", "--init_checkpoint", "w.h5"],
        ["-mode=predict", "-init_checkpoint=w.h5"],
        ["--config.runtime.mode=predict", "--init_checkpoint=w.h5"],
        ["--flagfile={flagfile}"],
    ],
    [
        [],
        ["--nodeterministic"],
        ["--deterministic=false"],
        ["--config.train.deterministic=false"],
        ["--noconfig.train.deterministic"],
    ],
    [
        ["--deterministic"],
        ["--deterministic=true"],
        ["--config.train.deterministic=true"],
        ["--config.train.deterministic"],
    ],
    [
        ["--data_dir=gs://b/i", "--model=b4"],
        ["--data_dir", "gs://b/i", "--model_name", "efficientnet-b4"],
        ["--config.data.data_dir=gs://b/i", "--config.model.variant=b4"],
        ["--model_name=EfficientNet-B4", "--data_dir=gs://b/i"],
    ],
    [
        ["--mode=export", "--init_checkpoint=w.h5", "--model_dir=d"],
        ["--model_dir", "d", "--init_checkpoint", "w.h5", "--mode", "export"],
    ],
]


@pytest.mark.parametrize("group", range(len(SPELLINGS)))
def test_the_config_does_not_depend_on_spelling(group, tmp_path):
    flagfile = tmp_path / "flags"
    flagfile.write_text("--mode=predict\n--init_checkpoint=w.h5\n")
    configs = [resolve_command_line([a.format(flagfile=flagfile) for a in args])[0] for args in SPELLINGS[group]]
    assert all(c == configs[0] for c in configs)


def test_abbreviations_are_refused_like_any_unknown_flag():
    with pytest.raises(flags.UnrecognizedFlagError):
        resolve_command_line(["--train_st=3"])


@pytest.mark.parametrize(
    "args, preset",
    [
        ([], "demo"),
        (["--mode=train"], "demo"),
        (["--mode", "train", "--init_checkpoint=w.h5"], "demo"),  # fine-tuning on the demo data
        (["--data_dir=gs://b/i"], "imagenet"),
        (["--dataset=tfds:cifar10", "--mode=train"], "imagenet"),
        (
            ["--mode", "predict", "--init_checkpoint=w.h5", "cat.jpg"],
            "imagenet",
        ),  # the space form picked the demo before
        (["--mode=export", "--init_checkpoint=w.h5", "--model_dir=d"], "imagenet"),  # 64 px before
        (["--mode=export", "--init_checkpoint=w.h5", "--export_dir=e"], "imagenet"),
        (["--mode=eval", "--model_dir=d"], "imagenet"),  # a run's own settings come from its config.json
    ],
)
def test_one_rule_picks_the_preset(args, preset):
    config, _, _ = resolve_command_line(args)
    from configs import demo, imagenet  # pylint: disable=import-outside-toplevel

    expected = {"demo": demo, "imagenet": imagenet}[preset].get_config()
    assert config["model"]["image_size"] == expected.model.image_size
    assert config["train"]["batch_size"] == expected.train.batch_size


def test_named_flags_and_overrides_are_the_user_fields():
    _, _, given = resolve_command_line(
        ["--model_name=efficientnet-b2", "--config.data.crop_fraction=0.9", "--skip_host_call"]
    )
    assert given == {"model.variant", "data.crop_fraction"}


def _main(*args):
    start = time.monotonic()
    process = run_main(list(args), 120)
    return process, time.monotonic() - start


def test_help_exits_0_and_shows_the_recipes_defaults():
    process, _ = _main("--help")
    assert process.returncode == 0, process.stderr
    text = " ".join(process.stdout.split())
    for expected in (
        "--train_batch_size: Global training batch. Demo config (no data given): 32. (default: '4096')",
        "(default: '0.016')",
        "--lr_warmup_epochs: Linear learning-rate warm-up, in epochs. "
        "Demo config (no data given): 1.0. (default: '5.0')",
        "--[no]skip_host_call: Accepted",
    ):
        assert expected in text
    full, _ = _main("--helpfull")
    assert full.returncode == 0 and "--config.train.warmup_epochs=5.0" in full.stdout


def test_help_config_lists_every_field_with_the_defaults_of_the_preset_the_command_would_use():
    process, _ = _main("--help_config", "--data_dir=/nowhere")  # with data: the recipe (configs/imagenet.py)
    assert process.returncode == 0, process.stderr
    header, *lines = process.stdout.splitlines()
    assert header.startswith("# defaults of configs/imagenet.py")
    fields = [
        f"--config.{s}.{f}={v!r}"
        for s, fs in base.get_config().items()
        for f, v in fs.items()
        if f"{s}.{f}" != "data.data_dir"
    ]
    assert len(lines) == len(fields) + 1 and all(any(line.startswith(f) for line in lines) for f in fields)
    assert "--config.train.batch_size=4096    # global; per-replica batches" in process.stdout
    assert "--config.model.survival_prob=0.8    # stochastic depth, every size (docs/recipe.md §2)" in process.stdout
    demo_run, _ = _main("--help_config", "--train_steps=7")  # no data: the demo config, the flag applied
    assert demo_run.stdout.startswith("# defaults of configs/demo.py")
    assert "--config.train.batch_size=32    #" in demo_run.stdout and "--config.train.steps=7" in demo_run.stdout


def test_help_config_attaches_each_comment_to_its_own_field_and_spells_out_choices():
    comments = {
        line.split("=", 1)[0]: line.partition("    # ")[2] for line in _main("--help_config")[0].stdout.splitlines()[1:]
    }
    assert comments["--config.data.num_eval_images"] == "None: counted; set: checked against validation"
    assert comments["--config.data.augment_on_device"].startswith("Run AutoAugment/RandAugment in the train step")
    assert comments["--config.data.randaugment_magnitude"] == "RandAugment: the ops' strength"
    assert comments["--config.runtime.export_at_end"] == "... or to model_dir/export when this is True"
    assert comments["--config.runtime.export_tflite"].startswith("The export also writes float32")
    assert comments["--config.data.crop_area_range"].startswith("Random-crop sampler of the training")
    assert comments["--config.data.resize_method"].endswith(
        "(bilinear for EdgeTPU/Lite as tensorflow/tpu main.py, else bicubic)"
    )  # a continuation line joined
    assert comments["--config.runtime.mode"] == "one of " + ", ".join(base.MODES)
    assert comments["--config.data.augment_name"] == "one of autoaugment, randaugment, none"


def test_help_groups_the_flags_with_the_originals_compatibility_flags_last():
    process, _ = _main("--help")
    assert process.returncode == 0, process.stderr
    text = process.stdout
    titles = [title for title, _ in cli.HELP_GROUPS] + [cli.COMPATIBILITY_GROUP]
    positions = [text.index(f"\n{title}:\n") for title in titles]
    assert positions == sorted(positions)
    compatibility = text[positions[-1] :]
    assert "--[no]skip_host_call: Accepted" in compatibility and "--model_name:" in compatibility
    assert "--train_batch_size:" not in compatibility and "--tpu:" in text[positions[3] : positions[-1]]
    assert sorted(f.name for _, group in cli.help_groups() for f in group) == sorted(f.name for f in cli.FLAGS)
    for mode in base.MODES:
        assert re.search(rf"^  {mode} +\S", text, re.MULTILINE), mode
    assert "IMAGE_FILES" in text.split("\n")[0] and "python main.py --model=b4 --tpu=NAME" in text


def test_bad_flags_fail_in_under_a_second_without_tensorflow():
    elapsed = min(_main("--no_such_flag=1")[1] for _ in range(3))
    assert elapsed < 1.0
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, main; print('tensorflow' in sys.modules)"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.stdout.strip() == "False", probe.stderr


class _StubResolver:
    """Stands in for tf.distribute.cluster_resolver.TPUClusterResolver: records how it was called."""

    calls = []

    def __init__(self, tpu=None, zone=None, project=None):
        self.calls.append({"tpu": tpu, "zone": zone, "project": project})

    def master(self):
        return ""


@pytest.fixture
def stub_tpu(monkeypatch):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    class StubStrategy:  # TPUStrategy(resolver) -> the default strategy
        def __new__(cls, resolver):
            return tf.distribute.get_strategy()

    _StubResolver.calls = []
    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", _StubResolver)
    monkeypatch.setattr(tf.config, "experimental_connect_to_cluster", lambda resolver: None)
    monkeypatch.setattr(tf.tpu.experimental, "initialize_tpu_system", lambda resolver: None)
    monkeypatch.setattr(tf.distribute, "TPUStrategy", StubStrategy)
    return _StubResolver.calls


@pytest.mark.parametrize(
    "command",
    [
        # The Cloud TPU tutorial's training command (TPU node, fake_imagenet in its place here).
        "--tpu=my-tpu --data_dir={data} --model_dir={model} --model_name=efficientnet-b0 --skip_host_call=true "
        "--train_batch_size=2048 --train_steps=1000 --mode=train_and_eval --use_tpu=True --tpu_zone=us-central1-b "
        "--gcp_project=my-project --iterations_per_loop=1251 --transpose_input=true --use_cache=false",
        # The original README's command.
        "--tpu=my-tpu --data_dir={data} --model_dir={model}",
        # Its evaluation job beside a training job.
        "--tpu=my-tpu --data_dir={data} --model_dir={model} --model_name=efficientnet-b0 --mode=eval --eval_timeout=60",
    ],
)
def test_the_originals_command_lines_run_up_to_reading_data(command, stub_tpu, tmp_path):
    from training.errors import UserError  # pylint: disable=import-outside-toplevel
    from training.session import run  # pylint: disable=import-outside-toplevel

    data, model = tmp_path / "imagenet", tmp_path / "run"
    config_dict, _, user_fields = resolve_command_line(command.format(data=data, model=model).split())
    import ml_collections  # pylint: disable=import-outside-toplevel

    config = ml_collections.ConfigDict(config_dict)
    assert config.model.variant == "b0" and config.runtime.tpu == "my-tpu"
    if "--mode=eval" in command:  # the sidecar waits for the training job: here none comes
        config.eval.timeout_seconds = 0
    with pytest.raises(UserError) as error:
        run.run(config, user_fields=user_fields)
    if "--mode=eval" in command:
        assert "no training run appeared" in str(error.value)
        return
    assert os.path.join(str(data), "train-") in str(error.value)  # the data is where it stopped
    zone = "us-central1-b" if "--tpu_zone" in command else None
    project = "my-project" if "--gcp_project" in command else None
    assert stub_tpu == [{"tpu": "my-tpu", "zone": zone, "project": project}]
    assert not model.exists()  # nothing written before the data was found


def test_tensorflow_start_up_noise_is_filtered(tmp_path):
    """On this CPU-only machine TensorFlow prints 3-7 lines while loading (the cuInit error, oneDNN and
    cudart_stub notices); main.py's output keeps only its own lines: predict's first line (on stderr, since its
    stdout is its results) and the error."""
    process, _ = _main("--mode=predict", f"--init_checkpoint={tmp_path / 'missing.h5'}", "cat.jpg")
    assert process.returncode == 2
    assert process.stderr.strip().splitlines() == [
        f"predict: the published weights {tmp_path / 'missing.h5'} (b0), 1 image path(s); loading TensorFlow",
        f"error: --init_checkpoint {tmp_path / 'missing.h5'}: no such file",
    ]
