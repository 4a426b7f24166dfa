"""VACSR as written vs its ablations on frozen features (issue #19, item 6; bench/README.md, VACSR).

Methods, all on one frozen encoder's features (``--pretrained``; default the shipped stand-in) of
the same noisy embedded training split (notebook 02's defaults: 2,000 images × 5 captions, noise
0.2; adapter 3 epochs, batch 128, lr 1e-3 — the workbook's frozen-feature VACSR), scored exactly on
the full test split (1,000 images × 5,000 captions):

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
    nice python bench/exp_vacsr_frozen.py --pretrained /path/to/stand-in-web --out runs/exp-vacsr-frozen-web

``--pretrained`` picks the frozen encoder (default: the shipped stand-in); the features are cached
under ``--out`` keyed by the model's weights, and every row of ``results.csv`` names it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch


#: the σ²-free rows (the plain MLP's σ² is the untrained latent variance; cosine has none)
NO_SIGMA2 = ("plain-sigmoid-mlp", "cosine")


def pair_metrics(scores, unc, test, *, has_sigma2: bool) -> dict:
    """The issue-#19 columns of one scored test split: R@1 under the one-to-one labels and mAP@R
    under the exact truth (%, both directions), Fig. 3 Pearson r of σ² (10 equal-width bins of the
    top-1 σ², labels) beside its control (−score on the same protocol), FN-vs-TN AUROC of σ² beside
    that of the score, and σ²'s 5–95 % range and medians per pair type. ``unc`` None (or
    ``has_sigma2=False``): the σ² columns are NaN, the controls are still measured.

    scores, unc: (images × captions) tensors; test: the embedded test split (``labels()``,
    ``positives()``, ``caption_image``). Shared by ``exp_vacsr_joint.py``.
    """
    from vlmkit.metrics import false_negative_auroc_with_control, uncertainty_by_pair_type
    from vlmkit.vacsr import fig3_report, map_at_r, recall_at_1

    labels, truth = torch.from_numpy(test.labels()), torch.from_numpy(test.positives())
    has = unc is not None and has_sigma2
    row: dict = {}
    for d in ("i2t", "t2i"):
        row[f"r1_{d}"] = 100 * recall_at_1(scores, labels, d)
        row[f"map_{d}"] = 100 * map_at_r(scores, truth, d)
    summ = fig3_report(scores, unc if unc is not None else -scores, labels, None, n_boot=0, ks=(1,))["summary"]
    summ = summ[summ.binning == "width"].set_index(["direction", "source"])
    for d in ("i2t", "t2i"):
        row[f"fig3_r_{d}"] = float(summ.loc[(d, "sigma2"), "pearson_r"]) if has else float("nan")
        row[f"fig3_control_{d}"] = float(summ.loc[(d, "-score"), "pearson_r"])
    fa = false_negative_auroc_with_control(unc if unc is not None else scores, scores, test.caption_image, truth).set_index("source")
    row["fn_auroc_sigma2"] = float(fa.loc["sigma2", "auroc"]) if has else float("nan")
    row["fn_auroc_score"] = float(fa.loc["score", "auroc"])
    if has:
        rng = uncertainty_by_pair_type(unc, test.caption_image, truth).set_index("pair_type")
        row["sigma2_q05"], row["sigma2_q95"] = (float(x) for x in np.quantile(unc.numpy(), [0.05, 0.95]))
        for k, short in (("positive (labelled)", "pos"), ("false negative (true, unlabelled)", "fn"), ("true negative", "tn")):
            row[f"sigma2_median_{short}"] = float(rng.loc[k, "median"])
    return row


def summary_table(df, keys: tuple[str, ...] = ("method", "seed"), skip: tuple[str, ...] = ()) -> str:
    """Mean ± sd over seeds of every numeric column of ``df``, one markdown row per method (in
    order of first appearance); a column that is NaN for a method is "—", one seed gives no sd."""
    cols = [c for c in df.columns if c not in keys and c not in skip and df[c].dtype.kind in "fi"]
    agg = df.groupby("method", sort=False)[cols].agg(["mean", "std", "count"])
    lines = ["| method | seeds | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]
    for m in agg.index:
        cells = []
        for c in cols:
            mu, sd = agg.loc[m, (c, "mean")], agg.loc[m, (c, "std")]
            cells.append("—" if np.isnan(mu) else (f"{mu:.3g}" if np.isnan(sd) else f"{mu:.3g} ± {sd:.2g}"))
        lines.append(f"| {m} | {int((df.method == m).sum())} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default="vacsr,vacsr-hetero,plain-sigmoid-mlp,cosine")
    ap.add_argument("--pretrained", default="stand-in",
                    help="the frozen encoder: 'stand-in' (the shipped one) or a save_model directory / checkpoint")
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
    from vlmkit.models import load_model
    from vlmkit.utils import VlmkitError, atomic_to_csv
    from vlmkit.vacsr import VACSRConfig, score_all, train_on_features

    known = ("vacsr", "vacsr-hetero", "plain-sigmoid-mlp", "cosine")
    methods = args.methods.split(",")
    for m in methods:
        if m not in known:
            raise VlmkitError(f"--methods: unknown method {m!r}; expected a comma-separated subset of {known}")
    seeds = parse_seeds(args.seeds)
    out = Path(args.out)
    model = load_model(pretrained=args.pretrained, device=args.device)
    train = inject_noise(make_shapes("train", n_images=args.train_images), args.noise)
    test = make_shapes("test", n_images=args.test_images)
    ftr = encode_dataset(model, train, cache_dir=out / "features")
    fte = encode_dataset(model, test, cache_dir=out / "features")
    dim = int(ftr.images.shape[1])
    configs = {"vacsr": VACSRConfig(dim=dim), "vacsr-hetero": VACSRConfig(dim=dim, mechanism="hetero"),
               "plain-sigmoid-mlp": VACSRConfig.plain_sigmoid(dim)}
    rows = []
    for seed in seeds:
        for method in methods:
            row = {"method": method, "seed": seed}
            if method == "cosine":
                if seed != seeds[0]:
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
            row.update(pair_metrics(scores, unc, test, has_sigma2=method not in NO_SIGMA2))
            row["pretrained"] = str(args.pretrained)
            rows.append(row)
            print(json.dumps(row, default=float), flush=True)
            atomic_to_csv(pd.DataFrame(rows), out / "results.csv")
    df = pd.DataFrame(rows)
    print(f"\nprotocol: frozen features of pretrained={args.pretrained}; train {args.train_images} images, noise {args.noise}, "
          f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr}; test {len(test.caption_image)} captions x {test.num_images} "
          f"images; seeds {args.seeds}")
    print("R@1: one-to-one labels (%); mAP@R: exact truth (%); Fig. 3: Pearson r of bin R@1 vs bin top-1 σ², 10 equal-width "
          "bins, labels; control: −score; FN AUROC over all unlabelled pairs, exact truth; sec_per_epoch: adapter training")
    print(summary_table(df, skip=("pretrained",)))


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` → [0, 1, 2]; anything else raises naming ``--seeds``."""
    from vlmkit.utils import VlmkitError

    try:
        seeds = [int(s) for s in str(text).split(",")]
    except ValueError:
        raise VlmkitError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None
    if len(set(seeds)) != len(seeds):
        raise VlmkitError(f"--seeds {text!r}: a seed appears twice")
    return seeds


if __name__ == "__main__":
    main()
