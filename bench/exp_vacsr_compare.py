"""VACSR's fair comparison (the VACSR issue, point 6): ``vacsr-joint`` against ``sigmoid`` and
``contrastive`` fine-tuning with the same backbone, data, noise, epochs, lr, batch, seeds and
best-epoch rule (validation RSUM), on the default embedded benchmark.

Each (method, seed) fine-tunes the shipped stand-in with the workbook's recipe and scores the
test split (1,000 × 5,000): ``vacsr-joint`` through its adapter (logit, σ²), the others by the
cosine of their encoders. Per run it writes ``<out>/<method>-s<seed>.json`` atomically (a
finished run is not redone: the script resumes) with

- R@1 / RSUM under one-to-one labels (COCO-5K rules on the whole split),
- mAP@R / R-Precision under the exact truth (ECCV-style extended positives),
- the mean cosine between different test images (≈ 1: the encoders collapsed),
- for ``vacsr-joint``: the Fig. 3 summary (labels and truth, σ² and the −score control) and the
  FN-vs-TN AUROC of σ².

``--summary`` prints mean ± sd over seeds of every finished run (also of
``exp_vacsr_embedded.py`` JSON files given with ``--frozen``) as markdown.

    python bench/exp_vacsr_compare.py --methods contrastive,sigmoid,vacsr-joint --seeds 0,1,2
    python bench/exp_vacsr_compare.py --summary --frozen 'runs/frozen/*.json'
"""

from __future__ import annotations

import argparse
import glob
import json
import time
from pathlib import Path

import numpy as np
import torch


def run_one(method: str, seed: int, args: argparse.Namespace) -> dict:
    from vlmkit.data import make_shapes
    from vlmkit.features import encode_dataset
    from vlmkit.metrics import evaluate_similarity, false_negative_auroc
    from vlmkit.models import load_model
    from vlmkit.train import TrainConfig, finetune
    from vlmkit.vacsr import fig3_report, load_adapter, score_all

    out = Path(args.out)
    extra = {}
    if method == "vacsr-joint+infonce":  # the ablation with the InfoNCE term the paper's Eq. 13 does not have
        method, extra = "vacsr-joint", {"vacsr": {"contrastive_weight": args.contrastive_weight}}
    name = method + ("+infonce" if extra else "")
    cfg = TrainConfig(method=method, pretrained="stand-in", train_images=args.train_images, noise_ratio=args.noise,
                      epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=seed, device=args.device, **extra)
    t0 = time.time()
    res = finetune(cfg, out / f"{name}-s{seed}")
    seconds = time.time() - t0
    test = make_shapes("test")
    feats = encode_dataset(load_model(pretrained=res.best_dir, device=args.device), test)
    unc = None
    if method == "vacsr-joint":
        adapter = load_adapter(res.best_dir / "vacsr_adapter", device=args.device)
        scores, unc = score_all(adapter, feats.images, feats.texts, device=args.device, show_progress=False)
    else:
        scores = feats.images @ feats.texts.T
    table = evaluate_similarity(scores, test.caption_image, positives=test, protocols=("coco5k", "eccv"), method=name)
    img_cos = feats.images @ feats.images.T  # collapse check: mean cosine between different test images
    n = img_cos.shape[0]
    row = {"method": name, "seed": seed, "mean_image_image_cosine": float((img_cos.sum() - img_cos.diagonal().sum()) / (n * n - n)), "train_seconds": round(seconds, 1), "best_epoch": res.best_epoch,
           "recipe": {k: getattr(cfg, k) for k in ("train_images", "noise_ratio", "epochs", "batch_size", "lr")},
           "metrics": {f"{r.protocol} | {r.direction} | {r.metric}": float(r.value) for r in table.itertuples()}}
    if unc is not None:
        labels, truth = torch.from_numpy(test.labels()), torch.from_numpy(test.positives())
        rep = fig3_report(scores, unc, labels, truth)
        row["fig3_summary"] = rep["summary"].to_dict(orient="records")
        row["fn_auroc_all"] = false_negative_auroc(unc, test.caption_image, truth)
        prob = torch.sigmoid(scores)
        row["mean_sigmoid_score"] = {"positives": float(prob[labels].mean()), "false_negatives": float(prob[~labels & truth].mean()),
                                     "true_negatives": float(prob[~labels & ~truth].mean())}
    return row


