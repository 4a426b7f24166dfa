"""Jointly trained VACSR (``vacsr-joint``) against ``sigmoid`` fine-tuning at the workbook's budget
(issue #19, item 4): notebook 02's defaults — 2,000 embedded training images (5 captions each),
200 validation images, noise 0.2, 2 epochs, batch 128, lr 5e-4, seed 0 — on the shipped stand-in.

Each method is fine-tuned by :func:`vlmkit.train.finetune`; the best-RSUM checkpoint encodes the
full test split (1,000 images × 5,000 captions); ``vacsr-joint`` ranks the pairs by its adapter
(:func:`vlmkit.vacsr.score_all`), the others by cosine. Reported: R@1/5/10 under the COCO 5K
protocol applied to the whole split (one-to-one labels, ``full 1000x5000``) and mAP@R over exact
extended positives (ECCV-style), plus wall time.

    python bench/exp_vacsr_joint.py --methods sigmoid,vacsr-joint --out runs/exp-vacsr-joint
    python bench/exp_vacsr_joint.py --methods vacsr-joint --vacsr '{"warm_start": "none", "text_lr_frac": null, "image_lr_frac": null}'
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="sigmoid,vacsr-joint")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train-images", type=int, default=2000)
    ap.add_argument("--val-images", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--noise", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vacsr", default="{}", help="JSON: TrainConfig.vacsr for vacsr-joint (loop keys and VACSRConfig fields)")
    ap.add_argument("--tag", default="", help="suffix of the vacsr-joint row's name and output folder")
    ap.add_argument("--out", default="runs/exp-vacsr-joint")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)

    from vlmkit.data import make_shapes
    from vlmkit.features import encode_dataset
    from vlmkit.metrics import evaluate_similarity
    from vlmkit.models import load_model
    from vlmkit.train import TrainConfig, finetune
    from vlmkit.utils import atomic_to_csv
    from vlmkit.vacsr import load_adapter, score_all

    out = Path(args.out)
    test = make_shapes("test")
    frames, timing = [], {}
    for method in args.methods.split(","):
        vacsr = json.loads(args.vacsr) if method == "vacsr-joint" else {}
        name = method + (args.tag if method == "vacsr-joint" else "")
        cfg = TrainConfig(method=method, pretrained="stand-in", dataset="shapes", train_images=args.train_images,
                          val_images=args.val_images, noise_ratio=args.noise, epochs=args.epochs, batch_size=args.batch_size,
                          lr=args.lr, seed=args.seed, data_seed=args.seed, device=args.device, vacsr=vacsr)
        t0 = time.time()
        res = finetune(cfg, out / f"{name}-s{args.seed}")
        timing[name] = {"seconds": round(time.time() - t0, 1), "step_ms": res.history[-1]["step_ms"], "best_epoch": res.best_epoch,
                        "val": [{k: round(v, 2) for k, v in r.items() if k in ("epoch", "i2t_r1", "t2i_r1", "rsum")} for r in res.history]}
        tuned = load_model(pretrained=res.best_dir, device=args.device)
        f = encode_dataset(tuned, test)
        if method == "vacsr-joint":
            s, _ = score_all(load_adapter(res.best_dir / "vacsr_adapter"), f.images, f.texts, device=args.device, show_progress=False)
        else:
            s = f.images @ f.texts.T
        frames.append(evaluate_similarity(s, test.caption_image, positives=test, protocols=("coco5k", "eccv"), method=name))
    table = pd.concat(frames, ignore_index=True)
    print(f"noise {args.noise}, {args.train_images} train images, {args.epochs} epochs, batch {args.batch_size}, lr {args.lr}, "
          f"seed {args.seed}, vacsr {args.vacsr}")
    for protocol, metrics in (("full 1000x5000", ["R@1", "R@5", "R@10"]), (None, ["mAP@R"])):
        part = table[(table.protocol == protocol) if protocol else table.protocol.str.startswith("extended")]
        part = part[part.metric.isin(metrics)]
        print(f"protocol: {part.protocol.iloc[0]}")
        print(part.pivot(index="method", columns=["direction", "metric"], values="value").round(2).to_string())
    print(json.dumps(timing, indent=1))
    atomic_to_csv(table, out / f"results-s{args.seed}{args.tag}.csv")


if __name__ == "__main__":
    main()
