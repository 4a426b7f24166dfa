"""``ruff check`` with the project's configuration (pyproject.toml ``[tool.ruff]``: unused
imports, redefinitions, undefined names, syntax errors) passes on the package, the tests, the
benchmarks and the notebook sources — and that configuration does catch a planted unused
import and an undefined name (so a passing run means something)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["vlmkit", "tests", "bench", "notebooks", "setup.py"]


def _ruff(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    pytest.importorskip("ruff")  # in the [test] extra
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def test_ruff_passes_with_the_project_configuration():
    r = _ruff(*PATHS)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_configuration_catches_unused_imports_and_undefined_names(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom typing import Any\n\n\ndef f(x: Any):\n    return x + undefined_name\n")
    fine = tmp_path / "pkg" / "__init__.py"  # re-exports in a package face are allowed
    fine.parent.mkdir()
    fine.write_text("from os import path\n")
    r = _ruff("--config", str(ROOT / "pyproject.toml"), str(bad), str(fine), cwd=tmp_path)
    assert r.returncode == 1
    found = sorted(line.split(": ", 1)[1].split(" ", 1)[0] for line in r.stdout.splitlines() if ": F" in line)
    assert found == ["F401", "F821"], r.stdout
    assert "bad.py:1:8: F401" in r.stdout and "undefined_name" in r.stdout and "__init__" not in r.stdout
