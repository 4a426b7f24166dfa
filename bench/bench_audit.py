"""Benchmark the data audit (issue #23): how well each scorer finds false negatives and
mismatched pairs on the embedded data with exact truth, and memory/time at COCO-5K size.

    python bench/bench_audit.py quality --images 1000 --seeds 0 1 2 --noise 0.2 0.5 --out bench/audit_quality.csv
    python bench/bench_audit.py memory  --images 5000 --captions-per-image 5 --dim 512

``quality``: per (seed, noise): the embedded test split (``make_shapes("test", images, seed)``),
``inject_noise(ratio, seed)``; scorers
- ``zero-shot``: cosine of the shipped stand-in CLIP (the **zero-shot cosine baseline**);
- ``fine-tuned``: cosine after a linear map per modality trained with symmetric InfoNCE
  (τ = 0.05) on the *noisy* labelled pairs' frozen zero-shot features — a cheap stand-in for
  fine-tuning; its ``loss:fine-tuned`` column is the **small-loss baseline** (per-pair loss of a
  model trained on the noisy data, what noisy-correspondence methods rank by);
- ``vacsr``: a VACSR adapter trained on the noisy labels over the zero-shot features (score μ, σ²);
then :func:`vlmkit.audit.audit_scores` (top-k 10) and :func:`vlmkit.audit.evaluate_audit` per
column and for the combined rank, plus two variants of the combined rule (without σ²; scores
only) to say whether σ² adds anything.

``memory``: random unit-norm features at 5,000 × 25,000 (d = 512) through ``audit_scores`` with
one cosine scorer (shortlist + consistency + combined rank); wall time and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("VLMKIT_NO_PROGRESS", "1")

from vlmkit import audit  # noqa: E402
from vlmkit.utils import atomic_to_csv, seed_everything  # noqa: E402


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def linear_finetune(img: torch.Tensor, txt: torch.Tensor, caption_image: np.ndarray, *, epochs: int = 5, tau: float = 0.05,
                    batch: int = 256, lr: float = 1e-3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A linear map per modality (identity start), symmetric InfoNCE on the labelled pairs."""
    seed_everything(seed)
    d = img.shape[1]
    wi, wt = torch.nn.Linear(d, d), torch.nn.Linear(d, d)
    for w in (wi, wt):
        torch.nn.init.eye_(w.weight)
        torch.nn.init.zeros_(w.bias)
    opt = torch.optim.Adam([*wi.parameters(), *wt.parameters()], lr=lr)
    ci = torch.as_tensor(caption_image)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(txt), generator=g).split(batch):
            v = torch.nn.functional.normalize(wi(img[ci[idx]]), dim=1)
            t = torch.nn.functional.normalize(wt(txt[idx]), dim=1)
            logits = v @ t.T / tau
            same = ci[idx][:, None] == ci[idx][None, :]  # captions of one image in a batch: all positives
            tgt = same.float() / same.sum(1, keepdim=True)
            loss = 0.5 * (torch.sum(-tgt * logits.log_softmax(1), 1).mean() + torch.sum(-tgt * logits.T.log_softmax(1), 1).mean())
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return torch.nn.functional.normalize(wi(img), dim=1), torch.nn.functional.normalize(wt(txt), dim=1)


