"""``ruff check`` with the project's configuration (pyproject.toml ``[tool.ruff]``: unused
imports, redefinitions, undefined names, syntax errors, and lines over 120 columns in the
library) passes on the package, the tests, the benchmarks and the notebook sources — and that
configuration does catch a planted unused import, an undefined name and a 130-column line in a
``vlmkit/`` path while letting the same line pass under ``tests/`` (so a passing run means
something)."""

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


def test_the_configuration_holds_the_library_to_120_columns_but_not_the_tests(tmp_path):
    line = "x = " + repr("a" * 124) + "\n"  # 130 columns
    ok = "y = " + repr("b" * 114) + "\n"  # 120 columns: allowed
    assert len(line) - 1 == 130 and len(ok) - 1 == 120
    lib, test = tmp_path / "vlmkit" / "planted.py", tmp_path / "tests" / "test_planted.py"
    for f in (lib, test):
        f.parent.mkdir()
        f.write_text(ok + line)
    # with --config, ruff resolves the per-file-ignore globs against the working directory
    r = _ruff("--config", str(ROOT / "pyproject.toml"), "vlmkit", "tests", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    found = [ln for ln in r.stdout.splitlines() if "E501" in ln]
    assert len(found) == 1 and found[0].replace("\\", "/").startswith("vlmkit/planted.py:2:121: E501"), r.stdout
    assert "test_planted" not in r.stdout
