"""The one dataset-spec grammar (vlmkit.data.spec): what each string means, the errors, and
that load_dataset, the workbook's data selection and fine-tuning read a spec the same way."""

from __future__ import annotations

import numpy as np
import pytest

from vlmkit.data import load_dataset, make_shapes
from vlmkit.data.spec import KINDS, parse_spec
from vlmkit.utils import VlmkitError


@pytest.mark.parametrize("text, kind, params, preset, split", [
    ("shapes", "shapes", {}, "coco", None),
    ("shapes:stress", "shapes", {"preset": "stress"}, "stress", None),
    ("shapes:val", "shapes", {"split": "val"}, "coco", "val"),
    ("shapes:stress:val", "shapes", {"preset": "stress", "split": "val"}, "stress", "val"),
    ("shapes:test:coco", "shapes", {"split": "test", "preset": "coco"}, "coco", "test"),
    ("shapes::stress", "shapes", {"preset": "stress"}, "stress", None),
    ("Shapes", "shapes", {}, "coco", None),
    ("karpathy:d.json:imgs:test", "karpathy", {"json_path": "d.json", "image_root": "imgs", "split": "test"}, None, "test"),
    ("csv:t.csv", "csv", {"path": "t.csv"}, None, None),
    ("fashion-mnist::root", "fashion-mnist", {"root": "root"}, None, None),
])
def test_parse_spec_by_hand(text, kind, params, preset, split):
    spec = parse_spec(text)
    assert (spec.kind, spec.params, spec.preset, spec.split) == (kind, params, preset, split)
    assert spec.embedded == (kind == "shapes") and spec.text == text


@pytest.mark.parametrize("text, match", [
    ("shapes:rainbow", r"'shapes:rainbow': 'rainbow' is neither a shapes preset \(coco, stress, web\) nor a split \(pretrain, train, val, test\)"),
    ("shapes:val:test", r"names two splits \('val' and 'test'\)"),
    ("shapes:coco:stress", r"names two presets"),
    ("cocoa:x", r"unknown dataset kind 'cocoa' in spec 'cocoa:x'; expected one of coco, karpathy"),
    ("folder:a:b", r"'folder' takes at most 1 part\(s\) after the kind \(root\), got 2"),
    ("", r"non-empty string"),
])
def test_parse_spec_errors_name_the_spec_and_what_was_expected(text, match):
    with pytest.raises(VlmkitError, match=match):
        parse_spec(text)


def test_a_caller_that_picks_the_split_rejects_a_spec_naming_another():
    assert parse_spec("shapes:stress").embedded_preset("dataset", "test") == "stress"
    assert parse_spec("shapes:test").embedded_preset("dataset", "test") == "coco"
    with pytest.raises(VlmkitError, match=r"dataset='shapes:val' names the split 'val', but dataset uses the test split"):
        parse_spec("shapes:val").embedded_preset("dataset", "test")
    with pytest.raises(VlmkitError, match="not an embedded-data spec"):
        parse_spec("csv:t.csv").embedded_preset("dataset")


def test_every_kind_names_an_existing_loader_and_its_parameters():
    import importlib
    import inspect

    for kind, (module, func, parts) in KINDS.items():
        sig = inspect.signature(getattr(importlib.import_module(f"vlmkit.data.{module}"), func))
        assert set(parts) <= set(sig.parameters), kind


def test_load_dataset_reads_preset_and_split_from_the_spec():
    ds = load_dataset("shapes:stress:val", n_images=6, seed=1)
    ref = make_shapes("val", n_images=6, seed=1, preset="stress")
    assert ds.captions == ref.captions and np.array_equal(ds.images.as_array(), ref.images.as_array())
    assert load_dataset("shapes:val", n_images=4).captions == make_shapes("val", n_images=4).captions
    assert load_dataset("shapes:stress", n_images=4).captions == make_shapes("test", n_images=4, preset="stress").captions
    with pytest.raises(VlmkitError, match="neither a shapes preset"):
        load_dataset("shapes:rainbow")


def test_workbook_and_finetuning_read_shapes_specs_the_same_way():
    from vlmkit.selection import is_embedded, load_test_dataset
    from vlmkit.train import TrainConfig, load_splits

    assert is_embedded("shapes:stress") and not is_embedded("csv:t.csv")
    test = load_test_dataset("shapes:stress", 5, seed=2)
    assert test.captions == make_shapes("test", n_images=5, seed=2, preset="stress").captions
    train, val = load_splits(TrainConfig(dataset="shapes:stress", train_images=5, val_images=3, data_seed=2))
    assert train.captions == make_shapes("train", n_images=5, seed=2, preset="stress").captions
    assert val.captions == make_shapes("val", n_images=3, seed=2, preset="stress").captions
    with pytest.raises(VlmkitError, match=r"TrainConfig.dataset='shapes:test' names the split 'test'"):
        TrainConfig(dataset="shapes:test").validate()
    with pytest.raises(VlmkitError, match="unknown dataset kind 'nonsense-kind'"):
        TrainConfig(dataset="nonsense-kind").validate()
    with pytest.raises(VlmkitError, match=r"dataset='shapes:val' names the split 'val'"):
        load_test_dataset("shapes:val", 5)


def test_inject_noise_lives_beside_the_dataset_interface():
    """One function, reachable from its old home: vlmkit.data.noise is where it is defined."""
    import vlmkit.data
    import vlmkit.data.shapes
    from vlmkit.data import noise

    assert vlmkit.data.inject_noise is noise.inject_noise is vlmkit.data.shapes.inject_noise
    assert noise.inject_noise.__module__ == "vlmkit.data.noise"
