"""Benchmark: COCO-5K-sized evaluation (5,000 images × 25,000 captions, d = 512).

Random features; runs R@1/5/10 on 5K and 1K folds, RSUM, mAP@R, R-Precision (ECCV-style,
over random extended positives) and ECE in both directions through ``evaluate_retrieval``,
and reports wall time per stage and peak memory (CUDA: ``torch.cuda.max_memory_allocated``;
CPU: the process's peak RSS from ``resource``, which includes the Python/torch baseline).

    python bench/bench_eval.py [--device cpu|cuda|auto] [--chunk-size N] [--images 5000]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--chunk-size", type=int, default=None, help="rows per block (default: 4M scores per block)")
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--captions-per-image", type=int, default=5)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from vlmkit.metrics import Positives, evaluate_retrieval
    from vlmkit.utils import resolve_device

    dev = resolve_device(args.device)
    n, m, d = args.images, args.images * args.captions_per_image, args.dim
    g = torch.Generator().manual_seed(0)
    img = torch.randn(n, d, generator=g)
    ci = torch.arange(m) // args.captions_per_image
    txt = img[ci] + 2.5 * torch.randn(m, d, generator=g).mul_(d**0.5 / 8)  # R@1 well below 100 %
    # ECCV-like extended positives: the labels plus ~3 extra true captions per image
    extra = torch.randint(m, (3 * n,), generator=g)
    rows = np.concatenate([ci.numpy(), np.repeat(np.arange(n), 3)])
    cols = np.concatenate([np.arange(m), extra.numpy()])
    import scipy.sparse as sp
    pos = Positives.from_matrix(sp.csr_matrix((np.ones(len(rows), bool), (rows, cols)), shape=(n, m)))
    img, txt = img.to(dev), txt.to(dev)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    t0 = time.perf_counter()
    df = evaluate_retrieval(img, txt, ci, positives=pos, protocols=("coco5k", "coco1k", "eccv"),
                            device=dev, chunk_size=args.chunk_size)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(df[["protocol", "direction", "metric", "value", "n_queries"]].to_string(index=False))
    print(f"\ndevice={dev} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"N={n} M={m} d={d} chunk_size={args.chunk_size or 'auto'}")
    print(f"evaluate_retrieval wall time: {wall:.2f} s")
    print(f"score matrix: {n * m * 4 / 2**20:.0f} MiB (float32)")
    if dev.type == "cuda":
        print(f"peak CUDA memory allocated: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    print(f"peak RSS: {rss:.0f} MiB (before evaluation: {rss0:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
