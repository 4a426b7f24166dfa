"""Benchmark VACSR all-pairs scoring (issue #5): naive chunks vs factorised blocks vs top-K.

    python bench/bench_vacsr.py                 # auto: full size on GPU, small sizes on CPU
    python bench/bench_vacsr.py --device cpu --n-img 200 --n-txt 1000
    python bench/bench_vacsr.py --json out.json

Reports, per case: wall time (median of --repeat runs after one warm-up), pairs/s, achieved
TFLOP/s (the inference path's matrix-product FLOPs ÷ time) against a *measured* peak (a large
square matrix product in the compute dtype: bf16 on GPU, fp32 on CPU), the floor time
(FLOPs ÷ peak), time/floor, and peak memory (CUDA: max_memory_allocated; CPU: process max RSS).

Cases
- ``mlp512``: a single 512-unit hidden layer, s → 512 → ReLU → 1, in plain PyTorch (the issue's
  reference: H200, bf16, 5,000 × 25,000, d = 512: naive 0.51 s, factorised 0.33 s, floor ≈ 0.08 s).
- ``adapter``: the VACSR adapter (``--adapter paper`` = 5.25 M parameters: two 1024-unit layers
  in encoder and decoder, latent 512, K = 2; ``small`` = 256-unit single layers, latent 64),
  naive (``score_pairs_naive``) and factorised (``score_all``).
- ``topk``: accuracy/speed of top-K re-ranking on synthetic data with known false negatives
  (``tests/vacsr_synthetic.py``; adapter trained for a few epochs on CPU): mAP@R and time per K.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("VLMKIT_NO_PROGRESS", "1")

from vlmkit.utils import atomic_write_text, resolve_device  # noqa: E402
from vlmkit.vacsr import VACSRAdapter, VACSRConfig, map_at_r, score_all, score_pairs_naive, train_on_features  # noqa: E402
from vlmkit.vacsr.scoring import default_dtype  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from vacsr_synthetic import make_synthetic  # noqa: E402  (the test fixture)


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn, dev: torch.device, repeat: int) -> tuple[float, float]:
    """(median seconds, peak memory GiB) over ``repeat`` runs after one warm-up."""
    fn()
    sync(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    for _ in range(repeat):
        sync(dev)
        t0 = time.perf_counter()
        fn()
        sync(dev)
        times.append(time.perf_counter() - t0)
    if dev.type == "cuda":
        mem = torch.cuda.max_memory_allocated(dev) / 2**30
    else:
        mem = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB → GiB (Linux)
    return statistics.median(times), mem


def matmul_peak(dev: torch.device, dtype: torch.dtype) -> float:
    """Measured FLOP/s of a large square matrix product in ``dtype``."""
    n = 8192 if dev.type == "cuda" else 1024
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    reps = 20 if dev.type == "cuda" else 3
    t, _ = timed(lambda: [a @ b for _ in range(reps)], dev, 3)
    return 2 * n**3 * reps / t


def adapter_flops_per_pair(cfg: VACSRConfig) -> int:
    """Matrix-product FLOPs of deterministic inference for one pair. The paper mechanism (the
    default) also runs the log σ²_k head (its σ² is the latent variance) and has a 1-output
    decoder; the hetero / side ablations skip that head and decode (logit, raw variance)."""
    K, L = cfg.n_components, cfg.latent_dim
    enc = [cfg.dim, *cfg.enc_hidden]
    macs = sum(a * b for a, b in zip(enc[:-1], enc[1:]))
    macs += enc[-1] * (K * L + K if cfg.mixing == "per_pair" and K > 1 else L)
    if cfg.mechanism == "paper":
        macs += enc[-1] * K * L
    dec = [L, *cfg.dec_hidden]
    macs += sum(a * b for a, b in zip(dec[:-1], dec[1:])) + dec[-1] * (1 if cfg.mechanism == "paper" else 2)
    return 2 * macs


# ---- the plain-PyTorch reference: one 512-unit hidden layer -----------------------

@torch.inference_mode()
def mlp512_naive(v, t, w1t, b1, w2, chunk):
    N, M = v.shape[0], t.shape[0]
    out = torch.empty(N * M, device=v.device, dtype=torch.float32)
    for s in range(0, N * M, chunk):
        p = torch.arange(s, min(s + chunk, N * M), device=v.device)
        h = torch.addmm(b1, v[p // M] * t[p % M], w1t).relu_()
        out[s:s + p.numel()] = (h @ w2).float()
    return out


@torch.inference_mode()
def mlp512_factorised(v, t, w1t, b1, w2, chunk):
    N, M = v.shape[0], t.shape[0]
    d, H = w1t.shape
    out = torch.empty(N, M, device=v.device, dtype=torch.float32)
    m = min(M, chunk)
    b = max(1, chunk // m)
    for i in range(0, N, b):
        vb = v[i:i + b]
        scaled = (w1t.unsqueeze(1) * vb.t().unsqueeze(2)).reshape(d, -1)
        for j in range(0, M, m):
            h = (t[j:j + m] @ scaled).view(-1, H)
            h += b1
            h.relu_()
            out[i:i + b, j:j + m] = (h @ w2).float().view(-1, vb.shape[0]).t()
    return out


def bench_mlp512(v, t, dev, dtype, chunk, repeat, peak):
    d, H = v.shape[1], 512
    g = torch.Generator(device="cpu").manual_seed(0)
    w1t = (torch.randn(d, H, generator=g) / d**0.5).to(dev, dtype)
    b1 = torch.zeros(H).to(dev, dtype)
    w2 = (torch.randn(H, generator=g) / H**0.5).to(dev, dtype)
    pairs = v.shape[0] * t.shape[0]
    flops = pairs * 2 * (d * H + H)
    rows = []
    for name, fn in (("naive", mlp512_naive), ("factorised", mlp512_factorised)):
        sec, mem = timed(lambda: fn(v, t, w1t, b1, w2, chunk), dev, repeat)
        rows.append(row("mlp512", name, sec, pairs, flops, peak, mem, chunk))
    return rows


def row(case, mode, sec, pairs, flops, peak, mem, chunk):
    """One result; on CPU ``peak_mem_gib`` is the process's lifetime max RSS (an upper bound)."""
    return {"case": case, "mode": mode, "seconds": sec, "pairs_per_s": pairs / sec, "tflops": flops / sec / 1e12,
            "peak_tflops": peak / 1e12, "floor_s": flops / peak, "time_over_floor": sec / (flops / peak),
            "peak_mem_gib": mem, "chunk": chunk}


