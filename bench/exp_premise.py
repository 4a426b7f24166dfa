"""The premise of the seed papers in the default world (issue #20): does fine-tuning the shipped
stand-in help?  Zero-shot vs fine-tuned R@1 (1,000 × 5,000 test split, coco preset, one-to-one
labels: the ``full 1000x5000`` protocol), the modality gap and ECE under the authors' protocol
(one caption per image, N × N), for each method and seed, at a :class:`~vlmkit.train.Recipe`
(``workbook`` by default) with any field overridden.

    python bench/exp_premise.py --methods contrastive,sigmoid,m2mix --seeds 0,1,2 --out runs/premise
    python bench/exp_premise.py --methods contrastive --set lr=5e-5 --set epochs=3 --out runs/premise-lr

``--pretrained DIR`` fine-tunes another checkpoint (default: the shipped stand-in).  Prints one row
per (method, seed), then mean ± sd over seeds; writes ``results.csv`` to ``--out``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd


def evaluate(loaded, test) -> dict:
    from vlmkit.features import encode_dataset
    from vlmkit.metrics import bidirectional_recall, modality_gap
    from vlmkit.metrics.calibration import authors_calibration

    f = encode_dataset(loaded, test, cache_dir=None)
    r = bidirectional_recall(f.images @ f.texts.T, test.caption_image, ks=(1,))
    tau = float(1.0 / loaded.model.logit_scale.detach().float().exp())
    cal = authors_calibration(f.images @ f.texts.T, test.caption_image, tau=tau)
    return {"i2t_R@1": 100 * r[("i2t", 1)], "t2i_R@1": 100 * r[("t2i", 1)], "gap": modality_gap(f.images, f.texts).distance,
            "ece_i2t": 100 * cal["i2t"].ece, "conf_i2t": cal["i2t"].mean_confidence, "acc_i2t": cal["i2t"].accuracy}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="contrastive,sigmoid,m2mix")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--recipe", default="workbook")
    ap.add_argument("--set", action="append", default=[], help="FIELD=VALUE overriding the recipe (repeatable)")
    ap.add_argument("--pretrained", default="stand-in")
    ap.add_argument("--out", default="runs/premise")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    from vlmkit.data import make_shapes
    from vlmkit.models import load_model
    from vlmkit.train import TrainConfig, finetune
    from vlmkit.train.config import recipe
    from vlmkit.utils import atomic_to_csv, parse_override

    fields = recipe(args.recipe).train_fields()
    for kv in args.set:
        k, value = parse_override(kv, set(TrainConfig.__dataclass_fields__))
        fields[k] = value
    out = Path(args.out)
    test = make_shapes("test")
    rows = [{"method": "zero-shot", "seed": 0, **evaluate(load_model(pretrained=args.pretrained, device=args.device), test)}]
    print(rows[-1], flush=True)
    for seed in (int(s) for s in args.seeds.split(",")):
        for method in args.methods.split(","):
            cfg = TrainConfig(method=method, pretrained=args.pretrained, data_seed=seed, seed=seed, device=args.device, **fields)
            t0 = time.time()
            res = finetune(cfg, out / f"{method}-s{seed}")
            rows.append({"method": method, "seed": seed, **evaluate(load_model(pretrained=res.best_dir, device=args.device), test),
                         "best_epoch": res.best_epoch, "seconds": round(time.time() - t0, 1)})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print(f"recipe {args.recipe} with {fields}; protocol: full 1000x5000 (one-to-one labels), coco preset test split")
    agg = table.groupby("method")[["i2t_R@1", "t2i_R@1", "gap", "ece_i2t"]].agg(["mean", "std"]).round(2)
    print(agg.to_string())
    atomic_to_csv(table, out / "results.csv")


if __name__ == "__main__":
    main()
