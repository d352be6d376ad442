"""training/preflight.py: the first line and the remote-name checks, before TensorFlow loads."""

import pytest

from configs import base
from tests.conftest import run_main, tiny_flags, without_tensorflow
from training import preflight
from training.errors import UserError


def _config(**runtime):
    config = base.get_config()
    config.update_from_flattened_dict({f"runtime.{k}": v for k, v in runtime.items()})
    return config


class _Resolver:
    """lookup(host) for check_remote_names: the hosts in `missing` do not resolve; records what was asked."""

    def __init__(self, *missing):
        self.missing, self.asked = set(missing), []

    def __call__(self, host):
        self.asked.append(host)
        return "Name or service not known" if host in self.missing else None


def test_a_training_command_gets_its_run_directory_before_tensorflow_and_other_modes_keep_theirs():
    config = _config(mode="train")
    preflight.complete_model_dir(config)
    assert config.runtime.model_dir.startswith("runs/b0-")
    for mode in ("eval", "export", "predict"):
        config = _config(mode=mode)
        preflight.complete_model_dir(config)
        assert config.runtime.model_dir is None, mode  # "no --model_dir" is what these modes' checks look at


@pytest.mark.parametrize(
    "runtime, data, files, expected",
    [
        (
            {"mode": "train_and_eval", "model_dir": "runs/x"},
            {},
            (),
            "train_and_eval: b0 from P on the generated demo data; model_dir runs/x; loading TensorFlow",
        ),
        (
            {"mode": "train", "model_dir": "gs://b/r"},
            {"data.data_dir": "gs://b/imagenet"},
            (),
            "train: b0 from P on gs://b/imagenet; model_dir gs://b/r; loading TensorFlow",
        ),
        (
            {"mode": "train", "model_dir": "r"},
            {"data.dataset": "tfds:cifar10"},
            (),
            "train: b0 from P on TFDS tfds:cifar10; model_dir r; loading TensorFlow",
        ),
        ({"mode": "eval", "model_dir": "r"}, {}, (), "eval: the run in r on the run's data; loading TensorFlow"),
        (
            {"mode": "eval", "init_checkpoint": "w.h5"},
            {},
            (),
            "eval: the published weights w.h5 (b0) on the generated demo data; loading TensorFlow",
        ),
        (
            {"mode": "export", "init_checkpoint": "w.h5"},
            {},
            (),
            "export: the published weights w.h5 (b0); loading TensorFlow",
        ),
        (
            {"mode": "predict", "model_dir": "r"},
            {},
            ("a.jpg", "photos/"),
            "predict: the run in r, 2 image path(s); loading TensorFlow",
        ),
        ({"mode": "predict"}, {}, ("a.jpg",), "predict: no run or weights given, 1 image path(s); loading TensorFlow"),
    ],
)
def test_the_first_line_says_what_runs_on_which_data_and_where(runtime, data, files, expected):
    config = _config(**runtime)
    config.update_from_flattened_dict(data)
    assert preflight.first_line(config, "P", files) == expected


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("data.data_dir", "gs:/bucket/imagenet", "--data_dir=gs:/bucket/imagenet: a Cloud Storage path is written"),
        ("runtime.model_dir", "gs://My_Bucket/run", "--model_dir=gs://My_Bucket/run: 'My_Bucket' is not a Cloud"),
        ("runtime.export_dir", "gs://", "--export_dir=gs://: '' is not a Cloud Storage bucket name"),
        ("runtime.init_checkpoint", "GS://b/w.h5", "--init_checkpoint=GS://b/w.h5: a Cloud Storage path is written"),
    ],
)
def test_a_malformed_cloud_storage_path_is_refused_without_asking_the_network(field, value, expected):
    config = _config()
    config.update_from_flattened_dict({field: value})
    resolver = _Resolver()
    with pytest.raises(UserError, match="^" + expected.replace("(", r"\(").replace("*", r"\*")):
        preflight.check_remote_names(config, lookup=resolver)
    assert resolver.asked == []


