"""VACSR training on frozen features: beats cosine on mAP@R, resumes exactly, rejects bad input.

Data: ``tests/vacsr_synthetic.py`` — clusters of images with specific captions (true of their own
image) and generic captions (true of every image of the cluster), so binary labels create false
negatives whose ground truth is known.
"""

from __future__ import annotations

import pytest
import torch

import vlmkit.vacsr.train as vtrain
from vlmkit.utils import VlmkitError
from vlmkit.vacsr import (VACSRConfig, false_negative_auroc, map_at_r, score_all, train_on_features,
                          uncertainty_accuracy)
from vacsr_synthetic import make_synthetic

torch.set_num_threads(1)
KW = dict(n_clusters=40, signal_dims=16, noise_dims=48)


def _cfg(**kw) -> VACSRConfig:
    return VACSRConfig(**{**dict(dim=64, enc_hidden=(64,), latent_dim=16, dec_hidden=(32,)), **kw})


def test_training_on_frozen_features_beats_cosine_on_map_at_r():
    tr, te = make_synthetic(seed=0, **KW), make_synthetic(seed=1, **KW)
    adapter, hist = train_on_features(tr.img, tr.txt, tr.caption_image, _cfg(), epochs=12, batch_size=100,
                                      lr=3e-3, seed=0, device="cpu", val=(te.img, te.txt, te.relevance),
                                      show_progress=False)
    scores, unc = score_all(adapter, te.img, te.txt, device="cpu", show_progress=False)
    cos = te.img @ te.txt.t()
    figs = {}
    for d in ("i2t", "t2i"):
        figs[d] = (map_at_r(cos, te.relevance, d), map_at_r(scores, te.relevance, d))
        assert figs[d][1] > figs[d][0] + 0.03, figs
    assert hist[-1]["map_at_r_i2t"] == pytest.approx(figs["i2t"][1])
    assert len(hist) == 12 and all(torch.isfinite(torch.tensor(h["total"])) for h in hist)
    fn = false_negative_auroc(unc, te.labels, te.relevance)
    assert fn["n_false_negatives"] == 40 * 4 * 3 * 3 and 0.0 <= fn["auroc"] <= 1.0
    ua = {d: uncertainty_accuracy(scores, unc, te.relevance, d)["pearson_r"] for d in ("i2t", "t2i")}
    print(f"\nVACSR synthetic: mAP@R cos→vacsr i2t {figs['i2t'][0]:.3f}→{figs['i2t'][1]:.3f}, "
          f"t2i {figs['t2i'][0]:.3f}→{figs['t2i'][1]:.3f}; FN-vs-TN AUROC {fn['auroc']:.3f}; "
          f"Pearson(unc, R@1) i2t {ua['i2t']:.3f} t2i {ua['t2i']:.3f}")


def test_resume_after_interruption_gives_the_same_adapter(tmp_path, monkeypatch):
    tr, te = make_synthetic(seed=2, n_clusters=6, signal_dims=8, noise_dims=8), make_synthetic(
        seed=3, n_clusters=3, signal_dims=8, noise_dims=8)
    cfg = _cfg(dim=16, enc_hidden=(16,), latent_dim=4, dec_hidden=(8,))
    kw = dict(config=cfg, epochs=3, batch_size=16, lr=1e-2, seed=5, device="cpu",
              val=(te.img, te.txt, te.relevance), show_progress=False)
    full, hist_full = train_on_features(tr.img, tr.txt, tr.caption_image, **kw)

    real_validate = vtrain.validate
    calls = {"n": 0}

    def crash_on_third(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_validate(*a, **k)

    monkeypatch.setattr(vtrain, "validate", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        train_on_features(tr.img, tr.txt, tr.caption_image, checkpoint_dir=tmp_path, **kw)
    monkeypatch.setattr(vtrain, "validate", real_validate)
    resumed, hist_res = train_on_features(tr.img, tr.txt, tr.caption_image, checkpoint_dir=tmp_path,
                                          resume=True, **kw)
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    assert hist_res == hist_full
    with pytest.raises(VlmkitError, match=r"another VACSRConfig.*latent_dim"):
        train_on_features(tr.img, tr.txt, tr.caption_image, checkpoint_dir=tmp_path, resume=True,
                          **{**kw, "config": _cfg(dim=16, enc_hidden=(16,), latent_dim=5, dec_hidden=(8,))})


def test_training_rejects_bad_input():
    tr = make_synthetic(seed=0, n_clusters=3, signal_dims=8, noise_dims=8)
    cfg = _cfg(dim=16, enc_hidden=(8,), latent_dim=4, dec_hidden=())
    with pytest.raises(VlmkitError, match=r"img_feats.*dim=32"):
        train_on_features(tr.img, tr.txt, tr.caption_image, _cfg(dim=32), epochs=1, device="cpu")
    bad = tr.txt.clone()
    bad[7, 0] = float("nan")
    with pytest.raises(VlmkitError, match=r"txt_feats.*NaN.*\[7\]"):
        train_on_features(tr.img, bad, tr.caption_image, cfg, epochs=1, device="cpu")
    ci = tr.caption_image.clone()
    ci[0] = 999
    with pytest.raises(VlmkitError, match=r"caption_image.*\[0, 12\)"):
        train_on_features(tr.img, tr.txt, ci, cfg, epochs=1, device="cpu")
    with pytest.raises(VlmkitError, match=r"caption_image.*shape"):
        train_on_features(tr.img, tr.txt, ci[:-1], cfg, epochs=1, device="cpu")
    with pytest.raises(VlmkitError, match="val relevance"):
        train_on_features(tr.img, tr.txt, tr.caption_image, cfg, epochs=1, device="cpu",
                          val=(tr.img, tr.txt, tr.relevance[:, :3]))


def test_joint_training_config_follows_the_paper_recipe():
    from vlmkit.train.config import TrainConfig
    from vlmkit.train.loop import _schedule

    cfg = TrainConfig(method="vacsr-joint", epochs=25, lr=1e-5, vacsr={"preset": "paper"})
    assert cfg.vacsr_option("contrastive_weight") == 0.0  # Eq. 13: no InfoNCE unless asked for
    assert cfg.vacsr_option("lr") == 1e-3 and cfg.lr < cfg.vacsr_option("lr")  # backbone lower
    vc = cfg.vacsr_config(512)
    assert vc == VACSRConfig.paper_sized(512) and vc.mechanism == "paper"
    assert TrainConfig(method="vacsr-joint", vacsr={"latent_dim": 8}).vacsr_config(16).latent_dim == 8
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p], "lr": 1e-5}, {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 5e-4}])
    sched = _schedule(cfg, opt, total=25 * 4, steps_per_epoch=4)
    lrs = []
    for _ in range(25 * 4):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    assert lrs[0] == [1e-5, 5e-4] and lrs[15 * 4 - 1] == [1e-5, 5e-4]  # no warm-up, constant to epoch 15
    assert lrs[15 * 4] == pytest.approx([1e-6, 5e-5]) and lrs[-1] == pytest.approx([1e-6, 5e-5])  # ×0.1 at epoch 15
    for bad, match in (({"preset": "huge"}, "preset"), ({"schedule": "linear"}, "schedule"), ({"step_frac": 0}, "step_frac")):
        with pytest.raises(VlmkitError, match=match):
            TrainConfig(method="vacsr-joint", vacsr=bad)


