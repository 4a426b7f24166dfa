"""Zero-shot vs fine-tuned retrieval on the embedded test split (issue #4, item 7).

Loads the shipped stand-in CLIP (``pretrained="stand-in"``), then fine-tunes it with each method through
:func:`vlmkit.train.finetune` on the (optionally noisy) embedded train split, and evaluates the
best checkpoint of each on the full test split (1,000 images × 5,000 captions):
R@1/5/10 + RSUM under the COCO 5K protocol applied to the whole split (one-to-one labels,
named ``full 1000x5000``) and mAP@R over exact extended positives (ECCV-style).

    python bench/exp_finetune.py --methods contrastive,m2mix --lr 1e-4 --epochs 2 --out runs/exp-ft

``--preset stress`` runs on the false-negative-heavy preset instead of the default coco one.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="contrastive")
    ap.add_argument("--lr", default="1e-4", help="comma-separated learning rates")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train-images", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--noise", type=float, default=0.2)
    ap.add_argument("--out", default="runs/exp-finetune")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--preset", default="coco", choices=["coco", "stress"])
    ap.add_argument("--captions-per-image", type=int, default=None)
    args = ap.parse_args(argv)

    from vlmkit.data import make_shapes
    from vlmkit.features import encode_dataset
    from vlmkit.metrics import evaluate_similarity
    from vlmkit.models import load_model
    from vlmkit.train import TrainConfig, finetune
    from vlmkit.utils import atomic_to_csv

    out = Path(args.out)
    pre = load_model(pretrained="stand-in", device=args.device)
    test = make_shapes("test", preset=args.preset)

    def evaluate(loaded, name: str) -> pd.DataFrame:
        f = encode_dataset(loaded, test)
        return evaluate_similarity(f.images @ f.texts.T, test.caption_image, positives=test, protocols=("coco5k", "eccv"), method=name)

    frames = [evaluate(pre, "zero-shot")]
    timing = {}
    for method in args.methods.split(","):
        for lr in (float(x) for x in args.lr.split(",")):
            name = f"{method} lr={lr:g}"
            cfg = TrainConfig(method=method, pretrained="stand-in", dataset=f"shapes:{args.preset}", train_images=args.train_images,
                              noise_ratio=args.noise, epochs=args.epochs, batch_size=args.batch_size, lr=lr, device=args.device,
                              captions_per_image=args.captions_per_image)
            t0 = time.time()
            res = finetune(cfg, out / f"{method}-lr{lr:g}")
            timing[name] = {"seconds": round(time.time() - t0, 1), "step_ms": res.history[-1]["step_ms"], "best_epoch": res.best_epoch}
            frames.append(evaluate(load_model(pretrained=res.best_dir, device=args.device), name))
    table = pd.concat(frames, ignore_index=True)
    print(f"preset {args.preset}, noise {args.noise}, {args.train_images} train images, {args.epochs} epochs, batch {args.batch_size}, "
          f"captions per image {args.captions_per_image or 'all'}")
    for protocol, metrics in (("full 1000x5000", ["R@1", "R@5", "R@10", "RSUM"]), (None, ["mAP@R", "R-P", "R@1"])):
        part = table[(table.protocol == protocol) if protocol else table.protocol.str.startswith("extended")]
        part = part[part.metric.isin(metrics)]
        wide = part.pivot(index="method", columns=["direction", "metric"], values="value").round(2)
        print(f"protocol: {part.protocol.iloc[0]}")
        print(wide.to_string())
    print(json.dumps(timing, indent=1))
    atomic_to_csv(table, out / "results.csv")  # creates out/


if __name__ == "__main__":
    main()
