"""Model factory, checkpoint round trips, pretrained-tag failure, feature cache, pretraining."""

import json
import time

import numpy as np
import pytest
import torch

from vlmkit.data.shapes import make_shapes
from vlmkit.features import cache_path, encode_dataset, feature_key
from vlmkit.models import load_model, save_model
from vlmkit.pretrain import PretrainConfig, pretrain_tiny
from vlmkit.utils import VlmkitError


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return load_model("vlmkit-tiny", device="cpu")


@pytest.fixture(scope="module")
def small_ds():
    return make_shapes("test", n_images=24, seed=1)


def _outputs(loaded, ds):
    loaded.model.eval()
    x = torch.from_numpy(ds.images.array[:4]).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        return loaded.model.encode_image(x), loaded.model.encode_text(loaded.tokenizer(ds.captions[:4]))


def test_tiny_model_shapes(tiny):
    assert tiny.embed_dim == 128 and tiny.image_size == 64
    assert tiny.tokenizer(["a red circle"]).shape == (1, 32)


def test_save_load_round_trip_identical(tiny, small_ds, tmp_path):
    save_model(tiny, tmp_path / "m")
    assert (tmp_path / "m" / "open_clip_model.safetensors").is_file()
    meta = json.loads((tmp_path / "m" / "open_clip_config.json").read_text())
    assert meta["model_cfg"]["embed_dim"] == 128
    back = load_model(pretrained=tmp_path / "m", device="cpu")
    for a, b in zip(_outputs(tiny, small_ds), _outputs(back, small_ds)):
        assert torch.equal(a, b)


def test_state_dict_file_checkpoint(tiny, small_ds, tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(tiny.model.state_dict(), path)
    back = load_model("vlmkit-tiny", pretrained=str(path), device="cpu")
    for a, b in zip(_outputs(tiny, small_ds), _outputs(back, small_ds)):
        assert torch.equal(a, b)


def test_unavailable_tag_fails_fast_with_advice():
    start = time.time()
    with pytest.raises(VlmkitError, match="pretrained='/path/to/weights.safetensors'"):
        load_model("ViT-B-32", pretrained="laion2b_s34b_b79k", device="cpu")
    assert time.time() - start < 5


def test_bad_model_and_checkpoint_arguments(tmp_path):
    with pytest.raises(VlmkitError, match="unknown model name"):
        load_model("ViT-Z-99", device="cpu")
    with pytest.raises(VlmkitError, match="neither a known open_clip tag"):
        load_model("ViT-B-32", pretrained="no-such-tag", device="cpu")
    with pytest.raises(VlmkitError, match="not found"):
        load_model("vlmkit-tiny", pretrained=str(tmp_path / "missing.safetensors"), device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VlmkitError, match="open_clip_config.json is missing"):
        load_model(pretrained=tmp_path / "empty", device="cpu")
    wrong = tmp_path / "wrong.pt"
    torch.save({"nonsense": torch.zeros(3)}, wrong)
    with pytest.raises(VlmkitError, match="could not load checkpoint"):
        load_model("vlmkit-tiny", pretrained=str(wrong), device="cpu")


def test_fast_image_path_equals_model_preprocess(tiny, small_ds):
    from vlmkit.data.loading import ImageTensors

    tensors = ImageTensors(small_ds, tiny.preprocess, tiny.preprocess_cfg)
    assert tensors.fast
    batch = tensors.batch(np.arange(3))
    for i in range(3):
        assert torch.allclose(batch[i], tiny.preprocess(small_ds.load_image(i)), atol=1e-6)


def test_features_are_unit_norm_and_cached(tiny, small_ds, tmp_path):
    f1 = encode_dataset(tiny, small_ds, cache_dir=tmp_path, batch_size=10)
    assert f1.images.shape == (24, 128) and f1.texts.shape == (120, 128)
    assert torch.allclose(f1.images.norm(dim=1), torch.ones(24), atol=1e-5)
    assert not f1.from_cache
    f2 = encode_dataset(tiny, small_ds, cache_dir=tmp_path)
    assert f2.from_cache and torch.equal(f1.images, f2.images) and torch.equal(f1.texts, f2.texts)
    assert len(list(tmp_path.glob("*.tmp"))) == 0


def test_cache_invalidated_by_weights_and_data(tiny, small_ds, tmp_path):
    key = feature_key(tiny, small_ds)
    other_data = make_shapes("test", n_images=24, seed=2)
    assert feature_key(tiny, other_data) != key
    changed = load_model("vlmkit-tiny", device="cpu")
    changed.model.load_state_dict(tiny.model.state_dict())
    assert feature_key(changed, small_ds) == key
    with torch.no_grad():
        changed.model.text_projection[0, 0] += 1e-3
    assert feature_key(changed, small_ds) != key
    f = encode_dataset(changed, small_ds, cache_dir=tmp_path)
    assert not f.from_cache


def test_corrupt_cache_is_ignored_and_rewritten(tiny, small_ds, tmp_path):
    f1 = encode_dataset(tiny, small_ds, cache_dir=tmp_path)
    path = cache_path(tmp_path, small_ds, f1.key)
    path.write_bytes(path.read_bytes()[:100])  # an interrupted foreign writer
    with pytest.warns(UserWarning, match="unreadable"):
        f2 = encode_dataset(tiny, small_ds, cache_dir=tmp_path)
    assert not f2.from_cache and torch.equal(f1.images, f2.images)
    assert encode_dataset(tiny, small_ds, cache_dir=tmp_path).from_cache


PT = dict(n_images=64, web_per_image=1, steps=3, batch_size=16, warmup_steps=1)


def test_pretrain_is_deterministic_and_cached(tmp_path, monkeypatch):
    a = pretrain_tiny(tmp_path / "a", PretrainConfig(**PT), device="cpu")
    b = pretrain_tiny(tmp_path / "b", PretrainConfig(**PT), device="cpu")
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(va, vb), ka
    meta = json.loads((tmp_path / "a" / "open_clip_config.json").read_text())["vlmkit"]
    assert len(meta["loss_history"]) == 3
    import vlmkit.pretrain as pt

    monkeypatch.setattr(pt, "make_shapes", lambda *a, **k: pytest.fail("cache miss: retrained"))
    again = pretrain_tiny(tmp_path / "a", PretrainConfig(**PT), device="cpu")
    assert torch.equal(next(iter(again.model.state_dict().values())), next(iter(a.model.state_dict().values())))
    assert not list(tmp_path.glob(".a.*"))  # no temp dirs left behind


def test_pretrain_config_validation():
    with pytest.raises(VlmkitError, match="batch_size"):
        PretrainConfig(batch_size=1)
    with pytest.raises(VlmkitError, match="lr"):
        PretrainConfig(lr=0)
