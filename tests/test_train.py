"""The fine-tuning loop: losses go down, resume == uninterrupted, DDP == single process,
bad configurations fail early, WiSE-FT endpoints, atomic checkpoints."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vlmkit.models import load_model, wise_ft
from vlmkit.train import TrainConfig, finetune
from vlmkit.train.loop import CHECKPOINT, TIME_KEYS
from vlmkit.utils import VlmkitError

os.environ.setdefault("VLMKIT_NO_PROGRESS", "1")
TINY = dict(model="vlmkit-tiny", pretrained=None, train_images=8, val_images=6, batch_size=8, device="cpu", warmup_frac=0.0, eval_batch_size=64)
SMALL_VACSR = {"enc_hidden": [16], "dec_hidden": [16], "latent_dim": 4, "lr": 1e-3}


def _same_history(a: list[dict], b: list[dict], tol: float = 0.0) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        ka = {k for k in ra if k not in TIME_KEYS}
        assert ka == {k for k in rb if k not in TIME_KEYS}
        for k in ka:
            if isinstance(ra[k], float) and tol:
                assert ra[k] == pytest.approx(rb[k], rel=tol, abs=tol), k
            else:
                assert ra[k] == rb[k], k


def _weights(out_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(out_dir / CHECKPOINT, map_location="cpu", weights_only=False)["trainable"]


@pytest.mark.parametrize("method", ["contrastive", "sigmoid", "m2mix", "all", "vacsr-joint"])
def test_each_method_lowers_its_loss(tmp_path, method):
    torch.set_num_threads(1)
    cfg = TrainConfig(method=method, epochs=3, lr=2e-3, **TINY, vacsr=SMALL_VACSR if method == "vacsr-joint" else {})
    res = finetune(cfg, tmp_path / method)
    losses = [row["train_loss"] for row in res.history]
    assert losses[-1] < losses[0], losses
    assert (tmp_path / method / "best" / "open_clip_model.safetensors").is_file()
    if method == "vacsr-joint":
        assert (tmp_path / method / "best" / "vacsr_adapter").is_dir()
    hist = json.loads((tmp_path / method / "history.json").read_text())
    assert [r["epoch"] for r in hist] == [1, 2, 3]
    assert (tmp_path / method / "history.csv").read_text().startswith("epoch,")
    assert res.best_rsum == max(r["rsum"] for r in hist)


def test_learnable_scale_and_partial_freeze(tmp_path):
    torch.set_num_threads(1)
    cfg = TrainConfig(method="contrastive", learnable_scale=True, freeze="image", epochs=1, lr=1e-3, **TINY)
    torch.manual_seed(cfg.seed)
    start = load_model("vlmkit-tiny", device="cpu").model.state_dict()
    finetune(cfg, tmp_path / "r")
    end = {k.removeprefix("clip."): v for k, v in _weights(tmp_path / "r").items()}
    assert all(torch.equal(start[k], end[k]) for k in start if k.startswith("visual."))
    assert not torch.equal(start["logit_scale"], end["logit_scale"])
    assert not torch.equal(start["text_projection"], end["text_projection"])


def test_resume_equals_uninterrupted(tmp_path):
    torch.set_num_threads(1)
    cfg = TrainConfig(method="m2mix", epochs=2, lr=1e-3, **{**TINY, "train_images": 16, "warmup_frac": 0.25})
    straight = finetune(cfg, tmp_path / "straight")
    first = finetune(cfg, tmp_path / "killed", stop_after_epochs=1)  # "killed" after epoch 1
    assert len(first.history) == 1
    # an interrupted write of the next checkpoint leaves a .tmp that nothing reads
    (tmp_path / "killed" / f".{CHECKPOINT}.abc123.tmp").write_bytes(b"half a checkpoint")
    resumed = finetune(cfg, tmp_path / "killed")
    _same_history(straight.history, resumed.history)
    wa, wb = _weights(tmp_path / "straight"), _weights(tmp_path / "killed")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert resumed.best_epoch == straight.best_epoch
    # resuming with another configuration is refused
    with pytest.raises(VlmkitError, match="different configuration"):
        finetune(TrainConfig(method="m2mix", epochs=2, lr=5e-4, **{**TINY, "train_images": 16}), tmp_path / "killed")


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    cfg = TrainConfig(method="contrastive", epochs=2, **TINY)
    finetune(cfg, tmp_path / "r", stop_after_epochs=1)
    before = torch.load(tmp_path / "r" / CHECKPOINT, weights_only=False)["epoch"]

    real_save = torch.save

    def crash(obj, f, *a, **k):  # write some bytes, then die mid-save
        Path(f).write_bytes(b"garbage")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        finetune(cfg, tmp_path / "r")
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(tmp_path / "r" / CHECKPOINT, weights_only=False)["epoch"] == before == 1
    assert not list((tmp_path / "r").glob("*.tmp")) and not list((tmp_path / "r").glob(".*.tmp"))
    # a directory holding only a leftover .tmp starts fresh
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / f".{CHECKPOINT}.x.tmp").write_bytes(b"junk")
    assert len(finetune(TrainConfig(method="contrastive", epochs=1, **TINY), tmp_path / "fresh").history) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_processes_match_single_process(tmp_path):
    """torchrun, 2 CPU processes (gloo), batch 16 = 2 × 8 with gathered features in local-loss
    mode, vs one process with batch 16: same history and weights within 1e-4 (float32 sums
    in another order)."""
    torch.set_num_threads(1)
    kw = dict(method="m2mix", model="vlmkit-tiny", pretrained=None, epochs=1, lr=1e-3, train_images=16, val_images=6, batch_size=16,
              device="cpu", warmup_frac=0.0)
    single = finetune(TrainConfig(**kw), tmp_path / "single")
    env = {**os.environ, "VLMKIT_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    args = []
    for k, v in kw.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "-m", "vlmkit.train", "--out", str(tmp_path / "ddp"), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=Path(__file__).parents[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp_hist = json.loads((tmp_path / "ddp" / "history.json").read_text())
    _same_history(single.history, ddp_hist, tol=1e-4)
    ckpt = torch.load(tmp_path / "ddp" / CHECKPOINT, weights_only=False)
    assert ckpt["world_size"] == 2
    wa, wb = _weights(tmp_path / "single"), ckpt["trainable"]
    for k in wa:
        a, b = wa[k], wb[k]
        if k.endswith("attn.in_proj_bias"):
            # the key bias has an exactly-zero true gradient (softmax is shift-invariant), so
            # Adam turns float noise into steps of up to lr: compare it within lr × steps
            d = a.numel() // 3
            assert (a[d : 2 * d] - b[d : 2 * d]).abs().max() <= kw["lr"] * ckpt["step"], k
            a, b = torch.cat([a[:d], a[2 * d :]]), torch.cat([b[:d], b[2 * d :]])
        # Adam divides by sqrt(v): where a gradient is nearly zero, float noise of another summation
        # order moves a weight by a visible fraction of lr (1e-3). A wrong gradient moves whole
        # tensors by ~lr; float noise moves a few elements by far less, and the mean not at all.
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4, msg=k)
        assert (a - b).abs().mean() < 1e-6, k


@pytest.mark.parametrize("kw, match", [
    (dict(method="nope"), "method"),
    (dict(method="m2mix", loss_overrides={"weight_m2mix": -0.1}), "weight_m2mix"),
    (dict(method="m2mix", loss_overrides={"alpha_m2mix": 0.0}), "alpha_m2mix"),
    (dict(method="m2mix", loss_overrides={"bogus": 1}), "bogus"),
    (dict(batch_size=1), "batch_size"),
    (dict(epochs=0), "epochs"),
    (dict(train_images=0), "train_images"),
    (dict(lr=-1.0), "lr"),
    (dict(freeze="both"), "freeze"),
    (dict(freeze="image", lr_mult_text=0.0), "frozen"),
    (dict(noise_ratio=1.5), "noise_ratio"),
    (dict(method="vacsr-joint", vacsr={"lr": 0}), "lr"),
    (dict(method="vacsr-joint", vacsr={"latent_dmi": 3}), "latent_dmi"),
    (dict(vacsr={"lr": 1e-3}), "vacsr"),
    (dict(captions_per_image=0), "captions_per_image"),
    (dict(captions_per_image=1.5), "captions_per_image"),
])
def test_bad_config_fails_early(kw, match):
    with pytest.raises(VlmkitError, match=match):
        TrainConfig(**kw)


def test_bad_data_fails_before_training(tmp_path):
    with pytest.raises(VlmkitError, match="exceeds"):
        finetune(TrainConfig(train_images=2, batch_size=16, device="cpu"), tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(VlmkitError):
        finetune(TrainConfig(dataset="nonsense-kind", device="cpu"), tmp_path / "y")


def test_cli_rejects_bad_config(capsys):
    from vlmkit.train.__main__ import main

    assert main(["--out", "/nonexistent/never", "--method", "m2mix", "--epochs", "0"]) == 2
    assert "epochs" in capsys.readouterr().err


def test_wise_ft_endpoints_and_midpoint():
    torch.manual_seed(0)
    a = load_model("vlmkit-tiny", device="cpu")
    torch.manual_seed(1)
    b = load_model("vlmkit-tiny", device="cpu")
    sa, sb = a.model.state_dict(), b.model.state_dict()
    for alpha, expect in ((0.0, sa), (1.0, sb)):
        s = wise_ft(a, b, alpha).model.state_dict()
        assert all(torch.equal(s[k], expect[k]) for k in s)
    mid = wise_ft(a, b, 0.5).model.state_dict()
    for k in mid:
        if mid[k].is_floating_point():
            torch.testing.assert_close(mid[k], (sa[k] + sb[k]) / 2)
    assert all(torch.equal(b.model.state_dict()[k], sb[k]) for k in sb)  # inputs untouched
    with pytest.raises(VlmkitError, match="alpha"):
        wise_ft(a, b, 1.5)


def test_gradient_checkpointing_and_eval_mode_train_the_same_weights(tmp_path):
    """Checkpointing recomputes activations: same result as without; the tiny model has no
    dropout, so eval mode must not change the weights either (it only switches module modes)."""
    torch.set_num_threads(1)
    runs = {}
    for name, kw in (("plain", {}), ("ckpt", {"grad_checkpointing": True}), ("eval", {"eval_mode": True})):
        finetune(TrainConfig(method="contrastive", epochs=1, lr=1e-3, **TINY, **kw), tmp_path / name)
        runs[name] = _weights(tmp_path / name)
    for name in ("ckpt", "eval"):
        for k, v in runs["plain"].items():
            torch.testing.assert_close(runs[name][k], v, rtol=1e-5, atol=1e-6, msg=f"{name}: {k}")


def test_noisy_correspondence_permutes_the_requested_share():
    from vlmkit.train import load_splits

    clean, _ = load_splits(TrainConfig(train_images=40, val_images=6, device="cpu"))
    noisy, val = load_splits(TrainConfig(train_images=40, val_images=6, noise_ratio=0.5, device="cpu"))
    assert int(noisy.caption_meta["moved"].sum()) == 100  # 50 % of 200 captions moved to another slot
    assert int(noisy.caption_meta["noisy"].sum()) <= 100  # of which those not true of their labelled image
    changed = sum(a != b for a, b in zip(clean.captions, noisy.captions))
    assert 90 <= changed <= 100  # a moved caption can land on an identical text ("two shapes")
    assert sorted(clean.captions) == sorted(noisy.captions)
    assert val.num_images == 6


def test_captions_per_image_one_gives_one_step_pair_per_image(tmp_path):
    """The m²-Mix authors' epoch: the first caption of each image, each image exactly once."""
    import numpy as np

    from vlmkit.train import load_splits
    from vlmkit.train.loop import epoch_batches, training_captions

    cfg = TrainConfig(train_images=16, val_images=6, batch_size=4, captions_per_image=1, device="cpu")
    train, _ = load_splits(cfg)
    ci = np.asarray(train.caption_image)
    first = {int(i): int(np.flatnonzero(ci == i)[0]) for i in range(train.num_images)}
    for epoch in (0, 1):
        batches = epoch_batches(cfg, training_captions(cfg, train), epoch)
        js = np.concatenate(batches)
        assert len(batches) == 4 and sorted(ci[js].tolist()) == list(range(16))  # one pair per image
        assert all(first[int(ci[j])] == j for j in js)  # ... with its first caption
    two = TrainConfig(**{**cfg.to_dict(), "captions_per_image": 2})
    js = np.concatenate(epoch_batches(two, training_captions(two, train), 0))
    assert np.bincount(ci[js], minlength=16).tolist() == [2] * 16
    full = TrainConfig(**{**cfg.to_dict(), "captions_per_image": None})
    assert sum(map(len, epoch_batches(full, training_captions(full, train), 0))) == train.num_captions
    # the loop trains on exactly those pairs: 8 images, batch 8 → one step an epoch (not five)
    torch.set_num_threads(1)
    res = finetune(TrainConfig(method="contrastive", epochs=2, captions_per_image=1, **TINY), tmp_path / "r")
    assert [r["step"] for r in res.history] == [1, 2]


