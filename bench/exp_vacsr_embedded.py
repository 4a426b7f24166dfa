"""VACSR on frozen features of the embedded data vs the frozen cosine baseline.

Pretrains (or loads the cached) stand-in CLIP, encodes the train and test splits, trains the
adapter on train features with one-to-one labels, and scores the test split against the
exact truth: mAP@R / R-Precision / R@1 (ECCV-style, extended positives), the
uncertainty–accuracy correlation (paper Fig. 3 check) and the AUROC of σ² for telling
false negatives from true negatives.

    python bench/exp_vacsr_embedded.py [--epochs 10] [--train-images 5000] [--out runs/bench]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--train-images", type=int, default=5000)
    ap.add_argument("--noise", type=float, default=0.0)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--out", default="runs/bench")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    from vlmkit.data import inject_noise, make_shapes
    from vlmkit.features import encode_dataset
    from vlmkit.metrics import Positives, Scores, ranking_metrics, top1_uncertainty, uncertainty_correlation
    from vlmkit.pretrain import PretrainConfig, pretrain_tiny
    from vlmkit.workbook import default_cache_dir
    from vlmkit.vacsr import VACSRConfig, false_negative_auroc, score_all, train_on_features

    out = Path(args.out)
    pcfg = PretrainConfig()  # the workbook's stand-in checkpoint, shared through the cache
    model = pretrain_tiny(default_cache_dir() / "pretrained" / pcfg.key(), pcfg, device=args.device)
    train = make_shapes("train", n_images=args.train_images)
    if args.noise:
        train = inject_noise(train, args.noise)
    test = make_shapes("test")
    ftr = encode_dataset(model, train, cache_dir=out / "features")
    fte = encode_dataset(model, test, cache_dir=out / "features")
    pos = Positives.from_dataset(test)
    results: dict = {"protocol": "extended positives (exact), full 1000x5000, test split of shapes seed 0"}

    cosine = Scores(fte.images @ fte.texts.T)
    for d, sc, p in (("i2t", cosine, pos), ("t2i", cosine.T, pos.T)):
        results[f"cosine_{d}"] = ranking_metrics(sc, p)

    t0 = time.time()
    adapter, _ = train_on_features(ftr.images, ftr.texts, torch.from_numpy(train.caption_image),
                                   VACSRConfig(dim=ftr.images.shape[1]), epochs=args.epochs, batch_size=args.batch_size,
                                   device=args.device)
    results["train_seconds"] = round(time.time() - t0, 1)
    scores, unc = score_all(adapter, fte.images, fte.texts, device=args.device)
    vs = Scores(scores, unc)
    for d, sc, p in (("i2t", vs, pos), ("t2i", vs.T, pos.T)):
        results[f"vacsr_{d}"] = ranking_metrics(sc, p)
        u, correct = top1_uncertainty(sc, p)
        results[f"vacsr_unc_corr_{d}"] = {k: v for k, v in uncertainty_correlation(u, correct).items() if isinstance(v, float)}
    labels = torch.from_numpy(test.labels())
    rel = torch.from_numpy(test.positives())
    results["fn_auroc_all"] = false_negative_auroc(unc, labels, rel)
    print(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
