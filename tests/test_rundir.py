"""vlmkit.rundir: the one reader and writer of run.json (round trip, absent file, bad files named)
and the run-directory skeleton."""

from __future__ import annotations

import pytest

from vlmkit import rundir
from vlmkit.utils import VlmkitError


def test_run_meta_round_trip_and_absent_file(tmp_path):
    assert not rundir.has_run_meta(tmp_path) and rundir.read_run_meta(tmp_path) == {}
    meta = {"parameters": {"seed": 1, "methods": ["m2mix"]}, "status": "ok",
            "notebooks": {"00_a.ipynb": {"status": "ok", "warnings": [{"category": "UserWarning", "message": "m",
                                                                       "count": 2, "where": "x.py:3"}],
                                         "skipped": [{"dataset": "d", "role": "test", "count": 1,
                                                      "items": [{"where": "f.csv:2", "reason": "missing"}]}]}}}
    assert rundir.write_run_meta(tmp_path, meta) == tmp_path / "run.json"
    assert rundir.has_run_meta(tmp_path) and rundir.read_run_meta(tmp_path) == meta
    assert rundir.warnings_table(tmp_path).to_dict("records") == [
        {"notebook": "00_a.ipynb", "category": "UserWarning", "message": "m", "count": 2, "where": "x.py:3"}]
    assert rundir.skipped_table(tmp_path).to_dict("records") == [
        {"notebook": "00_a.ipynb", "dataset": "d", "role": "test", "count": 1, "first": "f.csv:2: missing"}]
    assert list(rundir.warnings_table(tmp_path / "nowhere").columns) == ["notebook", "category", "message", "count", "where"]


@pytest.mark.parametrize("text, match", [("{not json", "not valid JSON"), ("[1, 2]", "expected a JSON object, got list")])
def test_a_bad_run_json_raises_naming_the_file(tmp_path, text, match):
    (tmp_path / "run.json").write_text(text)
    with pytest.raises(VlmkitError, match=match) as exc:
        rundir.read_run_meta(tmp_path)
    assert str(tmp_path / "run.json") in str(exc.value)


def test_prepare_run_dir_makes_every_subfolder(tmp_path):
    run = rundir.prepare_run_dir(tmp_path / "r")
    assert sorted(p.name for p in run.iterdir()) == sorted(rundir.SUBDIRS)
