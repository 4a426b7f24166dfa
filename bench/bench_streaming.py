"""Benchmark: notebook 06's statistics of one N × M score matrix, whole-matrix vs streamed.

``--mode whole`` is what 06 did before issue 22: dense labels and truth, ``pair_types`` of every
pair, a float64 copy of the scores, true negatives subsampled with ``rng.choice`` for the
histogram, the per-type means from boolean masks, and the false-negative gallery's selection by
a stable argsort of every selected pair.  ``--mode streamed`` is what it does now
(:mod:`vlmkit.metrics.streaming`: the pair codes computed once as int8 in row blocks, the
matrix read in row blocks, top-k without a full sort).  Each mode runs in its own process so its peak RSS
(``resource.getrusage``, in MiB; it includes Python, torch and the score matrix itself) is its own.

    .venv/bin/python bench/bench_streaming.py --images 5000 --mode streamed
    .venv/bin/python bench/bench_streaming.py --images 5000 --mode whole
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
    ap.add_argument("--images", type=int, default=5000, help="test images (5 captions each)")
    ap.add_argument("--mode", choices=("whole", "streamed"), required=True)
    ap.add_argument("--bins", type=int, default=80)
    args = ap.parse_args(argv)

    from vlmkit import viz
    from vlmkit.data.shapes import make_shapes

    ds = make_shapes("test", n_images=args.images, seed=0)
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(ds.num_images, 64, generator=g), dim=1)
    txt = torch.nn.functional.normalize(torch.randn(ds.num_captions, 64, generator=g), dim=1)
    scores = img @ txt.T  # float32, as load_method returns it
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    if args.mode == "whole":
        L, P = ds.labels(), ds.positives()
        S = scores.numpy().astype(np.float64)
        fig = viz.similarity_histogram(S, L, P, bins=args.bins)
        t = viz.pair_types(L, P)
        means = [float(S[t == k].mean()) for k in range(3)]
        key = S.ravel()
        idx = np.flatnonzero((P & ~L).ravel())
        top = idx[np.argsort(-key[idx], kind="stable")[:8]]
    else:
        from vlmkit.metrics.streaming import pair_code_matrix, pair_type_histogram, top_pairs

        codes = pair_code_matrix(ds)  # the truth, once (int8)
        hist = pair_type_histogram(scores, ds, bins=args.bins, codes=codes)
        fig = viz.pair_type_histogram_figure(hist)
        means = hist.means.tolist()
        top, _ = top_pairs(scores, lambda r: codes[r] == 1, 8)
    secs = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"mode={args.mode} pairs={ds.num_images}x{ds.num_captions} seconds={secs:.1f} peak_rss_mib={peak:.0f} "
          f"(before the statistics: {base:.0f}) traces={len(fig.data)} means={np.round(means, 4).tolist()} top={top[:3].tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
