"""Real-format loaders on good and bad inputs: COCO, Karpathy, CSV/TSV, image folder, Fashion-MNIST."""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlmkit.data import (
    ClassificationDataset,
    PairDataset,
    SkippedItemsWarning,
    SkipRecord,
    fashion_mnist_available,
    load_coco_captions,
    load_csv,
    load_dataset,
    load_fashion_mnist,
    load_image_folder,
    load_karpathy,
    read_idx,
)
from vlmkit.utils import VlmkitError

REPO = Path(__file__).resolve().parents[1]
COCO_MINI = REPO.parent / "shared" / "data" / "coco-mini"
FMNIST = Path("/usr/share/datasets/fashion-mnist")


# --------------------------------------------------------------------------- fixtures


def write_image(path: Path, mode: str = "RGB", size: tuple[int, int] = (12, 8), value: int = 100) -> Path:
    """A small image in ``mode``, saved in the format of ``path``'s extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    if mode == "I;16":
        arr = (np.arange(w * h, dtype=np.uint16).reshape(h, w) * 1000).astype(np.uint16)
        img = Image.fromarray(arr)  # uint16 -> mode I;16
        assert img.mode == "I;16"
    elif mode == "RGBA":
        img = Image.new("RGBA", size, (255, 0, 0, 0))  # fully transparent red -> white
    elif mode == "CMYK":
        img = Image.new("CMYK", size, (0, 255, 255, 0))  # red
    elif mode == "P":
        img = Image.new("RGB", size, (0, 0, 255)).convert("P")
    else:
        img = Image.new(mode, size, value if mode == "L" else (value, 50, 25))
    img.save(path)
    return path


def write_truncated_jpeg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1))
    return path


def coco_fixture(tmp_path: Path, extra_images=(), extra_anns=()):
    """Three images with ids 10, 2, 30 (unsorted) in RGB/L/CMYK and shuffled annotations."""
    img_dir = tmp_path / "images"
    write_image(img_dir / "a.jpg", "RGB")
    write_image(img_dir / "b.png", "L", value=77)
    write_image(img_dir / "c.jpg", "CMYK")
    images = [
        {"id": 10, "file_name": "a.jpg", "height": 8, "width": 12},
        {"id": 2, "file_name": "b.png"},
        {"id": 30, "file_name": "c.jpg"},
        *extra_images,
    ]
    anns = [
        {"id": 7, "image_id": 10, "caption": "ten, second"},
        {"id": 3, "image_id": 2, "caption": "  two, first \n"},
        {"id": 1, "image_id": 10, "caption": "ten, first"},
        {"id": 9, "image_id": 30, "caption": "thirty"},
        {"id": 4, "image_id": 2, "caption": "two, second"},
        *extra_anns,
    ]
    ann = write_json(tmp_path / "captions.json", {"info": {}, "images": images, "annotations": anns})
    return ann, img_dir


# --------------------------------------------------------------------------- COCO


def test_coco_good_exact_contents_and_image_modes(tmp_path):
    ann, img_dir = coco_fixture(tmp_path)
    ds = load_coco_captions(ann, img_dir)
    assert isinstance(ds, PairDataset)
    assert ds.image_ids == ["2", "10", "30"]  # numeric id order, ids as strings
    assert ds.captions == ["two, first", "two, second", "ten, first", "ten, second", "thirty"]
    assert ds.caption_image.tolist() == [0, 0, 1, 1, 2]
    assert ds.caption_meta["annotation_id"].tolist() == [3, 4, 1, 7, 9]
    assert ds.skipped == [] and ds.truth is None
    assert ds.name == "coco/captions"
    b, a, c = (ds.load_image(i) for i in range(3))
    assert {b.mode, a.mode, c.mode} == {"RGB"}
    assert b.getpixel((0, 0)) == (77, 77, 77)
    r, g, bl = c.getpixel((3, 3))
    assert r > 200 and g < 60 and bl < 60  # CMYK red -> RGB red


def test_coco_max_images_and_image_without_captions(tmp_path):
    ann, img_dir = coco_fixture(tmp_path, extra_images=[{"id": 1, "file_name": "a.jpg"}])
    ds = load_coco_captions(ann, img_dir)
    assert ds.image_ids == ["2", "10", "30"]
    assert ds.skipped == [SkipRecord(f"{ann}:1", "image has no (usable) caption; left out")]
    ds2 = load_coco_captions(ann, img_dir, max_images=2)
    assert ds2.image_ids == ["2", "10"] and ds2.num_captions == 4


def test_coco_missing_files_and_malformed_json(tmp_path):
    ann, img_dir = coco_fixture(tmp_path)
    with pytest.raises(VlmkitError, match=r"COCO annotation file not found: .*nope\.json"):
        load_coco_captions(tmp_path / "nope.json", img_dir)
    with pytest.raises(VlmkitError, match=r"COCO image folder not found: .*no_images"):
        load_coco_captions(ann, tmp_path / "no_images")
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [\n  {"id": 1, "file_name": "a.jpg"},\n  {"id": 2 "file_name": "b.jpg"}\n]}')
    with pytest.raises(VlmkitError, match=r"bad\.json: malformed JSON at line 3 column 12 \(char \d+\): Expecting ',' delimiter"):
        load_coco_captions(bad, img_dir)
    write_json(bad, {"images": []})
    with pytest.raises(VlmkitError, match=r"bad\.json: missing top-level key 'annotations'"):
        load_coco_captions(bad, img_dir)
    write_json(bad, [1, 2])
    with pytest.raises(VlmkitError, match=r"bad\.json: expected a JSON object at the top level, got list"):
        load_coco_captions(bad, img_dir)


def test_coco_missing_keys_and_duplicates(tmp_path):
    ann, img_dir = coco_fixture(tmp_path, extra_anns=[{"id": 11, "image_id": 2}])
    with pytest.raises(VlmkitError, match=r"captions\.json: annotations\[5\]: missing key 'caption' \(found keys: 'id', 'image_id'\)"):
        load_coco_captions(ann, img_dir, on_error="skip")  # structural errors raise even when skipping
    ann, img_dir = coco_fixture(tmp_path, extra_images=[{"id": 3}])
    with pytest.raises(VlmkitError, match=r"images\[3\]: missing key 'file_name'"):
        load_coco_captions(ann, img_dir)
    ann, img_dir = coco_fixture(tmp_path, extra_images=[{"id": 2, "file_name": "a.jpg"}])
    with pytest.raises(VlmkitError, match=r"images\[3\]: duplicate image id 2"):
        load_coco_captions(ann, img_dir)
    ann, img_dir = coco_fixture(tmp_path, extra_anns=[{"id": 7, "image_id": 2, "caption": "again"}])
    with pytest.raises(VlmkitError, match=r"annotations\[5\]: duplicate annotation id 7"):
        load_coco_captions(ann, img_dir)
    with pytest.raises(VlmkitError, match=r"on_error must be one of \('raise', 'skip'\), got 'ignore'"):
        load_coco_captions(ann, img_dir, on_error="ignore")


@pytest.mark.parametrize(
    "bad_ann, message",
    [
        ({"id": 50, "image_id": 99, "caption": "orphan"}, "annotation id 50 (annotations[5]) refers to image id 99, which is not in the 'images' list"),
        ({"id": 50, "image_id": 2, "caption": "   "}, "annotation id 50: caption is empty: '   '"),
        ({"id": 50, "image_id": 2, "caption": 42}, "annotation id 50: caption is not a string: 42"),
        ({"id": 50, "image_id": 2, "caption": None}, "annotation id 50: caption is not a string: None"),
    ],
)
def test_coco_bad_annotation_raise_or_skip(tmp_path, bad_ann, message):
    ann, img_dir = coco_fixture(tmp_path, extra_anns=[bad_ann])
    where = f"{ann}:{bad_ann['image_id']}"
    with pytest.raises(VlmkitError) as err:
        load_coco_captions(ann, img_dir)
    assert str(err.value) == f"{where}: {message} (pass on_error='skip' to leave such items out)"
    with pytest.warns(SkippedItemsWarning, match="skipped 1 bad item"):
        ds = load_coco_captions(ann, img_dir, on_error="skip")
    assert ds.skipped == [SkipRecord(where, message)]
    assert ds.captions == ["two, first", "two, second", "ten, first", "ten, second", "thirty"]


def test_coco_missing_image_file(tmp_path):
    ann, img_dir = coco_fixture(tmp_path, extra_images=[{"id": 5, "file_name": "gone.jpg"}], extra_anns=[{"id": 60, "image_id": 5, "caption": "five"}])
    with pytest.raises(VlmkitError, match=re.escape(f"{ann}:5: image file not found: {img_dir / 'gone.jpg'}")):
        load_coco_captions(ann, img_dir)
    with pytest.warns(SkippedItemsWarning):
        ds = load_coco_captions(ann, img_dir, on_error="skip")
    assert ds.image_ids == ["2", "10", "30"] and "five" not in ds.captions
    assert ds.skipped == [SkipRecord(f"{ann}:5", f"image file not found: {img_dir / 'gone.jpg'}")]


def test_coco_corrupt_images_lazy_or_verified(tmp_path):
    ann, img_dir = coco_fixture(
        tmp_path,
        extra_images=[{"id": 40, "file_name": "trunc.jpg"}, {"id": 50, "file_name": "text.jpg"}],
        extra_anns=[{"id": 61, "image_id": 40, "caption": "forty"}, {"id": 62, "image_id": 50, "caption": "fifty"}],
    )
    write_truncated_jpeg(img_dir / "trunc.jpg")
    (img_dir / "text.jpg").write_text("this is not a JPEG")
    ds = load_coco_captions(ann, img_dir)  # not decoded at load time
    assert ds.image_ids == ["2", "10", "30", "40", "50"]
    with pytest.raises(VlmkitError, match=r"cannot read image .*trunc\.jpg: OSError: .*truncated"):
        ds.load_image(3)
    with pytest.raises(VlmkitError, match=r"cannot read image .*text\.jpg: UnidentifiedImageError"):
        ds.load_image(4)
    with pytest.raises(VlmkitError, match=rf"{re.escape(str(ann))}:40: cannot read image .*trunc\.jpg"):
        load_coco_captions(ann, img_dir, verify_images=True)
    with pytest.warns(SkippedItemsWarning, match="skipped 2 bad item"):
        ds = load_coco_captions(ann, img_dir, verify_images=True, on_error="skip")
    assert ds.image_ids == ["2", "10", "30"]
    assert [s.where for s in ds.skipped] == [f"{ann}:40", f"{ann}:50"]
    assert "trunc.jpg" in ds.skipped[0].reason and "text.jpg" in ds.skipped[1].reason


def test_image_modes_convert_to_rgb(tmp_path):
    paths = {m: write_image(tmp_path / f"{m.replace(';', '')}.png", m) for m in ("L", "RGBA", "I;16", "P")}
    paths["CMYK"] = write_image(tmp_path / "cmyk.jpg", "CMYK")
    images = [{"id": k, "file_name": p.name} for k, p in enumerate(paths.values())]
    anns = [{"id": k, "image_id": k, "caption": f"image {k}"} for k in range(len(paths))]
    ann = write_json(tmp_path / "ann.json", {"images": images, "annotations": anns})
    ds = load_coco_captions(ann, tmp_path, verify_images=True)
    imgs = {m: ds.load_image(k) for k, m in enumerate(paths)}
    assert all(im.mode == "RGB" and im.size == (12, 8) for im in imgs.values())
    assert imgs["L"].getpixel((5, 5)) == (100, 100, 100)
    assert imgs["RGBA"].getpixel((5, 5)) == (255, 255, 255)  # transparent on white
    assert imgs["P"].getpixel((5, 5)) == (0, 0, 255)
    i16 = np.asarray(imgs["I;16"])[..., 0]
    assert i16.min() == 0 and i16.max() == 255  # rescaled from its own range


@pytest.mark.skipif(not COCO_MINI.is_dir(), reason="../shared/data/coco-mini is absent")
def test_coco_mini_real_files():
    ann = COCO_MINI / "annotations" / "captions_train2017.json"
    ds = load_coco_captions(ann, COCO_MINI / "train2017", verify_images=True)
    assert (ds.num_images, ds.num_captions) == (80, 400) and ds.skipped == []
    # A straightforward re-read of the JSON.
    raw = json.loads(ann.read_text())
    by_image = defaultdict(list)
    for a in raw["annotations"]:
        by_image[a["image_id"]].append((a["id"], a["caption"].strip()))
    ids = sorted(im["id"] for im in raw["images"])
    assert ds.image_ids == [str(i) for i in ids]
    expect = [c for i in ids for _, c in sorted(by_image[i])]
    assert ds.captions == expect
    assert np.bincount(ds.caption_image).tolist() == [5] * 80
    files = {im["id"]: im["file_name"] for im in raw["images"]}
    for i, iid in enumerate(ids):
        assert ds.images.paths[i].name == files[iid]
        assert [ds.captions[c] for c in ds.captions_of(i)] == [c for _, c in sorted(by_image[iid])]
    for i in range(0, 80, 8):
        img = ds.load_image(i)
        assert img.mode == "RGB" and img.size[0] > 100 and img.size[1] > 100


# --------------------------------------------------------------------------- Karpathy


def _sentences(texts, start):
    return [{"raw": t, "tokens": t.lower().split(), "sentid": start + j} for j, t in enumerate(texts)]


def karpathy_coco_fixture(tmp_path):
    root = tmp_path / "coco"
    write_image(root / "val2014" / "COCO_val2014_000000000001.jpg")
    write_image(root / "val2014" / "COCO_val2014_000000000002.jpg", "L")
    write_image(root / "val2014" / "COCO_val2014_000000000003.jpg")
    write_image(root / "train2014" / "COCO_train2014_000000000004.jpg")
    recs = [
        {"filepath": "val2014", "filename": "COCO_val2014_000000000001.jpg", "imgid": 0, "cocoid": 1, "split": "test",
         "sentences": _sentences([f"one {k}" for k in range(6)], 0)},
        {"filepath": "train2014", "filename": "COCO_train2014_000000000004.jpg", "imgid": 1, "cocoid": 4, "split": "train",
         "sentences": _sentences(["four a", "four b"], 6)},
        {"filepath": "val2014", "filename": "COCO_val2014_000000000002.jpg", "imgid": 2, "cocoid": 2, "split": "restval",
         "sentences": _sentences(["two a"], 8)},
        {"filepath": "val2014", "filename": "COCO_val2014_000000000003.jpg", "imgid": 3, "cocoid": 3, "split": "test",
         "sentences": _sentences(["three a", " three b "], 9)},
    ]
    return write_json(tmp_path / "dataset_coco.json", {"dataset": "coco", "images": recs}), root


def test_karpathy_coco_layout(tmp_path):
    js, root = karpathy_coco_fixture(tmp_path)
    ds = load_karpathy(js, root, "test")
    assert ds.name == "coco/test"
    assert ds.image_ids == ["1", "3"]  # file order, cocoid
    assert ds.captions == [f"one {k}" for k in range(5)] + ["three a", "three b"]
    assert ds.caption_image.tolist() == [0] * 5 + [1, 1]
    assert ds.caption_meta["sentid"].tolist() == [0, 1, 2, 3, 4, 9, 10]
    assert ds.skipped == [SkipRecord(f"{js}:1", "sentence 5 (sentid 5) is beyond captions_per_image=5; left out")]
    assert ds.images.paths[0] == root / "val2014" / "COCO_val2014_000000000001.jpg"
    assert ds.load_image(1).mode == "RGB"
    all_caps = load_karpathy(js, root, "test", captions_per_image=None)
    assert all_caps.num_captions == 8 and all_caps.skipped == []
    train = load_karpathy(js, root, "train+restval")
    assert train.image_ids == ["4", "2"] and train.image_meta["split"].tolist() == ["train", "restval"]
    assert train.captions == ["four a", "four b", "two a"] and train.load_image(1).mode == "RGB"
    assert load_karpathy(js, root, ("restval",)).image_ids == ["2"]
    assert load_karpathy(js, root, "test", max_images=1).image_ids == ["1"]
    with pytest.raises(VlmkitError, match=r"split must be one of \('train', 'val', 'test', 'restval'\).*got 'testing'"):
        load_karpathy(js, root, "testing")
    with pytest.raises(VlmkitError, match=r"dataset_coco\.json: no usable image in split 'val'"):
        load_karpathy(js, root, "val")


def test_karpathy_flickr_layout_and_tokens_fallback(tmp_path):
    root = tmp_path / "flickr30k-images"
    write_image(root / "1000092795.jpg")
    write_image(root / "10002456.jpg", "L", value=200)
    recs = [
        {"filename": "1000092795.jpg", "imgid": 0, "split": "test", "sentences": _sentences(["Two young guys.", "Two men outside."], 0)},
        {"filename": "10002456.jpg", "imgid": 1, "split": "test", "sentences": [{"tokens": ["several", "men"], "sentid": 2}]},
        {"filename": "999.jpg", "imgid": 2, "split": "train", "sentences": _sentences(["not loaded"], 3)},
    ]
    js = write_json(tmp_path / "dataset_flickr30k.json", {"dataset": "flickr30k", "images": recs})
    ds = load_karpathy(js, root)
    assert ds.name == "flickr30k/test"
    assert ds.image_ids == ["1000092795", "10002456"]
    assert ds.captions == ["Two young guys.", "Two men outside.", "several men"]
    assert ds.caption_image.tolist() == [0, 0, 1]
    assert ds.images.paths[1] == root / "10002456.jpg"
    assert ds.load_image(1).getpixel((0, 0)) == (200, 200, 200)
    with pytest.raises(VlmkitError, match=re.escape(f"{js}:999: image file not found: {root / '999.jpg'}")):
        load_karpathy(js, root, "train")


def test_karpathy_bad_inputs(tmp_path):
    js, root = karpathy_coco_fixture(tmp_path)
    data = json.loads(js.read_text())
    data["images"][3]["sentences"][1]["raw"] = ""
    write_json(js, data)
    with pytest.raises(VlmkitError, match=re.escape(f"{js}:3: sentence 1 (sentid 10): caption is empty: ''")):
        load_karpathy(js, root)
    with pytest.warns(SkippedItemsWarning):
        ds = load_karpathy(js, root, on_error="skip")
    assert ds.captions[-1] == "three a" and SkipRecord(f"{js}:3", "sentence 1 (sentid 10): caption is empty: ''") in ds.skipped
    (root / "val2014" / "COCO_val2014_000000000003.jpg").unlink()
    with pytest.warns(SkippedItemsWarning, match="skipped 2 bad item"):
        ds = load_karpathy(js, root, on_error="skip")
    assert ds.image_ids == ["1"]
    del data["images"][2]["sentences"]
    write_json(js, data)
    with pytest.raises(VlmkitError, match=r"dataset_coco\.json: images\[2\]: missing key 'sentences'"):
        load_karpathy(js, root)
    data["images"][2]["sentences"] = [{"sentid": 1}]
    write_json(js, data)
    with pytest.raises(VlmkitError, match=r"images\[2\]\.sentences\[0\]: missing key 'raw'"):
        load_karpathy(js, root, "restval")
    write_json(js, {"dataset": "coco"})
    with pytest.raises(VlmkitError, match=r"missing top-level key 'images'.*Karpathy split file"):
        load_karpathy(js, root)
    with pytest.raises(VlmkitError, match=r"Karpathy split file not found: .*dataset_f8k\.json"):
        load_karpathy(tmp_path / "dataset_f8k.json", root)


def test_karpathy_coco_5k_test_split_shape(tmp_path):
    """The COCO 5K layout: 5,000 test images, some with 6–7 sentences -> 25,000 captions; 1K folds."""
    root = tmp_path / "coco"
    src = write_image(root / "one.jpg")
    (root / "val2014").mkdir()
    recs, sent = [], 0
    rng = np.random.default_rng(0)
    for k in range(5400):
        split = "test" if k < 5000 else ("val" if k < 5200 else "restval")
        fn = f"COCO_val2014_{k:012d}.jpg"
        if split == "test":
            os.link(src, root / "val2014" / fn)
        n = 5 + int(rng.random() < 0.01) + int(rng.random() < 0.002)
        recs.append({"filepath": "val2014", "filename": fn, "imgid": k, "cocoid": 100000 + k, "split": split,
                     "sentences": _sentences([f"image {k} caption {j}" for j in range(n)], sent)})
        sent += n
    js = write_json(tmp_path / "dataset_coco.json", {"dataset": "coco", "images": recs})
    ds = load_karpathy(js, root, "test")
    assert (ds.num_images, ds.num_captions) == (5000, 25000)
    extra = sum(len(r["sentences"]) - 5 for r in recs[:5000])
    assert extra > 0 and len(ds.skipped) == extra
    fold = ds.subset(range(1000, 2000))
    assert (fold.num_images, fold.num_captions) == (1000, 5000)
    assert fold.image_ids[0] == "101000" and fold.captions[0] == "image 1000 caption 0"


# --------------------------------------------------------------------------- CSV / TSV


def write_table(path: Path, rows, sep=","):
    with open(path, "w", newline="") as fh:
        csv.writer(fh, delimiter=sep).writerows(rows)
    return path


def test_csv_good(tmp_path):
    write_image(tmp_path / "imgs" / "a.jpg")
    write_image(tmp_path / "imgs" / "b.png", "I;16")
    abs_img = write_image(tmp_path / "elsewhere" / "c.jpg", "CMYK")
    table = write_table(tmp_path / "pairs.csv", [
        ["filepath", "caption", "source"],
        ["imgs/a.jpg", "a dog, running", "x"],
        ["imgs/b.png", 'a "quoted" cat', "y"],
        ["./imgs/a.jpg", "the same dog", "z"],
        [str(abs_img), "an absolute path", "w"],
    ])
    assert 'a dog, running' in table.read_text() and '"a dog, running"' in table.read_text()
    ds = load_csv(table)
    assert ds.name == "csv/pairs"
    assert ds.image_ids == ["imgs/a.jpg", "imgs/b.png", str(abs_img)]
    assert ds.captions == ["a dog, running", "the same dog", 'a "quoted" cat', "an absolute path"]
    assert ds.caption_image.tolist() == [0, 0, 1, 2]
    assert ds.caption_meta["row"].tolist() == [2, 4, 3, 5]
    assert ds.images.paths[0] == tmp_path / "imgs" / "a.jpg" and ds.images.paths[2] == abs_img
    assert all(ds.load_image(i).mode == "RGB" for i in range(3))
    # image_root and custom column names
    t2 = write_table(tmp_path / "other.csv", [["image", "text"], ["a.jpg", "a dog"]])
    ds2 = load_csv(t2, image_root=tmp_path / "imgs", img_key="image", caption_key="text")
    assert ds2.images.paths == [tmp_path / "imgs" / "a.jpg"] and ds2.captions == ["a dog"]


def test_tsv_auto_separator_and_explicit_sep(tmp_path):
    write_image(tmp_path / "a.jpg")
    tsv = write_table(tmp_path / "pairs.tsv", [["filepath", "caption"], ["a.jpg", "tabs, and commas"], ["a.jpg", "second"]], sep="\t")
    ds = load_csv(tsv)
    assert ds.captions == ["tabs, and commas", "second"] and ds.num_images == 1
    txt = tmp_path / "pairs.txt"
    shutil.copy(tsv, txt)
    with pytest.raises(VlmkitError, match=r"pairs\.txt: cannot guess the separator from the extension '\.txt'"):
        load_csv(txt)
    assert load_csv(txt, sep="\t").captions == ds.captions
    assert load_dataset(f"tsv:{txt}").captions == ds.captions


def test_csv_missing_column_lists_columns(tmp_path):
    table = write_table(tmp_path / "t.csv", [["path", "caption"], ["a.jpg", "x"]])
    with pytest.raises(VlmkitError) as err:
        load_csv(table)
    assert str(err.value).startswith(f"{table}: row 1 (header) has no column 'filepath'; columns found: 'path', 'caption'")
    tsv_as_csv = write_table(tmp_path / "t2.csv", [["filepath", "caption"], ["a.jpg", "x"]], sep="\t")
    with pytest.raises(VlmkitError, match=r"columns found: 'filepath\\tcaption'"):
        load_csv(tsv_as_csv)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(VlmkitError, match=r"empty\.csv: the file is empty"):
        load_csv(empty)
    with pytest.raises(VlmkitError, match=r"caption table not found: .*missing\.csv"):
        load_csv(tmp_path / "missing.csv")


def test_csv_bad_rows_raise_or_skip(tmp_path):
    write_image(tmp_path / "a.jpg")
    write_image(tmp_path / "b.jpg")
    table = tmp_path / "t.csv"
    table.write_text(
        "filepath,caption\n"
        'a.jpg,"a caption\nspanning two lines"\n'  # row 2 (one record, two lines)
        "b.jpg,\n"  # row 3: empty caption
        "a.jpg,fine,extra\n"  # row 4: wrong field count
        ",no path\n"  # row 5: empty filepath
        "gone.jpg,missing image\n"  # row 6
        "gone.jpg,again\n"  # row 7
        "b.jpg,b ok\n"  # row 8
    )
    with pytest.raises(VlmkitError) as err:
        load_csv(table)
    assert str(err.value) == f"{table}:row 3: caption is empty: '' (pass on_error='skip' to leave such items out)"
    with pytest.warns(SkippedItemsWarning, match="skipped 4 bad item"):
        ds = load_csv(table, on_error="skip")
    assert ds.captions == ["a caption\nspanning two lines", "b ok"]
    assert ds.caption_meta["row"].tolist() == [2, 8]
    assert ds.skipped == [
        SkipRecord(f"{table}:row 3", "caption is empty: ''"),
        SkipRecord(f"{table}:row 4", "has 3 field(s), the header has 2"),
        SkipRecord(f"{table}:row 5", "empty 'filepath'"),
        SkipRecord(f"{table}:row 6", f"image file not found: {tmp_path / 'gone.jpg'} (the image of rows 6, 7)"),
    ]


def test_csv_malformed_quoting_and_corrupt_image(tmp_path):
    write_image(tmp_path / "a.jpg")
    table = tmp_path / "t.csv"
    table.write_text('filepath,caption\na.jpg,ok\na.jpg,"unterminated\n')
    with pytest.raises(VlmkitError, match=r"t\.csv: malformed CSV at row 3: unexpected end of data"):
        load_csv(table)
    (tmp_path / "bad.jpg").write_bytes(b"\x00" * 10)
    table.write_text("filepath,caption\na.jpg,ok\nbad.jpg,bad\n")
    assert load_csv(table).num_images == 2
    with pytest.raises(VlmkitError, match=r"t\.csv:row 3: cannot read image .*bad\.jpg"):
        load_csv(table, verify_images=True)
    with pytest.warns(SkippedItemsWarning):
        assert load_csv(table, verify_images=True, on_error="skip").image_ids == ["a.jpg"]
    table.write_bytes(b"filepath,caption\na.jpg,caf\xe9\n")
    with pytest.raises(VlmkitError, match=r"t\.csv: not UTF-8 text"):
        load_csv(table)


# --------------------------------------------------------------------------- image folder


def folder_fixture(tmp_path):
    root = tmp_path / "classes"
    write_image(root / "cat" / "a.jpg")
    write_image(root / "cat" / "b.png", "RGBA")
    write_image(root / "dog_house" / "c.jpg", "L")
    write_image(root / "dog_house" / "sub" / "d.png", "I;16")
    (root / "dog_house" / "notes.txt").write_text("not an image")
    (root / "README.md").write_text("readme")
    write_image(root / ".cache" / "x.jpg")
    write_image(root / "cat" / ".hidden.jpg")
    (root / "empty").mkdir()
    return root


def test_image_folder_contents_and_prompts(tmp_path):
    root = folder_fixture(tmp_path)
    ds = load_image_folder(root, templates=["a photo of a {c}.", "a drawing of a {}."])
    assert isinstance(ds, ClassificationDataset)
    assert ds.classnames == ["cat", "dog house", "empty"]
    assert ds.image_ids == ["cat/a.jpg", "cat/b.png", "dog_house/c.jpg", "dog_house/sub/d.png"]
    assert ds.labels.tolist() == [0, 0, 1, 1] and ds.class_counts().tolist() == [2, 2, 0]
    assert ds.skipped == [
        SkipRecord(str(root / "README.md"), "file directly in the root folder, not inside a class folder; left out"),
        SkipRecord(str(root / "dog_house" / "notes.txt"), "not an image file extension (.txt); left out"),
    ]
    assert ds.class_prompts() == ["a photo of a cat.", "a photo of a dog house.", "a photo of a empty."]
    assert ds.class_prompts(1)[0] == "a drawing of a cat."
    assert ds.class_prompts("a sketch of a {c}")[1] == "a sketch of a dog house"
    assert ds.prompt_table()[1] == ["a photo of a dog house.", "a drawing of a dog house."]
    assert all(ds.load_image(i).mode == "RGB" for i in range(4))
    assert load_image_folder(root, classnames=["Cat", "Dog", "Nothing"]).classnames == ["Cat", "Dog", "Nothing"]
    assert load_image_folder(root, classnames={"cat": "kitty", "dog_house": "kennel", "empty": "void"}).class_prompts()[0] == "a photo of a kitty."


def test_image_folder_as_pairs_marks_same_class_pairs(tmp_path):
    ds = load_image_folder(folder_fixture(tmp_path))
    pairs = ds.as_pairs()
    assert isinstance(pairs, PairDataset) and pairs.has_exact_truth
    assert pairs.captions == ["a photo of a cat."] * 2 + ["a photo of a dog house."] * 2
    assert pairs.caption_image.tolist() == [0, 1, 2, 3]
    same = ds.labels[:, None] == ds.labels[None, :]
    np.testing.assert_array_equal(pairs.positives(), same)
    np.testing.assert_array_equal(pairs.labels(), np.eye(4, dtype=bool))
    np.testing.assert_array_equal(pairs.false_negatives(), same & ~np.eye(4, dtype=bool))
    sub = pairs.subset([3, 0, 2])
    np.testing.assert_array_equal(sub.positives(), np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], bool))
    csub = ds.subset([2, 3])
    assert csub.labels.tolist() == [1, 1] and csub.as_pairs().false_negatives().sum() == 2
    assert pairs.fingerprint() != ds.as_pairs(template="a sketch of a {c}").fingerprint()


def test_image_folder_bad_inputs(tmp_path):
    root = folder_fixture(tmp_path)
    with pytest.raises(VlmkitError, match=r"templates\[1\] = 'a photo' must be a string with a '\{c\}' placeholder"):
        load_image_folder(root, templates=["a {c}", "a photo"])
    with pytest.raises(VlmkitError, match=r"2 classnames given for 3 class folders \['cat', 'dog_house', 'empty'\]"):
        load_image_folder(root, classnames=["a", "b"])
    with pytest.raises(VlmkitError, match=r"classnames has no entry for class folder\(s\) \['empty'\]"):
        load_image_folder(root, classnames={"cat": "a", "dog_house": "b"})
    with pytest.raises(VlmkitError, match=r"image folder not found: .*nowhere"):
        load_image_folder(tmp_path / "nowhere")
    flat = tmp_path / "flat"
    write_image(flat / "a.jpg")
    with pytest.raises(VlmkitError, match=r"flat: no class sub-folders found"):
        load_image_folder(flat)
    write_truncated_jpeg(root / "cat" / "z.jpg")
    assert load_image_folder(root).num_images == 5
    with pytest.raises(VlmkitError, match=r"cat/z\.jpg: cannot read image .*z\.jpg"):
        load_image_folder(root, verify_images=True)
    with pytest.warns(SkippedItemsWarning):
        ds = load_image_folder(root, verify_images=True, on_error="skip")
    assert ds.num_images == 4
    bad = [s for s in ds.skipped if s.where == str(root / "cat" / "z.jpg")]
    assert len(bad) == 1 and bad[0].reason.startswith(f"cannot read image {root / 'cat' / 'z.jpg'}: OSError")


# --------------------------------------------------------------------------- Fashion-MNIST / IDX


def write_idx(path: Path, arr: np.ndarray, compress: bool = True) -> Path:
    code = {np.dtype(np.uint8): 0x08}[arr.dtype]
    raw = bytes([0, 0, code, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape) + arr.tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def test_idx_reader_and_synthetic_fashion_mnist(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    labs = (np.arange(30) % 10).astype(np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labs, compress=False)  # uncompressed works too
    np.testing.assert_array_equal(read_idx(tmp_path / "t10k-images-idx3-ubyte.gz"), imgs)
    assert fashion_mnist_available(tmp_path) and not fashion_mnist_available(tmp_path, "train")
    ds = load_fashion_mnist(tmp_path, limit=12)
    assert ds.num_images == 12 and ds.labels.tolist() == labs[:12].tolist()
    assert ds.images.as_array().shape == (12, 28, 28, 3)
    np.testing.assert_array_equal(np.asarray(ds.load_image(3))[..., 1], imgs[3])
    assert ds.image_ids[:2] == ["test/0", "test/1"] and ds.classnames[9] == "ankle boot"
    # wrong magic (labels file where images are expected), truncated data, trailing bytes
    with pytest.raises(VlmkitError, match=r"t10k-labels-idx1-ubyte: magic number 0x00000801, expected 0x00000803"):
        read_idx(tmp_path / "t10k-labels-idx1-ubyte", expect_magic=0x00000803)
    bad = tmp_path / "bad-idx1-ubyte"
    bad.write_bytes((tmp_path / "t10k-labels-idx1-ubyte").read_bytes()[:-3])
    with pytest.raises(VlmkitError, match=r"bad-idx1-ubyte: IDX file truncated: header announces shape \(30,\) \(30 data bytes\), found 27"):
        read_idx(bad)
    bad.write_bytes((tmp_path / "t10k-labels-idx1-ubyte").read_bytes() + b"\0")
    with pytest.raises(VlmkitError, match=r"IDX file has trailing bytes"):
        read_idx(bad)
    bad.write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(VlmkitError, match=r"bad-idx1-ubyte: not an IDX file \(magic number 0x504b0304\)"):
        read_idx(bad)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(VlmkitError, match=r"Fashion-MNIST file not found: .*t10k-labels-idx1-ubyte\.gz"):
        load_fashion_mnist(tmp_path)
    with pytest.raises(VlmkitError, match=r"split must be one of \('train', 'test'\)"):
        load_fashion_mnist(tmp_path, split="val")


@pytest.mark.skipif(not fashion_mnist_available(FMNIST), reason="Fashion-MNIST (dataset-fashion-mnist) is not installed")
def test_fashion_mnist_real_test_split(tmp_path):
    ds = load_fashion_mnist()
    assert ds.name == "fashion-mnist/test" and ds.num_images == 10000 and ds.num_classes == 10
    assert ds.images.as_array().shape == (10000, 28, 28, 3) and ds.images.as_array().dtype == np.uint8
    assert ds.class_counts().tolist() == [1000] * 10
    assert ds.load_image(0).mode == "RGB" and ds.load_image(0).size == (28, 28)
    assert len(ds.templates) == 4 and ds.class_prompts()[7] == "a photo of a sneaker."
    pairs = load_dataset("fashion-mnist", limit=50, pairs=True)
    assert pairs.num_captions == 50 and pairs.false_negatives().sum() == sum(c * (c - 1) for c in np.bincount(pairs.caption_meta["label"]))
    # A truncated copy of a real file raises naming it.
    shutil.copy(FMNIST / "t10k-images-idx3-ubyte.gz", tmp_path)
    data = (FMNIST / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(VlmkitError, match=r"t10k-labels-idx1-ubyte\.gz: cannot decompress \(EOFError: .*\); the file is truncated or corrupt"):
        load_fashion_mnist(tmp_path)
    raw = gzip.decompress(data)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(VlmkitError, match=r"t10k-labels-idx1-ubyte\.gz: IDX file truncated: header announces shape \(10000,\)"):
        load_fashion_mnist(tmp_path)


# --------------------------------------------------------------------------- load_dataset


def test_load_dataset_dispatch(tmp_path):
    ann, img_dir = coco_fixture(tmp_path)
    ds = load_dataset(f"coco:{ann}:{img_dir}")
    assert ds.image_ids == ["2", "10", "30"]
    assert load_dataset({"kind": "coco", "annotation_json": ann, "image_dir": img_dir, "max_images": 1}).num_images == 1
    assert load_dataset(f"coco:{ann}:{img_dir}", max_images=2).num_images == 2
    js, root = karpathy_coco_fixture(tmp_path)
    assert load_dataset(f"karpathy:{js}:{root}:train+restval").image_ids == ["4", "2"]
    assert load_dataset(f"karpathy:{js}:{root}").image_ids == ["1", "3"]
    write_image(tmp_path / "a.jpg")
    assert load_dataset(f"csv:{write_table(tmp_path / 'p.csv', [['filepath', 'caption'], ['a.jpg', 'x']])}").captions == ["x"]
    root = folder_fixture(tmp_path)
    assert isinstance(load_dataset(f"folder:{root}"), ClassificationDataset)
    assert isinstance(load_dataset(f"folder:{root}", pairs=True), PairDataset)
    shapes = pytest.importorskip("vlmkit.data.shapes")
    if hasattr(shapes, "make_shapes"):
        assert load_dataset("shapes", n_images=3).num_images == 3
    with pytest.raises(VlmkitError, match=r"unknown dataset kind 'cocoa'.*expected one of coco, karpathy, csv, tsv, folder, fashion-mnist, shapes"):
        load_dataset("cocoa:x:y")
    with pytest.raises(VlmkitError, match=r"'coco' takes at most 2 part\(s\) after the kind \(annotation_json:image_dir\), got 3"):
        load_dataset("coco:a:b:c")
    with pytest.raises(VlmkitError, match=r"dataset spec dict needs a 'kind' key"):
        load_dataset({"path": "x.csv"})
    with pytest.raises(VlmkitError, match=r"load_coco_captions\(\) got an unexpected keyword argument 'limit'"):
        load_dataset(f"coco:{ann}:{img_dir}", limit=3)
    with pytest.raises(VlmkitError, match=r"COCO annotation file not found"):
        load_dataset("coco:/nonexistent.json:/tmp")
