"""Probe for issue #20's zero-shot bars (modality gap ≥ 0.5, i→t R@1 40–70): run a pretraining
stage (:data:`vlmkit.pretrain.STAGES`, any field overridden) and watch the modality gap and zero-shot
R@1 on the coco test split (1,000 × 5,000, one-to-one labels) every ``--eval`` steps.

    nice python bench/probe_pretrain_tau.py --out /tmp/probe --eval 100                  # the shipped stand-in's stage
    nice python bench/probe_pretrain_tau.py --out /tmp/probe --web-dense 0 --steps 600   # τ = 0.02 alone

Training is :func:`vlmkit.pretrain.pretrain_tiny` itself (resumable in ``--out``); this script only
evaluates along the way.  Prints one JSON line per evaluation (step, gap, R@1 both ways).
bench/README.md ("The premise") has the figures.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace

from vlmkit.data.shapes import make_shapes
from vlmkit.features import encode_dataset
from vlmkit.metrics import evaluate_retrieval, modality_gap
from vlmkit.models.factory import load_model
from vlmkit.pretrain import STAGES, pretrain_tiny


def evaluate(loaded, test, step: int) -> dict:
    was_training = loaded.model.training
    loaded.model.eval()
    f = encode_dataset(loaded, test, cache_dir=None)
    t = evaluate_retrieval(f.images, f.texts, test.caption_image, method=f"step {step}")
    r1 = {row["direction"]: row["value"] for row in t.to_dict("records") if row["metric"] == "R@1"}
    loaded.model.train(was_training)
    return {"step": step, "gap": round(float(modality_gap(f.images, f.texts).distance), 4),
            "i2t_R@1": round(r1["i2t"], 2), "t2i_R@1": round(r1["t2i"], 2), "protocol": t.protocol.iloc[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="the stage's output directory (resumable)")
    ap.add_argument("--stage", choices=sorted(STAGES), default="stand-in")
    ap.add_argument("--eval", type=int, default=100, help="evaluate every this many steps")
    for name, value in asdict(STAGES["stand-in"]).items():
        if name in ("steps", "lr", "warmup_steps", "fixed_tau", "web_dense", "seed", "n_images", "init_from"):
            kind = str if name == "init_from" else float if name in ("fixed_tau", "web_dense", "lr") else int
            ap.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None)
    args = vars(ap.parse_args())
    out, stage, every = args.pop("out"), args.pop("stage"), args.pop("eval")
    cfg = replace(STAGES[stage], **{k: v for k, v in args.items() if v is not None})
    test, start = make_shapes("test"), time.time()
    if cfg.init_from:
        print(json.dumps(evaluate(load_model(pretrained=cfg.init_from, device="cpu"), test, 0)), flush=True)

    def on_step(done: int, loaded) -> None:
        if done % every == 0:
            print(json.dumps({**evaluate(loaded, test, done), "seconds": round(time.time() - start)}), flush=True)

    pretrain_tiny(out, cfg, device="cpu", on_step=on_step)


if __name__ == "__main__":
    main()