def quality(args: argparse.Namespace) -> pd.DataFrame:
    from vlmkit.data import make_shapes
    from vlmkit.data.shapes import inject_noise
    from vlmkit.features import encode_dataset
    from vlmkit.models.factory import load_model

    loaded = load_model("", pretrained="stand-in", device="cpu")
    rows = []
    for seed in args.seeds:
        clean = make_shapes("test", n_images=args.images, seed=seed)
        feats = encode_dataset(loaded, clean, cache_dir=args.cache)
        where = {c: k for k, c in enumerate(clean.captions)}
        for ratio in args.noise:
            t0 = time.time()
            ds = inject_noise(clean, ratio, seed)
            txt = feats.texts[torch.as_tensor([where[c] for c in ds.captions])]  # the features follow the texts
            zs = audit.Scorer.from_features("zero-shot", feats.images, txt)
            fi, ft = linear_finetune(zs.img, zs.txt, ds.caption_image, epochs=args.ft_epochs, seed=seed)
            ftn = audit.Scorer.from_features("fine-tuned", fi, ft)
            vac = audit.vacsr_scorer(ds, zs, epochs=args.vacsr_epochs, seed=seed)
            res = audit.audit_scores(ds, [zs, ftn, vac], top_k=args.top_k, reference="zero-shot")
            extra = {}
            for task, table in res.tables.items():
                base = [c for c in res.combine[task]]
                variants = {"combined without σ²": [c for c in base if not c.startswith("sigma2:")],
                            "combined, scores only": [c for c in base if c.startswith("score:")]}
                extra[task] = {}
                for vname, cols in variants.items():
                    t2 = audit.combine_table(table.drop(columns=[c for c in table if c.startswith("pct:")] + ["rank", "combined"]).copy(),
                                             task, cols)
                    # align back to the table's order by (image, caption)
                    key = pd.MultiIndex.from_frame(table[["image", "caption"]])
                    s = pd.Series(t2["combined"].to_numpy(), index=pd.MultiIndex.from_frame(t2[["image", "caption"]]))
                    extra[task][vname] = s.reindex(key).to_numpy(np.float64)
            ev = audit.evaluate_audit(ds, res, ks=(100, 1000), extra=extra)
            ev.insert(0, "noise", ratio)
            ev.insert(0, "seed", seed)
            ev["seconds"] = round(time.time() - t0, 1)
            ev.insert(0, "protocol", f"embedded shapes test split, {args.images} images x 5 captions, inject_noise per seed; "
                                     f"truth = exact (false negatives: ds.positives; mismatches: caption_meta['noisy']); top-k {args.top_k}")
            rows.append(ev)
            if args.out:  # after every (seed, noise): a partial table survives an interruption
                atomic_to_csv(pd.concat(rows, ignore_index=True), args.out)
            print(f"seed {seed} noise {ratio}: {time.time() - t0:.0f} s, candidates {res.info['candidates']}", flush=True)
            print(ev[["task", "column", "P@100", "P@1000", "R@1000", "AUROC"]].to_string(index=False), flush=True)
    out = pd.concat(rows, ignore_index=True)
    if args.out:
        atomic_to_csv(out, args.out)
    return out


def memory(args: argparse.Namespace) -> dict:
    from vlmkit.data.base import ArrayImages, PairDataset

    n, m = args.images, args.images * args.captions_per_image
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(n, args.dim, generator=g), dim=1)
    ci = np.repeat(np.arange(n), args.captions_per_image)
    txt = torch.nn.functional.normalize(img[torch.as_tensor(ci)] + 0.8 * torch.randn(m, args.dim, generator=g), dim=1)
    ds = PairDataset("random", ArrayImages(np.zeros((n, 1, 1, 3), np.uint8)), [f"caption {j}" for j in range(m)], ci,
                     [str(i) for i in range(n)])
    before = rss_mib()
    t0 = time.time()
    res = audit.audit_scores(ds, [audit.Scorer.from_features("cosine", img, txt)], top_k=args.top_k)
    rec = {"images": n, "captions": m, "dim": args.dim, "top_k": args.top_k, "seconds": round(time.time() - t0, 1),
           "peak_rss_mib": round(rss_mib()), "rss_before_mib": round(before), "candidates": res.info["candidates"],
           "threads": torch.get_num_threads()}
    print(json.dumps(rec))
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--images", type=int, default=1000)
    q.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    q.add_argument("--noise", type=float, nargs="+", default=[0.2, 0.5])
    q.add_argument("--top-k", type=int, default=10)
    q.add_argument("--ft-epochs", type=int, default=5)
    q.add_argument("--vacsr-epochs", type=int, default=3)
    q.add_argument("--cache", default=None, help="feature cache folder")
    q.add_argument("--out", default=None, help="CSV of every (seed, noise, task, column)")
    mm = sub.add_parser("memory")
    mm.add_argument("--images", type=int, default=5000)
    mm.add_argument("--captions-per-image", type=int, default=5)
    mm.add_argument("--dim", type=int, default=512)
    mm.add_argument("--top-k", type=int, default=10)
    args = ap.parse_args()
    quality(args) if args.mode == "quality" else memory(args)


if __name__ == "__main__":
    main()