def test_warmup_cosine_is_a_torch_scheduler_with_the_clip_numbers():
    import math

    from vlmkit.schedule import warmup_cosine

    def ref(s, warm, total):  # linear warm-up, then cosine to 0 (held at 0 past total)
        return (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warm) / max(1, total - warm))))

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([{"params": [p], "lr": 2e-3}, {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 1e-4}])
    sched = warmup_cosine(opt, 3, 10)
    assert isinstance(sched, torch.optim.lr_scheduler.LambdaLR)
    for s in range(12):
        assert opt.param_groups[0]["lr"] == pytest.approx(2e-3 * ref(s, 3, 10), rel=1e-12, abs=1e-18), s
        assert opt.param_groups[1]["lr"] == pytest.approx(1e-4 * ref(s, 3, 10), rel=1e-12, abs=1e-18), s
        opt.step()
        sched.step()
    assert [round(ref(s, 3, 10), 6) for s in (0, 2, 3, 10)] == [0.333333, 1.0, 1.0, 0.0]
    # rebuilt mid-run (resume): the same lr at the same step
    rebuilt = warmup_cosine(opt, 3, 10, last_step=5)
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-3 * ref(6, 3, 10), rel=1e-12)
    assert rebuilt.last_epoch == 6
    with pytest.raises(VlmkitError, match="warmup_steps"):
        warmup_cosine(opt, 11, 10)


