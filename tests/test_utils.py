"""Shared utilities: atomic writes keep the old file on failure and get ordinary permissions."""

from __future__ import annotations

import re
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
    from vlmkit.rundir import new_run_dir

    dirs = [new_run_dir(tmp_path, "20261123-120000") for _ in range(3)]
    assert [d.name for d in dirs] == ["20261123-120000", "20261123-120000-1", "20261123-120000-2"]


def test_atomic_to_csv_writes_whole_files_or_nothing(tmp_path, monkeypatch):
    import pandas as pd

    from vlmkit.utils import atomic_to_csv

    target = tmp_path / "t.csv"
    atomic_to_csv(pd.DataFrame({"a": [1, 2]}), target)
    assert target.read_text() == "a\n1\n2\n"  # index=False by default

    def crash(self, path, **kw):  # write half a table, then die
        open(path, "w").write("a\n3")
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_to_csv(pd.DataFrame({"a": [3]}), target)
    assert target.read_text() == "a\n1\n2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_as_tensor_and_as_numpy_coerce_and_name_bad_input():
    import numpy as np
    import torch

    from vlmkit.utils import as_numpy, as_tensor

    a = np.arange(6.0).reshape(2, 3)
    t = as_tensor(a, "feats")
    assert t.dtype == torch.float64 and t.tolist() == a.tolist()
    t[0, 0] = 9.0  # zero-copy view of a writable array
    assert a[0, 0] == 9.0
    ro = np.arange(3)
    ro.flags.writeable = False
    assert as_tensor(ro).tolist() == [0, 1, 2]  # read-only arrays are copied, not rejected
    x = torch.ones(2, requires_grad=True)
    assert not as_tensor(x).requires_grad
    assert as_tensor([[1, 2]], dtype=torch.float32).dtype == torch.float32
    assert as_numpy(torch.ones(2, dtype=torch.bfloat16, requires_grad=True)).tolist() == [1.0, 1.0]
    assert as_numpy([1, 2], dtype=np.float64).dtype == np.float64
    with pytest.raises(VlmkitError, match="feats: expected a tensor or array"):
        as_tensor([[1, 2], [3]], "feats")
    with pytest.raises(VlmkitError, match="feats: unsupported array dtype"):
        as_tensor(np.array(["a"], dtype=object), "feats")
    with pytest.raises(VlmkitError, match="labels"):
        as_numpy([[1, 2], [3]], "labels", dtype=np.float64)


def test_first_captions_keeps_the_first_k_of_each_image_in_caption_order():
    import numpy as np

    from vlmkit.utils import first_captions

    ci = np.array([2, 0, 0, 1, 2, 0, 2, 1])
    brute = lambda k: sorted(j for j in range(len(ci)) if list(ci[: j + 1]).count(ci[j]) <= k)  # noqa: E731
    for k in (1, 2, 3, 9):
        assert first_captions(ci, 4, k).tolist() == brute(k)  # image 3 has no caption: nothing to keep
    assert first_captions(ci, 3, None).tolist() == list(range(8))
    for bad, match in (((ci, 2, 1), "caption 0 points at image 2"), ((ci, 3, 0), "per_image"),
                       ((ci.astype(float), 3, 1), "integer")):
        with pytest.raises(VlmkitError, match=match):
            first_captions(*bad)


def test_parse_override_reads_yaml_values_and_names_what_is_wrong():
    from vlmkit.utils import parse_override

    allowed = {"lr", "flag", "names", "tag"}
    assert parse_override("lr=2e-4", allowed) == ("lr", 2e-4)  # YAML 1.1 alone would give the string "2e-4"
    assert parse_override("lr=0.5", allowed) == ("lr", 0.5)
    assert parse_override(" flag =true", allowed) == ("flag", True)
    assert parse_override("names=[a, b]", allowed) == ("names", ["a", "b"])
    assert parse_override("tag=K2", allowed) == ("tag", "K2")
    assert parse_override("tag=", allowed) == ("tag", None)
    for text, says in (("lr", "expected FIELD=VALUE"), ("=1", "expected FIELD=VALUE"),
                       ("nope=1", "unknown field 'nope'; expected one of ['flag', 'lr', 'names', 'tag']"),
                       ("names=[a", "not valid YAML")):
        with pytest.raises(VlmkitError, match=re.escape(says)):
            parse_override(text, allowed, flag="--set")
