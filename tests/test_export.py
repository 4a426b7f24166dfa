"""``vlmkit export``: a run's embeddings and metadata in clip-retrieval's layout, read back here
with numpy and pyarrow alone and compared with the features the run registered."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from vlmkit import cli
from vlmkit import workbook as wb


def _unit(n: int, d: int, seed: int) -> torch.Tensor:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    return x / x.norm(dim=1, keepdim=True)


def _read(folder):
    """What a user without vlmkit reads: numpy for the embeddings, pyarrow for the metadata."""
    img = np.load(folder / "img_emb" / "img_emb_0.npy")
    txt = np.load(folder / "text_emb" / "text_emb_0.npy")
    meta = pq.read_table(folder / "metadata" / "metadata_0.parquet").to_pydict()
    tmeta = pq.read_table(folder / "text_metadata" / "text_metadata_0.parquet").to_pydict()
    return img, txt, meta, tmeta


def test_export_of_an_embedded_run_reads_back_equal(tmp_path, capsys):
    run = tmp_path / "run"
    wb.save_data_spec(run, "shapes", test_images=12, seed=3)
    ds = wb.run_dataset(run)
    n, m = ds.num_images, ds.num_captions
    feats = {"pretrained": (_unit(n, 16, 0), _unit(m, 16, 1)), "m2mix": (_unit(n, 16, 2), _unit(m, 16, 3))}
    for name, (i, t) in feats.items():
        wb.register_method(run, name, img=i, txt=t)
    wb.register_method(run, "vacsr", scores=torch.zeros(n, m), uncertainty=torch.ones(n, m))

    out = tmp_path / "export"
    assert cli.main(["export", str(run), "--out", str(out)]) == 0
    assert "skipped vacsr" in capsys.readouterr().out
    rec = json.loads((out / "export.json").read_text())
    assert sorted(rec["methods"]) == ["m2mix", "pretrained"] and "vacsr" in rec["skipped"]
    assert not (out / "vacsr").exists()
    for name, (i, t) in feats.items():
        img, txt, meta, tmeta = _read(out / name)
        assert img.dtype == np.float32 and txt.dtype == np.float32
        assert np.array_equal(img, i.numpy()) and np.array_equal(txt, t.numpy())
        stored = wb.load_method(run, name)
        assert np.array_equal(img, stored["img"].numpy()) and np.array_equal(txt, stored["txt"].numpy())
        # per image: aligned with img_emb; its captions are exactly those labelled with it
        assert meta["image_index"] == list(range(n)) and meta["image_id"] == [str(x) for x in ds.image_ids]
        assert meta["image_path"] == [None] * n  # generated images have no file
        for k in range(n):
            mine = [j for j in range(m) if ds.caption_image[j] == k]
            assert meta["caption_indices"][k] == mine
            assert meta["captions"][k] == [ds.captions[j] for j in mine] and meta["caption"][k] == ds.captions[mine[0]]
        # per caption: aligned with text_emb, with its label
        assert tmeta["caption"] == list(ds.captions) and tmeta["image_index"] == [int(c) for c in ds.caption_image]
        assert tmeta["image_id"] == [str(ds.image_ids[c]) for c in ds.caption_image]


def test_export_keeps_the_image_paths_of_real_data(tmp_path):
    for i in range(3):
        Image.new("RGB", (8, 8), (80 * i, 0, 0)).save(tmp_path / f"{i}.png")
    (tmp_path / "t.csv").write_text("filepath,caption\n0.png,zero\n1.png,one\n2.png,two\n0.png,nought\n")
    run = tmp_path / "run"
    wb.save_data_spec(run, f"csv:{tmp_path / 't.csv'}", test_images=0, seed=0)
    ds = wb.run_dataset(run)
    wb.register_method(run, "pretrained", img=_unit(ds.num_images, 4, 0), txt=_unit(ds.num_captions, 4, 1))
    wb.register_method(run, "short", img=_unit(ds.num_images - 1, 4, 0), txt=_unit(ds.num_captions, 4, 1))
    with pytest.raises(cli.VlmkitError, match=r"scores/short.pt: 2 images × 4 captions, but the run's data"):
        from vlmkit.export import export_run

        export_run(run)
    reg = wb.list_methods(run)
    reg.pop("short")
    (run / "methods.json").write_text(json.dumps(reg))
    assert cli.main(["export", str(run)]) == 0
    img, txt, meta, tmeta = _read(run / "export" / "pretrained")
    assert img.shape == (3, 4) and txt.shape == (4, 4)
    names = [p and p.rsplit("/", 1)[1] for p in meta["image_path"]]
    assert names == ["0.png", "1.png", "2.png"]
    assert tmeta["caption"] == list(ds.captions) and sorted(ds.captions) == ["nought", "one", "two", "zero"]
    pairs = {c: p.rsplit("/", 1)[1] for c, p in zip(tmeta["caption"], tmeta["image_path"])}
    assert pairs == {"zero": "0.png", "nought": "0.png", "one": "1.png", "two": "2.png"}
    assert sorted(meta["captions"][0]) == ["nought", "zero"]


def test_export_of_a_folder_that_is_no_run_says_so(tmp_path, capsys):
    assert cli.main(["export", str(tmp_path)]) == 2
    assert "no methods.json" in capsys.readouterr().err
