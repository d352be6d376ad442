"""Tests for benchmarks/make_elpv_folders.py's split: exact totals, stratified, disjoint, fixed by the seed."""

import pytest

from tests.benchmarks.conftest import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("make_elpv_folders")


NAMES = ["a"] * 150 + ["b"] * 29 + ["c"] * 11 + ["d"] * 72  # ELPV's class shares, a tenth of its size


def test_split_takes_exact_totals_per_class_in_proportion_and_disjoint(script):
    splits = script.split(NAMES, {"train": 100, "validation": 50}, seed=0)
    train, validation = splits["train"], splits["validation"]
    assert len(train) == 100 and len(validation) == 50 and not set(train) & set(validation)
    for name, size in (("a", 150), ("b", 29), ("c", 11), ("d", 72)):
        share = sum(NAMES[i] == name for i in train)
        assert abs(share - 100 * size / len(NAMES)) < 1  # largest remainder: within one of the exact share


def test_split_depends_on_the_seed_only(script):
    counts = {"train": 100, "validation": 50}
    assert script.split(NAMES, counts, seed=3) == script.split(NAMES, counts, seed=3)
    assert script.split(NAMES, counts, seed=3) != script.split(NAMES, counts, seed=4)