def test_the_loop_follows_the_scheduler_and_not_pretrain():
    """The fine-tuning loop takes its schedule from vlmkit.schedule (through the run's
    Method, vlmkit.train.methods), not from the stand-in pretraining module."""
    import ast
    import inspect

    from vlmkit.train import loop, methods

    def imported(mod) -> set:
        return {n.module for n in ast.walk(ast.parse(inspect.getsource(mod))) if isinstance(n, ast.ImportFrom)}

    assert not {"pretrain", ".pretrain"} & (imported(loop) | imported(methods)) and "schedule" in imported(methods)
    assert "methods" in imported(loop) and not hasattr(loop, "cosine_lr") and not hasattr(methods, "cosine_lr")
    assert methods.warmup_cosine.__module__ == "vlmkit.schedule"


def test_step_decay_is_the_one_step_schedule_of_vacsr_training():
    from vlmkit.schedule import step_decay

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.5)
    sched = step_decay(opt, 3)
    seen = []
    for _ in range(5):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.5, 0.5, 0.5, 0.05, 0.05])
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    opt2.param_groups[0]["initial_lr"] = 0.5
    assert step_decay(opt2, 3, last_step=3).optimizer.param_groups[0]["lr"] == pytest.approx(0.05)  # rebuilt mid-run
    with pytest.raises(VlmkitError, match="at="):
        step_decay(opt, -1)


