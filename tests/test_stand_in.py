"""The shipped stand-in CLIP: it loads offline, records the documented recipe, reproduces its
training, and behaves like a CLIP (zero-shot far above chance, a modality gap)."""

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch

from vlmkit.models import stand_in, stand_in_record
from vlmkit.models.factory import CONFIG_NAME
from vlmkit.pretrain import PretrainConfig, pretrain_tiny

SMALL = dict(n_images=64, web_per_image=1, steps=6, batch_size=16, warmup_steps=2, checkpoint_every=2)


def test_interrupted_pretraining_resumes_to_the_same_weights(tmp_path):
    whole = pretrain_tiny(tmp_path / "whole", PretrainConfig(**SMALL), device="cpu")
    assert pretrain_tiny(tmp_path / "cut", PretrainConfig(**SMALL), device="cpu", stop_after_steps=3) is None
    assert (tmp_path / "cut" / ".partial.pt").is_file() and not (tmp_path / "cut" / CONFIG_NAME).exists()
    from vlmkit.pretrain import _load_partial

    state = _load_partial(tmp_path / "cut" / ".partial.pt", PretrainConfig(**SMALL))  # loads with weights_only=True
    assert state is not None and len(state["history"]) == 3  # so the next call really resumes
    resumed = pretrain_tiny(tmp_path / "cut", PretrainConfig(**SMALL), device="cpu")
    for (k, a), (_, b) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)
    hist = [json.loads((tmp_path / d / CONFIG_NAME).read_text())["vlmkit"]["loss_history"] for d in ("whole", "cut")]
    np.testing.assert_allclose(hist[0], hist[1], rtol=1e-5)
    assert not (tmp_path / "cut" / ".partial.pt").exists()  # removed once the run completed


def test_a_partial_checkpoint_of_another_config_is_not_resumed(tmp_path):
    pretrain_tiny(tmp_path / "x", PretrainConfig(**SMALL), device="cpu", stop_after_steps=2)
    other = PretrainConfig(**{**SMALL, "lr": 1e-3})
    pretrain_tiny(tmp_path / "x", other, device="cpu")
    meta = json.loads((tmp_path / "x" / CONFIG_NAME).read_text())["vlmkit"]
    assert meta["pretrain_config"]["lr"] == 1e-3 and len(meta["loss_history"]) == SMALL["steps"]


def test_shipped_stand_in_loads_offline_and_records_the_documented_recipe():
    loaded = stand_in(device="cpu")
    rec = stand_in_record()
    assert rec["pretrain_config"] == asdict(PretrainConfig())  # the checkpoint is what the docs say
    assert len(rec["loss_history"]) == PretrainConfig().steps and rec["stored_dtype"] == "float16"
    hist = np.asarray(rec["loss_history"])
    assert hist[-100:].mean() < hist[:100].mean() - 1.5  # it learned (nats of InfoNCE over 256)
    assert loaded.name == "vlmkit-base" and all(p.dtype == torch.float32 for p in loaded.model.parameters())
    assert not loaded.model.training


@pytest.mark.slow
def test_first_steps_of_a_fresh_run_reproduce_the_recorded_loss_history(tmp_path):
    pretrain_tiny(tmp_path / "again", PretrainConfig(), device="cpu", stop_after_steps=3)
    state = torch.load(tmp_path / "again" / ".partial.pt", weights_only=True)
    np.testing.assert_allclose(state["history"][:3], stand_in_record()["loss_history"][:3], rtol=2e-4)


def test_stand_in_tag_and_empty_name_load_it_without_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from vlmkit.models import load_model

        loaded = load_model("", pretrained="stand-in", device="cpu")  # a notebook's empty `model` parameter
    ref = stand_in(device="cpu")
    assert loaded.name == "vlmkit-base"
    for (k, a), (_, b) in zip(loaded.model.state_dict().items(), ref.model.state_dict().items()):
        assert torch.equal(a, b), k


@pytest.mark.slow
def test_stand_in_behaves_like_a_clip_on_the_default_benchmark():
    """Zero-shot on the default test split (coco preset, 1,000 × 5,000, one-to-one labels): a
    stand-in pretrained away from the test data (measured 33.0 / 16.4, gap 0.43) — far above chance
    (0.1 %), far below what in-domain training reaches (76 / 32), and two cones."""
    from vlmkit.data import make_shapes
    from vlmkit.features import encode_dataset
    from vlmkit.metrics import bidirectional_recall, modality_gap

    test = make_shapes("test")
    f = encode_dataset(stand_in(device="cpu"), test, cache_dir=None)
    r = bidirectional_recall(f.images @ f.texts.T, test.caption_image, ks=(1,))
    assert 0.25 <= r[("i2t", 1)] <= 0.60 and 0.12 <= r[("t2i", 1)] <= 0.45, r
    assert modality_gap(f.images, f.texts).distance > 0.35  # two cones (measured 0.43)


def test_pretraining_on_the_web_domain_records_it(tmp_path):
    """``python -m vlmkit.pretrain --preset web`` trains on the web domain (data/README.md): its
    alt-text captions and backgrounds, recorded in the checkpoint's configuration."""
    from vlmkit.pretrain import main

    assert main(["--out", str(tmp_path / "w"), "--device", "cpu", "--preset", "web", "--n-images", "48", "--web-per-image", "1",
                 "--steps", "2", "--batch-size", "16", "--warmup-steps", "1"]) == 0
    meta = json.loads((tmp_path / "w" / CONFIG_NAME).read_text())["vlmkit"]
    assert meta["pretrain_config"]["preset"] == "web" and len(meta["loss_history"]) == 2
    assert meta["pretrain_key"] != PretrainConfig(n_images=48, web_per_image=1, steps=2, batch_size=16, warmup_steps=1, preset="coco").key()  # coco ≠ web
