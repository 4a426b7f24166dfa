"""VACSR as written vs its ablations on frozen features (issue #19, item 6; bench/README.md, VACSR).

Methods, all on the shipped stand-in's frozen features of the same noisy embedded training split
(notebook 02's defaults: 2,000 images × 5 captions, noise 0.2; adapter 3 epochs, batch 128,
lr 1e-3 — the workbook's frozen-feature VACSR), scored exactly on the full test split
(1,000 images × 5,000 captions):

- ``vacsr`` — the paper's adapter (``VACSRConfig()``, mechanism "paper": σ² = latent variance);
- ``vacsr-hetero`` — the ablation with σ² a decoder output and the heteroscedastic reconstruction;
- ``plain-sigmoid-mlp`` — the same MLP with the variational parts off (``VACSRConfig.plain_sigmoid``);
- ``cosine`` — the frozen encoder's own ranking (no σ²).

Per seed (the adapter's training seed; the data are fixed): R@1 under one-to-one labels (the
paper's protocol), mAP@R under the exact truth (extended positives), Fig. 3 Pearson r (top-1 σ²,
10 equal-width bins, labels) and its control (−score), FN-vs-TN AUROC of σ² and of the score
(control), σ²'s 5–95 % range, and training seconds per epoch. Prints mean ± sd over seeds as a
markdown table and writes ``results.csv`` (one row per method and seed).

    nice python bench/exp_vacsr_frozen.py --seeds 0,1,2 --out runs/exp-vacsr-frozen
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default="vacsr,vacsr-hetero,plain-sigmoid-mlp,cosine")
    ap.add_argument("--train-images", type=int, default=2000)
    ap.add_argument("--test-images", type=int, default=None, help="default: the full test split (1,000)")
    ap.add_argument("--noise", type=float, default=0.2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--out", default="runs/exp-vacsr-frozen")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)

    from vlmkit.data import inject_noise, make_shapes
    from vlmkit.features import encode_dataset
    from vlmkit.metrics import false_negative_auroc_with_control, uncertainty_by_pair_type
    from vlmkit.models import load_model
    from vlmkit.utils import atomic_to_csv
    from vlmkit.vacsr import VACSRConfig, fig3_report, map_at_r, recall_at_1, score_all, train_on_features

    out = Path(args.out)
    model = load_model(pretrained="stand-in", device=args.device)
    train = inject_noise(make_shapes("train", n_images=args.train_images), args.noise)
    test = make_shapes("test", n_images=args.test_images)
    ftr = encode_dataset(model, train, cache_dir=out / "features")
    fte = encode_dataset(model, test, cache_dir=out / "features")
    labels, truth = torch.from_numpy(test.labels()), torch.from_numpy(test.positives())
    dim = int(ftr.images.shape[1])
    configs = {"vacsr": VACSRConfig(dim=dim), "vacsr-hetero": VACSRConfig(dim=dim, mechanism="hetero"),
               "plain-sigmoid-mlp": VACSRConfig.plain_sigmoid(dim)}
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for method in args.methods.split(","):
            row = {"method": method, "seed": seed}
            if method == "cosine":
                if seed != int(args.seeds.split(",")[0]):
                    continue  # deterministic: one row
                scores, unc, sec = fte.images @ fte.texts.T, None, float("nan")
            else:
                vc = configs[method]
                assert vc.label == method, (vc.label, method)
                t0 = time.time()
                adapter, _ = train_on_features(ftr.images, ftr.texts, torch.from_numpy(train.caption_image), vc, epochs=args.epochs,
                                               batch_size=args.batch_size, lr=args.lr, seed=seed, device=args.device, show_progress=False)
                sec = (time.time() - t0) / args.epochs
                scores, unc = score_all(adapter, fte.images, fte.texts, device=args.device, show_progress=False)
            row["sec_per_epoch"] = round(sec, 1)
            for d in ("i2t", "t2i"):
                row[f"r1_{d}"] = 100 * recall_at_1(scores, labels, d)
                row[f"map_{d}"] = 100 * map_at_r(scores, truth, d)
            has_unc = unc is not None and method != "plain-sigmoid-mlp"  # the plain MLP's σ² is untrained
            summ = fig3_report(scores, unc if unc is not None else -scores, labels, None, n_boot=0, ks=(1,))["summary"]
            summ = summ[summ.binning == "width"].set_index(["direction", "source"])
            for d in ("i2t", "t2i"):
                row[f"fig3_r_{d}"] = float(summ.loc[(d, "sigma2"), "pearson_r"]) if has_unc else float("nan")
                row[f"fig3_control_{d}"] = float(summ.loc[(d, "-score"), "pearson_r"])
            fa = false_negative_auroc_with_control(unc if unc is not None else scores, scores, test.caption_image, truth).set_index("source")
            row["fn_auroc_sigma2"] = float(fa.loc["sigma2", "auroc"]) if has_unc else float("nan")
            row["fn_auroc_score"] = float(fa.loc["score", "auroc"])
            if has_unc:
                rng = uncertainty_by_pair_type(unc, test.caption_image, truth).set_index("pair_type")
                row["sigma2_q05"], row["sigma2_q95"] = (float(x) for x in np.quantile(unc.numpy(), [0.05, 0.95]))
                for k, short in (("positive (labelled)", "pos"), ("false negative (true, unlabelled)", "fn"), ("true negative", "tn")):
                    row[f"sigma2_median_{short}"] = float(rng.loc[k, "median"])
            rows.append(row)
            print(json.dumps(row, default=float), flush=True)
            atomic_to_csv(pd.DataFrame(rows), out / "results.csv")
    df = pd.DataFrame(rows)
    cols = [c for c in df.columns if c not in ("method", "seed")]
    agg = df.groupby("method", sort=False)[cols].agg(["mean", "std"])
    print(f"\nfrozen stand-in features; train {args.train_images} images, noise {args.noise}, {args.epochs} epochs, batch "
          f"{args.batch_size}, lr {args.lr}; test {len(test.caption_image)} captions x {test.num_images} images; seeds {args.seeds}")
    print("R@1: one-to-one labels (%); mAP@R: exact truth (%); Fig. 3: Pearson r of bin R@1 vs bin top-1 σ², 10 equal-width "
          "bins, labels; control: −score; FN AUROC over all unlabelled pairs, exact truth")
    print("| method | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for m in agg.index:
        cells = []
        for c in cols:
            mu, sd = agg.loc[m, (c, "mean")], agg.loc[m, (c, "std")]
            cells.append("—" if np.isnan(mu) else (f"{mu:.3g}" if np.isnan(sd) else f"{mu:.3g} ± {sd:.2g}"))
        print(f"| {m} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