# the m²-Mix authors' recipe (changdaeoh/multimodal-mixup main.py, docs/design.md) for TrainConfig's fields
AUTHORS_RECIPE = {"lr": 1e-5, "epochs": 9, "weight_decay": 0.2, "grad_clip": 0.0, "eval_mode": True, "captions_per_image": 1,
                  "batch_size": 128, "warmup_frac": 0.1, "temperature": None, "noise_ratio": 0.0, "train_images": 113_287,
                  "val_images": 5000}  # temperature None: the model's own learned τ (CLIP's is their 0.01); clean data


def test_the_authors_recipe_is_the_registered_one():
    from vlmkit.train import RECIPES

    assert {k: getattr(RECIPES["authors"], k) for k in AUTHORS_RECIPE} == AUTHORS_RECIPE


def test_every_default_that_departs_from_the_authors_recipe_is_listed_with_its_reason():
    import dataclasses

    from vlmkit.train import TrainConfig

    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    doc = TrainConfig.__doc__
    departing = doc.split("Defaults that depart from")[1].split("Same as the authors")[0]
    import ast
    import re

    listed = {}  # name -> (value written in the docstring, the bullet's text)
    for bullet in departing.split("\n    * ")[1:]:
        m = re.match(r"``(\w+)=([^`]+)``", bullet)
        if m and m.group(1) != "amp":
            listed[m.group(1)] = (ast.literal_eval(m.group(2)), bullet)
    for name, theirs in AUTHORS_RECIPE.items():
        ours = defaults[name]
        if ours != theirs:  # listed as ``name=ours`` (authors …): the reason
            assert name in listed, f"TrainConfig.{name}={ours} departs from the authors' {theirs} but is not listed"
            value, bullet = listed[name]
            assert value == ours, f"the docstring says {name}={value}, the default is {ours}"
            assert "authors" in bullet and len(bullet.split(":", 1)[-1].split()) >= 5, bullet  # what they use, and why
        else:
            assert name not in listed, f"{name} is listed as departing but equals the authors' {theirs}"
    assert "``amp=" in departing  # fp16 weights vs autocast: not a plain field value


