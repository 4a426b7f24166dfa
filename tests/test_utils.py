"""Shared utilities: atomic writes keep the old file on failure and get ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from vlmkit.utils import VlmkitError, atomic_path, atomic_write_json, atomic_write_text, read_positives_json


def test_atomic_write_gets_the_mode_of_a_plain_write(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        (tmp_path / "b.txt").write_text("x")
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / "a.txt") == mode(tmp_path / "b.txt") == 0o644


def test_interrupted_write_keeps_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "data.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"v": 2, "half')
            raise RuntimeError("killed")
    assert target.read_text().replace(" ", "").replace("\n", "") == '{"v":1}'
    assert [p.name for p in tmp_path.iterdir()] == ["data.json"]


def test_read_positives_json_errors_name_the_file(tmp_path):
    assert read_positives_json({"1": [2]}) == ({"1": [2]}, "<dict>")
    with pytest.raises(VlmkitError, match="not found: .*missing.json"):
        read_positives_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(VlmkitError, match="bad.json: malformed JSON"):
        read_positives_json(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(VlmkitError, match="list.json: expected a JSON object"):
        read_positives_json(tmp_path / "list.json")
