"""tpu/strategy.py: the strategy decision table and fast, clear failures for an unreachable TPU."""

import socket
import time

import pytest
import tensorflow as tf

import tpu


def test_no_tpu_no_tf_config_gives_default_strategy(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = tpu.resolve_strategy(None)
    assert strategy is tf.distribute.get_strategy()
    assert tpu.device_kind(strategy) == "cpu"


def test_local_tpu_without_tpu_fails_fast_and_clearly():
    start = time.monotonic()
    with pytest.raises(tpu.TPUUnreachableError, match="cannot initialize TPU 'local'"):
        tpu.resolve_strategy("local")
    assert time.monotonic() - start < 10


def test_unreachable_grpc_address_fails_within_timeout():
    # A port nobody listens on: bind then close, so the address is known to be free.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(tpu.TPUUnreachableError, match="not reachable"):
        tpu.resolve_strategy(f"grpc://127.0.0.1:{port}", timeout_s=2)
    assert time.monotonic() - start < 5


def test_bad_tf_config_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG"):
        tpu.resolve_strategy(None)


@pytest.mark.parametrize(
    "kind,capability,expected",
    [
        ("tpu", None, "mixed_bfloat16"),
        ("cpu", None, "float32"),
        ("gpu", (9, 0), "mixed_bfloat16"),  # H100
        ("gpu", (8, 0), "mixed_bfloat16"),  # A100
        ("gpu", (7, 5), "mixed_float16"),  # T4
        ("gpu", (7, 0), "mixed_float16"),  # V100
        ("gpu", (6, 0), "float32"),  # P100: no tensor cores
        ("gpu", None, "float32"),  # no compute capability reported
    ],
)
def test_default_precision_by_device(kind, capability, expected):
    assert tpu.strategy.default_precision(kind, capability) == expected
    assert tpu.precision_policy(kind, compute_capability=capability) == expected


@pytest.mark.parametrize(
    "kind,precision,expected",
    [
        ("cpu", "mixed_float16", "mixed_float16"),
        ("tpu", "float32", "float32"),
        ("cpu", "mixed_bfloat16", "mixed_bfloat16"),
        ("gpu", "float32", "float32"),
    ],
)
def test_a_requested_precision_overrides_the_device(kind, precision, expected):
    assert tpu.precision_policy(kind, precision, compute_capability=(7, 0)) == expected


def test_only_float16_scales_the_loss():
    assert [tpu.loss_scaled(p) for p in ("float32", "mixed_bfloat16", "mixed_float16")] == [False, False, True]


@pytest.mark.parametrize(
    "kind,flag,replicas,expected",
    [
        ("tpu", None, 8, True),
        ("gpu", None, 1, True),
        ("gpu", None, 2, False),
        ("cpu", None, 1, False),
        ("cpu", True, 1, True),
        ("tpu", False, 8, False),
    ],
)
def test_use_xla(kind, flag, replicas, expected):
    assert tpu.use_xla(kind, flag, replicas) is expected
