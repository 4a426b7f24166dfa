"""The Method registry (issue #18): one object per training method owns its loss, its own
parameters, optimiser groups, checkpoint files, noise setting and test scores; the loop,
notebook 02 and the ledger hold no branch on a method's name; and the refactor changed no
run (histories, checkpoint layout and weights equal those recorded on the code before it:
``tests/data/methods_baseline.json``, cases in ``tests/methods_cases.py``)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

from vlmkit.losses import LOSS_PRESETS
from vlmkit.train import METHOD_REGISTRY, METHODS, TrainConfig, get_method
from vlmkit.utils import VlmkitError

os.environ.setdefault("VLMKIT_NO_PROGRESS", "1")
ROOT = Path(__file__).resolve().parents[1]
BASELINE = Path(__file__).resolve().parent / "data" / "methods_baseline.json"


# --------------------------------------------------------------------------- the registry


def test_the_registry_is_the_one_list_of_methods():
    assert METHODS == tuple(METHOD_REGISTRY)
    assert set(METHODS) == set(LOSS_PRESETS) | {"sigmoid", "vacsr-joint"}
    assert METHODS[:2] == ("contrastive", "sigmoid") and METHODS[-1] == "vacsr-joint"
    assert all(get_method(n).name == n for n in METHODS)
    with pytest.raises(VlmkitError, match=r"method 'nope': expected one of contrastive, sigmoid"):
        get_method("nope")
    with pytest.raises(VlmkitError, match=r"TrainConfig.method='nope'"):
        TrainConfig(method="nope")


def test_each_method_says_which_split_it_trains_on():
    clean, noisy = 0.0, 0.2
    assert {n: get_method(n).noise_ratio(clean, noisy) for n in METHODS} == {n: (noisy if n == "vacsr-joint" else clean) for n in METHODS}


def test_config_checks_are_the_methods_own():
    with pytest.raises(VlmkitError, match=r"TrainConfig.loss_overrides=\{'tau': 0.1\}: expected an empty dict for method 'sigmoid'"):
        TrainConfig(method="sigmoid", loss_overrides={"tau": 0.1})
    with pytest.raises(VlmkitError, match=r"TrainConfig.vacsr=\{'lr': 0.1\}: expected an empty dict unless method='vacsr-joint'"):
        TrainConfig(method="m2mix", vacsr={"lr": 0.1})
    with pytest.raises(VlmkitError, match="weight_m2mixx"):
        TrainConfig(method="m2mix", loss_overrides={"weight_m2mixx": 0.1})
    with pytest.raises(VlmkitError, match="both towers are frozen"):
        TrainConfig(method="sigmoid", lr_mult_image=0, lr_mult_text=0)
    TrainConfig(method="vacsr-joint", lr_mult_image=0, lr_mult_text=0)  # the adapter still trains


def test_parameter_groups_come_from_the_method():
    from vlmkit.models import load_model
    from vlmkit.train.loop import _Trainable, build_optimizer

    def groups(cfg):
        m = get_method(cfg.method)
        loaded = load_model("vlmkit-tiny", device="cpu")
        extra = m.build(cfg, loaded, None, 8, torch.device("cpu"), fresh=False)
        opt = build_optimizer(cfg, _Trainable(loaded.model, m.attribute, extra))
        return {g["name"]: (g["lr"], g["weight_decay"], len(g["params"])) for g in opt.param_groups}

    sig = groups(TrainConfig(method="sigmoid", lr=3e-4, weight_decay=0.1))
    assert sig["siglip-head"] == (3e-4, 0.0, 2) and "logit-nodecay" not in sig
    assert sig["image"][:2] == (3e-4, 0.1) and sig["text-nodecay"][:2] == (3e-4, 0.0)
    learn = groups(TrainConfig(method="contrastive", learnable_scale=True, lr=3e-4))
    assert learn["logit-nodecay"] == (3e-4, 0.0, 1) and "siglip-head" not in learn
    assert "logit-nodecay" not in groups(TrainConfig(method="sigmoid", learnable_scale=True, lr=3e-4))  # SigLIP has its own
    joint = groups(TrainConfig(method="vacsr-joint", lr=3e-4, vacsr={"lr": 1e-3, "weight_decay": 0.05}))
    assert joint["vacsr-adapter"][:2] == (1e-3, 0.05) and joint["image"][0] == pytest.approx(1e-5)
    assert joint["text"][0] == pytest.approx(1e-4)


def test_encoder_methods_score_by_cosine_and_register_features():
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(4, 6, generator=g), dim=1)
    txt = torch.nn.functional.normalize(torch.randn(7, 6, generator=g), dim=1)
    for name in METHODS:
        m = get_method(name)
        if m.score_kind != "cosine":
            continue
        scores, unc = m.score("unused", img, txt)
        assert unc is None and scores.shape == (4, 7)
        torch.testing.assert_close(scores, torch.stack([torch.stack([(a * b).sum() for b in txt]) for a in img]))
        assert set(m.test_outputs("unused", img, txt)) == {"img", "txt"}


def test_vacsr_joint_scores_with_its_saved_adapter(tmp_path):
    from vlmkit.vacsr import VACSRAdapter, VACSRConfig, save_adapter, score_all

    torch.manual_seed(0)
    adapter = VACSRAdapter(VACSRConfig(dim=6, enc_hidden=[8], dec_hidden=[8], latent_dim=4)).eval()
    save_adapter(adapter, tmp_path / "vacsr_adapter")
    img, txt = torch.randn(5, 6), torch.randn(9, 6)
    m = get_method("vacsr-joint")
    assert m.score_kind == "logit"
    scores, unc = m.score(tmp_path, img, txt, device="cpu")
    ref_s, ref_u = score_all(adapter, img, txt, device="cpu", show_progress=False)
    torch.testing.assert_close(scores, ref_s)
    torch.testing.assert_close(unc, ref_u)
    assert not torch.allclose(scores, img @ txt.T)
    out = m.test_outputs(tmp_path, img, txt, device="cpu")
    assert set(out) == {"img", "txt", "scores", "uncertainty"}
    torch.testing.assert_close(out["uncertainty"], ref_u)


def test_no_branch_on_a_method_name_outside_the_registry():
    """The loop, notebook 02 and the ledger's scoring call the Method's hooks (issue #18)."""
    names = "|".join(re.escape(n) for n in METHODS)
    branch = re.compile(rf"""(==|!=|\bin)\s*\(?\s*["']({names})["']|["']({names})["']\s*(==|!=)""")
    for rel in ("vlmkit/train/loop.py", "vlmkit/train/config.py", "notebooks/02_finetune.py", "vlmkit/claims/experiments.py"):
        src = (ROOT / rel).read_text()
        # a loop over method names (``for m in ("m2mix", …)``) is not a branch on one
        hits = [line.strip() for line in src.splitlines()
                if branch.search(re.sub(r"\bfor\s+[\w, ]+\s+in\b", "for _ over", line))]
        assert not hits, f"{rel}: {hits}"
    loop = (ROOT / "vlmkit/train/loop.py").read_text()
    assert "vacsr_option" not in loop and "cfg.method ==" not in loop and "LOSS_PRESETS" not in loop  # no per-method switches
    assert branch.search('if name == "vacsr-joint":') and branch.search("m in ('sigmoid', 'x')")  # the check can fail
    assert not branch.search(re.sub(r"\bfor\s+[\w, ]+\s+in\b", "for _ over", 'for m in ("m2mix", "sigmoid")'))


# --------------------------------------------------------------------------- behaviour unchanged


def _baseline() -> dict:
    return json.loads(BASELINE.read_text())


def _close(a, b, path: str = "") -> None:
    """Equal structures; floats to 1e-6 (relative and absolute)."""
    if isinstance(a, dict):
        assert set(a) == set(b), f"{path}: keys {sorted(set(a) ^ set(b))}"
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-6), path
    else:
        assert a == b, path


def test_the_baseline_covers_every_method():
    from methods_cases import CASES

    base = _baseline()
    assert set(base) == set(CASES)
    assert {CASES[c]["method"] for c in CASES} == set(METHODS)
    assert {r["epoch"] for c in base.values() for r in c["history"]} == {1, 2}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(json.loads(BASELINE.read_text())) if BASELINE.is_file() else [])
def test_every_method_trains_as_before_the_registry(tmp_path, case):
    """The tiny run of each case equals the one recorded on the code before issue #18: the
    history row by row (losses, lr, τ, validation R@K), the optimiser groups, the checkpoint's
    keys, a checksum of every trained tensor and the files of ``best/``."""
    from methods_cases import run_case

    torch.set_num_threads(1)
    _close(run_case(case, tmp_path), _baseline()[case], case)
