"""What main.py does before TensorFlow loads, which takes seconds on an idle machine and tens of seconds on a busy
one: the command's first line (what runs, on which data, where model_dir is), and the checks of remote names
that would otherwise fail only after that start-up, with a transport error as the message (libcurl's "Could not
resolve host", urllib's "Name or service not known"): gs:// paths and a TPU given by name or address.

No TensorFlow import here. The checks only ask the resolver whether a host name exists; whether a bucket exists
or a TPU is READY is for TensorFlow to find out (tpu/strategy.py reports those in one line too).
"""

import datetime
import os
import re
import socket
import threading
import urllib.parse

from configs import base
from training.errors import UserError

# The host TensorFlow's gs:// filesystem calls (tensorflow/tsl/platform/cloud/gcs_file_system.cc).
GCS_HOST = "storage.googleapis.com"
# TPUClusterResolver looks a TPU name up through the Cloud TPU API, and reads the zone and project it is not
# given from the VM's metadata server.
TPU_API_HOST = "tpu.googleapis.com"
METADATA_HOST = "metadata.google.internal"
# A resolver that has not answered by then proves nothing (TensorFlow then tries and reports); one that has
# answered "no such host" on this machine did so in milliseconds.
LOOKUP_TIMEOUT_S = 3.0
# Google Cloud Storage's bucket names: lowercase letters, digits, "-", "_" and "."; 3-222 characters, starting
# and ending with a letter or digit.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
# The config fields and flags that may name a gs:// path.
_PATH_FIELDS = (
    ("data.data_dir", "--data_dir"),
    ("data.tfds_data_dir", "--config.data.tfds_data_dir"),
    ("runtime.model_dir", "--model_dir"),
    ("runtime.export_dir", "--export_dir"),
    ("runtime.init_checkpoint", "--init_checkpoint"),
    ("runtime.predict_output", "--output"),
)


def default_model_dir(config):
    """runs/<variant>-<local time>: a training command's model_dir when none is given."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join("runs", f"{config.model.variant}-{stamp}")


def complete_model_dir(config):
    """Gives a training command without --model_dir its new run directory now, so that the first line can say
    where it goes (the other modes read a given run, or published weights, and keep theirs as given)."""
    if base.MODE_TABLE[config.runtime.mode].trains and not config.runtime.model_dir:
        config.runtime.model_dir = default_model_dir(config)


def _data(config, mode):
    if config.data.dataset:
        return f"TFDS {config.data.dataset}"
    if config.data.data_dir:
        return config.data.data_dir
    # eval of a run reads the run's data (its config.json); training and published weights, the demo data.
    return "the run's data" if not mode.trains and not config.runtime.init_checkpoint else "the generated demo data"


def first_line(config, preset, image_files=()):
    """What runs, on which data and where, from the config alone. For eval/export/predict of a run the network
    and data are the run's (config.json, read later), so the line names the run, not the flags' variant."""
    runtime, mode = config.runtime, base.MODE_TABLE[config.runtime.mode]
    if mode.trains:
        what = f"{config.model.variant} from {preset} on {_data(config, mode)}; model_dir {runtime.model_dir}"
    elif runtime.init_checkpoint:
        what = f"the published weights {runtime.init_checkpoint} ({config.model.variant})"
    elif runtime.model_dir:
        what = f"the run in {runtime.model_dir}"
    else:  # refused once TensorFlow has loaded, with what to give
        what = "no run or weights given"
    if mode.takes_files:
        what += f", {len(image_files)} image path(s)"
    elif not mode.trains and mode.first_split:  # eval
        what += f" on {_data(config, mode)}"
    return f"{runtime.mode}: {what}; loading TensorFlow"


def _lookup(host, timeout_s=LOOKUP_TIMEOUT_S):
    """None when `host` resolves or the resolver does not answer within timeout_s; else the resolver's reason."""
    failure = []

    def resolve():
        try:
            socket.getaddrinfo(host, 443)
        except socket.gaierror as e:
            failure.append(e.strerror or str(e))
        except OSError:  # anything else is no answer about the name
            pass

    thread = threading.Thread(target=resolve, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return failure[0] if failure else None


def _gcs_paths(config, image_files):
    """(flag, path) for every value that names Google Cloud Storage, or looks like a mistyped gs:// path."""
    named = [(flag, config[section][field]) for dotted, flag in _PATH_FIELDS for section, field in [dotted.split(".")]]
    named += [("image path", path) for path in image_files]
    return [(flag, path) for flag, path in named if isinstance(path, str) and path.lower().startswith("gs:")]


def _check_gcs_path(flag, path):
    if not path.startswith("gs://"):
        raise UserError(f"{flag}={path}: a Cloud Storage path is written gs://BUCKET/PATH")
    bucket = path[len("gs://") :].split("/", 1)[0]
    if not _BUCKET.match(bucket):
        raise UserError(
            f"{flag}={path}: {bucket!r} is not a Cloud Storage bucket name (3-222 lowercase letters, digits, "
            "'-', '_' or '.')"
        )


def _check_tpu(runtime, lookup):
    tpu = runtime.tpu
    if not tpu or tpu == "local":
        return
    if "://" in tpu:
        parsed = urllib.parse.urlparse(tpu)
        try:
            port = parsed.port
        except ValueError:
            port = None
        if parsed.scheme != "grpc" or not parsed.hostname or port is None:
            raise UserError(f"--tpu={tpu}: a TPU worker's address is grpc://HOST:PORT (port 8470)")
        reason = lookup(parsed.hostname)
        if reason:
            raise UserError(f"--tpu={tpu}: the host {parsed.hostname} does not resolve ({reason})")
        return
    reason = lookup(TPU_API_HOST)
    if reason:
        raise UserError(
            f"--tpu={tpu}: a TPU name is looked up through the Cloud TPU API, and {TPU_API_HOST} does not resolve "
            f"from this machine ({reason}); on the TPU VM itself use --tpu=local, elsewhere the worker's "
            "address grpc://IP:8470"
        )
    if not (runtime.tpu_zone and runtime.gcp_project) and (reason := lookup(METADATA_HOST)):
        raise UserError(
            f"--tpu={tpu}: without --tpu_zone and --gcp_project the TPU's zone and project come from the VM's "
            f"metadata server, and {METADATA_HOST} does not resolve ({reason}): this is not a Google Cloud VM; "
            "give both flags"
        )


def check_remote_names(config, image_files=(), lookup=_lookup):
    """Raises UserError, one line, for a malformed gs:// path or bucket name, for gs:// paths on a machine that
    cannot resolve Cloud Storage's host, and for a --tpu whose name or address cannot be resolved.
    lookup(host) -> None or the reason the host does not resolve (tests pass their own)."""
    paths = _gcs_paths(config, image_files)
    for flag, path in paths:
        _check_gcs_path(flag, path)
    if paths and (reason := lookup(GCS_HOST)):
        flag, path = paths[0]
        raise UserError(
            f"{flag}={path}: Cloud Storage cannot be reached from this machine ({GCS_HOST} does not resolve: {reason})"
        )
    _check_tpu(config.runtime, lookup)
