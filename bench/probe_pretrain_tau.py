"""Probe for issue #20's two missed zero-shot bars (gap ≥ 0.5, i→t R@1 40–70): continue the
stand-in's pretraining on its own web data with τ **fixed** low and watch the modality gap and
zero-shot R@1 on the coco test split (1,000 × 5,000, one-to-one labels) every ``--eval`` steps.

    nice python bench/probe_pretrain_tau.py --tau 0.02 --steps 600 --lr 2e-4 --eval 200

Not a shipped recipe: the shipped stand-in keeps its learned τ (0.068). Prints one JSON line per
evaluation (step, gap, R@1 both ways). bench/README.md ("The premise") has the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

from vlmkit.data.loading import CaptionPairs, ImageTensors, tokenize_all
from vlmkit.data.shapes import make_shapes
from vlmkit.features import encode_dataset
from vlmkit.losses import contrastive_loss
from vlmkit.metrics import evaluate_retrieval, modality_gap
from vlmkit.models.factory import load_model
from vlmkit.pretrain import PretrainConfig
from vlmkit.schedule import warmup_cosine


def evaluate(loaded, test, step: int) -> dict:
    loaded.model.eval()
    f = encode_dataset(loaded, test)
    t = evaluate_retrieval(f.images, f.texts, test.caption_image, method=f"step {step}")
    r1 = {row["direction"]: row["value"] for row in t.to_dict("records") if row["metric"] == "R@1"}
    loaded.model.train()
    return {"step": step, "gap": round(float(modality_gap(f.images, f.texts).distance), 4),
            "i2t_R@1": round(r1["i2t"], 2), "t2i_R@1": round(r1["t2i"], 2), "protocol": t.protocol.iloc[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pretrained", default="stand-in")
    ap.add_argument("--tau", type=float, default=0.02)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--eval", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--images", type=int, default=None, help="pretraining images (default: the shipped stand-in's 30,000)")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    loaded = load_model(pretrained=args.pretrained, device="cpu")
    model = loaded.model.float()
    test = make_shapes("test")
    print(json.dumps(evaluate(loaded, test, 0)), flush=True)
    pc = PretrainConfig()  # the shipped stand-in's own pretraining data
    ds = make_shapes("pretrain", n_images=args.images or pc.n_images, seed=pc.data_seed, captions="web",
                     web_per_image=pc.web_per_image, preset=pc.preset)
    pairs = CaptionPairs(ds, ImageTensors(ds, loaded.preprocess, loaded.preprocess_cfg), tokenize_all(loaded.tokenizer, ds.captions))
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1 / args.tau))
    model.logit_scale.requires_grad_(False)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in params if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in params if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": pc.weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=args.lr)
    for g in opt.param_groups:
        g.setdefault("initial_lr", args.lr)
    sched = warmup_cosine(opt, args.warmup, args.steps)
    gen, order, start = np.random.default_rng(args.seed), np.empty(0, dtype=np.int64), time.time()
    model.train()
    for step in range(args.steps):
        if len(order) < pc.batch_size:
            order = np.concatenate([order, gen.permutation(len(pairs))])
        js, order = order[: pc.batch_size], order[pc.batch_size:]
        x, tokens, _, img = pairs.collate_fast(js)
        img_f, txt_f, scale = model(x, tokens)
        loss = contrastive_loss(logits=scale * img_f @ txt_f.T, positives=img[:, None] == img[None, :])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % args.eval == 0:
            print(json.dumps({**evaluate(loaded, test, step + 1), "loss": round(loss.item(), 3),
                              "seconds": round(time.time() - start)}), flush=True)


if __name__ == "__main__":
    main()
