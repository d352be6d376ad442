"""The repository passes its linter and formatter (ruff.toml): the README's test command runs this, so CI enforces
both."""

import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ruff(*args):
    """ruff from this environment (the test extra installs it), run on the repository."""
    executable = shutil.which("ruff", path=os.path.dirname(sys.executable)) or shutil.which("ruff")
    assert executable, "ruff is not installed: pip install -e '.[test]'"
    return subprocess.run([executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_ruff_finds_no_lint_errors():
    result = _ruff("check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


def test_the_code_is_formatted():
    result = _ruff("format", "--check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


def test_the_linter_sees_a_defect(tmp_path):
    """Positive control: the configuration in force reports an undefined name."""
    (tmp_path / "bad.py").write_text("print(undefined_name)\n")
    result = _ruff("check", "--no-cache", "--config", os.path.join(REPO, "ruff.toml"), str(tmp_path / "bad.py"))
    assert result.returncode == 1 and "F821" in result.stdout, result.stdout