# ---- vacsr-joint: the paper's recipe adapted (issue #19) ------------------------------------------
_TINY = dict(model="vlmkit-tiny", pretrained=None, train_images=8, val_images=6, batch_size=8, device="cpu",
             warmup_frac=0.0, eval_batch_size=64)
_SMALL = {"enc_hidden": [16], "dec_hidden": [16], "latent_dim": 4, "lr": 1e-3}


def test_joint_towers_train_at_the_documented_fraction_of_the_adapter_lr():
    from vlmkit.models import load_model
    from vlmkit.train.config import TrainConfig
    from vlmkit.train.loop import _Trainable, build_optimizer
    from vlmkit.vacsr import VACSRLoss

    def lrs(cfg):
        loaded = load_model("vlmkit-tiny", device="cpu")
        tr = _Trainable(loaded.model, "vacsr", VACSRLoss(cfg.vacsr_config(loaded.embed_dim)))
        out = {}
        for g in build_optimizer(cfg, tr).param_groups:
            out.setdefault(g["name"].removesuffix("-nodecay"), set()).add(round(g["lr"], 12))
        return out

    paper = lrs(TrainConfig(method="vacsr-joint", lr=5e-4, **{k: v for k, v in _TINY.items() if k != "device"}))
    assert paper == {"image": {1e-5}, "text": {1e-4}, "vacsr-adapter": {1e-3}}, paper  # ×0.01 / ×0.1 of the adapter's
    own = lrs(TrainConfig(method="vacsr-joint", lr=2e-4, lr_mult_image=0.5, vacsr={"text_lr_frac": None, "lr": 1e-3}))
    assert own == {"image": {5e-6}, "text": {2e-4}, "vacsr-adapter": {1e-3}}, own  # image 1e-3·0.01·0.5; text at lr


def test_joint_warm_start_is_the_frozen_feature_adapter_of_the_same_split():
    from vlmkit.features import encode_dataset
    from vlmkit.models import load_model
    from vlmkit.train.config import TrainConfig
    from vlmkit.train.loop import load_splits
    from vlmkit.train.methods import warm_start_adapter
    from vlmkit.vacsr import VACSRLoss

    torch.set_num_threads(1)
    cfg = TrainConfig(method="vacsr-joint", noise_ratio=0.25, vacsr={**_SMALL, "warm_epochs": 2}, **_TINY)
    train, _ = load_splits(cfg)
    loaded = load_model("vlmkit-tiny", device="cpu")
    vl = VACSRLoss(cfg.vacsr_config(loaded.embed_dim), batch_size=8)
    hist = warm_start_adapter(cfg, loaded, train, vl, 8)
    assert len(hist) == 2 and vl.adapter.training
    f = encode_dataset(loaded, train)
    ref, _ = train_on_features(f.images, f.texts, torch.as_tensor(train.caption_image), vl.adapter.config, epochs=2,
                               batch_size=8, lr=1e-3, seed=cfg.seed, device="cpu", show_progress=False)
    for (k, a), b in zip(vl.adapter.state_dict().items(), ref.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=k)


@pytest.mark.parametrize("bad, match", [({"warm_start": "random"}, "warm_start"), ({"warm_epochs": 0}, "warm_epochs"),
                                        ({"text_lr_frac": -0.1}, "text_lr_frac"), ({"warm_lr": 0}, "warm_lr")])
def test_joint_recipe_keys_are_validated(bad, match):
    from vlmkit.train.config import TrainConfig

    with pytest.raises(VlmkitError, match=match):
        TrainConfig(method="vacsr-joint", vacsr=bad)
