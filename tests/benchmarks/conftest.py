"""Shared helper of the benchmark tests: the scripts in benchmarks/ are not a package, so they load by path."""

import importlib.util
import os

BENCHMARKS = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks")


def load_script(name):
    """benchmarks/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", os.path.join(BENCHMARKS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