def bench_adapter(cfg, v, t, dev, dtype, chunks, repeat, peak, naive: bool):
    torch.manual_seed(0)
    a = VACSRAdapter(cfg).eval()
    pairs = v.shape[0] * t.shape[0]
    flops = pairs * adapter_flops_per_pair(cfg)
    rows = []
    kw = dict(device=dev, dtype=dtype, show_progress=False)
    if naive:
        sec, mem = timed(lambda: score_pairs_naive(a, v, t, chunk_size=chunks[0], dtype=dtype, device=dev), dev, repeat)
        rows.append(row("adapter", "naive", sec, pairs, flops, peak, mem, chunks[0]))
    for c in chunks:
        sec, mem = timed(lambda: score_all(a, v, t, chunk_size=c, out_device=dev, **kw), dev, repeat)
        rows.append(row("adapter", "factorised", sec, pairs, flops, peak, mem, c))
    return rows, a.num_parameters(), flops


def bench_topk(dev, repeat, ks):
    """mAP@R (extended positives) and time of top-K re-ranking vs exact, synthetic FN data."""
    kw = dict(n_clusters=100, signal_dims=16, noise_dims=48)
    tr, te = make_synthetic(seed=0, **kw), make_synthetic(seed=1, **kw)
    cfg = VACSRConfig(dim=64, enc_hidden=(64,), latent_dim=16, dec_hidden=(32,))
    a, _ = train_on_features(tr.img, tr.txt, tr.caption_image, cfg, epochs=12, batch_size=100, lr=3e-3,
                             device="cpu", show_progress=False)
    out = []
    cos = te.img @ te.txt.t()
    out.append({"k": "cosine", "seconds": None, **{f"map_at_r_{d}": map_at_r(cos, te.relevance, d)
                                                   for d in ("i2t", "t2i")}})
    for k in [*ks, None]:
        res = {}

        def run():
            res["s"] = score_all(a, te.img, te.txt, chunk_size=1 << 16, device=dev, topk=k, show_progress=False)[0]

        sec, _ = timed(run, dev, repeat)
        out.append({"k": "exact" if k is None else k, "seconds": sec,
                    **{f"map_at_r_{d}": map_at_r(res["s"].cpu(), te.relevance, d) for d in ("i2t", "t2i")}})
    return out, (te.img.shape[0], te.txt.shape[0])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--n-img", type=int, default=None, help="default 5000 on GPU, 200 on CPU")
    ap.add_argument("--n-txt", type=int, default=None, help="default 25000 on GPU, 1000 on CPU")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--adapter", choices=["paper", "small", "both"], default="both")
    ap.add_argument("--chunks", default=None, help="comma-separated pairs per block")
    ap.add_argument("--repeat", type=int, default=None, help="default 3 on GPU, 2 on CPU")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-naive", action="store_true")
    ap.add_argument("--no-topk", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    gpu = dev.type == "cuda"
    dtype = default_dtype(dev)
    args.repeat = args.repeat or (3 if gpu else 2)
    N = args.n_img or (5000 if gpu else 200)
    M = args.n_txt or (25000 if gpu else 1000)
    chunks = [int(c) for c in args.chunks.split(",")] if args.chunks else ([1 << 18, 1 << 20, 1 << 21] if gpu else [1 << 16])
    g = torch.Generator().manual_seed(0)
    v = torch.nn.functional.normalize(torch.randn(N, args.dim, generator=g), dim=1).to(dev, dtype)
    t = torch.nn.functional.normalize(torch.randn(M, args.dim, generator=g), dim=1).to(dev, dtype)
    peak = matmul_peak(dev, dtype)
    info = {"device": torch.cuda.get_device_name(dev) if gpu else f"cpu ({torch.get_num_threads()} threads)",
            "dtype": str(dtype), "n_img": N, "n_txt": M, "dim": args.dim, "torch": torch.__version__,
            "peak_tflops": peak / 1e12}
    print(json.dumps(info))
    rows = bench_mlp512(v, t, dev, dtype, chunks[0], args.repeat, peak)
    sizes = {"paper": VACSRConfig.paper_sized(args.dim),
             "small": VACSRConfig(dim=args.dim, enc_hidden=(256,), latent_dim=64, dec_hidden=(256,))}
    names = ["paper", "small"] if args.adapter == "both" else [args.adapter]
    params = {}
    for name in names:
        vv, tt = v, t
        if name == "paper" and not gpu and args.n_img is None:
            vv, tt = v[:50], t[:250]  # 8.4 MFLOP/pair: keep the CPU run short
        r, n_par, _ = bench_adapter(sizes[name], vv, tt, dev, dtype, chunks, args.repeat, peak, not args.no_naive)
        for x in r:
            x.update(case=f"adapter-{name}", pairs=vv.shape[0] * tt.shape[0])
        params[name] = n_par
        rows += r
    for x in rows:
        x.setdefault("pairs", N * M)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in x.items()}))
    topk = None
    if not args.no_topk:
        topk, shape = bench_topk(dev, args.repeat, [5, 20, 50, 200])
        for x in topk:
            print(json.dumps({"topk_on": shape, **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in x.items()}}))
    if args.json:
        atomic_write_text(args.json, json.dumps({"info": info, "params": params, "rows": rows, "topk": topk}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