def _stat(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    v = np.asarray(values, dtype=float) * scale
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else f"{v.mean():.{digits}f}"


def _by_method(paths: list[Path]) -> dict[str, list[dict]]:
    by: dict[str, list[dict]] = {}
    for p in paths:
        d = json.loads(p.read_text())
        by.setdefault(d["method"], []).append(d)
    return by


def _finetuned_cells(method: str, runs: list[dict]) -> list[str]:
    m = [r["metrics"] for r in runs]
    key = next(k for k in m[0] if k.endswith("| i2t | R@1") and k.startswith("full"))
    col = lambda k: [x[k] for x in m]  # noqa: E731
    ecc = next(k.split(" | ")[0] for k in m[0] if "mAP@R" in k)
    cells = [_stat(col(key)), _stat(col(key.replace("i2t", "t2i"))),
             _stat(col(f"{ecc} | i2t | mAP@R")), _stat(col(f"{ecc} | t2i | mAP@R"))]  # evaluate_similarity: in %
    return cells + (_fig3_cells(runs) if "fig3_summary" in runs[0] else ["—", "—", "—"])


def _frozen_cells(method: str, runs: list[dict]) -> list[str]:
    r1 = [[next(s["r1"] for s in r["fig3_summary"] if s["direction"] == d and s["protocol"] == "labels") for r in runs]
          for d in ("i2t", "t2i")]
    cells = [_stat(r1[0], 100), _stat(r1[1], 100),
             _stat([r[f"{method}_i2t"]["map_at_r"] for r in runs], 100), _stat([r[f"{method}_t2i"]["map_at_r"] for r in runs], 100)]
    return cells + (_fig3_cells(runs) if method != "plain-sigmoid-mlp" else ["(σ² untrained)", "—", "—"])


def summary(paths: list[Path], frozen: list[Path]) -> str:
    """Markdown: mean ± sd over seeds per method (fine-tuned runs, then frozen-feature runs)."""
    lines: list[str] = []
    for kind, files, cells in (("fine-tuned", paths, _finetuned_cells), ("frozen features", frozen, _frozen_cells)):
        if not files:
            continue
        lines += ([""] if lines else []) + [
            f"| method ({kind}) | seeds | i→t R@1 (labels) | t→i R@1 (labels) | i→t mAP@R (truth) | t→i mAP@R (truth) "
            "| Fig. 3 r labels i→t / t→i | −score control | FN-vs-TN AUROC |", "|" + "---|" * 9]
        lines += [f"| {method} | {len(runs)} | " + " | ".join(cells(method, runs)) + " |" for method, runs in _by_method(files).items()]
    return "\n".join(lines)


def _fig3_cells(runs: list[dict]) -> list[str]:
    def r(run: dict, d: str, source: str) -> float:
        return next(s["pearson_r"] for s in run["fig3_summary"] if s["direction"] == d and s["protocol"] == "labels"
                    and s["source"] == source and s["binning"] == "width")
    return [" / ".join(_stat([r(x, d, "sigma2") for x in runs], digits=3) for d in ("i2t", "t2i")),
            " / ".join(_stat([r(x, d, "-score") for x in runs], digits=3) for d in ("i2t", "t2i")),
            _stat([x["fn_auroc_all"]["auroc"] for x in runs], digits=3)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="contrastive,sigmoid,vacsr-joint",
                    help="comma-separated; 'vacsr-joint+infonce' adds --contrastive-weight × InfoNCE (an ablation)")
    ap.add_argument("--contrastive-weight", type=float, default=1.0)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train-images", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--noise", type=float, default=0.2)
    ap.add_argument("--out", default="runs/exp-vacsr-compare")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--summary", action="store_true", help="print the markdown summary of finished runs and exit")
    ap.add_argument("--frozen", default="", help="glob of exp_vacsr_embedded.py JSON outputs to include in --summary")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.summary:
        frozen = [Path(p) for p in sorted(glob.glob(args.frozen))] if args.frozen else []
        print(summary(sorted(out.glob("*-s*.json")), frozen))
        return
    from vlmkit.utils import atomic_write_json

    for method in args.methods.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            path = out / f"{method}-s{seed}.json"
            if path.exists():
                print(f"{path}: done, skipped")
                continue
            row = run_one(method, seed, args)
            atomic_write_json(path, row)
            print(f"{path}: {row['train_seconds']} s, best epoch {row['best_epoch']}", flush=True)


if __name__ == "__main__":
    main()