def test_cloud_storage_paths_need_its_host_to_resolve_and_local_paths_ask_nothing():
    config = _config(model_dir="/tmp/run")
    config.data.data_dir = "/data/imagenet"
    resolver = _Resolver(preflight.GCS_HOST)
    preflight.check_remote_names(config, ["photo.jpg"], lookup=resolver)
    assert resolver.asked == []
    config.data.data_dir = "gs://bucket/imagenet"
    preflight.check_remote_names(config, lookup=_Resolver())  # a machine that reaches Cloud Storage
    with pytest.raises(UserError) as error:
        preflight.check_remote_names(config, lookup=resolver)
    assert str(error.value) == (
        "--data_dir=gs://bucket/imagenet: Cloud Storage cannot be reached from this machine "
        "(storage.googleapis.com does not resolve: Name or service not known)"
    )
    config.data.data_dir = "/data/imagenet"
    with pytest.raises(UserError, match="^image path=gs://bucket/cat.jpg: Cloud Storage cannot be reached"):
        preflight.check_remote_names(config, ["gs://bucket/cat.jpg"], lookup=resolver)


@pytest.mark.parametrize(
    "runtime, missing, expected",
    [
        ({"tpu": "local"}, (preflight.TPU_API_HOST, preflight.METADATA_HOST), None),
        ({"tpu": "my-tpu"}, (), None),
        ({"tpu": "my-tpu"}, (preflight.TPU_API_HOST,), "--tpu=my-tpu: a TPU name is looked up through the Cloud"),
        (
            {"tpu": "my-tpu"},
            (preflight.METADATA_HOST,),
            "--tpu=my-tpu: without --tpu_zone and --gcp_project the TPU's zone and project come from",
        ),
        ({"tpu": "my-tpu", "tpu_zone": "us-central1-b", "gcp_project": "p"}, (preflight.METADATA_HOST,), None),
        ({"tpu": "grpc://10.0.0.2:8470"}, (), None),
        ({"tpu": "grpc://10.0.0.2"}, (), "--tpu=grpc://10.0.0.2: a TPU worker's address is grpc://HOST:PORT"),
        ({"tpu": "grpc://10.0.0.2:port"}, (), "--tpu=grpc://10.0.0.2:port: a TPU worker's address is grpc://HOST"),
        ({"tpu": "http://10.0.0.2:8470"}, (), "--tpu=http://10.0.0.2:8470: a TPU worker's address is grpc://HOST"),
        ({"tpu": "grpc://tpu-worker:8470"}, ("tpu-worker",), "--tpu=grpc://tpu-worker:8470: the host tpu-worker"),
    ],
)
def test_a_tpu_name_or_address_is_checked_before_tensorflow(runtime, missing, expected):
    config = _config(**runtime)
    resolver = _Resolver(*missing)
    if expected is None:
        preflight.check_remote_names(config, lookup=resolver)
        assert runtime["tpu"] != "local" or resolver.asked == []
        return
    with pytest.raises(UserError) as error:
        preflight.check_remote_names(config, lookup=resolver)
    assert str(error.value).startswith(expected), str(error.value)
    assert "\n" not in str(error.value)


def test_the_resolver_answers_for_a_name_that_exists_and_one_that_cannot():
    assert preflight._lookup("localhost") is None
    reason = preflight._lookup("efficientnet-no-such-host.invalid")  # RFC 6761: never resolves
    assert reason and "\n" not in reason


def test_the_first_line_and_the_remote_checks_come_before_tensorflow_loads(tmp_path):
    """Under a stand-in `tensorflow` package that fails to import, main.py still prints its first line (and then
    fails at the import), and refuses a malformed gs:// path with its one line and status 2, writing nothing."""
    env = without_tensorflow(tmp_path / "stand-in")
    model_dir = tmp_path / "run"
    started = run_main(tiny_flags(model_dir, tmp_path / "demo"), 60, env=env)
    assert started.returncode != 0 and "tensorflow was imported" in started.stderr
    assert started.stdout.splitlines()[0] == (
        f"train_and_eval: b0 from configs/tiny.py on the generated demo data; model_dir {model_dir}; loading TensorFlow"
    )
    refused = run_main(tiny_flags(model_dir, tmp_path / "demo", "--data_dir=gs://Not_A_Bucket/x"), 60, env=env)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip() == (
        "error: --data_dir=gs://Not_A_Bucket/x: 'Not_A_Bucket' is not a Cloud Storage bucket name "
        "(3-222 lowercase letters, digits, '-', '_' or '.')"
    )
    assert not model_dir.exists()
