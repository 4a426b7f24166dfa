"""Tiny fine-tuning runs of every method, recorded before the Method registry (issue #18)
replaced the loop's per-method branches; ``tests/test_train_methods.py`` replays them and
asserts the histories, checkpoint layout and weights are unchanged (fixture:
``tests/data/methods_baseline.json``, written by ``python tests/methods_cases.py OUT.json``)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch

TIME_KEYS = ("seconds", "step_ms")
BASE = dict(model="vlmkit-tiny", pretrained=None, train_images=16, val_images=8, batch_size=16, epochs=2, lr=2e-3,
            warmup_frac=0.25, device="cpu", eval_batch_size=64, seed=0)
SMALL_VACSR = {"enc_hidden": [16], "dec_hidden": [16], "latent_dim": 4, "lr": 1e-3, "warm_epochs": 1}
METHOD_NAMES = ("contrastive", "sigmoid", "m2mix", "m2mix-linear", "vmix", "lmix", "vlmix", "all", "vacsr-joint")
CASES: dict[str, dict] = {m: {**BASE, "method": m, **({"vacsr": SMALL_VACSR} if m == "vacsr-joint" else {})} for m in METHOD_NAMES}
CASES["contrastive-learnable-scale-noisy"] = {**BASE, "method": "contrastive", "learnable_scale": True, "noise_ratio": 0.25,
                                              "temperature": 0.05}
CASES["m2mix-overrides-frozen-image"] = {**BASE, "method": "m2mix", "loss_overrides": {"tau": 0.03}, "freeze": "image"}
CASES["vacsr-joint-cosine-infonce"] = {**BASE, "method": "vacsr-joint",
                                       "vacsr": {**SMALL_VACSR, "contrastive_weight": 0.5, "schedule": "cosine", "warm_start": "none",
                                                 "text_lr_frac": None, "weight_decay": 0.01}}


def summarise(res, out_dir: Path) -> dict:
    """What must not change: the history (less wall-clock fields), the checkpoint's keys and
    optimiser groups, a checksum of every trained tensor, and the files of ``best/``."""
    ckpt = torch.load(out_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
    groups = [{k: v for k, v in g.items() if k in ("name", "lr", "initial_lr", "weight_decay")} | {"n": len(g["params"])}
              for g in ckpt["optimizer"]["param_groups"]]
    best_meta = json.loads((out_dir / "best" / "open_clip_config.json").read_text())["vlmkit"]
    return {"history": [{k: v for k, v in row.items() if k not in TIME_KEYS} for row in res.history],
            "best_epoch": res.best_epoch,
            "checkpoint_keys": sorted(ckpt),
            "trainable": {k: float(v.double().abs().sum()) for k, v in sorted(ckpt["trainable"].items())},
            "param_groups": groups,
            "best_files": sorted(str(p.relative_to(out_dir / "best")) for p in (out_dir / "best").rglob("*") if p.is_file()),
            "best_meta_keys": sorted(best_meta)}


def run_case(name: str, root: Path) -> dict:
    from vlmkit.train import TrainConfig, finetune

    res = finetune(TrainConfig(**CASES[name]), root / name)
    return summarise(res, root / name)


if __name__ == "__main__":
    torch.set_num_threads(1)
    out = {}
    for name in CASES:
        with tempfile.TemporaryDirectory() as d:
            out[name] = run_case(name, Path(d))
        print(name, out[name]["history"][-1]["train_loss"], flush=True)
    Path(sys.argv[1]).write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