# ------------------------------------------------------------------ one named recipe
def test_trainconfig_notebook_02_quick_and_ledger_derive_from_the_recipes():
    """TrainConfig's defaults are the workbook recipe, notebook 02's parameter defaults too (papermill
    values: 0 for None), ``vlmkit run --quick`` takes the quick recipe's sizes, the ledger its own."""
    import ast
    import dataclasses
    from pathlib import Path

    from vlmkit.claims import LedgerConfig
    from vlmkit.cli import QUICK
    from vlmkit.train import RECIPES, TrainConfig, recipe

    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    assert {k: defaults[k] for k in RECIPES["workbook"].train_fields()} == RECIPES["workbook"].train_fields()
    src = (Path(__file__).resolve().parent.parent / "notebooks" / "02_finetune.py").read_text()
    cell = src.split('# %% tags=["parameters"]')[1].split("# %%")[0]
    params = {n.target.id: ast.literal_eval(n.value) for n in ast.parse(cell).body if isinstance(n, ast.AnnAssign)}
    wanted = RECIPES["workbook"].notebook_params()
    assert {k: params[k] for k in wanted} == wanted
    assert {k: QUICK[k] for k in RECIPES["quick"].notebook_params()} == RECIPES["quick"].notebook_params()
    led, r = LedgerConfig(), RECIPES["ledger"]
    assert (led.train_images, led.val_images, led.epochs, led.batch_size, led.lr, led.captions_per_image, led.noise) == (
        r.train_images, r.val_images, r.epochs, r.batch_size, r.lr, r.captions_per_image, r.noise_ratio_vacsr)
    # frozen-feature VACSR: notebook 02's vacsr_epochs / vacsr_batch above, the ledger's here, --quick's in QUICK
    assert (led.vacsr_epochs, led.vacsr_batch_size) == (r.vacsr_epochs, r.vacsr_batch)
    assert "vacsr_epochs" in RECIPES["quick"].notebook_params() and "vacsr_batch" in wanted
    tc = led.train_config("m2mix", 0.2, 1)
    assert (tc.eval_mode, tc.temperature, tc.warmup_frac, tc.lr) == (r.eval_mode, r.temperature, r.warmup_frac, r.lr)
    with pytest.raises(VlmkitError, match="recipe"):
        recipe("nope")


@pytest.mark.parametrize("temperature", [None, 0.02])
def test_the_base_loss_runs_at_the_models_own_tau_unless_set(tmp_path, temperature):
    import math

    from vlmkit.models import learned_temperature, load_model
    from vlmkit.train import TrainConfig, finetune

    res = finetune(TrainConfig(method="m2mix", epochs=1, lr=1e-3, temperature=temperature, **TINY), tmp_path / "t")
    init = load_model("vlmkit-tiny", None, device="cpu")  # random init: logit_scale = log(1 / 0.07)
    expected = learned_temperature(init) if temperature is None else temperature
    assert res.history[0]["tau"] == pytest.approx(expected, rel=1e-6)
    assert temperature is not None or math.isclose(expected, 0.07, rel_tol=1e-3)
    with pytest.raises(VlmkitError, match="temperature"):
        TrainConfig(temperature=0.0)
