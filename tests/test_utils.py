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


def test_atomic_dir_replaces_the_old_directory_whole(tmp_path):
    from vlmkit.utils import atomic_dir

    target = tmp_path / "ckpt"
    with atomic_dir(target) as d:
        (d / "a").write_text("1")
    old = os.umask(0o022)
    os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~old
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as d:
            (d / "b").write_text("half")
            raise RuntimeError("killed")
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    with atomic_dir(target) as d:
        (d / "c").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["c"]
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temp or old directories left


def test_new_run_dirs_never_collide(tmp_path):
    from vlmkit.cli import new_run_dir

    dirs = [new_run_dir(tmp_path, "20261123-120000") for _ in range(3)]
    assert [d.name for d in dirs] == ["20261123-120000", "20261123-120000-1", "20261123-120000-2"]
